//! The mesh, through real binaries on 127.0.0.1: attestations submitted to different nodes reach
//! every node; a late node and a node restarted after `kill -9` catch up; a hostile peer speaking
//! our protocols is cut off while the honest nodes keep working. Waits on answers, not sleeps.

mod common;

use std::time::Duration;

use common::{Miner, TestNode};
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use protocol::attestation::{AttestationRecord, Receipt, parse_submission};
use protocol::crypto::Keypair;
use protocol::wire::{self, Id, InvAttestation, Request, Response};
use rustchain_node::net::behaviour::{self, BehaviourEvent, GossipPreset, Role, SwarmSettings};
use serde_json::json;

const MESH_FLAGS: [&str; 4] = ["--gossip-preset", "tiny", "--gossip-heartbeat-ms", "200"];

fn start_mesh(dir: &std::path::Path, n: usize) -> Vec<TestNode> {
    let first = TestNode::start(&dir.join("node-0"), &[&MESH_FLAGS[..], &["--role", "primary"]].concat());
    let boot = first.multiaddr();
    let mut nodes = vec![first];
    for i in 1..n {
        let role = if i == n - 1 { "archive" } else { "relay" };
        nodes.push(TestNode::start(&dir.join(format!("node-{i}")), &[&MESH_FLAGS[..], &["--bootnodes", &boot, "--role", role]].concat()));
    }
    for node in &nodes {
        node.wait_until("/api/p2p/status", 30, "peers connected and synced", |v| {
            v["total_peers"].as_u64() >= Some(1) && v["sync_status"] == "synced"
        });
    }
    nodes
}

/// Submit `m`'s attestation to `node`; the id of the record it stored.
fn attest(node: &TestNode, m: &Miner) -> String {
    let (s, v) = node.post("/attest/submit", &m.body(&node.challenge(None)));
    assert_eq!(s, 200, "{v}");
    v["record_id"].as_str().expect("record_id").to_owned()
}

fn attestations(node: &TestNode) -> u64 {
    node.get("/api/stats").1["attestations"].as_u64().unwrap()
}

fn wait_all_have(nodes: &[TestNode], n: u64, what: &str) {
    for node in nodes {
        node.wait_until("/api/stats", 45, what, |v| v["attestations"].as_u64() == Some(n));
    }
}

#[test]
fn attestations_reach_every_node_and_late_or_restarted_nodes_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_mesh(dir.path(), 5);
    let miners: Vec<Miner> = (0..20u8).map(|i| Miner::new(10 + i, &format!("mesh-{i}"), "G4", "")).collect();

    // Attestations submitted to different nodes appear everywhere.
    let mut ids: Vec<String> = Vec::new();
    for (i, m) in miners[..10].iter().enumerate() {
        ids.push(attest(&nodes[i % 5], m));
    }
    wait_all_have(&nodes, 10, "gossip relay");

    // Replays across nodes do not double-enroll: the same signed payload sent to another node is
    // refused there (that node never issued its nonce), and relaying it again stores nothing new.
    let replayed = miners[0].body(&nodes[0].challenge(None));
    let (s, v) = nodes[0].post("/attest/submit", &replayed);
    assert_eq!(s, 200);
    ids.push(v["record_id"].as_str().unwrap().to_owned());
    let (s, v) = nodes[3].post("/attest/submit", &replayed);
    assert_eq!((s, v["code"].as_str()), (409, Some("CHALLENGE_INVALID")), "{v}");
    wait_all_have(&nodes, 11, "relay of the second attestation");
    for n in &nodes {
        let (_, e) = n.get("/epoch");
        assert!(e["enrolled_miners"].as_u64() <= Some(10), "one wallet enrolls once per epoch: {e}");
    }

    // Every node holds the same record set: each record that was acknowledged, and no other.
    for n in &nodes {
        assert_eq!(attestations(n), ids.len() as u64, "node {} holds another number of records", n.url);
        for id in &ids {
            let (s, v) = n.get(&format!("/api/attestation/{id}"));
            assert_eq!(s, 200, "node {} lacks record {id}: {v}", n.url);
        }
    }
    // The primary knows its peers for what they are.
    let status = nodes[0].get("/api/p2p/status").1;
    assert_eq!(status["role"], json!("primary"));
    assert!(status["peers"].as_array().unwrap().iter().all(|p| p["agent"].as_str().is_some_and(|a| a.starts_with("rustchain/"))));

    // A sixth node, started later, catches up by itself.
    let boot = nodes[0].multiaddr();
    let late = TestNode::start(&dir.path().join("node-late"), &[&MESH_FLAGS[..], &["--bootnodes", &boot]].concat());
    late.wait_until("/api/stats", 45, "late node catch-up", |v| v["attestations"].as_u64() == Some(11));
    assert!(late.log_text().contains("caught up"), "the catch-up shows in the log");
    nodes.push(late);

    // kill -9 a relay, keep attesting elsewhere, restart it: it catches up.
    nodes[2].kill9();
    for (i, m) in miners[10..15].iter().enumerate() {
        attest(&nodes[[0, 1, 3, 4, 5][i]], m);
    }
    let live: Vec<&TestNode> = nodes.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, n)| n).collect();
    for n in &live {
        n.wait_until("/api/stats", 45, "relay while one node is down", |v| v["attestations"].as_u64() == Some(16));
    }
    nodes[2].restart();
    nodes[2].wait_until("/api/stats", 45, "restarted node catch-up", |v| v["attestations"].as_u64() == Some(16));

    // And it takes part again: what it accepts reaches everyone.
    for m in &miners[15..] {
        attest(&nodes[2], m);
    }
    wait_all_have(&nodes, 21, "relay from the restarted node");
    for n in &nodes {
        assert_eq!(attestations(n), 21);
    }

    // Across epoch boundaries: on the devnet spec (no validator set) every node certifies alone,
    // and the others' votes must not get honest peers penalised or banned (they once did, after
    // two epochs, which split the mesh).
    let epoch = nodes[0].get("/epoch").1["epoch"].as_u64().unwrap();
    for n in &nodes {
        n.wait_until("/api/stats", 90, "two more certified epochs", |v| v["last_certified_epoch"].as_u64() >= Some(epoch + 1));
    }
    attest(&nodes[4], &Miner::new(99, "mesh-after-epochs", "G4", ""));
    wait_all_have(&nodes, 22, "relay after two epoch boundaries");
    for n in &nodes {
        let log = n.log_text();
        assert!(!log.contains("peer penalised") && !log.contains("peer banned"), "an honest peer was penalised:\n{log}");
    }
}

