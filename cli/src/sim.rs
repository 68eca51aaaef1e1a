//! `rustchain testnet miners`: the miner simulator. Many simulated miners (distinct keys, wallets,
//! miner ids and serials) attest at a chosen total rate, each attestation to a node picked at
//! random: challenge, sign, submit, exactly as a field miner does. Every acknowledged attestation
//! (a 200: the node has committed it) can be appended to a ledger file, so that
//! `rustchain testnet check --ledger` can prove afterwards that each one reached every node.
//!
//! The signed bodies are also what `examples/submit_load.rs` submits.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use protocol::attestation;
use protocol::crypto::Keypair;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use rustchain_node::config::HumanDuration;
use crate::netcheck::http_error;

#[derive(Debug, clap::Args)]
pub struct MinersArgs {
    /// Node API URLs, comma-separated; each attestation goes to one of them picked at random.
    #[arg(long, value_delimiter = ',', required = true, value_name = "URL,...")]
    pub nodes: Vec<String>,
    /// Simulated miners (distinct keys, wallets, miner ids, serials); each attests again and again.
    #[arg(long, default_value_t = 50)]
    pub miners: usize,
    /// Attestations per second, all miners together.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Stop after this long (e.g. 90s, 10m). Without it (and --count) run until SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<HumanDuration>,
    /// Stop after this many acknowledged attestations.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Append one line per acknowledged attestation: `<record id> <epoch> <node URL> <miner id>`.
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Seed of the miners' keys: another seed gives other wallets.
    #[arg(long, default_value_t = 1)]
    pub seed: u8,
    /// Most attestations in flight at once; a tick that finds them all busy is skipped and counted.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Timeout of each HTTP request.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: HumanDuration,
}

/// The key of simulated miner `i` under `seed`.
pub fn miner_key(seed: u8, i: usize) -> Keypair {
    let mut s = [0u8; 32];
    s[0] = seed;
    s[1] = 0xbe;
    s[24..].copy_from_slice(&(i as u64).to_be_bytes());
    Keypair::from_seed(&s)
}

/// The miner id of simulated miner `i` under `seed`.
pub fn miner_id(seed: u8, i: usize) -> String {
    format!("load-{seed}-{i:07}")
}

/// A signed `/attest/submit` body shaped like `rustchain attest` output from an x86-64 Linux box
/// (~2 KB). Miner `i` of `seed` always reports the same device (serial, MAC, hostname, and
/// measurements), and miners of different seeds are different machines (their entropy profiles
/// never collide, PROTOCOL.md §7.1) while `i` < 12,500.
pub fn signed_body(key: &Keypair, seed: u8, i: usize, miner_id: &str, nonce: &str) -> Vec<u8> {
    protocol::testkit::linux_miner_body(key, machine(seed, i), miner_id, nonce, "LOADSN")
}

/// The fixture machine (`protocol::testkit`) that simulated miner `i` of `seed` measures.
pub fn machine(seed: u8, i: usize) -> usize {
    (usize::from(seed) * 12_500 + i) % 3_200_000
}

/// What happened to one attestation.
enum Outcome {
    /// 200: committed by the node; the record id and epoch.
    Acknowledged { id: String, epoch: u64 },
    /// The node answered with an error: its code.
    Refused(String),
    /// No answer (connection refused, reset, timed out).
    Unreachable(String),
}

#[derive(Default)]
struct Tally {
    sent: u64,
    acknowledged: u64,
    refused: BTreeMap<String, u64>,
    unreachable: u64,
    skipped: u64,
    per_node: BTreeMap<String, [u64; 3]>,
    first_problem: Option<String>,
}

impl Tally {
    fn line(&self, elapsed: Duration) -> String {
        format!(
            "{:.0}s: {} sent, {} acknowledged, {} refused {:?}, {} unreachable, {} ticks skipped (all in-flight slots busy)",
            elapsed.as_secs_f64(),
            self.sent,
            self.acknowledged,
            self.refused.values().sum::<u64>(),
            self.refused,
            self.unreachable,
            self.skipped,
        )
    }
}

