//! Collects this Linux machine's hardware fingerprint for `rustchain attest`: device identity,
//! network signals and the six RIP-PoA fingerprint checks, measured for real and reported honestly.

use serde_json::{Map, Value, json};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// Everything `rustchain attest` needs from this machine for an `/attest/submit` body.
pub struct MachineReport {
    /// `{"family","arch","model","cpu","cores","memory_gb","serial","machine"}`
    pub device: Value,
    /// `{"macs": [...], "hostname": "..."}`
    pub signals: Value,
    /// `{"all_passed": bool, "checks": {name: {"passed": bool, "data": {...}}}}`
    pub fingerprint: Value,
    /// The clock-drift coefficient of variation (finite, >= 0).
    pub entropy_score: f64,
}

/// Names of the six checks, in the order the field miners run them.
const CHECK_NAMES: [&str; 6] = [
    "clock_drift",
    "cache_timing",
    "simd_identity",
    "thermal_drift",
    "instruction_jitter",
    "anti_emulation",
];

/// Measure everything. Takes at most ~2 seconds of wall time in total. Never panics: a check
/// that cannot be measured reports passed=false with data explaining why ("error": "...").
pub fn collect() -> MachineReport {
    let cpuinfo_text = read_text("/proc/cpuinfo");
    let cpuinfo = parse_cpuinfo(cpuinfo_text.as_deref().unwrap_or(""));

    let device = guarded_value(
        || collect_device(&cpuinfo),
        || {
            json!({
                "family": family_for(std::env::consts::ARCH),
                "arch": std::env::consts::ARCH,
                "model": "Unknown", "cpu": "Unknown", "cores": 1, "memory_gb": 0,
                "serial": "", "machine": "",
            })
        },
    );
    let signals = guarded_value(collect_signals, || json!({"macs": [], "hostname": ""}));

    let mut checks = Map::new();
    let mut all_passed = true;
    let mut entropy_score = 0.0;
    for name in CHECK_NAMES {
        let (passed, data) = run_check(name, cpuinfo_text.as_deref());
        if name == "clock_drift" {
            entropy_score = data
                .get("cv")
                .and_then(Value::as_f64)
                .map(fin)
                .unwrap_or(0.0);
        }
        all_passed &= passed;
        checks.insert(name.to_string(), json!({"passed": passed, "data": data}));
    }

    MachineReport {
        device,
        signals,
        fingerprint: json!({"all_passed": all_passed, "checks": Value::Object(checks)}),
        entropy_score: fin(entropy_score).max(0.0),
    }
}

/// Runs one check, converting a panic into a failed check with an `error` field.
fn run_check(name: &str, cpuinfo: Option<&str>) -> (bool, Value) {
    let cpuinfo_owned = cpuinfo.map(str::to_string);
    let outcome = std::panic::catch_unwind(move || {
        let text = cpuinfo_owned.as_deref();
        match name {
            "clock_drift" => check_clock_drift(),
            "cache_timing" => check_cache_timing(),
            "simd_identity" => check_simd_identity(text),
            "thermal_drift" => check_thermal_drift(),
            "instruction_jitter" => check_instruction_jitter(),
            "anti_emulation" => check_anti_emulation(text),
            _ => (false, json!({"error": "unknown check"})),
        }
    });
    match outcome {
        Ok((passed, data)) => (passed, sanitize(data)),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            (false, json!({"error": format!("check panicked: {msg}")}))
        }
    }
}

fn guarded_value(
    f: impl FnOnce() -> Value + std::panic::UnwindSafe,
    fallback: impl FnOnce() -> Value,
) -> Value {
    std::panic::catch_unwind(f).unwrap_or_else(|_| fallback())
}

// ---------------------------------------------------------------------------------------------
// Small numeric helpers
// ---------------------------------------------------------------------------------------------

/// Finite or zero.
fn fin(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Rounds to `digits` decimals; always finite.
fn round_to(x: f64, digits: i32) -> f64 {
    let x = fin(x);
    let p = 10f64.powi(digits);
    let r = (x * p).round() / p;
    if r.is_finite() { r } else { x }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        fin(a / b)
    } else {
        0.0
    }
}

struct Stats {
    n: usize,
    mean: f64,
    stddev: f64,
    min: f64,
    max: f64,
}

impl Stats {
    /// Mean, sample standard deviation (n-1), min and max of the samples.
    fn of(samples: &[f64]) -> Stats {
        let n = samples.len();
        if n == 0 {
            return Stats {
                n,
                mean: 0.0,
                stddev: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let min = samples.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = samples.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        Stats {
            n,
            mean: fin(mean),
            stddev: fin(var.sqrt()),
            min: fin(min),
            max: fin(max),
        }
    }

    fn cv(&self) -> f64 {
        ratio(self.stddev, self.mean)
    }
}

/// Defensive pass: replaces any non-finite number in `v` by 0. (Numbers are made finite where
/// they are computed; serde_json itself would turn NaN/inf into null.)
fn sanitize(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if !f.is_finite() => json!(0.0),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(sanitize).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, sanitize(v))).collect()),
        other => other,
    }
}

fn ns_u64(x: f64) -> u64 {
    let x = fin(x);
    if x <= 0.0 { 0 } else { x.round() as u64 }
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

/// A fixed integer hashing workload (xorshift/multiply mixing), `iters` rounds.
fn work_mix(seed: u64, iters: u64) -> u64 {
    let mut x = seed | 1;
    let mut acc = 0u64;
    for i in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i);
    }
    acc
}

/// Integer arithmetic chain.
fn work_int(seed: u64, iters: u64) -> u64 {
    let mut x = seed;
    for _ in 0..iters {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x ^= x >> 29;
    }
    x
}

