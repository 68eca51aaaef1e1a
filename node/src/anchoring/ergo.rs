//! Anchoring certified settlement hashes on Ergo, so anyone can check them outside the mesh.
//!
//! [`Anchor`] is the interface; [`NullAnchor`] (the default) records nothing external, and
//! [`ErgoAnchor`] talks to an Ergo node's REST API: `POST /wallet/transaction/send` (header
//! `api_key`) pays a small box to the node's own wallet with the settlement hash in register R4
//! (a `Coll[Byte]` constant, `0e20` + 64 hex) and the epoch in R5 (a `Long` constant, `05` +
//! ZigZag VLQ). Look-up reads `GET /blockchain/transaction/byId/{txId}` (needs
//! `ergo.node.extraIndex = true` on the Ergo node) and falls back to the mempool,
//! `GET /transactions/unconfirmed/byTransactionId/{txId}`.
//!
//! Only certified hashes are to be anchored, once each, by the primary: that policy belongs to the
//! caller. [`anchor_with_retry`] retries only when the Ergo node is unreachable (network error or
//! 5xx); a refusal is final. [`verify`] compares a looked-up R4 with a node's own certified hash.
//!
//! The HTTP client has no TLS: point `base_url` at a plain-HTTP Ergo node (usually local, port
//! 9053 on mainnet, 9052 on testnet).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The longest wait between two attempts of [`anchor_with_retry`].
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What a successful anchoring returns: the Ergo transaction id and when (unix s) it was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorReceipt {
    pub tx_id: String,
    pub anchored_at: u64,
}

/// What a look-up of an anchoring transaction found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorLookup {
    pub tx_id: String,
    /// R4 of the first output whose R4 is exactly a 32-byte `Coll[Byte]` (`0e20` + 64 hex).
    pub settlement_hash: Option<[u8; 32]>,
    /// R5 of that same output, if it is a non-negative `Long` constant.
    pub epoch: Option<u64>,
    /// Confirmations of the block holding the transaction; 0 while it is in the mempool.
    pub confirmations: u64,
    /// Height of the block holding the transaction; `None` while it is in the mempool.
    pub inclusion_height: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// No anchoring backend is configured: the epoch is simply "not anchored".
    #[error("anchoring is disabled")]
    Disabled,
    /// The Ergo node refused the request (4xx `ApiError`: "reason: detail"). Never retried.
    #[error("the Ergo node refused: {0}")]
    Rejected(String),
    /// The Ergo node could not be reached or failed (network error, 5xx). Worth retrying.
    #[error("the Ergo node is unreachable: {0}")]
    Unreachable(String),
    /// Neither the indexed chain nor the mempool knows the transaction.
    #[error("transaction not found on the Ergo node")]
    NotFound,
    /// The Ergo node answered 2xx with something that is not what its API specifies.
    #[error("unexpected answer from the Ergo node: {0}")]
    BadResponse(String),
    /// The request could not be built (bad base URL, an https URL without TLS support, ...).
    #[error("anchoring is misconfigured: {0}")]
    Config(String),
}

impl AnchorError {
    /// Only an unreachable node is worth another attempt.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AnchorError::Unreachable(_))
    }
}

/// Somewhere to anchor settlement hashes. Boxed futures keep it usable as `&dyn Anchor` /
/// `Arc<dyn Anchor>`.
pub trait Anchor: Send + Sync {
    /// Record `settlement_hash` for `epoch` externally.
    fn anchor(&self, epoch: u64, settlement_hash: [u8; 32]) -> BoxFuture<'_, Result<AnchorReceipt, AnchorError>>;
    /// Fetch an anchoring transaction by id and decode its registers.
    fn lookup<'a>(&'a self, tx_id: &'a str) -> BoxFuture<'a, Result<AnchorLookup, AnchorError>>;
}

impl<T: Anchor + ?Sized> Anchor for Arc<T> {
    fn anchor(&self, epoch: u64, settlement_hash: [u8; 32]) -> BoxFuture<'_, Result<AnchorReceipt, AnchorError>> {
        (**self).anchor(epoch, settlement_hash)
    }
    fn lookup<'a>(&'a self, tx_id: &'a str) -> BoxFuture<'a, Result<AnchorLookup, AnchorError>> {
        (**self).lookup(tx_id)
    }
}

