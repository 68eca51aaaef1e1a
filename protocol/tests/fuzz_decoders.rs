//! Fuzzing, proptest style, of every protocol decoder that takes bytes from outside:
//! - HTTP bodies: `/attest/submit` (`parse_submission`), `/wallet/transfer/signed`
//!   (`parse_transfer`), and the JSON objects of `/attest/challenge`, `/epoch/enroll` and
//!   `/admin/settle-epoch` (canonical JSON, then their fields as the handlers read them);
//! - canonical JSON and its re-encoding;
//! - peer messages: gossip announcements and votes, sync requests and responses (as the node's sync
//!   codec reads them, with ciborium as a cross-check), attestation, transfer and admin records,
//!   settlements and certificates in CBOR (also what the database holds);
//! - chain spec TOML.
//!
//! Each target feeds arbitrary bytes and structure-aware mutations of valid inputs, and checks that
//! nothing panics, that what decodes round-trips and respects the limits, and that nothing forged
//! verifies. Node-only decoders (database rows, the anchor chain's answers) are fuzzed in
//! node/tests/fuzz_node_decoders.rs.
//!
//! Cases per target: `FUZZ_CASES` (default 256, so CI stays fast). The full session (1,000,000
//! cases per target, with a table) is `scripts/fuzz.sh`; docs/SECURITY.md "Fuzzing" has the counts.
//! Regressions found by fuzzing live at the bottom of this file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use proptest::prelude::*;
use protocol::admin::AdminRecord;
use protocol::attestation::{self, AttestationRecord, Receipt, sign_request};
use protocol::canonical_json;
use protocol::consensus::{EpochCertificate, ValidatorKey, Vote};
use protocol::crypto::Keypair;
use protocol::settlement::{self, Settlement};
use protocol::transfer::{self, TransferOrder, TransferRecord};
use protocol::wire::{self, Id, InvAttestation, InvEpoch, Request, Response};
use protocol::ChainSpec;
use serde_json::json;

mod fuzz_support;
use fuzz_support::{apply, byte_edit, config, json_value};

// ---------------------------------------------------------------------------------------------
// Seeds: valid inputs that mutations start from.

fn seed_request(nonce: &str) -> serde_json::Map<String, serde_json::Value> {
    let v = json!({
        "miner": "wallet-fuzz", "miner_id": "fuzz-box", "nonce": nonce,
        "report": {"nonce": nonce, "commitment": "ab12", "derived": {}, "entropy_score": 0.033222},
        "device": {"family": "PowerPC", "arch": "G4", "model": "PowerMac3,6", "cpu": "PowerPC 7447A", "cores": 1,
                   "memory_gb": 1, "serial": "XB1234", "machine": "mdd"},
        "signals": {"macs": ["00:0a:95:aa:bb:cc"], "hostname": "mdd"},
        "fingerprint": {"all_passed": true, "checks": {
            "clock_drift": {"passed": true, "data": {"mean_ns": 1843211, "stdev_ns": 61234, "cv": 0.033222}},
            "cache_timing": {"passed": true, "data": {"l2_l1_ratio": 2.19, "l3_l2_ratio": 2.306}},
            "simd_identity": {"passed": true, "data": {"arch": "ppc", "has_altivec": true, "simd_flags_count": 1}},
            "thermal_drift": {"passed": true, "data": {"drift_ratio": 0.9836}},
            "instruction_jitter": {"passed": true, "data": {"cv": 0.02, "stddev_ns": 21456}},
            "anti_emulation": {"passed": true, "data": {"vm_indicators": [], "indicator_count": 0, "is_likely_vm": false}}
        }},
        "warthog": null,
    });
    v.as_object().unwrap().clone()
}

fn miner_key() -> Keypair {
    Keypair::from_seed(&[0x5a; 32])
}

fn signed_seed() -> Vec<u8> {
    let mut req = seed_request("0123456789abcdef");
    sign_request(&miner_key(), &mut req);
    serde_json::to_vec(&req).unwrap()
}

fn seed_record() -> AttestationRecord {
    let spec = ChainSpec::builtin("devnet").unwrap();
    let sub = attestation::parse_submission(&signed_seed()).unwrap();
    let payload = sub.payload();
    let receipt = Receipt::sign(&spec, &Keypair::from_seed(&[7; 32]), &payload.payload_id(), 1234, &sub.nonce);
    AttestationRecord { payload, receipt }
}

fn seed_settlement() -> Settlement {
    let spec = ChainSpec::builtin("devnet").unwrap();
    let weights: BTreeMap<String, u64> =
        [("alice", 2_500_000_000), ("bob", 800_000_000), ("carol", 1)].iter().map(|(m, w)| (m.to_string(), *w)).collect();
    // One judged transfer, so the decoder of the transfer fields is reached too.
    let t = settlement::PendingTransfer { tx_hash: "ab".into(), from: "alice".into(), to: "dave".into(), amount_urtc: 5, nonce: 1 };
    let input = settlement::TransferInput { pending: [(t.tx_hash.clone(), t)].into_iter().collect(), accounts: BTreeMap::new() };
    settlement::settle(&spec, 77, [3; 32], &weights, &Default::default(), &input).unwrap()
}

