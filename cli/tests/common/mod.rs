//! Test harness: the real `rustchain` binary as a child process on 127.0.0.1, plus signed
//! field-miner payloads. Waits on the node's answers, never on fixed sleeps where it can.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::attestation::sign_request;
use protocol::crypto::Keypair;
use protocol::transfer::TransferOrder;
use serde_json::{Value, json};

pub const ADMIN_KEY: &str = "test-admin-secret";

/// A port for a test node to listen on, never handed out twice in this test process.
///
/// Ports come from 20000..32000, below the kernel's ephemeral range (32768..), so no port-0 bind
/// and no outgoing connection's source port can take one between a node's stop and its restart on
/// the same port (a test that restarts a node while others run in parallel used to fail with
/// "Address already in use" when the kernel gave the freed port to someone else).
/// Say loudly that a test could not run here: on stderr (which cargo shows only for failures) and
/// in `SKIPPED.txt` in cargo's temporary directory for tests, which `scripts/test.sh` prints in a
/// banner after the run.
#[allow(dead_code)]
pub fn skipped(test: &str, why: &str) {
    use std::io::Write as _;
    eprintln!("SKIPPED {test}: {why}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("SKIPPED.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{test}: {why}");
    }
}

pub fn free_port() -> u16 {
    free_ports(1)
}

/// `n` consecutive free ports (the first returned), reserved like [`free_port`]'s.
pub fn free_ports(n: u32) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each test process starts at its own offset, so test binaries run one after another (or a
    // leftover node) do not walk the same ports.
    let _ = NEXT.compare_exchange(u32::MAX, std::process::id().wrapping_mul(7919) % SPAN, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let start = NEXT.fetch_add(n, Ordering::SeqCst) % SPAN;
        if start + n <= SPAN && (LOW + start..LOW + start + n).all(|p| TcpListener::bind(("127.0.0.1", p as u16)).is_ok()) {
            return (LOW + start) as u16;
        }
    }
    panic!("no {n} free ports in {LOW}..{}", LOW + SPAN);
}

/// Write `text` to a new file only its owner can read (mode 0600).
pub fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub struct TestNode {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub port: u16,
    pub p2p_port: u16,
    pub url: String,
    pub metrics_url: String,
    pub log: PathBuf,
    extra: Vec<String>,
}

impl TestNode {
    /// Start a devnet node on a fresh port with `data_dir`. Rate limits are off unless `extra`
    /// sets them.
    pub fn start(data_dir: &Path, extra: &[&str]) -> TestNode {
        let mut n = Self::new(data_dir, extra);
        n.spawn();
        n
    }

    /// A node not started yet (for tests that start it themselves).
    pub fn new(data_dir: &Path, extra: &[&str]) -> TestNode {
        let port = free_port();
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for flag in ["--rate-limit-per-minute", "--admin-rate-limit-per-minute"] {
            if !extra.iter().any(|e| e == flag) {
                extra.extend([flag.to_owned(), "0".to_owned()]);
            }
        }
        if !extra.iter().any(|e| e == "--metrics-addr") {
            extra.extend(["--metrics-addr".to_owned(), format!("127.0.0.1:{}", free_port())]);
        }
        let metrics_addr = extra[extra.iter().position(|e| e == "--metrics-addr").unwrap() + 1].clone();
        TestNode {
            child: None,
            data_dir: data_dir.to_owned(),
            port,
            p2p_port: free_port(),
            url: format!("http://127.0.0.1:{port}"),
            metrics_url: format!("http://{metrics_addr}/metrics"),
            log: data_dir.with_extension("log"),
            extra,
        }
    }

    /// A file holding [`ADMIN_KEY`] (mode 0600), beside the data dir; written on first use.
    pub fn admin_key_file(&self) -> PathBuf {
        let path = self.data_dir.with_extension("admin-key");
        if !path.exists() {
            write_private(&path, &format!("{ADMIN_KEY}\n"));
        }
        path
    }

