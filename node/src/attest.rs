//! `rustchain attest`: measure this machine, sign the report the way field miners do, and submit
//! it to a node (challenge, then submit).

use std::path::PathBuf;

use anyhow::{Context, bail};
use protocol::attestation::sign_request;
use protocol::crypto::Keypair;
use serde_json::{Value, json};

use crate::collect;
use crate::keys;

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
    /// Miner id of this machine. [default: <hostname>-<first 8 hex of the public key>]
    #[arg(long)]
    pub miner_id: Option<String>,
    /// Print the signed body instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Build a signed `/attest/submit` body for a measured machine.
pub fn signed_body(key: &Keypair, wallet: &str, miner_id: &str, nonce: &str, report: &collect::MachineReport) -> Value {
    let commitment = hex::encode(protocol::crypto::sha256(
        format!("{nonce}|{wallet}|{}", report.fingerprint).as_bytes(),
    ));
    let mut body = json!({
        "miner": wallet,
        "miner_id": miner_id,
        "nonce": nonce,
        "report": {"nonce": nonce, "commitment": commitment, "derived": {}, "entropy_score": report.entropy_score},
        "device": report.device,
        "signals": report.signals,
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
    let host = report.signals.get("hostname").and_then(Value::as_str).unwrap_or("miner").to_owned();
    let miner_id = args.miner_id.unwrap_or_else(|| {
        let clean: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(64).collect();
        format!("{}-{}", if clean.is_empty() { "miner" } else { &clean }, &hex::encode(key.public())[..8])
    });
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
