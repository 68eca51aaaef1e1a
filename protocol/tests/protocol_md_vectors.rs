//! The test vectors of docs/PROTOCOL.md (its ```` ```vectors ```` blocks), recomputed from the
//! document's own inputs with the crate's code: a settlement record's canonical bytes and hash
//! (§8), a vote's signed bytes and signature (§12), an attestation record id (§6) and a transfer
//! record id (§13.3). The registry root (§11) is checked in `crdt/tests/protocol_md_vectors.rs`.
//! Editing any byte of a vector, or changing the code's encoding, fails here. Also docs/API.md's
//! settlement answer: its record's hash and its certificate's votes.

mod doc_vectors;

use std::collections::{BTreeMap, BTreeSet};

use doc_vectors::{Vectors, expect_hex};
use protocol::attestation::{Receipt, Scheme, SignedPayload, record_id};
use protocol::consensus::Vote;
use protocol::crypto::{Keypair, sha256, sha256_parts, verify};
use protocol::enrollment::{BindingKind, Bindings};
use protocol::settlement::{Account, PendingTransfer, Settlement, TransferInput, settle};
use protocol::transfer::{SignedTransfer, TransferRecord};
use protocol::{ChainSpec, canonical_json, wire};
use serde_json::Value;

fn vectors() -> Vectors {
    doc_vectors::parse(include_str!("../../docs/PROTOCOL.md"))
}

fn json(v: &Vectors, name: &str) -> Value {
    serde_json::from_str(v.raw(name)).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"))
}

/// The bytes `sha256_parts(domain, parts)` hashes, written out as §3 defines them.
fn parts_preimage(domain: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in std::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
        out.extend_from_slice(&(p.len() as u64).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn seed(v: &Vectors, name: &str) -> Keypair {
    Keypair::from_seed(&v.hex_n::<32>(name))
}

/// A settlement's inputs as the record's JSON form shows them: the weights of `entries`, the
/// transfers of `transfers` (their results are recomputed), the bindings of `bindings`.
fn settle_from_record(record: &Value, accounts: &Value) -> Settlement {
    let field = |k: &str| record.get(k).unwrap_or_else(|| panic!("record has no {k}"));
    let uint = |x: &Value| x.as_u64().expect("an unsigned integer");
    let text = |x: &Value| x.as_str().expect("a string").to_owned();
    let spec = ChainSpec::builtin(field("network_id").as_str().unwrap()).expect("a built-in network");
    assert_eq!(uint(field("pot_urtc")), spec.epoch_pot_urtc);
    let prev: [u8; 32] = hex::decode(field("prev_settlement_hash").as_str().unwrap()).unwrap().try_into().unwrap();
    let weights: BTreeMap<String, u64> =
        field("entries").as_array().unwrap().iter().map(|e| (text(&e["miner"]), uint(&e["weight"]))).collect();
    let pending = field("transfers")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let p = PendingTransfer {
                tx_hash: text(&t["tx_hash"]).into(),
                from: text(&t["from"]).into(),
                to: text(&t["to"]).into(),
                amount_urtc: uint(&t["amount_urtc"]),
                nonce: uint(&t["nonce"]),
            };
            (p.tx_hash.clone(), p)
        })
        .collect();
    let accounts = accounts
        .as_object()
        .expect("accounts: a JSON object")
        .iter()
        .map(|(a, x)| (a.as_str().into(), Account { balance_urtc: uint(&x["balance_urtc"]), last_nonce: x["last_nonce"].as_u64() }))
        .collect();
    let bindings: Bindings = field("bindings")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| ((BindingKind::parse(b["kind"].as_str().unwrap()).expect("a binding kind"), text(&b["key"])), text(&b["owner"])))
        .collect();
    settle(&spec, uint(field("epoch")), prev, &weights, &bindings, &TransferInput { pending, accounts }).expect("settles")
}

#[test]
fn settlement_record_bytes_and_hash() {
    settlement_record_bytes_and_hash_on(&vectors());
}