    /// The command line this node runs with.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rustchain"));
        cmd.args(["node", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--http-addr", &format!("127.0.0.1:{}", self.port)])
            .arg("--admin-key-file")
            .arg(self.admin_key_file())
            .args(["--p2p-addr", &format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port)])
            .args(&self.extra)
            .env("RUSTCHAIN_LOG", "info");
        cmd
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = self
            .command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rustchain");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("node exited early ({status}); log:\n{}", self.log_text());
            }
            if reqwest::blocking::get(format!("{}/livez", self.url)).is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "node did not answer /livez; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// This node's p2p multiaddr with its peer id, for `--bootnodes`.
    pub fn multiaddr(&self) -> String {
        let (_, st) = self.get("/api/p2p/status");
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, st["local_peer_id"].as_str().expect("p2p enabled"))
    }

    /// Wait until `check` holds for this node's answer at `path`.
    pub fn wait_until(&self, path: &str, secs: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.poll_until(secs, &format!("{what} (last {path})"), || self.get(path).1, check)
    }

    /// Ask `ask` every 100 ms until `check` holds on its answer; fail after `secs` with the last one.
    pub fn poll_until(&self, secs: u64, what: &str, ask: impl Fn() -> Value, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = ask();
            if check(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: node {} never got there; last answer: {v}\nlog:\n{}", self.url, self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = reqwest::blocking::Client::new().get(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        reqwest::blocking::get(&self.metrics_url).unwrap().text().unwrap()
    }

    /// The value of one series in `/metrics` (exact name with labels), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, serde_json::to_vec(body).unwrap(), &[])
    }

    pub fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut req = client.post(format!("{}{path}", self.url)).body(body).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn challenge(&self, miner_id: Option<&str>) -> String {
        let body = match miner_id {
            Some(id) => json!({"miner_id": id}),
            None => json!({}),
        };
        let (s, v) = self.post("/attest/challenge", &body);
        assert_eq!(s, 200, "{v}");
        v["nonce"].as_str().unwrap().to_owned()
    }

    /// Poll `path` until it answers 200 (or panic after `secs`).
    pub fn wait_for(&self, path: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (s, v) = self.get(path);
            if s == 200 {
                return v;
            }
            assert!(Instant::now() < deadline, "{path} still answers {s}: {v}\nlog:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A simulated miner: a key, a wallet, a device.
pub struct Miner {
    pub key: Keypair,
    pub wallet: String,
    pub miner_id: String,
    pub device: Value,
    pub fingerprint: Value,
    pub hostname: String,
}

/// A passing fingerprint, measured on machine `machine`: its clock drift and L2 latency are
/// scaled by 1.12^(machine % 32) and 1.12^(machine / 32 % 8), so two of the 256 machines never
/// have colliding entropy profiles (PROTOCOL.md §7.1) and each `Miner` is its own machine.
pub fn good_checks(extra_simd: Value, machine: u8) -> Value {
    let cv = 0.033222 * 1.12f64.powi(i32::from(machine % 32));
    let l2 = 40.37 * 1.12f64.powi(i32::from(machine / 32 % 8));
    json!({
        "clock_drift": {"passed": true, "data": {"mean_ns": 1843211, "stdev_ns": 61234, "cv": cv, "drift_stdev": 70311}},
        "cache_timing": {"passed": true, "data": {"l1_ns": 18.42, "l2_ns": l2, "l3_ns": 93.11, "l2_l1_ratio": 2.19, "l3_l2_ratio": 2.306, "l3_l1_ratio": 5.055}},
        "simd_identity": {"passed": true, "data": extra_simd},
        "thermal_drift": {"passed": true, "data": {"cold_avg_ns": 3712044, "hot_avg_ns": 3650981, "cold_stdev": 98122, "hot_stdev": 80457, "drift_ratio": 0.9836}},
        "instruction_jitter": {"passed": true, "data": {"int_avg_ns": 612345, "fp_avg_ns": 701223, "branch_avg_ns": 455102, "int_stdev": 21456, "fp_stdev": 25110, "branch_stdev": 17302}},
        "anti_emulation": {"passed": true, "data": {"vm_indicators": [], "indicator_count": 0, "is_likely_vm": false}}
    })
}

impl Miner {
    pub fn new(seed: u8, wallet: &str, arch: &str, serial: &str) -> Miner {
        let (family, cpu, simd) = match arch {
            "G4" | "G5" | "G3" => ("PowerPC", "PowerPC 7447A", json!({"arch": "ppc", "has_altivec": true, "simd_flags_count": 1})),
            _ => ("x86", "Intel Pentium III", json!({"arch": "i686", "has_sse": true, "has_avx": false, "simd_flags_count": 12,
                                                     "sample_flags": ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "sep"]})),
        };
        Miner {
            key: Keypair::from_seed(&[seed; 32]),
            wallet: wallet.into(),
            miner_id: format!("{wallet}-box"),
            device: json!({"family": family, "arch": arch, "model": cpu, "cpu": cpu, "cores": 1, "memory_gb": 1,
                           "serial": serial, "machine": "test"}),
            fingerprint: json!({"all_passed": true, "checks": good_checks(simd, seed)}),
            hostname: format!("{wallet}-host"),
        }
    }

    /// A signed `/attest/submit` body (canonical JSON scheme).
    pub fn body(&self, nonce: &str) -> Value {
        let mut body = json!({
            "miner": self.wallet, "miner_id": self.miner_id, "nonce": nonce,
            "report": {"nonce": nonce, "commitment": "00ff", "derived": {}, "entropy_score": 0.033222},
            "device": self.device,
            "signals": {"macs": ["00:0a:95:9d:68:16"], "hostname": self.hostname},
            "fingerprint": self.fingerprint, "warthog": null,
        });
        sign_request(&self.key, body.as_object_mut().unwrap());
        body
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-node testnets from `rustchain testnet init`

/// 1 s slots, 4 slots per epoch, 1 slot of grace: an epoch every 4 s.
pub fn init_testnet(dir: &Path, validators: usize, relays: usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_rustchain"))
        .args(["testnet", "init", "--out"])
        .arg(dir)
        .args(["--validators", &validators.to_string(), "--relays", &relays.to_string()])
        .args(["--genesis-delay", "2", "--slot-seconds", "1", "--slots-per-epoch", "4", "--grace-slots", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

pub fn start_testnet(dir: &Path, indices: &[usize]) -> Vec<TestNode> {
    let spec = dir.join("spec.toml");
    let spec = spec.to_str().unwrap();
    let common = ["--spec", spec, "--gossip-preset", "tiny", "--gossip-heartbeat-ms", "200"];
    let first = TestNode::start(&dir.join(format!("node-{}", indices[0])), &common);
    let boot = first.multiaddr();
    let mut nodes = vec![first];
    for i in &indices[1..] {
        nodes.push(TestNode::start(&dir.join(format!("node-{i}")), &[&common[..], &["--bootnodes", &boot]].concat()));
    }
    for n in &nodes {
        n.wait_until("/api/p2p/status", 30, "connected and synced", |v| v["total_peers"].as_u64() >= Some(1) && v["sync_status"] == "synced");
    }
    nodes
}

pub fn epoch_now(node: &TestNode) -> (u64, u64) {
    let (_, e) = node.get("/epoch");
    (e["epoch"].as_u64().unwrap(), e["slot"].as_u64().unwrap() % e["blocks_per_epoch"].as_u64().unwrap())
}

/// Submit attestations early in an epoch so they all land in it; returns that epoch.
pub fn attest_in_one_epoch(nodes: &[&TestNode], miners: &[Miner]) -> u64 {
    loop {
        let (epoch, slot_in_epoch) = epoch_now(nodes[0]);
        if slot_in_epoch <= 1 {
            for (i, m) in miners.iter().enumerate() {
                let node = nodes[i % nodes.len()];
                let (s, v) = node.post("/attest/submit", &m.body(&node.challenge(None)));
                assert_eq!(s, 200, "{v}");
                assert_eq!(v["epoch"].as_u64(), Some(epoch), "submission crossed an epoch boundary");
            }
            return epoch;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn certified(node: &TestNode, epoch: u64, secs: u64) -> Value {
    node.wait_until(&format!("/api/epoch/{epoch}/settlement"), secs, "certificate", |v| v["status"] == "certified")
}

pub fn balance(node: &TestNode, wallet: &str) -> u64 {
    node.get(&format!("/wallet/balance?miner_id={wallet}")).1["amount_i64"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Transfers

/// `rustchain testnet init`'s network id: every network but mainnet requires a signed chain id.
pub const NET: &str = "localnet";

pub fn order(to: &str, amount_rtc: f64, nonce: i64) -> TransferOrder {
    TransferOrder { to_address: to.into(), amount_rtc, memo: "test".into(), nonce, chain_id: Some(NET.into()) }
}

pub fn tx_status(node: &TestNode, tx: &str) -> Value {
    node.get(&format!("/wallet/tx/{tx}")).1
}

/// Wait until `tx` is judged at `node` (confirmed or rejected); returns the answer.
pub fn judged(node: &TestNode, tx: &str, secs: u64) -> Value {
    node.wait_until(&format!("/wallet/tx/{tx}"), secs, "transfer judged", |v| v["status"] == "confirmed" || v["status"] == "rejected")
}

/// A wallet whose key the test holds (an RTC address from `seed`) earns one epoch's pot through a
/// miner named `miner_id`; returns the key and the reward, once every node has credited it.
pub fn funded_sender(nodes: &[TestNode], seed: u8, miner_id: &str) -> (Keypair, u64) {
    let sender = Keypair::from_seed(&[seed; 32]);
    // The sender's own key attests (an RTC address earns only for its key), on a machine of its own.
    let mut miner = Miner::new(seed.wrapping_sub(7), "placeholder", "G4", "");
    miner.key = Keypair::from_seed(&[seed; 32]);
    miner.wallet = sender.address();
    miner.miner_id = miner_id.into();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let epoch = attest_in_one_epoch(&refs, &[miner]);
    let reward = certified(&nodes[0], epoch, 40)["record"]["distributed_urtc"].as_u64().unwrap();
    for n in nodes {
        certified(n, epoch, 40);
        n.wait_until(&format!("/wallet/balance?address={}", sender.address()), 20, "reward credited", |v| v["amount_i64"].as_u64() == Some(reward));
    }
    (sender, reward)
}

/// Run `rustchain verify --node URL` with `extra` arguments; its exit code and standard output
/// (both streams are echoed to the test's stderr).
pub fn run_verify(url: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rustchain")).args(["verify", "--node", url]).args(extra).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("--- verify {url} {extra:?}\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}
