//! `rustchain attest`: measure this machine, sign the report the way field miners do, and submit
//! it to a node (challenge, then submit).

use std::path::PathBuf;

use anyhow::{Context, bail};
use protocol::attestation::sign_request;
use protocol::crypto::Keypair;
use serde_json::{Value, json};

use crate::collect;
use rustchain_node::keys;

#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// Node HTTP API to attest to.
    #[arg(long, env = "RUSTCHAIN_NODE_URL", default_value = "http://127.0.0.1:8099")]
    pub node: String,
    /// Miner key file (from `rustchain keygen`).
    #[arg(long, env = "RUSTCHAIN_MINER_KEY", value_name = "FILE")]
    pub key: PathBuf,
    /// Wallet that earns the rewards: this key's RTC address, or a free-form name (which belongs
    /// to the first key that earns for it). Another key's RTC address is refused (403
    /// KEY_MISMATCH). [default: the key's RTC address]
    #[arg(long)]
    pub wallet: Option<String>,
    /// Miner id of this machine, sent as is (every node stores and replicates it, so it should not
    /// name the machine). [default: miner-<first 8 hex of the public key>]
    #[arg(long)]
    pub miner_id: Option<String>,
    /// Print the signed body instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
}

/// An identifier of this machine as peers see it. Every node stores and replicates the signed body
/// forever, and peers need all of it to check the miner's signature, so the hardware serial, the
/// MAC addresses and the host name are sent hashed: what the node needs of them (one machine, one
/// serial; the same machine next time) holds for the hash as for the value. Case and surrounding
/// space do not count (the node compares serials so). Empty stays empty. Not a secret: someone
/// who guesses a value (a MAC's 24 vendor-free bits, a host name) can check the guess.
pub fn private_identifier(value: &str) -> String {
    let value = value.trim().to_uppercase();
    if value.is_empty() {
        return String::new();
    }
    let digest = protocol::crypto::sha256_parts("rustchain/private-identifier/v1", &[value.as_bytes()]);
    format!("h:{}", &hex::encode(digest)[..32])
}

/// The report's device and signals with the serial, MAC addresses and host names hashed.
fn private_identifiers(report: &collect::MachineReport) -> (Value, Value) {
    let (mut device, mut signals) = (report.device.clone(), report.signals.clone());
    for key in ["serial", "machine"] {
        if let Some(Value::String(v)) = device.get_mut(key) {
            *v = private_identifier(v);
        }
    }
    if let Some(Value::String(v)) = signals.get_mut("hostname") {
        *v = private_identifier(v);
    }
    if let Some(Value::Array(macs)) = signals.get_mut("macs") {
        for mac in macs.iter_mut() {
            if let Value::String(v) = mac {
                *v = private_identifier(v);
            }
        }
    }
    (device, signals)
}

/// Build a signed `/attest/submit` body for a measured machine (its identifiers hashed:
/// [`private_identifier`]).
pub fn signed_body(key: &Keypair, wallet: &str, miner_id: &str, nonce: &str, report: &collect::MachineReport) -> Value {
    let commitment = hex::encode(protocol::crypto::sha256(
        format!("{nonce}|{wallet}|{}", report.fingerprint).as_bytes(),
    ));
    let (device, signals) = private_identifiers(report);
    let mut body = json!({
        "miner": wallet,
        "miner_id": miner_id,
        "nonce": nonce,
        "report": {"nonce": nonce, "commitment": commitment, "derived": {}, "entropy_score": report.entropy_score},
        "device": device,
        "signals": signals,
        "fingerprint": report.fingerprint,
        "warthog": null,
    });
    sign_request(key, body.as_object_mut().expect("object"));
    body
}

pub async fn run(args: AttestArgs) -> anyhow::Result<()> {
    let key = keys::read_key(&args.key)?;
    let wallet = args.wallet.unwrap_or_else(|| key.address());
    let report = tokio::task::spawn_blocking(collect::collect).await?;
    let miner_id = args.miner_id.unwrap_or_else(|| format!("miner-{}", &hex::encode(key.public())[..8]));
    let fp_ok = report.fingerprint.get("all_passed").and_then(Value::as_bool).unwrap_or(false);
    eprintln!("measured this machine: fingerprint all_passed={fp_ok}");
    if let Some(vm) = report.fingerprint.pointer("/checks/anti_emulation/data/vm_indicators") {
        eprintln!("vm indicators: {vm}");
    }
    let client = reqwest::Client::new();
    let base = args.node.trim_end_matches('/');
    let challenge: Value = client
        .post(format!("{base}/attest/challenge"))
        .json(&json!({"miner_id": miner_id}))
        .send()
        .await
        .with_context(|| format!("contacting node {base}"))?
        .json()
        .await?;
    let nonce = challenge.get("nonce").and_then(Value::as_str).context("challenge response has no nonce")?;
    let body = signed_body(&key, &wallet, &miner_id, nonce, &report);
    if args.dry_run {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let resp = client.post(format!("{base}/attest/submit")).json(&body).send().await?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if !status.is_success() {
        bail!("node refused the attestation ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serial, MACs and host name never leave the machine in the clear; the body still verifies,
    /// still binds one serial (the same hash every time), and different serials stay different.
    #[test]
    fn a_signed_body_carries_no_raw_identifier_and_still_verifies() {
        let report = |serial: &str| collect::MachineReport {
            device: json!({"family": "x86_64", "arch": "modern", "model": "box", "cpu": "Some CPU", "cores": 4, "memory_gb": 8,
                           "serial": serial, "machine": "alice-laptop"}),
            signals: json!({"macs": ["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02"], "hostname": "alice-laptop"}),
            fingerprint: json!({"all_passed": false, "checks": {"clock_drift": {"passed": false, "data": {}}}}),
            entropy_score: 0.01,
        };
        let key = Keypair::from_seed(&[5; 32]);
        let body = signed_body(&key, &key.address(), "miner-1", "nonce-1", &report("C02XK0ABJGH5"));
        let text = body.to_string();
        for raw in ["C02XK0ABJGH5", "aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02", "alice-laptop"] {
            assert!(!text.contains(raw), "{raw} sent in the clear: {text}");
        }
        let sub = protocol::attestation::parse_submission(text.as_bytes()).unwrap();
        let serial = protocol::attestation::Device::from_body(&sub.body).serial_hash().expect("a serial is still reported");
        let again = signed_body(&key, &key.address(), "miner-1", "nonce-2", &report("C02XK0ABJGH5"));
        let again = protocol::attestation::parse_submission(again.to_string().as_bytes()).unwrap();
        assert_eq!(protocol::attestation::Device::from_body(&again.body).serial_hash().unwrap(), serial, "the same serial must bind the same way every time");
        let other = signed_body(&key, &key.address(), "miner-1", "nonce-3", &report("C02XK0ABJGH6"));
        let other = protocol::attestation::parse_submission(other.to_string().as_bytes()).unwrap();
        assert_ne!(protocol::attestation::Device::from_body(&other.body).serial_hash().unwrap(), serial);
        assert_eq!(private_identifier(""), "", "an unreadable serial stays empty (no serial binding)");
        assert_eq!(private_identifier(" c02xk0abjgh5 "), private_identifier("C02XK0ABJGH5"), "compared as the node compares serials");
    }
}
