//! One node end to end, through the real binary: field-miner attestations (passing, VM, legacy,
//! replayed, serial conflict), automatic settlement, balances and ledger, checked against an
//! independent recomputation of weights, shares and the settlement hash.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{ADMIN_KEY, Miner, TestNode};
use protocol::crypto::Keypair;
use serde_json::{Value, json};

/// Bases of the arches used here, in weight units, written out independently of protocol/.
fn base(arch: &str) -> u128 {
    match arch {
        "G4" => 2_500_000_000,
        "386" => 3_000_000_000,
        "pentium_iii" => 2_000_000_000,
        "modern" => 800_000_000,
        // A legacy signature covers no device: evaluated as 1.0x, and without evidence it fails.
        "legacy" => 1_000_000_000,
        other => panic!("no base for {other}"),
    }
}

/// 1 + max(0, (base-1)(1 - 0.15 years)) with years = age / 31,557,600 s, as exact rationals.
fn expected_hw_weight(arch: &str, slot: u64, slot_seconds: u64) -> u64 {
    let b = base(arch);
    if b <= 1_000_000_000 {
        return b as u64;
    }
    let age = slot as u128 * slot_seconds as u128;
    let year_x100 = 100 * 31_557_600u128;
    let keep = year_x100.saturating_sub(15 * age);
    (1_000_000_000 + (b - 1_000_000_000) * keep / year_x100) as u64
}

/// The reference split, written out again: floors, then leftovers by remainder desc, id asc.
fn expected_shares(pot: u64, weights: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let total: u128 = weights.values().map(|w| *w as u128).sum();
    let mut rows: Vec<(String, u64, u128)> = weights
        .iter()
        .map(|(m, w)| (m.clone(), (pot as u128 * *w as u128 / total) as u64, pot as u128 * *w as u128 % total))
        .collect();
    let leftover = pot - rows.iter().map(|r| r.1).sum::<u64>();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|a, b| rows[*b].2.cmp(&rows[*a].2).then(rows[*a].0.cmp(&rows[*b].0)));
    for i in order.into_iter().take(leftover as usize) {
        rows[i].1 += 1;
    }
    rows.into_iter().map(|(m, s, _)| (m, s)).collect()
}

