//! The `rustchain` binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rustchain_node::config::{LogFormat, NodeArgs, NodeConfig};
use rustchain_node::config::HumanDuration;
use rustchain_node::{attest, dbops, keys, netcheck, service, sim, testnet};

/// RustChain node: validates vintage-hardware attestations, settles every epoch deterministically,
/// and serves the miners' HTTP API.
#[derive(Parser)]
#[command(name = "rustchain", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. With no options: the devnet chain spec, ./rustchain-data, HTTP on 127.0.0.1:8099.
    Node(NodeArgs),
    /// Generate an Ed25519 key file (mode 0600) and print its public key and RTC address.
    Keygen {
        /// Where to write the key; refuses to overwrite.
        #[arg(long, default_value = "miner.key")]
        out: PathBuf,
    },
    /// Measure this machine's hardware fingerprint, sign it like a field miner, and submit it.
    Attest(attest::AttestArgs),
    /// Database operations: backup (online or offline), restore, check, compact.
    #[command(subcommand)]
    Db(dbops::DbCommand),
    /// Local multi-node networks: create one, drive simulated miners into it, check that its nodes agree.
    #[command(subcommand)]
    Testnet(TestnetCommand),
    /// Exit 0 when a node's endpoint answers 2xx (a container healthcheck; the image has no curl).
    Probe {
        /// The endpoint to ask.
        #[arg(long, default_value = "http://127.0.0.1:8099/readyz")]
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_name = "DURATION")]
        timeout: HumanDuration,
    },
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Write DIR/spec.toml (fresh genesis, the validators' keys) and DIR/node-<i>/ (each node's key),
    /// and print the command that starts each node.
    Init(testnet::InitArgs),
    /// Print one row per node (peers, epoch, last certified epoch, settlement hash, sync status)
    /// and exit 0 when all nodes agree on their certified settlements, 1 when they do not.
    Check(netcheck::CheckArgs),
    /// Simulate many miners attesting at a chosen rate, each attestation to a random node; write
    /// the acknowledged ones to a ledger for `testnet check --ledger`.
    Miners(sim::MinersArgs),
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    // A log write that fails (a full disk under a redirected stderr) is dropped: the default
    // reports it with `eprintln!`, which panics the logging thread (the writer, say) in that case.
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    match cli.command {
        Command::Node(args) => {
            let cfg = NodeConfig::resolve(&args)?;
            if args.dump_config {
                print!("{}", cfg.dump());
                return Ok(());
            }
            init_logging(cfg.log_format, &cfg.log_level);
            rt.block_on(service::run(cfg))
        }
        Command::Keygen { out } => {
            let key = keys::generate();
            keys::write_key(&out, &key)?;
            println!("key file:   {}", out.display());
            println!("public key: {}", hex::encode(key.public()));
            println!("address:    {}", key.address());
            Ok(())
        }
        Command::Testnet(TestnetCommand::Init(args)) => {
            if let Some(spec) = testnet::existing(&args) {
                println!("{} already holds a testnet ({}); kept as it is (--keep-existing)", args.out.display(), spec.display());
                return Ok(());
            }
            let t = testnet::init(&args, rustchain_node::service::Clock.now_unix())?;
            println!("chain spec: {}", t.spec_path.display());
            for (dir, peer, role) in &t.nodes {
                println!("{role:8} {}  peer {peer}", dir.display());
            }
            println!("\nstart each node with (also in {}/commands.txt):\n{}", args.out.display(), t.commands);
            Ok(())
        }
        Command::Testnet(TestnetCommand::Check(args)) => {
            init_logging(LogFormat::Text, "warn");
            let code = rt.block_on(netcheck::run(args))?;
            std::process::exit(code);
        }
        Command::Testnet(TestnetCommand::Miners(args)) => {
            init_logging(LogFormat::Text, "warn");
            rt.block_on(sim::run(args))
        }
        Command::Probe { url, timeout } => {
            let code = rt.block_on(netcheck::probe(&url, timeout.0))?;
            std::process::exit(code);
        }
        Command::Attest(args) => {
            init_logging(LogFormat::Text, "warn");
            rt.block_on(attest::run(args))
        }
        Command::Db(cmd) => {
            init_logging(LogFormat::Text, "warn");
            drop(rt);
            let code = dbops::run_command(cmd)?;
            std::process::exit(code);
        }
    }
}
