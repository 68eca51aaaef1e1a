//! `rustchain wallet balance | history | send`: the wallet commands that talk to a node over HTTP.
//! `send` asks the node for the wallet's last nonce and its network and slot, signs the next
//! nonce (the slot's start in ms) for that network in the field format (`/wallet/transfer/signed`,
//! fee 0), submits it, prints the tx hash and follows it to its
//! certified outcome.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::crypto::Keypair;
use protocol::spec::URTC_PER_RTC;
use protocol::transfer::{TransferOrder, amount_urtc};
use serde_json::Value;

use rustchain_node::config::HumanDuration;

#[derive(Debug, Clone, clap::Args)]
pub struct NodeArg {
    /// The node's HTTP API.
    #[arg(long, env = "RUSTCHAIN_NODE_URL", default_value = "http://127.0.0.1:8099")]
    pub node: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// The receiving address.
    #[arg(long)]
    pub to: String,
    /// Amount in RTC, e.g. 0.25 (settled as floor(amount * 1e6) uRTC; at least 0.000001).
    #[arg(long)]
    pub amount: f64,
    /// Free text, signed with the transfer (at most 512 characters).
    #[arg(long, default_value = "")]
    pub memo: String,
    /// The network the transfer is signed for (its chain spec's network_id); the transfer always
    /// carries one, by default the node's. Given, it must be the node's network.
    #[arg(long)]
    pub chain_id: Option<String>,
    /// Print the tx hash and return without waiting for the epoch to be certified.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to follow the transfer before giving up (it stays pending on the network).
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub wait_timeout: HumanDuration,
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(Duration::from_secs(15)).build().context("building the HTTP client")
}

/// GET a JSON document; a 4xx/5xx answer becomes an error carrying the node's message.
async fn get_json(c: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let resp = c.get(url).send().await.with_context(|| format!("GET {url}"))?;
    answer(resp).await
}

async fn answer(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.context("the node's answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "the node refused ({status}): {} [{}]",
            body["error"].as_str().unwrap_or("no message"),
            body["code"].as_str().unwrap_or("?")
        );
    }
    Ok(body)
}

fn rtc(urtc: u64) -> String {
    format!("{}.{:06}", urtc / URTC_PER_RTC, urtc % URTC_PER_RTC)
}

pub async fn balance(node: &NodeArg, address: &str) -> anyhow::Result<()> {
    let b = get_json(&client()?, &format!("{}/wallet/balance?address={address}", node.node)).await?;
    let n = |k: &str| b[k].as_u64().unwrap_or(0);
    println!("address:      {address}");
    println!("confirmed:    {} RTC", rtc(n("amount_i64")));
    println!("pending in:   {} RTC", rtc(n("pending_in_i64")));
    println!("pending out:  {} RTC", rtc(n("pending_out_i64")));
    println!("spendable:    {} RTC", rtc(n("amount_i64").saturating_sub(n("pending_out_i64"))));
    Ok(())
}

