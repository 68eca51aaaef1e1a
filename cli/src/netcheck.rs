//! `rustchain testnet check`: look at every node of a testnet over its HTTP API and say whether
//! they agree: one table row per node (peers, epoch, last certified epoch, settlement hash, sync
//! status), then the verdict. Nodes agree when every node answers, is synced and connected, has
//! certified a recent epoch, and every node holds the same certified settlement hash for each of
//! the last epochs they all certified. With `--ledger`, every attestation a node acknowledged (as
//! written by `rustchain testnet miners`) must also be in every node's registry.
//!
//! Also `rustchain probe`, the container healthcheck (the image has no curl).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::Value;

use rustchain_node::config::HumanDuration;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The nodes: `URL` or `NAME=URL`, comma-separated.
    #[arg(long, value_delimiter = ',', required = true, value_name = "[NAME=]URL,...")]
    pub nodes: Vec<String>,
    /// Keep looking until the nodes agree or this much time has passed (e.g. 90s); 0 looks once.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub wait: HumanDuration,
    /// Every node must have certified at least this epoch.
    #[arg(long, value_name = "EPOCH")]
    pub min_certified: Option<u64>,
    /// Most epochs a node's last certified epoch may trail its current epoch.
    #[arg(long, default_value_t = 3, value_name = "EPOCHS")]
    pub max_lag: u64,
    /// Certified epochs compared across the nodes: the last N that all of them certified.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub compare: u64,
    /// Acknowledged attestations, one per line, record id first (`rustchain testnet miners
    /// --ledger`): each must be in every node's registry.
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
}

/// One node as its API describes it.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    pub name: String,
    pub url: String,
    /// Why the node could not be read, if it could not.
    pub error: Option<String>,
    pub role: String,
    pub validator: bool,
    pub ready: bool,
    pub peers: u64,
    pub sync: String,
    pub epoch: u64,
    pub last_certified: Option<u64>,
    pub attestations: u64,
    /// Settlements of the compared epochs: epoch -> (hash, status); absent when the node does
    /// not hold the epoch.
    pub settlements: BTreeMap<u64, (String, String)>,
    /// Ledger records this node lacks (when a ledger is checked).
    pub missing: Vec<String>,
}

/// The epochs to compare: the last `compare` that every node has certified.
pub fn compared_epochs(views: &[NodeView], compare: u64) -> Option<std::ops::RangeInclusive<u64>> {
    let common = views.iter().map(|v| v.last_certified).min()??;
    Some(common.saturating_sub(compare.max(1) - 1)..=common)
}

/// Why the nodes do not agree (empty: they agree).
pub fn disagreements(views: &[NodeView], compare: u64, min_certified: Option<u64>, max_lag: u64) -> Vec<String> {
    let mut why = Vec::new();
    for v in views {
        if let Some(e) = &v.error {
            why.push(format!("{}: unreachable ({e})", v.name));
            continue;
        }
        if v.sync != "synced" {
            why.push(format!("{}: {}", v.name, v.sync));
        }
        if views.len() > 1 && v.peers == 0 {
            why.push(format!("{}: no peers", v.name));
        }
        match v.last_certified {
            None => why.push(format!("{}: has certified no epoch yet", v.name)),
            Some(c) if c + max_lag < v.epoch => {
                why.push(format!("{}: last certified epoch {c} trails the current epoch {} by more than {max_lag}", v.name, v.epoch));
            }
            Some(c) if min_certified.is_some_and(|m| c < m) => {
                why.push(format!("{}: last certified epoch {c}, waiting for {}", v.name, min_certified.unwrap_or_default()));
            }
            Some(_) => {}
        }
        if !v.missing.is_empty() {
            why.push(format!("{}: lacks {} acknowledged attestations (first {})", v.name, v.missing.len(), v.missing[0]));
        }
    }
    if !why.is_empty() {
        return why;
    }
    let Some(range) = compared_epochs(views, compare) else { return vec!["no epoch certified by every node".into()] };
    let common = *range.end();
    for epoch in range {
        let mut by_hash: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for v in views {
            match v.settlements.get(&epoch) {
                // Only the newest compared epoch must be held by all; older ones may predate a node.
                None if epoch == common => why.push(format!("{}: does not hold epoch {epoch}", v.name)),
                None => {}
                Some((_, status)) if status != "certified" => why.push(format!("{}: epoch {epoch} is {status}", v.name)),
                Some((hash, _)) => by_hash.entry(hash.as_str()).or_default().push(&v.name),
            }
        }
        if by_hash.len() > 1 {
            let sides: Vec<String> = by_hash.iter().map(|(h, names)| format!("{} on {}", short(h), names.join(","))).collect();
            why.push(format!("epoch {epoch}: settlement hashes differ: {}", sides.join(" vs ")));
        }
    }
    why
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}

