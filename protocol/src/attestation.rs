//! Attestations: a field miner's `/attest/submit` body parsed and its signature checked under either
//! scheme, its evaluation (device, fingerprint verdict, weight), and the record a node stores and
//! relays: the miner's signed payload wrapped in the accepting node's signed receipt.

use serde::{Deserialize, Serialize};

use crate::canonical_json::{self, Value};
use crate::crypto::{self, Hash32, KeyError, Keypair, sha256, sha256_parts};
use crate::fingerprint::{self, Verdict};
use crate::multiplier;
use crate::spec::ChainSpec;

/// Largest body a node accepts at `/attest/submit` (and the largest payload a record may carry).
/// A field miner's attestation is about 2.5 KB; this leaves room for a few KiB of signed extra
/// fields, which every node stores and replicates forever, and no more.
pub const MAX_BODY_BYTES: usize = 16 << 10;

/// Keys removed from the request object before it is canonicalized and signed.
pub const SIGNATURE_KEYS: [&str; 3] = ["signature", "signature_type", "public_key"];

/// How the miner signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Scheme {
    /// Ed25519 over the canonical JSON of the request object (`signature_type` `ed25519` or
    /// `canonical_json`).
    CanonicalJson = 0,
    /// Ed25519 over `"{miner_id}|{miner}|{nonce}|{commitment}"` (older Rust miner).
    Legacy = 1,
}

