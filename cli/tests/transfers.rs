//! Transfers through real binaries on 127.0.0.1 (4 validators from `rustchain testnet init`): a
//! wallet earns rewards, sends through node A, the receiver sees it pending at node B and confirmed
//! on every node with identical balances; a double spend sent to two nodes at once ends the same
//! on every node and is never paid twice. Also the field format's refusals over HTTP, and the
//! wallet CLI (new -> address -> send -> confirmed).

mod common;

use std::process::Command;

use std::time::Duration;

use common::{Miner, TestNode, attest_in_one_epoch, balance, certified, epoch_now, funded_sender, init_testnet, judged, order, start_testnet, tx_status};
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use protocol::crypto::Keypair;
use protocol::transfer::TransferRecord;
use protocol::wire::{self, Id, InvAttestation, Request, Response};
use rustchain_node::net::behaviour::{self, BehaviourEvent, GossipPreset, Role, SwarmSettings};
use serde_json::Value;

#[test]
fn a_transfer_confirms_everywhere_and_a_double_spend_is_never_paid_twice() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 4, 0);
    let nodes = start_testnet(dir.path(), &[0, 1, 2, 3]);
    let (sender, reward) = funded_sender(&nodes, 77, "xfer-box");

    // Refusals over HTTP, before anything moves.
    let receiver = Keypair::from_seed(&[78; 32]).address();
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &order(&receiver, 1000.0, 1).sign(&sender));
    assert_eq!((s, v["code"].as_str()), (409, Some("INSUFFICIENT_BALANCE")), "{v}");
    let mut forged = order(&receiver, 0.5, 1).sign(&sender);
    forged["amount_rtc"] = 0.6.into();
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &forged);
    assert_eq!((s, v["code"].as_str(), v["ok"].as_bool()), (400, Some("INVALID_SIGNATURE"), Some(false)), "{v}");
    let mut fee = order(&receiver, 0.5, 1).sign(&sender);
    fee["fee_rtc"] = 0.01.into();
    assert_eq!(nodes[0].post("/wallet/transfer/signed", &fee).1["code"], "FEE_NOT_SUPPORTED");
    // Issue 13 (9): signed without a chain id (valid only on mainnet), or for another network.
    let mut bare = order(&receiver, 0.5, 1);
    bare.chain_id = None;
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &bare.sign(&sender));
    assert_eq!((s, v["code"].as_str()), (400, Some("CHAIN_ID_REQUIRED")), "{v}");
    bare.chain_id = Some("mainnet".into());
    assert_eq!(nodes[0].post("/wallet/transfer/signed", &bare.sign(&sender)).1["code"], "WRONG_CHAIN_ID");
    // An RTC address in another spelling, as recipient or as a wallet to look up.
    let upper = format!("RTC{}", receiver[3..].to_uppercase());
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &order(&upper, 0.5, 1).sign(&sender));
    assert_eq!((s, v["code"].as_str()), (400, Some("NON_CANONICAL_ADDRESS")), "{v}");
    for path in ["/wallet/balance?address=", "/wallet/balance?miner_id=", "/wallet/history?address="] {
        let (s, v) = nodes[0].get(&format!("{path}RTC{}", sender.address()[3..].to_uppercase()));
        assert_eq!((s, v["code"].as_str()), (400, Some("NON_CANONICAL_ADDRESS")), "{path}: {v}");
    }
    // A nonce that names a time well after now (in ms) is refused: it would pin the transfer to a
    // far epoch.
    let future = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 60_000) as i64;
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &order(&receiver, 0.5, future).sign(&sender));
    assert_eq!((s, v["code"].as_str()), (400, Some("NONCE_IN_FUTURE")), "{v}");

    // Send 0.5 RTC through node A (0); node B (1) sees it pending for the receiver.
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &order(&receiver, 0.5, 1).sign(&sender));
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["phase"].as_str(), v["verified"].as_bool()), (Some("pending"), Some(true)));
    let tx = v["tx_hash"].as_str().unwrap().to_owned();
    // A replay of the same signed transfer is refused, and so is a reused nonce.
    assert_eq!(nodes[0].post("/wallet/transfer/signed", &order(&receiver, 0.5, 1).sign(&sender)).1["code"], "DUPLICATE_TRANSFER");
    assert_eq!(nodes[0].post("/wallet/transfer/signed", &order(&receiver, 0.1, 1).sign(&sender)).1["code"], "STALE_NONCE");
    // Pending: visible at B, counted against the sender at A.
    let at_b = nodes[1].wait_until(&format!("/wallet/balance?address={receiver}"), 20, "pending at node B", |v| v["pending_in_i64"].as_u64() == Some(500_000));
    assert_eq!(at_b["amount_i64"], 0);
    let a = nodes[0].get(&format!("/wallet/balance?address={}", sender.address())).1;
    assert_eq!((a["pending_out_i64"].as_u64(), a["last_nonce"].as_u64()), (Some(500_000), Some(1)), "{a}");
    assert_eq!(tx_status(&nodes[1], &tx)["status"], "pending");
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &order(&receiver, (reward - 500_000 + 100) as f64 / 1e6, 2).sign(&sender));
    assert_eq!((s, v["code"].as_str()), (409, Some("INSUFFICIENT_BALANCE")), "confirmed minus pending: {v}");

    // Confirmed on every node, with identical balances.
    for n in &nodes {
        let t = judged(n, &tx, 40);
        assert_eq!(t["status"], "confirmed", "{} {t}", n.url);
        assert_eq!(balance(n, &receiver), 500_000, "{}", n.url);
        assert_eq!(balance(n, &sender.address()), reward - 500_000, "{}", n.url);
    }
    let confirmed_in = judged(&nodes[0], &tx, 1)["epoch"].as_u64().unwrap();
    let record = certified(&nodes[2], confirmed_in, 10)["record"].clone();
    assert_eq!(record["transfers"][0]["tx_hash"], Value::String(tx.clone()));
    assert_eq!(record["transfers"][0]["result"], "applied");
    let history = nodes[3].get(&format!("/wallet/history?address={receiver}")).1;
    assert_eq!(history["items"][0]["kind"], "transfer_in", "{history}");
    assert_eq!(history["items"][0]["tx_hash"], Value::String(tx.clone()));

    // Double spend: one nonce, two recipients, to two nodes at once.
    let (c, d) = (Keypair::from_seed(&[79; 32]).address(), Keypair::from_seed(&[80; 32]).address());
    let amount = (reward - 500_000) as f64 / 1e6;
    let (b1, b2) = (order(&c, amount, 2).sign(&sender), order(&d, amount, 2).sign(&sender));
    let (r1, r2) = std::thread::scope(|s| {
        let h1 = s.spawn(|| nodes[1].post("/wallet/transfer/signed", &b1));
        let h2 = s.spawn(|| nodes[2].post("/wallet/transfer/signed", &b2));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    let accepted: Vec<String> = [&r1, &r2].iter().filter(|r| r.0 == 200).map(|r| r.1["tx_hash"].as_str().unwrap().to_owned()).collect();
    assert!(!accepted.is_empty(), "{r1:?} {r2:?}");
    // Every node judges every accepted one the same way, and at most one is paid.
    let mut outcomes: Vec<Vec<(String, String)>> = Vec::new();
    for n in &nodes {
        outcomes.push(accepted.iter().map(|tx| {
            let j = judged(n, tx, 60);
            (j["status"].as_str().unwrap().to_owned(), j["reason"].as_str().unwrap_or("").to_owned())
        }).collect());
    }
    eprintln!("double spend: {} accepted, outcome {:?}", accepted.len(), outcomes[0]);
    assert!(outcomes.iter().all(|o| o == &outcomes[0]), "nodes disagree: {outcomes:?}");
    assert!(outcomes[0].iter().filter(|(s, _)| s == "confirmed").count() <= 1, "both paid: {outcomes:?}");
    if accepted.len() == 2 {
        // Both reached the same settlement: a conflict, both rejected, nothing moved.
        assert!(outcomes[0].iter().all(|(s, r)| s == "rejected" && r == "conflict") || outcomes[0].iter().any(|(_, r)| r == "stale_nonce"), "{outcomes:?}");
    }
    let paid: Vec<u64> = nodes.iter().map(|n| balance(n, &c) + balance(n, &d)).collect();
    assert!(paid.iter().all(|p| *p == paid[0] && *p <= (amount * 1e6) as u64), "{paid:?}");
    let left: Vec<u64> = nodes.iter().map(|n| balance(n, &sender.address())).collect();
    assert!(left.iter().all(|l| *l == left[0]), "{left:?}");
    assert_eq!(left[0] + paid[0] + 500_000, reward, "supply conserved");
}

#[test]
fn wallet_cli_new_address_send_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 1, 0);
    let spec = dir.path().join("spec.toml");
    let node = &TestNode::start(&dir.path().join("node-0"), &["--spec", spec.to_str().unwrap()]);
    let wallet_file = dir.path().join("w.json");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rustchain"))
            .arg("wallet")
            .args(args)
            .args(["--wallet", wallet_file.to_str().unwrap()])
            .env("RUSTCHAIN_WALLET_PASSPHRASE", "correct horse")
            .env("RUSTCHAIN_NODE_URL", &node.url)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, out, err) = run(&["new"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, address, _) = run(&["address"]);
    let address = address.trim().to_owned();
    assert!(out.contains(&address));

    // The wallet earns an epoch's pot through a miner that pays to it, signing with the wallet's
    // key (an RTC-address wallet earns only for its own key, PROTOCOL.md §5.1).
    let mut miner = Miner::new(90, "placeholder", "G4", "");
    // The wallet's own key attests: an RTC address earns only for its key.
    miner.key = {
        use rustchain_cli::wallet::{KeyFile, key_of};
        key_of(&KeyFile::read(&wallet_file).unwrap().open("correct horse").unwrap())
    };
    assert_eq!(miner.key.address(), address);
    miner.wallet = address.clone();
    miner.miner_id = "cli-box".into();
    let epoch = attest_in_one_epoch(&[node], &[miner]);
    let reward = certified(node, epoch, 40)["record"]["distributed_urtc"].as_u64().unwrap();
    node.wait_until(&format!("/wallet/balance?address={address}"), 20, "reward", |v| v["amount_i64"].as_u64() == Some(reward));
    let (_, shown, _) = run(&["balance"]);
    assert!(shown.contains(&format!("confirmed:    {}.{:06} RTC", reward / 1_000_000, reward % 1_000_000)), "{shown}");

    let to = Keypair::from_seed(&[91; 32]).address();
    let (code, out, err) = run(&["send", "--to", &to, "--amount", "0.25", "--memo", "cli"]);
    assert_eq!(code, Some(0), "send failed: {out} {err}");
    assert!(out.contains("tx_hash: ") && out.contains("confirmed in epoch"), "{out}");
    assert_eq!(balance(node, &to), 250_000);
    assert_eq!(balance(node, &address), reward - 250_000);
    let (_, hist, _) = run(&["history"]);
    assert!(hist.contains("transfer_out") && hist.contains("-0.250000") && hist.contains("reward"), "{hist}");

    // A second send uses the next nonce by itself; one beyond the balance is refused by the node.
    let (code, out, err) = run(&["send", "--to", &to, "--amount", "1000", "--no-wait"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("INSUFFICIENT_BALANCE"), "{err}");
}

/// Every validator stops while a transfer is pending and comes back after its epoch should have
/// been settled: each one then settles that epoch and the next back to back. The next one must not
/// judge the transfer again (it waits for the previous epoch's certificate), so the transfer is
/// judged once, in its own epoch, and every node ends with the same balances.
#[test]
fn a_pending_transfer_is_judged_once_when_every_validator_restarts() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 4, 0);
    let mut nodes = start_testnet(dir.path(), &[0, 1, 2, 3]);
    let (sender, reward) = funded_sender(&nodes, 81, "restart-box");

    // Send early in an epoch, let every node hold it, and stop them all before it is settled.
    let receiver = Keypair::from_seed(&[82; 32]).address();
    let tx = loop {
        let (_, slot) = epoch_now(&nodes[0]);
        if slot == 0 {
            let (s, v) = nodes[0].post("/wallet/transfer/signed", &order(&receiver, 0.25, 1).sign(&sender));
            assert_eq!(s, 200, "{v}");
            break v["tx_hash"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for n in &nodes {
        n.wait_until(&format!("/wallet/tx/{tx}"), 3, "pending everywhere", |v| v["status"] == "pending");
    }
    for n in nodes.iter_mut() {
        assert!(n.terminate().success());
    }
    // Two whole epochs go by with every validator down (the spec's clock, not a fixed sleep).
    let spec = protocol::ChainSpec::from_toml(&std::fs::read_to_string(dir.path().join("spec.toml")).unwrap()).unwrap();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let stopped_in = spec.epoch_at(now());
    while spec.epoch_at(now()) < stopped_in + 3 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for n in nodes.iter_mut() {
        n.restart();
    }

    let judged_in: Vec<u64> = nodes.iter().map(|n| {
        let t = judged(n, &tx, 60);
        assert_eq!(t["status"], "confirmed", "{} {t}", n.url);
        t["epoch"].as_u64().unwrap()
    }).collect();
    assert!(judged_in.iter().all(|e| *e == judged_in[0]), "{judged_in:?}");
    // The epoch after it is certified without the transfer.
    for n in &nodes {
        let next = certified(n, judged_in[0] + 1, 60);
        let txs: Vec<&Value> = next["record"]["transfers"].as_array().unwrap().iter().map(|t| &t["tx_hash"]).collect();
        assert!(!txs.contains(&&Value::String(tx.clone())), "judged again in the next epoch at {}: {next}", n.url);
        assert_eq!(balance(n, &receiver), 250_000, "{}", n.url);
        assert_eq!(balance(n, &sender.address()), reward - 250_000, "{}", n.url);
        assert!(!n.log_text().contains("NOT APPLIED"), "{} refused a certified record", n.url);
    }
}

/// A hostile relay with `key`: connect to `target` now, and once `record` arrives announce it there
/// and serve it to whoever asks. Returns whether it was fetched within `secs` seconds.
async fn relay_when_ready(key: Keypair, network: String, target: libp2p::Multiaddr, record: tokio::sync::oneshot::Receiver<TransferRecord>, secs: u64) -> bool {
    let settings = SwarmSettings { network_id: network.clone(), role: Role::Relay, preset: GossipPreset::Tiny, max_peers: 8, heartbeat: Duration::from_millis(200) };
    let mut swarm = behaviour::build_swarm(&key, &settings).unwrap();
    let topic = IdentTopic::new(wire::attestation_topic(&network));
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    swarm.dial(target).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut record = record;
    let mut held: Option<TransferRecord> = None;
    let mut sent: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { request: Request::GetAttestations { .. }, channel, .. }, ..
                })) => {
                    let transfers = held.iter().cloned().collect();
                    let _ = swarm.behaviour_mut().sync.send_response(channel, Response::Attestations { records: vec![], transfers, admin: vec![] });
                }
                // Sent; the swarm keeps running a little, or the answer may be lost with it.
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::ResponseSent { .. })) if held.is_some() => {
                    sent.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(2));
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(sent.unwrap_or(deadline)), if sent.is_some() => return true,
            r = &mut record, if held.is_none() => held = r.ok(),
            _ = tick.tick() => if let Some(r) = &held {
                let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), InvAttestation { ids: vec![Id(r.id())] }.encode());
            },
            _ = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// Issue 13 (9): a relay that sees a transfer wraps it in its own receipt backdated into the
