//! `rustchain verify` against a live testnet on 127.0.0.1 (3 validators and an archive, real
//! binaries): it verifies the honest history (miners enrolled, a transfer applied) on every node
//! with exit 0; through a proxy that alters one thing of the node's answers at a time (a share, a
//! weight, a transfer's result, a certificate signature, the chain link, a record's bytes, or drops
//! a record) it exits 1 and names the epoch and the field. Also the history API's paging, its
//! refusals, and its conditional GETs.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::{Miner, TestNode, attest_in_one_epoch, certified, free_port, funded_sender, init_testnet, judged, order, start_testnet};
use protocol::crypto::Keypair;
use serde_json::Value;

/// What the proxy alters.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tamper {
    Nothing,
    /// `record.entries[0].share_urtc` + 1 in the settlement of this epoch.
    Share(u64),
    /// `record.entries[0].weight` + 1.
    Weight(u64),
    /// `record.transfers[0].result` becomes `stale_nonce`.
    TransferResult(u64),
    /// The first vote's signature in the certificate has one bit flipped.
    Signature(u64),
    /// `record.prev_settlement_hash` becomes another hash.
    Link(u64),
    /// One byte of the first attestation record's CBOR is changed.
    RecordBytes(u64),
    /// The first attestation record of the epoch's registry is left out.
    DropRecord(u64),
    /// The transfer record of the epoch's registry is left out.
    DropTransfer(u64),
}

struct Proxy {
    upstream: String,
    tamper: Mutex<Tamper>,
    http: reqwest::Client,
}

async fn forward(State(p): State<Arc<Proxy>>, uri: Uri) -> Response {
    let path = uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
    let r = p.http.get(format!("{}{path}", p.upstream)).send().await.unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let mut v: Value = r.json().await.unwrap();
    let tamper = *p.tamper.lock().unwrap();
    let settlement = |e: u64| uri.path() == format!("/api/epoch/{e}/settlement");
    let records = |e: u64| uri.path() == format!("/api/epochs/{e}/records");
    match tamper {
        Tamper::Share(e) if settlement(e) => bump(&mut v["record"]["entries"][0]["share_urtc"]),
        Tamper::Weight(e) if settlement(e) => bump(&mut v["record"]["entries"][0]["weight"]),
        Tamper::TransferResult(e) if settlement(e) => v["record"]["transfers"][0]["result"] = "stale_nonce".into(),
        Tamper::Signature(e) if settlement(e) => flip_hex(&mut v["certificate"]["votes"][0]["signature"], 5),
        Tamper::Link(e) if settlement(e) => v["record"]["prev_settlement_hash"] = "11".repeat(32).into(),
        Tamper::RecordBytes(e) if records(e) => {
            let list = v["records"].as_array_mut().unwrap();
            let r = list.iter_mut().find(|r| r["kind"] == "attestation").unwrap();
            let len = r["cbor"].as_str().unwrap().len();
            flip_hex(&mut r["cbor"], len - 3);
        }
        Tamper::DropRecord(e) if records(e) => {
            let list = v["records"].as_array_mut().unwrap();
            let i = list.iter().position(|r| r["kind"] == "attestation").unwrap();
            list.remove(i);
        }
        Tamper::DropTransfer(e) if records(e) => v["records"].as_array_mut().unwrap().retain(|r| r["kind"] != "transfer"),
        _ => {}
    }
    (status, axum::Json(v)).into_response()
}

fn bump(v: &mut Value) {
    *v = Value::from(v.as_u64().unwrap() + 1);
}

/// Flip the lowest bit of the hex digit at `at`.
fn flip_hex(v: &mut Value, at: usize) {
    let mut s: Vec<u8> = v.as_str().unwrap().bytes().collect();
    let d = u8::from_str_radix(std::str::from_utf8(&s[at..=at]).unwrap(), 16).unwrap() ^ 1;
    s[at] = format!("{d:x}").as_bytes()[0];
    *v = Value::String(String::from_utf8(s).unwrap());
}

/// `rustchain verify` of `url` against the testnet's chain spec.
fn verify(url: &str, spec: &std::path::Path, extra: &[&str]) -> (i32, String) {
    common::run_verify(url, &[&["--spec", spec.to_str().unwrap()], extra].concat())
}

