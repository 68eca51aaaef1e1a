//! Signed transfers: a field wallet's `POST /wallet/transfer/signed` body parsed and checked, the
//! message it signed rebuilt byte for byte (vector V6), and its transaction hash. Pure: the nonce
//! order and the balance are judged elsewhere, against the replicated state.
//!
//! Amounts arrive as Python floats (`amount_rtc`). They are turned into integer micro-RTC once, here,
//! exactly as the reference node does (`floor(amount_rtc * 1e6)` with one IEEE-754 double
//! multiplication, which is correctly rounded and so identical on every platform); nothing after
//! this module sees a float.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attestation::{NON_CANONICAL_ADDRESS, Receipt, is_non_canonical_address, valid_miner_id};
use crate::canonical_json::{self, Value};
use crate::crypto::{self, Hash32, KeyError, Keypair, address_of, sha256, sha256_parts};
use crate::spec::{ChainSpec, URTC_PER_RTC};

/// Largest body accepted at `/wallet/transfer/signed`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest memo, in characters.
pub const MAX_MEMO_CHARS: usize = 512;

/// Why a transfer is refused. `code()` is the stable machine-readable code.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TransferError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("field `{0}` {1}")]
    InvalidField(&'static str, &'static str),
    #[error("amount_rtc must be at least 0.000001 RTC (1 uRTC after floor(amount_rtc * 1e6))")]
    AmountTooSmall,
    #[error("fee_rtc must be 0: this network charges no transfer fees yet")]
    FeeNotSupported,
    #[error("chain_id {got:?} is not this network's ({expected:?})")]
    WrongChain { expected: String, got: String },
    #[error("chain_id is required on network {0:?}: sign the transfer with \"chain_id\": \"{0}\" (only mainnet takes transfers signed without one)")]
    ChainIdRequired(String),
    #[error("`{0}` is an RTC address in another spelling: an RTC address is written RTC and 40 lower-case hex digits")]
    NonCanonicalAddress(&'static str),
    #[error("nonce {nonce} read as a unix time is in slot {signed_slot}, more than {} slots after slot {slot}: sign with the current time (unix seconds or milliseconds) or a counter below 1000000000", SIGNED_TIME_LEAD_SLOTS)]
    SignedInFuture { nonce: i64, signed_slot: u64, slot: u64 },
    #[error("public_key derives to {derived}, not to from_address {claimed}")]
    AddressMismatch { derived: String, claimed: String },
    #[error("missing `signature` or `public_key`")]
    MissingSignature,
    #[error("{0}")]
    InvalidSignature(KeyError),
}

impl TransferError {
    pub fn code(&self) -> &'static str {
        match self {
            TransferError::InvalidJson(_) | TransferError::NotAnObject => "INVALID_JSON",
            TransferError::InvalidField(..) => "INVALID_FIELD",
            TransferError::AmountTooSmall => "AMOUNT_TOO_SMALL",
            TransferError::FeeNotSupported => "FEE_NOT_SUPPORTED",
            TransferError::WrongChain { .. } => "WRONG_CHAIN_ID",
            TransferError::ChainIdRequired(_) => "CHAIN_ID_REQUIRED",
            TransferError::NonCanonicalAddress(_) => NON_CANONICAL_ADDRESS,
            TransferError::SignedInFuture { .. } => "NONCE_IN_FUTURE",
            TransferError::AddressMismatch { .. } => "ADDRESS_MISMATCH",
            TransferError::MissingSignature => "MISSING_SIGNATURE",
            TransferError::InvalidSignature(_) => "INVALID_SIGNATURE",
        }
    }
}

/// A transfer whose fields and signature have been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from_address: String,
    pub to_address: String,
    /// `floor(amount_rtc * 1e6)`, at least 1.
    pub amount_i64: i64,
    pub nonce: i64,
    pub memo: String,
    pub chain_id: Option<String>,
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
    /// The signed bytes: canonical JSON of `{amount, fee, from, memo, nonce, to[, chain_id]}`.
    pub message: String,
}

impl Transfer {
    /// `hex(sha256(message_bytes + signature_bytes))[:32]`.
    pub fn tx_hash(&self) -> String {
        tx_hash(self.message.as_bytes(), &self.signature)
    }
}

/// How many slots a transfer's signed time may be ahead of the receipt that accepts it (the same
/// allowance as a receipt ahead of a receiver's clock, PROTOCOL.md §10.5).
pub const SIGNED_TIME_LEAD_SLOTS: u64 = 2;

/// The unix time (s) a nonce names when read as a timestamp: field wallets sign the time of
/// sending, in seconds or milliseconds (some in micro- or nanoseconds). A nonce of 10^11 or more is
/// divided by 1,000 until it is below 10^11 (10^11 s is the year 5138). A counter nonce (1, 2, ...)
/// names a time before any genesis and so constrains nothing.
pub fn signed_unix(nonce: i64) -> u64 {
    let mut n = nonce.max(0) as u64;
    while n >= 100_000_000_000 {
        n /= 1_000;
    }
    n
}

/// The slot of a transfer's signed time (`signed_unix`; slot 0 before genesis).
pub fn signed_slot(spec: &ChainSpec, nonce: i64) -> u64 {
    spec.slot_at(signed_unix(nonce))
}