/// The default: anchors nothing; every call is [`AnchorError::Disabled`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NullAnchor;

impl Anchor for NullAnchor {
    fn anchor(&self, _epoch: u64, _settlement_hash: [u8; 32]) -> BoxFuture<'_, Result<AnchorReceipt, AnchorError>> {
        Box::pin(async { Err(AnchorError::Disabled) })
    }
    fn lookup<'a>(&'a self, _tx_id: &'a str) -> BoxFuture<'a, Result<AnchorLookup, AnchorError>> {
        Box::pin(async { Err(AnchorError::Disabled) })
    }
}

/// Anchors through an Ergo node's wallet. Build with [`ErgoAnchor::new`] and adjust the fields.
#[derive(Clone, Debug)]
pub struct ErgoAnchor {
    /// e.g. `http://127.0.0.1:9053` (a trailing `/` is ignored).
    pub base_url: String,
    /// The plaintext API key (the Ergo node stores its Blake2b256 hash).
    pub api_key: String,
    /// Where the anchoring box goes; `None`: the first of `GET /wallet/addresses`.
    pub pay_to_address: Option<String>,
    /// Value of the anchoring box in nanoERG (must cover the minimum box value).
    pub value_nanoerg: u64,
    /// Transaction fee in nanoERG.
    pub fee: u64,
    pub client: reqwest::Client,
    /// The wallet address found by `GET /wallet/addresses`, asked once.
    resolved_address: Arc<tokio::sync::OnceCell<String>>,
}

impl ErgoAnchor {
    pub const DEFAULT_VALUE_NANOERG: u64 = 1_000_000;
    pub const DEFAULT_FEE: u64 = 1_000_000;

    /// A client for the Ergo node at `base_url`, paying 0.001 ERG to its own first wallet address
    /// with a 0.001 ERG fee, with a 10 s connect and 30 s request timeout.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        ErgoAnchor {
            base_url: base_url.into(),
            api_key: api_key.into(),
            pay_to_address: None,
            value_nanoerg: Self::DEFAULT_VALUE_NANOERG,
            fee: Self::DEFAULT_FEE,
            client,
            resolved_address: Arc::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    async fn address(&self) -> Result<String, AnchorError> {
        if let Some(a) = &self.pay_to_address {
            return Ok(a.clone());
        }
        self.resolved_address
            .get_or_try_init(|| async {
                let req = self.client.get(self.url("/wallet/addresses")).header("api_key", &self.api_key);
                let (status, body) = send(req).await?;
                let body = success(status, body)?;
                let list: Vec<String> = serde_json::from_slice(&body)
                    .map_err(|e| AnchorError::BadResponse(format!("/wallet/addresses is not a list of strings: {e}")))?;
                list.into_iter().next().ok_or_else(|| AnchorError::Rejected("the Ergo wallet has no addresses".into()))
            })
            .await
            .cloned()
    }

    /// The `RequestsHolder` body of `POST /wallet/transaction/send`.
    pub fn request_body(&self, address: &str, epoch: u64, settlement_hash: &[u8; 32]) -> Result<Value, AnchorError> {
        let epoch = i64::try_from(epoch).map_err(|_| AnchorError::Config(format!("epoch {epoch} does not fit an Ergo Long")))?;
        Ok(json!({
            "requests": [{
                "address": address,
                "value": self.value_nanoerg,
                "assets": [],
                "registers": {"R4": encode_r4(settlement_hash), "R5": encode_long(epoch)},
            }],
            "fee": self.fee,
            "inputsRaw": [],
            "dataInputsRaw": [],
        }))
    }