fn settlement_record_bytes_and_hash_on(v: &Vectors) {
    let record = json(v, "settlement.record");
    let s = settle_from_record(&record, &json(v, "settlement.accounts"));
    // The rules of §8.1-8.3 give this very record (shares, results, transfer changes, order)...
    assert_eq!(s.to_json(), record, "settle() gives another record than settlement.record");
    // ...whose bytes (§8.4) and hash are these.
    let bytes = s.canonical_bytes();
    expect_hex(v, "settlement.canonical_bytes", &bytes);
    expect_hex(v, "settlement.hash", &s.hash());
    assert_eq!(s.hash(), sha256(&bytes));
    assert_eq!(Settlement::from_cbor(&bytes).unwrap(), s);
}

#[test]
fn vote_signed_bytes_and_signature() {
    vote_signed_bytes_and_signature_on(&vectors());
}

fn vote_signed_bytes_and_signature_on(v: &Vectors) {
    let key = seed(v, "vote.seed");
    let spec = ChainSpec { network_id: v.text("vote.network_id"), ..ChainSpec::builtin("devnet").unwrap() };
    let (epoch, round) = (v.uint("vote.epoch"), u32::try_from(v.uint("vote.round")).expect("round is a u32"));
    let (hash, digest) = (v.hex_n::<32>("vote.settlement_hash"), v.hex_n::<32>("vote.registry_digest"));
    expect_hex(v, "vote.public_key", &key.public());
    // §12: the SHA-256 input, written out by hand: network_id, u64be(epoch), u32be(round), the two hashes.
    let parts: [&[u8]; 5] = [spec.network_id.as_bytes(), &epoch.to_be_bytes(), &round.to_be_bytes(), &hash, &digest];
    let preimage = parts_preimage("rustchain/vote/v1", &parts);
    expect_hex(v, "vote.preimage", &preimage);
    let message = sha256(&preimage);
    assert_eq!(message, sha256_parts("rustchain/vote/v1", &parts));
    expect_hex(v, "vote.message", &message);
    let vote = Vote::sign(&spec, &key, epoch, round, hash, digest);
    expect_hex(v, "vote.signature", &vote.signature);
    // The Ed25519 message is the 32-byte digest itself.
    verify(&key.public(), &v.hex("vote.message"), &v.hex_n::<64>("vote.signature")).expect("signature over vote.message");
    vote.verify(&spec, &BTreeSet::from([key.public()])).expect("the vote verifies");
    let cbor = wire::encode_vote(&vote);
    expect_hex(v, "vote.cbor", &cbor);
    assert_eq!(wire::decode_vote(&v.hex("vote.cbor")).unwrap(), vote);
}

#[test]
fn attestation_record_id() {
    attestation_record_id_on(&vectors());
}

fn attestation_record_id_on(v: &Vectors) {
    let spec = ChainSpec { network_id: v.text("attestation.network_id"), ..ChainSpec::builtin("devnet").unwrap() };
    let miner = seed(v, "attestation.miner_seed");
    let node = seed(v, "attestation.node_seed");
    let body = v.text("attestation.body");
    assert_eq!(canonical_json::parse(body.as_bytes()).unwrap().to_canonical(), body, "the body is canonical JSON (§4)");
    let scheme = match v.uint("attestation.scheme") {
        0 => Scheme::CanonicalJson,
        1 => Scheme::Legacy,
        s => panic!("scheme {s}"),
    };
    assert_eq!(scheme, Scheme::CanonicalJson, "the miner signature below is over the body: the canonical JSON scheme");
    expect_hex(v, "attestation.public_key", &miner.public());
    expect_hex(v, "attestation.signature", &miner.sign(body.as_bytes()));
    let payload = SignedPayload { scheme, body, public_key: miner.public(), signature: v.hex_n::<64>("attestation.signature") };
    let payload_id = payload.payload_id();
    expect_hex(v, "attestation.payload_id", &payload_id);
    let (slot, nonce) = (v.uint("attestation.slot"), v.text("attestation.nonce"));
    expect_hex(v, "attestation.node_key", &node.public());
    let receipt_message =
        sha256_parts("rustchain/receipt/v1", &[spec.network_id.as_bytes(), &payload_id, &slot.to_be_bytes(), nonce.as_bytes()]);
    expect_hex(v, "attestation.receipt_message", &receipt_message);
    let receipt = Receipt::sign(&spec, &node, &payload_id, slot, &nonce);
    expect_hex(v, "attestation.receipt_signature", &receipt.signature);
    verify(&node.public(), &receipt_message, &receipt.signature).expect("the receipt signs the 32-byte message");
    let id = record_id(&payload_id, &node.public(), slot);
    assert_eq!(id, protocol::attestation::AttestationRecord { payload, receipt }.id());
    expect_hex(v, "attestation.record_id", &id);
}

