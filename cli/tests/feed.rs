//! The live feed (`GET /api/events`, server-sent events) on a 2-validator testnet on 127.0.0.1:
//! a miner attests at node 0, and a client of node 1 sees the attestation arrive (from the peer),
//! the epoch settle and be certified; a client filtering on another wallet sees none of it; bad
//! filters are JSON 400s.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Miner, attest_in_one_epoch, init_testnet, start_testnet};
use serde_json::Value;

/// Follow `url`'s event stream on a thread; every `data:` line arrives on the channel as JSON.
fn follow(url: String) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder().timeout(None).build().unwrap();
        let resp = client.get(&url).send().unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data: ")
                && tx.send(serde_json::from_str(data).unwrap_or(Value::String(data.to_owned()))).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first event within `secs` that `check` accepts.
fn wait_for(rx: &mpsc::Receiver<Value>, secs: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if check(&e) => return e,
            Ok(_) => {}
            Err(_) => panic!("no {what} within {secs} s"),
        }
    }
}

#[test]
fn a_client_sees_an_attestation_arrive_and_its_epoch_certified() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 2, 0);
    let nodes = start_testnet(dir.path(), &[0, 1]);
    let all = follow(format!("{}/api/events?types=attestation_accepted,epoch_settled,epoch_certified", nodes[1].url));
    let other = follow(format!("{}/api/events?types=attestation_accepted&wallet=someone-else", nodes[1].url));
    // Both streams are open before anything happens.
    wait_for(&all, 30, "an epoch settled (the stream is live)", |e| e["kind"] == "epoch_settled");

    let miner = Miner::new(44, "feed-miner", "G4", "FS1");
    let epoch = attest_in_one_epoch(&[&nodes[0]], &[miner]);
    let seen = wait_for(&all, 30, "the attestation, relayed", |e| e["kind"] == "attestation_accepted" && e["data"]["miner"] == "feed-miner");
    assert_eq!((seen["epoch"].as_u64(), seen["data"]["origin"].as_str(), seen["wallets"][0].as_str()), (Some(epoch), Some("peer"), Some("feed-miner")), "{seen}");
    let settled = wait_for(&all, 40, "its epoch settled", |e| e["kind"] == "epoch_settled" && e["epoch"].as_u64() == Some(epoch));
    assert_eq!(settled["data"]["miners"], 1, "{settled}");
    let certified = wait_for(&all, 40, "its epoch certified", |e| e["kind"] == "epoch_certified" && e["epoch"].as_u64() == Some(epoch));
    assert_eq!((certified["data"]["miners"].as_u64(), certified["data"]["signers"].as_u64()), (Some(1), Some(2)), "{certified}");
    // The same settlement hash the API serves.
    let s = nodes[1].get(&format!("/api/epoch/{epoch}/settlement")).1;
    assert_eq!(certified["data"]["settlement_hash"], s["certificate"]["settlement_hash"]);
    // The client that asked for another wallet got none of it.
    assert!(other.try_iter().all(|e| e["data"]["miner"] != "feed-miner"), "a wallet filter lets only that wallet's events through");

    for (bad, code) in [("/api/events?types=attestation_accepted,nonsense", "INVALID_TYPES"), ("/api/events?wallet=%3Cscript%3E", "INVALID_FIELD"), ("/api/events?x=1", "INVALID_QUERY")] {
        let (s, v) = nodes[1].get(bad);
        assert_eq!((s, v["code"].as_str()), (400, Some(code)), "{bad}: {v}");
    }
    assert!(nodes[1].metric("rustchain_events_sent_total").unwrap_or(0.0) >= 3.0, "{}", nodes[1].metrics());
}