/// epoch before (still open: it is settled only after its grace) and shows it to a validator at
/// once. The transfer counts from its earliest receipt, but never before the time its sender
/// signed (the nonce, in ms), so every node judges it in the epoch it was signed and sent in, not
/// the one before. Before this rule the backdated receipt moved it into the earlier settlement.
#[test]
fn a_relay_cannot_move_a_transfer_into_the_epoch_before() {
    let dir = tempfile::tempdir().unwrap();
    // 1 s slots, 6 slots per epoch, settled 2 slots after the end: the relay has 2 s.
    let out = Command::new(env!("CARGO_BIN_EXE_rustchain"))
        .args(["testnet", "init", "--out"])
        .arg(dir.path())
        .args(["--validators", "4", "--relays", "0", "--genesis-delay", "2", "--slot-seconds", "1", "--slots-per-epoch", "6", "--grace-slots", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nodes = start_testnet(dir.path(), &[0, 1, 2, 3]);
    let spec = protocol::ChainSpec::from_toml(&std::fs::read_to_string(dir.path().join("spec.toml")).unwrap()).unwrap();
    let (sender, _) = funded_sender(&nodes, 85, "relay-box");
    let receiver = Keypair::from_seed(&[86; 32]).address();

    // The wallet signs at the start of epoch `e` (its nonce is that time in ms) and sends then.
    let e = epoch_now(&nodes[0]).0 + 2;
    let start = spec.first_slot(e);
    let body = order(&receiver, 0.25, ((spec.genesis_unix + start * spec.slot_seconds) * 1_000) as i64).sign(&sender);
    let t = protocol::transfer::parse_transfer(&spec, &serde_json::to_vec(&body).unwrap()).unwrap();
    let backdated = TransferRecord::accept(&spec, &Keypair::from_seed(&[0xdd; 32]), &t, start - 1);
    assert_eq!(spec.epoch_of_slot(backdated.receipt.slot), e - 1);

    let (give, take) = tokio::sync::oneshot::channel();
    let target = nodes[1].multiaddr().parse::<libp2p::Multiaddr>().unwrap();
    let net = spec.network_id.clone();
    let relay = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(relay_when_ready(Keypair::from_seed(&[0xdd; 32]), net, target, take, 30))
    });
    while epoch_now(&nodes[0]).0 < e {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(epoch_now(&nodes[0]), (e, 0), "missed the first slot of epoch {e}");
    let (s, v) = nodes[0].post("/wallet/transfer/signed", &body);
    assert_eq!((s, v["confirms_at_epoch"].as_u64()), (200, Some(e)), "{v}");
    let tx = v["tx_hash"].as_str().unwrap().to_owned();
    give.send(backdated).unwrap();
    assert!(relay.join().unwrap(), "no validator fetched the backdated record");

    for n in &nodes {
        let j = judged(n, &tx, 60);
        assert_eq!((j["status"].as_str(), j["epoch"].as_u64()), (Some("confirmed"), Some(e)), "{}: {j}", n.url);
    }
    // The epoch before settled without it.
    let before = certified(&nodes[0], e - 1, 10);
    assert!(before["record"]["transfers"].as_array().unwrap().is_empty(), "{before}");
}
