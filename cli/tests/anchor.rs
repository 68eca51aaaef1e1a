//! The Ergo anchoring client against a stand-in Ergo node (axum on 127.0.0.1) that implements just
//! the endpoints the client uses, with the Ergo node's JSON shapes, its `api_key` check and its
//! `ApiError` bodies, plus a switch that makes it answer 503 for the next K requests. The last test
//! runs real `rustchain` nodes against it: the primary anchors every certified hash once.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rustchain_node::anchoring::ergo::{
    Anchor, AnchorError, ErgoAnchor, NullAnchor, anchor_with_retry, encode_long, encode_r4, verify,
};
use common::{Miner, TestNode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const API_KEY: &str = "hello";
const WALLET_ADDRESS: &str = "9fRusQwTvNv3o2C1M7TMHpHT9Mh7nHUFSrBEhY9m5iHDsuz9hxn";
const MIN_BOX_VALUE: u64 = 100_000;
const MIN_FEE: u64 = 1_000_000;
const HEIGHT: u64 = 1_234_567;

/// The stand-in Ergo node.
#[derive(Default)]
struct StandIn {
    /// Answer 503 to this many more requests (any endpoint).
    unavailable: AtomicUsize,
    /// Requests seen, per route ("send", "addresses", "byId", "unconfirmed"), 503s included.
    calls: Mutex<HashMap<&'static str, usize>>,
    state: Mutex<Chain>,
}

#[derive(Default)]
struct Chain {
    /// New transactions stay in the mempool instead of being mined at once.
    to_mempool: bool,
    /// Indexed (mined) transactions: IndexedErgoTransaction JSON.
    confirmed: HashMap<String, Value>,
    /// Mempool transactions: ErgoTransaction JSON.
    mempool: HashMap<String, Value>,
    /// Accepted `/wallet/transaction/send` bodies.
    sent: Vec<Value>,
}

impl StandIn {
    fn calls(&self, route: &'static str) -> usize {
        self.calls.lock().unwrap().get(route).copied().unwrap_or(0)
    }

    /// Move a mempool transaction into a block, `confirmations` deep.
    fn mine(&self, id: &str, confirmations: u64) {
        let mut chain = self.state.lock().unwrap();
        let tx = chain.mempool.remove(id).expect("in the mempool");
        let indexed = indexed(id, tx["outputs"].clone(), confirmations);
        chain.confirmed.insert(id.to_string(), indexed);
    }

    /// Overwrite R4 of the first output of a mined transaction.
    fn set_r4(&self, id: &str, r4: &str) {
        let mut chain = self.state.lock().unwrap();
        chain.confirmed.get_mut(id).expect("mined")["outputs"][0]["additionalRegisters"]["R4"] = json!(r4);
    }
}

fn api_error(status: StatusCode, reason: &str, detail: impl Into<Option<String>>) -> Response {
    (status, Json(json!({"error": status.as_u16(), "reason": reason, "detail": detail.into()}))).into_response()
}

/// The refusal when the `api_key` header is missing or wrong.
fn bad_api_key(headers: &HeaderMap) -> Option<Response> {
    match headers.get("api_key").and_then(|v| v.to_str().ok()) {
        Some(API_KEY) => None,
        _ => Some(api_error(StatusCode::FORBIDDEN, "Forbidden", "Api key is not valid".to_string())),
    }
}

/// The boxes a payment request produces: the requested box, then the wallet's change.
fn outputs(id: &str, request: &Value) -> Value {
    let box_id = |i: u8| hex::encode(Sha256::digest([id.as_bytes(), &[i]].concat()));
    json!([
        {
            "boxId": box_id(0),
            "value": request["value"],
            "ergoTree": "0008cd02a7955281885bf0f0ca4a48678848cad8dc5b328ce8bc1d4481d041c98e891ff3",
            "creationHeight": HEIGHT,
            "assets": [],
            "additionalRegisters": request["registers"],
            "transactionId": id,
            "index": 0,
        },
        {
            "boxId": box_id(1),
            "value": 67_500_000_000u64,
            "ergoTree": "0008cd02a7955281885bf0f0ca4a48678848cad8dc5b328ce8bc1d4481d041c98e891ff3",
            "creationHeight": HEIGHT,
            "assets": [],
            "additionalRegisters": {},
            "transactionId": id,
            "index": 1,
        },
    ])
}

/// IndexedErgoTransaction.
fn indexed(id: &str, outputs: Value, confirmations: u64) -> Value {
    json!({
        "id": id,
        "inputs": [],
        "dataInputs": [],
        "outputs": outputs,
        "inclusionHeight": HEIGHT - confirmations + 1,
        "numConfirmations": confirmations,
        "blockId": hex::encode(Sha256::digest(id.as_bytes())),
        "timestamp": 1_755_000_000_000u64,
        "index": 1,
        "globalIndex": 9_876_543,
        "size": 301,
    })
}

/// ErgoTransaction (mempool).
fn unconfirmed(id: &str, outputs: Value) -> Value {
    json!({"id": id, "inputs": [], "dataInputs": [], "outputs": outputs, "size": 301})
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `RequestsHolder` checks this stand-in makes (a subset of the real node's).
fn validate(body: &Value) -> Result<&Value, String> {
    let requests = body["requests"].as_array().filter(|r| !r.is_empty()).ok_or("requests must be a non-empty array")?;
    let fee = body["fee"].as_u64().ok_or("fee must be a number")?;
    if fee < MIN_FEE {
        return Err(format!("fee {fee} is below the minimum {MIN_FEE}"));
    }
    for field in ["inputsRaw", "dataInputsRaw"] {
        if !body[field].is_array() && !body[field].is_null() {
            return Err(format!("{field} must be an array"));
        }
    }
    let r = &requests[0];
    if requests.len() != 1 {
        return Err("this stand-in takes exactly one payment request".into());
    }
    if r["address"].as_str() != Some(WALLET_ADDRESS) {
        return Err(format!("unknown address {}", r["address"]));
    }
    let value = r["value"].as_u64().ok_or("value must be a number")?;
    if value < MIN_BOX_VALUE {
        return Err(format!("Minimal ERG value not met: {value} < {MIN_BOX_VALUE}"));
    }
    if r["assets"].as_array().is_none_or(|a| !a.is_empty()) {
        return Err("assets must be an empty array".into());
    }
    let regs = r["registers"].as_object().ok_or("registers must be an object")?;
    // R4.. in order, without gaps; each a hex-serialized constant.
    for (i, name) in ["R4", "R5", "R6", "R7", "R8", "R9"].iter().enumerate() {
        match regs.get(*name) {
            Some(v) if v.as_str().is_some_and(is_hex) => {}
            Some(_) => return Err(format!("{name} is not a hex constant")),
            None if regs.len() > i => return Err(format!("registers must start at R4 without gaps, {name} is missing")),
            None => break,
        }
    }
    if regs.len() > 6 {
        return Err("unknown register".into());
    }
    Ok(r)
}

async fn send(State(s): State<Arc<StandIn>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = bad_api_key(&headers) {
        return refusal;
    }
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad.request", format!("Invalid JSON: {e}")),
    };
    let request = match validate(&json) {
        Ok(r) => r.clone(),
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad.request", e),
    };
    let id = hex::encode(Sha256::digest(&body));
    let mut chain = s.state.lock().unwrap();
    let outs = outputs(&id, &request);
    if chain.to_mempool {
        chain.mempool.insert(id.clone(), unconfirmed(&id, outs));
    } else {
        chain.confirmed.insert(id.clone(), indexed(&id, outs, 1));
    }
    chain.sent.push(json);
    Json(id).into_response()
}

async fn addresses(headers: HeaderMap) -> Response {
    match bad_api_key(&headers) {
        None => Json(json!([WALLET_ADDRESS, "9gAnotherAddressOfTheSameWallet"])).into_response(),
        Some(refusal) => refusal,
    }
}

async fn by_id(State(s): State<Arc<StandIn>>, Path(id): Path<String>) -> Response {
    match s.state.lock().unwrap().confirmed.get(&id) {
        Some(tx) => Json(tx.clone()).into_response(),
        None => api_error(StatusCode::NOT_FOUND, "not-found", format!("Transaction {id} not found")),
    }
}

async fn unconfirmed_by_id(State(s): State<Arc<StandIn>>, Path(id): Path<String>) -> Response {
    match s.state.lock().unwrap().mempool.get(&id) {
        Some(tx) => Json(tx.clone()).into_response(),
        None => api_error(StatusCode::NOT_FOUND, "not-found", None),
    }
}

/// Counts every request and answers 503 while `unavailable` is above zero.
async fn gate(State(s): State<Arc<StandIn>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = if path.starts_with("/wallet/transaction/send") {
        "send"
    } else if path.starts_with("/wallet/addresses") {
        "addresses"
    } else if path.starts_with("/blockchain/transaction/byId/") {
        "byId"
    } else {
        "unconfirmed"
    };
    *s.calls.lock().unwrap().entry(route).or_default() += 1;
    if s.unavailable.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "service-unavailable", "node is syncing".to_string());
    }
    next.run(req).await
}