fn seed_transfer() -> serde_json::Value {
    let order = TransferOrder {
        to_address: "RTCabababababababababababababababababababab".into(),
        amount_rtc: 0.25,
        memo: "h\u{e9}llo \u{1F600}".into(),
        nonce: 1_700_000_000,
        chain_id: Some("devnet".into()),
    };
    order.sign(&miner_key())
}

/// Paths into the seed request that the rules read, plus arbitrary new keys.
const FIELD_PATHS: &[&[&str]] = &[
    &["miner"], &["miner_id"], &["nonce"], &["report"], &["report", "nonce"], &["report", "commitment"],
    &["device"], &["device", "arch"], &["device", "family"], &["device", "cores"], &["device", "serial"],
    &["device", "cpu"], &["signals"], &["signals", "macs"], &["signals", "hostname"], &["fingerprint"],
    &["fingerprint", "checks"], &["fingerprint", "checks", "clock_drift", "data", "cv"],
    &["fingerprint", "checks", "anti_emulation"], &["fingerprint", "checks", "anti_emulation", "data", "vm_indicators"],
    &["fingerprint", "checks", "simd_identity", "data"], &["fingerprint", "checks", "cache_timing", "data", "l2_l1_ratio"],
    &["fingerprint", "all_passed"], &["signature_type"], &["extra\u{e9}\u{1F600}"],
];

fn set_path(obj: &mut serde_json::Map<String, serde_json::Value>, path: &[&str], v: Option<serde_json::Value>) {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = obj;
    for p in parents {
        let entry = cur.entry(p.to_string()).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        cur = entry.as_object_mut().unwrap();
    }
    match v {
        Some(v) => {
            cur.insert(last.to_string(), v);
        }
        None => {
            cur.remove(*last);
        }
    }
}

/// Structure-aware: set or remove fields of a valid request, then (usually) sign it again, so the
/// mutation reaches the rules behind the signature check.
fn mutated_request() -> impl Strategy<Value = (Vec<u8>, bool)> {
    (prop::collection::vec((0..FIELD_PATHS.len(), prop::option::weighted(0.85, json_value())), 1..4), any::<bool>(), "[0-9a-f]{0,70}")
        .prop_map(|(edits, resign, nonce)| {
            let mut req = seed_request(&nonce);
            for (i, v) in edits {
                set_path(&mut req, FIELD_PATHS[i], v);
            }
            if resign {
                sign_request(&miner_key(), &mut req);
            }
            (serde_json::to_vec(&req).unwrap(), resign)
        })
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// What must hold for any body `parse_submission` accepts: the stored payload verifies again (on
/// another node) to the same submission, and evaluation at any slot does not panic.
fn check_accepted(bytes: &[u8], slot: u64) -> Result<(), TestCaseError> {
    let spec = ChainSpec::builtin("devnet").unwrap();
    if let Ok(sub) = attestation::parse_submission(bytes) {
        let again = sub.payload().verify();
        prop_assert!(again.is_ok(), "accepted body does not verify from its payload: {:?}", again.err());
        prop_assert_eq!(again.unwrap().canonical, sub.canonical.clone());
        let _ = attestation::evaluate(&spec, &sub, slot);
        let payload = sub.payload();
        let receipt = Receipt::sign(&spec, &Keypair::from_seed(&[1; 32]), &payload.payload_id(), slot, &sub.nonce);
        let rec = AttestationRecord { payload, receipt };
        let back = AttestationRecord::from_cbor(&rec.to_cbor());
        prop_assert!(back.as_ref().is_ok_and(|b| *b == rec), "record does not round-trip through CBOR");
        prop_assert!(rec.verify(&spec).is_ok());
    }
    Ok(())
}

/// Canonical JSON: whatever parses re-encodes to text that parses to the same value and encodes
/// to the same text again (the signed bytes are a fixed point).
fn check_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = canonical_json::parse(bytes) {
        let text = v.to_canonical();
        prop_assert!(text.is_ascii(), "canonical JSON is ASCII");
        let again = canonical_json::parse(text.as_bytes());
        prop_assert!(again.is_ok(), "canonical text does not parse: {text:?}");
        let again = again.unwrap();
        prop_assert_eq!(&again, &v);
        prop_assert_eq!(again.to_canonical(), text);
    }
    Ok(())
}

/// What must hold for any transfer `parse_transfer` accepts: the key derives to the sender, the
/// signature verifies over the rebuilt message, which is canonical JSON (a fixed point), and the
/// amount is a positive integer within the supply.
fn check_transfer(bytes: &[u8]) -> Result<(), TestCaseError> {
    let spec = ChainSpec::builtin("devnet").unwrap();
    if let Ok(t) = transfer::parse_transfer(&spec, bytes) {
        prop_assert_eq!(protocol::crypto::address_of(&t.public_key), t.from_address.clone());
        prop_assert!(protocol::crypto::verify(&t.public_key, t.message.as_bytes(), &t.signature).is_ok());
        let canonical = canonical_json::parse(t.message.as_bytes()).map(|v| v.to_canonical());
        prop_assert_eq!(canonical.ok(), Some(t.message.clone()));
        prop_assert!(t.amount_i64 >= 1 && t.amount_i64 as u64 <= spec.total_supply_urtc);
        prop_assert!(t.nonce >= 0);
        prop_assert_eq!(t.tx_hash().len(), 32);
    }
    Ok(())
}