#[test]
fn transfer_record_id() {
    transfer_record_id_on(&vectors());
}

fn transfer_record_id_on(v: &Vectors) {
    let spec = ChainSpec::builtin(&v.text("transfer.network_id")).expect("a built-in network");
    let sender = seed(v, "transfer.seed");
    let node = seed(v, "transfer.node_seed");
    let message = v.text("transfer.message");
    expect_hex(v, "transfer.public_key", &sender.public());
    expect_hex(v, "transfer.signature", &sender.sign(message.as_bytes()));
    let signed = SignedTransfer { message, public_key: sender.public(), signature: v.hex_n::<64>("transfer.signature") };
    let payload_id = signed.payload_id();
    expect_hex(v, "transfer.payload_id", &payload_id);
    let slot = v.uint("transfer.slot");
    expect_hex(v, "transfer.node_key", &node.public());
    let receipt_message = sha256_parts("rustchain/receipt/v1", &[spec.network_id.as_bytes(), &payload_id, &slot.to_be_bytes(), b""]);
    expect_hex(v, "transfer.receipt_message", &receipt_message);
    let receipt = Receipt::sign(&spec, &node, &payload_id, slot, "");
    expect_hex(v, "transfer.receipt_signature", &receipt.signature);
    let record = TransferRecord { transfer: signed, receipt };
    let t = record.verify(&spec).expect("a valid transfer record");
    assert_eq!(t.tx_hash(), v.text("transfer.tx_hash"));
    expect_hex(v, "transfer.record_id", &record.id());
}

#[test]
fn admin_record_id() {
    admin_record_id_on(&vectors());
}

fn admin_record_id_on(v: &Vectors) {
    let spec = ChainSpec::builtin(&v.text("admin.network_id")).expect("a built-in network");
    let admin = seed(v, "admin.seed");
    expect_hex(v, "admin.admin_key", &admin.public());
    let (epoch, wallet, key, note, issued) =
        (v.uint("admin.epoch"), v.text("admin.wallet"), v.text("admin.key"), v.text("admin.note"), v.uint("admin.issued_unix_ms"));
    let digest = sha256_parts(
        "rustchain/admin-pin/v1",
        &[spec.network_id.as_bytes(), &epoch.to_be_bytes(), wallet.as_bytes(), key.as_bytes(), note.as_bytes(), &issued.to_be_bytes()],
    );
    expect_hex(v, "admin.signed_digest", &digest);
    expect_hex(v, "admin.signature", &admin.sign(&digest));
    let record = protocol::admin::AdminRecord::sign(&spec, &admin, epoch, &wallet, &key, &note, issued).expect("valid fields");
    record.verify(&spec, &[admin.public()]).expect("the record verifies");
    let id = sha256_parts(
        "rustchain/admin-record/v1",
        &[&epoch.to_be_bytes(), wallet.as_bytes(), key.as_bytes(), note.as_bytes(), &issued.to_be_bytes(), &admin.public(), &record.signature],
    );
    assert_eq!(id, record.id());
    expect_hex(v, "admin.record_id", &id);
    expect_hex(v, "admin.cbor", &record.to_cbor());
}