    async fn do_anchor(&self, epoch: u64, settlement_hash: [u8; 32]) -> Result<AnchorReceipt, AnchorError> {
        let address = self.address().await?;
        let body = self.request_body(&address, epoch, &settlement_hash)?;
        let req = self.client.post(self.url("/wallet/transaction/send")).header("api_key", &self.api_key).json(&body);
        let (status, resp) = send(req).await?;
        let resp = success(status, resp)?;
        let tx_id = match serde_json::from_slice::<Value>(&resp) {
            Ok(Value::String(id)) if is_tx_id(&id) => id.to_ascii_lowercase(),
            _ => {
                return Err(AnchorError::BadResponse(format!(
                    "expected a transaction id string, got {}",
                    String::from_utf8_lossy(&resp).chars().take(200).collect::<String>()
                )));
            }
        };
        Ok(AnchorReceipt { tx_id, anchored_at: now_unix() })
    }

    async fn do_lookup(&self, tx_id: &str) -> Result<AnchorLookup, AnchorError> {
        // Anything else cannot name a transaction (and must not reach the URL path).
        if !is_tx_id(tx_id) {
            return Err(AnchorError::NotFound);
        }
        let tx_id = tx_id.to_ascii_lowercase();
        let req = self.client.get(self.url(&format!("/blockchain/transaction/byId/{tx_id}")));
        let (status, body) = send(req).await?;
        if status != StatusCode::NOT_FOUND {
            return parse_transaction(&success(status, body)?, &tx_id, true);
        }
        let req = self.client.get(self.url(&format!("/transactions/unconfirmed/byTransactionId/{tx_id}")));
        let (status, body) = send(req).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(AnchorError::NotFound);
        }
        parse_transaction(&success(status, body)?, &tx_id, false)
    }
}

impl Anchor for ErgoAnchor {
    fn anchor(&self, epoch: u64, settlement_hash: [u8; 32]) -> BoxFuture<'_, Result<AnchorReceipt, AnchorError>> {
        Box::pin(self.do_anchor(epoch, settlement_hash))
    }
    fn lookup<'a>(&'a self, tx_id: &'a str) -> BoxFuture<'a, Result<AnchorLookup, AnchorError>> {
        Box::pin(self.do_lookup(tx_id))
    }
}

/// Anchor, retrying while the node is unreachable: up to `max_attempts` attempts (at least one),
/// waiting `base_delay × 2^n` (at most [`MAX_BACKOFF`]) after the n-th failure. Any other error is
/// returned at once.
pub async fn anchor_with_retry(
    anchor: &dyn Anchor,
    epoch: u64,
    settlement_hash: [u8; 32],
    max_attempts: u32,
    base_delay: Duration,
) -> Result<AnchorReceipt, AnchorError> {
    let attempts = max_attempts.max(1);
    let mut n = 0;
    loop {
        match anchor.anchor(epoch, settlement_hash).await {
            Err(e) if e.is_retryable() && n + 1 < attempts => {
                let delay = backoff_delay(base_delay, n);
                tracing::warn!(epoch, attempt = n + 1, of = attempts, ?delay, error = %e, "anchoring failed; retrying");
                tokio::time::sleep(delay).await;
                n += 1;
            }
            other => return other,
        }
    }
}

/// The wait after the `n`-th failed attempt (counting from 0): `base × 2^n`, at most [`MAX_BACKOFF`].
pub fn backoff_delay(base: Duration, n: u32) -> Duration {
    base.checked_mul(1u32.checked_shl(n).unwrap_or(u32::MAX)).map_or(MAX_BACKOFF, |d| d.min(MAX_BACKOFF))
}

/// Whether the looked-up transaction anchors `certified_hash` (its R4 equals it).
pub fn verify(lookup: &AnchorLookup, certified_hash: &[u8; 32]) -> bool {
    lookup.settlement_hash.as_ref() == Some(certified_hash)
}

/// R4: a 32-byte `Coll[Byte]` constant, `0e` (type) `20` (VLQ length 32) + the bytes, as hex.
pub fn encode_r4(hash: &[u8; 32]) -> String {
    format!("0e20{}", hex::encode(hash))
}

/// Strict inverse of [`encode_r4`]: exactly `0e20` followed by 64 hex digits.
pub fn decode_r4(value: &str) -> Option<[u8; 32]> {
    let rest = value.strip_prefix("0e20")?;
    if rest.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(rest, &mut out).ok()?;
    Some(out)
}