/// Floating-point multiply/add/divide chain.
fn work_fp(seed: u64, iters: u64) -> u64 {
    let mut y = 1.5 + (seed % 7) as f64;
    for _ in 0..iters {
        y = y * 1.375 + 0.5;
        if y > 1000.0 {
            y /= 997.0;
        }
    }
    y.to_bits()
}

/// Data-dependent branches (pseudo-random, so the predictor misses some of them).
fn work_branch(seed: u64, iters: u64) -> u64 {
    let mut x = seed | 1;
    let mut acc: u64 = 0;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x & 1 == 0 {
            acc = acc.wrapping_add(x >> 3);
        } else {
            acc = acc.wrapping_sub(x >> 5);
        }
    }
    acc
}

/// Times one run of `f(seed, iters)` in nanoseconds.
fn time_once(f: fn(u64, u64) -> u64, seed: u64, iters: u64) -> f64 {
    let start = Instant::now();
    let r = f(black_box(seed), black_box(iters));
    black_box(r);
    start.elapsed().as_nanos() as f64
}

/// Chooses an iteration count so that one run of `f` takes about `target_ns` (works the same
/// in debug and release builds, so the wall-time budget holds in both).
fn calibrate(f: fn(u64, u64) -> u64, target_ns: f64) -> u64 {
    let mut iters: u64 = 64;
    let deadline = Instant::now() + Duration::from_millis(50);
    loop {
        let t = time_once(f, 0x1234_5678, iters);
        if t >= target_ns / 4.0 || iters >= (1 << 26) || Instant::now() >= deadline {
            let per_iter = if t > 0.0 { t / iters as f64 } else { 1.0 };
            let want = fin(target_ns / per_iter.max(0.01));
            return (want as u64).clamp(16, 1 << 28);
        }
        iters *= 4;
    }
}

// ---------------------------------------------------------------------------------------------
// Check 1: clock drift
// ---------------------------------------------------------------------------------------------

fn check_clock_drift() -> (bool, Value) {
    const SAMPLES: usize = 200;
    let iters = calibrate(work_mix, 60_000.0);
    let mut intervals = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        intervals.push(time_once(work_mix, i as u64 + 1, iters));
        if i % 50 == 49 {
            // Let the scheduler and oscillator move between batches, as the field miners do.
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let st = Stats::of(&intervals);
    let diffs: Vec<f64> = intervals.windows(2).map(|w| w[1] - w[0]).collect();
    let drift = Stats::of(&diffs);
    let cv = st.cv();
    let mut data = json!({
        "samples": st.n,
        "inner_iterations": iters,
        "mean_ns": ns_u64(st.mean),
        "stddev_ns": ns_u64(st.stddev),
        "stdev_ns": ns_u64(st.stddev),
        "min_ns": ns_u64(st.min),
        "max_ns": ns_u64(st.max),
        "cv": round_to(cv, 6),
        "drift_stdev": ns_u64(drift.stddev),
    });
    let passed = st.n >= 2 && st.mean > 0.0 && cv >= 0.0001;
    if !passed {
        data["fail_reason"] = json!(if st.mean > 0.0 {
            "synthetic_timing"
        } else {
            "no_timing"
        });
    }
    (passed, data)
}

// ---------------------------------------------------------------------------------------------
// Check 2: cache timing (pointer chasing)
// ---------------------------------------------------------------------------------------------

const LINE_WORDS: usize = 64 / std::mem::size_of::<usize>();

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Builds a buffer of `bytes` bytes holding one random Hamiltonian cycle through its cache lines
/// (Sattolo's algorithm), each slot storing the index of the next slot.
fn build_chase(bytes: usize, seed: u64) -> Result<Vec<usize>, String> {
    let lines = (bytes / 64).max(16);
    let words = lines * LINE_WORDS;
    let mut buf: Vec<usize> = Vec::new();
    buf.try_reserve_exact(words)
        .map_err(|e| format!("cannot allocate {bytes} bytes: {e}"))?;
    buf.resize(words, 0);
    let mut order: Vec<usize> = Vec::new();
    order
        .try_reserve_exact(lines)
        .map_err(|e| format!("cannot allocate order table: {e}"))?;
    order.extend(0..lines);
    let mut rng = Rng(seed | 1);
    for i in (1..lines).rev() {
        let j = (rng.next() % i as u64) as usize; // j < i: a single cycle
        order.swap(i, j);
    }
    for i in 0..lines {
        buf[order[i] * LINE_WORDS] = order[(i + 1) % lines] * LINE_WORDS;
    }
    Ok(buf)
}

/// Follows the chain `steps` times (8 dependent loads per loop round).
fn chase(buf: &[usize], start: usize, rounds: usize) -> usize {
    let mut p = start;
    for _ in 0..rounds {
        p = buf[p];
        p = buf[p];
        p = buf[p];
        p = buf[p];
        p = buf[p];
        p = buf[p];
        p = buf[p];
        p = buf[p];
    }
    p
}

/// Best-of-`trials` nanoseconds per dependent load over a buffer of `bytes` bytes.
fn chase_latency(bytes: usize, loads: usize, trials: usize, seed: u64) -> Result<f64, String> {
    let buf = build_chase(bytes, seed)?;
    let lines = buf.len() / LINE_WORDS;
    // Warm the working set into the cache level under test.
    let mut p = chase(black_box(&buf), 0, lines / 8 + 1);
    let rounds = (loads / 8).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..trials {
        let start = Instant::now();
        p = chase(black_box(&buf), black_box(p), rounds);
        let ns = start.elapsed().as_nanos() as f64 / (rounds * 8) as f64;
        best = best.min(ns);
    }
    black_box(p);
    if best.is_finite() {
        Ok(best)
    } else {
        Err("no timing".to_string())
    }
}

fn check_cache_timing() -> (bool, Value) {
    const L1: usize = 16 * 1024;
    const L2: usize = 256 * 1024;
    const L3: usize = 16 * 1024 * 1024;
    const LOADS: usize = 200_000;
    const TRIALS: usize = 3;
    let measured = (|| -> Result<(f64, f64, f64), String> {
        Ok((
            chase_latency(L1, LOADS, TRIALS, 0xA5A5_1111)?,
            chase_latency(L2, LOADS, TRIALS, 0xA5A5_2222)?,
            chase_latency(L3, LOADS, TRIALS, 0xA5A5_3333)?,
        ))
    })();
    let (l1, l2, l3) = match measured {
        Ok(v) => v,
        Err(e) => {
            return (false, json!({"error": e, "arch": std::env::consts::ARCH}));
        }
    };
    let l2_l1 = ratio(l2, l1);
    let l3_l2 = ratio(l3, l2);
    let l3_l1 = ratio(l3, l1);
    let mut data = json!({
        "arch": std::env::consts::ARCH,
        "l1_ns": round_to(l1, 3),
        "l2_ns": round_to(l2, 3),
        "l3_ns": round_to(l3, 3),
        "l2_l1_ratio": round_to(l2_l1, 3),
        "l3_l2_ratio": round_to(l3_l2, 3),
        "l3_l1_ratio": round_to(l3_l1, 3),
        "hierarchy_ratio": round_to(l3_l1, 3),
        "l1_bytes": L1,
        "l2_bytes": L2,
        "l3_bytes": L3,
        "loads_per_trial": LOADS,
        "trials": TRIALS,
    });
    let passed = if l1 <= 0.0 || l2 <= 0.0 || l3 <= 0.0 {
        data["fail_reason"] = json!("zero_latency");
        false
    } else if (l2_l1 < 1.01 && l3_l2 < 1.01) || l3_l1 < 1.05 {
        data["fail_reason"] = json!("no_cache_hierarchy");
        false
    } else {
        true
    };
    (passed, data)
}

// ---------------------------------------------------------------------------------------------
// /proc/cpuinfo parsing (shared by simd_identity, anti_emulation and device)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct CpuInfo {
    model_name: Option<String>,
    /// The PowerPC-style `cpu` line (e.g. "7447A, altivec supported", "POWER8 (raw), altivec supported").
    cpu_line: Option<String>,
    processor_name: Option<String>,
    hardware: Option<String>,
    implementer: Option<String>,
    part: Option<String>,
    flags: Vec<String>,
    /// Which line the flags came from: "flags", "Features", "cpu" or "" if none.
    flag_source: &'static str,
}

fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut ci = CpuInfo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let lkey = key.to_ascii_lowercase();
        match lkey.as_str() {
            "model name" if ci.model_name.is_none() => ci.model_name = Some(value.to_string()),
            "cpu" if ci.cpu_line.is_none() => ci.cpu_line = Some(value.to_string()),
            "processor" if ci.processor_name.is_none() && value.parse::<u64>().is_err() => {
                ci.processor_name = Some(value.to_string())
            }
            "hardware" if ci.hardware.is_none() => ci.hardware = Some(value.to_string()),
            "cpu implementer" if ci.implementer.is_none() => {
                ci.implementer = Some(value.to_string())
            }
            "cpu part" if ci.part.is_none() => ci.part = Some(value.to_string()),
            "flags" if ci.flag_source.is_empty() => {
                ci.flags = value.split_whitespace().map(str::to_string).collect();
                ci.flag_source = "flags";
            }
            "features" if ci.flag_source.is_empty() => {
                ci.flags = value.split_whitespace().map(str::to_string).collect();
                ci.flag_source = "Features";
            }
            _ => {}
        }
    }
    if ci.flag_source.is_empty()
        && let Some(cpu) = &ci.cpu_line
        && cpu.to_ascii_lowercase().contains("altivec")
    {
        ci.flags.push("altivec".to_string());
        ci.flag_source = "cpu";
    }
    ci
}

/// The CPU brand string for `device.cpu`.
fn cpu_brand(ci: &CpuInfo) -> String {
    if let Some(m) = &ci.model_name {
        return m.clone();
    }
    if let Some(c) = &ci.cpu_line {
        return c.clone();
    }
    if let Some(p) = &ci.processor_name {
        return p.clone();
    }
    if let (Some(i), Some(p)) = (&ci.implementer, &ci.part) {
        return format!("ARM implementer {i} part {p}");
    }
    if let Some(h) = &ci.hardware {
        return h.clone();
    }
    "Unknown".to_string()
}

/// `device.family` from the compile-time architecture.
fn family_for(arch: &str) -> String {
    match arch {
        "powerpc" | "powerpc64" => "powerpc".to_string(),
        other => other.to_string(),
    }
}

/// RustChain arch class: "modern" for x86_64, "aarch64" for aarch64, g3/g4/g5/power8 only when
/// the PowerPC `cpu` line says so, otherwise the compile-time architecture.
fn arch_class(arch: &str, cpu_line: Option<&str>) -> String {
    match arch {
        "x86_64" => return "modern".to_string(),
        "aarch64" => return "aarch64".to_string(),
        _ => {}
    }
    if arch.starts_with("powerpc")
        && let Some(cpu) = cpu_line
    {
        let l = cpu.to_ascii_lowercase();
        let first = l
            .split(|c: char| c == ',' || c.is_whitespace())
            .next()
            .unwrap_or("");
        // The model token, e.g. "7447a" -> "7447", "ppc970fx" -> "970fx".
        let model = first
            .trim_start_matches("ppc")
            .trim_start_matches("powerpc");
        let digits: String = model.chars().take_while(|c| c.is_ascii_digit()).collect();
        const G4: [&str; 10] = [
            "7400", "7410", "7441", "7445", "7447", "7448", "7450", "7451", "7455", "7457",
        ];
        if G4.contains(&digits.as_str()) {
            return "g4".to_string();
        }
        if digits == "970" {
            return "g5".to_string();
        }
        if digits == "750" || digits == "740" {
            return "g3".to_string();
        }
        if l.starts_with("power8") {
            return "power8".to_string();
        }
    }
    arch.to_string()
}