/// The slot a receipt at `receipt_slot` makes a transfer count from: the receipt's slot, but never
/// before the time the sender signed. A transfer counts from the smallest of these over its
/// records (PROTOCOL.md §13.3), so a receipt backdated below the signed time moves nothing.
pub fn counted_slot(spec: &ChainSpec, nonce: i64, receipt_slot: u64) -> u64 {
    receipt_slot.max(signed_slot(spec, nonce))
}

/// A transfer may not be accepted (receipted) more than `SIGNED_TIME_LEAD_SLOTS` before its signed
/// time: checked against the clock over HTTP and against the receipt's slot in a record.
pub fn check_signed_time(spec: &ChainSpec, nonce: i64, slot: u64) -> Result<(), TransferError> {
    let signed_slot = signed_slot(spec, nonce);
    if signed_slot > slot.saturating_add(SIGNED_TIME_LEAD_SLOTS) {
        return Err(TransferError::SignedInFuture { nonce, signed_slot, slot });
    }
    Ok(())
}

pub fn tx_hash(message: &[u8], signature: &[u8; 64]) -> String {
    let mut bytes = Vec::with_capacity(message.len() + 64);
    bytes.extend_from_slice(message);
    bytes.extend_from_slice(signature);
    hex::encode(sha256(&bytes))[..32].to_owned()
}

/// The signed message: the canonical JSON of `{"amount", "fee", "from", "memo", "nonce": "<decimal>",
/// "to"[, "chain_id"]}` with the amounts written as Python floats. `fee_rtc: None` is the legacy form
/// without `"fee"`, which the reference wallet CLI signs and the reference node accepts.
pub fn signed_message(
    amount_rtc: f64,
    fee_rtc: Option<f64>,
    from: &str,
    to: &str,
    memo: &str,
    nonce: i64,
    chain_id: Option<&str>,
) -> String {
    let mut m = BTreeMap::new();
    m.insert("amount".to_owned(), Value::Float(amount_rtc));
    if let Some(fee) = fee_rtc {
        m.insert("fee".to_owned(), Value::Float(fee));
    }
    m.insert("from".to_owned(), Value::Str(from.to_owned()));
    m.insert("memo".to_owned(), Value::Str(memo.to_owned()));
    m.insert("nonce".to_owned(), Value::Str(nonce.to_string()));
    m.insert("to".to_owned(), Value::Str(to.to_owned()));
    if let Some(c) = chain_id {
        m.insert("chain_id".to_owned(), Value::Str(c.to_owned()));
    }
    Value::Object(m).to_canonical()
}

/// `floor(amount_rtc * 1e6)` as the reference node computes it, or `None` when that is below 1 uRTC
/// or not below 2^63.
pub fn amount_urtc(amount_rtc: f64) -> Option<i64> {
    let micro = (amount_rtc * URTC_PER_RTC as f64).floor();
    // Both comparisons are false for NaN.
    if micro >= 1.0 && micro < i64::MAX as f64 { Some(micro as i64) } else { None }
}

fn number(body: &Value, key: &'static str) -> Result<Option<f64>, TransferError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::Int(_) | Value::Float(_))) => match v.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(TransferError::InvalidField(key, "is out of range")),
        },
        Some(_) => Err(TransferError::InvalidField(key, "must be a number")),
    }
}

fn string<'a>(body: &'a Value, key: &'static str) -> Result<Option<&'a str>, TransferError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(TransferError::InvalidField(key, "must be a string")),
    }
}

/// The fields a transfer is judged on, wherever they came from (a request body or a signed message).
struct Fields<'a> {
    from: &'a str,
    to: &'a str,
    amount_rtc: f64,
    fee_rtc: f64,
    /// Whether the signed message carries `"fee"` (a message from a peer says; a request body may
    /// be signed either way: both are tried).
    signed_fee: Option<bool>,
    nonce: i64,
    memo: &'a str,
    chain_id: Option<&'a str>,
}

/// Parse and check a `/wallet/transfer/signed` body against this network: field shapes, amount,
/// fee, chain id, that `public_key` derives to `from_address`, then the signature (`verify_strict`).
pub fn parse_transfer(spec: &ChainSpec, bytes: &[u8]) -> Result<Transfer, TransferError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(TransferError::InvalidField("body", "is larger than 16 KiB"));
    }
    let body = canonical_json::parse(bytes).map_err(|e| TransferError::InvalidJson(e.to_string()))?;
    if body.as_object().is_none() {
        return Err(TransferError::NotAnObject);
    }
    let nonce = match body.get("nonce") {
        Some(Value::Int(_)) => body
            .get("nonce")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .ok_or(TransferError::InvalidField("nonce", "must be an integer from 0 to 2^63-1"))?,
        None | Some(Value::Null) => return Err(TransferError::InvalidField("nonce", "is required")),
        Some(_) => return Err(TransferError::InvalidField("nonce", "must be an integer")),
    };
    let fields = Fields {
        from: string(&body, "from_address")?.ok_or(TransferError::InvalidField("from_address", "is required"))?,
        to: string(&body, "to_address")?.ok_or(TransferError::InvalidField("to_address", "is required"))?,
        amount_rtc: number(&body, "amount_rtc")?.ok_or(TransferError::InvalidField("amount_rtc", "is required"))?,
        fee_rtc: number(&body, "fee_rtc")?.unwrap_or(0.0),
        signed_fee: None,
        nonce,
        memo: string(&body, "memo")?.unwrap_or(""),
        chain_id: string(&body, "chain_id")?,
    };
    let (Some(sig_hex), Some(pk_hex)) = (string(&body, "signature")?, string(&body, "public_key")?) else {
        return Err(TransferError::MissingSignature);
    };
    let signature = crypto::decode_hex::<64>("signature", sig_hex).map_err(TransferError::InvalidSignature)?;
    let public_key = crypto::decode_hex::<32>("public_key", pk_hex).map_err(TransferError::InvalidSignature)?;
    check(spec, &fields, public_key, signature)
}

