//! Hostile peers and miners against a 4-validator testnet of real binaries on 127.0.0.1: a
//! receipt signer that puts one miner payload at two slots and shows each version to a different
//! validator cannot split them (issue 13: before the receipt was part of the record's id, each
//! validator kept the first receipt it saw, their registry digests were equal, and the epoch never
//! certified); one machine's fingerprint sent under two serials to two nodes at once is paid once,
//! the same on every node (issue 21).

mod common;

use std::time::Duration;

use common::{Miner, TestNode, attest_in_one_epoch, certified, epoch_now, init_testnet, start_testnet};
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use protocol::attestation::{AttestationRecord, Receipt, parse_submission};
use protocol::crypto::Keypair;
use protocol::wire::{self, Id, InvAttestation, Request, Response};
use rustchain_node::p2p::{self, BehaviourEvent, GossipPreset, Role, SwarmSettings};

/// A hostile peer with `key`: dial `target` only, announce `record` there, and serve it to whoever
/// asks, for `secs` seconds or until it is disconnected after serving. Returns whether it served it.
async fn show_only_to(key: Keypair, network: String, target: libp2p::Multiaddr, record: AttestationRecord, secs: u64) -> bool {
    let settings = SwarmSettings { network_id: network.clone(), role: Role::Relay, preset: GossipPreset::Tiny, max_peers: 8, heartbeat: Duration::from_millis(200) };
    let mut swarm = p2p::build_swarm(&key, &settings).unwrap();
    let topic = IdentTopic::new(wire::attestation_topic(&network));
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    swarm.dial(target).unwrap();
    let inv = InvAttestation { ids: vec![Id(record.id())] }.encode();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut served = false;
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { request: Request::GetAttestations { .. }, channel, .. },
                    ..
                })) => {
                    let _ = swarm.behaviour_mut().sync.send_response(channel, Response::Attestations { records: vec![record.clone()], transfers: vec![] });
                    served = true;
                }
                SwarmEvent::ConnectionClosed { num_established: 0, .. } if served => return true,
                _ => {}
            },
            // Until the mesh has formed, publishing finds no peer: keep trying (a repeat of the
            // same message is refused by gossipsub as a duplicate, harmlessly).
            _ = tick.tick() => { let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), inv.clone()); }
            _ = tokio::time::sleep_until(deadline) => return served,
        }
    }
}

fn stat(node: &TestNode, key: &str) -> u64 {
    node.get("/api/stats").1[key].as_u64().unwrap_or(0)
}