/// The table: one row per node.
pub fn table(views: &[NodeView], compare: u64) -> String {
    let common = compared_epochs(views, compare).map(|r| *r.end());
    let hash_head = common.map_or("SETTLEMENT".to_owned(), |c| format!("HASH@{c}"));
    let name_w = views.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:name_w$}  {:8} {:4} {:5} {:>5} {:8} {:>6} {:>9} {:17} {:9} {:>7}",
        "NODE", "ROLE", "VAL", "READY", "PEERS", "SYNC", "EPOCH", "CERTIFIED", hash_head, "STATUS", "RECORDS"
    );
    for v in views {
        if let Some(e) = &v.error {
            let _ = writeln!(out, "{:name_w$}  unreachable: {e}", v.name);
            continue;
        }
        let (hash, status) = common.and_then(|c| v.settlements.get(&c)).map_or(("-", "-"), |(h, s)| (short(h), s.as_str()));
        let yes = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "{:name_w$}  {:8} {:4} {:5} {:>5} {:8} {:>6} {:>9} {:17} {:9} {:>7}",
            v.name,
            v.role,
            yes(v.validator),
            yes(v.ready),
            v.peers,
            v.sync,
            v.epoch,
            v.last_certified.map_or("-".to_owned(), |c| c.to_string()),
            hash,
            status,
            v.attestations,
        );
    }
    out
}

/// An HTTP client error with its causes ("error sending request: … Connection refused"), without
/// the URL (the caller names the node).
pub fn http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<(u16, Value), String> {
    let resp = client.get(url).send().await.map_err(http_error)?;
    let status = resp.status().as_u16();
    let body = resp.json().await.map_err(|e| format!("{url}: {}", http_error(e)))?;
    Ok((status, body))
}

async fn view(client: &reqwest::Client, name: &str, url: &str) -> NodeView {
    let mut v = NodeView { name: name.to_owned(), url: url.to_owned(), ..Default::default() };
    let read = async {
        let (_, p2p) = get_json(client, &format!("{url}/api/p2p/status")).await?;
        let (s, stats) = get_json(client, &format!("{url}/api/stats")).await?;
        if s != 200 {
            return Err(format!("/api/stats answered {s}: {stats}"));
        }
        let (ready, _) = get_json(client, &format!("{url}/readyz")).await?;
        Ok((p2p, stats, ready == 200))
    };
    match read.await {
        Ok((p2p, stats, ready)) => {
            v.role = p2p["role"].as_str().unwrap_or("-").to_owned();
            v.peers = p2p["total_peers"].as_u64().unwrap_or(0);
            v.sync = p2p["sync_status"].as_str().unwrap_or("unknown").to_owned();
            v.validator = stats["is_validator"].as_bool().unwrap_or(false);
            v.epoch = stats["epoch"].as_u64().unwrap_or(0);
            v.last_certified = stats["last_certified_epoch"].as_u64();
            v.attestations = stats["attestations"].as_u64().unwrap_or(0);
            v.ready = ready;
        }
        Err(e) => v.error = Some(e),
    }
    v
}

async fn settlements(client: &reqwest::Client, v: &mut NodeView, epochs: std::ops::RangeInclusive<u64>) {
    v.settlements.clear();
    for epoch in epochs {
        match get_json(client, &format!("{}/api/epoch/{epoch}/settlement", v.url)).await {
            Ok((200, s)) => {
                let hash = s["certificate"]["settlement_hash"].as_str().or(s["settlement_hash"].as_str()).unwrap_or("").to_owned();
                let status = s["status"].as_str().unwrap_or("unknown").to_owned();
                v.settlements.insert(epoch, (hash, status));
            }
            Ok(_) => {}
            Err(e) => {
                v.error = Some(e);
                return;
            }
        }
    }
}