/// Every check of a transfer's fields, the key-to-address derivation and the signature over the
/// message rebuilt from the fields.
fn check(spec: &ChainSpec, f: &Fields<'_>, public_key: [u8; 32], signature: [u8; 64]) -> Result<Transfer, TransferError> {
    if !valid_miner_id(f.to) {
        return Err(TransferError::InvalidField("to_address", "must match ^[A-Za-z0-9._:-]{1,128}$"));
    }
    // One spelling per address: `RTC` and 40 lower-case hex digits. Another spelling would be
    // another wallet, and what it received would be lost to the key's owner.
    if is_non_canonical_address(f.to) {
        return Err(TransferError::NonCanonicalAddress("to_address"));
    }
    if is_non_canonical_address(f.from) {
        return Err(TransferError::NonCanonicalAddress("from_address"));
    }
    if f.to == f.from {
        return Err(TransferError::InvalidField("to_address", "must differ from from_address"));
    }
    if f.amount_rtc * URTC_PER_RTC as f64 > spec.total_supply_urtc as f64 {
        return Err(TransferError::InvalidField("amount_rtc", "exceeds the total supply"));
    }
    let amount_i64 = amount_urtc(f.amount_rtc).ok_or(TransferError::AmountTooSmall)?;
    if f.fee_rtc != 0.0 {
        return Err(TransferError::FeeNotSupported);
    }
    if f.memo.chars().count() > MAX_MEMO_CHARS {
        return Err(TransferError::InvalidField("memo", "is longer than 512 characters"));
    }
    match f.chain_id {
        Some(got) if got != spec.network_id && !spec.chain_id_aliases.iter().any(|a| a == got) => {
            return Err(TransferError::WrongChain { expected: spec.network_id.clone(), got: got.to_owned() });
        }
        None if !spec.transfers_without_chain_id => return Err(TransferError::ChainIdRequired(spec.network_id.clone())),
        _ => {}
    }
    let derived = address_of(&public_key);
    if derived != f.from {
        return Err(TransferError::AddressMismatch { derived, claimed: f.from.to_owned() });
    }
    // The message as the spec's wallets sign it (with "fee"), else the legacy form without it.
    let with_fee = |fee: bool| signed_message(f.amount_rtc, fee.then_some(f.fee_rtc), f.from, f.to, f.memo, f.nonce, f.chain_id);
    let message = match f.signed_fee {
        Some(fee) => with_fee(fee),
        None => {
            let current = with_fee(true);
            if crypto::verify(&public_key, current.as_bytes(), &signature).is_ok() { current } else { with_fee(false) }
        }
    };
    crypto::verify(&public_key, message.as_bytes(), &signature).map_err(TransferError::InvalidSignature)?;
    Ok(Transfer {
        from_address: f.from.to_owned(),
        to_address: f.to.to_owned(),
        amount_i64,
        nonce: f.nonce,
        memo: f.memo.to_owned(),
        chain_id: f.chain_id.map(str::to_owned),
        public_key,
        signature,
        message,
    })
}

/// The sender's signed bytes, exactly as verified: what every other node verifies again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransfer {
    /// The signed message: canonical JSON of `{amount, fee, from, memo, nonce, to[, chain_id]}`.
    pub message: String,
    #[serde(with = "serde_bytes")]
    pub public_key: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl SignedTransfer {
    /// What the accepting node's receipt signs: `sha256_parts("rustchain/transfer/v1", [message,
    /// public_key, signature])`.
    pub fn payload_id(&self) -> Hash32 {
        sha256_parts("rustchain/transfer/v1", &[self.message.as_bytes(), &self.public_key, &self.signature])
    }

    /// Check the message as a field wallet's `/wallet/transfer/signed` would have been checked:
    /// the message must be exactly the canonical message of its own fields.
    pub fn verify(&self, spec: &ChainSpec) -> Result<Transfer, TransferError> {
        if self.message.len() > MAX_BODY_BYTES {
            return Err(TransferError::InvalidField("message", "is larger than 16 KiB"));
        }
        let m = canonical_json::parse(self.message.as_bytes()).map_err(|e| TransferError::InvalidJson(e.to_string()))?;
        if m.as_object().is_none() {
            return Err(TransferError::NotAnObject);
        }
        // A non-canonical spelling ("007") rebuilds to another message and is refused below.
        let nonce = string(&m, "nonce")?
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or(TransferError::InvalidField("nonce", "must be a decimal integer string from 0 to 2^63-1"))?;
        let fields = Fields {
            from: string(&m, "from")?.ok_or(TransferError::InvalidField("from", "is required"))?,
            to: string(&m, "to")?.ok_or(TransferError::InvalidField("to", "is required"))?,
            amount_rtc: number(&m, "amount")?.ok_or(TransferError::InvalidField("amount", "is required"))?,
            fee_rtc: number(&m, "fee")?.unwrap_or(0.0),
            signed_fee: Some(m.get("fee").is_some()),
            nonce,
            memo: string(&m, "memo")?.ok_or(TransferError::InvalidField("memo", "is required"))?,
            chain_id: string(&m, "chain_id")?,
        };
        let t = check(spec, &fields, self.public_key, self.signature)?;
        if t.message != self.message {
            return Err(TransferError::InvalidField("message", "is not in canonical form"));
        }
        Ok(t)
    }
}