async fn start() -> (Arc<StandIn>, String) {
    let s = Arc::new(StandIn::default());
    let app = Router::new()
        .route("/wallet/transaction/send", post(send))
        .route("/wallet/addresses", get(addresses))
        .route("/blockchain/transaction/byId/{id}", get(by_id))
        .route("/transactions/unconfirmed/byTransactionId/{id}", get(unconfirmed_by_id))
        .layer(middleware::from_fn_with_state(s.clone(), gate))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (s, format!("http://{addr}/"))
}

fn hash(b: u8) -> [u8; 32] {
    [b; 32]
}

#[tokio::test]
async fn anchor_then_verify() {
    let (s, base) = start().await;
    let ergo = ErgoAnchor::new(base, API_KEY);
    let r = ergo.anchor(355, hash(1)).await.unwrap();

    // What reached the node: the RequestsHolder, paying the wallet's first address.
    let sent = s.state.lock().unwrap().sent.clone();
    assert_eq!(sent.len(), 1);
    let req = &sent[0]["requests"][0];
    assert_eq!(req["address"], WALLET_ADDRESS);
    assert_eq!(req["value"], 1_000_000);
    assert_eq!(req["registers"]["R4"], format!("0e20{}", "01".repeat(32)));
    assert_eq!(req["registers"]["R5"], "05c605");
    assert_eq!(sent[0]["fee"], 1_000_000);
    assert_eq!(r.tx_id, hex::encode(Sha256::digest(serde_json::to_vec(&sent[0]).unwrap())));
    assert!(r.anchored_at > 1_700_000_000);

    let l = ergo.lookup(&r.tx_id).await.unwrap();
    assert_eq!(l.tx_id, r.tx_id);
    assert_eq!(l.settlement_hash, Some(hash(1)));
    assert_eq!(l.epoch, Some(355));
    assert_eq!((l.confirmations, l.inclusion_height), (1, Some(HEIGHT)));
    assert!(verify(&l, &hash(1)));
    assert!(!verify(&l, &hash(2)));
    // Upper-case ids name the same transaction.
    assert_eq!(ergo.lookup(&r.tx_id.to_uppercase()).await.unwrap(), l);

    // A second anchor reuses the wallet address it found.
    let r2 = anchor_with_retry(&ergo, 356, hash(2), 3, Duration::from_millis(1)).await.unwrap();
    assert_ne!(r2.tx_id, r.tx_id);
    assert_eq!(s.calls("addresses"), 1);
    assert!(verify(&ergo.lookup(&r2.tx_id).await.unwrap(), &hash(2)));
}