/// docs/API.md's `GET /api/epoch/{n}/settlement` example: its record hashes to its
/// `settlement_hash`, the shares are the rule's, and its certificate's votes verify (PROTOCOL.md §12).
#[test]
fn api_md_settlement_example() {
    let doc = include_str!("../../docs/API.md");
    let at = doc.find("curl $NODE/api/epoch/1410610/settlement").expect("the example's request");
    let rest = &doc[at..];
    let start = rest.find("```json\n").expect("the example's answer") + "```json\n".len();
    let answer: Value = serde_json::from_str(&rest[start..start + rest[start..].find("```").unwrap()]).expect("JSON");
    let record = &answer["record"];
    let s = settle_from_record(record, &serde_json::json!({}));
    assert_eq!(&s.to_json(), record, "the example's record is not what settle() gives for its weights");
    let hash = hex::encode(s.hash());
    assert_eq!(answer["settlement_hash"], hash.as_str());
    let cert = &answer["certificate"];
    assert_eq!(cert["settlement_hash"], hash.as_str());
    let spec = ChainSpec::builtin(record["network_id"].as_str().unwrap()).unwrap();
    let (epoch, round) = (cert["epoch"].as_u64().unwrap(), cert["round"].as_u64().unwrap() as u32);
    assert_eq!(epoch, answer["epoch"].as_u64().unwrap());
    let key = |x: &Value| -> [u8; 32] { hex::decode(x.as_str().unwrap()).unwrap().try_into().unwrap() };
    let validators: BTreeSet<[u8; 32]> = cert["signers"].as_array().unwrap().iter().map(key).collect();
    assert_eq!(answer["validators"].as_u64(), Some(validators.len() as u64), "a lone node: the signers are the set");
    assert_eq!(answer["quorum"].as_u64(), Some(protocol::consensus::quorum(validators.len()) as u64));
    for v in cert["votes"].as_array().unwrap() {
        let vote = Vote {
            epoch,
            round,
            settlement_hash: s.hash(),
            registry_digest: key(&v["registry_digest"]),
            validator: key(&v["validator"]),
            signature: hex::decode(v["signature"].as_str().unwrap()).unwrap().try_into().unwrap(),
        };
        vote.verify(&spec, &validators).expect("the example's vote verifies");
    }
    let grouped = &answer["votes"][0];
    assert_eq!((grouped["round"].as_u64(), &grouped["settlement_hash"]), (Some(u64::from(round)), &Value::from(hash)));
    assert_eq!(grouped["validators"], cert["signers"]);
}

/// A check of one kind of vector.
type Check = fn(&Vectors);

/// Every vector in the document belongs to one of these tests (or to the crdt crate's registry
/// test), and each test reads every vector of its kind: a vector nobody checks fails too.
#[test]
fn every_vector_is_checked() {
    let kinds = ["settlement.", "vote.", "attestation.", "transfer.", "admin.", "registry."];
    let v = vectors();
    let stray: Vec<&str> = v.names().filter(|n| !kinds.iter().any(|k| n.starts_with(k))).collect();
    assert!(stray.is_empty(), "vectors no test checks: {stray:?}");
    let checks: [(&str, Check); 5] = [
        ("settlement.", settlement_record_bytes_and_hash_on),
        ("vote.", vote_signed_bytes_and_signature_on),
        ("attestation.", attestation_record_id_on),
        ("transfer.", transfer_record_id_on),
        ("admin.", admin_record_id_on),
    ];
    for (kind, check) in checks {
        let v = vectors();
        assert!(v.names().any(|n| n.starts_with(kind)), "docs/PROTOCOL.md has no {kind} vectors");
        check(&v);
        assert_eq!(v.unread(kind), Vec::<String>::new(), "vectors the test does not read");
    }
}
