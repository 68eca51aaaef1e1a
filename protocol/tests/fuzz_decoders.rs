//! Fuzzing, proptest style, of every decoder that takes bytes from outside: the `/attest/submit`
//! body (`parse_submission`), the `/wallet/transfer/signed` body (`parse_transfer`), canonical JSON and its re-encoding, attestation records and
//! settlements in CBOR (what peers send), and chain spec TOML. Each target feeds arbitrary bytes
//! and structure-aware mutations of valid inputs, and checks that nothing panics and that what
//! decodes round-trips.
//!
//! Cases per target: `FUZZ_CASES` (default 256, so CI stays fast). A long session:
//! `FUZZ_CASES=200000 cargo test --release -p rustchain-protocol --test fuzz_decoders`.
//! Regressions found by fuzzing live at the bottom of this file.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::Config;
use protocol::attestation::{self, AttestationRecord, Receipt, sign_request};
use protocol::canonical_json;
use protocol::crypto::Keypair;
use protocol::settlement::{self, Settlement};
use protocol::transfer::{self, TransferOrder};
use protocol::ChainSpec;
use serde_json::json;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

fn config() -> Config {
    Config { cases: cases(), failure_persistence: None, ..Config::default() }
}

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

// ---------------------------------------------------------------------------------------------
// Mutations.

#[derive(Clone, Debug)]
enum ByteEdit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Duplicate(usize, usize, usize),
    Truncate(usize),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| ByteEdit::Flip(i, m)),
        (any::<usize>(), prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(b'{'), Just(b']'), Just(0xff), Just(0x00)])
            .prop_map(|(i, b)| ByteEdit::Set(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| ByteEdit::Insert(i, v)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Remove(i, n)),
        (any::<usize>(), 1usize..64, any::<usize>()).prop_map(|(i, n, at)| ByteEdit::Duplicate(i, n, at)),
        any::<usize>().prop_map(ByteEdit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[ByteEdit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        if len == 0 {
            bytes.push(b'{');
            continue;
        }
        match e {
            ByteEdit::Flip(i, m) => bytes[i % len] ^= m,
            ByteEdit::Set(i, b) => bytes[i % len] = *b,
            ByteEdit::Insert(i, v) => {
                let at = i % (len + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            ByteEdit::Remove(i, n) => {
                let at = i % len;
                let end = (at + n).min(len);
                bytes.drain(at..end);
            }
            ByteEdit::Duplicate(i, n, to) => {
                let at = i % len;
                let chunk: Vec<u8> = bytes[at..(at + n).min(len)].to_vec();
                let to = to % (len + 1);
                bytes.splice(to..to, chunk);
            }
            ByteEdit::Truncate(i) => bytes.truncate(i % len),
        }
    }
    bytes
}

/// Arbitrary JSON values, including the awkward ones: big and negative integers, floats of
/// arbitrary bit patterns, non-ASCII and control characters, deep nesting.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        any::<f64>().prop_filter_map("finite", |f| f.is_finite().then(|| json!(f))),
        prop_oneof![Just(0.0f64), Just(-0.0), Just(1e16), Just(1e-5), Just(0.0001), Just(f64::MIN_POSITIVE), Just(f64::MAX), Just(5e-324)]
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
        "[\\x00-\\x1f\"\\\\\u{80}-\u{10ffff}]{0,6}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
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
// Seeds are valid (so the mutation targets start from something the decoders accept).

#[test]
fn seeds_are_valid() {
    let spec = ChainSpec::builtin("devnet").unwrap();
    let sub = attestation::parse_submission(&signed_seed()).unwrap();
    assert!(attestation::evaluate(&spec, &sub, 10).verdict.passed);
    seed_record().verify(&spec).unwrap();
    assert_eq!(Settlement::from_cbor(&seed_settlement().canonical_bytes()).unwrap(), seed_settlement());
    transfer::parse_transfer(&spec, &serde_json::to_vec(&seed_transfer()).unwrap()).unwrap();
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