/// Why a submission is refused. `code()` is the stable machine-readable code.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum AttestError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("field `{0}` {1}")]
    InvalidField(&'static str, &'static str),
    #[error("missing nonce: request one from POST /attest/challenge")]
    MissingNonce,
    #[error("`nonce` and `report.nonce` differ")]
    NonceMismatch,
    #[error("device: {0}")]
    InvalidDevice(&'static str),
    #[error("signals: {0}")]
    InvalidSignals(&'static str),
    #[error("fingerprint: {0}")]
    InvalidFingerprint(&'static str),
    #[error("fingerprint metric {0}.{1} must be a finite number")]
    InvalidMetric(&'static str, &'static str),
    #[error("device.cores must be an integer from 1 to 4096")]
    InvalidCores,
    #[error("signals.macs must be a list of non-empty strings")]
    InvalidMacs,
    #[error("missing `signature` or `public_key`")]
    MissingSignature,
    #[error("{0}")]
    InvalidSignature(KeyError),
    #[error("miner {miner} is an RTC address that the signing key does not own (the key's address is {owner})")]
    KeyMismatch { miner: String, owner: String },
    #[error("`{0}` is an RTC address in another spelling: an RTC address is written RTC and 40 lower-case hex digits")]
    NonCanonicalAddress(&'static str),
}

impl AttestError {
    pub fn code(&self) -> &'static str {
        match self {
            AttestError::InvalidJson(_) | AttestError::NotAnObject => "INVALID_JSON",
            AttestError::InvalidField(..) => "INVALID_FIELD",
            AttestError::MissingNonce => "MISSING_NONCE",
            AttestError::NonceMismatch => "NONCE_MISMATCH",
            AttestError::InvalidDevice(_) => "INVALID_DEVICE",
            AttestError::InvalidSignals(_) => "INVALID_SIGNALS",
            AttestError::InvalidFingerprint(_) => "INVALID_FINGERPRINT",
            AttestError::InvalidMetric(..) => "INVALID_FINGERPRINT_METRIC",
            AttestError::InvalidCores => "INVALID_DEVICE_CORES",
            AttestError::InvalidMacs => "INVALID_SIGNALS_MACS",
            AttestError::MissingSignature => "MISSING_SIGNATURE",
            AttestError::InvalidSignature(_) => "INVALID_SIGNATURE",
            AttestError::KeyMismatch { .. } => "KEY_MISMATCH",
            AttestError::NonCanonicalAddress(_) => NON_CANONICAL_ADDRESS,
        }
    }
}

/// `^[A-Za-z0-9._:-]{1,128}$`: the form of miner ids and wallet names.
pub fn valid_miner_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Whether `wallet` has the form of an RTC address (`RTC` + 40 hex digits, in any case): such a
/// wallet earns only for the key whose address it is (PROTOCOL.md §5.1).
pub fn is_rtc_address(wallet: &str) -> bool {
    // On bytes: any text may be asked about, and byte 3 need not start a character.
    let b = wallet.as_bytes();
    b.len() == 43 && b[..3].eq_ignore_ascii_case(b"rtc") && b[3..].iter().all(u8::is_ascii_hexdigit)
}

/// The code of every refusal of an address in another spelling (PROTOCOL.md §3).
pub const NON_CANONICAL_ADDRESS: &str = "NON_CANONICAL_ADDRESS";

/// Whether `wallet` is an RTC address in a spelling other than the one `address_of` writes (`RTC`
/// and 40 lower-case hex digits): the same key's address written another way, which every path
/// refuses, so that no spelling of an address is a second account.
pub fn is_non_canonical_address(wallet: &str) -> bool {
    is_rtc_address(wallet) && !(wallet.starts_with("RTC") && wallet.as_bytes()[3..].iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A submission whose shape and signature have been checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub scheme: Scheme,
    /// The request object without the signature keys.
    pub body: Value,
    /// Its canonical JSON: the signed bytes under `Scheme::CanonicalJson`.
    pub canonical: String,
    /// The wallet that earns the rewards.
    pub miner: String,
    pub miner_id: String,
    pub nonce: String,
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

fn str_field<'a>(obj: &'a Value, key: &'static str) -> Result<Option<&'a str>, AttestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(AttestError::InvalidField(key, "must be a string")),
    }
}

/// Parse and check a submit body: JSON shape, required sections, then the signature.
pub fn parse_submission(bytes: &[u8]) -> Result<Submission, AttestError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(AttestError::InvalidField("body", "is larger than 16 KiB"));
    }
    let request = canonical_json::parse(bytes).map_err(|e| AttestError::InvalidJson(e.to_string()))?;
    let Value::Object(mut fields) = request else { return Err(AttestError::NotAnObject) };
    let sig_hex = fields.remove("signature");
    let sig_type = fields.remove("signature_type");
    let pk_hex = fields.remove("public_key");
    let body = Value::Object(fields);

    let miner = str_field(&body, "miner")?.ok_or(AttestError::InvalidField("miner", "is required"))?.to_owned();
    if !valid_miner_id(&miner) {
        return Err(AttestError::InvalidField("miner", "must match ^[A-Za-z0-9._:-]{1,128}$"));
    }
    if is_non_canonical_address(&miner) {
        return Err(AttestError::NonCanonicalAddress("miner"));
    }
    let miner_id = str_field(&body, "miner_id")?.map(str::to_owned).unwrap_or_else(|| miner.clone());
    if !valid_miner_id(&miner_id) {
        return Err(AttestError::InvalidField("miner_id", "must match ^[A-Za-z0-9._:-]{1,128}$"));
    }
    let report = match body.get("report") {
        None | Some(Value::Null) => None,
        Some(r @ Value::Object(_)) => Some(r),
        Some(_) => return Err(AttestError::InvalidField("report", "must be an object")),
    };
    let report_nonce = match report {
        Some(r) => str_field(r, "nonce")?,
        None => None,
    };
    let nonce = match (str_field(&body, "nonce")?, report_nonce) {
        (Some(a), Some(b)) if a != b => return Err(AttestError::NonceMismatch),
        (Some(n), _) | (None, Some(n)) if !n.is_empty() => n.to_owned(),
        _ => return Err(AttestError::MissingNonce),
    };
    if nonce.len() > 128 {
        return Err(AttestError::InvalidField("nonce", "is longer than 128 characters"));
    }
    check_shape(&body)?;

    let (Some(Value::Str(sig_hex)), Some(Value::Str(pk_hex))) = (sig_hex, pk_hex) else {
        return Err(AttestError::MissingSignature);
    };
    let signature = crypto::decode_hex::<64>("signature", &sig_hex).map_err(AttestError::InvalidSignature)?;
    let public_key = crypto::decode_hex::<32>("public_key", &pk_hex).map_err(AttestError::InvalidSignature)?;
    let scheme = match sig_type {
        Some(Value::Str(t)) if t == "ed25519" || t == "canonical_json" => Scheme::CanonicalJson,
        _ => Scheme::Legacy,
    };
    let canonical = body.to_canonical();
    let sub = Submission { scheme, body, canonical, miner, miner_id, nonce, public_key, signature };
    crypto::verify(&sub.public_key, &sub.signed_message(), &sub.signature).map_err(AttestError::InvalidSignature)?;
    if is_rtc_address(&sub.miner) {
        let owner = crypto::address_of(&sub.public_key);
        if sub.miner != owner {
            return Err(AttestError::KeyMismatch { miner: sub.miner, owner });
        }
    }
    Ok(sub)
}