/// The ledger's record ids that `url` does not hold.
async fn missing_records(client: &reqwest::Client, url: &str, ids: &[String]) -> Vec<String> {
    let lookups = futures::stream::iter(ids.iter().cloned())
        .map(|id| async move {
            match get_json(client, &format!("{url}/api/attestation/{id}")).await {
                Ok((200, _)) => None,
                _ => Some(id),
            }
        })
        .buffer_unordered(16);
    let mut missing: Vec<String> = lookups.filter_map(|m| async move { m }).collect().await;
    missing.sort();
    missing
}

fn read_ledger(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the ledger {}", path.display()))?;
    let mut ids: Vec<String> = text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect();
    if let Some(bad) = ids.iter().find(|id| id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit())) {
        bail!("ledger {}: {bad:?} is not a record id (64 hex digits)", path.display());
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn parse_nodes(nodes: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let parsed: Vec<(String, String)> = nodes
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(|n| match n.split_once('=') {
            Some((name, url)) => (name.to_owned(), url.trim_end_matches('/').to_owned()),
            None => (n.trim_start_matches("http://").trim_end_matches('/').to_owned(), n.trim_end_matches('/').to_owned()),
        })
        .collect();
    if parsed.is_empty() {
        bail!("--nodes names no node");
    }
    if let Some((name, url)) = parsed.iter().find(|(_, u)| !u.starts_with("http://") && !u.starts_with("https://")) {
        bail!("node {name}: {url:?} is not an http:// URL");
    }
    Ok(parsed)
}

/// Look (and, with `--wait`, look again) until the nodes agree. Exit status: 0 agree, 1 not.
pub async fn run(args: CheckArgs) -> anyhow::Result<i32> {
    let nodes = parse_nodes(&args.nodes)?;
    let ledger = args.ledger.as_deref().map(read_ledger).transpose()?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).connect_timeout(Duration::from_secs(2)).build()?;
    let started = Instant::now();
    let mut last_reason = String::new();
    loop {
        let mut views = futures::future::join_all(nodes.iter().map(|(name, url)| view(&client, name, url))).await;
        if let Some(range) = compared_epochs(&views, args.compare) {
            for v in views.iter_mut().filter(|v| v.error.is_none()) {
                settlements(&client, v, range.clone()).await;
            }
        }
        let mut why = disagreements(&views, args.compare, args.min_certified, args.max_lag);
        // The ledger is looked up only once everything else agrees (it is the slow part).
        if let (true, Some(ids)) = (why.is_empty(), &ledger) {
            for v in views.iter_mut() {
                v.missing = missing_records(&client, &v.url, ids).await;
            }
            why = disagreements(&views, args.compare, args.min_certified, args.max_lag);
        }
        let timed_out = started.elapsed() >= args.wait.0;
        if why.is_empty() || timed_out {
            print!("{}", table(&views, args.compare));
            if why.is_empty() {
                let range = compared_epochs(&views, args.compare).expect("agreement needs a common epoch");
                let hash = views[0].settlements.get(range.end()).map(|(h, _)| h.clone()).unwrap_or_default();
                println!("AGREE: {} nodes, identical certified settlements for epochs {}..={} (epoch {}: {hash})", views.len(), range.start(), range.end(), range.end());
                if let Some(ids) = &ledger {
                    println!("AGREE: all {} acknowledged attestations in the ledger are on every node", ids.len());
                }
                return Ok(0);
            }
            println!("DISAGREE after {:.0}s:", started.elapsed().as_secs_f64());
            for w in &why {
                println!("  - {w}");
            }
            return Ok(1);
        }
        let reason = why.join("; ");
        if reason != last_reason {
            eprintln!("check: {:.0}s: waiting: {reason}", started.elapsed().as_secs_f64());
            last_reason = reason;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `rustchain probe`: exit 0 when `url` answers 2xx within `timeout`, printing the answer.
pub async fn probe(url: &str, timeout: Duration) -> anyhow::Result<i32> {
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    match client.get(url).send().await {
        Ok(resp) => {
            let status = resp.status();
            println!("{} {}", status.as_u16(), resp.text().await.unwrap_or_default().trim());
            Ok(if status.is_success() { 0 } else { 1 })
        }
        Err(e) => {
            println!("no answer from {url}: {}", http_error(e));
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, certified: u64, hashes: &[(u64, &str)]) -> NodeView {
        NodeView {
            name: name.into(),
            sync: "synced".into(),
            peers: 4,
            epoch: certified + 1,
            last_certified: Some(certified),
            settlements: hashes.iter().map(|(e, h)| (*e, (h.to_string(), "certified".to_string()))).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn identical_certificates_agree_and_the_common_epoch_is_the_lowest_last_certified() {
        let views = vec![node("a", 9, &[(8, "h8"), (9, "h9")]), node("b", 10, &[(8, "h8"), (9, "h9")])];
        assert_eq!(compared_epochs(&views, 2), Some(8..=9));
        assert!(disagreements(&views, 2, None, 3).is_empty());
        assert!(table(&views, 2).contains("HASH@9"));
    }

    #[test]
    fn a_different_hash_a_missing_epoch_or_a_straggler_is_disagreement() {
        let views = vec![node("a", 9, &[(9, "h9")]), node("b", 9, &[(9, "other")])];
        let why = disagreements(&views, 1, None, 3);
        assert_eq!(why.len(), 1);
        assert!(why[0].contains("settlement hashes differ") && why[0].contains("on a") && why[0].contains("on b"), "{why:?}");

        let views = vec![node("a", 9, &[(9, "h9")]), node("b", 9, &[])];
        assert!(disagreements(&views, 1, None, 3)[0].contains("b: does not hold epoch 9"));

        let mut late = node("b", 9, &[(9, "h9")]);
        late.epoch = 14;
        let why = disagreements(&[node("a", 9, &[(9, "h9")]), late], 1, None, 3);
        assert!(why[0].contains("trails"), "{why:?}");

        let why = disagreements(&[node("a", 9, &[(9, "h9")]), node("b", 9, &[(9, "h9")])], 1, Some(10), 3);
        assert_eq!(why.len(), 2, "{why:?}");
    }

    #[test]
    fn unreachable_unsynced_isolated_or_provisional_nodes_do_not_agree() {
        let mut down = node("down", 9, &[]);
        down.error = Some("connection refused".into());
        let mut syncing = node("s", 9, &[(9, "h9")]);
        syncing.sync = "syncing".into();
        let mut alone = node("alone", 9, &[(9, "h9")]);
        alone.peers = 0;
        let why = disagreements(&[node("a", 9, &[(9, "h9")]), down, syncing, alone], 1, None, 3);
        assert_eq!(why.len(), 3, "{why:?}");
        let mut provisional = node("p", 9, &[(9, "h9")]);
        provisional.settlements.insert(9, ("h9".into(), "provisional".into()));
        assert!(disagreements(&[node("a", 9, &[(9, "h9")]), provisional], 1, None, 3)[0].contains("provisional"));
        let mut lacking = node("l", 9, &[(9, "h9")]);
        lacking.missing = vec!["ab".repeat(32)];
        assert!(disagreements(&[node("a", 9, &[(9, "h9")]), lacking], 1, None, 3)[0].contains("lacks 1"));
    }

    #[test]
    fn an_older_epoch_a_late_joiner_never_held_is_not_disagreement() {
        let joiner = node("j", 9, &[(9, "h9")]);
        assert!(disagreements(&[node("a", 9, &[(8, "h8"), (9, "h9")]), joiner], 2, None, 3).is_empty());
    }

    #[test]
    fn nodes_and_ledgers_parse() {
        let n = parse_nodes(&["primary=http://10.0.0.2:8099/".into(), "http://127.0.0.1:8100".into()]).unwrap();
        assert_eq!(n[0], ("primary".into(), "http://10.0.0.2:8099".into()));
        assert_eq!(n[1], ("127.0.0.1:8100".into(), "http://127.0.0.1:8100".into()));
        assert!(parse_nodes(&["x=10.0.0.2:8099".into()]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        std::fs::write(&path, format!("{} 3 http://a x\n{} 3 http://b y\n", "ab".repeat(32), "ab".repeat(32))).unwrap();
        assert_eq!(read_ledger(&path).unwrap().len(), 1, "duplicates count once");
        std::fs::write(&path, "nothex 3 http://a x\n").unwrap();
        assert!(read_ledger(&path).is_err());
    }
}