// ---------------------------------------------------------------------------------------------
// Check 3: SIMD identity
// ---------------------------------------------------------------------------------------------

fn check_simd_identity(cpuinfo: Option<&str>) -> (bool, Value) {
    let arch = std::env::consts::ARCH;
    let Some(text) = cpuinfo else {
        return (
            false,
            json!({"arch": arch, "error": "/proc/cpuinfo not readable", "fail_reason": "no_simd_detected"}),
        );
    };
    simd_from_cpuinfo(arch, &parse_cpuinfo(text))
}

fn simd_from_cpuinfo(arch: &str, ci: &CpuInfo) -> (bool, Value) {
    let lower: Vec<String> = ci.flags.iter().map(|f| f.to_ascii_lowercase()).collect();
    let has = |pred: &dyn Fn(&str) -> bool| lower.iter().any(|f| pred(f));
    let has_sse = has(&|f| f.starts_with("sse"));
    let has_avx = has(&|f| f.starts_with("avx"));
    let has_neon = has(&|f| f == "neon" || f.starts_with("asimd"));
    let has_altivec = has(&|f| f == "altivec")
        || ci
            .cpu_line
            .as_deref()
            .map(|c| c.to_ascii_lowercase().contains("altivec"))
            .unwrap_or(false);
    let has_vsx = has(&|f| f == "vsx");
    let x86_features: Vec<&String> = lower
        .iter()
        .filter(|f| {
            f.starts_with("sse")
                || f.starts_with("avx")
                || f.starts_with("ssse")
                || *f == "mmx"
                || *f == "fma"
                || *f == "f16c"
        })
        .take(64)
        .collect();
    let flags: Vec<&String> = ci.flags.iter().take(64).collect();
    let sample: Vec<&String> = ci.flags.iter().take(10).collect();
    let mut data = json!({
        "arch": arch,
        "flag_source": ci.flag_source,
        "flag_count": ci.flags.len(),
        "simd_flags_count": ci.flags.len(),
        "has_sse": has_sse,
        "has_avx": has_avx,
        "has_neon": has_neon,
        "has_altivec": has_altivec,
        "has_vsx": has_vsx,
        "x86_features": x86_features,
        "flags": flags,
        "sample_flags": sample,
    });
    let passed = !ci.flags.is_empty();
    if !passed {
        data["fail_reason"] = json!("no_simd_detected");
    }
    (passed, data)
}

// ---------------------------------------------------------------------------------------------
// Check 4: thermal drift
// ---------------------------------------------------------------------------------------------

/// Temperatures in °C from /sys/class/thermal/thermal_zone*/temp (millidegrees), by zone name.
fn thermal_readings() -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/thermal") else {
        return out;
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("thermal_zone"))
        .collect();
    names.sort();
    for name in names.into_iter().take(16) {
        let path = format!("/sys/class/thermal/{name}/temp");
        if let Some(t) = read_text(&path).and_then(|s| s.trim().parse::<f64>().ok()) {
            let c = t / 1000.0;
            if c.is_finite() {
                out.push((name, round_to(c, 3)));
            }
        }
    }
    out
}

fn check_thermal_drift() -> (bool, Value) {
    const SAMPLES: usize = 40;
    const LOAD_MS: u64 = 200;
    let iters = calibrate(work_mix, 50_000.0);
    let temps_before = thermal_readings();
    let cold: Vec<f64> = (0..SAMPLES)
        .map(|i| time_once(work_mix, 0xC01D + i as u64, iters))
        .collect();

    // Sustained load.
    let load_start = Instant::now();
    let mut sink = 0u64;
    let mut rounds = 0u64;
    while load_start.elapsed() < Duration::from_millis(LOAD_MS) {
        sink = sink.wrapping_add(work_mix(black_box(rounds + 7), black_box(iters)));
        rounds += 1;
    }
    black_box(sink);
    let load_ns = load_start.elapsed().as_nanos() as f64;

    let hot: Vec<f64> = (0..SAMPLES)
        .map(|i| time_once(work_mix, 0x4070 + i as u64, iters))
        .collect();
    let temps_after = thermal_readings();

    let c = Stats::of(&cold);
    let h = Stats::of(&hot);
    let drift_ratio = ratio(h.mean, c.mean);
    let max_before = temps_before.iter().map(|t| t.1).fold(f64::NAN, f64::max);
    let max_after = temps_after.iter().map(|t| t.1).fold(f64::NAN, f64::max);
    let zone_obj = |v: &[(String, f64)]| -> Value {
        Value::Object(v.iter().map(|(k, t)| (k.clone(), json!(*t))).collect())
    };
    let mut data = json!({
        "samples": SAMPLES,
        "inner_iterations": iters,
        "load_ms": round_to(load_ns / 1e6, 1),
        "load_rounds": rounds,
        "cold_avg_ns": ns_u64(c.mean),
        "hot_avg_ns": ns_u64(h.mean),
        "cold_stdev": ns_u64(c.stddev),
        "hot_stdev": ns_u64(h.stddev),
        "drift_ratio": round_to(drift_ratio, 4),
        "thermal_zone_count": temps_before.len().max(temps_after.len()),
        "temps_c_before": zone_obj(&temps_before),
        "temps_c_after": zone_obj(&temps_after),
    });
    if max_before.is_finite() && max_after.is_finite() {
        data["max_temp_c_before"] = json!(max_before);
        data["max_temp_c_after"] = json!(max_after);
        data["temp_delta_c"] = json!(round_to(max_after - max_before, 3));
    }
    let passed = if c.mean <= 0.0 || h.mean <= 0.0 {
        data["fail_reason"] = json!("no_timing");
        false
    } else if c.stddev == 0.0 && h.stddev == 0.0 {
        data["fail_reason"] = json!("no_thermal_variance");
        false
    } else {
        drift_ratio > 0.0
    };
    (passed, data)
}