/// A `Long` constant: `05` (type) + the ZigZag-VLQ encoding of `v`, as hex.
pub fn encode_long(v: i64) -> String {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = vec![0x05u8];
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    hex::encode(out)
}

/// Strict inverse of [`encode_long`]: one `Long` constant and nothing after it, minimally encoded.
pub fn decode_long(value: &str) -> Option<i64> {
    let bytes = hex::decode(value).ok()?;
    let (&ty, vlq) = bytes.split_first()?;
    if ty != 0x05 || vlq.is_empty() || vlq.len() > 10 {
        return None;
    }
    let mut z: u64 = 0;
    for (i, &b) in vlq.iter().enumerate() {
        let last = i + 1 == vlq.len();
        if (b & 0x80 == 0) != last {
            return None;
        }
        let chunk = u64::from(b & 0x7f);
        if i == 9 && chunk > 1 {
            return None; // more than 64 bits
        }
        z |= chunk << (7 * i);
    }
    if vlq.len() > 1 && vlq[vlq.len() - 1] == 0 {
        return None; // not minimal
    }
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

/// Decode an Ergo transaction JSON (`IndexedErgoTransaction` when `confirmed`, else a mempool
/// `ErgoTransaction`) into an [`AnchorLookup`].
pub fn parse_transaction(body: &[u8], tx_id: &str, confirmed: bool) -> Result<AnchorLookup, AnchorError> {
    let bad = |m: &str| AnchorError::BadResponse(m.to_string());
    let v: Value = serde_json::from_slice(body).map_err(|e| AnchorError::BadResponse(format!("transaction is not JSON: {e}")))?;
    let id = v.get("id").and_then(Value::as_str).ok_or_else(|| bad("transaction has no id"))?;
    if !id.eq_ignore_ascii_case(tx_id) {
        return Err(AnchorError::BadResponse(format!("asked for transaction {tx_id}, got {id}")));
    }
    let outputs = v.get("outputs").and_then(Value::as_array).ok_or_else(|| bad("transaction has no outputs"))?;
    let anchored = outputs.iter().find_map(|o| {
        let regs = o.get("additionalRegisters")?;
        let hash = decode_r4(regs.get("R4")?.as_str()?)?;
        let epoch = regs.get("R5").and_then(Value::as_str).and_then(decode_long).and_then(|e| u64::try_from(e).ok());
        Some((hash, epoch))
    });
    let (confirmations, inclusion_height) = if confirmed {
        let c = v.get("numConfirmations").and_then(Value::as_u64).ok_or_else(|| bad("transaction has no numConfirmations"))?;
        (c, v.get("inclusionHeight").and_then(Value::as_u64))
    } else {
        (0, None)
    };
    Ok(AnchorLookup {
        tx_id: tx_id.to_ascii_lowercase(),
        settlement_hash: anchored.map(|a| a.0),
        epoch: anchored.and_then(|a| a.1),
        confirmations,
        inclusion_height,
    })
}

fn is_tx_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Send a request and read the whole answer; transport failures are `Unreachable`.
async fn send(req: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), AnchorError> {
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(transport_error)?;
    Ok((status, body.to_vec()))
}

fn transport_error(e: reqwest::Error) -> AnchorError {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_builder() { AnchorError::Config(msg) } else { AnchorError::Unreachable(msg) }
}

/// A 2xx body, or the error the status means: 5xx, 408 and 429 are `Unreachable` (transient),
/// other statuses `Rejected` with the `ApiError` reason (and detail).
fn success(status: StatusCode, body: Vec<u8>) -> Result<Vec<u8>, AnchorError> {
    if status.is_success() {
        return Ok(body);
    }
    let reason = api_error_reason(&body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        if text.is_empty() { status.to_string() } else { format!("{status}: {}", text.chars().take(200).collect::<String>()) }
    });
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Err(AnchorError::Unreachable(reason))
    } else {
        Err(AnchorError::Rejected(reason))
    }
}

