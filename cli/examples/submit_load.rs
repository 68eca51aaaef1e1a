//! Load client for durable `POST /attest/submit` throughput.
//!
//! ```text
//! cargo run --release -p rustchain-cli --example submit_load -- \
//!     --url http://127.0.0.1:8099 --miners 20000 --concurrency 64
//! ```
//!
//! Before the clock starts it fetches one challenge nonce per miner (`POST /attest/challenge`,
//! bound to the miner id) and signs one attestation body per miner (distinct keys, wallets, miner
//! ids and serials, shaped like a Linux miner's ~2 KB report). Then `--concurrency` workers submit
//! them over keep-alive connections and it prints requests/s and the latency percentiles. A 200
//! from the node means the record is committed (the writer answers only after its group commit),
//! so this measures durable throughput. Finally it reads `GET /api/stats` and checks that the
//! attestation count grew by exactly the number of 200s.
//!
//! The last line of output is `RESULT_JSON {...}` for scripts. Exit status 1 when persistence does
//! not match or nothing was accepted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use rustchain_cli::sim::{miner_id, miner_key, signed_body};
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(about = "Durable POST /attest/submit throughput against a running rustchain node")]
struct Args {
    /// Base URL of the node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8099")]
    url: String,
    /// Attestations to submit (one distinct miner each).
    #[arg(long, default_value_t = 20_000)]
    miners: usize,
    /// Concurrent in-flight submissions (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Worker threads of this client's runtime (the node competes for the same cores).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed byte for the miner keys; change it to get different wallets on the same node.
    #[arg(long, default_value_t = 0)]
    seed: u8,
    /// Pid of the node (same machine): report its CPU time during the timed phase too.
    #[arg(long)]
    node_pid: Option<u32>,
}

/// Whole-machine CPU seconds from /proc/stat: (busy, idle, iowait, steal), all cores together.
fn machine_cpu() -> Option<[f64; 4]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let (idle, iowait, steal) = (*f.get(3)?, *f.get(4)?, f.get(7).copied().unwrap_or(0));
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = f.iter().take(8).sum();
    let busy = total - idle - iowait - steal;
    Some([busy, idle, iowait, steal].map(|t| t as f64 / 100.0))
}

/// User + system CPU seconds of a process, from /proc (Linux; USER_HZ is 100).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.miners > 0 && args.concurrency > 0 && args.threads > 0, "--miners, --concurrency and --threads must be positive");
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?
    };
    rt.block_on(run(args))
}

async fn attestation_count(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let stats: Value = client
        .get(format!("{base}/api/stats"))
        .send()
        .await
        .with_context(|| format!("GET {base}/api/stats"))?
        .error_for_status()?
        .json()
        .await?;
    stats.get("attestations").and_then(Value::as_u64).context("/api/stats has no `attestations` count")
}

/// Fetch one challenge nonce per miner, `concurrency` at a time, over the same client (which
/// also opens the keep-alive connections the timed phase will reuse).
async fn fetch_nonces(client: &reqwest::Client, base: &str, args: &Args) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.min(args.miners) {
        let (client, next, url, seed, n) = (client.clone(), next.clone(), format!("{base}/attest/challenge"), args.seed, args.miners);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(got);
                }
                let resp: Value = client
                    .post(&url)
                    .json(&json!({"miner_id": miner_id(seed, i)}))
                    .send()
                    .await
                    .context("POST /attest/challenge")?
                    .error_for_status()
                    .context("POST /attest/challenge")?
                    .json()
                    .await?;
                let nonce = resp.get("nonce").and_then(Value::as_str).context("challenge without nonce")?;
                got.push((i, nonce.to_owned()));
            }
        }));
    }
    let mut nonces = vec![String::new(); args.miners];
    for t in tasks {
        for (i, n) in t.await?? {
            nonces[i] = n;
        }
    }
    Ok(nonces)
}

/// Sign every body, split over the machine's cores (before the clock starts).
fn sign_all(seed: u8, nonces: &[String]) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = nonces.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = nonces
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, nonce)| {
                            let i = c * chunk + j;
                            signed_body(&miner_key(seed, i), seed, i, &miner_id(seed, i), nonce)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("signing thread")).collect()
    })
}

#[derive(Default)]
struct WorkerResult {
    ok_latencies_us: Vec<u32>,
    all_latencies_us: Vec<u32>,
    statuses: BTreeMap<String, u64>,
    transport_errors: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

async fn run(args: Args) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;

    let before = attestation_count(&client, &base).await?;
    let t = Instant::now();
    let nonces = fetch_nonces(&client, &base, &args).await?;
    let fetch_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let seed = args.seed;
    let bodies = tokio::task::spawn_blocking(move || sign_all(seed, &nonces)).await?;
    let sign_s = t.elapsed().as_secs_f64();
    let avg_len = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    eprintln!(
        "prepared {} attestations: nonces fetched in {fetch_s:.2}s ({:.0}/s), bodies signed in {sign_s:.2}s (avg {avg_len} bytes)",
        bodies.len(),
        bodies.len() as f64 / fetch_s,
    );
    // The bodies live until the process exits; handing out &'static slices avoids copying them
    // into every request.
    let bodies: &'static [Vec<u8>] = Vec::leak(bodies);

