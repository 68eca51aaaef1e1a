//! Running a node in production, through the real binary: metrics that move, readiness, rate
//! limits and trusted proxies, admin refusals, online backup under write load then restore and
//! check, a damaged database refused with restore steps, scheduled backups with retention,
//! kill -9 in the middle of a write burst, and a full disk (tmpfs, when this runs as root).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{ADMIN_KEY, Miner, TestNode};
use serde_json::{Value, json};

fn rustchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustchain")).args(args).env_remove("RUSTCHAIN_ADMIN_KEY").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn submit(node: &TestNode, m: &Miner) -> (u16, Value) {
    node.post("/attest/submit", &m.body(&node.challenge(None)))
}

fn admin_key_file(dir: &Path) -> String {
    let f = dir.join("admin.key");
    common::write_private(&f, &format!("{ADMIN_KEY}\n"));
    f.to_str().unwrap().to_owned()
}

#[test]
fn metrics_expose_the_series_and_move_with_attestations() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(&dir.path().join("node"), &[]);
    let text = node.metrics();
    for name in [
        "rustchain_attestations_total", "rustchain_current_epoch", "rustchain_epoch_pot_rtc", "rustchain_enrolled_miners",
        "rustchain_total_balance_rtc", "rustchain_api_requests_total", "rustchain_api_request_duration_seconds",
        "rustchain_peers", "rustchain_gossip_messages_total", "rustchain_gossip_messages_rejected_total", "rustchain_sync_status",
        "rustchain_last_certified_epoch", "rustchain_db_size_bytes", "rustchain_backup_age_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")) || text.contains(&format!("# TYPE {} ", name.trim_end_matches("_total"))),
            "{name} missing:\n{text}");
    }
    // libp2p's own metrics share the registry.
    assert!(text.contains("# TYPE libp2p_"), "no libp2p_ series:\n{text}");
    assert_eq!(node.metric("rustchain_attestations_total{status=\"accepted\"}"), Some(0.0));
    assert_eq!(node.metric("rustchain_epoch_pot_rtc"), Some(1.5));
    assert!(node.metric("rustchain_db_size_bytes").unwrap() > 0.0);
    assert_eq!(node.metric("rustchain_backup_age_seconds"), Some(-1.0));

    let (s, v) = submit(&node, &Miner::new(1, "wallet-m1", "G4", ""));
    assert_eq!(s, 200, "{v}");
    let mut vm = Miner::new(2, "wallet-m2", "modern", "");
    vm.fingerprint["checks"]["anti_emulation"] = json!({"passed": false, "data": {"vm_indicators": ["x"], "indicator_count": 1, "is_likely_vm": true}});
    assert_eq!(submit(&node, &vm).0, 200);
    let mut forged = Miner::new(3, "wallet-m3", "G4", "").body(&node.challenge(None));
    forged["signature"] = json!("00".repeat(64));
    assert_eq!(node.post("/attest/submit", &forged).0, 400);
    assert_eq!(node.get("/rewards/epoch/123456").0, 404);
    assert_eq!(node.get("/no/such/path/42").0, 404);

    let epoch = node.get("/epoch").1["epoch"].as_u64().unwrap();
    assert_eq!(node.metric("rustchain_attestations_total{status=\"accepted\"}"), Some(1.0));
    assert_eq!(node.metric("rustchain_attestations_total{status=\"fingerprint_failed\"}"), Some(1.0));
    assert_eq!(node.metric("rustchain_attestations_total{status=\"rejected\"}"), Some(1.0));
    assert_eq!(node.metric("rustchain_attestations_rejected_total{code=\"INVALID_SIGNATURE\"}"), Some(1.0));
    assert_eq!(node.metric("rustchain_api_requests_total{endpoint=\"/attest/submit\",status=\"200\"}"), Some(2.0));
    // The route template, never the raw path: bounded label values.
    assert_eq!(node.metric("rustchain_api_requests_total{endpoint=\"/rewards/epoch/{n}\",status=\"404\"}"), Some(1.0));
    assert_eq!(node.metric("rustchain_api_requests_total{endpoint=\"unmatched\",status=\"404\"}"), Some(1.0));
    let m = node.metrics();
    assert!(!m.contains("123456") && !m.contains("/no/such"), "raw paths leaked into labels");
    assert!(m.contains("rustchain_api_request_duration_seconds_count{endpoint=\"/epoch\"} 1"), "{m}");
    let e = node.metric("rustchain_current_epoch").unwrap() as u64;
    assert!(e == epoch || e == epoch + 1, "{e} vs {epoch}");
    if e == epoch {
        assert_eq!(node.metric("rustchain_enrolled_miners"), Some(2.0));
    }
    // The metrics listener is not the API.
    assert_eq!(reqwest::blocking::get(format!("{}/metrics", node.url)).unwrap().status().as_u16(), 404);

    // Settlement moves the balance and settled-epoch series (from the writer's tallies), and a
    // restart counts them again from disk.
    let settled = node.wait_for(&format!("/api/epoch/{epoch}/settlement"), 60);
    assert_eq!(settled["record"]["distributed_urtc"], json!(1_500_000));
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.metric("rustchain_last_settled_epoch").unwrap() < epoch as f64 {
        assert!(Instant::now() < deadline, "last_settled_epoch did not move");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The tally agrees with a full scan of the balances (/api/stats), and something was paid.
    let (total, scanned) = (node.metric("rustchain_total_balance_rtc").unwrap(), node.get("/api/stats").1["total_balance_rtc"].as_f64().unwrap());
    assert!(total >= 1.5 && (total - scanned).abs() < 1e-9, "tally {total} vs scan {scanned}");
    assert!(node.terminate().success());
    node.restart();
    let (total, scanned) = (node.metric("rustchain_total_balance_rtc").unwrap(), node.get("/api/stats").1["total_balance_rtc"].as_f64().unwrap());
    assert!(total >= 1.5 && (total - scanned).abs() < 1e-9, "after restart: tally {total} vs scan {scanned}");
    assert!(node.metric("rustchain_last_settled_epoch").unwrap() >= epoch as f64);
}

