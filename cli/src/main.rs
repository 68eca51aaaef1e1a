//! The `rustchain` binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rustchain_node::config::{LogFormat, NodeArgs, NodeConfig};
use rustchain_node::config::HumanDuration;
use rustchain_cli::{attest, db, netcheck, sim, testnet, verify, wallet, wallet_cli};
use rustchain_node::{keys, runtime};

/// RustChain node: validates vintage-hardware attestations, settles every epoch deterministically,
/// and serves the miners' HTTP API.
#[derive(Parser)]
#[command(name = "rustchain", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the node's options does not matter.
#[allow(clippy::large_enum_variant)]
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
    Db(db::DbCommand),
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
    /// Wallet keys: 24 recovery words, an Ed25519 key derived from them (SLIP-0010, path
    /// m/44'/21076'/0'/0'/0'), kept in a passphrase-encrypted key file (scrypt + ChaCha20-Poly1305,
    /// mode 0600). Secrets are printed only when asked for with --show-mnemonic.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Check a node's history without trusting it: every certificate against the chain spec's
    /// validators, every record's signatures, and every settlement recomputed from its records.
    /// Exit 0: all verified; 1: a mismatch (named: epoch, field, expected, found); 2: something
    /// could not be checked.
    Verify(verify::VerifyArgs),
}

#[derive(clap::Args)]
struct WalletFile {
    /// The wallet key file.
    #[arg(long, env = "RUSTCHAIN_WALLET", default_value = "rustchain-wallet.json")]
    wallet: PathBuf,
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Create a wallet: 24 new recovery words, sealed into a new key file; prints the address.
    New {
        #[command(flatten)]
        file: WalletFile,
        #[command(flatten)]
        passphrase: wallet::PassphraseArgs,
        /// Also print the 24 recovery words (write them down: anyone who has them can spend).
        #[arg(long)]
        show_mnemonic: bool,
    },
    /// Restore a wallet from its recovery words, read from standard input (a hidden prompt on a
    /// terminal; never from the command line), into a new key file.
    Import {
        #[command(flatten)]
        file: WalletFile,
        #[command(flatten)]
        passphrase: wallet::PassphraseArgs,
    },
    /// Print the wallet's RTC address (no passphrase needed, unless --show-mnemonic).
    Address {
        #[command(flatten)]
        file: WalletFile,
        #[command(flatten)]
        passphrase: wallet::PassphraseArgs,
        /// Decrypt the key file and print the 24 recovery words too.
        #[arg(long)]
        show_mnemonic: bool,
    },
    /// Confirmed balance, pending in and out, and what can be spent now, as a node knows them.
    Balance {
        #[command(flatten)]
        file: WalletFile,
        /// Another address to look at instead of this wallet's.
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        node: wallet_cli::NodeArg,
    },
    /// Rewards and transfers of this wallet, pending first, then newest first.
    History {
        #[command(flatten)]
        file: WalletFile,
        #[arg(long)]
        address: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[command(flatten)]
        node: wallet_cli::NodeArg,
    },
    /// Send RTC: fetch the next nonce and the network from the node, sign for that network
    /// (field format, fee 0, chain_id, the slot's start in ms as the nonce), submit, print
    /// the tx hash and follow it until the epoch that settles it is certified. Exit 0 confirmed,
    /// 1 rejected (the reason is printed), 2 still pending at --wait-timeout.
    Send {
        #[command(flatten)]
        file: WalletFile,
        #[command(flatten)]
        passphrase: wallet::PassphraseArgs,
        #[command(flatten)]
        send: wallet_cli::SendArgs,
        #[command(flatten)]
        node: wallet_cli::NodeArg,
    },
    /// Sign a transfer and print the JSON body for POST /wallet/transfer/signed (field format,
    /// fee 0). Nothing is submitted.
    SignTransfer {
        #[command(flatten)]
        file: WalletFile,
        #[command(flatten)]
        passphrase: wallet::PassphraseArgs,
        /// The receiving address.
        #[arg(long)]
        to: String,
        /// Amount in RTC, e.g. 0.25 (settled as floor(amount * 1e6) uRTC; at least 0.000001).
        #[arg(long)]
        amount: f64,
        /// Must be greater than the last nonce this wallet used.
        #[arg(long)]
        nonce: i64,
        #[arg(long, default_value = "")]
        memo: String,
        /// Bind the transfer to one network (its chain spec's network_id, e.g. mainnet). Every
        /// network but mainnet refuses a transfer without one.
        #[arg(long)]
        chain_id: Option<String>,
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

/// glibc gives every thread that allocates under contention its own malloc arena (up to 8 per
/// core) and rarely returns their free pages: a relay holding 100,000 records sat at ~150-160 MB
/// resident with the default, ~100 MB with two arenas (docs/BENCHMARKS.md, "Mesh"). Must run
/// before the runtime starts its threads.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
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
            rt.block_on(runtime::run(cfg))
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
            let t = testnet::init(&args, rustchain_node::clock::Clock.now_unix())?;
            println!("chain spec: {}", t.spec_path.display());
            for (dir, peer, role) in &t.nodes {
                println!("{role:8} {}  peer {peer}", dir.display());
            }
            println!("\nstart each node with (also in {}/commands.txt):\n{}", args.out.display(), t.commands);
            Ok(())
        }
        Command::Wallet(cmd) => run_wallet(cmd, &rt),
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
        Command::Verify(args) => {
            init_logging(LogFormat::Text, "warn");
            let code = match rt.block_on(verify::run(args)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("verify: could not check: {e:#}");
                    2
                }
            };
            std::process::exit(code);
        }
        Command::Db(cmd) => {
            init_logging(LogFormat::Text, "warn");
            drop(rt);
            let code = db::run_command(cmd)?;
            std::process::exit(code);
        }
    }
}

