//! Mesh benchmark (issue 3): real `rustchain` processes on 127.0.0.1, talking libp2p to each other.
//!
//! ```text
//! cargo build --release -p rustchain-cli --bin rustchain --example mesh_bench
//! target/release/examples/mesh_bench --bin target/release/rustchain [--phases latency,throughput,memory]
//! ```
//!
//! Three measurements, each on a fresh set of nodes in a temporary directory:
//!
//! 1. **latency**: `--latency-nodes` (20) nodes, `--gossip-preset small`. Node 0 is the primary; every
//!    other node has node 0 and one random earlier node as bootnodes, so the peers form a mesh rather
//!    than a star. Once every node is synced and has peers (and three warm-up attestations reached
//!    every node), `--latency-samples` (100) times: one signed attestation (its nonce fetched from
//!    that node beforehand) is submitted to a random node, and every node's `GET /api/stats` is polled
//!    concurrently every `--poll-ms` (2 ms) until it counts the new record. The sample is the time from
//!    sending the submit to the last node's first answer that shows it.
//! 2. **throughput**: `--tp-nodes` (5) nodes, `tiny`. `--tp-count` (20,000) attestations are split
//!    evenly over the nodes; each one's nonce is fetched from the node it will be sent to (nonces are
//!    valid only where they were issued) and every body is signed before the clock starts. Then they
//!    are submitted to all nodes at once (`--tp-concurrency` in flight per node) and the clock stops
//!    when EVERY node stores ALL of them (each node's `/api/stats` sampled every 20 ms).
//! 3. **memory**: 2 nodes, `tiny`. `--mem-count` (100,000) attestations through node 0's HTTP API
//!    (relayed to node 1); once both store them all, `VmRSS` (and the peak, `VmHWM`) of both from
//!    `/proc/<pid>/status`.
//!
//! Every node gets its own data dir, HTTP, metrics and p2p port on 127.0.0.1 and runs with rate limits
//! off and `--gossip-heartbeat-ms` (200). Node logs go to `<work dir>/<phase>/node-<i>.log`; with
//! `--keep-logs DIR` they are copied there. Nodes are killed and the temp dirs removed when a phase ends,
//! when the program fails, and on SIGINT/SIGTERM (and the script runs this in its own process group
//! as a second line of defence).
//!
//! Prints what it does and, last, `RESULT_JSON {...}` for scripts. Exit status 1 if a phase failed to
//! run (a missed target is not a failure: the numbers are reported either way).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::future::join_all;
use protocol::crypto::Keypair;
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(about = "Propagation latency, sustained throughput and memory of a rustchain mesh on loopback")]
struct Args {
    /// The `rustchain` binary to run (a release build).
    #[arg(long)]
    bin: PathBuf,
    /// Which measurements, comma-separated: latency, throughput, memory.
    #[arg(long, default_value = "latency,throughput,memory", value_delimiter = ',')]
    phases: Vec<String>,
    /// Parent of the temporary directories (default: $TMPDIR or /tmp).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Copy every node's log here before its temp dir is removed.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Log filter of the nodes.
    #[arg(long, default_value = "info")]
    node_log: String,
    /// Gossipsub heartbeat of every node.
    #[arg(long, default_value_t = 200)]
    heartbeat_ms: u64,
    /// Chain spec of the nodes: `testnet` writes one with `rustchain testnet init` (4 validators, or
    /// n-1 if fewer nodes, the rest relays); `devnet` (or a path) runs every node on that spec. On
    /// the built-in devnet, which lists no validators, every node is its own validator and its peers
    /// refuse its votes, so longer runs end in nodes banning each other.
    #[arg(long, default_value = "testnet")]
    spec: String,
    /// Seed of the random choices (which node gets each latency sample, bootnodes) and miner keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    #[arg(long, default_value_t = 20)]
    latency_nodes: usize,
    #[arg(long, default_value_t = 100)]
    latency_samples: usize,
    /// Pause between polls of one node's /api/stats while waiting for a sample.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// A sample not seen everywhere after this long counts as this long (and as timed out).
    #[arg(long, default_value_t = 10)]
    sample_timeout_secs: u64,

    #[arg(long, default_value_t = 5)]
    tp_nodes: usize,
    #[arg(long, default_value_t = 20_000)]
    tp_count: usize,
    /// Submissions in flight per node.
    #[arg(long, default_value_t = 16)]
    tp_concurrency: usize,

    #[arg(long, default_value_t = 100_000)]
    mem_count: usize,
    /// Submissions in flight while filling.
    #[arg(long, default_value_t = 32)]
    mem_concurrency: usize,

    /// Longest wait for every node to store everything (throughput and memory phases).
    #[arg(long, default_value_t = 300)]
    converge_timeout_secs: u64,
}

