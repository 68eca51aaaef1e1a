//! Criterion benchmarks of the consensus hot paths (run with `cargo bench -p rustchain-protocol`,
//! or `scripts/bench.sh` for these plus the node's durable HTTP throughput).
//!
//! * `attestation/validate`: what a node does per `/attest/submit` body before it writes:
//!   `parse_submission` (canonical JSON, shape, Ed25519 `verify_strict`) then `evaluate`
//!   (fingerprint rules, multiplier), on a ~2 KB Linux-miner body. Target >= 20,000/s per core.
//!   The `attestation/part/*` benches split that cost (JSON only, signature only, evaluate only).
//! * `settlement/settle+hash/100000`: `settle` over 100,000 wallets and `Settlement::hash`
//!   (CBOR + SHA-256). Target < 50 ms.
//! * `enrollment/enroll/100000`: `enroll` over 100,000 claims (extra information).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::ChainSpec;
use protocol::attestation::{self, sign_request};
use protocol::canonical_json;
use protocol::crypto::{self, Keypair};
use protocol::enrollment::{self, Binding, Claim};
use protocol::settlement;
use serde_json::json;

/// A signed `/attest/submit` body shaped like the one `rustchain attest` sends from an x86-64
/// Linux box: device, signals, and the six fingerprint checks with their measured data.
fn linux_miner_body(key: &Keypair, wallet: &str, nonce: &str) -> Vec<u8> {
    // The first ten /proc/cpuinfo flags (a full report lists up to 64, ~3.3 KB in all).
    let flags = ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic"];
    let x86 = ["sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "fma", "f16c"];
    let mut req = json!({
        "miner": wallet,
        "miner_id": format!("{wallet}-ryzen"),
        "nonce": nonce,
        "report": {
            "nonce": nonce,
            "commitment": "3f9a0c4be1d27d5a6f0b9e8c7d6a5b4c3f2e1d0c9b8a79685746352413021f0e",
            "derived": {},
            "entropy_score": 0.734512,
        },
        "device": {
            "family": "x86_64", "arch": "modern", "model": "AMD Ryzen 7 5800X 8-Core Processor",
            "cpu": "AMD Ryzen 7 5800X 8-Core Processor", "cores": 16, "memory_gb": 32,
            "serial": format!("SN-{wallet}"), "machine": "ryzen-desk",
        },
        "signals": {"macs": ["2c:f0:5d:12:34:56", "a8:a1:59:65:43:21"], "hostname": "ryzen-desk"},
        "fingerprint": {
            "all_passed": true,
            "checks": {
                "clock_drift": {"passed": true, "data": {
                    "samples": 200, "inner_iterations": 5000, "mean_ns": 231877, "stddev_ns": 4123,
                    "stdev_ns": 4123, "min_ns": 226001, "max_ns": 262340, "cv": 0.017781, "drift_stdev": 5012}},
                "cache_timing": {"passed": true, "data": {
                    "arch": "x86_64", "l1_ns": 1.212, "l2_ns": 3.874, "l3_ns": 11.52, "l2_l1_ratio": 3.196,
                    "l3_l2_ratio": 2.974, "l3_l1_ratio": 9.505, "hierarchy_ratio": 9.505, "l1_bytes": 16384,
                    "l2_bytes": 262144, "l3_bytes": 8388608, "loads_per_trial": 1000000, "trials": 5}},
                "simd_identity": {"passed": true, "data": {
                    "arch": "x86_64", "flag_source": "/proc/cpuinfo", "flag_count": 118, "simd_flags_count": 118,
                    "has_sse": true, "has_avx": true, "has_neon": false, "has_altivec": false, "has_vsx": false,
                    "x86_features": x86, "sample_flags": flags}},
                "thermal_drift": {"passed": true, "data": {
                    "samples": 50, "inner_iterations": 20000, "load_ms": 1500.3, "load_rounds": 212,
                    "cold_avg_ns": 512344, "hot_avg_ns": 519870, "cold_stdev": 9121, "hot_stdev": 10442,
                    "drift_ratio": 1.0147, "thermal_zone_count": 2, "max_temp_c_before": 41.25, "max_temp_c_after": 55.5, "temp_delta_c": 14.25}},
                "instruction_jitter": {"passed": true, "data": {
                    "samples": 100, "mean_ns": 88412, "stddev_ns": 2311, "cv": 0.026139, "int_avg_ns": 30110,
                    "fp_avg_ns": 31544, "branch_avg_ns": 26758}},
                "anti_emulation": {"passed": true, "data": {
                    "vm_indicators": [], "indicator_count": 0, "is_likely_vm": false, "hypervisor_flag": false,
                    "dmi_fields_readable": 6, "paths_checked": 14}},
            },
        },
        "warthog": null,
    });
    sign_request(key, req.as_object_mut().expect("object"));
    serde_json::to_vec(&req).expect("serializes")
}

fn bench_attestation(c: &mut Criterion) {
    let spec = ChainSpec::builtin("devnet").expect("devnet spec");
    let key = Keypair::from_seed(&[42; 32]);
    let nonce = "00000000006a1b2c3d4e5f6071829304a5b6c7d8e9f00112233445566778899aa";
    let body = linux_miner_body(&key, "RTC56475aa75463474c0285df5dbf2bcab73da65135", nonce);
    let slot = 1_000_000;
    // The body must be valid and pass: otherwise we would be timing an early exit.
    let sub = attestation::parse_submission(&body).expect("the benchmark body is valid");
    let eval = attestation::evaluate(&spec, &sub, slot);
    assert!(eval.verdict.passed, "benchmark body must pass the fingerprint rules: {:?}", eval.verdict.reasons);
    eprintln!("attestation body: {} bytes (canonical signed part {} bytes)", body.len(), sub.canonical.len());

    let mut g = c.benchmark_group("attestation");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("validate", |b| {
        b.iter(|| {
            let sub = attestation::parse_submission(black_box(&body)).expect("valid");
            black_box(attestation::evaluate(&spec, &sub, slot))
        })
    });
    // The same work split into its parts, to see where the time goes.
    g.bench_function("part/json_parse+canonicalize", |b| {
        b.iter(|| black_box(canonical_json::parse(black_box(&body)).expect("json").to_canonical()))
    });
    let msg = sub.signed_message();
    g.bench_function("part/ed25519_verify_strict", |b| {
        b.iter(|| crypto::verify(black_box(&sub.public_key), black_box(&msg), black_box(&sub.signature)).expect("verifies"))
    });
    // What the signature check is made of: point decompression of the public key, then the
    // verification proper (strict, as the protocol requires, and the lax one for comparison).
    g.bench_function("part/ed25519_pubkey_decompress", |b| b.iter(|| crypto::public_key(black_box(&sub.public_key)).expect("valid key")));
    let vk = crypto::public_key(&sub.public_key).expect("valid key");
    let sig = ed25519_dalek::Signature::from_bytes(&sub.signature);
    g.bench_function("part/ed25519_verify_strict_prepared_key", |b| {
        b.iter(|| black_box(&vk).verify_strict(black_box(&msg), black_box(&sig)).expect("verifies"))
    });
    g.bench_function("part/ed25519_verify_lax_prepared_key", |b| {
        b.iter(|| ed25519_dalek::Verifier::verify(black_box(&vk), black_box(&msg), black_box(&sig)).expect("verifies"))
    });
    g.bench_function("part/evaluate", |b| b.iter(|| black_box(attestation::evaluate(&spec, black_box(&sub), slot))));
    g.finish();
}

fn wallets(n: usize) -> Vec<String> {
    // RTC addresses, like real wallets: 43 characters.
    (0..n).map(|i| crypto::address_of(&crypto::sha256(&(i as u64).to_be_bytes()))).collect()
}

fn bench_settlement(c: &mut Criterion) {
    const N: usize = 100_000;
    let spec = ChainSpec::builtin("mainnet").expect("mainnet spec");
    // Weights between 0.8x and 3.5x, spread deterministically.
    let weights: BTreeMap<String, u64> = wallets(N)
        .into_iter()
        .enumerate()
        .map(|(i, w)| (w, 800_000_000 + (i as u64 * 2_654_435_761) % 2_700_000_000))
        .collect();
    assert_eq!(weights.len(), N);
    let s = settlement::settle(&spec, 355, [0; 32], &weights).expect("settles");
    assert_eq!(s.distributed_urtc, spec.epoch_pot_urtc);
    eprintln!("settlement of {N} wallets: {} canonical bytes", s.canonical_bytes().len());

    let mut g = c.benchmark_group("settlement");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("settle+hash/100000", |b| {
        b.iter(|| {
            let s = settlement::settle(&spec, black_box(355), [0; 32], black_box(&weights)).expect("settles");
            black_box(s.hash())
        })
    });
    g.bench_function("part/settle/100000", |b| {
        b.iter(|| black_box(settlement::settle(&spec, black_box(355), [0; 32], black_box(&weights)).expect("settles")))
    });
    g.bench_function("part/hash/100000", |b| b.iter(|| black_box(black_box(&s).hash())));
    g.finish();
}

fn bench_enrollment(c: &mut Criterion) {
    const N: usize = 100_000;
    // 100,000 claims: 80,000 wallets (a fifth attest twice), most with a serial, 1,000 of which
    // are bound to another wallet (a duplicate-hardware claim that must not enroll).
    let names = wallets(N * 4 / 5);
    let claims: Vec<Claim> = (0..N)
        .map(|i| {
            let wallet = names[i % names.len()].clone();
            let serial = (i % 10 != 0).then(|| format!("{:040x}", i % names.len()));
            Claim { wallet, slot: (i as u64 * 7919) % 600, id: crypto::sha256(&(i as u64).to_le_bytes()), weight: 1_000_000_000 + i as u64, serial_hash: serial }
        })
        .collect();
    let mut bindings: BTreeMap<String, Binding> = BTreeMap::new();
    for c in &claims {
        enrollment::bind_serial(&mut bindings, c);
    }
    for (i, b) in bindings.values_mut().enumerate().take(1_000) {
        b.wallet = format!("someone-else-{i}");
    }
    let enrolled = enrollment::enroll(&claims, &bindings);
    eprintln!("enrollment: {N} claims -> {} wallets enrolled", enrolled.len());

    let mut g = c.benchmark_group("enrollment");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("enroll/100000", |b| b.iter(|| black_box(enrollment::enroll(black_box(&claims), black_box(&bindings)))));
    g.bench_function("enroll+weights/100000", |b| {
        b.iter(|| black_box(enrollment::weights(&enrollment::enroll(black_box(&claims), black_box(&bindings)))))
    });
    g.finish();
}

criterion_group!(benches, bench_attestation, bench_settlement, bench_enrollment);
criterion_main!(benches);