impl Transfer {
    pub fn signed(&self) -> SignedTransfer {
        SignedTransfer { message: self.message.clone(), public_key: self.public_key, signature: self.signature }
    }
}

/// An accepted transfer: the unit stored, relayed and merged. The same signed transfer accepted by
/// two nodes is two records (two receipts) of one transfer (one `tx_hash`); the transfer counts
/// from the earliest receipt slot among its records (docs/PROTOCOL.md §12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    pub transfer: SignedTransfer,
    pub receipt: Receipt,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferRecordError {
    #[error("transfer: {0}")]
    Transfer(#[from] TransferError),
    #[error("a transfer receipt carries no nonce")]
    ReceiptNonce,
    #[error("receipt signature: {0}")]
    Receipt(KeyError),
}

impl TransferRecord {
    /// Accept `transfer` at `slot`: the receipt of the node holding `node_key`.
    pub fn accept(spec: &ChainSpec, node_key: &Keypair, transfer: &Transfer, slot: u64) -> TransferRecord {
        let signed = transfer.signed();
        let receipt = Receipt::sign(spec, node_key, &signed.payload_id(), slot, "");
        TransferRecord { transfer: signed, receipt }
    }

    /// The record id: `sha256_parts("rustchain/transfer-record/v1", [payload_id, node_key,
    /// u64be(slot), receipt signature])`. Distinct from every attestation id (another domain).
    pub fn id(&self) -> Hash32 {
        sha256_parts(
            "rustchain/transfer-record/v1",
            &[&self.transfer.payload_id(), &self.receipt.node_key, &self.receipt.slot.to_be_bytes(), &self.receipt.signature],
        )
    }

    /// Everything a node that did not accept the record checks before storing or relaying it.
    pub fn verify(&self, spec: &ChainSpec) -> Result<Transfer, TransferRecordError> {
        let t = self.transfer.verify(spec)?;
        check_signed_time(spec, t.nonce, self.receipt.slot)?;
        if !self.receipt.nonce.is_empty() {
            return Err(TransferRecordError::ReceiptNonce);
        }
        self.receipt.verify(spec, &self.transfer.payload_id()).map_err(TransferRecordError::Receipt)?;
        Ok(t)
    }

    /// The slot this record makes its transfer `t` (what `verify` returned) count from.
    pub fn counted_slot(&self, spec: &ChainSpec, t: &Transfer) -> u64 {
        counted_slot(spec, t.nonce, self.receipt.slot)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.transfer.message.len() + 256);
        ciborium::into_writer(self, &mut out).expect("writing CBOR to a Vec cannot fail");
        out
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<TransferRecord, String> {
        if bytes.len() > MAX_BODY_BYTES + 4096 {
            return Err("record larger than the limit".into());
        }
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

/// What a wallet wants to send; `sign` makes the field-format body. Used by `rustchain wallet
/// sign-transfer` and the tests.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferOrder {
    pub to_address: String,
    /// As the user wrote it, in RTC; becomes a Python float on the wire.
    pub amount_rtc: f64,
    pub memo: String,
    pub nonce: i64,
    pub chain_id: Option<String>,
}

impl TransferOrder {
    /// The `/wallet/transfer/signed` body, signed by `key`, with `fee_rtc: 0`.
    pub fn sign(&self, key: &Keypair) -> serde_json::Value {
        let from = key.address();
        let message =
            signed_message(self.amount_rtc, Some(0.0), &from, &self.to_address, &self.memo, self.nonce, self.chain_id.as_deref());
        let mut body = serde_json::json!({
            "from_address": from,
            "to_address": self.to_address,
            "amount_rtc": self.amount_rtc,
            "fee_rtc": 0,
            "memo": self.memo,
            "nonce": self.nonce,
            "public_key": hex::encode(key.public()),
            "signature": hex::encode(key.sign(message.as_bytes())),
        });
        if let Some(c) = &self.chain_id {
            body["chain_id"] = c.clone().into();
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V6_SEED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const V6_BODY: &str = r#"{"from_address": "RTC56475aa75463474c0285df5dbf2bcab73da65135", "to_address": "RTCabababababababababababababababababababab", "amount_rtc": 0.25, "fee_rtc": 0, "memo": "hi", "nonce": 1700000000, "public_key": "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", "signature": "56263fe74ea50e2c967b102b9d0dbfc70b1cad5ce684e7c79dce09127bf38b9dffdc737004dfac92a1c7c1d7c68e51a096810347f1a1e5847d53fd3b352f890e"}"#;
    const V6_MESSAGE: &str = "{\"amount\":0.25,\"fee\":0.0,\"from\":\"RTC56475aa75463474c0285df5dbf2bcab73da65135\",\"memo\":\"hi\",\"nonce\":\"1700000000\",\"to\":\"RTCabababababababababababababababababababab\"}";

    /// Mainnet: the network whose field wallets sign no chain id (V6 has none).
    fn spec() -> ChainSpec {
        ChainSpec::builtin("mainnet").unwrap()
    }

    fn key() -> Keypair {
        Keypair::from_seed(&crypto::decode_hex::<32>("seed", V6_SEED).unwrap())
    }

    fn order() -> TransferOrder {
        TransferOrder {
            to_address: "RTCabababababababababababababababababababab".into(),
            amount_rtc: 1.5,
            memo: "rent".into(),
            nonce: 7,
            chain_id: None,
        }
    }

    fn parse_json(v: &serde_json::Value) -> Result<Transfer, TransferError> {
        parse_transfer(&spec(), &serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn vector_v6_verifies_byte_exactly() {
        let t = parse_transfer(&spec(), V6_BODY.as_bytes()).unwrap();
        assert_eq!(t.message, V6_MESSAGE);
        assert_eq!(t.tx_hash(), "62212b16bf6172e1a77ceb77b18fc40b");
        assert_eq!(t.amount_i64, 250_000);
        assert_eq!(t.nonce, 1_700_000_000);
        assert_eq!(t.from_address, "RTC56475aa75463474c0285df5dbf2bcab73da65135");
        assert_eq!(t.memo, "hi");
        assert_eq!(t.chain_id, None);
        // Our own signer produces the same body bytes that verify to the same message.
        let order = TransferOrder {
            to_address: t.to_address.clone(),
            amount_rtc: 0.25,
            memo: "hi".into(),
            nonce: 1_700_000_000,
            chain_id: None,
        };
        let body = order.sign(&key());
        assert_eq!(body["signature"], "56263fe74ea50e2c967b102b9d0dbfc70b1cad5ce684e7c79dce09127bf38b9dffdc737004dfac92a1c7c1d7c68e51a096810347f1a1e5847d53fd3b352f890e");
        assert_eq!(parse_json(&body).unwrap(), t);
    }

    #[test]
    fn amounts_floor_like_the_reference() {
        // Values from Python: math.floor(x * 1e6).
        for (x, want) in [(0.29, Some(290_000)), (1.005, Some(1_004_999)), (1e-6, Some(1)), (1e-7, None), (0.0, None),
                          (-1.0, None), (8388608.0, Some(8_388_608_000_000))] {
            assert_eq!(amount_urtc(x), want, "{x}");
        }
    }

    #[test]
    fn integer_amounts_sign_as_floats() {
        let mut body = order().sign(&key());
        // A wallet that sends `1` instead of `1.0` still signed "amount":1.0 (Python's float()).
        body["amount_rtc"] = 2.into();
        let msg = signed_message(2.0, Some(0.0), &key().address(), &order().to_address, "rent", 7, None);
        assert!(msg.contains("\"amount\":2.0"));
        body["signature"] = hex::encode(key().sign(msg.as_bytes())).into();
        assert_eq!(parse_json(&body).unwrap().amount_i64, 2_000_000);
    }

    /// Issue 13 (9): an upper-case spelling of a real address would be another wallet, and the
    /// funds lost; it is refused before the signature is even checked, as the recipient and as the
    /// sender, over HTTP and in a record from a peer.
    #[test]
    fn an_rtc_address_has_one_spelling() {
        for to in ["RTCABABABABABABABABABABABABABABABABABABABAB", "rtcabababababababababababababababababababab", "RTCabababababababababababababababababababaB"] {
            let mut o = order();
            o.to_address = to.into();
            assert_eq!(parse_json(&o.sign(&key())).unwrap_err().code(), "NON_CANONICAL_ADDRESS", "{to}");
        }
        // The sender's own address upper-cased, signed as such by its key: refused by name, not
        // taken for another account (nor reported as some other key's address).
        let from = format!("RTC{}", key().address()[3..].to_uppercase());
        let message = signed_message(1.5, Some(0.0), &from, &order().to_address, "rent", 7, None);
        let mut body = order().sign(&key());
        body["from_address"] = from.clone().into();
        body["signature"] = hex::encode(key().sign(message.as_bytes())).into();
        assert_eq!(parse_json(&body).unwrap_err(), TransferError::NonCanonicalAddress("from_address"));
        let relayed = SignedTransfer { signature: key().sign(message.as_bytes()), message, public_key: key().public() };
        assert_eq!(relayed.verify(&spec()).unwrap_err().code(), "NON_CANONICAL_ADDRESS");
        // Free-form wallet names (what miners' rewards may be paid to) stay as they are.
        let mut o = order();
        o.to_address = "Scott-G4".into();
        assert!(parse_json(&o.sign(&key())).is_ok());
    }

    #[test]
    fn chain_id_is_signed_and_checked() {
        let mut o = order();
        o.chain_id = Some(spec().network_id);
        let t = parse_json(&o.sign(&key())).unwrap();
        assert!(t.message.starts_with(&format!("{{\"amount\":1.5,\"chain_id\":\"{}\",\"fee\":0.0,", spec().network_id)));
        // Signed for another network.
        o.chain_id = Some("devnet".into());
        assert_eq!(parse_json(&o.sign(&key())).unwrap_err().code(), "WRONG_CHAIN_ID");
        // Stripping the chain id from a body that signed one breaks the signature.
        o.chain_id = Some(spec().network_id);
        let mut body = o.sign(&key());
        body.as_object_mut().unwrap().remove("chain_id");
        assert_eq!(parse_json(&body).unwrap_err().code(), "INVALID_SIGNATURE");
    }

    #[test]
    fn each_check_refuses_with_its_code() {
        let good = order().sign(&key());
        let other = Keypair::from_seed(&[9; 32]);
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("amount_rtc", 0.0000009.into(), "AMOUNT_TOO_SMALL"),
            ("amount_rtc", (-5).into(), "AMOUNT_TOO_SMALL"),
            ("amount_rtc", "1.0".into(), "INVALID_FIELD"),
            ("amount_rtc", 1e13.into(), "INVALID_FIELD"),
            ("fee_rtc", 0.01.into(), "FEE_NOT_SUPPORTED"),
            ("fee_rtc", 1.into(), "FEE_NOT_SUPPORTED"),
            ("nonce", "7".into(), "INVALID_FIELD"),
            ("nonce", (-1).into(), "INVALID_FIELD"),
            ("nonce", 7.5.into(), "INVALID_FIELD"),
            ("memo", 3.into(), "INVALID_FIELD"),
            ("memo", "x".repeat(513).into(), "INVALID_FIELD"),
            ("to_address", "bad address!".into(), "INVALID_FIELD"),
            ("to_address", key().address().into(), "INVALID_FIELD"),
            ("from_address", other.address().into(), "ADDRESS_MISMATCH"),
            ("public_key", hex::encode(other.public()).into(), "ADDRESS_MISMATCH"),
            ("public_key", "abcd".into(), "INVALID_SIGNATURE"),
            ("signature", serde_json::Value::Null, "MISSING_SIGNATURE"),
            ("chain_id", 1.into(), "INVALID_FIELD"),
            ("memo", "rent!".into(), "INVALID_SIGNATURE"),
            ("amount_rtc", 1.6.into(), "INVALID_SIGNATURE"),
            ("nonce", 8.into(), "INVALID_SIGNATURE"),
        ];
        for (field, value, code) in cases {
            let mut body = good.clone();
            body[field] = value.clone();
            let err = parse_json(&body).unwrap_err();
            assert_eq!(err.code(), code, "{field} = {value}: {err}");
        }
        assert!(parse_json(&good).is_ok());
        assert_eq!(parse_transfer(&spec(), b"[1]").unwrap_err(), TransferError::NotAnObject);
        assert_eq!(parse_transfer(&spec(), b"{").unwrap_err().code(), "INVALID_JSON");
        assert_eq!(parse_transfer(&spec(), &vec![b' '; MAX_BODY_BYTES + 1]).unwrap_err().code(), "INVALID_FIELD");
        // The error says what to do.
        assert!(TransferError::FeeNotSupported.to_string().contains("must be 0"));
    }

    #[test]
    fn missing_memo_and_fee_default_to_empty_and_zero() {
        let mut o = order();
        o.memo = String::new();
        let mut body = o.sign(&key());
        let obj = body.as_object_mut().unwrap();
        obj.remove("memo");
        obj.remove("fee_rtc");
        let t = parse_json(&body).unwrap();
        assert!(t.message.contains("\"fee\":0.0") && t.message.contains("\"memo\":\"\""));
    }

    #[test]
    fn tx_hash_depends_on_message_and_signature() {
        let a = parse_json(&order().sign(&key())).unwrap();
        let mut o = order();
        o.nonce += 1;
        let b = parse_json(&o.sign(&key())).unwrap();
        assert_ne!(a.tx_hash(), b.tx_hash());
        assert_eq!(a.tx_hash().len(), 32);
        assert_eq!(a.tx_hash(), tx_hash(a.message.as_bytes(), &a.signature));
    }

    #[test]
    fn records_verify_anywhere_and_name_their_receipt() {
        let spec = spec();
        let t = parse_transfer(&spec, V6_BODY.as_bytes()).unwrap();
        let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let ra = TransferRecord::accept(&spec, &a, &t, 100);
        let rb = TransferRecord::accept(&spec, &b, &t, 101);
        // Any node re-derives the same transfer from the record alone.
        assert_eq!(ra.verify(&spec).unwrap(), t);
        assert_eq!(TransferRecord::from_cbor(&rb.to_cbor()).unwrap().verify(&spec).unwrap(), t);
        // One transfer, two records: same payload, different record ids.
        assert_eq!(ra.transfer.payload_id(), rb.transfer.payload_id());
        assert_ne!(ra.id(), rb.id());
        // On another network the receipt does not verify.
        let other = ChainSpec { network_id: "othernet".into(), ..spec.clone() };
        assert!(matches!(TransferRecord::accept(&other, &a, &t, 100).verify(&spec), Err(TransferRecordError::Receipt(_))));
        // A receipt moved to another slot does not verify.
        let mut moved = ra.clone();
        moved.receipt.slot = 1;
        assert!(matches!(moved.verify(&spec), Err(TransferRecordError::Receipt(_))));
        let mut nonce = ra.clone();
        nonce.receipt.nonce = "x".into();
        assert!(matches!(nonce.verify(&spec), Err(TransferRecordError::ReceiptNonce)));
    }

    #[test]
    fn a_signed_message_must_be_canonical_and_signed() {
        let spec = spec();
        let t = parse_transfer(&spec, V6_BODY.as_bytes()).unwrap();
        let good = t.signed();
        assert_eq!(good.verify(&spec).unwrap(), t);
        // Same fields, other spelling: the signature was over the canonical bytes only.
        let spaced = SignedTransfer { message: good.message.replacen(",", ", ", 1), ..good.clone() };
        assert!(spaced.verify(&spec).is_err());
        let padded = SignedTransfer { message: good.message.replace("\"1700000000\"", "\"01700000000\""), ..good.clone() };
        assert_eq!(padded.verify(&spec).unwrap_err(), TransferError::InvalidField("message", "is not in canonical form"));
        let more = SignedTransfer { message: good.message.replace("0.25", "0.5"), ..good.clone() };
        assert_eq!(more.verify(&spec).unwrap_err().code(), "INVALID_SIGNATURE");
        let garbage = SignedTransfer { message: "[1,2]".into(), ..good };
        assert_eq!(garbage.verify(&spec).unwrap_err(), TransferError::NotAnObject);
    }

    /// Issue 13 (9): a transfer signed without a chain id is valid on every network that takes
    /// one, so only mainnet (whose field wallets send none) does; on any other network it is
    /// refused, over HTTP and as a record from a peer, and a transfer signed for mainnet with its
    /// chain id is refused on devnet.
    #[test]
    fn a_transfer_without_chain_id_is_valid_on_mainnet_only() {
        let devnet = ChainSpec::builtin("devnet").unwrap();
        let body = serde_json::to_vec(&order().sign(&key())).unwrap();
        let on_mainnet = parse_transfer(&spec(), &body).unwrap();
        assert_eq!(parse_transfer(&devnet, &body).unwrap_err(), TransferError::ChainIdRequired("devnet".into()));
        assert!(TransferError::ChainIdRequired("devnet".into()).to_string().contains("\"chain_id\": \"devnet\""));
        // A mainnet record replayed to a devnet node (its receipt re-signed there by a hostile node).
        let replayed = TransferRecord::accept(&devnet, &Keypair::from_seed(&[5; 32]), &on_mainnet, 10);
        assert!(matches!(replayed.verify(&devnet), Err(TransferRecordError::Transfer(TransferError::ChainIdRequired(_)))));
        let mut o = order();
        o.chain_id = Some("mainnet".into());
        assert_eq!(parse_json(&o.sign(&key())).unwrap().chain_id.as_deref(), Some("mainnet"));
        assert_eq!(parse_transfer(&devnet, &serde_json::to_vec(&o.sign(&key())).unwrap()).unwrap_err().code(), "WRONG_CHAIN_ID");
        o.chain_id = Some("devnet".into());
        assert!(parse_transfer(&devnet, &serde_json::to_vec(&o.sign(&key())).unwrap()).is_ok());
    }

    /// The reference wallet CLI (`tools/rustchain_wallet_cli.py`) signs `json.dumps({from, to,
    /// amount, memo, nonce: str, chain_id}, sort_keys=True, separators=(",", ":"))`: no `"fee"`,
    /// and chain id `rustchain-mainnet-v2`. The reference node accepts it; so does mainnet here,
    /// with the transaction hash over the bytes that were signed. No other network takes it.
    #[test]
    fn the_reference_wallet_clis_transfer_is_valid_on_mainnet() {
        let from = key().address();
        let to = "RTCabababababababababababababababababababab";
        let message = format!(r#"{{"amount":1.5,"chain_id":"rustchain-mainnet-v2","from":"{from}","memo":"rent","nonce":"1700000000","to":"{to}"}}"#);
        let signature = key().sign(message.as_bytes());
        let body = serde_json::json!({
            "from_address": from, "to_address": to, "amount_rtc": 1.5, "nonce": 1700000000i64, "memo": "rent",
            "public_key": hex::encode(key().public()), "signature": hex::encode(signature), "chain_id": "rustchain-mainnet-v2",
        });
        let t = parse_json(&body).unwrap();
        assert_eq!(t.message, message);
        assert_eq!(t.tx_hash(), tx_hash(message.as_bytes(), &signature));
        let record = TransferRecord::accept(&spec(), &Keypair::from_seed(&[5; 32]), &t, 10);
        assert_eq!(record.verify(&spec()).unwrap(), t, "a peer verifies the legacy message too");
        let devnet = ChainSpec::builtin("devnet").unwrap();
        assert_eq!(parse_transfer(&devnet, &serde_json::to_vec(&body).unwrap()).unwrap_err().code(), "WRONG_CHAIN_ID");
        // Signed without "fee" but a fee claimed in the body: the fee rule still refuses it, and a
        // message that says "fee" must be the one signed.
        let mut with_fee = body.clone();
        with_fee["fee_rtc"] = 0.5.into();
        assert_eq!(parse_json(&with_fee).unwrap_err().code(), "FEE_NOT_SUPPORTED");
        let mut tampered = body;
        tampered["amount_rtc"] = 2.5.into();
        assert_eq!(parse_json(&tampered).unwrap_err().code(), "INVALID_SIGNATURE");
    }

    #[test]
    fn a_nonce_is_read_as_the_time_it_was_signed() {
        let s = spec();
        let t = 1_795_379_528; // vector V9: slot 51121
        for nonce in [t, t * 1_000 + 999, t * 1_000_000 + 1, t * 1_000_000_000 + 7] {
            assert_eq!(signed_unix(nonce), t as u64, "{nonce}");
            assert_eq!(signed_slot(&s, nonce), 51121, "{nonce}");
        }
        // Counters and times before genesis name slot 0: they constrain nothing.
        for nonce in [0, 1, 7, 1_700_000_000, 100_000_000_000, -5] {
            assert_eq!(signed_slot(&s, nonce), 0, "{nonce}");
        }
        assert_eq!((signed_unix(99_999_999_999), signed_unix(100_000_000_000)), (99_999_999_999, 100_000_000));
        // A receipt counts from its slot, but never before the signed time.
        assert_eq!(counted_slot(&s, t * 1000, 51200), 51200);
        assert_eq!(counted_slot(&s, t * 1000, 51000), 51121);
        assert_eq!(counted_slot(&s, 7, 51000), 51000);
        // Accepted at most 2 slots before the signed time.
        assert!(check_signed_time(&s, t, 51119).is_ok());
        let err = check_signed_time(&s, t, 51118).unwrap_err();
        assert_eq!((err.code(), err.clone()), ("NONCE_IN_FUTURE", TransferError::SignedInFuture { nonce: t, signed_slot: 51121, slot: 51118 }));
    }

    /// Issue 13 (9): a relay that sees a transfer can wrap it in its own receipt at any slot it
    /// likes. The transfer counts from its earliest receipt, but never before the slot its sender
    /// signed, so a receipt backdated into the epoch before moves nothing; one that predates the
    /// signed time by more than 2 slots is not even a valid record.
    #[test]
    fn a_backdated_receipt_does_not_move_a_transfer_to_an_earlier_epoch() {
        let s = spec();
        let boundary = s.first_slot(356); // the first slot of epoch 356
        let signed_at = s.genesis_unix + boundary * s.slot_seconds + 30; // 30 s into epoch 356
        let mut o = order();
        o.nonce = signed_at as i64 * 1_000; // milliseconds, as field wallets sign
        let t = parse_json(&o.sign(&key())).unwrap();
        let honest = TransferRecord::accept(&s, &Keypair::from_seed(&[1; 32]), &t, boundary);
        let hostile = TransferRecord::accept(&s, &Keypair::from_seed(&[2; 32]), &t, boundary - 1);
        // The hostile receipt is in epoch 355, within the 2-slot allowance: a valid record ...
        assert_eq!(hostile.verify(&s).unwrap(), t);
        // ... that counts from the signed slot, in epoch 356, like the honest one.
        let counted = [&honest, &hostile].map(|r| r.counted_slot(&s, &t));
        assert_eq!(counted, [boundary, boundary]);
        assert_eq!(s.epoch_of_slot(counted.into_iter().min().unwrap()), 356);
        // Backdated further: refused.
        let far = TransferRecord::accept(&s, &Keypair::from_seed(&[2; 32]), &t, boundary - 3);
        assert!(matches!(far.verify(&s), Err(TransferRecordError::Transfer(TransferError::SignedInFuture { .. }))));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The epoch a transfer counts in is a function of the set of its valid records, whatever
        /// order they arrive in, never before its signed slot, and never after its honest receipt:
        /// hostile receipts at any slot move it only within [signed epoch, honest epoch].
        #[test]
        fn the_counted_epoch_is_order_free_and_bounded_by_the_signer_and_the_honest_receipt(
            signed in 0u64..2_000,
            honest_lag in 0u64..300,
            hostile in prop::collection::vec(0u64..2_400, 0..8),
            seed in any::<u64>(),
        ) {
            let s = spec();
            let nonce = ((s.genesis_unix + signed * s.slot_seconds) * 1_000) as i64;
            let honest = signed + honest_lag;
            let mut slots: Vec<u64> = hostile.into_iter().filter(|h| check_signed_time(&s, nonce, *h).is_ok()).collect();
            slots.push(honest);
            let fold = |v: &[u64]| v.iter().map(|r| counted_slot(&s, nonce, *r)).min().unwrap();
            let want = fold(&slots);
            // Any permutation (a rotation and a reversal, from the seed).
            let mut other = slots.clone();
            let n = other.len();
            other.rotate_left((seed as usize) % n);
            if seed & 1 == 1 { other.reverse(); }
            prop_assert_eq!(fold(&other), want);
            prop_assert!(want >= signed && want <= honest);
            prop_assert!(s.epoch_of_slot(want) >= s.epoch_of_slot(signed) && s.epoch_of_slot(want) <= s.epoch_of_slot(honest));
        }
    }
}