#[test]
fn readyz_needs_the_configured_peers_and_livez_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut node = TestNode::start(&data, &["--min-peers", "1"]);
    assert_eq!(node.get("/livez").0, 200);
    let (s, v) = node.get("/readyz");
    assert_eq!((s, v["code"].as_str()), (503, Some("NOT_READY")), "{v}");
    assert_eq!((v["peers"].as_u64(), v["peers_required"].as_u64(), v["db_open"].as_bool()), (Some(0), Some(1), Some(true)));
    assert!(v["error"].as_str().unwrap().contains("0 peers connected, 1 required"), "{v}");
    assert!(node.terminate().success());
    // Alone by configuration (the default): ready.
    let mut alone = TestNode::new(&data, &[]);
    alone.spawn();
    let (s, v) = alone.get("/readyz");
    assert_eq!((s, v["ok"].as_bool(), v["peers_required"].as_u64()), (200, Some(true), Some(0)), "{v}");
    let (s, h) = alone.get("/health");
    assert_eq!((s, h["ok"].as_bool(), h["db_rw"].as_bool()), (200, Some(true), Some(true)), "{h}");
    assert!(h["backup_age_hours"].is_null(), "{h}");
    assert!(h["tip_age_slots"].is_u64() && h["uptime_s"].is_u64() && h["version"].is_string(), "{h}");
    drop(node);
}