fn run_wallet(cmd: WalletCommand, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let address_of = |file: &WalletFile, address: Option<String>| match address {
        Some(a) => Ok(a),
        None => wallet::KeyFile::read(&file.wallet).map(|k| k.address),
    };
    let (file, mnemonic, pass, show) = match cmd {
        WalletCommand::New { file, passphrase, show_mnemonic } => {
            refuse_existing(&file.wallet)?;
            (file, wallet::new_mnemonic(), passphrase.get(true)?, show_mnemonic)
        }
        WalletCommand::Import { file, passphrase } => {
            refuse_existing(&file.wallet)?;
            (file, wallet::read_words_from_stdin()?, passphrase.get(true)?, false)
        }
        WalletCommand::Address { file, passphrase, show_mnemonic } => {
            let key_file = wallet::KeyFile::read(&file.wallet)?;
            if show_mnemonic {
                println!("mnemonic: {}", key_file.open(&passphrase.get(false)?)?);
            }
            println!("{}", key_file.address);
            return Ok(());
        }
        WalletCommand::Balance { file, address, node } => {
            return rt.block_on(wallet_cli::balance(&node, &address_of(&file, address)?));
        }
        WalletCommand::History { file, address, limit, offset, node } => {
            return rt.block_on(wallet_cli::history(&node, &address_of(&file, address)?, limit, offset));
        }
        WalletCommand::Send { file, passphrase, send, node } => {
            let key_file = wallet::KeyFile::read(&file.wallet)?;
            let key = wallet::key_of(&key_file.open(&passphrase.get(false)?)?);
            let code = rt.block_on(wallet_cli::send(&node, &key, &send))?;
            std::process::exit(code);
        }
        WalletCommand::SignTransfer { file, passphrase, to, amount, nonce, memo, chain_id } => {
            if protocol::transfer::amount_urtc(amount).is_none() {
                anyhow::bail!("--amount {amount} is less than 0.000001 RTC (1 uRTC)");
            }
            if nonce < 0 {
                anyhow::bail!("--nonce must not be negative");
            }
            let key_file = wallet::KeyFile::read(&file.wallet)?;
            let key = wallet::key_of(&key_file.open(&passphrase.get(false)?)?);
            let order = protocol::transfer::TransferOrder { to_address: to, amount_rtc: amount, memo, nonce, chain_id };
            println!("{}", order.sign(&key));
            return Ok(());
        }
    };
    let key_file = wallet::KeyFile::seal(&mnemonic, &pass, wallet::SCRYPT_LOG_N)?;
    key_file.write(&file.wallet)?;
    println!("wallet file: {}", file.wallet.display());
    println!("address:     {}", key_file.address);
    println!("path:        {}", key_file.derivation_path);
    if show {
        println!("mnemonic:    {mnemonic}");
    }
    Ok(())
}

/// Checked before asking for words or a passphrase, so nobody types them for nothing.
fn refuse_existing(path: &std::path::Path) -> anyhow::Result<()> {
    if path.exists() {
        anyhow::bail!("wallet file {} already exists; choose another with --wallet", path.display());
    }
    Ok(())
}
