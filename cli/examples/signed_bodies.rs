//! Load-test helper for `scripts/load-test.sh`: fetches challenge nonces from a running node and
//! writes that many distinct signed `/attest/submit` bodies (one miner each), one JSON per line.
//!
//!     cargo run --release -p rustchain-cli --example signed_bodies -- URL COUNT OUT [SEED]

use std::io::Write;

use protocol::attestation::sign_request;
use protocol::crypto::Keypair;
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 4, "usage: signed_bodies URL COUNT OUT [SEED]");
    let (url, count, out) = (args[1].trim_end_matches('/'), args[2].parse::<u32>()?, &args[3]);
    let seed: u32 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let client = reqwest::blocking::Client::new();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for i in 0..count {
        let n = seed.wrapping_mul(1_000_003).wrapping_add(i);
        let challenge: Value = client.post(format!("{url}/attest/challenge")).body("{}").send()?.json()?;
        let nonce = challenge["nonce"].as_str().ok_or_else(|| anyhow::anyhow!("no nonce: {challenge}"))?;
        let mut key_seed = [0u8; 32];
        key_seed[..4].copy_from_slice(&n.to_be_bytes());
        key_seed[31] = 0x77;
        let key = Keypair::from_seed(&key_seed);
        let wallet = format!("load-{n:08}");
        let mut body = json!({
            "miner": wallet, "miner_id": format!("{wallet}-box"), "nonce": nonce,
            "report": {"nonce": nonce, "commitment": "00ff", "derived": {}, "entropy_score": 0.033222},
            "device": {"family": "PowerPC", "arch": "G4", "model": "PowerMac3,6", "cpu": "PowerPC 7447A", "cores": 1,
                       "memory_gb": 1, "serial": "", "machine": "load"},
            "signals": {"macs": ["00:0a:95:9d:68:16"], "hostname": format!("{wallet}-host")},
            "fingerprint": {"all_passed": true, "checks": {
                "clock_drift": {"passed": true, "data": {"mean_ns": 1843211, "stdev_ns": 61234, "cv": 0.033222}},
                "cache_timing": {"passed": true, "data": {"l2_l1_ratio": 2.19, "l3_l2_ratio": 2.306}},
                "simd_identity": {"passed": true, "data": {"arch": "ppc", "has_altivec": true, "simd_flags_count": 1}},
                "thermal_drift": {"passed": true, "data": {"drift_ratio": 0.9836}},
                "instruction_jitter": {"passed": true, "data": {"int_stdev": 21456}},
                "anti_emulation": {"passed": true, "data": {"vm_indicators": [], "indicator_count": 0, "is_likely_vm": false}}
            }},
            "warthog": null,
        });
        sign_request(&key, body.as_object_mut().expect("object"));
        serde_json::to_writer(&mut file, &body)?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    Ok(())
}