/// Fields of the transfer body, plus an unknown one (ignored: not part of the signed message).
const TRANSFER_FIELDS: &[&str] =
    &["from_address", "to_address", "amount_rtc", "fee_rtc", "memo", "nonce", "public_key", "signature", "chain_id", "extra"];

fn check_record(bytes: &[u8]) -> Result<(), TestCaseError> {
    let spec = ChainSpec::builtin("devnet").unwrap();
    if let Ok(rec) = AttestationRecord::from_cbor(bytes) {
        let _ = rec.verify(&spec);
        let _ = rec.id();
        let back = AttestationRecord::from_cbor(&rec.to_cbor());
        prop_assert!(back.is_ok_and(|b| b == rec), "decoded record does not round-trip");
    }
    Ok(())
}

fn check_settlement(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(s) = Settlement::from_cbor(bytes) {
        let _ = s.hash();
        let _ = s.to_json();
        let back = Settlement::from_cbor(&s.canonical_bytes());
        prop_assert!(back.is_ok_and(|b| b == s), "decoded settlement does not round-trip");
    }
    Ok(())
}

fn check_spec(text: &str, now: u64, epoch: u64, slot: u64) -> Result<(), TestCaseError> {
    if let Ok(spec) = ChainSpec::from_toml(text) {
        let back = ChainSpec::from_toml(&spec.to_toml());
        prop_assert!(back.as_ref().is_ok_and(|b| *b == spec), "spec does not round-trip: {:?}", back.err());
        // The time arithmetic must not overflow for any accepted spec and any time.
        let _ = (spec.slot_at(now), spec.epoch_at(now), spec.epoch_of_slot(slot), spec.first_slot(epoch));
        let _ = (spec.epoch_end_unix(epoch), spec.settle_at_unix(epoch), spec.age_seconds(slot));
        let weights: BTreeMap<String, u64> = [("a".to_string(), 1), ("b".to_string(), u64::MAX / 4)].into();
        let s = settlement::settle(&spec, epoch, [0; 32], &weights, &Default::default(), &Default::default());
        prop_assert!(s.is_ok_and(|s| s.distributed_urtc == spec.epoch_pot_urtc));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn submission_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), slot in any::<u64>()) {
        check_accepted(&bytes, slot)?;
    }

    #[test]
    fn submission_byte_mutations(edits in prop::collection::vec(byte_edit(), 1..6), slot in any::<u64>()) {
        let bytes = apply(signed_seed(), &edits);
        check_accepted(&bytes, slot)?;
    }

    #[test]
    fn submission_field_mutations((bytes, resigned) in mutated_request(), slot in any::<u64>()) {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let parsed = attestation::parse_submission(&bytes);
        if resigned {
            // A re-signed body is refused only for its shape, never for its signature.
            if let Err(e) = &parsed {
                prop_assert_ne!(e.code(), "INVALID_SIGNATURE", "{} on {}", e, String::from_utf8_lossy(&bytes));
            }
        }
        if let Ok(sub) = &parsed {
            let _ = attestation::evaluate(&spec, sub, slot);
        }
        check_accepted(&bytes, slot)?;
    }

    #[test]
    fn canonical_json_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_canonical(&bytes)?;
    }

    #[test]
    fn canonical_json_generated_documents(v in json_value(), pretty in any::<bool>(), edits in prop::collection::vec(byte_edit(), 0..3)) {
        let text = if pretty { serde_json::to_vec_pretty(&v).unwrap() } else { serde_json::to_vec(&v).unwrap() };
        if edits.is_empty() {
            // serde_json's output is valid JSON: our parser must take it.
            prop_assert!(canonical_json::parse(&text).is_ok(), "refused valid JSON: {}", String::from_utf8_lossy(&text));
        }
        check_canonical(&apply(text, &edits))?;
    }

    #[test]
    fn python_float_repr_round_trips(bits in any::<u64>()) {
        let f = f64::from_bits(bits);
        if f.is_finite() {
            let text = canonical_json::py_float_repr(f);
            let back = canonical_json::parse(text.as_bytes());
            prop_assert!(matches!(back, Ok(canonical_json::Value::Float(g)) if g.to_bits() == f.to_bits()), "{f:?} -> {text}");
        }
    }

    #[test]
    fn transfer_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_transfer(&bytes)?;
    }

    #[test]
    fn transfer_byte_mutations(edits in prop::collection::vec(byte_edit(), 1..6)) {
        check_transfer(&apply(serde_json::to_vec(&seed_transfer()).unwrap(), &edits))?;
    }

    #[test]
    fn transfer_field_mutations(edits in prop::collection::vec((0..TRANSFER_FIELDS.len(), prop::option::weighted(0.85, json_value())), 1..4)) {
        let mut body = seed_transfer();
        for (i, v) in edits {
            let obj = body.as_object_mut().unwrap();
            match v {
                Some(v) => obj.insert(TRANSFER_FIELDS[i].to_string(), v),
                None => obj.remove(TRANSFER_FIELDS[i]),
            };
        }
        check_transfer(&serde_json::to_vec(&body).unwrap())?;
    }

    #[test]
    fn transfer_orders_round_trip(
        amount in 0.000001f64..8_000_000.0, nonce in 0i64..=i64::MAX, memo in ".{0,40}",
        to in "[A-Za-z0-9._:-]{1,128}", chain in any::<bool>(),
    ) {
        // Whatever our signer makes, the verifier takes, with the amount floored to uRTC.
        let order = TransferOrder { to_address: to, amount_rtc: amount, memo, nonce,
                                    chain_id: chain.then(|| "devnet".to_string()) };
        let body = serde_json::to_vec(&order.sign(&miner_key())).unwrap();
        let spec = ChainSpec::builtin("devnet").unwrap();
        match transfer::parse_transfer(&spec, &body) {
            Ok(t) => {
                prop_assert_eq!(Some(t.amount_i64), transfer::amount_urtc(amount));
                prop_assert_eq!(t.nonce, nonce);
            }
            // The only refusals a well-formed order can meet: sending to itself, an amount that
            // floors to 0, no chain id (devnet requires one).
            Err(e) => prop_assert!(order.to_address == miner_key().address()
                                   || (e.code() == "AMOUNT_TOO_SMALL" && transfer::amount_urtc(amount).is_none())
                                   || (e.code() == "CHAIN_ID_REQUIRED" && !chain), "{}", e),
        }
        check_transfer(&body)?;
    }

    #[test]
    fn record_cbor_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_record(&bytes)?;
    }

    #[test]
    fn record_cbor_mutations(edits in prop::collection::vec(byte_edit(), 1..6)) {
        check_record(&apply(seed_record().to_cbor(), &edits))?;
    }

    #[test]
    fn settlement_cbor_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_settlement(&bytes)?;
    }

    #[test]
    fn settlement_cbor_mutations(edits in prop::collection::vec(byte_edit(), 1..6)) {
        check_settlement(&apply(seed_settlement().canonical_bytes(), &edits))?;
    }

    #[test]
    fn chain_spec_arbitrary_text(text in ".{0,400}", now in any::<u64>(), epoch in any::<u64>(), slot in any::<u64>()) {
        check_spec(&text, now, epoch, slot)?;
    }

    #[test]
    fn chain_spec_mutations(
        edits in prop::collection::vec(byte_edit(), 1..4),
        field in 0usize..8, value in prop_oneof![any::<u64>().prop_map(|v| v.to_string()), Just("0".to_string()), Just("18446744073709551615".to_string()), Just("-1".to_string()), Just("\"x\"".to_string())],
        now in any::<u64>(), epoch in any::<u64>(), slot in any::<u64>(),
    ) {
        let base = ChainSpec::builtin("devnet").unwrap().to_toml();
        let keys = ["genesis_unix", "slot_seconds", "slots_per_epoch", "epoch_pot_urtc", "total_supply_urtc",
                    "settlement_grace_slots", "nonce_ttl_seconds", "network_id"];
        let replaced: String = base.lines().map(|l| {
            if l.starts_with(&format!("{} =", keys[field])) { format!("{} = {value}\n", keys[field]) } else { format!("{l}\n") }
        }).collect();
        check_spec(&replaced, now, epoch, slot)?;
        let bytes = apply(replaced.into_bytes(), &edits);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check_spec(text, now, epoch, slot)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Peer-to-peer messages: gossip announcements and votes (ciborium, `wire::*::decode`), sync
// requests and responses (`wire::Request/Response::decode`, cbor4ii, what `p2p::SyncCodec` reads;
// ciborium as a cross-check), transfer records, certificates.

fn devnet() -> ChainSpec {
    ChainSpec::builtin("devnet").unwrap()
}

fn validator_key() -> Keypair {
    Keypair::from_seed(&[9; 32])
}

fn validators() -> BTreeSet<ValidatorKey> {
    static KEYS: LazyLock<BTreeSet<ValidatorKey>> =
        LazyLock::new(|| [validator_key().public(), Keypair::from_seed(&[10; 32]).public()].into());
    KEYS.clone()
}

fn seed_transfer_record() -> TransferRecord {
    let spec = devnet();
    let t = transfer::parse_transfer(&spec, &serde_json::to_vec(&seed_transfer()).unwrap()).unwrap();
    TransferRecord::accept(&spec, &Keypair::from_seed(&[7; 32]), &t, 1234)
}

fn admin_key() -> Keypair {
    Keypair::from_seed(&[0x42; 32])
}

fn seed_admin_record() -> AdminRecord {
    AdminRecord::sign(&devnet(), &admin_key(), 12, "alice-g4", &hex::encode(miner_key().public()), "lost key", 1_700_000_000_123).unwrap()
}

fn seed_votes() -> Vec<Vote> {
    let hash = seed_settlement().hash();
    [validator_key(), Keypair::from_seed(&[10; 32])].iter().map(|k| Vote::sign(&devnet(), k, 77, 0, hash, [4; 32])).collect()
}

fn seed_certificate() -> EpochCertificate {
    EpochCertificate { epoch: 77, round: 0, settlement_hash: seed_settlement().hash(), votes: seed_votes() }
}

fn seed_requests() -> Vec<Request> {
    vec![
        Request::GetAttestations { ids: vec![Id([5; 32]), Id([6; 32])] },
        Request::GetEpoch { epoch: 3 },
        Request::EpochDigest { epoch: 4 },
        Request::BucketIds { epoch: 4, buckets: vec![1, 4095] },
        Request::SyncPage { from_epoch: 1, to_epoch: 2, after: Some((1, Id([6; 32]))), limit: 10 },
    ]
}

fn seed_responses() -> Vec<Response> {
    vec![
        Response::Attestations { records: vec![seed_record()], transfers: vec![seed_transfer_record()], admin: vec![seed_admin_record()] },
        Response::Epoch { settlement: Some(seed_settlement()), certificate: Some(seed_certificate()) },
        Response::Page { ids: vec![(1, Id([1; 32])), (2, Id([2; 32]))], next: Some((2, Id([2; 32]))) },
        Response::Digest { epoch: 9, buckets: [(1u16, Id([1; 32])), (4095, Id([2; 32]))].into(), records: 2 },
        Response::Error { code: "BUSY".into() },
    ]
}

fn seed_gossip() -> &'static [Vec<u8>] {
    static SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| vec![
        InvAttestation { ids: vec![Id([1; 32]), Id([2; 32])] }.encode(),
        InvEpoch { epoch: 9, settlement_hash: Id([3; 32]), registry_digest: Id([4; 32]), records: 2 }.encode(),
        wire::encode_vote(&seed_votes()[0]),
    ]);
    &SEEDS
}