/// Types of the sections the rules read: device strings and cores, signals, fingerprint metrics.
fn check_shape(body: &Value) -> Result<(), AttestError> {
    let device = match body.get("device") {
        Some(d @ Value::Object(_)) => d,
        None | Some(Value::Null) => return Err(AttestError::InvalidDevice("missing `device` object")),
        Some(_) => return Err(AttestError::InvalidDevice("`device` must be an object")),
    };
    for key in ["family", "device_family", "arch", "device_arch", "model", "device_model", "cpu", "serial", "serial_number", "machine"] {
        if !matches!(device.get(key), None | Some(Value::Null | Value::Str(_))) {
            return Err(AttestError::InvalidDevice("device string fields must be strings"));
        }
    }
    if let Some(cores) = device.get("cores").filter(|c| !c.is_null())
        && !cores.as_i64().is_some_and(|c| (1..=4096).contains(&c)) {
        return Err(AttestError::InvalidCores);
    }
    let signals = match body.get("signals") {
        Some(s @ Value::Object(_)) => s,
        None | Some(Value::Null) => return Err(AttestError::InvalidSignals("missing `signals` object")),
        Some(_) => return Err(AttestError::InvalidSignals("`signals` must be an object")),
    };
    match signals.get("macs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(macs)) if macs.iter().all(|m| m.as_str().is_some_and(|m| !m.is_empty())) => {}
        Some(_) => return Err(AttestError::InvalidMacs),
    }
    if !matches!(signals.get("hostname"), None | Some(Value::Null | Value::Str(_))) {
        return Err(AttestError::InvalidSignals("signals.hostname must be a string"));
    }
    let checks = match body.get("fingerprint").and_then(|f| f.get("checks")) {
        Some(Value::Object(c)) if !c.is_empty() => c,
        _ => return Err(AttestError::InvalidFingerprint("missing or empty `fingerprint.checks` object")),
    };
    for (check, metric) in fingerprint::NUMERIC_METRICS {
        let value = checks.get(check).and_then(|c| c.get("data")).and_then(|d| d.get(metric));
        if !matches!(value, None | Some(Value::Int(_) | Value::Float(_))) {
            return Err(AttestError::InvalidMetric(check, metric));
        }
    }
    Ok(())
}

impl Submission {
    /// The exact bytes the miner signed.
    pub fn signed_message(&self) -> Vec<u8> {
        match self.scheme {
            Scheme::CanonicalJson => self.canonical.as_bytes().to_vec(),
            Scheme::Legacy => legacy_message(&self.miner_id, &self.miner, &self.nonce, self.commitment()).into_bytes(),
        }
    }

    fn commitment(&self) -> &str {
        self.body.get("report").and_then(|r| r.get("commitment")).and_then(Value::as_str).unwrap_or("")
    }

    /// The payload as stored and relayed.
    pub fn payload(&self) -> SignedPayload {
        SignedPayload {
            scheme: self.scheme,
            body: self.canonical.clone(),
            public_key: self.public_key,
            signature: self.signature,
        }
    }
}

/// The legacy scheme's signed message.
pub fn legacy_message(miner_id: &str, miner: &str, nonce: &str, commitment: &str) -> String {
    format!("{miner_id}|{miner}|{nonce}|{commitment}")
}

/// Sign a request object the way field miners do (`signature_type: canonical_json`): used by
/// `rustchain attest`, the simulators and the tests.
pub fn sign_request(key: &Keypair, request: &mut serde_json::Map<String, serde_json::Value>) {
    for k in SIGNATURE_KEYS {
        request.remove(k);
    }
    let text = serde_json::to_vec(&request).expect("a JSON map serializes");
    let canonical = canonical_json::parse(&text).expect("serde_json writes valid JSON").to_canonical();
    request.insert("signature".into(), hex::encode(key.sign(canonical.as_bytes())).into());
    request.insert("public_key".into(), hex::encode(key.public()).into());
    request.insert("signature_type".into(), "canonical_json".into());
}