pub async fn history(node: &NodeArg, address: &str, limit: usize, offset: usize) -> anyhow::Result<()> {
    let url = format!("{}/wallet/history?address={address}&limit={limit}&offset={offset}", node.node);
    let h = get_json(&client()?, &url).await?;
    let items = h["items"].as_array().cloned().unwrap_or_default();
    println!("{address}: {} entries ({} shown from {offset})", h["total"], items.len());
    println!("{:<10} {:<13} {:>18}  {:<7} {:<32} counterparty", "status", "kind", "amount RTC", "epoch", "tx");
    for i in items {
        let epoch = i["epoch"].as_u64().or(i["confirms_at_epoch"].as_u64()).map_or("-".into(), |e| e.to_string());
        let sign = if i["kind"] == "transfer_out" { "-" } else { "+" };
        println!(
            "{:<10} {:<13} {:>18}  {:<7} {:<32} {}",
            i["status"].as_str().unwrap_or("?"),
            i["kind"].as_str().unwrap_or("?"),
            format!("{sign}{}", rtc(i["amount_i64"].as_u64().unwrap_or(0))),
            epoch,
            i["tx_hash"].as_str().unwrap_or("-"),
            i["counterparty"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}

/// Sign and submit the next transfer; follow it unless `--no-wait`. Exit code 0 when confirmed (or
/// not waited for), 1 when the settlement rejected it, 2 when it is still pending at the timeout.
pub async fn send(node: &NodeArg, key: &Keypair, args: &SendArgs) -> anyhow::Result<i32> {
    if amount_urtc(args.amount).is_none() {
        bail!("--amount {} is less than 0.000001 RTC (1 uRTC)", args.amount);
    }
    let c = client()?;
    let me = key.address();
    let b = get_json(&c, &format!("{}/wallet/balance?address={me}", node.node)).await?;
    // Signed for the node's network, so it is valid nowhere else (PROTOCOL.md §13.1), with the
    // start of the node's current slot in milliseconds as the nonce (or the next one above the
    // last): the signed time pins the epoch the transfer counts in (§13.3), whatever slot a
    // relaying node's receipt claims.
    let e = get_json(&c, &format!("{}/epoch", node.node)).await?;
    let network = e["network_id"].as_str().context("the node's /epoch has no network_id")?.to_owned();
    if let Some(asked) = args.chain_id.as_ref().filter(|c| **c != network) {
        bail!("--chain-id {asked}: the node at {} is on network {network}", node.node);
    }
    let slot_start_ms = (|| {
        let (epoch, slot, per, secs, ends) = (e["epoch"].as_u64()?, e["slot"].as_u64()?, e["blocks_per_epoch"].as_u64()?, e["slot_seconds"].as_u64()?, e["epoch_ends_at"].as_u64()?);
        let genesis = ends.checked_sub((epoch + 1) * per * secs)?;
        i64::try_from((genesis + slot * secs) * 1_000).ok()
    })()
    .context("the node's /epoch lacks the slot arithmetic")?;
    let nonce = b["last_nonce"].as_i64().map_or(slot_start_ms, |n| (n + 1).max(slot_start_ms));
    let order = TransferOrder { to_address: args.to.clone(), amount_rtc: args.amount, memo: args.memo.clone(), nonce, chain_id: Some(network) };
    let url = format!("{}/wallet/transfer/signed", node.node);
    let resp = c.post(&url).json(&order.sign(key)).send().await.with_context(|| format!("POST {url}"))?;
    let r = answer(resp).await?;
    let tx = r["tx_hash"].as_str().context("the node's answer has no tx_hash")?.to_owned();
    println!("tx_hash: {tx}");
    println!("from {me} to {} amount {} RTC nonce {nonce}: pending, confirms with epoch {}", args.to, rtc(r["amount_i64"].as_u64().unwrap_or(0)), r["confirms_at_epoch"]);
    if args.no_wait {
        return Ok(0);
    }
    let started = Instant::now();
    let mut err = std::io::stderr();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = match get_json(&c, &format!("{}/wallet/tx/{tx}", node.node)).await {
            Ok(s) => s,
            Err(e) => {
                let _ = write!(err, "\r{:<78}", format!("waiting: {e}"));
                continue;
            }
        };
        match s["status"].as_str() {
            Some("confirmed") => {
                let _ = writeln!(err);
                println!("confirmed in epoch {}", s["epoch"]);
                return Ok(0);
            }
            Some("rejected") => {
                let _ = writeln!(err);
                println!("rejected in epoch {}: {}", s["epoch"], s["reason"].as_str().unwrap_or("?"));
                return Ok(1);
            }
            _ => {
                let now = get_json(&c, &format!("{}/epoch", node.node)).await.ok().and_then(|e| e["epoch"].as_u64());
                let _ = write!(
                    err,
                    "\rpending: confirms with epoch {} (now epoch {}), {}s",
                    s["confirms_at_epoch"],
                    now.map_or("?".into(), |n| n.to_string()),
                    started.elapsed().as_secs()
                );
                let _ = err.flush();
            }
        }
        if started.elapsed() > args.wait_timeout.0 {
            let _ = writeln!(err);
            println!("still pending after {}s; follow it with GET /wallet/tx/{tx}", started.elapsed().as_secs());
            return Ok(2);
        }
    }
}
