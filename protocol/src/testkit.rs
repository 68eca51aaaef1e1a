//! Fixtures for benchmarks and load generators (not used by the node): a realistic signed
//! `/attest/submit` body, shaped like what `rustchain attest` sends from an x86-64 Linux box
//! (device, signals, and the six fingerprint checks with their measured data; ~2.4 KB).

use serde_json::json;

use crate::attestation::sign_request;
use crate::crypto::{Keypair, sha256};

/// The body of miner number `i` (which varies the commitment, serial, MAC, hostname and the
/// measurements), signed by `key`, for the wallet `key.address()`. Each `i` below 3,200,000 is its
/// own machine: the five measured fields are scaled by 1.1^d for the base-20 digits d of `i`, so
/// no two of them have colliding entropy profiles (PROTOCOL.md §7.1); `i = 0` is vector E1.
pub fn linux_miner_body(key: &Keypair, i: usize, miner_id: &str, nonce: &str, serial_prefix: &str) -> Vec<u8> {
    let wallet = key.address();
    // The first ten /proc/cpuinfo flags (a full report lists up to 64, ~3.3 KB in all).
    let flags = ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic"];
    let x86 = ["sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "fma", "f16c"];
    let jitter = (i % 997) as f64 / 1e6;
    let spread = |digit: u32| 1.1f64.powi(((i / 20usize.pow(digit)) % 20) as i32);
    let commitment = hex::encode(sha256(format!("{nonce}|{wallet}|{i}").as_bytes()));
    let pk = key.public();
    let mut req = json!({
        "miner": wallet,
        "miner_id": miner_id,
        "nonce": nonce,
        "report": {"nonce": nonce, "commitment": commitment, "derived": {}, "entropy_score": 0.7 + jitter},
        "device": {
            "family": "x86_64", "arch": "modern", "model": "AMD Ryzen 7 5800X 8-Core Processor",
            "cpu": "AMD Ryzen 7 5800X 8-Core Processor", "cores": 16, "memory_gb": 32,
            "serial": format!("{serial_prefix}{:02x}{:02x}{i:08}", pk[0], pk[1]), "machine": format!("box-{i}"),
        },
        "signals": {"macs": [format!("2c:f0:5d:{:02x}:{:02x}:{:02x}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)],
                    "hostname": format!("box-{i}")},
        "fingerprint": {
            "all_passed": true,
            "checks": {
                "clock_drift": {"passed": true, "data": {
                    "samples": 200, "inner_iterations": 5000, "mean_ns": 231877, "stddev_ns": 4123,
                    "stdev_ns": 4123, "min_ns": 226001, "max_ns": 262340, "cv": 0.017781 * spread(0) + jitter, "drift_stdev": 5012}},
                "cache_timing": {"passed": true, "data": {
                    "arch": "x86_64", "l1_ns": 1.212 * spread(4), "l2_ns": 3.874 * spread(1), "l3_ns": 11.52, "l2_l1_ratio": 3.196,
                    "l3_l2_ratio": 2.974, "l3_l1_ratio": 9.505, "hierarchy_ratio": 9.505, "l1_bytes": 16384,
                    "l2_bytes": 262144, "l3_bytes": 8388608, "loads_per_trial": 1000000, "trials": 5}},
                "simd_identity": {"passed": true, "data": {
                    "arch": "x86_64", "flag_source": "/proc/cpuinfo", "flag_count": 118, "simd_flags_count": 118,
                    "has_sse": true, "has_avx": true, "has_neon": false, "has_altivec": false, "has_vsx": false,
                    "x86_features": x86, "sample_flags": flags}},
                "thermal_drift": {"passed": true, "data": {
                    "samples": 50, "inner_iterations": 20000, "load_ms": 1500.3, "load_rounds": 212,
                    "cold_avg_ns": 512344, "hot_avg_ns": 519870, "cold_stdev": 9121, "hot_stdev": 10442,
                    "drift_ratio": 1.0147 * spread(3), "thermal_zone_count": 2, "max_temp_c_before": 41.25, "max_temp_c_after": 55.5, "temp_delta_c": 14.25}},
                "instruction_jitter": {"passed": true, "data": {
                    "samples": 100, "mean_ns": 88412, "stddev_ns": 2311, "cv": 0.026139 * spread(2), "int_avg_ns": 30110,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::parse_submission;

    #[test]
    fn fixture_machines_have_distinct_entropy_profiles() {
        use crate::entropy::{Profile, ProfileIndex};
        let key = Keypair::from_seed(&[7; 32]);
        let mut index = ProfileIndex::default();
        for i in (0..8000).step_by(7).chain([19, 20, 399, 400, 7999, 8000, 159_999, 160_000, 2_550_000, 3_199_999]) {
            let body = crate::canonical_json::parse(&linux_miner_body(&key, i, "m", "n", "SN")).unwrap();
            let p = Profile::of_body(&body);
            assert!(p.is_complete());
            assert!(index.collision(&p, &i.to_string()).is_none(), "machine {i} collides");
            index.insert(p, i.to_string());
        }
    }

    #[test]
    fn the_fixture_is_a_valid_signed_submission_that_passes_the_fingerprint() {
        let key = Keypair::from_seed(&[7; 32]);
        let nonce = "ab".repeat(32);
        let body = linux_miner_body(&key, 42, "fixture-42", &nonce, "SN");
        let sub = parse_submission(&body).expect("parses and verifies");
        assert_eq!(sub.miner, key.address());
        let eval = crate::attestation::evaluate(&crate::spec::ChainSpec::builtin("devnet").unwrap(), &sub, 0);
        assert!(eval.verdict.passed, "{:?}", eval.verdict.reasons);
        // Another miner number is another body.
        assert_ne!(body, linux_miner_body(&key, 43, "fixture-42", &nonce, "SN"));
    }
}
