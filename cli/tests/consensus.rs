//! Epoch agreement through real binaries on 127.0.0.1, from `rustchain testnet init`: validators
//! certify the same settlement hash, every node credits the same balances, a validator cut off for
//! an epoch converges after healing, and a dishonest validator (wrong hash, equivocation) cannot
//! finalize anything and is reported.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Miner, TestNode, attest_in_one_epoch, certified, init_testnet as init, start_testnet as start, balance};
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use protocol::consensus::Vote;
use protocol::wire;
use rustchain_node::net::behaviour::{self, GossipPreset, Role, SwarmSettings};
use serde_json::Value;

#[test]
fn validators_certify_one_hash_and_a_healed_validator_converges() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), 4, 1);
    let nodes = start(dir.path(), &[0, 1, 2, 3, 4]);
    let miners: Vec<Miner> = (0..8u8).map(|i| Miner::new(40 + i, &format!("cons-{i}"), "G4", "")).collect();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let epoch = attest_in_one_epoch(&refs, &miners[..4]);
    for n in &nodes {
        n.wait_until("/api/stats", 20, "records relayed", |v| v["attestations"].as_u64() == Some(4));
    }

    // Cut validator 3 off for more than an epoch (frozen: no gossip, no votes), then heal it.
    let pid = nodes[3].child.as_ref().unwrap().id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let first = certified(&nodes[0], epoch, 30);
    let hash = first["settlement_hash"].clone();
    assert_eq!(first["record"]["entries"].as_array().unwrap().len(), 4);
    assert!(first["certificate"]["signers"].as_array().unwrap().len() >= 3);
    // More attestations while it is away, in a later epoch.
    let live: Vec<&TestNode> = nodes.iter().enumerate().filter(|(i, _)| *i != 3).map(|(_, n)| n).collect();
    let later = attest_in_one_epoch(&live, &miners[4..]);
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();

    // Every node, the healed one included, ends with the same certificates and balances.
    let later_cert = certified(&nodes[0], later, 40);
    for n in &nodes {
        let a = certified(n, epoch, 60);
        assert_eq!(a["settlement_hash"], hash, "node {}", n.url);
        let b = certified(n, later, 60);
        assert_eq!(b["settlement_hash"], later_cert["settlement_hash"], "node {}", n.url);
        assert_eq!(b["record"]["prev_settlement_hash"], later_cert["record"]["prev_settlement_hash"]);
    }
    for m in &miners {
        let expected = balance(&nodes[0], &m.wallet);
        assert!(expected > 0, "{} earned nothing", m.wallet);
        for n in &nodes[1..] {
            assert_eq!(balance(n, &m.wallet), expected, "{} on {}", m.wallet, n.url);
        }
    }
    // The healed validator saw the certificates it missed.
    let st = nodes[3].get("/api/stats").1;
    assert!(st["last_certified_epoch"].as_u64() >= Some(later), "{st}");
}

#[test]
fn a_wrong_or_equivocating_validator_cannot_finalize_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), 4, 0);
    // Three honest validators run; the test holds the fourth validator's key and misbehaves with it.
    let nodes = start(dir.path(), &[0, 1, 2]);
    let bad_key = rustchain_node::keys::read_key(&dir.path().join("node-3/node_key")).unwrap();
    let spec = protocol::ChainSpec::from_toml(&std::fs::read_to_string(dir.path().join("spec.toml")).unwrap()).unwrap();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let epoch = attest_in_one_epoch(&refs, &[Miner::new(60, "honest-a", "G4", ""), Miner::new(61, "honest-b", "G4", "")]);

    let target: libp2p::Multiaddr = nodes[0].multiaddr().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let settings = SwarmSettings { network_id: spec.network_id.clone(), role: Role::Relay, preset: GossipPreset::Tiny, max_peers: 8, heartbeat: Duration::from_millis(200) };
        let mut swarm = behaviour::build_swarm(&rustchain_node::keys::generate(), &settings).unwrap();
        let topic = IdentTopic::new(wire::vote_topic(&spec.network_id));
        swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
        swarm.dial(target).unwrap();
        // A wrong hash, then a second, different hash in the same round: equivocation.
        let votes = [
            Vote::sign(&spec, &bad_key, epoch, 0, [0xaa; 32], [0; 32]),
            Vote::sign(&spec, &bad_key, epoch, 0, [0xbb; 32], [0; 32]),
        ];
        let mut sent = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while sent < votes.len() && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if swarm.behaviour_mut().gossipsub.publish(topic.clone(), wire::encode_vote(&votes[sent])).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        assert_eq!(sent, 2, "could not publish the dishonest votes");
        // Keep the connection up a little so the votes propagate.
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            tokio::select! { _ = swarm.select_next_some() => {}, _ = tokio::time::sleep_until(until) => {} }
        }
    });

    for n in &nodes {
        let s = certified(n, epoch, 40);
        let bad = hex::encode(bad_key.public());
        assert_ne!(s["settlement_hash"], Value::String(hex::encode([0xaa; 32])));
        assert!(!s["certificate"]["signers"].as_array().unwrap().contains(&Value::String(bad.clone())), "the dishonest vote is not in the certificate");
        let ev = n.wait_until(&format!("/api/epoch/{epoch}/settlement"), 20, "equivocation evidence", |v| {
            v["equivocations"].as_array().is_some_and(|e| !e.is_empty())
        });
        assert_eq!(ev["equivocations"][0]["validator"], Value::String(bad.clone()));
        assert!(n.log_text().contains("EQUIVOCATION"));
    }
}

/// Issue 19: a node that joins a validator chain late (fresh data dir, epochs already certified
/// before its first) ends with the same certificates and the same balances as the validators, not
/// just the same records, and serves wallets the same answers.
#[test]
fn a_late_joiner_has_the_chains_certificates_and_balances() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), 2, 1);
    let nodes = start(dir.path(), &[0, 1]);
    let miners: Vec<Miner> = (0..3u8).map(|i| Miner::new(90 + i, &format!("late-{i}"), "G4", "")).collect();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let epoch = attest_in_one_epoch(&refs, &miners);
    for n in &nodes {
        certified(n, epoch, 60);
    }
    let expected: Vec<u64> = miners.iter().map(|m| balance(&nodes[0], &m.wallet)).collect();
    assert!(expected.iter().all(|b| *b > 0), "{expected:?}");

    // The relay starts only now, with an empty data dir, more epochs after `epoch` than it keeps
    // history for (and than its rounds look back): nothing but the chain's certificates can tell it
    // what `epoch` paid.
    loop {
        let (now, _) = common::epoch_now(&nodes[0]);
        if now > epoch + 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let spec = dir.path().join("spec.toml");
    let late = TestNode::start(
        &dir.path().join("node-2"),
        &["--spec", spec.to_str().unwrap(), "--gossip-preset", "tiny", "--gossip-heartbeat-ms", "200", "--history-epochs", "1", "--bootnodes", &nodes[0].multiaddr()],
    );
    late.wait_until("/api/p2p/status", 30, "connected and synced", |v| v["total_peers"].as_u64() >= Some(1) && v["sync_status"] == "synced");
    let mine = certified(&late, epoch, 60);
    assert_eq!(mine["settlement_hash"], certified(&nodes[0], epoch, 5)["settlement_hash"]);
    for (m, want) in miners.iter().zip(&expected) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = balance(&late, &m.wallet);
            if got == *want {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}: {got} on the late joiner, {want} on the validators", m.wallet);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