// ---------------------------------------------------------------------------------------------
// Check 5: instruction jitter
// ---------------------------------------------------------------------------------------------

fn check_instruction_jitter() -> (bool, Value) {
    const SAMPLES: usize = 120;
    let ii = calibrate(work_int, 15_000.0);
    let fi = calibrate(work_fp, 15_000.0);
    let bi = calibrate(work_branch, 15_000.0);
    let mut int_t = Vec::with_capacity(SAMPLES);
    let mut fp_t = Vec::with_capacity(SAMPLES);
    let mut br_t = Vec::with_capacity(SAMPLES);
    let mut mix_t = Vec::with_capacity(SAMPLES);
    for s in 0..SAMPLES as u64 {
        let a = time_once(work_int, s + 3, ii);
        let b = time_once(work_fp, s + 5, fi);
        let c = time_once(work_branch, s + 11, bi);
        int_t.push(a);
        fp_t.push(b);
        br_t.push(c);
        mix_t.push(a + b + c);
    }
    let (si, sf, sb, sm) = (
        Stats::of(&int_t),
        Stats::of(&fp_t),
        Stats::of(&br_t),
        Stats::of(&mix_t),
    );
    let cv = sm.cv();
    let mut data = json!({
        "samples": sm.n,
        "mean_ns": ns_u64(sm.mean),
        "stddev_ns": ns_u64(sm.stddev),
        "cv": round_to(cv, 6),
        "int_avg_ns": ns_u64(si.mean),
        "fp_avg_ns": ns_u64(sf.mean),
        "branch_avg_ns": ns_u64(sb.mean),
        "int_stdev": ns_u64(si.stddev),
        "fp_stdev": ns_u64(sf.stddev),
        "branch_stdev": ns_u64(sb.stddev),
        "int_iterations": ii,
        "fp_iterations": fi,
        "branch_iterations": bi,
    });
    let passed = sm.mean > 0.0 && cv > 0.0;
    if !passed {
        data["fail_reason"] = json!("no_jitter");
    }
    (passed, data)
}

// ---------------------------------------------------------------------------------------------
// Check 6: anti-emulation (files only; nothing is executed)
// ---------------------------------------------------------------------------------------------

const DMI_FIELDS: [&str; 8] = [
    "product_name",
    "sys_vendor",
    "board_vendor",
    "bios_vendor",
    "board_name",
    "chassis_vendor",
    "product_version",
    "bios_version",
];

/// Lower-case substrings that mark a hypervisor or cloud VM in a DMI field.
const VM_DMI_STRINGS: [&str; 30] = [
    "vmware",
    "virtualbox",
    "innotek",
    "qemu",
    "kvm",
    "xen",
    "hyper-v",
    "hyperv",
    "virtual machine",
    "bochs",
    "seabios",
    "parallels",
    "bhyve",
    "amazon ec2",
    "google compute engine",
    "openstack",
    "digitalocean",
    "linode",
    "vultr",
    "hetzner vserver",
    "alibaba cloud",
    "ovirt",
    "rhev",
    "proxmox",
    "nutanix",
    "cloud hypervisor",
    "firecracker",
    "standard pc (",
    "virtual platform",
    "kubevirt",
];

/// VM strings found in one DMI field's content.
fn dmi_vm_matches(content: &str) -> Vec<&'static str> {
    let l = content.to_ascii_lowercase();
    let mut found: Vec<&'static str> = VM_DMI_STRINGS
        .iter()
        .copied()
        .filter(|s| l.contains(s))
        .collect();
    if l.contains("microsoft corporation")
        && l.contains("virtual")
        && !found.contains(&"virtual machine")
    {
        found.push("microsoft corporation virtual");
    }
    found
}

/// Container runtimes named in /proc/1/cgroup.
fn cgroup_container_markers(text: &str) -> Vec<&'static str> {
    const MARKERS: [&str; 7] = [
        "docker",
        "lxc",
        "kubepods",
        "containerd",
        "libpod",
        "podman",
        "garden",
    ];
    let l = text.to_ascii_lowercase();
    MARKERS.iter().copied().filter(|m| l.contains(m)).collect()
}

