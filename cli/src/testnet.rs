//! `rustchain testnet init`: everything a local network needs to start with no further setup: a
//! chain spec with a fresh genesis and the validators' keys, and one data dir per node holding its
//! key, plus the command line that starts each node.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use protocol::ChainSpec;

use rustchain_node::keys;
use rustchain_node::net::behaviour;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Validators: nodes whose votes certify settlements (node-0 .. node-<N-1>).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Relays after the validators (the last one is an archive).
    #[arg(long, default_value_t = 1)]
    pub relays: usize,
    /// Directory to create (must not exist, or hold only empty directories, e.g. volume mount
    /// points for the nodes' data dirs).
    #[arg(long)]
    pub out: PathBuf,
    /// If DIR already holds a testnet (DIR/spec.toml), keep it and exit 0: for an init step that
    /// runs before every start (docker compose).
    #[arg(long)]
    pub keep_existing: bool,
    /// Seconds from now to genesis.
    #[arg(long, default_value_t = 5)]
    pub genesis_delay: u64,
    #[arg(long, default_value_t = 2)]
    pub slot_seconds: u64,
    #[arg(long, default_value_t = 10)]
    pub slots_per_epoch: u64,
    #[arg(long, default_value_t = 2)]
    pub grace_slots: u64,
    /// Network id of the new chain.
    #[arg(long, default_value = "localnet")]
    pub network_id: String,
    /// Host the nodes' addresses use in the printed commands and bootnodes.
    #[arg(long, default_value = "127.0.0.1", conflicts_with = "hosts")]
    pub host: String,
    /// One host per node, comma-separated (node-0 first), e.g. compose service names. Every node
    /// then uses the base ports on its own host; without it node-i uses --host and base + i.
    /// Names that are not IP addresses become /dns4/ multiaddrs.
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub hosts: Option<Vec<String>>,
    /// Also write every node's p2p address into the chain spec's bootnodes (a node skips its
    /// own), so the nodes need no --bootnodes and a restarted node can reach any of the others.
    #[arg(long)]
    pub spec_bootnodes: bool,
    /// HTTP port of node-0; node-i gets base + i.
    #[arg(long, default_value_t = 8100)]
    pub base_http_port: u16,
    /// P2P port of node-0; node-i gets base + i.
    #[arg(long, default_value_t = 9100)]
    pub base_p2p_port: u16,
}

