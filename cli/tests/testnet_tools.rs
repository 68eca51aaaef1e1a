//! The testnet tools against real nodes on 127.0.0.1: a network started from a chain spec that
//! lists every node as a bootnode (`testnet init --spec-bootnodes`, no --bootnodes flags), the miner
//! simulator (`testnet miners`) writing a ledger of acknowledged attestations, the agreement check
//! (`testnet check`) passing on it and failing on a record no node holds, and `probe`.

mod common;

use std::process::{Command, Output};

use common::TestNode;

fn rustchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustchain")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn simulated_miners_reach_every_node_and_the_check_proves_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    // `testnet init` numbers p2p ports base + i.
    let p2p = common::free_ports(2);
    let init = rustchain(&[
        "testnet", "init", "--out", net.to_str().unwrap(), "--validators", "1", "--relays", "1", "--spec-bootnodes",
        "--base-p2p-port", &p2p.to_string(), "--genesis-delay", "1", "--slot-seconds", "1", "--slots-per-epoch", "4",
        "--grace-slots", "1",
    ]);
    assert!(init.status.success(), "{}", text(&init));
    let spec = net.join("spec.toml");
    let common_args = ["--spec", spec.to_str().unwrap(), "--gossip-preset", "tiny", "--gossip-heartbeat-ms", "200"];
    let mut nodes = Vec::new();
    for (i, role) in ["primary", "archive"].iter().enumerate() {
        let mut n = TestNode::new(&net.join(format!("node-{i}")), &[&common_args[..], &["--role", role]].concat());
        n.p2p_port = p2p + i as u16;
        n.spawn();
        nodes.push(n);
    }
    // Only the chain spec's bootnodes connect them; each skipped its own address.
    for n in &nodes {
        n.wait_until("/api/p2p/status", 30, "connected through the spec's bootnodes", |v| {
            v["total_peers"].as_u64() == Some(1) && v["sync_status"] == "synced"
        });
        assert!(!n.log_text().contains("cannot dial bootnode"), "{}", n.log_text());
    }

    let urls = format!("{},{}", nodes[0].url, nodes[1].url);
    let ledger = dir.path().join("ledger.txt");
    let miners = rustchain(&[
        "testnet", "miners", "--nodes", &urls, "--miners", "5", "--rate", "20", "--count", "12", "--ledger", ledger.to_str().unwrap(),
    ]);
    assert!(miners.status.success(), "{}", text(&miners));
    let lines = std::fs::read_to_string(&ledger).unwrap();
    let acknowledged = lines.lines().count();
    assert!(acknowledged >= 12, "{acknowledged} lines in the ledger\n{}", text(&miners));
    assert!(text(&miners).contains(&format!("\"acknowledged\":{acknowledged}")), "{}", text(&miners));
    for line in lines.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert!(fields[2] == nodes[0].url || fields[2] == nodes[1].url, "{line}");
    }

    let named = format!("primary={},archive={}", nodes[0].url, nodes[1].url);
    let check = rustchain(&["testnet", "check", "--nodes", &named, "--ledger", ledger.to_str().unwrap(), "--wait", "60s"]);
    let out = text(&check);
    assert!(check.status.success(), "{out}");
    assert!(out.contains("AGREE: 2 nodes") && out.contains(&format!("all {acknowledged} acknowledged attestations")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("primary ")) && out.lines().any(|l| l.starts_with("archive ")), "{out}");

    // A record that no node holds: the check says which nodes lack it and fails.
    let forged = dir.path().join("forged.txt");
    std::fs::write(&forged, format!("{lines}{} 0 {} nobody\n", "ab".repeat(32), nodes[0].url)).unwrap();
    let check = rustchain(&["testnet", "check", "--nodes", &named, "--ledger", forged.to_str().unwrap()]);
    let out = text(&check);
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(out.contains("DISAGREE") && out.contains("primary: lacks 1 acknowledged") && out.contains("archive: lacks 1"), "{out}");

    assert!(rustchain(&["probe", "--url", &format!("{}/readyz", nodes[0].url)]).status.success());
    let closed = format!("http://127.0.0.1:{}/readyz", common::free_port());
    assert_eq!(rustchain(&["probe", "--url", &closed]).status.code(), Some(1));
}