fn check_anti_emulation(cpuinfo: Option<&str>) -> (bool, Value) {
    let mut indicators: Vec<String> = Vec::new();
    let mut paths_checked: Vec<String> = Vec::new();

    // DMI strings. Microsoft's Hyper-V says "Microsoft Corporation" + "Virtual Machine" across
    // two fields, so the combined string is examined as well.
    let mut dmi_readable = 0usize;
    let mut combined = String::new();
    for field in DMI_FIELDS {
        let path = format!("/sys/class/dmi/id/{field}");
        if let Some(content) = read_text(&path) {
            dmi_readable += 1;
            paths_checked.push(path.clone());
            combined.push_str(content.trim());
            combined.push(' ');
            for m in dmi_vm_matches(&content) {
                indicators.push(format!("dmi:{field}:{m}"));
            }
        }
    }
    let lc = combined.to_ascii_lowercase();
    if lc.contains("microsoft corporation")
        && lc.contains("virtual")
        && !indicators.iter().any(|i| i.contains("virtual"))
    {
        indicators.push("dmi:microsoft corporation virtual".to_string());
    }

    // The CPUID hypervisor bit, as exposed in /proc/cpuinfo flags.
    let mut hypervisor_flag = false;
    if let Some(text) = cpuinfo {
        paths_checked.push("/proc/cpuinfo".to_string());
        hypervisor_flag = parse_cpuinfo(text).flags.iter().any(|f| f == "hypervisor");
        if hypervisor_flag {
            indicators.push("cpuinfo:hypervisor".to_string());
        }
    }

    // Container marker files.
    for marker in ["/.dockerenv", "/run/.containerenv"] {
        paths_checked.push(marker.to_string());
        if Path::new(marker).exists() {
            indicators.push(format!("container:{marker}"));
        }
    }
    if let Some(cg) = read_text("/proc/1/cgroup") {
        paths_checked.push("/proc/1/cgroup".to_string());
        for m in cgroup_container_markers(&cg) {
            indicators.push(format!("cgroup:{m}"));
        }
    }

    // Hypervisor nodes the kernel exposes.
    if Path::new("/proc/device-tree/hypervisor").exists() {
        let compat = read_text("/proc/device-tree/hypervisor/compatible")
            .map(|s| s.replace('\0', " ").trim().to_string())
            .unwrap_or_default();
        indicators.push(if compat.is_empty() {
            "device_tree:hypervisor".to_string()
        } else {
            format!("device_tree:hypervisor:{compat}")
        });
    }
    paths_checked.push("/proc/device-tree/hypervisor".to_string());
    if let Some(t) = read_text("/sys/hypervisor/type") {
        paths_checked.push("/sys/hypervisor/type".to_string());
        let t = t.trim().to_ascii_lowercase();
        if !t.is_empty() {
            indicators.push(format!("sys_hypervisor:{t}"));
        }
    }
    if Path::new("/proc/vz").exists() && !Path::new("/proc/bc").exists() {
        indicators.push("container:openvz".to_string());
    }
    if let Some(rel) = read_text("/proc/sys/kernel/osrelease") {
        paths_checked.push("/proc/sys/kernel/osrelease".to_string());
        if rel.to_ascii_lowercase().contains("microsoft") {
            indicators.push("kernel:wsl".to_string());
        }
    }

    // Environment markers set by container runtimes and orchestrators.
    for key in ["container", "KUBERNETES_SERVICE_HOST"] {
        if std::env::var_os(key).is_some() {
            indicators.push(format!("env:{key}"));
        }
    }

    indicators.dedup();
    let count = indicators.len();
    let mut data = json!({
        "vm_indicators": indicators,
        "indicator_count": count,
        "is_likely_vm": count > 0,
        "hypervisor_flag": hypervisor_flag,
        "dmi_fields_readable": dmi_readable,
        "paths_checked": paths_checked,
    });
    let passed = count == 0;
    if !passed {
        data["fail_reason"] = json!("vm_detected");
    }
    (passed, data)
}

// ---------------------------------------------------------------------------------------------
// Device and signals
// ---------------------------------------------------------------------------------------------

fn read_text(path: &str) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// MemTotal from /proc/meminfo in whole GiB, rounded to nearest (at least 1 when present).
fn parse_meminfo_gb(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let gib = (kb as f64 / (1024.0 * 1024.0)).round() as u64;
    Some(gib.max(1))
}

fn is_placeholder_serial(s: &str) -> bool {
    let l = s.trim().to_ascii_lowercase();
    l.is_empty()
        || l.chars().all(|c| c == '0' || c == ' ' || c == '-')
        || [
            "none",
            "to be filled by o.e.m.",
            "default string",
            "not specified",
            "not applicable",
            "system serial number",
            "0123456789",
            "n/a",
            "unknown",
        ]
        .contains(&l.as_str())
}

/// Hardware serial: DMI product/board/chassis serial if readable (usually root-only), else the
/// first 16 characters of the machine-id (what the Linux field miner sends), else "".
fn hardware_serial() -> String {
    for path in [
        "/sys/class/dmi/id/product_serial",
        "/sys/class/dmi/id/board_serial",
        "/sys/class/dmi/id/chassis_serial",
    ] {
        if let Some(s) = read_text(path) {
            let s = s.trim();
            if !is_placeholder_serial(s) {
                return s.to_string();
            }
        }
    }
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Some(s) = read_text(path) {
            let s = s.trim();
            if !s.is_empty() {
                return s.chars().take(16).collect();
            }
        }
    }
    String::new()
}

fn hostname() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Some(h) = read_text(path) {
            let h = h.trim();
            if !h.is_empty() {
                return h.to_string();
            }
        }
    }
    String::new()
}

fn collect_device(ci: &CpuInfo) -> Value {
    let arch = std::env::consts::ARCH;
    let cpu = cpu_brand(ci);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_gb = read_text("/proc/meminfo")
        .and_then(|t| parse_meminfo_gb(&t))
        .unwrap_or(0);
    json!({
        "family": family_for(arch),
        "arch": arch_class(arch, ci.cpu_line.as_deref()),
        "model": cpu,
        "cpu": cpu,
        "cores": cores,
        "memory_gb": memory_gb,
        "serial": hardware_serial(),
        "machine": hostname(),
    })
}