/// GET until the first 429; returns how many 200s came before it and the 429's headers and body.
fn until_429(node: &TestNode, path: &str, headers: &[(&str, &str)], max: usize) -> (usize, Option<(String, Value)>) {
    let client = reqwest::blocking::Client::new();
    for i in 0..max {
        let mut req = client.get(format!("{}{path}", node.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap();
        match r.status().as_u16() {
            200 => {}
            429 => {
                let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                return (i, Some((retry, r.json().unwrap())));
            }
            other => panic!("unexpected {other}"),
        }
    }
    (max, None)
}

#[test]
fn rate_limit_answers_429_after_the_burst_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // 30/min = one request back every 2 s; burst 5.
    let node = TestNode::start(&dir.path().join("node"), &["--rate-limit-per-minute", "30", "--rate-limit-burst", "5"]);
    let (ok, refused) = until_429(&node, "/epoch", &[], 50);
    // The burst, plus at most one replenished meanwhile on a slow machine.
    assert!((5..=6).contains(&ok), "{ok} requests passed before the first 429");
    let (retry, body) = refused.expect("429 after the burst");
    assert_eq!((body["ok"].as_bool(), body["code"].as_str()), (Some(false), Some("RATE_LIMITED")), "{body}");
    assert!(retry.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s)), "Retry-After {retry:?}");
    // The probes and the metrics are never limited.
    for _ in 0..30 {
        assert_eq!(node.get("/livez").0, 200);
        assert_eq!(node.get("/readyz").0, 200);
    }
    assert!(node.metric("rustchain_api_rate_limited_total{scope=\"public\"}").unwrap() >= 1.0);
    // Recovery: once the bucket refills, requests pass again (polled, no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.get("/epoch").0 != 200 {
        assert!(Instant::now() < deadline, "still limited after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn forwarded_for_counts_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let limit = ["--rate-limit-per-minute", "1", "--rate-limit-burst", "3"];
    // No trusted proxy: a client cannot escape its limit by inventing X-Forwarded-For / X-Real-IP.
    let node = TestNode::start(&dir.path().join("a"), &limit);
    let client = reqwest::blocking::Client::new();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = client
            .get(format!("{}/epoch", node.url))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("x-real-ip", format!("203.0.113.{i}"))
            .send()
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429], "spoofed headers from an untrusted peer are ignored");

    // Loopback as a trusted proxy: each forwarded client gets its own bucket.
    let mut args = limit.to_vec();
    args.extend(["--trusted-proxies", "127.0.0.1/32,::1/128"]);
    let proxied = TestNode::start(&dir.path().join("b"), &args);
    for i in 0..6 {
        let ip = format!("198.51.100.{i}");
        assert_eq!(proxied.get_with("/epoch", &[("x-forwarded-for", &ip)]).0, 200, "client {ip}");
    }
    let (ok, refused) = until_429(&proxied, "/epoch", &[("x-forwarded-for", "192.0.2.77")], 10);
    assert_eq!(ok, 3);
    assert!(refused.is_some());
    // The right-most untrusted hop counts: a fake left-most entry does not give a fresh bucket.
    let (ok, _) = until_429(&proxied, "/epoch", &[("x-forwarded-for", "10.10.10.10, 192.0.2.77")], 10);
    assert_eq!(ok, 0, "same client behind a spoofed prefix is still limited");
}