#[tokio::test]
async fn explicit_pay_to_address_value_and_fee() {
    let (s, base) = start().await;
    let mut ergo = ErgoAnchor::new(base, API_KEY);
    ergo.pay_to_address = Some(WALLET_ADDRESS.into());
    ergo.value_nanoerg = 2_000_000;
    ergo.fee = 1_100_000;
    let r = ergo.anchor(0, hash(3)).await.unwrap();
    assert_eq!(s.calls("addresses"), 0);
    let sent = s.state.lock().unwrap().sent.clone();
    assert_eq!(sent[0]["requests"][0]["value"], 2_000_000);
    assert_eq!(sent[0]["requests"][0]["registers"]["R5"], "0500");
    assert_eq!(sent[0]["fee"], 1_100_000);
    assert_eq!(ergo.lookup(&r.tx_id).await.unwrap().epoch, Some(0));
}

#[tokio::test]
async fn wrong_r4_is_detected() {
    let (s, base) = start().await;
    let ergo = ErgoAnchor::new(base, API_KEY);
    let r = ergo.anchor(7, hash(1)).await.unwrap();
    assert!(verify(&ergo.lookup(&r.tx_id).await.unwrap(), &hash(1)));

    // The transaction carries another hash.
    s.set_r4(&r.tx_id, &encode_r4(&hash(9)));
    let l = ergo.lookup(&r.tx_id).await.unwrap();
    assert_eq!(l.settlement_hash, Some(hash(9)));
    assert!(!verify(&l, &hash(1)));

    // R4 that is not exactly a 32-byte Coll[Byte] is no hash at all.
    for bad in [format!("0e1f{}", "01".repeat(31)), format!("0e21{}", "01".repeat(33)), format!("0e20{}00", "01".repeat(32)), encode_long(7)] {
        s.set_r4(&r.tx_id, &bad);
        let l = ergo.lookup(&r.tx_id).await.unwrap();
        assert_eq!(l.settlement_hash, None, "{bad}");
        assert!(!verify(&l, &hash(1)));
    }
}