/// A seed picked by index, in either of the two CBOR encoders nodes use (made once: the
/// mutation targets would otherwise spend most of their time signing seeds).
fn seed_sync(requests: bool, i: usize, cbor4ii: bool) -> Vec<u8> {
    static SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
        (0..20).map(|k| make_seed_sync(k & 1 == 1, (k >> 2) % 5, k & 2 == 2)).collect()
    });
    SEEDS[(i % 5) << 2 | (cbor4ii as usize) << 1 | requests as usize].clone()
}

fn make_seed_sync(requests: bool, i: usize, cbor4ii: bool) -> Vec<u8> {
    fn enc<T: serde::Serialize>(v: &T, cbor4ii: bool) -> Vec<u8> {
        if cbor4ii {
            cbor4ii::serde::to_vec(Vec::new(), v).unwrap()
        } else {
            let mut out = Vec::new();
            ciborium::into_writer(v, &mut out).unwrap();
            out
        }
    }
    if requests {
        let r = seed_requests();
        enc(&r[i % r.len()], cbor4ii)
    } else {
        let r = seed_responses();
        enc(&r[i % r.len()], cbor4ii)
    }
}

fn c4_decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    cbor4ii::serde::from_slice(bytes).ok()
}

/// Gossip and votes: what decodes respects the limits, round-trips, and verifies without panic.
fn check_gossip(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(inv) = InvAttestation::decode(bytes) {
        prop_assert!(bytes.len() <= wire::MAX_GOSSIP_BYTES);
        prop_assert!((1..=wire::MAX_IDS_PER_MESSAGE).contains(&inv.ids.len()), "{} ids", inv.ids.len());
        prop_assert_eq!(InvAttestation::decode(&inv.encode()), Ok(inv));
    }
    if let Ok(e) = InvEpoch::decode(bytes) {
        prop_assert!(bytes.len() <= wire::MAX_GOSSIP_BYTES);
        prop_assert_eq!(InvEpoch::decode(&e.encode()), Ok(e));
    }
    if let Ok(v) = wire::decode_vote(bytes) {
        prop_assert!(bytes.len() <= 1024);
        prop_assert_eq!(wire::decode_vote(&wire::encode_vote(&v)), Ok(v.clone()));
        if v.verify(&devnet(), &validators()).is_ok() {
            // Only what a validator signed verifies: the seed votes' fields, unchanged.
            prop_assert!(seed_votes().contains(&v), "a vote nobody signed verifies: {v:?}");
        }
    }
    Ok(())
}