/// A small xorshift generator: which node and which miner, not security.
struct Pick(u64);

impl Pick {
    fn new() -> Pick {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        Pick(u64::from_le_bytes(b) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn attest_once(client: &reqwest::Client, node: &str, seed: u8, i: usize) -> Outcome {
    let id = miner_id(seed, i);
    let challenge = client.post(format!("{node}/attest/challenge")).json(&json!({"miner_id": id})).send().await;
    let nonce = match answer(challenge).await {
        Ok(v) => match v.get("nonce").and_then(Value::as_str) {
            Some(n) => n.to_owned(),
            None => return Outcome::Refused("NO_NONCE".into()),
        },
        Err(o) => return o,
    };
    let body = signed_body(&miner_key(seed, i), seed, i, &id, &nonce);
    if let Err(e) = attestation::parse_submission(&body) {
        return Outcome::Refused(format!("LOCAL_{}", e.code()));
    }
    let submitted = client.post(format!("{node}/attest/submit")).header("content-type", "application/json").body(body).send().await;
    // The record id covers the node's receipt, so only the node can say it.
    match answer(submitted).await {
        Ok(v) => match v.get("record_id").and_then(Value::as_str) {
            Some(record_id) => Outcome::Acknowledged { id: record_id.to_owned(), epoch: v.get("epoch").and_then(Value::as_u64).unwrap_or(0) },
            None => Outcome::Refused("200_WITHOUT_RECORD_ID".into()),
        },
        Err(o) => o,
    }
}

/// A 200's JSON body, or what went wrong.
async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Value, Outcome> {
    let resp = sent.map_err(|e| Outcome::Unreachable(http_error(e)))?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| Outcome::Unreachable(format!("reading the answer: {}", http_error(e))))?;
    if status.is_success() {
        Ok(body)
    } else {
        let code = body.get("code").and_then(Value::as_str).unwrap_or("NO_CODE");
        Err(Outcome::Refused(format!("{}_{code}", status.as_u16())))
    }
}

pub async fn run(args: MinersArgs) -> anyhow::Result<()> {
    ensure!(args.miners > 0 && args.concurrency > 0, "--miners and --concurrency must be positive");
    ensure!(args.rate > 0.0 && args.rate.is_finite(), "--rate must be a positive number of attestations per second");
    let nodes: Vec<String> = args.nodes.iter().map(|n| n.trim().trim_end_matches('/').to_owned()).filter(|n| !n.is_empty()).collect();
    ensure!(!nodes.is_empty(), "--nodes names no node");
    let client = reqwest::Client::builder().timeout(args.timeout.0).connect_timeout(Duration::from_secs(3)).build()?;
    let ledger = match &args.ledger {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening the ledger {}", path.display()))?,
        ))),
        None => None,
    };
    eprintln!(
        "miners: {} simulated miners, {:.1} attestations/s over {} nodes{}",
        args.miners,
        args.rate,
        nodes.len(),
        args.ledger.as_ref().map(|p| format!(", acknowledged ones appended to {}", p.display())).unwrap_or_default()
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let slots = Arc::new(Semaphore::new(args.concurrency));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d.0);
    let started = Instant::now();
    let mut pick = Pick::new();
    let signal = rustchain_node::runtime::shutdown_signal();
    tokio::pin!(signal);
    let why = loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = report.tick() => {
                eprintln!("miners: {}", tally.lock().expect("tally").line(started.elapsed()));
                continue;
            }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => break "duration reached",
            s = &mut signal => break s,
        }
        if stop.load(Ordering::Relaxed) {
            break "count reached";
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tally.lock().expect("tally").skipped += 1;
            continue;
        };
        let node = nodes[pick.below(nodes.len())].clone();
        let i = pick.below(args.miners);
        let (client, tally, ledger, stop, seed, count) = (client.clone(), tally.clone(), ledger.clone(), stop.clone(), args.seed, args.count);
        tokio::spawn(async move {
            let outcome = attest_once(&client, &node, seed, i).await;
            let mut t = tally.lock().expect("tally");
            t.sent += 1;
            let per_node = t.per_node.entry(node.clone()).or_default();
            match outcome {
                Outcome::Acknowledged { id, epoch } => {
                    per_node[0] += 1;
                    t.acknowledged += 1;
                    if let Some(l) = &ledger {
                        // One write per line, unbuffered: a simulator killed later keeps every line.
                        let line = format!("{id} {epoch} {node} {}\n", miner_id(seed, i));
                        if let Err(e) = l.lock().expect("ledger").write_all(line.as_bytes()) {
                            t.first_problem.get_or_insert(format!("writing the ledger: {e}"));
                        }
                    }
                    if count.is_some_and(|c| t.acknowledged >= c) {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                Outcome::Refused(code) => {
                    per_node[1] += 1;
                    t.first_problem.get_or_insert(format!("{node}: refused {code}"));
                    *t.refused.entry(code).or_default() += 1;
                }
                Outcome::Unreachable(e) => {
                    per_node[2] += 1;
                    t.unreachable += 1;
                    t.first_problem.get_or_insert(format!("{node}: {e}"));
                }
            }
            drop(permit);
        });
    };
    // Let what is in flight finish (each request is bounded by --timeout).
    let _ = tokio::time::timeout(args.timeout.0 * 2 + Duration::from_secs(1), slots.acquire_many(args.concurrency as u32)).await;
    let t = tally.lock().expect("tally");
    println!("miners stopped ({why}) after {}", t.line(started.elapsed()));
    for (node, [ok, refused, unreachable]) in &t.per_node {
        println!("  {node}: {ok} acknowledged, {refused} refused, {unreachable} unreachable");
    }
    if let Some(p) = &t.first_problem {
        println!("  first problem: {p}");
    }
    let result = json!({
        "sent": t.sent, "acknowledged": t.acknowledged, "refused": t.refused, "unreachable": t.unreachable,
        "skipped": t.skipped, "elapsed_s": started.elapsed().as_secs_f64(),
        "per_node": t.per_node.iter().map(|(n, c)| (n.clone(), json!({"acknowledged": c[0], "refused": c[1], "unreachable": c[2]}))).collect::<serde_json::Map<_, _>>(),
    });
    println!("RESULT_JSON {result}");
    if t.acknowledged == 0 {
        bail!("no attestation was acknowledged");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_verify_and_miners_keep_their_device() {
        let key = miner_key(3, 17);
        let a = attestation::parse_submission(&signed_body(&key, 3, 17, &miner_id(3, 17), "nonce-a")).unwrap();
        let b = attestation::parse_submission(&signed_body(&key, 3, 17, &miner_id(3, 17), "nonce-b")).unwrap();
        assert_ne!(a.payload().payload_id(), b.payload().payload_id(), "each attestation is its own record");
        assert_eq!(a.miner_id, "load-3-0000017");
        let body: Value = serde_json::from_slice(&signed_body(&key, 3, 17, "x", "n")).unwrap();
        let again: Value = serde_json::from_slice(&signed_body(&key, 3, 17, "x", "m")).unwrap();
        assert_eq!(body["device"], again["device"]);
        assert_ne!(miner_key(3, 17).public(), miner_key(4, 17).public());
    }

    #[test]
    fn picks_stay_in_range_and_vary() {
        let mut p = Pick::new();
        let picks: Vec<usize> = (0..1000).map(|_| p.below(5)).collect();
        assert!(picks.iter().all(|&i| i < 5));
        for n in 0..5 {
            assert!(picks.contains(&n), "{n} never picked in 1000 draws");
        }
    }
}