#[test]
fn one_payload_under_two_receipts_cannot_split_the_validators() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 4, 0);
    let nodes = start_testnet(dir.path(), &[0, 1, 2, 3]);
    let spec = protocol::ChainSpec::from_toml(&std::fs::read_to_string(dir.path().join("spec.toml")).unwrap()).unwrap();
    let hostile_seed = [0xee; 32];
    let hostile_peer = p2p::identity_of(&Keypair::from_seed(&hostile_seed)).public().to_peer_id().to_string();

    // A real miner's signed payload (its nonce was never issued: relays cannot check another node's
    // nonce), receipted by the hostile key at two slots of one epoch.
    let miner = Miner::new(61, "split-me", "G4", "SPLIT-SN");
    let sub = parse_submission(&serde_json::to_vec(&miner.body("hostile-nonce-0001")).unwrap()).unwrap();
    let (epoch, slot) = loop {
        let (epoch, in_epoch) = epoch_now(&nodes[0]);
        if in_epoch == 0 {
            break (epoch, epoch * spec.slots_per_epoch);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let payload = sub.payload();
    let record_at = |s: u64| AttestationRecord {
        payload: payload.clone(),
        receipt: Receipt::sign(&spec, &Keypair::from_seed(&hostile_seed), &payload.payload_id(), s, &sub.nonce),
    };
    let (early, late) = (record_at(slot), record_at(slot + 1));
    assert_ne!(early.id(), late.id());

    // Validator 0 is shown only the early receipt, validator 1 only the late one, at once.
    let to = |i: usize| nodes[i].multiaddr().parse::<libp2p::Multiaddr>().unwrap();
    let (to0, to1) = (to(0), to(1));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(async {
        let net = spec.network_id.clone();
        tokio::join!(
            show_only_to(Keypair::from_seed(&hostile_seed), net.clone(), to0, early.clone(), 6),
            show_only_to(Keypair::from_seed(&hostile_seed), net, to1, late.clone(), 6),
        )
    });
    assert!(a && b, "the validators never fetched the records (served: {a}, {b})");

    // One hash, certified everywhere, holding both records; the earlier receipt's weight counts.
    let first = certified(&nodes[0], epoch, 60);
    for n in &nodes {
        let c = certified(n, epoch, 60);
        assert_eq!(c["settlement_hash"], first["settlement_hash"], "node {} settled another hash", n.url);
        assert_eq!(c["status"], "certified", "node {}: {c}", n.url);
    }
    let entries = first["record"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{first}");
    assert_eq!(entries[0]["miner"], "split-me");
    for n in &nodes {
        n.wait_until("/api/stats", 20, "both receipts held", |v| v["attestations"].as_u64() == Some(2));
    }
    // The equivocating signer was caught (by whichever node received both from it or from its
    // neighbours) and banned where it was connected.
    let caught: u64 = nodes.iter().map(|n| stat(n, "receipt_equivocations")).sum();
    assert!(caught >= 1, "no node counted the receipt equivocation");
    let banned = nodes.iter().any(|n| n.log_text().contains("RECEIPT EQUIVOCATION") && n.log_text().contains(&hostile_peer));
    assert!(banned, "no node logged the equivocating signer {hostile_peer}");
}

#[test]
fn one_fingerprint_under_two_serials_at_two_nodes_at_once_is_paid_once_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    init_testnet(dir.path(), 4, 0);
    let nodes = start_testnet(dir.path(), &[0, 1, 2, 3]);
    let real = Miner::new(71, "farm-a", "G4", "FARM-SN-A");
    let mut copy = Miner::new(72, "farm-b", "G4", "FARM-SN-B");
    copy.fingerprint = real.fingerprint.clone();
    let honest = Miner::new(73, "honest-c", "G4", "HONEST-SN-C");
    // The two copies go to two different nodes in the same moment; neither node has seen the other.
    let epoch = attest_in_one_epoch(&[&nodes[0], &nodes[1], &nodes[2]], &[real, copy, honest]);
    let first = certified(&nodes[0], epoch, 60);
    let weights: std::collections::BTreeMap<String, u64> = first["record"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["miner"].as_str().unwrap().to_owned(), e["weight"].as_u64().unwrap()))
        .collect();
    assert_eq!(weights.len(), 3, "{first}");
    let full = weights["honest-c"];
    assert!(full > 2_000_000_000, "{weights:?}");
    // Exactly one of the two copies earns a G4's weight; the other a failed fingerprint's.
    let mut copies = [weights["farm-a"], weights["farm-b"]];
    copies.sort_unstable();
    assert_eq!(copies[0], full / 1_000_000_000, "{weights:?}");
    assert!(copies[1] > 2_000_000_000, "{weights:?}");
    for n in &nodes {
        assert_eq!(certified(n, epoch, 60)["settlement_hash"], first["settlement_hash"], "node {}", n.url);
    }
    // From now on a copy is refused at the door, on any node.
    let again = Miner::new(74, "farm-d", "G4", "FARM-SN-D");
    let mut again = again;
    again.fingerprint = Miner::new(71, "farm-a", "G4", "FARM-SN-A").fingerprint;
    let (s, v) = nodes[3].post("/attest/submit", &again.body(&nodes[3].challenge(None)));
    assert_eq!((s, v["code"].as_str()), (409, Some("HARDWARE_BINDING_FAILED")), "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("entropy_collision"), "{v}");
}