/// The device as reported, with the field aliases field miners use folded together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Device {
    pub family: String,
    pub arch: String,
    pub model: String,
    pub cpu: String,
    pub cores: Option<u64>,
    pub serial: String,
    pub machine: String,
}

impl Device {
    pub fn from_body(body: &Value) -> Device {
        let d = body.get("device");
        let pick = |names: &[&str]| -> String {
            names
                .iter()
                .find_map(|n| d.and_then(|d| d.get(n)).and_then(Value::as_str))
                .map(|s| s.trim().chars().take(256).collect())
                .unwrap_or_default()
        };
        Device {
            family: pick(&["family", "device_family"]),
            arch: pick(&["arch", "device_arch"]),
            model: pick(&["model", "device_model"]),
            cpu: pick(&["cpu"]),
            cores: d.and_then(|d| d.get("cores")).and_then(Value::as_i64).and_then(|c| u64::try_from(c).ok()),
            serial: pick(&["serial", "serial_number"]),
            machine: pick(&["machine"]),
        }
    }

    /// `hex(sha256(upper(trim(serial)) + "|" + lower(arch)))[:40]`, when a serial is reported.
    pub fn serial_hash(&self) -> Option<String> {
        if self.serial.is_empty() {
            return None;
        }
        Some(serial_hash(&self.serial, &self.arch))
    }
}

pub fn serial_hash(serial: &str, arch: &str) -> String {
    let input = format!("{}|{}", serial.trim().to_uppercase(), arch.to_lowercase());
    hex::encode(sha256(input.as_bytes()))[..40].to_owned()
}

/// What a node concludes from a submission: recomputed by every node from the payload, the
/// receipt's slot and the chain spec; never taken from someone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub device: Device,
    pub verdict: Verdict,
    pub serial_hash: Option<String>,
    /// The device's antiquity weight at this slot; at most 1.0x when the claimed arch's bonus has
    /// no evidence (`fingerprint::bonus_evidence`).
    pub hw_weight: u64,
    /// The weight it enrolls with: `hw_weight`, or one-billionth of it (at least 1 unit) when the
    /// fingerprint did not pass. The entropy rule (PROTOCOL.md §7.1) may lower it at enrollment.
    pub weight: u64,
    /// The fingerprint's entropy profile (empty for a legacy signature, which covers no fingerprint).
    pub profile: crate::entropy::Profile,
}

pub fn evaluate(spec: &ChainSpec, sub: &Submission, slot: u64) -> Evaluation {
    if sub.scheme == Scheme::Legacy {
        // The legacy signature covers `miner_id|miner|nonce|commitment` only: the device and the
        // fingerprint could have been swapped after signing, so neither is read. Without evidence
        // the fingerprint fails (the reference's RIP-309 rule): 1.0x hardware, one unit of weight.
        return Evaluation {
            device: Device::default(),
            verdict: Verdict { passed: false, reasons: vec!["legacy_signature_unmeasured".into()] },
            serial_hash: None,
            hw_weight: multiplier::UNIT,
            weight: 1,
            profile: crate::entropy::Profile::default(),
        };
    }
    let device = Device::from_body(&sub.body);
    let mut verdict = fingerprint::judge(&sub.body, &device);
    let mut hw_weight = multiplier::hardware_weight(&device.arch, spec.age_seconds(slot));
    // A bonus needs evidence of the claimed architecture (PROTOCOL.md §5.3): without it, 1.0x.
    if hw_weight > multiplier::UNIT
        && let Err(why) = fingerprint::bonus_evidence(&sub.body, &device)
    {
        hw_weight = multiplier::UNIT;
        verdict.reasons.push(format!("bonus_unverified: {why}"));
    }
    let weight = if verdict.passed { hw_weight } else { (hw_weight / multiplier::UNIT).max(1) };
    Evaluation { serial_hash: device.serial_hash(), device, verdict, hw_weight, weight, profile: crate::entropy::Profile::of_body(&sub.body) }
}