/// `{"error": 400, "reason": "...", "detail": "..." | null}` -> "reason: detail" (or "reason").
fn api_error_reason(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let reason = v.get("reason")?.as_str()?;
    match v.get("detail").and_then(Value::as_str).filter(|d| !d.is_empty()) {
        Some(detail) => Some(format!("{reason}: {detail}")),
        None => Some(reason.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn r5_long_is_zigzag_vlq() {
        assert_eq!(encode_long(0), "0500");
        assert_eq!(encode_long(1), "0502");
        assert_eq!(encode_long(-1), "0501");
        assert_eq!(encode_long(63), "057e");
        assert_eq!(encode_long(64), "058001");
        assert_eq!(encode_long(355), "05c605");
        assert_eq!(encode_long(i64::MAX), "05feffffffffffffffff01");
        assert_eq!(encode_long(i64::MIN), "05ffffffffffffffffff01");
        for v in [0, 1, -1, 63, -64, 64, 355, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            assert_eq!(decode_long(&encode_long(v)), Some(v), "{v}");
        }
    }

    #[test]
    fn r5_decoding_is_strict() {
        for bad in ["", "05", "0400", "0580", "058000", "050000", "05ffffffffffffffffff02", "05ffffffffffffffffffff01", "zz"] {
            assert_eq!(decode_long(bad), None, "{bad}");
        }
    }

    #[test]
    fn r4_is_a_32_byte_coll_byte() {
        let h = [0xabu8; 32];
        let r4 = encode_r4(&h);
        assert_eq!(r4.len(), 68);
        assert!(r4.starts_with("0e20abab"));
        assert_eq!(decode_r4(&r4), Some(h));
        let hex64 = "ab".repeat(32);
        for bad in [
            String::new(),
            format!("0e1f{}", &hex64[2..]),
            format!("0e21{hex64}00"),
            format!("0e20{hex64}00"),
            format!("0e20{}", &hex64[2..]),
            format!("0e20{}zz", &hex64[2..]),
            format!("0c20{hex64}"),
            hex64.clone(),
        ] {
            assert_eq!(decode_r4(&bad), None, "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let b = Duration::from_millis(500);
        assert_eq!(backoff_delay(b, 0), Duration::from_millis(500));
        assert_eq!(backoff_delay(b, 1), Duration::from_secs(1));
        assert_eq!(backoff_delay(b, 3), Duration::from_secs(4));
        assert_eq!(backoff_delay(b, 7), MAX_BACKOFF);
        assert_eq!(backoff_delay(b, 40), MAX_BACKOFF);
        assert_eq!(backoff_delay(Duration::from_secs(u64::MAX / 2), 5), MAX_BACKOFF);
    }

    #[test]
    fn parses_confirmed_and_mempool_transactions() {
        let h = [7u8; 32];
        let id = "aa".repeat(32);
        let tx = json!({"id": id, "inputs": [], "dataInputs": [], "outputs": [
            {"boxId": "b1", "value": 5, "additionalRegisters": {}},
            {"boxId": "b2", "value": 1_000_000, "additionalRegisters": {"R4": encode_r4(&h), "R5": encode_long(355)}},
        ], "inclusionHeight": 1000, "numConfirmations": 4, "size": 300});
        let body = serde_json::to_vec(&tx).unwrap();
        let l = parse_transaction(&body, &id.to_uppercase(), true).unwrap();
        assert_eq!(l, AnchorLookup { tx_id: id.clone(), settlement_hash: Some(h), epoch: Some(355), confirmations: 4, inclusion_height: Some(1000) });
        assert!(verify(&l, &h));
        assert!(!verify(&l, &[8u8; 32]));
        let l = parse_transaction(&body, &id, false).unwrap();
        assert_eq!((l.confirmations, l.inclusion_height), (0, None));
        assert!(matches!(parse_transaction(&body, &"bb".repeat(32), true), Err(AnchorError::BadResponse(_))));
        let plain = json!({"id": id, "outputs": [{"additionalRegisters": {"R4": "0e03010203"}}], "numConfirmations": 1});
        let l = parse_transaction(&serde_json::to_vec(&plain).unwrap(), &id, true).unwrap();
        assert_eq!((l.settlement_hash, l.epoch), (None, None));
        assert!(!verify(&l, &h));
    }

    #[test]
    fn api_errors_map_to_rejected_or_unreachable() {
        let body = br#"{"error":400,"reason":"bad.request","detail":"not enough coins"}"#.to_vec();
        assert_eq!(success(StatusCode::BAD_REQUEST, body), Err(AnchorError::Rejected("bad.request: not enough coins".into())));
        let body = br#"{"error":403,"reason":"Forbidden","detail":null}"#.to_vec();
        assert_eq!(success(StatusCode::FORBIDDEN, body), Err(AnchorError::Rejected("Forbidden".into())));
        assert!(matches!(success(StatusCode::SERVICE_UNAVAILABLE, vec![]), Err(AnchorError::Unreachable(_))));
        assert!(matches!(success(StatusCode::TOO_MANY_REQUESTS, vec![]), Err(AnchorError::Unreachable(_))));
        assert_eq!(success(StatusCode::OK, b"x".to_vec()), Ok(b"x".to_vec()));
    }

    #[test]
    fn request_body_has_ergo_shape() {
        let a = ErgoAnchor::new("http://127.0.0.1:1/", "k");
        assert_eq!(a.url("/info"), "http://127.0.0.1:1/info");
        let b = a.request_body("9fAddr", 1, &[1u8; 32]).unwrap();
        assert_eq!(b["requests"][0]["registers"]["R5"], "0502");
        assert_eq!(b["requests"][0]["registers"]["R4"], encode_r4(&[1u8; 32]));
        assert_eq!(b["requests"][0]["value"], 1_000_000);
        assert_eq!(b["fee"], 1_000_000);
        assert!(matches!(a.request_body("9fAddr", u64::MAX, &[0; 32]), Err(AnchorError::Config(_))));
    }

    /// Fails with the given errors, in order, then succeeds.
    struct Scripted {
        errors: Vec<AnchorError>,
        calls: AtomicU32,
    }

    impl Anchor for Scripted {
        fn anchor(&self, _epoch: u64, _hash: [u8; 32]) -> BoxFuture<'_, Result<AnchorReceipt, AnchorError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
            let r = self.errors.get(n).cloned().map_or(Ok(AnchorReceipt { tx_id: "t".into(), anchored_at: 1 }), Err);
            Box::pin(async move { r })
        }
        fn lookup<'a>(&'a self, _tx_id: &'a str) -> BoxFuture<'a, Result<AnchorLookup, AnchorError>> {
            Box::pin(async { Err(AnchorError::NotFound) })
        }
    }

    #[tokio::test]
    async fn retry_only_while_unreachable() {
        let down = || AnchorError::Unreachable("down".into());
        let ms = Duration::from_millis(1);

        let s = Scripted { errors: vec![down(), down()], calls: AtomicU32::new(0) };
        assert!(anchor_with_retry(&s, 1, [0; 32], 5, ms).await.is_ok());
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);

        let s = Scripted { errors: vec![down(), down(), down()], calls: AtomicU32::new(0) };
        assert_eq!(anchor_with_retry(&s, 1, [0; 32], 2, ms).await, Err(down()));
        assert_eq!(s.calls.load(Ordering::SeqCst), 2);

        let s = Scripted { errors: vec![down(), AnchorError::Rejected("no".into())], calls: AtomicU32::new(0) };
        assert_eq!(anchor_with_retry(&s, 1, [0; 32], 5, ms).await, Err(AnchorError::Rejected("no".into())));
        assert_eq!(s.calls.load(Ordering::SeqCst), 2);

        let s = Scripted { errors: vec![down()], calls: AtomicU32::new(0) };
        assert_eq!(anchor_with_retry(&s, 1, [0; 32], 0, ms).await, Err(down()));
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);

        assert_eq!(anchor_with_retry(&NullAnchor, 1, [0; 32], 5, ms).await, Err(AnchorError::Disabled));
        assert_eq!(NullAnchor.lookup("x").await, Err(AnchorError::Disabled));
    }
}