#[tokio::test]
async fn unreachable_node_is_retried_with_backoff() {
    let (s, base) = start().await;
    let mut ergo = ErgoAnchor::new(base, API_KEY);
    ergo.pay_to_address = Some(WALLET_ADDRESS.into());
    s.unavailable.store(3, Ordering::SeqCst);

    assert!(matches!(ergo.anchor(1, hash(1)).await, Err(AnchorError::Unreachable(_))));
    s.unavailable.store(3, Ordering::SeqCst);
    let base_delay = Duration::from_millis(20);
    let t = Instant::now();
    let r = anchor_with_retry(&ergo, 1, hash(1), 5, base_delay).await.unwrap();
    // 20 + 40 + 80 ms of backoff before the fourth attempt got through.
    assert!(t.elapsed() >= Duration::from_millis(140), "{:?}", t.elapsed());
    assert_eq!(s.calls("send"), 1 + 4);
    assert_eq!(s.state.lock().unwrap().sent.len(), 1);
    assert!(verify(&ergo.lookup(&r.tx_id).await.unwrap(), &hash(1)));

    // Attempts run out: the last Unreachable comes back.
    s.unavailable.store(100, Ordering::SeqCst);
    let e = anchor_with_retry(&ergo, 2, hash(2), 3, Duration::from_millis(1)).await.unwrap_err();
    assert!(matches!(e, AnchorError::Unreachable(ref m) if m.contains("service-unavailable")), "{e:?}");
    assert_eq!(s.calls("send"), 5 + 3);
    // Look-ups say so too.
    assert!(matches!(ergo.lookup(&r.tx_id).await, Err(AnchorError::Unreachable(_))));
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let ergo = ErgoAnchor::new(format!("http://{addr}"), API_KEY);
    let t = Instant::now();
    let e = anchor_with_retry(&ergo, 1, hash(1), 3, Duration::from_millis(10)).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert!(matches!(ergo.lookup(&"ab".repeat(32)).await, Err(AnchorError::Unreachable(_))));
}