/// The miner's signed bytes, exactly as verified: enough for any node to verify again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPayload {
    pub scheme: Scheme,
    /// Canonical JSON of the request object without the signature keys.
    pub body: String,
    #[serde(with = "serde_bytes")]
    pub public_key: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl SignedPayload {
    /// The payload id, which the receipt signs: `sha256_parts("rustchain/attestation/v1", [scheme,
    /// body, public_key, signature])`. The same payload under two receipts is two records.
    pub fn payload_id(&self) -> Hash32 {
        sha256_parts(
            "rustchain/attestation/v1",
            &[&[self.scheme as u8], self.body.as_bytes(), &self.public_key, &self.signature],
        )
    }

    /// Parse and verify the payload again, as the node that accepted it did.
    pub fn verify(&self) -> Result<Submission, AttestError> {
        let Value::Object(mut fields) =
            canonical_json::parse(self.body.as_bytes()).map_err(|e| AttestError::InvalidJson(e.to_string()))?
        else {
            return Err(AttestError::NotAnObject);
        };
        fields.insert("signature".into(), Value::Str(hex::encode(self.signature)));
        fields.insert("public_key".into(), Value::Str(hex::encode(self.public_key)));
        if self.scheme == Scheme::CanonicalJson {
            fields.insert("signature_type".into(), Value::Str("canonical_json".into()));
        }
        let sub = parse_submission(Value::Object(fields).to_canonical().as_bytes())?;
        if sub.canonical != self.body || sub.scheme != self.scheme {
            return Err(AttestError::InvalidField("body", "is not in canonical form"));
        }
        Ok(sub)
    }
}

/// The accepting node's word for what only it could check: when it accepted the payload and that
/// it had issued the nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(with = "serde_bytes")]
    pub node_key: [u8; 32],
    pub slot: u64,
    pub nonce: String,
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

fn receipt_message(network_id: &str, payload_id: &Hash32, slot: u64, nonce: &str) -> Hash32 {
    sha256_parts(
        "rustchain/receipt/v1",
        &[network_id.as_bytes(), payload_id, &slot.to_be_bytes(), nonce.as_bytes()],
    )
}

impl Receipt {
    pub fn sign(spec: &ChainSpec, node: &Keypair, payload_id: &Hash32, slot: u64, nonce: &str) -> Receipt {
        let msg = receipt_message(&spec.network_id, payload_id, slot, nonce);
        Receipt { node_key: node.public(), slot, nonce: nonce.to_owned(), signature: node.sign(&msg) }
    }

    /// Check the node's signature over (network, payload id, slot, nonce).
    pub fn verify(&self, spec: &ChainSpec, payload_id: &Hash32) -> Result<(), KeyError> {
        let msg = receipt_message(&spec.network_id, payload_id, self.slot, &self.nonce);
        crypto::verify(&self.node_key, &msg, &self.signature)
    }
}

/// The id of the record that wraps payload `payload_id` in `node_key`'s receipt at `slot`.
pub fn record_id(payload_id: &Hash32, node_key: &[u8; 32], slot: u64) -> Hash32 {
    sha256_parts("rustchain/attestation-record/v2", &[payload_id, node_key, &slot.to_be_bytes()])
}

/// An accepted attestation: the unit stored, relayed and merged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationRecord {
    pub payload: SignedPayload,
    pub receipt: Receipt,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Decode(String),
    #[error("miner payload: {0}")]
    Payload(#[from] AttestError),
    #[error("receipt nonce differs from the payload's nonce")]
    NonceMismatch,
    #[error("receipt signature: {0}")]
    Receipt(KeyError),
}

impl AttestationRecord {
    /// The record id: `sha256_parts("rustchain/attestation-record/v2", [payload_id, node_key,
    /// u64be(slot)])`. The receipt is part of the record's identity: two receipts of one payload
    /// (two nodes, or one node key at two slots) are two records, every node holding both computes
    /// the same views, and the digests differ until both sides hold both. The receipt signature is
    /// left out, so a signer cannot mint many records of one (payload, key, slot) by re-signing.
    pub fn id(&self) -> Hash32 {
        record_id(&self.payload.payload_id(), &self.receipt.node_key, self.receipt.slot)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.body.len() + 256);
        ciborium::into_writer(self, &mut out).expect("writing CBOR to a Vec cannot fail");
        out
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<AttestationRecord, RecordError> {
        if bytes.len() > MAX_BODY_BYTES + 4096 {
            return Err(RecordError::Decode("record larger than the limit".into()));
        }
        ciborium::from_reader(bytes).map_err(|e| RecordError::Decode(e.to_string()))
    }

