//! Fuzzing, proptest style, of the decoders only the node has: the rows it reads back from its
//! database (what a restored backup could carry), read as `store.rs` reads them (ciborium into the
//! row type), and the anchor chain's answers (`ergo::parse_transaction`, R4/R5 registers).
//! Each target feeds arbitrary bytes and mutations of a valid encoding; nothing may panic, and
//! what decodes round-trips. Cases per target: `FUZZ_CASES` (default 256); `scripts/fuzz.sh`
//! runs 1,000,000. The protocol decoders are in protocol/tests/fuzz_decoders.rs.

use proptest::prelude::*;
use rustchain_node::anchoring::ergo;
use rustchain_node::store::{
    AnchorRecord, EnrollmentRow, JudgedTransfer, LedgerEntry, MinerSummary, ReceiptEquivocation, StoredClaim, StoredTransfer,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

#[path = "../../protocol/tests/fuzz_support/mod.rs"]
mod fuzz_support;
use fuzz_support::{apply, byte_edit, config, json_value};

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

/// One row type as the store reads it: whatever decodes encodes and decodes to itself.
fn row_round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(row) = ciborium::from_reader::<T, _>(bytes) {
        let again = ciborium::from_reader::<T, _>(&cbor(&row)[..]);
        prop_assert!(again.as_ref().is_ok_and(|a| *a == row), "{row:?} does not round-trip: {again:?}");
    }
    Ok(())
}

fn check_rows(bytes: &[u8]) -> Result<(), TestCaseError> {
    row_round_trips::<StoredClaim>(bytes)?;
    row_round_trips::<EnrollmentRow>(bytes)?;
    row_round_trips::<MinerSummary>(bytes)?;
    row_round_trips::<LedgerEntry>(bytes)?;
    row_round_trips::<StoredTransfer>(bytes)?;
    row_round_trips::<JudgedTransfer>(bytes)?;
    row_round_trips::<AnchorRecord>(bytes)?;
    row_round_trips::<ReceiptEquivocation>(bytes)?;
    row_round_trips::<protocol::consensus::Equivocation>(bytes)?;
    if let Ok(l) = ciborium::from_reader::<LedgerEntry, _>(bytes) {
        let _ = l.signed_amount();
    }
    Ok(())
}

fn seed_transfer() -> StoredTransfer {
    StoredTransfer {
        tx_hash: "ab".repeat(32),
        from: "RTCaaaa".into(),
        to: "RTCbbbb".into(),
        amount_urtc: 5,
        nonce: 1,
        slot: 9,
        memo: "h\u{e9}".into(),
    }
}

fn seed_rows() -> Vec<Vec<u8>> {
    let vote = protocol::consensus::Vote::sign(
        &protocol::ChainSpec::builtin("devnet").unwrap(),
        &protocol::crypto::Keypair::from_seed(&[9; 32]),
        7,
        0,
        [1; 32],
        [2; 32],
    );
    let mut other = vote.clone();
    other.settlement_hash = [3; 32];
    vec![
        cbor(&StoredClaim {
            wallet: "w".into(),
            key: "ab".repeat(32),
            miner_id: "m".into(),
            slot: 3,
            weight: 1_000_000,
            hw_weight: 2_500_000,
            fingerprint_passed: true,
            serial_hash: Some("cd".repeat(32)),
            family: "PowerPC".into(),
            arch: "G4".into(),
            profile: [1, 2, 3, 4, 5],
        }),
        cbor(&EnrollmentRow { slot: 3, id: [4; 32], weight: 1, miner_id: "m".into(), hw_weight: 2, fingerprint_passed: false }),
        cbor(&MinerSummary {
            miner: "w".into(),
            miner_id: "m".into(),
            family: "x86".into(),
            arch: "modern".into(),
            last_slot: 8,
            last_epoch: 1,
            fingerprint_passed: true,
            weight: 1,
            attestations: 2,
        }),
        cbor(&LedgerEntry {
            epoch: 1,
            wallet: "w".into(),
            amount_urtc: 7,
            kind: "transfer_out".into(),
            tx_hash: Some("ab".into()),
            counterparty: Some("v".into()),
        }),
        cbor(&seed_transfer()),
        cbor(&JudgedTransfer { epoch: 2, result: protocol::settlement::TransferResult::Applied, transfer: seed_transfer() }),
        cbor(&AnchorRecord { settlement_hash: [5; 32], tx_id: "aa".repeat(32), anchored_at: 1_700_000_000 }),
        cbor(&ReceiptEquivocation { payload_id: [6; 32], slots: (1, 2) }),
        cbor(&protocol::consensus::Equivocation { first: vote, second: other }),
    ]
}