#[test]
fn admin_refuses_missing_or_wrong_keys_and_has_its_own_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"), &["--admin-rate-limit-per-minute", "1", "--admin-rate-limit-burst", "4"]);
    for (path, headers) in [
        ("/admin/backup", vec![]),
        ("/admin/backup", vec![("x-admin-key", "wrong")]),
        ("/admin/settle-epoch", vec![("x-admin-key", "test-admin-secre")]),
    ] {
        let (s, v) = node.post_raw(path, b"{}".to_vec(), &headers);
        assert_eq!((s, v["code"].as_str()), (401, Some("UNAUTHORIZED")), "{path} {headers:?}: {v}");
    }
    let (s, _) = node.post_raw("/admin/backup?compress=none", vec![], &[("x-admin-key", ADMIN_KEY)]);
    assert_eq!(s, 200);
    // The fifth admin request within the minute is refused, whatever its key...
    let (s, v) = node.post_raw("/admin/backup", vec![], &[("x-admin-key", ADMIN_KEY)]);
    assert_eq!((s, v["code"].as_str()), (429, Some("RATE_LIMITED")), "{v}");
    // ...while the public API is not affected.
    assert_eq!(node.get("/epoch").0, 200);

    // No admin key configured: admin is off.
    let mut off = TestNode::new(&dir.path().join("nokey"), &[]);
    let child = Command::new(env!("CARGO_BIN_EXE_rustchain"))
        .args(["node", "--data-dir", off.data_dir.to_str().unwrap(), "--http-addr", &format!("127.0.0.1:{}", off.port)])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--p2p-addr", &format!("/ip4/127.0.0.1/tcp/{}", off.p2p_port)])
        .env_remove("RUSTCHAIN_ADMIN_KEY")
        .stderr(std::fs::File::create(&off.log).unwrap())
        .spawn()
        .unwrap();
    off.child = Some(child);
    off.wait_ready();
    let (s, v) = off.post_raw("/admin/backup", vec![], &[("x-admin-key", "")]);
    assert_eq!((s, v["code"].as_str()), (503, Some("ADMIN_DISABLED")), "{v}");
    assert!(!off.log_text().contains(ADMIN_KEY) && !node.log_text().contains(ADMIN_KEY), "the admin key is never logged");
}