    /// Everything a node that did not accept the record checks before storing or relaying it.
    pub fn verify(&self, spec: &ChainSpec) -> Result<Submission, RecordError> {
        let sub = self.payload.verify()?;
        if sub.nonce != self.receipt.nonce {
            return Err(RecordError::NonceMismatch);
        }
        self.receipt.verify(spec, &self.payload.payload_id()).map_err(RecordError::Receipt)?;
        Ok(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_text_may_be_asked_whether_it_is_an_address() {
        let odd = format!("rt\u{e9}{}", "a".repeat(39));
        assert_eq!(odd.len(), 43);
        assert!(!is_rtc_address(&odd) && !is_non_canonical_address(&odd));
        let split = format!("RTC\u{e9}{}", "a".repeat(38));
        assert!(!is_rtc_address(&split) && !is_non_canonical_address(&split));
        assert!(is_rtc_address(&format!("RTC{}", "a".repeat(40))));
    }

    pub(crate) fn signed_body(key: &Keypair, wallet: &str, nonce: &str) -> Vec<u8> {
        let mut req = json!({
            "miner": wallet, "miner_id": format!("{wallet}-box"), "nonce": nonce,
            "report": {"nonce": nonce, "commitment": "ab12", "derived": {}, "entropy_score": 0.25},
            "device": {"family": "PowerPC", "arch": "G4", "model": "PowerMac3,6", "cpu": "7447A", "cores": 1,
                       "memory_gb": 1, "serial": "XB1234", "machine": "mdd"},
            "signals": {"macs": ["00:0a:95:aa:bb:cc"], "hostname": "mdd"},
            "fingerprint": {"all_passed": true, "checks": {"anti_emulation": {"passed": true, "data": {"vm_indicators": []}}}},
        });
        sign_request(key, req.as_object_mut().unwrap());
        serde_json::to_vec(&req).unwrap()
    }

    #[test]
    fn canonical_scheme_round_trip() {
        let key = Keypair::from_seed(&[7; 32]);
        let body = signed_body(&key, "wallet-a", "n1");
        let sub = parse_submission(&body).unwrap();
        assert_eq!(sub.scheme, Scheme::CanonicalJson);
        assert_eq!((sub.miner.as_str(), sub.miner_id.as_str(), sub.nonce.as_str()), ("wallet-a", "wallet-a-box", "n1"));
        // Re-ordered keys and whitespace do not change what was signed.
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        assert_eq!(parse_submission(&pretty).unwrap().canonical, sub.canonical);
        // Any change to a signed field breaks the signature.
        let tampered = String::from_utf8(body).unwrap().replace("7447A", "7447B");
        assert_eq!(parse_submission(tampered.as_bytes()).unwrap_err().code(), "INVALID_SIGNATURE");
    }

    #[test]
    fn legacy_scheme() {
        let key = Keypair::from_seed(&[9; 32]);
        let msg = legacy_message("box-1", "wallet-b", "n2", "c0ffee");
        let body = json!({
            "miner": "wallet-b", "miner_id": "box-1", "nonce": "n2",
            "report": {"nonce": "n2", "commitment": "c0ffee"},
            "device": {"device_family": "x86", "device_arch": "modern"}, "signals": {},
            "fingerprint": {"checks": {"clock_drift": true}},
            "signature": hex::encode(key.sign(msg.as_bytes())), "public_key": hex::encode(key.public()),
        });
        let sub = parse_submission(body.to_string().as_bytes()).unwrap();
        assert_eq!(sub.scheme, Scheme::Legacy);
        let d = Device::from_body(&sub.body);
        assert_eq!((d.family.as_str(), d.arch.as_str()), ("x86", "modern"));
        // The payload verifies again from its stored form.
        assert_eq!(sub.payload().verify().unwrap(), sub);
    }

    #[test]
    fn vector_v10b_serial_hash() {
        assert_eq!(serial_hash("ABC123", "modern"), "6b0032bb4aa5ae248b6f7aa17b5ddeaf8d787a37");
        assert_eq!(serial_hash("  abc123 ", "MODERN"), "6b0032bb4aa5ae248b6f7aa17b5ddeaf8d787a37");
    }

    #[test]
    fn shape_errors_have_codes() {
        let cases: &[(&str, &str)] = &[
            ("not json", "INVALID_JSON"),
            ("[]", "INVALID_JSON"),
            (r#"{"miner": 5}"#, "INVALID_FIELD"),
            (r#"{"miner": "a b"}"#, "INVALID_FIELD"),
            (r#"{"miner": "a"}"#, "MISSING_NONCE"),
            (r#"{"miner": "a", "nonce": "x", "report": {"nonce": "y"}}"#, "NONCE_MISMATCH"),
            (r#"{"miner": "a", "nonce": "x"}"#, "INVALID_DEVICE"),
            (r#"{"miner": "a", "nonce": "x", "device": {}}"#, "INVALID_SIGNALS"),
            (r#"{"miner": "a", "nonce": "x", "device": {}, "signals": {}, "fingerprint": {"checks": []}}"#, "INVALID_FINGERPRINT"),
            (r#"{"miner": "a", "nonce": "x", "device": {}, "signals": {}, "fingerprint": {"checks": {}}}"#, "INVALID_FINGERPRINT"),
            (r#"{"miner": "a", "nonce": "x", "device": {"cores": 0}, "signals": {}, "fingerprint": {"checks": {"x": 1}}}"#, "INVALID_DEVICE_CORES"),
            (r#"{"miner": "a", "nonce": "x", "device": {"cpu": 5}, "signals": {}, "fingerprint": {"checks": {"x": 1}}}"#, "INVALID_DEVICE"),
            (r#"{"miner": "a", "nonce": "x", "device": {}, "signals": {"macs": [""]}, "fingerprint": {"checks": {"x": 1}}}"#, "INVALID_SIGNALS_MACS"),
            (r#"{"miner": "a", "nonce": "x", "device": {}, "signals": {}, "fingerprint": {"checks": {"clock_drift": {"data": {"cv": "0.1"}}}}}"#, "INVALID_FINGERPRINT_METRIC"),
            (r#"{"miner": "a", "nonce": "x", "device": {}, "signals": {}, "fingerprint": {"checks": {"clock_drift": {"data": {"cv": true}}}}}"#, "INVALID_FINGERPRINT_METRIC"),
            (r#"{"miner": "a", "nonce": "x", "device": {}, "signals": {}, "fingerprint": {"checks": {"x": 1}}}"#, "MISSING_SIGNATURE"),
            (r#"{"miner": "a", "nonce": "x", "device": {}, "signals": {}, "fingerprint": {"checks": {"x": 1}}, "signature": "zz", "public_key": "00"}"#, "INVALID_SIGNATURE"),
        ];
        for (body, code) in cases {
            assert_eq!(parse_submission(body.as_bytes()).unwrap_err().code(), *code, "{body}");
        }
    }

    #[test]
    fn record_verifies_and_rejects_forgeries() {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let (miner, node, other) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]), Keypair::from_seed(&[3; 32]));
        let sub = parse_submission(&signed_body(&miner, "w", "nonce-1")).unwrap();
        let payload = sub.payload();
        let receipt = Receipt::sign(&spec, &node, &payload.payload_id(), 42, "nonce-1");
        let rec = AttestationRecord { payload, receipt };
        let back = AttestationRecord::from_cbor(&rec.to_cbor()).unwrap();
        assert_eq!(back, rec);
        back.verify(&spec).unwrap();

        let mut forged = rec.clone();
        forged.receipt.slot = 41;
        assert!(matches!(forged.verify(&spec), Err(RecordError::Receipt(_))));
        let mut forged = rec.clone();
        forged.receipt = Receipt::sign(&spec, &other, &rec.payload.payload_id(), 42, "nonce-2");
        assert!(matches!(forged.verify(&spec), Err(RecordError::NonceMismatch)));
        let mut forged = rec.clone();
        forged.payload.body = forged.payload.body.replace("\"w\"", "\"v\"");
        assert!(forged.verify(&spec).is_err());
        let other_net = ChainSpec { network_id: "othernet".into(), ..spec.clone() };
        assert!(rec.verify(&other_net).is_err());
        assert!(AttestationRecord::from_cbor(b"\xff\x00garbage").is_err());
    }
}