/// The anchor chain's answer: what parses is the asked transaction, and the registers read back
/// are the strict inverses of their encoders.
fn check_anchor(body: &[u8], confirmed: bool) -> Result<(), TestCaseError> {
    let id = "aa".repeat(32);
    if let Ok(l) = ergo::parse_transaction(body, &id, confirmed) {
        prop_assert_eq!(&l.tx_id, &id);
        if !confirmed {
            prop_assert_eq!((l.confirmations, l.inclusion_height), (0, None));
        }
        if l.epoch.is_some() {
            prop_assert!(l.settlement_hash.is_some());
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        check_registers(text)?;
    }
    Ok(())
}

fn check_registers(text: &str) -> Result<(), TestCaseError> {
    if let Some(h) = ergo::decode_r4(text) {
        prop_assert_eq!(ergo::encode_r4(&h), text.to_ascii_lowercase());
    }
    if let Some(v) = ergo::decode_long(text) {
        prop_assert_eq!(ergo::encode_long(v), text.to_ascii_lowercase());
    }
    Ok(())
}

fn seed_anchor_tx() -> serde_json::Value {
    json!({"id": "aa".repeat(32), "inputs": [], "dataInputs": [], "outputs": [
        {"boxId": "b1", "value": 5, "additionalRegisters": {}},
        {"boxId": "b2", "value": 1_000_000, "additionalRegisters": {"R4": ergo::encode_r4(&[7; 32]), "R5": ergo::encode_long(355)}},
    ], "inclusionHeight": 1000, "numConfirmations": 4, "size": 300})
}

/// Paths in the anchor answer the parser reads.
const ANCHOR_PATHS: &[&[&str]] = &[
    &["id"],
    &["outputs"],
    &["numConfirmations"],
    &["inclusionHeight"],
    &["outputs", "1"],
    &["outputs", "1", "additionalRegisters"],
    &["outputs", "1", "additionalRegisters", "R4"],
    &["outputs", "1", "additionalRegisters", "R5"],
];

fn set_anchor_path(v: &mut serde_json::Value, path: &[&str], new: Option<serde_json::Value>) {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = v;
    for p in parents {
        cur = match p.parse::<usize>() {
            Ok(i) => match cur.get_mut(i) {
                Some(c) => c,
                None => return,
            },
            Err(_) => match cur.get_mut(*p) {
                Some(c) => c,
                None => return,
            },
        };
    }
    let Some(obj) = cur.as_object_mut() else { return };
    match new {
        Some(n) => obj.insert(last.to_string(), n),
        None => obj.remove(*last),
    };
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn store_rows_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_rows(&bytes)?;
    }

    #[test]
    fn store_rows_mutations(which in 0usize..9, edits in prop::collection::vec(byte_edit(), 1..6)) {
        check_rows(&apply(seed_rows()[which].clone(), &edits))?;
    }

    #[test]
    fn anchor_answer_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), confirmed in any::<bool>()) {
        check_anchor(&bytes, confirmed)?;
    }

    #[test]
    fn anchor_answer_mutations(edits in prop::collection::vec(byte_edit(), 1..6), confirmed in any::<bool>()) {
        check_anchor(&apply(serde_json::to_vec(&seed_anchor_tx()).unwrap(), &edits), confirmed)?;
    }

    #[test]
    fn anchor_answer_field_mutations(
        edits in prop::collection::vec((0..ANCHOR_PATHS.len(), prop::option::weighted(0.85, json_value())), 1..4),
        confirmed in any::<bool>(),
    ) {
        let mut tx = seed_anchor_tx();
        for (i, v) in edits {
            set_anchor_path(&mut tx, ANCHOR_PATHS[i], v);
        }
        check_anchor(&serde_json::to_vec(&tx).unwrap(), confirmed)?;
    }

    #[test]
    fn anchor_registers(text in prop_oneof!["0e20[0-9a-fA-F]{60,68}", "05[0-9a-fA-F]{0,24}", ".{0,80}"]) {
        check_registers(&text)?;
    }
}

/// The seeds decode, so the mutations start from rows and answers the node accepts.
#[test]
fn seeds_are_valid() {
    let rows = seed_rows();
    assert!(ciborium::from_reader::<StoredClaim, _>(&rows[0][..]).is_ok());
    assert!(ciborium::from_reader::<JudgedTransfer, _>(&rows[5][..]).is_ok());
    assert!(ciborium::from_reader::<protocol::consensus::Equivocation, _>(&rows[8][..]).is_ok());
    let l = ergo::parse_transaction(&serde_json::to_vec(&seed_anchor_tx()).unwrap(), &"aa".repeat(32), true).unwrap();
    assert_eq!((l.settlement_hash, l.epoch, l.confirmations), (Some([7; 32]), Some(355), 4));
}