/// What a node does with a decoded sync answer's contents: verify each record and certificate.
fn verify_response(r: &Response) -> Result<(), TestCaseError> {
    let spec = devnet();
    match r {
        Response::Attestations { records, transfers, admin } => {
            for rec in records {
                let _ = (rec.verify(&spec), rec.id());
            }
            for a in admin {
                if a.verify(&spec, &[admin_key().public()]).is_ok() {
                    prop_assert_eq!(a, &seed_admin_record(), "an admin record nobody signed verifies");
                }
                let _ = a.id();
            }
            for t in transfers {
                if t.verify(&spec).is_ok() {
                    prop_assert_eq!(t, &seed_transfer_record(), "a transfer record nobody signed verifies");
                }
                let _ = t.id();
            }
        }
        Response::Epoch { settlement, certificate } => {
            if let Some(s) = settlement {
                let _ = (s.hash(), s.to_json());
            }
            if let Some(c) = certificate
                && c.verify(&spec, &validators()).is_ok() {
                prop_assert_eq!(c.settlement_hash, seed_settlement().hash(), "a certificate nobody signed verifies");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Sync requests and responses. `wire::Request/Response::decode` are the wire codec (cbor4ii,
/// as `p2p::SyncCodec` reads them; an answer through `Response::decode_answer` for the request it
/// answers); ciborium reads the same bytes as a cross-check. What decodes round-trips, the two
/// libraries agree when both decode, an answer accepted for a request kind is within that kind's
/// size and item limits and is the kind's answer, and the limits hold.
fn check_sync(bytes: &[u8]) -> Result<(), TestCaseError> {
    use wire::RequestKind;
    let by_wire = Request::decode(bytes).ok();
    if let Some(r) = &by_wire {
        prop_assert!(bytes.len() <= wire::MAX_REQUEST_BYTES);
        if let Request::GetAttestations { ids } = r {
            prop_assert!(ids.len() <= wire::MAX_IDS_PER_MESSAGE);
        }
        prop_assert_eq!(Request::decode(&r.encode()).ok(), Some(r.clone()));
    }
    let by_ciborium = ciborium::from_reader::<Request, _>(bytes).ok();
    if let (Some(a), Some(b)) = (&by_wire, &by_ciborium) {
        prop_assert_eq!(a, b, "ciborium and cbor4ii read one request differently");
    }
    let by_wire = Response::decode(bytes).ok();
    if let Some(r) = &by_wire {
        prop_assert_eq!(Response::decode(&r.encode()).ok(), Some(r.clone()));
        verify_response(r)?;
    }
    for kind in [RequestKind::GetAttestations, RequestKind::GetEpoch, RequestKind::EpochDigest, RequestKind::BucketIds, RequestKind::SyncPage] {
        if let Ok(r) = Response::decode_answer(kind, bytes) {
            prop_assert!(bytes.len() <= kind.answer_limit());
            prop_assert_eq!(Some(&r), by_wire.as_ref(), "an answer decodes as another value than a response");
            let within = match (&r, kind) {
                (Response::Error { .. }, _) | (Response::Epoch { .. }, RequestKind::GetEpoch) => true,
                (Response::Attestations { records, transfers, admin }, RequestKind::GetAttestations) => records.len() + transfers.len() + admin.len() <= wire::MAX_RECORDS_PER_RESPONSE,
                (Response::Digest { buckets, .. }, RequestKind::EpochDigest) => buckets.keys().all(|b| usize::from(*b) < wire::DIGEST_BUCKETS),
                (Response::Page { ids, .. }, RequestKind::BucketIds) => ids.len() <= wire::MAX_IDS_PER_BUCKET_ANSWER,
                (Response::Page { ids, .. }, RequestKind::SyncPage) => ids.len() <= wire::MAX_IDS_PER_PAGE,
                _ => false,
            };
            prop_assert!(within, "{:?} accepted an answer out of its bounds", kind);
        }
    }
    let by_ciborium = ciborium::from_reader::<Response, _>(bytes).ok();
    if let Some(r) = &by_ciborium {
        verify_response(r)?;
    }
    if let (Some(a), Some(b)) = (&by_wire, &by_ciborium) {
        prop_assert_eq!(a, b, "ciborium and cbor4ii read one response differently");
    }
    Ok(())
}

/// Transfer and admin records (gossiped in `Attestations` answers and stored) and certificates (in
/// `Epoch` answers and stored, read with ciborium).
fn check_transfer_record(bytes: &[u8]) -> Result<(), TestCaseError> {
    let spec = devnet();
    if let Ok(rec) = TransferRecord::from_cbor(bytes) {
        let _ = rec.id();
        if let Ok(t) = rec.verify(&spec) {
            prop_assert_eq!(&t.signed(), &rec.transfer);
            prop_assert!(t.amount_i64 >= 1 && t.amount_i64 as u64 <= spec.total_supply_urtc);
        }
        let back = TransferRecord::from_cbor(&rec.to_cbor());
        prop_assert!(back.is_ok_and(|b| b == rec), "decoded transfer record does not round-trip");
    }
    if let Ok(a) = AdminRecord::from_cbor(bytes) {
        let _ = a.id();
        if a.verify(&spec, &[admin_key().public()]).is_ok() {
            prop_assert_eq!(&a, &seed_admin_record(), "an admin record nobody signed verifies");
        }
        prop_assert!(AdminRecord::from_cbor(&a.to_cbor()).is_ok_and(|b| b == a), "decoded admin record does not round-trip");
    }
    if let Ok(c) = ciborium::from_reader::<EpochCertificate, _>(bytes) {
        if c.verify(&spec, &validators()).is_ok() {
            prop_assert_eq!(c.settlement_hash, seed_settlement().hash(), "a certificate nobody signed verifies");
        }
        let mut out = Vec::new();
        ciborium::into_writer(&c, &mut out).unwrap();
        prop_assert_eq!(ciborium::from_reader::<EpochCertificate, _>(&out[..]).ok(), Some(c));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HTTP bodies of `/attest/challenge`, `/epoch/enroll` and `/admin/settle-epoch`: a JSON object
// read with `canonical_json::parse` (node/src/api.rs `json_object`), then fields read as the
// handlers read them. (`/attest/submit` and `/wallet/transfer/signed` are the targets above.)

const ENROLL_EPOCH: u64 = 77;

fn seed_enroll() -> serde_json::Value {
    let key = miner_key();
    let (wallet, miner_id) = ("wallet-fuzz", "fuzz-box");
    let sig = key.sign(format!("{wallet}|{miner_id}|{ENROLL_EPOCH}").as_bytes());
    json!({"miner_pubkey": wallet, "miner_id": miner_id, "signature": hex::encode(sig),
           "public_key": hex::encode(key.public()), "epoch": 5})
}

const ENROLL_FIELDS: &[&str] = &["miner_pubkey", "miner_id", "signature", "public_key", "epoch", "extra"];

fn check_http_object(bytes: &[u8]) -> Result<(), TestCaseError> {
    use canonical_json::Value;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        match canonical_json::parse(bytes) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Ok(()),
        }
    };
    // /attest/challenge
    if let Some(Value::Str(s)) = body.get("miner_id")
        && attestation::valid_miner_id(s) {
        prop_assert!((1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)));
    }
    // /admin/settle-epoch
    let _ = body.get("epoch").and_then(Value::as_i64).and_then(|e| u64::try_from(e).ok());
    // /epoch/enroll
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    if let (Some(wallet), Some(miner_id), Some(sig), Some(pk)) =
        (field("miner_pubkey"), field("miner_id"), field("signature"), field("public_key"))
    {
        let sig = protocol::crypto::decode_hex::<64>("signature", sig);
        let pk = protocol::crypto::decode_hex::<32>("public_key", pk);
        if let (Ok(sig), Ok(pk)) = (sig, pk) {
            let msg = format!("{wallet}|{miner_id}|{ENROLL_EPOCH}");
            if protocol::crypto::verify(&pk, msg.as_bytes(), &sig).is_ok() {
                prop_assert_eq!((wallet, miner_id, pk), ("wallet-fuzz", "fuzz-box", miner_key().public()), "forged enrollment verifies");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gossip_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_gossip(&bytes)?;
    }

    #[test]
    fn gossip_mutations(which in 0usize..3, edits in prop::collection::vec(byte_edit(), 1..6)) {
        check_gossip(&apply(seed_gossip()[which].clone(), &edits))?;
    }

    #[test]
    fn sync_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_sync(&bytes)?;
    }

    #[test]
    fn sync_mutations(requests in any::<bool>(), which in 0usize..5, cbor4ii in any::<bool>(), edits in prop::collection::vec(byte_edit(), 1..6)) {
        check_sync(&apply(seed_sync(requests, which, cbor4ii), &edits))?;
    }

    #[test]
    fn transfer_record_cbor_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_transfer_record(&bytes)?;
    }

    #[test]
    fn transfer_record_cbor_mutations(which in 0usize..3, edits in prop::collection::vec(byte_edit(), 1..6)) {
        static SEEDS: LazyLock<[Vec<u8>; 3]> = LazyLock::new(|| {
            let mut out = Vec::new();
            ciborium::into_writer(&seed_certificate(), &mut out).unwrap();
            [seed_transfer_record().to_cbor(), out, seed_admin_record().to_cbor()]
        });
        check_transfer_record(&apply(SEEDS[which].clone(), &edits))?;
    }

    #[test]
    fn http_object_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_http_object(&bytes)?;
    }

    #[test]
    fn http_object_mutations(edits in prop::collection::vec(byte_edit(), 1..6)) {
        static SEED: LazyLock<Vec<u8>> = LazyLock::new(|| serde_json::to_vec(&seed_enroll()).unwrap());
        check_http_object(&apply(SEED.clone(), &edits))?;
    }

    #[test]
    fn http_object_field_mutations(edits in prop::collection::vec((0..ENROLL_FIELDS.len(), prop::option::weighted(0.85, json_value())), 1..4)) {
        static SEED: LazyLock<serde_json::Value> = LazyLock::new(seed_enroll);
        let mut body = SEED.clone();
        for (i, v) in edits {
            let obj = body.as_object_mut().unwrap();
            match v {
                Some(v) => obj.insert(ENROLL_FIELDS[i].to_string(), v),
                None => obj.remove(ENROLL_FIELDS[i]),
            };
        }
        check_http_object(&serde_json::to_vec(&body).unwrap())?;
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds are valid (so the mutation targets start from something the decoders accept).

#[test]
fn seeds_are_valid() {
    let spec = ChainSpec::builtin("devnet").unwrap();
    let sub = attestation::parse_submission(&signed_seed()).unwrap();
    assert!(attestation::evaluate(&spec, &sub, 10).verdict.passed);
    seed_record().verify(&spec).unwrap();
    assert_eq!(Settlement::from_cbor(&seed_settlement().canonical_bytes()).unwrap(), seed_settlement());
    transfer::parse_transfer(&spec, &serde_json::to_vec(&seed_transfer()).unwrap()).unwrap();
    seed_transfer_record().verify(&spec).unwrap();
    seed_certificate().verify(&spec, &validators()).unwrap();
    for (i, bytes) in seed_gossip().iter().enumerate() {
        let decoded = [InvAttestation::decode(bytes).is_ok(), InvEpoch::decode(bytes).is_ok(), wire::decode_vote(bytes).is_ok()];
        assert!(decoded[i], "gossip seed {i}");
    }
    for i in 0..5 {
        for c4 in [false, true] {
            assert_eq!(c4_decode::<Request>(&seed_sync(true, i, c4)).as_ref(), Some(&seed_requests()[i]));
            assert_eq!(Request::decode(&seed_sync(true, i, c4)).as_ref(), Ok(&seed_requests()[i]));
            assert_eq!(c4_decode::<Response>(&seed_sync(false, i, c4)).as_ref(), Some(&seed_responses()[i]));
            assert_eq!(Response::decode(&seed_sync(false, i, c4)).as_ref(), Ok(&seed_responses()[i]));
        }
    }
    let enroll = serde_json::to_vec(&seed_enroll()).unwrap();
    let body = canonical_json::parse(&enroll).unwrap();
    let sig = protocol::crypto::decode_hex::<64>("signature", body.get("signature").unwrap().as_str().unwrap()).unwrap();
    protocol::crypto::verify(&miner_key().public(), format!("wallet-fuzz|fuzz-box|{ENROLL_EPOCH}").as_bytes(), &sig).unwrap();
}

/// The starting corpus of the libFuzzer targets (fuzz/), written when `FUZZ_SEED_DIR` is set
/// (scripts/fuzz.sh does): one directory per target, one valid input per file.
#[test]
fn write_libfuzzer_seeds() {
    let Ok(dir) = std::env::var("FUZZ_SEED_DIR") else { return };
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("records", seed_record().to_cbor()),
        ("records", seed_transfer_record().to_cbor()),
        ("records", seed_settlement().canonical_bytes()),
        ("json_bodies", signed_seed()),
        ("json_bodies", serde_json::to_vec(&seed_transfer()).unwrap()),
        ("json_bodies", serde_json::to_vec(&seed_enroll()).unwrap()),
        ("chain_spec", devnet().to_toml().into_bytes()),
    ];
    seeds.extend(seed_gossip().iter().map(|b| ("wire", b.clone())));
    for i in 0..5 {
        for (requests, c4) in [(true, false), (true, true), (false, false), (false, true)] {
            seeds.push(("wire", seed_sync(requests, i, c4)));
        }
    }
    for (i, (target, bytes)) in seeds.iter().enumerate() {
        let d = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{i}")), bytes).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes random generation rarely reaches: very deep nesting (stack), very long runs.

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    for depth in [200usize, 1_000, 100_000] {
        let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(canonical_json::parse(json.as_bytes()).is_err(), "depth {depth}");
        let obj = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert!(attestation::parse_submission(obj.as_bytes()).is_err(), "depth {depth}");
        // CBOR: nested arrays (0x81 = array of one), and a record whose ignored extra field nests.
        let mut cbor = vec![0x81u8; depth];
        cbor.push(0x00);
        assert!(AttestationRecord::from_cbor(&cbor).is_err());
        assert!(Settlement::from_cbor(&cbor).is_err());
        let mut rec = seed_record().to_cbor();
        // A map of 2 entries becomes 3: "zz" -> deeply nested arrays.
        assert_eq!(rec[0], 0xa2);
        rec[0] = 0xa3;
        rec.extend_from_slice(&[0x62, b'z', b'z']);
        rec.extend(std::iter::repeat_n(0x81u8, depth));
        rec.push(0x00);
        let _ = AttestationRecord::from_cbor(&rec);
    }
    let depth_64 = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert!(canonical_json::parse(depth_64.as_bytes()).is_ok(), "the documented limit is accepted");
}

#[test]
fn long_inputs_are_handled() {
    // Declared lengths far beyond the input: refused without allocating them.
    for huge in [&[0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], &[0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]] {
        assert!(AttestationRecord::from_cbor(huge).is_err());
        assert!(Settlement::from_cbor(huge).is_err());
    }
    let big_int = format!("{{\"n\":{}}}", "9".repeat(5000));
    assert!(canonical_json::parse(big_int.as_bytes()).is_err(), "ints over 4300 digits are refused, as CPython does");
    let long_str = format!("\"{}\"", "\\u00e9".repeat(200_000));
    assert_eq!(canonical_json::parse(long_str.as_bytes()).unwrap().to_canonical().len(), long_str.len());
}

/// The generators must keep reaching the code behind the parsers: a fair share of structure-aware
/// mutations is accepted (so the accepted-input properties are exercised), and so is a share of
/// the byte mutations of records and settlements.
#[test]
fn mutations_reach_past_the_parsers() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let n = 2000;
    let mut accepted = 0;
    for _ in 0..n {
        let (bytes, _) = mutated_request().new_tree(&mut runner).unwrap().current();
        accepted += attestation::parse_submission(&bytes).is_ok() as usize;
    }
    let (mut records, mut settlements) = (0, 0);
    let edits = prop::collection::vec(byte_edit(), 1..3);
    for _ in 0..n {
        let e = edits.new_tree(&mut runner).unwrap().current();
        records += AttestationRecord::from_cbor(&apply(seed_record().to_cbor(), &e)).is_ok() as usize;
        settlements += Settlement::from_cbor(&apply(seed_settlement().canonical_bytes(), &e)).is_ok() as usize;
    }
    eprintln!("accepted of {n}: submissions {accepted}, records {records}, settlements {settlements}");
    assert!(accepted * 10 >= n, "only {accepted} of {n} mutated submissions accepted");
    // A settlement record is mostly field names since version 2 (two more arrays of maps), and a
    // byte edit inside a name makes it undecodable: 1 in 40 still reaches the decoded form.
    assert!(records * 20 >= n && settlements * 40 >= n, "records {records}, settlements {settlements} of {n}");
}