    let next = Arc::new(AtomicUsize::new(0));
    let submit_url: Arc<str> = format!("{base}/attest/submit").into();
    let node_pid = args.node_pid.map(|p| p.to_string());
    let cpu0 = (cpu_seconds("self"), node_pid.as_deref().and_then(cpu_seconds));
    let machine0 = machine_cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.min(args.miners) {
        let (client, next, url) = (client.clone(), next.clone(), submit_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = WorkerResult::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return r };
                let t0 = Instant::now();
                let sent = client
                    .post(&*url)
                    .header("content-type", "application/json")
                    .body(body.as_slice())
                    .send()
                    .await;
                match sent {
                    Ok(resp) => {
                        let status = resp.status();
                        let text = resp.bytes().await;
                        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        r.all_latencies_us.push(us);
                        match text {
                            Ok(_) if status == reqwest::StatusCode::OK => r.ok_latencies_us.push(us),
                            Ok(b) => {
                                *r.statuses.entry(status.as_u16().to_string()).or_default() += 1;
                                r.first_error.get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&b)));
                            }
                            Err(e) => {
                                r.transport_errors += 1;
                                r.first_error.get_or_insert_with(|| format!("reading response: {e}"));
                            }
                        }
                    }
                    Err(e) => {
                        r.transport_errors += 1;
                        r.first_error.get_or_insert_with(|| format!("sending: {e}"));
                    }
                }
            }
        }));
    }
    let mut total = WorkerResult::default();
    for t in tasks {
        let r = t.await?;
        total.ok_latencies_us.extend(r.ok_latencies_us);
        total.all_latencies_us.extend(r.all_latencies_us);
        for (k, v) in r.statuses {
            *total.statuses.entry(k).or_default() += v;
        }
        total.transport_errors += r.transport_errors;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = (cpu_seconds("self"), node_pid.as_deref().and_then(cpu_seconds));
    let machine = machine0.zip(machine_cpu()).map(|(a, b)| [0, 1, 2, 3].map(|i| (b[i] - a[i]) / elapsed));
    let client_cpu = cpu0.0.zip(cpu1.0).map(|(a, b)| b - a);
    let node_cpu = cpu0.1.zip(cpu1.1).map(|(a, b)| b - a);

    let ok = total.ok_latencies_us.len() as u64;
    let refused: u64 = total.statuses.values().sum();
    let errors = refused + total.transport_errors;
    total.ok_latencies_us.sort_unstable();
    total.all_latencies_us.sort_unstable();
    let rps = ok as f64 / elapsed;
    let (p50, p99, max) = (
        percentile(&total.ok_latencies_us, 0.50),
        percentile(&total.ok_latencies_us, 0.99),
        percentile(&total.ok_latencies_us, 1.0),
    );
    println!("submitted {} in {elapsed:.2}s with concurrency {}", args.miners, args.concurrency);
    println!("  200 OK:          {ok}");
    println!("  refused (non-200): {refused} {:?}", total.statuses);
    println!("  transport errors:  {}", total.transport_errors);
    if let Some(e) = &total.first_error {
        println!("  first error:       {}", e.chars().take(300).collect::<String>());
    }
    println!("  durable throughput: {rps:.0} accepted attestations/s");
    println!("  latency of 200s:    p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for (who, cpu) in [("client", client_cpu), ("node", node_cpu)] {
        if let Some(c) = cpu {
            println!(
                "  {who} CPU: {c:.2} s = {:.2} cores busy ({:.0}% of {cores} cores), {:.0} us per accepted attestation",
                c / elapsed,
                100.0 * c / elapsed / cores,
                if ok > 0 { 1e6 * c / ok as f64 } else { f64::NAN },
            );
        }
    }

    if let Some([busy, idle, iowait, steal]) = machine {
        let others = busy - client_cpu.unwrap_or(0.0) / elapsed - node_cpu.unwrap_or(0.0) / elapsed;
        println!(
            "  whole machine: {busy:.2} cores busy (other processes {:.2}), idle {idle:.2}, iowait {iowait:.2}, steal {steal:.2}",
            if node_cpu.is_some() { others } else { f64::NAN },
        );
    }

    let after = attestation_count(&client, &base).await?;
    let persisted = after - before;
    let persistence_ok = persisted == ok;
    println!(
        "  persistence: /api/stats attestations {before} -> {after} (+{persisted}); 200s {ok}: {}",
        if persistence_ok { "match" } else { "MISMATCH" }
    );
    let result = json!({
        "miners": args.miners, "concurrency": args.concurrency, "client_threads": args.threads,
        "elapsed_s": elapsed, "ok": ok, "errors": errors, "statuses": total.statuses,
        "transport_errors": total.transport_errors, "rps": rps, "p50_ms": p50, "p99_ms": p99, "max_ms": max,
        "persisted": persisted, "persistence_ok": persistence_ok, "body_bytes": avg_len,
        "client_cpu_s": client_cpu, "node_cpu_s": node_cpu,
        "machine_busy_cores": machine.map(|m| m[0]), "machine_idle_cores": machine.map(|m| m[1]),
        "machine_iowait_cores": machine.map(|m| m[2]), "machine_steal_cores": machine.map(|m| m[3]),
    });
    println!("RESULT_JSON {result}");
    if !persistence_ok {
        bail!("persistence check failed: {persisted} new attestations stored, {ok} acknowledged");
    }
    if ok == 0 {
        bail!("no attestation was accepted");
    }
    Ok(())
}