/// Drive a libp2p swarm of our own until `done` says so (or time runs out).
async fn drive<T>(
    swarm: &mut libp2p::Swarm<behaviour::Behaviour>,
    secs: u64,
    mut step: impl FnMut(&mut libp2p::Swarm<behaviour::Behaviour>, Option<SwarmEvent<BehaviourEvent>>) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => Some(ev),
            _ = tick.tick() => None,
            _ = tokio::time::sleep_until(deadline) => return None,
        };
        if let Some(out) = step(swarm, ev) {
            return Some(out);
        }
    }
}

#[test]
fn a_hostile_peer_is_banned_and_honest_nodes_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_mesh(dir.path(), 3);
    let target = &nodes[0];
    let target_addr: libp2p::Multiaddr = target.multiaddr().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let hostile_key = Keypair::from_seed(&[0xee; 32]);
    let hostile_peer = behaviour::identity_of(&hostile_key).public().to_peer_id();
    let settings = SwarmSettings { network_id: "devnet".into(), role: Role::Relay, preset: GossipPreset::Tiny, max_peers: 8, heartbeat: Duration::from_millis(200) };

    // A forged record: a real miner payload under a receipt whose signature is wrong.
    let miner = Miner::new(77, "victim", "G4", "");
    let sub = parse_submission(&serde_json::to_vec(&miner.body("not-a-real-nonce")).unwrap()).unwrap();
    let payload = sub.payload();
    let spec = protocol::ChainSpec::builtin("devnet").unwrap();
    let mut receipt = Receipt::sign(&spec, &hostile_key, &payload.payload_id(), 1, &sub.nonce);
    receipt.signature[0] ^= 0xff;
    let forged = AttestationRecord { payload, receipt };
    let forged_id = forged.id();

    rt.block_on(async {
        let mut swarm = behaviour::build_swarm(&hostile_key, &settings).unwrap();
        let topic = IdentTopic::new(wire::attestation_topic("devnet"));
        swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
        swarm.dial(target_addr.clone()).unwrap();

        // Garbage and a lie, until the node cuts us off.
        let mut sent_garbage = 0;
        let banned = drive(&mut swarm, 40, |swarm, ev| {
            match ev {
                Some(SwarmEvent::ConnectionClosed { num_established: 0, .. }) if sent_garbage > 0 => return Some(true),
                Some(SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { request: Request::GetAttestations { .. }, channel, .. },
                    ..
                }))) => {
                    let _ = swarm.behaviour_mut().sync.send_response(channel, Response::Attestations { records: vec![forged.clone()], transfers: vec![], admin: vec![] });
                }
                _ => {}
            }
            if swarm.is_connected(target_addr.iter().last().and_then(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            }).as_ref().unwrap()) {
                let g = &mut swarm.behaviour_mut().gossipsub;
                let garbage = vec![0xffu8, 0x00, 0x13, sent_garbage as u8];
                if g.publish(topic.clone(), garbage).is_ok() {
                    sent_garbage += 1;
                }
                let inv = InvAttestation { ids: vec![Id(forged_id)] };
                let _ = g.publish(topic.clone(), [inv.encode(), vec![sent_garbage as u8]].concat());
                let _ = g.publish(topic.clone(), inv.encode());
            }
            None
        })
        .await;
        assert_eq!(banned, Some(true), "the node never disconnected the hostile peer");
    });

    // The node reports the ban, stores nothing of the forgery, and no longer lists the peer.
    let st = target.wait_until("/api/p2p/status", 20, "ban recorded", |v| v["banned_peers"].as_u64() >= Some(1));
    assert!(!st["peers"].as_array().unwrap().iter().any(|p| p["peer_id"] == json!(hostile_peer.to_string())));
    assert!(target.log_text().contains("peer banned"));
    for n in &nodes {
        assert_eq!(attestations(n), 0, "nothing unverified is stored");
    }

    // Honest traffic still flows.
    let honest = attest(&nodes[1], &Miner::new(78, "honest", "G4", ""));
    wait_all_have(&nodes, 1, "honest relay after the attack");
    assert_eq!(target.get(&format!("/api/attestation/{honest}")).0, 200, "the attacked node stores honest records again");
}