/// What `init` made: the spec and, per node, its data dir, peer id and role.
pub struct Testnet {
    pub spec_path: PathBuf,
    pub nodes: Vec<(PathBuf, String, &'static str)>,
    pub commands: String,
}

pub fn init(args: &InitArgs, now_unix: u64) -> anyhow::Result<Testnet> {
    if args.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if args.out.exists() && !only_empty_dirs(&args.out)? {
        bail!("{} exists and is not empty", args.out.display());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let total = args.validators + args.relays;
    let hosts = node_hosts(args, total)?;
    let mut nodes = Vec::new();
    let mut validator_keys = Vec::new();
    for i in 0..total {
        let dir = args.out.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir)?;
        let key = keys::generate();
        keys::write_key(&keys::node_key_path(&dir), &key)?;
        let peer_id = behaviour::identity_of(&key).public().to_peer_id().to_string();
        let role = if i == 0 {
            "primary"
        } else if i + 1 == total && args.relays > 0 {
            "archive"
        } else {
            "relay"
        };
        if i < args.validators {
            validator_keys.push(hex::encode(key.public()));
        }
        nodes.push((dir, peer_id, role));
    }
    let mut spec = ChainSpec::builtin("devnet")?;
    spec.network_id = args.network_id.clone();
    spec.genesis_unix = now_unix + args.genesis_delay;
    spec.slot_seconds = args.slot_seconds;
    spec.slots_per_epoch = args.slots_per_epoch;
    spec.settlement_grace_slots = args.grace_slots;
    // The primary (validator 0) is the network's admin node: its key signs pin changes (§7.2).
    spec.admin.keys = vec![validator_keys[0].clone()];
    spec.validators = validator_keys;
    let addr_of = |i: usize| p2p_addr(&hosts[i].0, hosts[i].2, &nodes[i].1);
    if args.spec_bootnodes {
        spec.bootnodes = (0..total).map(addr_of).collect();
    }
    let text = format!(
        "# Local testnet chain spec written by `rustchain testnet init` ({} validators, {} relays).\n{}",
        args.validators,
        args.relays,
        spec.to_toml()
    );
    ChainSpec::from_toml(&text).context("the generated chain spec does not validate")?;
    let spec_path = args.out.join("spec.toml");
    std::fs::write(&spec_path, text)?;

    let boot = addr_of(0);
    let preset = if total <= 5 { "tiny" } else { "small" };
    let mut commands = String::new();
    for (i, (dir, _, role)) in nodes.iter().enumerate() {
        let bootnodes = if i == 0 || args.spec_bootnodes { String::new() } else { format!(" --bootnodes {boot}") };
        let (host, http_port, p2p_port) = &hosts[i];
        // Each node its own metrics port (the default, 9090, is one per machine and Prometheus's
        // own): the p2p port + 1000, on loopback (metrics stay private).
        let metrics_port = p2p_port.checked_add(1000).context("--base-p2p-port leaves no room for metrics ports (p2p port + 1000)")?;
        let _ = writeln!(
            commands,
            "rustchain node --spec {} --data-dir {} --role {role} --gossip-preset {preset} --http-addr {} --p2p-addr {}{bootnodes} --metrics-addr 127.0.0.1:{metrics_port}",
            spec_path.display(),
            dir.display(),
            host_port(host, *http_port),
            listen_addr(host, *p2p_port),
        );
    }
    std::fs::write(args.out.join("commands.txt"), &commands)?;
    Ok(Testnet { spec_path, nodes, commands })
}

/// `DIR/spec.toml` when `--keep-existing` is given and DIR already holds a testnet.
pub fn existing(args: &InitArgs) -> Option<PathBuf> {
    let spec = args.out.join("spec.toml");
    (args.keep_existing && spec.exists()).then_some(spec)
}

/// True when `dir` holds nothing but (nested) empty directories.
fn only_empty_dirs(dir: &Path) -> anyhow::Result<bool> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() || !only_empty_dirs(&entry.path())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Per node: (host, HTTP port, p2p port).
fn node_hosts(args: &InitArgs, total: usize) -> anyhow::Result<Vec<(String, u16, u16)>> {
    let Some(hosts) = &args.hosts else {
        let port = |base: u16, i: usize| u16::try_from(i).ok().and_then(|i| base.checked_add(i)).context("port beyond 65535");
        return (0..total).map(|i| Ok((args.host.clone(), port(args.base_http_port, i)?, port(args.base_p2p_port, i)?))).collect();
    };
    if hosts.len() != total {
        bail!("--hosts names {} hosts, but the testnet has {total} nodes (--validators + --relays)", hosts.len());
    }
    if let Some(bad) = hosts.iter().find(|h| h.is_empty() || h.contains(['/', ' ', ':']) && h.parse::<std::net::IpAddr>().is_err()) {
        bail!("--hosts: {bad:?} is not a host name or IP address");
    }
    Ok(hosts.iter().map(|h| (h.clone(), args.base_http_port, args.base_p2p_port)).collect())
}

/// The multiaddr protocol part for a host: /ip4/, /ip6/ or /dns4/.
fn host_part(host: &str) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => format!("/ip4/{ip}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("/ip6/{ip}"),
        Err(_) => format!("/dns4/{host}"),
    }
}

/// A node's dialable p2p address.
fn p2p_addr(host: &str, port: u16, peer_id: &str) -> String {
    format!("{}/tcp/{port}/p2p/{peer_id}", host_part(host))
}

/// The address a node listens on: its IP, or every interface when it is known by a name.
fn listen_addr(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(_) => format!("{}/tcp/{port}", host_part(host)),
        Err(_) => format!("/ip4/0.0.0.0/tcp/{port}"),
    }
}