#[test]
fn online_backup_under_write_load_restores_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut node = TestNode::start(&data, &[]);
    let key_file = admin_key_file(dir.path());
    let miners: Vec<Miner> = (0..120u8).map(|i| Miner::new(i.wrapping_add(10), &format!("wallet-b{i}"), "G4", "")).collect();
    let bodies: Vec<Value> = miners.iter().map(|m| m.body(&node.challenge(None))).collect();
    // 30 acknowledged before the backup starts...
    for b in &bodies[..30] {
        assert_eq!(node.post("/attest/submit", b).0, 200);
    }
    // ...and 90 more racing it.
    let mid = dir.path().join("mid.redb.gz");
    let acked = Mutex::new(30usize);
    let backup = std::thread::scope(|s| {
        for chunk in bodies[30..].chunks(30) {
            let (node, acked) = (&node, &acked);
            s.spawn(move || {
                for b in chunk {
                    if node.post("/attest/submit", b).0 == 200 {
                        *acked.lock().unwrap() += 1;
                    }
                }
            });
        }
        rustchain(&["db", "backup", "--node", &node.url, "--admin-key-file", &key_file, "--out", mid.to_str().unwrap()])
    });
    assert!(backup.status.success(), "{}", text(&backup));
    assert_eq!(*acked.lock().unwrap(), 120);
    let report: Value = serde_json::from_slice(&backup.stdout).unwrap();
    assert_eq!(report["ok"], json!(true), "{report}");
    let in_mid = report["report"]["attestations"].as_u64().unwrap();
    assert!((30..=120).contains(&in_mid), "{in_mid}");
    assert!(dbops_is_gzip(&mid));
    let check = rustchain(&["db", "check", "--file", mid.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(node.get("/health").1["backup_age_hours"].as_f64().is_some_and(|h| h < 1.0));

    // The final backup (all writes acknowledged) holds every acknowledged attestation.
    let full = dir.path().join("full.redb");
    let out = rustchain(&["db", "backup", "--node", &node.url, "--admin-key-file", &key_file, "--out", full.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["report"]["attestations"], json!(120));

    // Offline commands refuse a running node's database.
    let data_s = data.to_str().unwrap();
    let refused = rustchain(&["db", "restore", "--data-dir", data_s, "--from", mid.to_str().unwrap()]);
    assert!(!refused.status.success() && text(&refused).contains("in use"), "{}", text(&refused));
    let refused = rustchain(&["db", "backup", "--data-dir", data_s, "--out", dir.path().join("x.redb").to_str().unwrap()]);
    assert!(!refused.status.success() && text(&refused).contains("--node"), "{}", text(&refused));
    assert_eq!(rustchain(&["db", "check", "--data-dir", data_s]).status.code(), Some(2));

    // Restore the mid-load backup into the stopped node: it starts and holds at least the 30.
    assert!(node.terminate().success());
    let restored = rustchain(&["db", "restore", "--data-dir", data_s, "--from", mid.to_str().unwrap()]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(text(&restored).contains("pre-restore"), "the replaced database is kept: {}", text(&restored));
    node.restart();
    assert_eq!(node.get("/api/stats").1["attestations"], json!(in_mid));
    for b in &bodies[..30] {
        let (s, v) = node.post("/attest/submit", b);
        assert_eq!((s, v["code"].as_str()), (409, Some("NONCE_REPLAY")), "an acknowledged attestation is in the backup");
    }
    // Restore the final backup: everything.
    assert!(node.terminate().success());
    assert!(rustchain(&["db", "restore", "--data-dir", data_s, "--from", full.to_str().unwrap()]).status.success());
    node.restart();
    assert_eq!(node.get("/api/stats").1["attestations"], json!(120));
    assert!(node.terminate().success());
    // And the compacted, stopped database still checks out; its indexes rebuild from the tables.
    let c = rustchain(&["db", "compact", "--data-dir", data_s]);
    assert!(c.status.success(), "{}", text(&c));
    let r = rustchain(&["db", "reindex", "--data-dir", data_s]);
    assert!(r.status.success() && text(&r).contains("rebuilt miner_epochs: 120 rows"), "{}", text(&r));
    assert_eq!(rustchain(&["db", "check", "--data-dir", data_s]).status.code(), Some(0));
}

fn dbops_is_gzip(p: &Path) -> bool {
    std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b])
}

#[test]
fn a_damaged_database_is_refused_with_restore_steps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut node = TestNode::start(&data, &[]);
    for i in 0..20u8 {
        assert_eq!(submit(&node, &Miner::new(i + 1, &format!("wallet-c{i}"), "G4", "")).0, 200);
    }
    assert!(node.terminate().success());
    let db = data.join("rustchain.redb");
    let good = dir.path().join("good.redb");
    std::fs::copy(&db, &good).unwrap();

    // Damage every page after the first (a disk that went bad), keeping the file's length.
    let mut bytes = std::fs::read(&db).unwrap();
    let len = bytes.len();
    for page in (4096..len).step_by(4096) {
        for b in &mut bytes[page + 64..(page + 128).min(len)] {
            *b ^= 0x5a;
        }
    }
    std::fs::write(&db, &bytes).unwrap();

    let check = rustchain(&["db", "check", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1), "check says corrupt: {}", text(&check));
    let out = node.command().output().unwrap();
    assert!(!out.status.success(), "the node must refuse a damaged database");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rustchain db restore --data-dir"), "the refusal says how to restore:\n{err}");

    // Following the message works.
    let r = rustchain(&["db", "restore", "--data-dir", data.to_str().unwrap(), "--from", good.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    node.restart();
    assert_eq!(node.get("/api/stats").1["attestations"], json!(20));
    // A damaged backup is refused by restore, and nothing changes.
    let bad = dir.path().join("bad.redb");
    std::fs::write(&bad, &bytes).unwrap();
    assert!(node.terminate().success());
    let r = rustchain(&["db", "restore", "--data-dir", data.to_str().unwrap(), "--from", bad.to_str().unwrap()]);
    assert!(!r.status.success() && text(&r).contains("nothing was changed"), "{}", text(&r));
    node.restart();
    assert_eq!(node.get("/api/stats").1["attestations"], json!(20));
}

#[test]
fn scheduled_backups_keep_the_newest_and_report_their_age() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Three old backups from an earlier run (a day old), and an unrelated file.
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    for stamp in ["20000101T000000Z", "20000102T000000Z", "20000103T000000Z"] {
        let f = std::fs::File::create(backups.join(format!("rustchain-devnet-{stamp}.redb.gz"))).unwrap();
        f.set_modified(day_ago).unwrap();
    }
    std::fs::write(backups.join("notes.txt"), "keep me").unwrap();
    let node = TestNode::start(
        &dir.path().join("node"),
        &["--backup-dir", backups.to_str().unwrap(), "--backup-every", "1h", "--backup-keep", "2"],
    );
    // Due at once (the newest is older than 1h); then only the newest two remain.
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = loop {
        let mut names: Vec<String> =
            std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        if names.len() == 3 && !names.iter().any(|n| n.contains("20000102")) {
            break names;
        }
        assert!(Instant::now() < deadline, "backups: {names:?}\n{}", node.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(names[0], "notes.txt");
    assert_eq!(names[1], "rustchain-devnet-20000103T000000Z.redb.gz");
    let newest = backups.join(&names[2]);
    let check = rustchain(&["db", "check", "--file", newest.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let h = node.get("/health").1;
    assert!(h["backup_age_hours"].as_f64().is_some_and(|a| (0.0..0.1).contains(&a)), "{h}");
    let age = node.metric("rustchain_backup_age_seconds").unwrap();
    assert!((0.0..360.0).contains(&age), "{age}");
    assert_eq!(node.metric("rustchain_backups_total{status=\"ok\"}"), Some(1.0));
}

#[test]
fn kill_9_in_the_middle_of_a_write_burst_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(&dir.path().join("node"), &[]);
    let miners: Vec<Miner> = (0..200u8).map(|i| Miner::new(i.wrapping_add(30), &format!("wallet-k{i}"), "G4", "")).collect();
    let bodies: Vec<Value> = miners.iter().map(|m| m.body(&node.challenge(None))).collect();
    let acked = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let url = node.url.clone();
    std::thread::scope(|s| {
        for (c, chunk) in bodies.chunks(50).enumerate() {
            let (acked, stop, url) = (&acked, &stop, &url);
            s.spawn(move || {
                let client = reqwest::blocking::Client::new();
                for (i, b) in chunk.iter().enumerate() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = client.post(format!("{url}/attest/submit")).json(b).send();
                    if r.is_ok_and(|r| r.status().as_u16() == 200) {
                        acked.lock().unwrap().push(c * 50 + i);
                    }
                }
            });
        }
        // Kill while the burst is in full flight.
        while acked.lock().unwrap().len() < 60 {
            std::thread::sleep(Duration::from_millis(2));
        }
        node.kill9();
        stop.store(true, Ordering::SeqCst);
    });
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() >= 60 && acked.len() < 200, "{} acknowledged", acked.len());
    node.restart();
    let stored = node.get("/api/stats").1["attestations"].as_u64().unwrap();
    assert!(stored >= acked.len() as u64, "stored {stored} < acknowledged {}", acked.len());
    for i in &acked {
        let (s, v) = node.post("/attest/submit", &bodies[*i]);
        assert_eq!((s, v["code"].as_str()), (409, Some("NONCE_REPLAY")), "acknowledged attestation {i} was lost");
    }
    assert_eq!(rustchain(&["db", "check", "--data-dir", node.data_dir.to_str().unwrap()]).status.code(), Some(2), "in use");
    assert!(node.terminate().success());
    assert!(node.log_text().contains("database closed"));
    let c = rustchain(&["db", "check", "--data-dir", node.data_dir.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
}

/// A real full disk: the data dir on a 4 MiB tmpfs, filled by another file. Needs root (mount);
/// elsewhere this reports SKIPPED and the writer's recovery is covered by the fault-injection
/// unit test in `store/writer.rs`.
#[test]
fn a_full_disk_answers_503_and_the_node_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&mnt).output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        common::skipped("operations::a_full_disk_answers_503_and_the_node_recovers_when_space_returns", &format!("cannot mount a tmpfs here (not root?): {mounted:?}"));
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    // The node's log is on the full disk too (as with a log file beside the data): a failed log
    // write must not take the writer down.
    let mut node = TestNode::start(&mnt.join("node"), &[]);
    let miners: Vec<Miner> = (0..40u8).map(|i| Miner::new(i.wrapping_add(90), &format!("wallet-f{i}"), "G4", "")).collect();
    let mut acked = 0;
    for m in &miners[..5] {
        assert_eq!(submit(&node, m).0, 200);
        acked += 1;
    }
    // Fill the disk.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let mut failed = Vec::new();
    for (i, m) in miners[5..25].iter().enumerate() {
        let body = m.body(&node.challenge(None));
        let (s, v) = node.post("/attest/submit", &body);
        if s == 200 {
            acked += 1; // fit into space redb already had
        } else {
            assert_eq!((s, v["code"].as_str()), (503, Some("STORAGE_UNAVAILABLE")), "{v}");
            failed.push((i + 5, body));
        }
    }
    assert!(!failed.is_empty(), "the full disk never failed a write");
    let (_, h) = node.get("/health");
    assert_eq!(h["db_rw"], json!(false), "{h}");
    // Not ready while writes fail (a load balancer sends miners elsewhere); still alive.
    let (s, r) = node.get("/readyz");
    assert_eq!((s, r["db_writable"].as_bool()), (503, Some(false)), "{r}");
    assert_eq!(node.get("/livez").0, 200);
    assert!(node.metric("rustchain_db_write_failures_total").unwrap() >= 1.0);

    // Space returns: writes succeed again, including the ones that failed (nothing was half-stored).
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, _) = submit(&node, &miners[25]);
        if s == 200 {
            acked += 1;
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after space returned:\n{}", node.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    for (_, body) in &failed {
        // The old nonce may have been used by nothing: the body is accepted now, exactly once.
        let (s, v) = node.post("/attest/submit", body);
        assert_eq!(s, 200, "{v}");
        acked += 1;
    }
    assert_eq!(node.get("/health").1["db_rw"], json!(true));
    assert_eq!(node.get("/readyz").0, 200, "ready again");
    assert_eq!(node.get("/api/stats").1["attestations"], json!(acked));
    node.kill9();
    node.restart();
    assert_eq!(node.get("/api/stats").1["attestations"], json!(acked), "nothing acknowledged was lost");
    assert!(node.terminate().success());
}

#[test]
fn slow_requests_time_out_with_json_and_connections_per_ip_are_capped() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"), &["--request-timeout", "1s", "--max-connections-per-ip", "3"]);
    let addr = format!("127.0.0.1:{}", node.port);

    // A body that never finishes arriving: answered 408 in the API's JSON shape, not held open.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    slow.write_all(b"POST /attest/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{").unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"REQUEST_TIMEOUT\""), "{answer}");
    drop(slow);

    // Three idle connections from one IP are allowed; a fourth is closed at once.
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200)); // let the node accept them
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = extra.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    let n = extra.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the connection over the cap was served: {}", String::from_utf8_lossy(&buf[..n]));
    drop(held);
    // Once they close, new connections are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::blocking::get(format!("{}/livez", node.url)).map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "connections never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn requests_beyond_the_in_flight_cap_get_503_but_probes_do_not() {
    use std::io::Write;
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&dir.path().join("node"), &["--max-inflight-requests", "1", "--request-timeout", "3s"]);
    // One request in flight (its body never completes) holds the only slot...
    let mut slow = TcpStream::connect(format!("127.0.0.1:{}", node.port)).unwrap();
    slow.write_all(b"POST /attest/submit HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let (s, v) = loop {
        let (s, v) = node.get("/epoch");
        if s != 200 || Instant::now() > deadline {
            break (s, v);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // ...so another is refused at once, while the probes still answer.
    assert_eq!((s, v["code"].as_str()), (503, Some("OVERLOADED")), "{v}");
    assert_eq!(node.get("/livez").0, 200);
    assert_eq!(node.get("/readyz").0, 200);
    // When the stalled request times out, the slot is free again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.get("/epoch").0 != 200 {
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(slow);
}