#[tokio::test]
async fn wrong_api_key_is_rejected_and_not_retried() {
    let (s, base) = start().await;
    let mut ergo = ErgoAnchor::new(base.clone(), "not-the-key");
    ergo.pay_to_address = Some(WALLET_ADDRESS.into());
    let e = anchor_with_retry(&ergo, 1, hash(1), 5, Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(e, AnchorError::Rejected("Forbidden: Api key is not valid".into()));
    assert!(!e.is_retryable());
    assert_eq!(s.calls("send"), 1);
    assert!(s.state.lock().unwrap().sent.is_empty());

    // Without an explicit address the key is needed for /wallet/addresses already.
    let ergo = ErgoAnchor::new(base, "not-the-key");
    assert!(matches!(anchor_with_retry(&ergo, 1, hash(1), 5, Duration::from_millis(50)).await, Err(AnchorError::Rejected(_))));
    assert_eq!((s.calls("addresses"), s.calls("send")), (1, 1));
}

#[tokio::test]
async fn invalid_request_is_rejected_with_the_ergo_reason() {
    let (s, base) = start().await;
    let mut ergo = ErgoAnchor::new(base, API_KEY);
    ergo.value_nanoerg = 10;
    let e = anchor_with_retry(&ergo, 1, hash(1), 5, Duration::from_millis(50)).await.unwrap_err();
    match e {
        AnchorError::Rejected(m) => assert!(m.starts_with("bad.request: Minimal ERG value not met"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.calls("send"), 1);
}

#[tokio::test]
async fn unknown_transaction_is_not_found() {
    let (s, base) = start().await;
    let ergo = ErgoAnchor::new(base, API_KEY);
    assert_eq!(ergo.lookup(&"cd".repeat(32)).await, Err(AnchorError::NotFound));
    assert_eq!((s.calls("byId"), s.calls("unconfirmed")), (1, 1));
    // Not a transaction id at all: never sent.
    for bad in ["", "xyz", "../wallet/addresses", &"cd".repeat(33)] {
        assert_eq!(ergo.lookup(bad).await, Err(AnchorError::NotFound), "{bad}");
    }
    assert_eq!((s.calls("byId"), s.calls("unconfirmed")), (1, 1));
}

#[tokio::test]
async fn mempool_transaction_has_zero_confirmations() {
    let (s, base) = start().await;
    s.state.lock().unwrap().to_mempool = true;
    let ergo = ErgoAnchor::new(base, API_KEY);
    let r = ergo.anchor(42, hash(5)).await.unwrap();

    let l = ergo.lookup(&r.tx_id).await.unwrap();
    assert_eq!((l.confirmations, l.inclusion_height), (0, None));
    assert_eq!((l.settlement_hash, l.epoch), (Some(hash(5)), Some(42)));
    assert!(verify(&l, &hash(5)));
    assert_eq!((s.calls("byId"), s.calls("unconfirmed")), (1, 1));

    s.mine(&r.tx_id, 6);
    let l = ergo.lookup(&r.tx_id).await.unwrap();
    assert_eq!((l.confirmations, l.inclusion_height), (6, Some(HEIGHT - 5)));
    assert!(verify(&l, &hash(5)));
}

#[tokio::test]
async fn null_anchor_anchors_nothing() {
    let anchor: Arc<dyn Anchor> = Arc::new(NullAnchor);
    assert_eq!(anchor_with_retry(&*anchor, 1, hash(1), 5, Duration::from_secs(10)).await, Err(AnchorError::Disabled));
    assert_eq!(anchor.lookup(&"ab".repeat(32)).await, Err(AnchorError::Disabled));
}

/// The epochs (R5) of every anchoring transaction the stand-in accepted, in order.
fn anchored_epochs(s: &StandIn) -> Vec<i64> {
    let sent = s.state.lock().unwrap().sent.clone();
    sent.iter()
        .map(|b| rustchain_node::anchoring::ergo::decode_long(b["requests"][0]["registers"]["R5"].as_str().unwrap()).unwrap())
        .collect()
}

fn assert_each_once(epochs: &[i64]) {
    let mut sorted = epochs.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), epochs.len(), "an epoch was anchored twice: {epochs:?}");
}

#[test]
fn the_primary_anchors_each_certified_hash_once_and_any_node_verifies_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (s, base) = rt.block_on(start());
    // The Ergo node is down for the first requests: the primary retries with backoff.
    s.unavailable.store(2, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("ergo.key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    let fast = ["--gossip-preset", "tiny", "--gossip-heartbeat-ms", "200"];
    let mut primary = TestNode::start(
        &dir.path().join("primary"),
        &[&fast[..], &["--role", "primary", "--ergo-url", &base, "--ergo-api-key-file", key_file]].concat(),
    );
    // A relay with the same Ergo node: it can verify, and it never anchors.
    let relay = TestNode::start(
        &dir.path().join("relay"),
        &[&fast[..], &["--bootnodes", &primary.multiaddr(), "--ergo-url", &base, "--ergo-api-key-file", key_file]].concat(),
    );
    relay.wait_until("/api/p2p/status", 30, "relay connected", |v| v["total_peers"].as_u64() >= Some(1));

    let miner = Miner::new(77, "anchor-wallet", "G4", "");
    let (st, v) = primary.post("/attest/submit", &miner.body(&primary.challenge(None)));
    assert_eq!(st, 200, "{v}");
    let epoch = v["epoch"].as_u64().unwrap();

    // Not certified yet: nothing to anchor, and the answer says why.
    let (st, v) = primary.get(&format!("/api/epoch/{epoch}/anchor"));
    assert_eq!((st, v["code"].as_str()), (404, Some("NOT_CERTIFIED")), "{v}");

    let path = format!("/api/epoch/{epoch}/anchor");
    let a = primary.wait_until(&path, 60, "anchor of the attested epoch", |v| v["verified"] == json!(true));
    let tx_id = a["ergo_tx_id"].as_str().unwrap().to_owned();
    let cert = primary.get(&format!("/api/epoch/{epoch}/settlement")).1;
    assert_eq!(cert["status"], "certified");
    assert_eq!(a["settlement_hash"], cert["certificate"]["settlement_hash"]);
    assert_eq!(a["confirmations"], 1);
    assert!(a["anchored_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(primary.log_text().contains("anchoring failed; retrying"), "the outage shows in the log");
    // What went to Ergo: R4 is the certified hash, R5 the epoch.
    let sent = s.state.lock().unwrap().sent.clone();
    let ours = sent.iter().find(|b| b["requests"][0]["registers"]["R5"] == json!(encode_long(epoch as i64))).expect("sent");
    assert_eq!(ours["requests"][0]["registers"]["R4"], json!(format!("0e20{}", cert["certificate"]["settlement_hash"].as_str().unwrap())));

    // The relay verifies the primary's transaction against its own certificate.
    relay.wait_until(&format!("/api/epoch/{epoch}/settlement"), 60, "relay certified", |v| v["status"] == "certified");
    let (st, v) = relay.get(&path);
    assert_eq!((st, v["code"].as_str()), (404, Some("NOT_ANCHORED")), "the relay anchors nothing itself: {v}");
    let (st, v) = relay.get(&format!("{path}?tx_id={tx_id}"));
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["verified"].clone(), v["confirmations"].clone()), (json!(true), json!(1)), "{v}");
    let (st, v) = relay.get(&format!("{path}?tx_id=nothex"));
    assert_eq!((st, v["code"].as_str(), v["ok"].clone()), (400, Some("INVALID_TX_ID"), json!(false)), "{v}");

    // `rustchain verify` checks the anchor itself, on the Ergo node it is given.
    let e = epoch.to_string();
    let verify = |extra: &[&str]| common::run_verify(&primary.url, &[&["--from", &e, "--to", &e], extra].concat());
    let (code, out) = verify(&["--ergo-url", &base]);
    assert_eq!(code, 0, "{out}");
    let row: Vec<&str> = out.lines().find(|l| l.starts_with("Ergo anchor")).unwrap().split_whitespace().rev().take(3).collect();
    assert_eq!(row, ["0", "0", "1"], "one anchor checked and verified, none failed or unchecked: {out}");

    // A transaction whose R4 is another hash does not verify.
    s.set_r4(&tx_id, &encode_r4(&hash(9)));
    let (_, v) = relay.get(&format!("{path}?tx_id={tx_id}"));
    assert_eq!(v["verified"], json!(false), "{v}");
    assert_eq!(v["onchain"]["settlement_hash"], json!(hex::encode(hash(9))));
    let (code, out) = verify(&["--ergo-url", &base]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("MISMATCH epoch {epoch} anchor {tx_id} (R4, R5): expected {}", cert["certificate"]["settlement_hash"].as_str().unwrap())), "{out}");

    // kill -9 and restart: epochs already anchored are not sent again; later ones still are.
    let before = anchored_epochs(&s);
    assert_each_once(&before);
    primary.kill9();
    primary.restart();
    let last = *before.iter().max().unwrap() as u64;
    primary.wait_until(&format!("/api/epoch/{}/anchor", last + 1), 60, "anchor after restart", |v| v["verified"] == json!(true));
    let after = anchored_epochs(&s);
    assert_each_once(&after);
    assert!(after.contains(&(epoch as i64)));
    // Only the primary ever anchored: every transaction it sent is recorded by it.
    for e in &after {
        let (st, v) = primary.get(&format!("/api/epoch/{e}/anchor"));
        assert_eq!(st, 200, "epoch {e}: {v}");
    }
    assert!(primary.metric("rustchain_anchors_total{status=\"ok\"}").unwrap() >= 1.0);
}