#[test]
fn verify_checks_a_live_testnet_and_names_every_altered_field() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 3, 1);
    let spec = dir.path().join("spec.toml");
    // Three validators and an archive (node 3, `testnet init` makes the last non-validator one).
    let nodes = start_testnet(dir.path(), &[0, 1, 2, 3]);
    // An epoch with three miners, a funded wallet, and a transfer from it.
    let miners: Vec<Miner> = (0..3).map(|i| Miner::new(30 + i, &format!("verify-miner-{i}"), "G4", &format!("VS{i}"))).collect();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let mined = attest_in_one_epoch(&refs, &miners);
    certified(&nodes[0], mined, 40);
    let (sender, _) = funded_sender(&nodes, 61, "verify-box");
    let receiver = Keypair::from_seed(&[62; 32]).address();
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &order(&receiver, 0.5, 1).sign(&sender));
    assert_eq!(s, 200, "{v}");
    let tx = v["tx_hash"].as_str().unwrap().to_owned();
    let t = judged(&nodes[0], &tx, 60);
    assert_eq!(t["status"], "confirmed", "{t}");
    let moved = t["epoch"].as_u64().unwrap();
    certified(&nodes[0], moved, 40);
    let settled = nodes[0].get(&format!("/api/epoch/{mined}/settlement")).1;
    let first_miner = settled["record"]["entries"][0]["miner"].as_str().unwrap().to_owned();

    // The honest history verifies, on every validator and on the archive.
    for n in &nodes {
        let (code, out) = verify(&n.url, &spec, &["--to", &moved.to_string()]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("all verified"), "{out}");
    }
    // The history API pages: every epoch exactly once, in order, whatever the page size.
    let all: Vec<u64> = {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let (s, page) = nodes[1].get(&format!("/api/epochs?order=asc&limit=2&cursor={cursor}"));
            assert_eq!(s, 200, "{page}");
            out.extend(page["epochs"].as_array().unwrap().iter().map(|e| e["epoch"].as_u64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        out
    };
    assert!(all.windows(2).all(|w| w[0] + 1 == w[1]) && all.contains(&mined) && all.contains(&moved), "{all:?}");
    // The epoch's miners and transfers, as its settlement lists them, with the claims behind them.
    let (s, m) = nodes[1].get(&format!("/api/epochs/{mined}/miners?limit=2"));
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["miners"][0]["miner"], "verify-miner-0", "{m}");
    assert_eq!((m["miners"][0]["arch"].as_str(), m["miners"][0]["fingerprint_passed"].as_bool()), (Some("G4"), Some(true)), "{m}");
    let rest = nodes[1].get(&format!("/api/epochs/{mined}/miners?cursor={}", m["next_cursor"].as_str().unwrap())).1;
    assert_eq!(rest["miners"].as_array().unwrap().len(), 1, "three miners in pages of two: {rest}");
    assert!(rest["next_cursor"].is_null(), "{rest}");
    let t = nodes[1].get(&format!("/api/epochs/{moved}/transfers")).1;
    assert_eq!((t["transfers"][0]["tx_hash"].as_str(), t["transfers"][0]["result"].as_str()), (Some(tx.as_str()), Some("applied")), "{t}");
    // A miner's page: its epochs (the index written with each enrolling claim) and its rewards.
    let share = settled["record"]["entries"][0]["share_urtc"].as_u64().unwrap();
    let (s, o) = nodes[1].get(&format!("/api/miner/{first_miner}"));
    assert_eq!(s, 200, "{o}");
    assert_eq!((o["overview"]["first_epoch"].as_u64(), o["overview"]["epochs_enrolled"].as_u64(), o["overview"]["total_earned_urtc"].as_u64()), (Some(mined), Some(1), Some(share)), "{o}");
    let h = nodes[1].get(&format!("/api/miner/{first_miner}/history")).1;
    assert_eq!((h["epochs"][0]["epoch"].as_u64(), h["epochs"][0]["reward_urtc"].as_u64(), h["epochs"][0]["arch"].as_str()), (Some(mined), Some(share), Some("G4")), "{h}");
    let (s, v) = nodes[1].get("/api/miner/nobody-here");
    assert_eq!((s, v["code"].as_str()), (404, Some("UNKNOWN_MINER")), "{v}");
    assert_eq!(nodes[1].get("/api/miner/%3Cscript%3E/history").0, 400);

    // Search: each kind of thing a person pastes, and where it leads.
    let record_id = nodes[1].get(&format!("/api/epochs/{mined}/records")).1["records"][0]["id"].as_str().unwrap().to_owned();
    let certified_hash = settled["certificate"]["settlement_hash"].as_str().unwrap().to_owned();
    for (q, kind, href) in [
        ("verify-miner-1".to_owned(), "miner", "/api/miner/verify-miner-1".to_owned()),
        (sender.address(), "wallet", format!("/wallet/balance?address={}", sender.address())),
        (mined.to_string(), "epoch", format!("/api/epochs/{mined}")),
        (tx.clone(), "transfer", format!("/wallet/tx/{tx}")),
        (certified_hash.to_uppercase(), "settlement", format!("/api/epoch/{mined}/settlement")),
        (record_id.clone(), "attestation", format!("/api/attestation/{record_id}")),
    ] {
        let (s, v) = nodes[1].get(&format!("/api/search?q={q}"));
        assert_eq!((s, v["results"][0]["kind"].as_str(), v["results"][0]["href"].as_str()), (200, Some(kind), Some(href.as_str())), "{q}: {v}");
    }
    let (s, v) = nodes[1].get("/api/search?q=%3Cscript%3E");
    assert_eq!((s, v["results"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
    // Not ASCII where an address has its prefix: asked about, not a crash.
    let (s, v) = nodes[1].get(&format!("/api/search?q=rt%C3%A9{}", "a".repeat(39)));
    assert_eq!((s, v["results"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
    let (s, v) = nodes[1].get(&format!("/api/search?q={}", "ab".repeat(32)));
    assert_eq!((s, v["results"].as_array().map(Vec::len)), (200, Some(0)), "an unknown hash is nothing: {v}");
    assert_eq!(nodes[1].get("/api/search?q=").0, 400);
    let (s, v) = nodes[1].get("/api/anchors");
    assert_eq!((s, v["anchors"].as_array().map(Vec::len)), (200, Some(0)), "no Ergo node here: {v}");

    for bad in ["/api/epochs?limit=0", "/api/epochs?limit=x", "/api/epochs?cursor=abc", "/api/epochs?order=up", "/api/epochs/1/records?cursor=zz", "/api/epochs/99999999/records",
                "/api/epochs/1/miners?cursor=%3Cscript%3E", "/api/epochs/1/transfers?cursor=-1", "/api/epochs/99999999/miners"] {
        let (s, v) = nodes[1].get(bad);
        assert!((400..500).contains(&s) && v["ok"] == false && v["code"].is_string(), "{bad}: {s} {v}");
    }

    // Conditional GETs: a strong ETag (the answer's hash); 304 with no body when it matches.
    let client = reqwest::blocking::Client::new();
    for path in [format!("/api/epochs/{mined}"), format!("/api/epochs/{mined}/records"), format!("/api/epoch/{mined}/settlement")] {
        let url = format!("{}{path}", nodes[1].url);
        let r = client.get(&url).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert!(tag.len() == 34 && tag.starts_with('"') && r.headers().contains_key("cache-control"), "{path}: {tag}");
        let again = client.get(&url).header("if-none-match", &tag).send().unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().unwrap().is_empty());
        let other = client.get(&url).header("if-none-match", "\"0123\"").send().unwrap();
        assert_eq!(other.status(), 200, "{path}");
    }

    // A proxy in front of node 0 that lies about one thing at a time.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let proxy = Arc::new(Proxy { upstream: nodes[0].url.clone(), tamper: Mutex::new(Tamper::Nothing), http: reqwest::Client::new() });
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    let url = format!("http://127.0.0.1:{port}");
    let to = moved.to_string();
    let (code, out) = verify(&url, &spec, &["--to", &to]);
    assert_eq!(code, 0, "through the proxy, unaltered: {out}");
    let cases = [
        (Tamper::Share(mined), format!("MISMATCH epoch {mined} entries[{first_miner}].share_urtc")),
        (Tamper::Weight(mined), format!("MISMATCH epoch {mined} entries[{first_miner}].weight")),
        (Tamper::TransferResult(moved), format!("MISMATCH epoch {moved} transfers[{tx}].result: expected applied, found stale_nonce")),
        (Tamper::Signature(mined), format!("MISMATCH epoch {mined} certificate")),
        (Tamper::Link(moved), format!("MISMATCH epoch {moved} prev_settlement_hash")),
        (Tamper::RecordBytes(mined), format!("MISMATCH epoch {mined} record ")),
        (Tamper::DropRecord(mined), format!("MISMATCH epoch {mined} registry digest")),
    ];
    for (tamper, expected) in cases {
        *proxy.tamper.lock().unwrap() = tamper;
        let (code, out) = verify(&url, &spec, &["--to", &to]);
        assert_eq!(code, 1, "{tamper:?}: {out}");
        assert!(out.contains(&expected), "{tamper:?}: expected {expected:?} in\n{out}");
    }
    // A dropped record also shows as the miner it enrolled missing.
    assert!(verify(&url, &spec, &["--to", &to]).1.contains(&format!("MISMATCH epoch {mined} entries[")));

    // From a later epoch on (--from): the epochs before build the state from their certified
    // records alone. Honest, it verifies; without the transfer's record, from its epoch on, the
    // transfer is not re-judged from the certified record alone: not a pass.
    let received = (0..=moved)
        .find(|e| nodes[0].get(&format!("/api/epochs/{e}/records")).1["records"].as_array().is_some_and(|l| l.iter().any(|r| r["kind"] == "transfer")))
        .expect("the transfer's record is in some epoch's registry");
    let from = received.to_string();
    *proxy.tamper.lock().unwrap() = Tamper::Nothing;
    let (code, out) = verify(&url, &spec, &["--from", &from, "--to", &to]);
    assert_eq!(code, 0, "{out}");
    *proxy.tamper.lock().unwrap() = Tamper::DropTransfer(received);
    let (code, out) = verify(&url, &spec, &["--from", &from, "--to", &to]);
    assert_ne!(code, 0, "a dropped transfer record must not pass: {out}");
    let (code, out) = verify(&url, &spec, &["--to", &to]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("epoch {received}")), "the epoch is named: {out}");

    // Nothing to check it against: a node that is not there is "could not check" (2), not a pass.
    let (code, _) = verify(&format!("http://127.0.0.1:{}", free_port()), &spec, &[]);
    assert_eq!(code, 2);
}
