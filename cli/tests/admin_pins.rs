//! `POST /admin/attest/key` (PROTOCOL.md §7.2): a wallet name pinned to a key can be unpinned only
//! by the network's admin node, the change is a replicated record that every validator applies in
//! its certified settlement, and a node that is not the admin node cannot make one.

mod common;

use common::*;
use serde_json::{Value, json};

fn admin(node: &TestNode, body: Value) -> (u16, Value) {
    node.post_raw("/admin/attest/key", serde_json::to_vec(&body).unwrap(), &[("x-admin-key", ADMIN_KEY), ("content-type", "application/json")])
}

fn attest(node: &TestNode, m: &Miner) -> (u16, Value) {
    node.post("/attest/submit", &m.body(&node.challenge(None)))
}

/// Wait for the start of an epoch after `after` with room to attest in it; returns it.
fn next_epoch_start(node: &TestNode, after: u64) -> u64 {
    loop {
        let (epoch, slot) = epoch_now(node);
        if epoch > after && slot <= 1 {
            return epoch;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn only_the_admin_node_unpins_a_wallet_name_and_every_validator_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 2, 1);
    let nodes = start_testnet(dir.path(), &[0, 1, 2]);
    let (primary, validator, relay) = (&nodes[0], &nodes[1], &nodes[2]);
    let first = Miner::new(41, "shared-name", "G4", "SER-ADMIN-1");
    let second = Miner::new(42, "shared-name", "G4", "SER-ADMIN-2");
    let first_key = hex::encode(first.key.public());
    let second_key = hex::encode(second.key.public());

    // The first key pins the name (certified), so the second key is refused everywhere.
    let e1 = attest_in_one_epoch(&[primary], std::slice::from_ref(&first));
    let s1 = certified(validator, e1, 60);
    assert!(s1["record"]["bindings"].as_array().unwrap().iter().any(|b| b["kind"] == "wallet_key" && b["owner"] == first_key.as_str()), "{s1}");
    let e2 = next_epoch_start(primary, e1);
    for n in &nodes {
        let (s, v) = attest(n, &second);
        assert_eq!((s, v["code"].as_str()), (403, Some("KEY_MISMATCH")), "{v}");
    }
    let (s, v) = admin(relay, json!({"miner": "shared-name", "action": "status"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["pinned_key"], first_key.as_str(), "{v}");

    // Bad requests get a clear 4xx; a node that is not the admin node cannot sign a change.
    let cases = [
        (json!({"miner": "shared-name", "action": "steal"}), 400, "INVALID_ACTION"),
        (json!({"miner": "shared-name", "action": "set"}), 400, "MISSING_FIELD"),
        (json!({"miner": "shared-name", "action": "set", "public_key": "00"}), 400, "INVALID_PUBLIC_KEY"),
        (json!({"miner": first.key.address(), "action": "unpin"}), 400, "NOT_PINNABLE"),
        (json!({"action": "unpin"}), 400, "MISSING_FIELD"),
    ];
    for (body, status, code) in cases {
        let (s, v) = admin(primary, body.clone());
        assert_eq!((s, v["code"].as_str(), v["ok"].as_bool()), (status, Some(code), Some(false)), "{body} -> {v}");
    }
    for n in [validator, relay] {
        let (s, v) = admin(n, json!({"miner": "shared-name", "action": "unpin", "note": "lost key"}));
        assert_eq!((s, v["code"].as_str()), (403, Some("NOT_AN_ADMIN_NODE")), "{v}");
    }
    let (s, v) = primary.post_raw("/admin/attest/key", br#"{"miner":"shared-name","action":"unpin"}"#.to_vec(), &[("x-admin-key", "wrong")]);
    assert!(s == 401 || s == 403, "{s} {v}");

    // The admin node unpins it: a record every validator applies with the epoch's certificate.
    let (s, v) = admin(primary, json!({"miner": "shared-name", "action": "unpin", "note": "miner lost the key"}));
    assert_eq!(s, 200, "{v}");
    let change_epoch = v["epoch"].as_u64().unwrap();
    assert!(change_epoch >= e2);
    assert_eq!(v["applies_from_epoch"].as_u64(), Some(change_epoch + 1));
    // The change reached the relay (it is a replicated record), pending until its epoch is certified.
    let st = relay.poll_until(20, "the change replicated", || admin(relay, json!({"miner": "shared-name"})).1, |st| {
        st["changes"].as_array().is_some_and(|c| c.iter().any(|c| c["epoch"].as_u64() == Some(change_epoch) && c["key"] == ""))
    });
    assert_eq!(st["pinned_key"], first_key.as_str(), "{st}");
    let hashes: Vec<Value> = nodes.iter().map(|n| certified(n, change_epoch, 60)["settlement_hash"].clone()).collect();
    assert!(hashes[0].is_string() && hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    let s = certified(validator, change_epoch, 5);
    let change: Vec<&Value> = s["record"]["bindings"].as_array().unwrap().iter().filter(|b| b["kind"] == "admin_key").collect();
    assert_eq!(change.len(), 1, "{s}");
    assert_eq!((change[0]["key"].as_str(), change[0]["owner"].as_str()), (Some("shared-name"), Some("")));

    for n in &nodes {
        certified(n, change_epoch, 60);
        let (_, st) = admin(n, json!({"miner": "shared-name"}));
        assert_eq!(st["changes"][0]["state"], "applied", "node {}: {st}", n.url);
    }

    // From the next epoch the name is free: the second key's claim pins it, on every node, and
    // the first key is now the one refused.
    let e3 = next_epoch_start(validator, change_epoch);
    let (s, v) = attest(validator, &second);
    assert_eq!(s, 200, "{v}");
    let s3 = certified(primary, e3, 60);
    assert!(s3["record"]["bindings"].as_array().unwrap().iter().any(|b| b["kind"] == "wallet_key" && b["owner"] == second_key.as_str()), "{s3}");
    assert!(s3["record"]["entries"].as_array().unwrap().iter().any(|e| e["miner"] == "shared-name"), "{s3}");
    for n in &nodes {
        certified(n, e3, 60);
    }
    next_epoch_start(primary, e3);
    for n in &nodes {
        let (s, v) = attest(n, &first);
        assert_eq!((s, v["code"].as_str()), (403, Some("KEY_MISMATCH")), "{v}");
        let (_, st) = admin(n, json!({"miner": "shared-name", "action": "status"}));
        assert_eq!(st["pinned_key"], second_key.as_str(), "{st}");
        assert_eq!(st["history"].as_array().unwrap().len(), 3, "pin, unpin, pin: {st}");
    }

    // `set` pins the name to a key outright: back to the first key, from the epoch after.
    let (s, v) = admin(primary, json!({"miner": "shared-name", "action": "set", "public_key": first_key, "note": "found the old key"}));
    assert_eq!(s, 200, "{v}");
    let set_epoch = v["epoch"].as_u64().unwrap();
    for n in &nodes {
        certified(n, set_epoch, 60);
    }
    next_epoch_start(primary, set_epoch);
    for n in &nodes {
        let (s, v) = attest(n, &second);
        assert_eq!((s, v["code"].as_str()), (403, Some("KEY_MISMATCH")), "{v}");
        let (_, st) = admin(n, json!({"miner": "shared-name"}));
        assert_eq!(st["pinned_key"], first_key.as_str(), "{st}");
    }
    let (s, v) = attest(validator, &first);
    assert_eq!(s, 200, "{v}");
}