/// `host:port` for --http-addr (a socket address: every interface when the host is a name).
fn host_port(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Ok(ip) => format!("{ip}:{port}"),
        Err(_) => format!("0.0.0.0:{port}"),
    }
}

/// The peer id of the node whose data dir is `dir`.
pub fn peer_id_of(dir: &Path) -> anyhow::Result<String> {
    Ok(behaviour::identity_of(&keys::read_key(&keys::node_key_path(dir))?).public().to_peer_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        init: InitArgs,
    }

    fn args(extra: &[&str]) -> InitArgs {
        Cli::parse_from([&["init"][..], extra].concat()).init
    }

    #[test]
    fn a_compose_testnet_lists_every_node_by_name_in_its_spec() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("net");
        // Volume mount points: empty directories are fine.
        std::fs::create_dir_all(out.join("node-0")).unwrap();
        let a = args(&["--out", out.to_str().unwrap(), "--validators", "2", "--relays", "1", "--spec-bootnodes",
                       "--hosts", "primary,relay1,archive", "--base-p2p-port", "8545", "--base-http-port", "8099"]);
        let t = init(&a, 1_000).unwrap();
        let spec = ChainSpec::from_toml(&std::fs::read_to_string(&t.spec_path).unwrap()).unwrap();
        assert_eq!(spec.validators.len(), 2);
        assert_eq!(spec.admin.keys, spec.validators[..1], "the primary is the admin node");
        let expected: Vec<String> =
            t.nodes.iter().zip(["primary", "relay1", "archive"]).map(|((_, peer, _), h)| format!("/dns4/{h}/tcp/8545/p2p/{peer}")).collect();
        assert_eq!(spec.bootnodes, expected);
        assert_eq!(t.nodes.iter().map(|n| n.2).collect::<Vec<_>>(), ["primary", "relay", "archive"]);
        assert!(t.commands.contains("--http-addr 0.0.0.0:8099 --p2p-addr /ip4/0.0.0.0/tcp/8545"), "{}", t.commands);
        assert!(!t.commands.contains("--bootnodes"), "the spec carries them");

        // A second init into the same place refuses, unless told to keep what is there.
        assert!(init(&a, 2_000).is_err());
        assert_eq!(existing(&a), None);
        assert_eq!(existing(&args(&["--out", out.to_str().unwrap(), "--keep-existing"])), Some(t.spec_path.clone()));
    }

    #[test]
    fn a_loopback_testnet_counts_ports_up_and_checks_its_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let t = init(&args(&["--out", dir.path().join("n").to_str().unwrap(), "--validators", "2", "--relays", "0"]), 1_000).unwrap();
        let metrics: std::collections::BTreeSet<&str> =
            t.commands.lines().map(|l| l.split("--metrics-addr ").nth(1).unwrap().split(' ').next().unwrap()).collect();
        assert_eq!(metrics.len(), t.commands.lines().count(), "every node its own metrics port: {}", t.commands);
        let first = t.commands.lines().next().unwrap();
        assert!(first.contains("--http-addr 127.0.0.1:8100 --p2p-addr /ip4/127.0.0.1/tcp/9100"), "{first}");
        let second = t.commands.lines().nth(1).unwrap();
        assert!(second.contains("--p2p-addr /ip4/127.0.0.1/tcp/9101 --bootnodes /ip4/127.0.0.1/tcp/9100/p2p/"), "{second}");
        let bad = |h: &str| init(&args(&["--out", dir.path().join(h.len().to_string()).to_str().unwrap(), "--validators", "1", "--relays", "0", "--hosts", h]), 1);
        assert!(bad("a,b").is_err(), "two hosts for one node");
        assert!(bad("not a host").is_err());
        assert_eq!(p2p_addr("::1", 7, "P"), "/ip6/::1/tcp/7/p2p/P");
        assert_eq!(host_port("::1", 7), "[::1]:7");
    }
}