// ---------------------------------------------------------------------------------------------
// Processes and directories that must not outlive us.

static LIVE_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static LIVE_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn kill_pid(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
}

/// On SIGINT/SIGTERM: kill every node still running, remove the temp dirs, exit.
fn emergency_cleanup() {
    for pid in LIVE_PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
        kill_pid(pid);
    }
    for dir in LIVE_DIRS.lock().map(|d| d.clone()).unwrap_or_default() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

struct NodeProc {
    child: Child,
    pid: u32,
    url: String,
    p2p_port: u16,
    peer_id: String,
    log: PathBuf,
}

impl NodeProc {
    fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, self.peer_id)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut p) = LIVE_PIDS.lock() {
            p.retain(|x| *x != self.pid);
        }
    }
}

struct Cluster {
    name: String,
    data_dirs: Vec<PathBuf>,
    nodes: Vec<NodeProc>,
    dir: PathBuf,
    keep_logs: Option<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear(); // kills them
        if let Some(keep) = &self.keep_logs {
            let dest = keep.join(&self.name);
            if std::fs::create_dir_all(&dest).is_ok()
                && let Ok(rd) = std::fs::read_dir(&self.dir) {
                for e in rd.flatten() {
                    if e.path().extension().is_some_and(|x| x == "log") {
                        let _ = std::fs::copy(e.path(), dest.join(e.file_name()));
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Ok(mut d) = LIVE_DIRS.lock() {
            d.retain(|x| *x != self.dir);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// xorshift64*: reproducible choices without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

fn client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(600))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

async fn get_json(c: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    Ok(c.get(url).send().await.with_context(|| format!("GET {url}"))?.error_for_status()?.json().await?)
}

async fn count(c: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    get_json(c, &format!("{base}/api/stats")).await?["attestations"].as_u64().context("/api/stats without `attestations`")
}

async fn counts(c: &reqwest::Client, nodes: &[String]) -> anyhow::Result<Vec<u64>> {
    join_all(nodes.iter().map(|u| count(c, u))).await.into_iter().collect()
}

async fn challenge(c: &reqwest::Client, base: &str, miner_id: &str) -> anyhow::Result<String> {
    let v: Value = c
        .post(format!("{base}/attest/challenge"))
        .json(&json!({"miner_id": miner_id}))
        .send()
        .await
        .context("POST /attest/challenge")?
        .error_for_status()?
        .json()
        .await?;
    Ok(v["nonce"].as_str().context("challenge without nonce")?.to_owned())
}

/// Submit one body; Ok(status, body text).
async fn submit(c: &reqwest::Client, base: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
    let r = c
        .post(format!("{base}/attest/submit"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .context("POST /attest/submit")?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

// ---------------------------------------------------------------------------------------------
// Signed attestations

fn miner_key(phase: u8, seed: u64, i: usize) -> Keypair {
    let mut s = [0u8; 32];
    s[0] = phase;
    s[1] = 0x3e;
    s[8..16].copy_from_slice(&seed.to_be_bytes());
    s[24..].copy_from_slice(&(i as u64).to_be_bytes());
    Keypair::from_seed(&s)
}

fn miner_id(phase: u8, i: usize) -> String {
    format!("mesh-{phase}-{i:07}")
}

/// A signed body shaped like `rustchain attest` output from an x86-64 Linux box (~2.4 KB).
/// Miner `i` of `phase` measures its own fixture machine (no two collide, PROTOCOL.md §7.1).
fn signed_body(key: &Keypair, phase: u8, i: usize, miner_id: &str, nonce: &str) -> Vec<u8> {
    protocol::testkit::linux_miner_body(key, (usize::from(phase) * 400_000 + i) % 3_200_000, miner_id, nonce, "MESHSN")
}

/// One prepared submission: where it goes and what is sent.
struct Prepared {
    node: usize,
    body: Vec<u8>,
}

/// Fetch a nonce for each (index, target node) from that node, `per_node` at a time per node, then
/// sign every body over all cores.
async fn prepare(c: &reqwest::Client, urls: &[String], phase: u8, seed: u64, plan: Vec<(usize, usize)>, per_node: usize) -> anyhow::Result<Vec<Prepared>> {
    let plan = Arc::new(plan);
    let mut nonces: Vec<Option<String>> = vec![None; plan.len()];
    let mut tasks = Vec::new();
    for (node, url) in urls.iter().enumerate() {
        let mine: Arc<Vec<usize>> = Arc::new((0..plan.len()).filter(|&k| plan[k].1 == node).collect());
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..per_node.min(mine.len()) {
            let (c, url, mine, next, plan) = (c.clone(), url.clone(), mine.clone(), next.clone(), plan.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&k) = mine.get(j) else { return anyhow::Ok(got) };
                    got.push((k, challenge(&c, &url, &miner_id(phase, plan[k].0)).await?));
                }
            }));
        }
    }
    for t in tasks {
        for (k, n) in t.await?? {
            nonces[k] = Some(n);
        }
    }
    let jobs: Vec<(usize, usize, String)> =
        plan.iter().zip(nonces).map(|(&(i, node), n)| (i, node, n.expect("every nonce fetched"))).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = jobs.len().div_ceil(threads).max(1);
    Ok(tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            let hs: Vec<_> = jobs
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(i, node, nonce)| Prepared {
                                node: *node,
                                body: signed_body(&miner_key(phase, seed, *i), phase, *i, &miner_id(phase, *i), nonce),
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().expect("signing thread")).collect()
        })
    })
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Starting a mesh

async fn start_cluster(args: &Args, name: &str, n: usize, preset: &str, rng: &mut Rng) -> anyhow::Result<Cluster> {
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!("mesh-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    LIVE_DIRS.lock().expect("lock").push(dir.clone());
    let mut cluster = Cluster { name: name.to_owned(), data_dirs: Vec::new(), nodes: Vec::new(), dir: dir.clone(), keep_logs: args.keep_logs.clone() };
    // A chain spec with a validator set and a key per node (`rustchain testnet init`), unless the
    // built-in devnet is asked for (every node then is its own lone validator: see --spec).
    let (spec, data_dir): (String, Box<dyn Fn(usize) -> PathBuf>) = if args.spec == "testnet" {
        let validators = n.saturating_sub(1).clamp(1, 4);
        let net = dir.join("net");
        let out = Command::new(&args.bin)
            .args(["testnet", "init", "--network-id", "meshbench", "--genesis-delay", "0"])
            .args(["--validators", &validators.to_string(), "--relays", &(n - validators).to_string()])
            .arg("--out")
            .arg(&net)
            .stdin(Stdio::null())
            .output()
            .context("rustchain testnet init")?;
        ensure!(out.status.success(), "rustchain testnet init failed: {}", String::from_utf8_lossy(&out.stderr));
        let spec = net.join("spec.toml").to_string_lossy().into_owned();
        println!("  [{name}] chain spec from `rustchain testnet init`: {validators} validators, {} relays", n - validators);
        (spec, Box::new(move |i| net.join(format!("node-{i}"))))
    } else {
        let d = dir.clone();
        (args.spec.clone(), Box::new(move |i| d.join(format!("node-{i}"))))
    };
    let c = client(4)?;
    let t = Instant::now();
    for i in 0..n {
        let mut boot = Vec::new();
        if i > 0 {
            boot.push(cluster.nodes[0].multiaddr());
        }
        if i > 1 {
            boot.push(cluster.nodes[1 + rng.below(i - 1)].multiaddr());
        }
        let (http, metrics, p2p) = (free_port()?, free_port()?, free_port()?);
        let log = dir.join(format!("node-{i}.log"));
        let mut cmd = Command::new(&args.bin);
        cmd.arg("node")
            .args(["--spec", &spec])
            .arg("--data-dir")
            .arg(data_dir(i))
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--p2p-addr", &format!("/ip4/127.0.0.1/tcp/{p2p}")])
            .args(["--gossip-preset", preset, "--gossip-heartbeat-ms", &args.heartbeat_ms.to_string()])
            .args(["--rate-limit-per-minute", "0", "--admin-rate-limit-per-minute", "0"])
            .args(["--role", if i == 0 { "primary" } else { "relay" }])
            .args(["--log-level", &args.node_log]);
        if !boot.is_empty() {
            cmd.args(["--bootnodes", &boot.join(",")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", args.bin.display()))?;
        let pid = child.id();
        LIVE_PIDS.lock().expect("lock").push(pid);
        let url = format!("http://127.0.0.1:{http}");
        let mut node = NodeProc { child, pid, url: url.clone(), p2p_port: p2p, peer_id: String::new(), log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = node.child.try_wait()? {
                bail!("{name} node {i} exited during start-up ({status}); log:\n{}", tail(&node.log, 30));
            }
            if let Ok(v) = get_json(&c, &format!("{url}/api/p2p/status")).await {
                node.peer_id = v["local_peer_id"].as_str().context("p2p disabled?")?.to_owned();
                break;
            }
            ensure!(Instant::now() < deadline, "{name} node {i} did not answer within 30 s; log:\n{}", tail(&node.log, 30));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        cluster.nodes.push(node);
        cluster.data_dirs.push(data_dir(i));
    }
    println!("  [{name}] started {n} nodes ({preset}) in {:.1}s", t.elapsed().as_secs_f64());
    Ok(cluster)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Cluster {
    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// Every node synced with at least `min_peers` peers, then `warmups` attestations (to random
    /// nodes) seen by every node, which shows the gossip mesh carries messages end to end.
    async fn wait_ready(&self, c: &reqwest::Client, min_peers: u64, warmups: usize, rng: &mut Rng) -> anyhow::Result<()> {
        let t = Instant::now();
        let deadline = t + Duration::from_secs(60);
        loop {
            let st: Vec<Value> = join_all(self.nodes.iter().map(|n| {
                let url = format!("{}/api/p2p/status", n.url);
                async move { get_json(c, &url).await }
            }))
                .await
                .into_iter()
                .collect::<anyhow::Result<_>>()?;
            let lagging: Vec<String> = st
                .iter()
                .enumerate()
                .filter(|(_, v)| v["sync_status"] != "synced" || v["total_peers"].as_u64().unwrap_or(0) < min_peers)
                .map(|(i, v)| format!("node {i}: {} {} peers", v["sync_status"], v["total_peers"]))
                .collect();
            if lagging.is_empty() {
                let peers: Vec<u64> = st.iter().map(|v| v["total_peers"].as_u64().unwrap_or(0)).collect();
                println!(
                    "  [{}] all synced after {:.1}s; peers per node min {} max {}",
                    self.name,
                    t.elapsed().as_secs_f64(),
                    peers.iter().min().unwrap_or(&0),
                    peers.iter().max().unwrap_or(&0)
                );
                break;
            }
            ensure!(Instant::now() < deadline, "[{}] not ready after 60 s: {}", self.name, lagging.join("; "));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The gossipsub mesh forms on heartbeats; a few attestations end to end prove it carries.
        let urls = self.urls();
        let base = count(c, &urls[0]).await?;
        for w in 0..warmups {
            let target = rng.below(urls.len());
            let id = miner_id(0, w);
            let nonce = challenge(c, &urls[target], &id).await?;
            let body = signed_body(&miner_key(0, 0, w), 0, w, &id, &nonce);
            let (s, text) = submit(c, &urls[target], body).await?;
            ensure!(s == 200, "warm-up submit to node {target}: {s} {text}");
            let want = base + w as u64 + 1;
            let t = Instant::now();
            loop {
                let now = counts(c, &urls).await?;
                if now.iter().all(|&x| x >= want) {
                    break;
                }
                ensure!(t.elapsed() < Duration::from_secs(30), "[{}] warm-up {w} not everywhere after 30 s: {now:?}", self.name);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        println!("  [{}] ready ({warmups} warm-up attestations reached every node) after {:.1}s", self.name, t.elapsed().as_secs_f64());
        Ok(())
    }

    /// Per-node gossip counters, peer counts, penalties and bans, for the report.
    async fn p2p_summary(&self, c: &reqwest::Client) -> Value {
        let mut rows = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let st = get_json(c, &format!("{}/api/p2p/status", n.url)).await.unwrap_or(Value::Null);
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            rows.push(json!({
                "node": i,
                "peers": st["total_peers"],
                "gossip": st["gossip"],
                "banned_peers": st["banned_peers"],
                "min_peer_score": st["peers"].as_array().and_then(|p| p.iter().filter_map(|x| x["score"].as_i64()).min()),
                "log_penalties": log.matches("peer penalised").count(),
                "log_bans": log.matches("peer banned").count(),
                "log_anti_entropy_pulls": log.matches("anti-entropy pulled").count(),
                "log_warn_or_error": log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).count(),
            }));
        }
        Value::Array(rows)
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.pid).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

/// User + system CPU seconds of a process (USER_HZ = 100).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) as f64 / 100.0)
}

/// Whole-machine busy and steal CPU seconds (all cores).
fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = f.iter().take(8).sum();
    let steal = f.get(7).copied().unwrap_or(0);
    Some(((total - f[3] - f[4] - steal) as f64 / 100.0, steal as f64 / 100.0))
}

/// CPU accounting over an interval: nodes, this client, the whole machine.
struct CpuMeter {
    pids: Vec<u32>,
    nodes0: Vec<f64>,
    self0: f64,
    machine0: (f64, f64),
    t0: Instant,
}

impl CpuMeter {
    fn start(pids: Vec<u32>) -> CpuMeter {
        let nodes0 = pids.iter().map(|p| cpu_seconds(&p.to_string()).unwrap_or(0.0)).collect();
        CpuMeter { pids, nodes0, self0: cpu_seconds("self").unwrap_or(0.0), machine0: machine_cpu().unwrap_or((0.0, 0.0)), t0: Instant::now() }
    }

    /// Cores used: (all nodes, per node, client, other processes, steal).
    fn stop(&self) -> Value {
        let secs = self.t0.elapsed().as_secs_f64();
        let per: Vec<f64> =
            self.pids.iter().zip(&self.nodes0).map(|(p, a)| (cpu_seconds(&p.to_string()).unwrap_or(0.0) - a) / secs).collect();
        let nodes: f64 = per.iter().sum();
        let client = (cpu_seconds("self").unwrap_or(0.0) - self.self0) / secs;
        let (busy, steal) = machine_cpu().map_or((f64::NAN, f64::NAN), |(b, s)| ((b - self.machine0.0) / secs, (s - self.machine0.1) / secs));
        json!({"seconds": secs, "nodes_cores": nodes, "per_node_cores": per.iter().map(|x| (x * 100.0).round() / 100.0).collect::<Vec<_>>(),
               "client_cores": client, "machine_busy_cores": busy, "others_cores": busy - nodes - client, "steal_cores": steal})
    }
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// 1. Propagation latency

async fn phase_latency(args: &Args, rng: &mut Rng) -> anyhow::Result<Value> {
    let n = args.latency_nodes;
    ensure!(n >= 2 && args.latency_samples > 0, "--latency-nodes >= 2 and --latency-samples > 0");
    println!("== latency: {n} nodes (small), {} samples, polling every node every {} ms", args.latency_samples, args.poll_ms);
    let cluster = start_cluster(args, "latency", n, "small", rng).await?;
    let c = client(8)?;
    cluster.wait_ready(&c, 2, 3, rng).await?;
    let urls = cluster.urls();

    let plan: Vec<(usize, usize)> = (0..args.latency_samples).map(|s| (s, rng.below(n))).collect();
    let prepared = prepare(&c, &urls, 1, args.seed, plan, 4).await?;
    let base = count(&c, &urls[0]).await?;
    let now = counts(&c, &urls).await?;
    ensure!(now.iter().all(|&x| x == base), "nodes disagree before sampling: {now:?}");

    let poll = Duration::from_millis(args.poll_ms);
    let sample_timeout = Duration::from_secs(args.sample_timeout_secs);
    let (mut all, mut half, mut ack, mut poll_rtt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut timed_out = 0usize;
    let meter = CpuMeter::start(cluster.pids());
    for (s, p) in prepared.into_iter().enumerate() {
        // Decorrelate the samples from the gossipsub heartbeat and let the previous one settle.
        tokio::time::sleep(Duration::from_millis(30 + rng.below(40) as u64)).await;
        let want = base + s as u64 + 1;
        let t0 = Instant::now();
        let (status, text) = submit(&c, &urls[p.node], p.body).await?;
        ensure!(status == 200, "sample {s} to node {}: {status} {text}", p.node);
        ack.push(ms(t0.elapsed()));
        // Poll every node until it shows the record: (time seen since t0, polls, total poll time).
        let seen: Vec<(Option<Duration>, u32, Duration)> = join_all(urls.iter().map(|u| {
            let c = c.clone();
            async move {
                let (mut polls, mut spent) = (0u32, Duration::ZERO);
                loop {
                    let q = Instant::now();
                    let got = count(&c, u).await;
                    polls += 1;
                    spent += q.elapsed();
                    if got.is_ok_and(|x| x >= want) {
                        return (Some(t0.elapsed()), polls, spent);
                    }
                    if t0.elapsed() > sample_timeout {
                        return (None, polls, spent);
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        }))
        .await;
        if seen.iter().any(|x| x.0.is_none()) {
            timed_out += 1;
        }
        let mut times: Vec<f64> = seen.iter().map(|x| x.0.map_or(ms(sample_timeout), ms)).collect();
        times.sort_by(f64::total_cmp);
        all.push(*times.last().expect("nodes"));
        half.push(percentile(&times, 0.5));
        let (polls, spent): (u32, Duration) = seen.iter().fold((0, Duration::ZERO), |a, x| (a.0 + x.1, a.1 + x.2));
        poll_rtt.push(ms(spent) / polls.max(1) as f64);
        if (s + 1) % 20 == 0 {
            println!("  {} samples; last: all {} nodes in {:.1} ms", s + 1, n, all.last().unwrap());
        }
    }
    let cpu = meter.stop();
    let p2p = cluster.p2p_summary(&c).await;
    drop(cluster);

    let raw = all.clone();
    for v in [&mut all, &mut half, &mut ack, &mut poll_rtt] {
        v.sort_by(f64::total_cmp);
    }
    let r = json!({
        "nodes": n, "samples": raw.len(), "timed_out": timed_out, "poll_ms": args.poll_ms,
        "all_p50_ms": percentile(&all, 0.5), "all_p99_ms": percentile(&all, 0.99), "all_max_ms": percentile(&all, 1.0),
        "all_min_ms": percentile(&all, 0.0),
        "half_p50_ms": percentile(&half, 0.5), "half_p99_ms": percentile(&half, 0.99),
        "ack_p50_ms": percentile(&ack, 0.5), "ack_p99_ms": percentile(&ack, 0.99),
        "poll_rtt_p50_ms": percentile(&poll_rtt, 0.5), "poll_rtt_max_ms": percentile(&poll_rtt, 1.0),
        "samples_ms": raw.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "cpu": cpu, "p2p": p2p,
    });
    println!(
        "  all {n} nodes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (half the nodes: p50 {:.1} ms); submit ack p50 {:.1} ms; \
         one poll takes {:.2} ms (median), so a time is late by at most ~{:.1} ms",
        r["all_p50_ms"].as_f64().unwrap(),
        r["all_p99_ms"].as_f64().unwrap(),
        r["all_max_ms"].as_f64().unwrap(),
        r["half_p50_ms"].as_f64().unwrap(),
        r["ack_p50_ms"].as_f64().unwrap(),
        r["poll_rtt_p50_ms"].as_f64().unwrap(),
        args.poll_ms as f64 + r["poll_rtt_p50_ms"].as_f64().unwrap(),
    );
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Submitting many and waiting until every node has them all

struct Submitted {
    ok: u64,
    refused: BTreeMap<u16, u64>,
    first_refusal: Option<String>,
    transport_errors: u64,
    elapsed: Duration,
}

/// Submit every prepared body to its node, `concurrency` in flight per node.
async fn submit_all(c: &reqwest::Client, urls: &[String], prepared: Vec<Prepared>, concurrency: usize) -> Submitted {
    let mut per_node: Vec<Vec<Vec<u8>>> = vec![Vec::new(); urls.len()];
    for p in prepared {
        per_node[p.node].push(p.body);
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (node, bodies) in per_node.into_iter().enumerate() {
        let queue = Arc::new(Mutex::new(bodies));
        for _ in 0..concurrency {
            let (c, url, queue) = (c.clone(), urls[node].clone(), queue.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut refused, mut first, mut errors) = (0u64, BTreeMap::<u16, u64>::new(), None, 0u64);
                loop {
                    let Some(body) = queue.lock().expect("queue").pop() else { break };
                    match submit(&c, &url, body).await {
                        Ok((200, _)) => ok += 1,
                        Ok((s, text)) => {
                            *refused.entry(s).or_default() += 1;
                            first.get_or_insert(format!("{s}: {}", text.chars().take(200).collect::<String>()));
                        }
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert(format!("{e:#}"));
                        }
                    }
                }
                (ok, refused, first, errors)
            }));
        }
    }
    let mut out = Submitted { ok: 0, refused: BTreeMap::new(), first_refusal: None, transport_errors: 0, elapsed: Duration::ZERO };
    for t in tasks {
        if let Ok((ok, refused, first, errors)) = t.await {
            out.ok += ok;
            for (k, v) in refused {
                *out.refused.entry(k).or_default() += v;
            }
            out.transport_errors += errors;
            if out.first_refusal.is_none() {
                out.first_refusal = first;
            }
        }
    }
    out.elapsed = t0.elapsed();
    out
}

/// Sample every node's count every `every` from `t0` until all reach `want()` (known once the
/// submissions are done) or the deadline; returns the timeline and when all had it.
async fn watch_counts(
    c: &reqwest::Client,
    urls: &[String],
    t0: Instant,
    every: Duration,
    target: Arc<Mutex<Option<u64>>>,
    deadline: Instant,
) -> (Vec<(f64, Vec<u64>)>, Option<Duration>) {
    let mut timeline = Vec::new();
    loop {
        let now = counts(c, urls).await.unwrap_or_default();
        let at = t0.elapsed();
        let want = *target.lock().expect("lock");
        let done = want.is_some_and(|w| now.len() == urls.len() && now.iter().all(|&x| x >= w));
        timeline.push((at.as_secs_f64(), now));
        if done {
            return (timeline, Some(at));
        }
        if Instant::now() > deadline {
            return (timeline, None);
        }
        tokio::time::sleep(every).await;
    }
}

fn print_timeline(timeline: &[(f64, Vec<u64>)], base: u64) {
    let mut next = 0.0;
    for (t, counts) in timeline {
        if *t >= next || std::ptr::eq(counts, &timeline.last().unwrap().1) {
            let row: Vec<String> = counts.iter().map(|c| (c.saturating_sub(base)).to_string()).collect();
            println!("    t={t:6.2}s  stored per node: {}", row.join(" "));
            next = t.floor() + 1.0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Sustained throughput

async fn phase_throughput(args: &Args, rng: &mut Rng) -> anyhow::Result<Value> {
    let n = args.tp_nodes;
    let total = args.tp_count;
    ensure!(n >= 2 && total > 0, "--tp-nodes >= 2 and --tp-count > 0");
    println!("== throughput: {n} nodes (tiny), {total} attestations, {} in flight per node", args.tp_concurrency);
    let cluster = start_cluster(args, "throughput", n, "tiny", rng).await?;
    let c = client(args.tp_concurrency * 2 + 8)?;
    cluster.wait_ready(&c, if n > 2 { 2 } else { 1 }, 3, rng).await?;
    let urls = cluster.urls();

    let t = Instant::now();
    let plan: Vec<(usize, usize)> = (0..total).map(|i| (i, i % n)).collect();
    let prepared = prepare(&c, &urls, 2, args.seed, plan, 16).await?;
    let avg = prepared.iter().map(|p| p.body.len()).sum::<usize>() / prepared.len();
    println!("  prepared {total} signed bodies (avg {avg} bytes; nonces from their own nodes) in {:.1}s", t.elapsed().as_secs_f64());
    let base = count(&c, &urls[0]).await?;
    let before = counts(&c, &urls).await?;
    ensure!(before.iter().all(|&x| x == base), "nodes disagree before the run: {before:?}");

    let target = Arc::new(Mutex::new(None));
    let meter = CpuMeter::start(cluster.pids());
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.converge_timeout_secs);
    let watcher = {
        let (c, urls, target) = (c.clone(), urls.clone(), target.clone());
        tokio::spawn(async move { watch_counts(&c, &urls, t0, Duration::from_millis(20), target, deadline).await })
    };
    let sub = submit_all(&c, &urls, prepared, args.tp_concurrency).await;
    *target.lock().expect("lock") = Some(base + sub.ok);
    let cpu_submit = meter.stop();
    let (timeline, all_at) = watcher.await?;
    let cpu = meter.stop();
    let p2p = cluster.p2p_summary(&c).await;
    let last = timeline.last().map(|x| x.1.clone()).unwrap_or_default();
    drop(cluster);

    println!(
        "  submitted: {} accepted, refused {:?}, transport errors {}, in {:.2}s ({:.0}/s accepted at the receiving nodes)",
        sub.ok,
        sub.refused,
        sub.transport_errors,
        sub.elapsed.as_secs_f64(),
        sub.ok as f64 / sub.elapsed.as_secs_f64()
    );
    if let Some(e) = &sub.first_refusal {
        println!("  first refusal: {e}");
    }
    print_timeline(&timeline, base);
    let tp = all_at.map(|d| sub.ok as f64 / d.as_secs_f64());
    match all_at {
        Some(d) => println!("  every node stores all {}: {:.2}s after the first submit -> {:.0} attestations/s", sub.ok, d.as_secs_f64(), tp.unwrap()),
        None => println!("  NOT converged within {} s: per node {:?} of {}", args.converge_timeout_secs, last.iter().map(|x| x - base).collect::<Vec<_>>(), sub.ok),
    }
    println!("  CPU during submit: {cpu_submit}");
    println!("  CPU until converged: {cpu}");
    Ok(json!({
        "nodes": n, "count": total, "concurrency_per_node": args.tp_concurrency, "body_bytes": avg,
        "accepted": sub.ok, "refused": sub.refused, "transport_errors": sub.transport_errors, "first_refusal": sub.first_refusal,
        "submit_s": sub.elapsed.as_secs_f64(), "submit_rate": sub.ok as f64 / sub.elapsed.as_secs_f64(),
        "converged": all_at.is_some(), "all_stored_s": all_at.map(|d| d.as_secs_f64()), "throughput": tp,
        "final_per_node": last.iter().map(|x| x - base).collect::<Vec<_>>(),
        "cpu_submit": cpu_submit, "cpu": cpu, "p2p": p2p,
    }))
}

// ---------------------------------------------------------------------------------------------
// 3. Memory with 100,000 stored attestations

async fn phase_memory(args: &Args, rng: &mut Rng) -> anyhow::Result<Value> {
    let total = args.mem_count;
    println!("== memory: 2 nodes (tiny), {total} attestations through node 0");
    let cluster = start_cluster(args, "memory", 2, "tiny", rng).await?;
    let c = client(args.mem_concurrency + 8)?;
    cluster.wait_ready(&c, 1, 3, rng).await?;
    let urls = cluster.urls();
    let pids = cluster.pids();
    let rss0: Vec<Option<u64>> = pids.iter().map(|&p| status_kb(p, "VmRSS:")).collect();
    let base = count(&c, &urls[0]).await?;

    // In chunks, so no nonce nears its expiry (300 s on devnet) before it is used.
    let chunk = 20_000;
    let (mut ok, mut refused, mut errors) = (0u64, BTreeMap::<u16, u64>::new(), 0u64);
    let t0 = Instant::now();
    let mut submit_time = Duration::ZERO;
    for start in (0..total).step_by(chunk) {
        let plan: Vec<(usize, usize)> = (start..(start + chunk).min(total)).map(|i| (i, 0)).collect();
        let prepared = prepare(&c, &urls, 3, args.seed, plan, 16).await?;
        let sub = submit_all(&c, &urls, prepared, args.mem_concurrency).await;
        submit_time += sub.elapsed;
        ok += sub.ok;
        errors += sub.transport_errors;
        for (k, v) in sub.refused {
            *refused.entry(k).or_default() += v;
        }
        if let Some(e) = sub.first_refusal {
            println!("  refusal: {e}");
        }
        let now = counts(&c, &urls).await?;
        println!(
            "  {} submitted ({ok} accepted) after {:.1}s; stored per node: {:?}",
            (start + chunk).min(total),
            t0.elapsed().as_secs_f64(),
            now.iter().map(|x| x - base).collect::<Vec<_>>()
        );
    }
    let target = Arc::new(Mutex::new(Some(base + ok)));
    let deadline = Instant::now() + Duration::from_secs(args.converge_timeout_secs);
    let (timeline, all_at) = watch_counts(&c, &urls, t0, Duration::from_millis(200), target, deadline).await;
    let last = timeline.last().map(|x| x.1.clone()).unwrap_or_default();
    // Let in-flight work finish before reading the resident set.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss: Vec<Option<u64>> = pids.iter().map(|&p| status_kb(p, "VmRSS:")).collect();
    let hwm: Vec<Option<u64>> = pids.iter().map(|&p| status_kb(p, "VmHWM:")).collect();
    let final_counts = counts(&c, &urls).await?;
    let db_mb: Vec<f64> = (0..2)
        .map(|i| std::fs::metadata(cluster.data_dirs[i].join("rustchain.redb")).map_or(f64::NAN, |m| m.len() as f64 / 1048576.0))
        .collect();
    let p2p = cluster.p2p_summary(&c).await;
    drop(cluster);

    let mb = |v: &[Option<u64>]| v.iter().map(|x| x.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)).collect::<Vec<_>>();
    match all_at {
        Some(d) => println!("  both nodes store all {ok} after {:.1}s ({:.1}s of it submitting)", d.as_secs_f64(), submit_time.as_secs_f64()),
        None => println!("  NOT converged: per node {:?} of {ok}", last.iter().map(|x| x - base).collect::<Vec<_>>()),
    }
    println!("  VmRSS MB: before {:?}, with {total} stored {:?}; peak (VmHWM) {:?}; database files MB {db_mb:.1?}", mb(&rss0), mb(&rss), mb(&hwm));
    Ok(json!({
        "count": total, "accepted": ok, "refused": refused, "transport_errors": errors,
        "converged": all_at.is_some(), "stored_per_node": final_counts.iter().map(|x| x - base).collect::<Vec<_>>(),
        "fill_s": all_at.map(|d| d.as_secs_f64()), "submit_s": submit_time.as_secs_f64(),
        "rss_before_mb": mb(&rss0), "rss_mb": mb(&rss), "hwm_mb": mb(&hwm), "db_file_mb": db_mb, "p2p": p2p,
    }))
}

// ---------------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.bin.exists(), "--bin {} does not exist", args.bin.display());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = rt.block_on(async {
        tokio::spawn(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else { return };
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            eprintln!("mesh_bench: interrupted; killing the nodes and removing temp dirs");
            emergency_cleanup();
            std::process::exit(130);
        });
        run(&args).await
    });
    emergency_cleanup();
    result
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let mut rng = Rng(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = serde_json::Map::new();
    let mut failed = Vec::new();
    for phase in &args.phases {
        let r = match phase.as_str() {
            "latency" => phase_latency(args, &mut rng).await,
            "throughput" => phase_throughput(args, &mut rng).await,
            "memory" => phase_memory(args, &mut rng).await,
            other => Err(anyhow::anyhow!("unknown phase {other:?} (latency, throughput, memory)")),
        };
        match r {
            Ok(v) => {
                out.insert(phase.clone(), v);
            }
            Err(e) => {
                println!("  {phase} FAILED: {e:#}");
                out.insert(phase.clone(), json!({"error": format!("{e:#}")}));
                failed.push(phase.clone());
            }
        }
    }
    println!("RESULT_JSON {}", Value::Object(out));
    if !failed.is_empty() {
        bail!("phases failed: {}", failed.join(", "));
    }
    Ok(())
}