/// Wait until the current epoch has at least `slots` slots left, so a batch of submissions lands
/// in one epoch.
fn wait_for_epoch_room(node: &TestNode, slots: u64) {
    loop {
        let (_, e) = node.get("/epoch");
        let per = e["blocks_per_epoch"].as_u64().unwrap();
        if per - e["slot"].as_u64().unwrap() % per >= slots {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn attest_settle_and_pay_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"), &[]);
    let spec = protocol::ChainSpec::builtin("devnet").unwrap();

    let g4 = Miner::new(1, "wallet-g4", "G4", "G4-SERIAL-1");
    let p3 = Miner::new(2, "wallet-p3", "pentium_iii", "P3-SERIAL-2");
    let mut vm = Miner::new(3, "wallet-vm", "modern", "VM-SERIAL-3");
    vm.fingerprint["checks"]["anti_emulation"] = json!({"passed": false, "data": {
        "vm_indicators": ["cpuinfo:hypervisor"], "indicator_count": 1, "is_likely_vm": true}});
    vm.fingerprint["all_passed"] = json!(false);
    let thief = Miner::new(4, "wallet-thief", "G4", "G4-SERIAL-1"); // claims g4's serial
    let legacy_key = Keypair::from_seed(&[5; 32]);

    wait_for_epoch_room(&node, 6);
    let mut accepted: Vec<(String, String, u64, bool)> = Vec::new(); // wallet, arch, slot, passed
    let mut accepted_nonce_g4 = String::new();
    for (m, arch) in [(&g4, "G4"), (&p3, "pentium_iii"), (&vm, "modern")] {
        let nonce = node.challenge(Some(&m.miner_id));
        if accepted_nonce_g4.is_empty() {
            accepted_nonce_g4 = nonce.clone();
        }
        let (s, v) = node.post("/attest/submit", &m.body(&nonce));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["ok"], json!(true));
        assert!(v["ticket_id"].as_str().unwrap().starts_with("ticket_"));
        accepted.push((m.wallet.clone(), arch.into(), v["slot"].as_u64().unwrap(), v["fingerprint_passed"].as_bool().unwrap()));
        // A replay of the same signed body is refused.
        let (s, v) = node.post("/attest/submit", &m.body(&nonce));
        assert_eq!((s, v["code"].as_str()), (409, Some("NONCE_REPLAY")), "{v}");
    }
    assert_eq!(accepted.iter().map(|a| a.3).collect::<Vec<_>>(), [true, true, false], "only the VM fails");

    // A nonce bound to one miner cannot be used by another.
    let bound = node.challenge(Some(&g4.miner_id));
    let (s, v) = node.post("/attest/submit", &p3.body(&bound));
    assert_eq!((s, v["code"].as_str()), (403, Some("NONCE_IDENTITY_MISMATCH")), "{v}");
    // Another wallet claiming the G4's serial is refused.
    let (s, v) = node.post("/attest/submit", &thief.body(&node.challenge(None)));
    assert_eq!((s, v["code"].as_str()), (409, Some("DUPLICATE_HARDWARE")), "{v}");
    // A forged nonce is refused.
    let (s, v) = node.post("/attest/submit", &g4.body(&"ab".repeat(32)));
    assert_eq!((s, v["code"].as_str()), (409, Some("CHALLENGE_INVALID")), "{v}");

    // The older Rust miner's legacy signature scheme.
    let nonce = node.challenge(None);
    let msg = format!("legacy-box|wallet-386|{nonce}|c0ffee");
    let legacy = json!({
        "miner": "wallet-386", "miner_id": "legacy-box", "nonce": nonce,
        "report": {"nonce": nonce, "commitment": "c0ffee"},
        "device": {"device_family": "x86", "device_arch": "386", "cpu": "Intel 386DX", "cores": 1},
        "signals": {"macs": ["00:00:0c:12:34:56"], "hostname": "retro"},
        "fingerprint": {"all_passed": true, "checks": common::good_checks(json!({"has_sse": false, "simd_flags_count": 0, "arch": "i386"}), 200)},
        "signature": hex::encode(legacy_key.sign(msg.as_bytes())), "public_key": hex::encode(legacy_key.public()),
    });
    let (s, v) = node.post("/attest/submit", &legacy);
    assert_eq!(s, 200, "{v}");
    // Its device and fingerprint could have been swapped after signing: neither is read.
    assert_eq!((v["fingerprint_passed"].as_bool(), v["fingerprint_reasons"][0].as_str()), (Some(false), Some("legacy_signature_unmeasured")), "{v}");
    assert_eq!(v["weight"], json!(1), "{v}");
    accepted.push(("wallet-386".into(), "legacy".into(), v["slot"].as_u64().unwrap(), v["fingerprint_passed"].as_bool().unwrap()));

    // All landed in one epoch.
    let epoch = accepted[0].2 / spec.slots_per_epoch;
    assert!(accepted.iter().all(|a| a.2 / spec.slots_per_epoch == epoch), "{accepted:?}");
    let (_, e) = node.get("/epoch");
    assert_eq!(e["enrolled_miners"], json!(4));

    // The miner confirms its enrollment with the key it attested with.
    let sig = g4.key.sign(format!("{}|{}|{epoch}", g4.wallet, g4.miner_id).as_bytes());
    let (s, v) = node.post("/epoch/enroll", &json!({
        "miner_pubkey": g4.wallet, "miner_id": g4.miner_id, "device": {"family": "PowerPC", "arch": "G4"},
        "signature": hex::encode(sig), "public_key": hex::encode(g4.key.public())}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["epoch"], json!(epoch));
    // A signed claim for another miner_id of the same wallet is refused, not silently accepted.
    let sig = g4.key.sign(format!("{}|not-my-box|{epoch}", g4.wallet).as_bytes());
    let (s, v) = node.post("/epoch/enroll", &json!({
        "miner_pubkey": g4.wallet, "miner_id": "not-my-box", "signature": hex::encode(sig), "public_key": hex::encode(g4.key.public())}));
    assert_eq!((s, v["code"].as_str()), (409, Some("MINER_ID_MISMATCH")), "{v}");
    // An upper-case spelling of a used nonce is not a new nonce.
    let upper = g4.body(&accepted_nonce_g4.to_uppercase());
    let (s, v) = node.post("/attest/submit", &upper);
    assert_eq!((s, v["code"].as_str()), (409, Some("CHALLENGE_INVALID")), "{v}");

    // Independent recomputation of what the epoch must pay.
    let weights: BTreeMap<String, u64> = accepted
        .iter()
        .map(|(w, arch, slot, passed)| {
            if arch == "legacy" {
                return (w.clone(), 1);
            }
            let hw = expected_hw_weight(arch, *slot, spec.slot_seconds);
            (w.clone(), if *passed { hw } else { (hw / 1_000_000_000).max(1) })
        })
        .collect();
    let shares = expected_shares(spec.epoch_pot_urtc, &weights);
    assert_eq!(shares.values().sum::<u64>(), spec.epoch_pot_urtc);

    // The epoch manager settles it by itself after the epoch ends plus grace.
    let settled = node.wait_for(&format!("/api/epoch/{epoch}/settlement"), 60);
    let record = &settled["record"];
    assert_eq!(record["epoch"], json!(epoch));
    assert_eq!(record["pot_urtc"], json!(spec.epoch_pot_urtc));
    assert_eq!(record["distributed_urtc"], json!(spec.epoch_pot_urtc));
    let got: BTreeMap<String, (u64, u64)> = record["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["miner"].as_str().unwrap().to_owned(), (e["weight"].as_u64().unwrap(), e["share_urtc"].as_u64().unwrap())))
        .collect();
    let want: BTreeMap<String, (u64, u64)> = weights.iter().map(|(m, w)| (m.clone(), (*w, shares[m]))).collect();
    assert_eq!(got, want);
    let order: Vec<&str> = record["entries"].as_array().unwrap().iter().map(|e| e["miner"].as_str().unwrap()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "entries are in miner order");

    // The hash, recomputed from the JSON form by an independent encoder (Python, stdlib only).
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/settlement_hash.py");
    match Command::new("python3").arg(script).arg("-").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn() {
        Ok(mut child) => {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(settled.to_string().as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "settlement_hash.py disagrees: {}", String::from_utf8_lossy(&out.stdout));
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(text.contains(settled["settlement_hash"].as_str().unwrap()), "{text}");
        }
        Err(e) => common::skipped("single_node: the Python cross-check of the settlement hash", &format!("python3 not runnable ({e})")),
    }

    // Balances and the ledger.
    for (wallet, share) in &shares {
        let (s, b) = node.get(&format!("/wallet/balance?miner_id={wallet}"));
        assert_eq!(s, 200);
        assert_eq!(b["amount_i64"], json!(share), "{wallet}");
    }
    let (_, rewards) = node.get(&format!("/rewards/epoch/{epoch}"));
    let ledger: BTreeMap<String, u64> = rewards["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["wallet"].as_str().unwrap().to_owned(), l["amount_i64"].as_u64().unwrap()))
        .collect();
    assert_eq!(ledger, shares.clone().into_iter().filter(|(_, s)| *s > 0).collect());

    // Settling again changes nothing.
    let (s, v) = node.post_raw("/admin/settle-epoch", json!({"epoch": epoch}).to_string().into_bytes(), &[("x-admin-key", ADMIN_KEY)]);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["settled_now"], json!(false));
    assert_eq!(v["settlement_hash"], settled["settlement_hash"]);
    let (_, b) = node.get("/wallet/balance?miner_id=wallet-g4");
    assert_eq!(b["amount_i64"], json!(shares["wallet-g4"]));
    let (s, v) = node.post_raw("/admin/settle-epoch", br#"{"epoch": 0}"#.to_vec(), &[("x-admin-key", ADMIN_KEY)]);
    assert_eq!((s, v["code"].as_str()), (409, Some("EPOCH_BEFORE_HISTORY")), "{v}");
    let (s, v) = node.post_raw("/admin/settle-epoch", b"{}".to_vec(), &[("x-admin-key", "wrong")]);
    assert_eq!((s, v["code"].as_str()), (401, Some("UNAUTHORIZED")));
}

#[test]
fn bad_input_gets_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"), &[]);
    let m = Miner::new(9, "wallet-x", "G4", "");
    let good = m.body(&node.challenge(None));
    let mut no_device = good.clone();
    no_device.as_object_mut().unwrap().remove("device");
    let mut bad_sig = good.clone();
    bad_sig["signature"] = json!("00".repeat(64));
    let mut bad_hex = good.clone();
    bad_hex["public_key"] = json!("xyz");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/attest/submit", b"{not json".to_vec(), 400, "INVALID_JSON"),
        ("/attest/submit", b"[1,2]".to_vec(), 400, "INVALID_JSON"),
        ("/attest/submit", br#"{"miner": 7}"#.to_vec(), 400, "INVALID_FIELD"),
        ("/attest/submit", serde_json::to_vec(&no_device).unwrap(), 422, "INVALID_DEVICE"),
        ("/attest/submit", serde_json::to_vec(&bad_sig).unwrap(), 400, "INVALID_SIGNATURE"),
        ("/attest/submit", serde_json::to_vec(&bad_hex).unwrap(), 400, "INVALID_SIGNATURE"),
        // The limit is 16 KiB: one byte over is refused whole, the limit itself is read (and is
        // not JSON). Just over, so the client has written all of it before the node answers.
        ("/attest/submit", vec![b' '; (16 << 10) + 1], 413, "PAYLOAD_TOO_LARGE"),
        ("/attest/submit", vec![b' '; 16 << 10], 400, "INVALID_JSON"),
        ("/attest/challenge", br#"{"miner_id": "no spaces allowed"}"#.to_vec(), 400, "INVALID_FIELD"),
        ("/epoch/enroll", br#"{"miner_pubkey": "w"}"#.to_vec(), 400, "MISSING_FIELD"),
        ("/admin/settle-epoch", b"{}".to_vec(), 401, "UNAUTHORIZED"),
    ];
    for (path, body, status, code) in cases {
        let (s, v) = node.post_raw(path, body, &[]);
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{path}: {v}");
        assert_eq!(v["ok"], json!(false));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    for (path, status, code) in [
        ("/api/epoch/abc/settlement", 400, "INVALID_EPOCH"),
        ("/api/epoch/-1/settlement", 400, "INVALID_EPOCH"),
        ("/api/epoch/99999999999/settlement", 404, "UNKNOWN_EPOCH"),
        ("/rewards/epoch/1", 404, "UNKNOWN_EPOCH"),
        ("/wallet/balance", 400, "MISSING_FIELD"),
        ("/api/miners?limit=0", 400, "INVALID_QUERY"),
        ("/api/miners?limit=x", 400, "INVALID_QUERY"),
        ("/no/such/thing", 404, "NOT_FOUND"),
    ] {
        let (s, v) = node.get(path);
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{path}: {v}");
    }
    // Nothing half-written: the good body still goes through afterwards, exactly once.
    let (s, v) = node.post("/attest/submit", &good);
    assert_eq!(s, 200, "{v}");
    let (_, stats) = node.get("/api/stats");
    assert_eq!(stats["attestations"], json!(1));
}

#[test]
fn acknowledged_attestations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(&dir.path().join("node"), &[]);
    let miners: Vec<Miner> = (0..60u8).map(|i| Miner::new(100 + i, &format!("wallet-{i}"), "G4", "")).collect();
    let bodies: Vec<Value> = miners.iter().map(|m| m.body(&node.challenge(None))).collect();
    // Submit concurrently, so the writer commits in groups, then kill -9 right after the last answer.
    let acked: Vec<(usize, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .chunks(15)
            .enumerate()
            .map(|(c, chunk)| {
                let node = &node;
                s.spawn(move || {
                    chunk.iter().enumerate().filter_map(|(i, b)| {
                        let (st, v) = node.post("/attest/submit", b);
                        (st == 200).then_some((c * 15 + i, v))
                    }).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(acked.len(), 60);
    node.kill9();
    node.restart();
    let (_, stats) = node.get("/api/stats");
    assert_eq!(stats["attestations"], json!(60), "every acknowledged attestation is on disk");
    let (_, list) = node.get("/api/miners?limit=1000");
    assert_eq!(list["total"], json!(60));
    // Used nonces were durable too: replaying an acknowledged body is still refused.
    let (s, v) = node.post("/attest/submit", &bodies[acked[0].0]);
    assert_eq!((s, v["code"].as_str()), (409, Some("NONCE_REPLAY")), "{v}");
    // A graceful stop exits 0 and says so.
    assert!(node.terminate().success());
    assert!(node.log_text().contains("stopped cleanly"));
}

#[test]
fn a_database_from_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    {
        let db = redb::Database::create(data.join("rustchain.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut meta = w.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta")).unwrap();
            meta.insert("schema_version", 99u64.to_be_bytes().as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rustchain"))
        .args(["node", "--data-dir"])
        .arg(&data)
        .args(["--http-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema version 99"), "{err}");
}

/// Issue 18: a second node started on a data dir a running node holds is told the truth (in use)
/// and not the damaged-database advice (restore a backup, move the file aside), which would lose
/// the running node's data.
#[test]
fn a_second_node_on_a_data_dir_in_use_is_told_so_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestNode::start(&dir.path().join("node"), &["--no-p2p"]);
    let out = Command::new(env!("CARGO_BIN_EXE_rustchain"))
        .args(["node", "--no-p2p", "--data-dir"])
        .arg(&first.data_dir)
        .args(["--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
    assert!(!err.contains("restore") && !err.contains("damaged") && !err.contains("move"), "advice that would lose data: {err}");
    let (s, _) = first.get("/health");
    assert_eq!(s, 200, "the running node is untouched");
}

#[test]
fn dump_config_layers_flag_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "http_addr = \"127.0.0.1:7001\"\ndata_dir = \"/from/file\"\nspec = \"mainnet\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rustchain"))
        .args(["node", "--dump-config", "--config"])
        .arg(&file)
        .args(["--http-addr", "127.0.0.1:7003"])
        .env("RUSTCHAIN_DATA_DIR", "/from/env")
        .env("RUSTCHAIN_HTTP_ADDR", "127.0.0.1:7002")
        .env("RUSTCHAIN_ADMIN_KEY", "s3cret")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("http_addr = \"127.0.0.1:7003\""), "flag wins: {text}");
    assert!(text.contains("data_dir = \"/from/env\""), "env beats file: {text}");
    assert!(text.contains("spec = \"mainnet\""), "file beats default: {text}");
    assert!(!text.contains("s3cret"), "secrets are not printed");
}