/// A MAC in the usual `aa:bb:cc:dd:ee:ff` form, lower-cased, unless it is all zeros.
fn normalize_mac(raw: &str) -> Option<String> {
    let m = raw.trim().to_ascii_lowercase();
    let parts: Vec<&str> = m.split(':').collect();
    let well_formed = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !well_formed || m == "00:00:00:00:00:00" {
        return None;
    }
    Some(m)
}

fn collect_signals() -> Value {
    let mut macs: Vec<String> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for entry in dir.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "lo" {
                continue;
            }
            let path = format!("/sys/class/net/{name}/address");
            if let Some(mac) = read_text(&path).as_deref().and_then(normalize_mac) {
                macs.push(mac);
            }
        }
    }
    macs.sort();
    macs.dedup();
    json!({"macs": macs, "hostname": hostname()})
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn report() -> &'static MachineReport {
        static R: OnceLock<MachineReport> = OnceLock::new();
        R.get_or_init(collect)
    }

    fn all_numbers_finite(v: &Value, path: &str) {
        match v {
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                assert!(f.is_finite(), "non-finite number at {path}: {n}");
            }
            Value::Null => panic!("null at {path} (a NaN/inf would serialize as null)"),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| all_numbers_finite(x, &format!("{path}[{i}]"))),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, x)| all_numbers_finite(x, &format!("{path}.{k}"))),
            _ => {}
        }
    }

    #[test]
    fn every_check_present_with_bool_and_data_object() {
        let checks = report().fingerprint["checks"]
            .as_object()
            .expect("checks object");
        assert_eq!(checks.len(), 6);
        for name in CHECK_NAMES {
            let c = checks
                .get(name)
                .unwrap_or_else(|| panic!("missing check {name}"));
            assert!(c["passed"].is_boolean(), "{name}.passed not bool");
            let data = c["data"]
                .as_object()
                .unwrap_or_else(|| panic!("{name}.data not object"));
            assert!(!data.is_empty(), "{name}.data empty");
        }
    }

    #[test]
    fn all_numbers_in_report_are_finite() {
        let r = report();
        all_numbers_finite(&r.fingerprint, "fingerprint");
        all_numbers_finite(&r.device, "device");
        assert!(r.entropy_score.is_finite() && r.entropy_score >= 0.0);
    }

    #[test]
    fn measured_checks_carry_their_metrics() {
        let checks = &report().fingerprint["checks"];
        let expect = [
            (
                "clock_drift",
                &["cv", "samples", "mean_ns", "stddev_ns"][..],
            ),
            (
                "instruction_jitter",
                &["cv", "samples", "mean_ns", "stddev_ns"][..],
            ),
            (
                "thermal_drift",
                &["drift_ratio", "cold_avg_ns", "hot_avg_ns"][..],
            ),
            (
                "simd_identity",
                &[
                    "arch",
                    "flag_count",
                    "has_sse",
                    "has_avx",
                    "has_neon",
                    "has_altivec",
                    "flags",
                ][..],
            ),
        ];
        for (name, keys) in expect {
            let data = &checks[name]["data"];
            for k in keys {
                assert!(data.get(*k).is_some(), "{name}.data.{k} missing: {data}");
            }
        }
        let cache = &checks["cache_timing"]["data"];
        if cache.get("error").is_none() {
            for k in [
                "l1_ns",
                "l2_ns",
                "l3_ns",
                "l2_l1_ratio",
                "l3_l2_ratio",
                "hierarchy_ratio",
            ] {
                assert!(cache[k].as_f64().is_some(), "cache_timing.data.{k} missing");
            }
        }
        let cd = &checks["clock_drift"]["data"];
        assert!(cd["samples"].as_u64().unwrap() >= 2);
        let cv = cd["cv"].as_f64().unwrap();
        assert_eq!(
            checks["clock_drift"]["passed"].as_bool().unwrap(),
            cv >= 0.0001
        );
    }

    #[test]
    fn anti_emulation_is_self_consistent() {
        let c = &report().fingerprint["checks"]["anti_emulation"];
        let d = &c["data"];
        let list = d["vm_indicators"].as_array().expect("vm_indicators list");
        assert!(list.iter().all(Value::is_string));
        assert_eq!(d["indicator_count"].as_u64().unwrap() as usize, list.len());
        let likely = d["is_likely_vm"].as_bool().unwrap();
        assert_eq!(likely, !list.is_empty());
        assert_eq!(c["passed"].as_bool().unwrap(), !likely);
    }

    #[test]
    fn all_passed_is_and_of_checks() {
        let fp = &report().fingerprint;
        let and = fp["checks"]
            .as_object()
            .unwrap()
            .values()
            .all(|c| c["passed"].as_bool().unwrap());
        assert_eq!(fp["all_passed"].as_bool().unwrap(), and);
    }

    #[test]
    fn device_and_signals_shape() {
        let r = report();
        for k in ["family", "arch", "model", "cpu", "serial", "machine"] {
            assert!(r.device[k].is_string(), "device.{k} not a string");
        }
        assert!(r.device["cores"].as_u64().unwrap() >= 1);
        assert!(r.device["memory_gb"].is_u64());
        assert_eq!(
            r.device["family"],
            json!(family_for(std::env::consts::ARCH))
        );
        let macs: Vec<&str> = r.signals["macs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        let mut sorted = macs.clone();
        sorted.sort();
        assert_eq!(macs, sorted);
        assert!(
            macs.iter()
                .all(|m| *m != "00:00:00:00:00:00" && m.len() == 17)
        );
        assert!(r.signals["hostname"].is_string());
    }

    #[test]
    fn collect_finishes_twice() {
        // No wall-clock assertion: only that a second full run completes and is well-formed.
        let r = collect();
        assert!(r.fingerprint["all_passed"].is_boolean());
    }

    #[test]
    fn arch_classes() {
        assert_eq!(arch_class("x86_64", None), "modern");
        assert_eq!(arch_class("aarch64", None), "aarch64");
        assert_eq!(
            arch_class("powerpc", Some("7447A, altivec supported")),
            "g4"
        );
        assert_eq!(arch_class("powerpc", Some("7455, altivec supported")), "g4");
        assert_eq!(
            arch_class("powerpc64", Some("PPC970FX, altivec supported")),
            "g5"
        );
        assert_eq!(arch_class("powerpc", Some("750CXe")), "g3");
        assert_eq!(
            arch_class("powerpc64", Some("POWER8 (raw), altivec supported")),
            "power8"
        );
        assert_eq!(
            arch_class("powerpc64", Some("POWER9 (raw), altivec supported")),
            "powerpc64"
        );
        assert_eq!(arch_class("powerpc", None), "powerpc");
        assert_eq!(arch_class("riscv64", None), "riscv64");
        assert_eq!(family_for("powerpc64"), "powerpc");
    }

    #[test]
    fn cpuinfo_parsing_per_architecture() {
        let x86 = "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7\nflags\t\t: fpu sse sse2 avx2 hypervisor\n";
        let ci = parse_cpuinfo(x86);
        assert_eq!(cpu_brand(&ci), "Intel(R) Core(TM) i7");
        let (ok, d) = simd_from_cpuinfo("x86_64", &ci);
        assert!(ok);
        assert_eq!(d["has_sse"], json!(true));
        assert_eq!(d["has_avx"], json!(true));
        assert_eq!(d["has_neon"], json!(false));
        assert_eq!(d["flag_count"], json!(5));

        let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n";
        let ci = parse_cpuinfo(arm);
        let (ok, d) = simd_from_cpuinfo("aarch64", &ci);
        assert!(ok);
        assert_eq!(d["has_neon"], json!(true));
        assert_eq!(d["has_sse"], json!(false));
        assert_eq!(cpu_brand(&ci), "ARM implementer 0x41 part 0xd08");

        let ppc = "processor\t: 0\ncpu\t\t: 7447A, altivec supported\nclock\t\t: 1333MHz\n";
        let ci = parse_cpuinfo(ppc);
        let (ok, d) = simd_from_cpuinfo("powerpc", &ci);
        assert!(ok);
        assert_eq!(d["has_altivec"], json!(true));
        assert_eq!(d["x86_features"], json!([]));
        assert_eq!(cpu_brand(&ci), "7447A, altivec supported");

        let (ok, d) = simd_from_cpuinfo("x86_64", &parse_cpuinfo(""));
        assert!(!ok);
        assert_eq!(d["flag_count"], json!(0));
    }

    #[test]
    fn vm_string_matching() {
        assert!(dmi_vm_matches("QEMU").contains(&"qemu"));
        assert!(dmi_vm_matches("VMware, Inc.").contains(&"vmware"));
        assert!(dmi_vm_matches("innotek GmbH").contains(&"innotek"));
        assert!(dmi_vm_matches("Amazon EC2").contains(&"amazon ec2"));
        assert!(!dmi_vm_matches("Microsoft Corporation Virtual Machine").is_empty());
        assert!(dmi_vm_matches("Dell Inc.").is_empty());
        assert!(
            dmi_vm_matches("Microsoft Corporation").is_empty(),
            "a Surface is real hardware"
        );
        assert_eq!(
            cgroup_container_markers("12:pids:/docker/abc\n"),
            vec!["docker"]
        );
        assert!(cgroup_container_markers("0::/kubepods/burstable/pod1").contains(&"kubepods"));
        assert!(cgroup_container_markers("0::/\n1:cpu:/\n").is_empty());
    }

    #[test]
    fn helpers() {
        assert_eq!(
            parse_meminfo_gb("MemTotal:       24554788 kB\nMemFree: 1 kB\n"),
            Some(23)
        );
        assert_eq!(parse_meminfo_gb("MemTotal: 524288 kB\n"), Some(1));
        assert_eq!(parse_meminfo_gb("nothing"), None);
        assert!(is_placeholder_serial("To Be Filled By O.E.M."));
        assert!(is_placeholder_serial("  "));
        assert!(!is_placeholder_serial("C02XK0ABJGH5"));
        assert_eq!(
            normalize_mac("02:42:AC:11:00:02\n"),
            Some("02:42:ac:11:00:02".to_string())
        );
        assert_eq!(normalize_mac("00:00:00:00:00:00"), None);
        assert_eq!(normalize_mac("00:00:00:00"), None);
        let s = Stats::of(&[1.0, 2.0, 3.0]);
        assert!((s.mean - 2.0).abs() < 1e-12 && (s.stddev - 1.0).abs() < 1e-12);
        assert_eq!(Stats::of(&[5.0, 5.0]).cv(), 0.0);
        assert_eq!(ratio(1.0, 0.0), 0.0);
        assert_eq!(round_to(f64::NAN, 3), 0.0);
        assert_eq!(sanitize(json!({"a": [1.5]})), json!({"a": [1.5]}));
    }

    #[test]
    fn pointer_chase_is_a_single_cycle() {
        let buf = build_chase(64 * 100, 42).unwrap();
        let lines = buf.len() / LINE_WORDS;
        let mut seen = vec![false; lines];
        let mut p = 0usize;
        for _ in 0..lines {
            assert_eq!(p % LINE_WORDS, 0);
            assert!(!seen[p / LINE_WORDS], "cycle shorter than {lines}");
            seen[p / LINE_WORDS] = true;
            p = buf[p];
        }
        assert_eq!(p, 0);
        assert!(seen.iter().all(|&s| s));
    }
}
