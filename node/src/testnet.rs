//! `rustchain testnet init`: everything a local network needs to start with no further setup: a
//! chain spec with a fresh genesis and the validators' keys, and one data dir per node holding its
//! key, plus the command line that starts each node.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use protocol::ChainSpec;

use crate::keys;
use crate::p2p;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Validators: nodes whose votes certify settlements (node-0 .. node-<N-1>).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Relays after the validators (the last one is an archive).
    #[arg(long, default_value_t = 1)]
    pub relays: usize,
    /// Directory to create (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
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
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
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
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} exists and is not empty", args.out.display());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let total = args.validators + args.relays;
    let mut nodes = Vec::new();
    let mut validator_keys = Vec::new();
    for i in 0..total {
        let dir = args.out.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir)?;
        let key = keys::generate();
        keys::write_key(&keys::node_key_path(&dir), &key)?;
        let peer_id = p2p::identity_of(&key).public().to_peer_id().to_string();
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
    spec.validators = validator_keys;
    let text = format!(
        "# Local testnet chain spec written by `rustchain testnet init` ({} validators, {} relays).\n{}",
        args.validators,
        args.relays,
        spec.to_toml()
    );
    ChainSpec::from_toml(&text).context("the generated chain spec does not validate")?;
    let spec_path = args.out.join("spec.toml");
    std::fs::write(&spec_path, text)?;

    let boot = format!("/ip4/{}/tcp/{}/p2p/{}", args.host, args.base_p2p_port, nodes[0].1);
    let preset = if total <= 5 { "tiny" } else { "small" };
    let mut commands = String::new();
    for (i, (dir, _, role)) in nodes.iter().enumerate() {
        let bootnodes = if i == 0 { String::new() } else { format!(" --bootnodes {boot}") };
        let _ = writeln!(
            commands,
            "rustchain node --spec {} --data-dir {} --role {role} --gossip-preset {preset} --http-addr {}:{} --p2p-addr /ip4/{}/tcp/{}{bootnodes}",
            spec_path.display(),
            dir.display(),
            args.host,
            args.base_http_port + i as u16,
            args.host,
            args.base_p2p_port + i as u16,
        );
    }
    std::fs::write(args.out.join("commands.txt"), &commands)?;
    Ok(Testnet { spec_path, nodes, commands })
}

/// The peer id of the node whose data dir is `dir`.
pub fn peer_id_of(dir: &Path) -> anyhow::Result<String> {
    Ok(p2p::identity_of(&keys::read_key(&keys::node_key_path(dir))?).public().to_peer_id().to_string())
}
