//! `rustchain verify`: check a node's history without trusting it. For every epoch the node holds,
//! oldest first, it reads the settlement record and its certificate, and checks: the record's hash;
//! the certificate's signatures against the chain spec's validators and its quorum; the chain link
//! to the epoch before. For the epochs it re-derives (`--from`..`--to`), it also reads every record
//! of the epoch's registry, checks every signature and receipt, the registry digest against the
//! certificate's votes, and recomputes enrollment, weights, split, transfers and bindings with the
//! protocol crate from the state the certified records before it built (balances, nonces,
//! bindings, pending transfers). With `--ergo-url` it checks the epoch's Ergo anchor too.
//!
//! Exit 0: everything checked and verified; 1: some mismatch (each named: epoch, field, expected,
//! found); 2: no mismatch, but something could not be checked (or the node could not be read).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use protocol::ChainSpec;
use protocol::admin::{self, AdminRecord};
use protocol::attestation::{self, AttestationRecord};
use protocol::consensus::{EpochCertificate, Vote, ValidatorKey};
use protocol::crypto::{Hash32, decode_hex};
use protocol::enrollment::{self, BindingKind, Bindings, Claim};
use protocol::entropy::{Profile, ProfileIndex};
use protocol::settlement::{self, Ledger, PendingTransfer, Settlement, TransferOutcome};
use protocol::transfer::TransferRecord;
use rustchain_node::anchoring::ergo::{Anchor, ErgoAnchor};
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The node to check (its HTTP API).
    #[arg(long, env = "RUSTCHAIN_NODE", default_value = "http://127.0.0.1:8099")]
    pub node: String,
    /// The chain spec: `devnet`, `mainnet` or a TOML file. Its validators are the only keys a
    /// certificate is checked against; nothing about the chain is taken from the node.
    #[arg(long, env = "RUSTCHAIN_SPEC", default_value = "devnet")]
    pub spec: String,
    /// First epoch to re-derive from its records (default: the oldest the node holds). Epochs
    /// before it are still checked for certificates, hashes and links, and build the state.
    #[arg(long)]
    pub from: Option<u64>,
    /// Last epoch to check (default: the newest certified epoch the node holds).
    #[arg(long)]
    pub to: Option<u64>,
    /// An Ergo node's REST API: check that each epoch from `--from` on has an anchoring
    /// transaction carrying its certified hash.
    #[arg(long)]
    pub ergo_url: Option<String>,
    /// Records per page when reading an epoch's registry.
    #[arg(long, default_value_t = 1000)]
    pub page: usize,
}

/// The checks, as rows of the final table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    Hash,
    Certificate,
    Link,
    Records,
    Digest,
    Settlement,
    Anchor,
}

impl Check {
    const ALL: [Check; 7] = [Check::Hash, Check::Certificate, Check::Link, Check::Records, Check::Digest, Check::Settlement, Check::Anchor];

    fn name(self) -> &'static str {
        match self {
            Check::Hash => "record hash = served and certified hash",
            Check::Certificate => "certificate: signatures, quorum",
            Check::Link => "chain link (prev_settlement_hash)",
            Check::Records => "records: signatures, receipts",
            Check::Digest => "registry digest = votes' digest",
            Check::Settlement => "enrollment, weights, split, transfers, bindings",
            Check::Anchor => "Ergo anchor carries the certified hash",
        }
    }
}

/// What one check found for one epoch.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    unchecked: u64,
}

/// The report: every finding, printed as it is found, and the table.
#[derive(Default)]
struct Report {
    tally: BTreeMap<Check, Tally>,
    mismatches: u64,
    unchecked: u64,
    notes: BTreeSet<String>,
    records: u64,
    signatures: u64,
    epochs: u64,
    /// Epochs the node holds without a certificate (provisional): nothing to verify, nothing applied.
    uncertified: u64,
}

impl Report {
    fn pass(&mut self, c: Check) {
        self.tally.entry(c).or_default().passed += 1;
    }

    fn mismatch(&mut self, c: Check, epoch: u64, field: &str, expected: impl std::fmt::Display, found: impl std::fmt::Display) {
        self.tally.entry(c).or_default().failed += 1;
        self.mismatches += 1;
        println!("MISMATCH epoch {epoch} {field}: expected {expected}, found {found}");
    }

    fn unchecked(&mut self, c: Check, epoch: u64, why: &str) {
        self.tally.entry(c).or_default().unchecked += 1;
        self.unchecked += 1;
        println!("NOT CHECKED epoch {epoch} {}: {why}", c.name());
    }

    /// Something said once, not per epoch.
    fn note(&mut self, text: String) {
        if self.notes.insert(text.clone()) {
            println!("note: {text}");
        }
    }
}

/// The epoch before the one being checked, as the node served it.
enum Before {
    /// None (the first), or one the node does not serve.
    Nothing,
    /// Certified for this hash; whether its record judged transfers or made bindings.
    Certified(u64, Hash32, bool),
    /// Settled without a certificate on the node.
    Uncertified(u64),
}

/// The state the certified records before an epoch built: what re-deriving it starts from.
#[derive(Default)]
struct State {
    ledger: Ledger,
    /// Serial and profile bindings: the earliest certified one holds.
    bindings: Bindings,
    profiles: ProfileIndex,
    /// Per wallet name, its certified pins and admin changes (epoch, kind, owner).
    key_log: BTreeMap<String, Vec<(u64, BindingKind, String)>>,
    /// Verified transfer records not judged yet: tx hash -> (transfer, first epoch it counts in,
    /// whether its registry differed from its votes': it may have reached the validators late).
    pending: BTreeMap<String, (PendingTransfer, u64, bool)>,
}

impl State {
    /// Apply a certified settlement, as a node applies it (PROTOCOL.md §8.8).
    fn apply(&mut self, s: &Settlement) -> anyhow::Result<()> {
        self.ledger.apply(s).map_err(|e| anyhow!("applying epoch {}: {e}", s.epoch))?;
        for t in &s.transfers {
            self.pending.remove(&*t.tx_hash);
        }
        for b in &s.bindings {
            let kind = BindingKind::parse(&b.kind).ok_or_else(|| anyhow!("epoch {}: binding kind {:?}", s.epoch, b.kind))?;
            if matches!(kind, BindingKind::WalletKey | BindingKind::AdminKey) {
                self.key_log.entry(b.key.clone()).or_default().push((s.epoch, kind, b.owner.clone()));
            } else if let std::collections::btree_map::Entry::Vacant(slot) = self.bindings.entry((kind, b.key.clone())) {
                slot.insert(b.owner.clone());
                if kind == BindingKind::Profile
                    && let Some(p) = Profile::from_text(&b.owner) {
                    self.profiles.insert(p, b.key.clone());
                }
            }
        }
        Ok(())
    }

    /// The certified bindings the claims name, as a node reads them for `epoch` (PROTOCOL.md §7).
    fn certified_for(&self, claims: &[Claim], epoch: u64) -> Bindings {
        let mut certified = Bindings::new();
        for c in claims {
            if c.pins_key()
                && !certified.contains_key(&(BindingKind::WalletKey, c.wallet.clone()))
                && let Some(log) = self.key_log.get(&c.wallet)
                && let Some(owner) = enrollment::key_in_force(log.iter().map(|(e, k, o)| (*e, *k, o.as_str())), epoch) {
                certified.insert((BindingKind::WalletKey, c.wallet.clone()), owner);
            }
            for (kind, key) in [(BindingKind::Serial, c.serial_hash.clone()), (BindingKind::Profile, Some(c.machine()))] {
                let Some(key) = key else { continue };
                if let Some(owner) = self.bindings.get(&(kind, key.clone())) {
                    certified.insert((kind, key), owner.clone());
                }
            }
        }
        certified
    }
}

/// An epoch's registry as served, verified.
#[derive(Default)]
struct Registry {
    ids: Vec<Hash32>,
    claims: Vec<Claim>,
    transfers: Vec<(PendingTransfer, u64)>,
    admin: Vec<(AdminRecord, Hash32)>,
    /// Its root is the registry digest of a vote of the epoch's certificate.
    digest_ok: bool,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// GET a JSON document: `Ok(None)` for a 404.
    async fn get(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let mut last = None;
        for attempt in 0..3 {
            match self.http.get(&url).send().await {
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return Ok(None),
                Ok(r) if r.status().is_success() => return Ok(Some(r.json().await.with_context(|| format!("GET {url}: not JSON"))?)),
                Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error() => {
                    last = Some(anyhow!("GET {url}: {}", r.status()));
                }
                Ok(r) => {
                    let status = r.status();
                    bail!("GET {url}: {status}: {}", r.text().await.unwrap_or_default());
                }
                Err(e) => last = Some(anyhow!("GET {url}: {}", crate::netcheck::http_error(e))),
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        Err(last.expect("three attempts"))
    }

    /// Every settled epoch the node holds, oldest first.
    async fn epochs(&self) -> anyhow::Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.get(&format!("/api/epochs?order=asc&limit=100&cursor={cursor}")).await?.ok_or_else(|| anyhow!("the node does not serve /api/epochs"))?;
            for e in page["epochs"].as_array().ok_or_else(|| anyhow!("/api/epochs: no epochs list"))? {
                out.push(e["epoch"].as_u64().ok_or_else(|| anyhow!("/api/epochs: an epoch without a number"))?);
            }
            match page["next_cursor"].as_str() {
                // Forward only: a node that hands back an old cursor would page forever.
                Some(c) if c.parse::<u64>().ok() > cursor.parse::<u64>().ok() => cursor = c.to_owned(),
                Some(c) => bail!("/api/epochs: next_cursor {c:?} does not move forward from {cursor:?}"),
                None => return Ok(out),
            }
        }
    }

    /// Every record of an epoch's registry, as (id, kind, CBOR).
    async fn records(&self, epoch: u64, page: usize) -> anyhow::Result<Vec<(Hash32, String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let Some(p) = self.get(&format!("/api/epochs/{epoch}/records?limit={page}&cursor={cursor}")).await? else { return Ok(out) };
            for r in p["records"].as_array().ok_or_else(|| anyhow!("epoch {epoch} records: no list"))? {
                let id = decode_hex::<32>("record id", r["id"].as_str().unwrap_or_default())?;
                let cbor = hex::decode(r["cbor"].as_str().unwrap_or_default()).context("record CBOR is not hex")?;
                out.push((id, r["kind"].as_str().unwrap_or_default().to_owned(), cbor));
            }
            match p["next_cursor"].as_str() {
                Some(c) if c.len() == 64 && c > cursor.as_str() => cursor = c.to_owned(),
                Some(c) => bail!("epoch {epoch} records: next_cursor {c:?} does not move forward"),
                None => return Ok(out),
            }
        }
    }
}

/// Decode and verify an epoch's records (signatures, receipts, ids, the epoch they belong to), on
/// every core. Returns the registry, or the first record that fails.
fn verify_records(spec: &ChainSpec, epoch: u64, raw: Vec<(Hash32, String, Vec<u8>)>) -> Result<Registry, (Hash32, String)> {
    enum One {
        Claim(Claim),
        Transfer(PendingTransfer, u64),
        Admin(AdminRecord),
    }
    let admins = admin::admin_keys(spec);
    let one = |(id, kind, cbor): &(Hash32, String, Vec<u8>)| -> Result<One, String> {
        match kind.as_str() {
            "attestation" => {
                let r = AttestationRecord::from_cbor(cbor).map_err(|e| e.to_string())?;
                if r.id() != *id {
                    return Err(format!("served under id {} but its id is {}", hex::encode(id), hex::encode(r.id())));
                }
                let sub = r.verify(spec).map_err(|e| e.to_string())?;
                let slot = r.receipt.slot;
                if spec.epoch_of_slot(slot) != epoch {
                    return Err(format!("its receipt is in epoch {}", spec.epoch_of_slot(slot)));
                }
                let eval = attestation::evaluate(spec, &sub, slot);
                Ok(One::Claim(Claim::of(&sub, &eval, slot, *id)))
            }
            "transfer" => {
                let r = TransferRecord::from_cbor(cbor)?;
                if r.id() != *id {
                    return Err(format!("served under id {} but its id is {}", hex::encode(id), hex::encode(r.id())));
                }
                let t = r.verify(spec).map_err(|e| e.to_string())?;
                if spec.epoch_of_slot(r.receipt.slot) != epoch {
                    return Err(format!("its receipt is in epoch {}", spec.epoch_of_slot(r.receipt.slot)));
                }
                let counts_in = spec.epoch_of_slot(r.counted_slot(spec, &t));
                let p = PendingTransfer { tx_hash: t.tx_hash().into(), from: t.from_address.as_str().into(), to: t.to_address.as_str().into(), amount_urtc: t.amount_i64 as u64, nonce: t.nonce as u64 };
                Ok(One::Transfer(p, counts_in))
            }
            "admin" => {
                let r = AdminRecord::from_cbor(cbor).map_err(|e| e.to_string())?;
                if r.id() != *id {
                    return Err(format!("served under id {} but its id is {}", hex::encode(id), hex::encode(r.id())));
                }
                r.verify(spec, &admins).map_err(|e| e.to_string())?;
                if r.epoch != epoch {
                    return Err(format!("it names epoch {}", r.epoch));
                }
                Ok(One::Admin(r))
            }
            other => Err(format!("unknown record kind {other:?}")),
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(raw.len().max(1));
    let chunk = raw.len().div_ceil(threads).max(1);
    let results: Vec<Vec<Result<One, String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = raw.chunks(chunk).map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>())).collect();
        handles.into_iter().map(|h| h.join().expect("a verifying thread panicked")).collect()
    });
    let mut reg = Registry::default();
    for ((id, _, _), r) in raw.iter().zip(results.into_iter().flatten()) {
        match r {
            Ok(One::Claim(c)) => reg.claims.push(c),
            Ok(One::Transfer(p, e)) => reg.transfers.push((p, e)),
            Ok(One::Admin(a)) => reg.admin.push((a, *id)),
            Err(e) => return Err((*id, e)),
        }
        reg.ids.push(*id);
    }
    reg.ids.sort_unstable();
    Ok(reg)
}

/// The certificate from its JSON form (`GET /api/epoch/{n}/settlement`'s `certificate`).
fn certificate_of(v: &Value) -> anyhow::Result<EpochCertificate> {
    let hash = |v: &Value, what: &'static str| decode_hex::<32>(what, v.as_str().unwrap_or_default());
    let epoch = v["epoch"].as_u64().ok_or_else(|| anyhow!("certificate without an epoch"))?;
    let round = u32::try_from(v["round"].as_u64().ok_or_else(|| anyhow!("certificate without a round"))?)?;
    let settlement_hash = hash(&v["settlement_hash"], "settlement_hash")?;
    let mut votes = Vec::new();
    for vote in v["votes"].as_array().ok_or_else(|| anyhow!("certificate without votes"))? {
        votes.push(Vote {
            epoch,
            round,
            settlement_hash,
            registry_digest: hash(&vote["registry_digest"], "registry_digest")?,
            validator: hash(&vote["validator"], "validator")?,
            signature: decode_hex::<64>("signature", vote["signature"].as_str().unwrap_or_default())?,
        });
    }
    Ok(EpochCertificate { epoch, round, settlement_hash, votes })
}

/// Compare the recomputed settlement (`want`) with the certified one (`got`), field by field.
fn compare(report: &mut Report, epoch: u64, want: &Settlement, got: &Settlement) -> bool {
    let before = report.mismatches;
    let mut m = |field: String, expected: String, found: String| report.mismatch(Check::Settlement, epoch, &field, expected, found);
    for (field, a, b) in [
        ("version", want.version, got.version),
        ("pot_urtc", want.pot_urtc, got.pot_urtc),
        ("total_weight", want.total_weight, got.total_weight),
        ("distributed_urtc", want.distributed_urtc, got.distributed_urtc),
    ] {
        if a != b {
            m(field.into(), a.to_string(), b.to_string());
        }
    }
    if want.network_id != got.network_id {
        m("network_id".into(), want.network_id.clone(), got.network_id.clone());
    }
    let entries = |s: &Settlement| s.entries.iter().map(|e| (e.miner.clone(), (e.weight, e.share_urtc))).collect::<BTreeMap<_, _>>();
    let (we, ge) = (entries(want), entries(got));
    for miner in we.keys().chain(ge.keys()).collect::<BTreeSet<_>>() {
        match (we.get(miner), ge.get(miner)) {
            (Some(a), Some(b)) => {
                if a.0 != b.0 {
                    m(format!("entries[{miner}].weight"), a.0.to_string(), b.0.to_string());
                }
                if a.1 != b.1 {
                    m(format!("entries[{miner}].share_urtc"), a.1.to_string(), b.1.to_string());
                }
            }
            (a, b) => m(format!("entries[{miner}]"), entry_text(a), entry_text(b)),
        }
    }
    let transfers = |s: &Settlement| s.transfers.iter().map(|t| (t.tx_hash.to_string(), t.clone())).collect::<BTreeMap<_, _>>();
    let (wt, gt) = (transfers(want), transfers(got));
    for tx in wt.keys().chain(gt.keys()).collect::<BTreeSet<_>>() {
        match (wt.get(tx), gt.get(tx)) {
            (Some(a), Some(b)) if a.result != b.result => m(format!("transfers[{tx}].result"), a.result.as_str().into(), b.result.as_str().into()),
            (Some(a), Some(b)) if a != b => m(format!("transfers[{tx}]"), transfer_text(Some(a)), transfer_text(Some(b))),
            (Some(_), Some(_)) => {}
            (a, b) => m(format!("transfers[{tx}]"), transfer_text(a), transfer_text(b)),
        }
    }
    if want.transfer_changes != got.transfer_changes {
        let text = |s: &Settlement| s.transfer_changes.iter().map(|c| format!("{}+{}-{}", c.address, c.credit_urtc, c.debit_urtc)).collect::<Vec<_>>().join(" ");
        m("transfer_changes".into(), text(want), text(got));
    }
    if want.bindings != got.bindings {
        let text = |s: &Settlement| s.bindings.iter().map(|b| format!("{}:{}={}", b.kind, b.key, b.owner)).collect::<Vec<_>>().join(" ");
        m("bindings".into(), text(want), text(got));
    }
    if report.mismatches == before && want.hash() != got.hash() {
        // Every field agrees and the bytes do not: an order.
        report.mismatch(Check::Settlement, epoch, "canonical bytes (order of entries or transfers)", hex::encode(want.hash()), hex::encode(got.hash()));
    }
    report.mismatches == before
}

fn entry_text(e: Option<&(u64, u64)>) -> String {
    e.map_or("absent".into(), |(w, s)| format!("weight {w}, share_urtc {s}"))
}

fn transfer_text(t: Option<&TransferOutcome>) -> String {
    t.map_or("absent".into(), |t| format!("{} -> {} {} uRTC nonce {} {}", t.from, t.to, t.amount_urtc, t.nonce, t.result.as_str()))
}

/// The settlement of `epoch` from its registry and the state before it, chained to `prev`; with
/// `extra` pending transfers besides the state's.
/// `allowed`: only these of the state's pending transfers (and only the claims of these wallets).
fn derive(spec: &ChainSpec, epoch: u64, reg: &Registry, state: &State, prev: Hash32, extra: Vec<PendingTransfer>, allowed: Option<(&BTreeSet<&str>, &BTreeSet<&str>)>) -> Result<Settlement, settlement::SettleError> {
    let claims: Vec<Claim> = match allowed {
        Some((_, wallets)) => reg.claims.iter().filter(|c| wallets.contains(c.wallet.as_str())).cloned().collect(),
        None => reg.claims.clone(),
    };
    let certified = state.certified_for(&claims, epoch);
    let e = enrollment::enroll(&claims, &certified, &state.profiles);
    let mut bindings = e.new_bindings;
    bindings.extend(admin::changes(reg.admin.iter().map(|(r, id)| (r, *id))));
    let mut pending: Vec<PendingTransfer> = state
        .pending
        .values()
        .filter(|(p, e, _)| *e <= epoch && allowed.is_none_or(|(txs, _)| txs.contains(&*p.tx_hash)))
        .map(|(p, _, _)| p.clone())
        .collect();
    pending.extend(extra);
    settlement::settle(spec, epoch, prev, &enrollment::weights(&e.enrolled), &bindings, &state.ledger.input(pending))
}

/// Take an epoch's verified transfer records into the pending transfers; `late`: the registry
/// differed from its votes'.
fn add_pending(state: &mut State, reg: &Registry, late: bool) {
    for (p, counts_in) in &reg.transfers {
        if !state.ledger.judged.contains(&*p.tx_hash) {
            let e = state.pending.entry(p.tx_hash.to_string()).or_insert((p.clone(), *counts_in, late));
            e.1 = e.1.min(*counts_in);
        }
    }
}

/// The verifier's work on one epoch held in memory, without a node (`examples/verify_bench.rs`
/// measures it): verify the records, derive the settlement, apply it.
#[derive(Default)]
pub struct Offline {
    state: State,
}

impl Offline {
    /// Verify `raw` (id, kind, CBOR) as the records of `epoch`, derive its settlement chained to
    /// `prev`, and apply it as certified.
    pub fn epoch(&mut self, spec: &ChainSpec, epoch: u64, prev: Hash32, raw: Vec<(Hash32, String, Vec<u8>)>) -> anyhow::Result<Settlement> {
        let reg = verify_records(spec, epoch, raw).map_err(|(id, e)| anyhow!("record {}: {e}", hex::encode(id)))?;
        add_pending(&mut self.state, &reg, false);
        let s = derive(spec, epoch, &reg, &self.state, prev, Vec::new(), None)?;
        self.state.apply(&s)?;
        Ok(s)
    }
}

/// What the verifier knows of the registries it has read.
#[derive(Default)]
struct Registries {
    /// Every registry since the state began was read: the pending transfers are all known.
    complete: bool,
    /// A registry read since `--from` differed from its votes'.
    suspect: bool,
}

/// Re-derive `got` (the certified record of `epoch`) from the epoch's registry and the state.
fn rederive(report: &mut Report, spec: &ChainSpec, epoch: u64, reg: &Registry, state: &State, seen: &Registries, got: &Settlement) -> bool {
    let digest_ok = reg.digest_ok;
    // Transfers the record judged whose signed records lie before the registries read (`--from`):
    // taken from the certified record itself (its fields are under the validators' signatures),
    // unless a registry read since differs from its votes (one of them may have been left out).
    let mut extra = Vec::new();
    if !seen.complete {
        extra = got
            .transfers
            .iter()
            .filter(|t| !state.pending.contains_key(&*t.tx_hash) && !state.ledger.judged.contains(&*t.tx_hash))
            .map(|t| PendingTransfer { tx_hash: t.tx_hash.clone(), from: t.from.clone(), to: t.to.clone(), amount_urtc: t.amount_urtc, nonce: t.nonce })
            .collect();
        if !extra.is_empty() {
            if seen.suspect || !digest_ok {
                report.unchecked(Check::Settlement, epoch, &format!("{} transfer(s) it judged have no signed record served, and a registry served since --from differs from its votes: run without --from", extra.len()));
                return false;
            }
            report.note(format!("{} transfer(s) judged from epoch {epoch} on were taken from the certified records: their signed records lie before --from", extra.len()));
        }
    }
    let want = match derive(spec, epoch, reg, state, got.prev_settlement_hash, extra.clone(), None) {
        Ok(w) => w,
        Err(e) => {
            report.mismatch(Check::Settlement, epoch, "settlement", "a settlement", format!("none can be computed: {e}"));
            return false;
        }
    };
    if want == *got {
        report.pass(Check::Settlement);
        return true;
    }
    let late_pending = state.pending.values().any(|(_, e, late)| *late && *e <= epoch);
    if !digest_ok || late_pending {
        // Records that reached this node after the votes (their registry differs from the votes'):
        // the validators settled without them. Without the claims of wallets the record did not
        // enroll (this registry's, when it is such a one) and those pending transfers it did not
        // judge, the settlement must come out as certified (the transfers stay pending).
        let mut txs: BTreeSet<&str> = got.transfers.iter().map(|t| &*t.tx_hash).collect();
        txs.extend(state.pending.values().filter(|(_, _, late)| !late).map(|(p, _, _)| &*p.tx_hash));
        let wallets: BTreeSet<&str> = if digest_ok { reg.claims.iter().map(|c| c.wallet.as_str()).collect() } else { got.entries.iter().map(|e| e.miner.as_str()).collect() };
        if derive(spec, epoch, reg, state, got.prev_settlement_hash, extra, Some((&txs, &wallets))).is_ok_and(|w| w == *got) {
            report.note(format!("epoch {epoch}: records served that the votes did not see (they arrived late) change nothing the validators certified"));
            report.pass(Check::Settlement);
            return true;
        }
    }
    compare(report, epoch, &want, got);
    false
}

/// Progress on standard error: a line that rewrites itself on a terminal, a line per 10 % otherwise.
struct Progress {
    tty: bool,
    total: usize,
    started: Instant,
    last_tenth: usize,
}

impl Progress {
    fn show(&mut self, done: usize, epoch: u64) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.tty {
            let width = 30;
            let filled = width * done / self.total.max(1);
            eprint!("\r[{}{}] {done}/{} epochs (epoch {epoch}) {elapsed:.1}s ", "#".repeat(filled), " ".repeat(width - filled), self.total);
            let _ = std::io::stderr().flush();
        } else if done * 10 / self.total.max(1) > self.last_tenth || done == self.total {
            self.last_tenth = done * 10 / self.total.max(1);
            eprintln!("verify: {done}/{} epochs (epoch {epoch}), {elapsed:.1}s", self.total);
        }
    }

    fn done(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Run `verify`; returns the exit code (0 verified, 1 mismatch, 2 could not check).
pub async fn run(args: VerifyArgs) -> anyhow::Result<i32> {
    let spec = rustchain_node::config::load_spec(&args.spec)?;
    let client = Client { http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?, base: args.node.trim_end_matches('/').to_owned() };
    let stats = client.get("/api/stats").await?.ok_or_else(|| anyhow!("{} does not serve /api/stats: is it a RustChain node?", args.node))?;
    if stats["network_id"].as_str() != Some(spec.network_id.as_str()) {
        eprintln!("verify: the node is on network {}, the chain spec says {}: pass the node's chain spec with --spec", stats["network_id"], spec.network_id);
        return Ok(2);
    }
    let validators: BTreeSet<ValidatorKey> = spec.validators.iter().map(|v| decode_hex::<32>("validator key", v)).collect::<Result<_, _>>()?;
    let mut report = Report::default();
    if validators.is_empty() {
        report.note("the chain spec lists no validators (a lone devnet node): every certificate must be signed by the first certificate's signer".into());
    }
    let ergo = args.ergo_url.as_ref().map(|u| ErgoAnchor::new(u.clone(), ""));
    let all = client.epochs().await?;
    let last_certified = stats["last_certified_epoch"].as_u64();
    let to = args.to.or(last_certified);
    let Some(to) = to else {
        eprintln!("verify: the node holds no certified epoch yet");
        return Ok(2);
    };
    let mut epochs: Vec<u64> = all.into_iter().filter(|e| *e <= to).collect();
    epochs.sort_unstable();
    epochs.dedup();
    let Some(&oldest) = epochs.first() else {
        eprintln!("verify: the node holds no settled epoch up to {to}");
        return Ok(2);
    };
    let from = args.from.unwrap_or(oldest).max(oldest);
    println!("verify: {} on {}: epochs {oldest}..={to} (re-deriving {from}..={to}) against the chain spec's {} validator(s)", args.node, spec.network_id, validators.len());
    let mut progress = Progress { tty: std::io::stderr().is_terminal(), total: epochs.len(), started: Instant::now(), last_tenth: 0 };
    let mut state = State::default();
    // Whether `state` is what the certified records before the epoch built: yes from a first
    // epoch that chains to nothing (the chain's first), until an epoch is missing.
    let mut state_known = true;
    let mut seen = Registries { complete: from == oldest, suspect: false };
    // The epoch before the one being checked, as the node served it.
    let mut before = Before::Nothing;
    // A spec with no validators: the signers of the first certificate, held to for every epoch.
    let mut lone: Option<BTreeSet<ValidatorKey>> = None;
    for (i, &epoch) in epochs.iter().enumerate() {
        progress.show(i, epoch);
        report.epochs += 1;
        let Some(doc) = client.get(&format!("/api/epoch/{epoch}/settlement")).await? else {
            report.unchecked(Check::Hash, epoch, "the node listed the epoch but does not serve its settlement");
            (state_known, before) = (false, Before::Nothing);
            continue;
        };
        let record = match Settlement::from_json(&doc["record"]) {
            Ok(r) => r,
            Err(e) => {
                report.mismatch(Check::Hash, epoch, "record", "a settlement record", e);
                (state_known, before) = (false, Before::Nothing);
                continue;
            }
        };
        let hash = record.hash();
        if record.epoch != epoch {
            report.mismatch(Check::Hash, epoch, "record.epoch", epoch, record.epoch);
        }
        if doc["settlement_hash"].as_str() != Some(hex::encode(hash).as_str()) {
            report.mismatch(Check::Hash, epoch, "settlement_hash (served) vs hash of the record", hex::encode(hash), doc["settlement_hash"].as_str().unwrap_or("none"));
        }
        // The registry, for the epochs re-derived (read even for an epoch without a certificate:
        // its transfers stay pending, and a later epoch judges them).
        let registry = if epoch >= from {
            let raw = client.records(epoch, args.page.clamp(1, 1000)).await?;
            report.records += raw.len() as u64;
            Some(verify_records(&spec, epoch, raw))
        } else {
            None
        };
        // The certificate.
        let cert = match &doc["certificate"] {
            Value::Null => None,
            c => match certificate_of(c) {
                Ok(c) => Some(c),
                Err(e) => {
                    report.mismatch(Check::Certificate, epoch, "certificate", "a certificate", e);
                    (state_known, before) = (false, Before::Nothing);
                    continue;
                }
            },
        };
        let Some(cert) = cert else {
            // Provisional here: nothing of it was applied, and the next epoch chains to nothing.
            report.uncertified += 1;
            report.note(format!("epoch {epoch} has no certificate on this node (provisional: nothing of it is applied)"));
            if let Some(Ok(reg)) = &registry {
                add_pending(&mut state, reg, false);
            }
            before = Before::Uncertified(epoch);
            continue;
        };
        let set = if validators.is_empty() { lone.get_or_insert_with(|| cert.votes.iter().map(|v| v.validator).collect()).clone() } else { validators.clone() };
        match cert.verify(&spec, &set) {
            Ok(()) if cert.epoch == epoch => report.pass(Check::Certificate),
            Ok(()) => report.mismatch(Check::Certificate, epoch, "certificate.epoch", epoch, cert.epoch),
            Err(e) => report.mismatch(Check::Certificate, epoch, "certificate", "a quorum of valid validator signatures", e),
        }
        report.signatures += cert.votes.len() as u64;
        if cert.settlement_hash == hash {
            report.pass(Check::Hash);
        } else {
            report.mismatch(Check::Hash, epoch, "settlement_hash (certificate) vs hash of the record", hex::encode(cert.settlement_hash), hex::encode(hash));
        }
        // The link to the epoch before. A zero link after a certified epoch: its settler had not
        // applied that epoch yet (PROTOCOL.md §8.3), so it settled on the state before it.
        let zero = record.prev_settlement_hash == [0; 32];
        let mut settled_on_older_state = false;
        match before {
            Before::Certified(p, h, ref effects) if p.checked_add(1) == Some(epoch) => {
                if record.prev_settlement_hash == h {
                    report.pass(Check::Link);
                } else if zero {
                    report.note(format!("epoch {epoch} chains to nothing although epoch {p} is certified (allowed: its settler did not hold that certificate yet, PROTOCOL.md §8.3)"));
                    report.pass(Check::Link);
                    settled_on_older_state = *effects || !record.transfers.is_empty();
                } else {
                    report.mismatch(Check::Link, epoch, "prev_settlement_hash", hex::encode(h), hex::encode(record.prev_settlement_hash));
                }
            }
            Before::Uncertified(p) if p.checked_add(1) == Some(epoch) => {
                if zero {
                    report.pass(Check::Link);
                } else {
                    report.unchecked(Check::Link, epoch, &format!("it chains to a certificate of epoch {p} that the node does not serve"));
                    state_known = false;
                }
            }
            _ if i == 0 && zero => {
                report.note(format!("the history starts at epoch {epoch}, which chains to nothing: balances, nonces and bindings are taken as empty before it"));
                report.pass(Check::Link);
            }
            _ => {
                report.unchecked(Check::Link, epoch, "the node does not hold the epoch before it");
                if i == 0 {
                    report.note(format!("epoch {epoch}, the oldest the node holds, chains to an earlier epoch: the balances and bindings before it are unknown, so no epoch is re-derived (ask an archive node)"));
                }
                state_known = false;
            }
        }
        // The registry against the votes, and the settlement re-derived from it.
        match registry {
            None => {}
            Some(Err((id, e))) => report.mismatch(Check::Records, epoch, &format!("record {}", hex::encode(id)), "a valid signed record", e),
            Some(Ok(mut reg)) => {
                let has_content = !record.entries.is_empty() || !record.bindings.is_empty() || !record.transfers.is_empty();
                if reg.ids.is_empty() && has_content {
                    report.unchecked(Check::Records, epoch, "the node serves none of its records");
                    report.unchecked(Check::Settlement, epoch, "no records to re-derive it from");
                    seen.complete = false;
                } else {
                    report.pass(Check::Records);
                    report.signatures += 2 * reg.claims.len() as u64 + 2 * reg.transfers.len() as u64 + reg.admin.len() as u64;
                    let root = crdt::BucketDigest::from_sorted_ids(&reg.ids).root();
                    let digests: BTreeSet<Hash32> = cert.votes.iter().map(|v| v.registry_digest).collect();
                    let digest_ok = digests.contains(&root);
                    reg.digest_ok = digest_ok;
                    add_pending(&mut state, &reg, !digest_ok);
                    if !state_known {
                        report.unchecked(Check::Settlement, epoch, "the state before it is unknown (see the notes)");
                        if !digest_ok {
                            report.unchecked(Check::Digest, epoch, "the registry differs from the votes' and cannot be re-derived");
                        }
                    } else if settled_on_older_state {
                        report.unchecked(Check::Settlement, epoch, "it was settled before the previous epoch was applied (zero chain link), on a state this verifier does not keep");
                    } else {
                        let verified = rederive(&mut report, &spec, epoch, &reg, &state, &seen, &record);
                        if digest_ok {
                            report.pass(Check::Digest);
                        } else if verified {
                            // The same settlement from a registry the votes did not see.
                            report.pass(Check::Digest);
                        } else {
                            let votes = digests.iter().map(hex::encode).collect::<Vec<_>>().join(", ");
                            report.mismatch(Check::Digest, epoch, "registry digest", votes, format!("{} over the {} records served", hex::encode(root), reg.ids.len()));
                        }
                    }
                    seen.suspect |= !digest_ok;
                }
            }
        }
        // The anchor.
        if let Some(ergo) = &ergo
            && epoch >= from {
            match client.get(&format!("/api/epoch/{epoch}/anchor")).await {
                Ok(Some(a)) if a["ergo_tx_id"].is_string() => {
                    let tx = a["ergo_tx_id"].as_str().unwrap_or_default();
                    match ergo.lookup(tx).await {
                        Ok(l) if l.settlement_hash == Some(cert.settlement_hash) && l.epoch == Some(epoch) && l.confirmations >= 1 => report.pass(Check::Anchor),
                        Ok(l) if l.settlement_hash == Some(cert.settlement_hash) && l.epoch == Some(epoch) => {
                            report.unchecked(Check::Anchor, epoch, &format!("{tx} carries the certified hash but is not in a block yet"));
                        }
                        Ok(l) => report.mismatch(
                            Check::Anchor,
                            epoch,
                            &format!("anchor {tx} (R4, R5)"),
                            format!("{} epoch {epoch}", hex::encode(cert.settlement_hash)),
                            format!("{} epoch {:?}", l.settlement_hash.map(hex::encode).unwrap_or_else(|| "no hash".into()), l.epoch),
                        ),
                        Err(e) => report.unchecked(Check::Anchor, epoch, &format!("Ergo look-up of {tx}: {e}")),
                    }
                }
                Ok(_) => report.unchecked(Check::Anchor, epoch, "the node knows no anchoring transaction for it (the primary anchors)"),
                Err(e) => report.unchecked(Check::Anchor, epoch, &e.to_string()),
            }
        }
        // What the certified record does to the state: applied as every node applies it.
        if state_known && let Err(e) = state.apply(&record) {
            report.mismatch(Check::Settlement, epoch, "balances", "no balance below zero or above 2^64", e);
            state_known = false;
        }
        if !state_known && epoch >= from {
            seen.complete = false;
        }
        let effects = !record.transfers.is_empty() || !record.bindings.is_empty();
        before = Before::Certified(epoch, cert.settlement_hash, effects);
    }
    progress.show(epochs.len(), to);
    progress.done();
    print_table(&report, progress.started.elapsed());
    Ok(if report.mismatches > 0 {
        1
    } else if report.unchecked > 0 {
        2
    } else {
        0
    })
}

fn print_table(r: &Report, elapsed: Duration) {
    println!();
    println!("{:<50} {:>8} {:>8} {:>12}", "check (epochs)", "passed", "failed", "not checked");
    for c in Check::ALL {
        let t = r.tally.get(&c);
        let (p, f, u) = t.map_or((0, 0, 0), |t| (t.passed, t.failed, t.unchecked));
        println!("{:<50} {p:>8} {f:>8} {u:>12}", c.name());
    }
    println!(
        "{} epochs ({} without a certificate), {} records, {} signatures in {:.1}s: {}",
        r.epochs,
        r.uncertified,
        r.records,
        r.signatures,
        elapsed.as_secs_f64(),
        if r.mismatches > 0 {
            format!("{} MISMATCH(ES)", r.mismatches)
        } else if r.unchecked > 0 {
            format!("no mismatch, {} item(s) not checked", r.unchecked)
        } else {
            "all verified".to_owned()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Settlement {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let weights = [("alice".to_owned(), 2_500_000_000u64), ("bob".to_owned(), 800_000_000)].into_iter().collect();
        settlement::settle(&spec, 7, [3; 32], &weights, &Bindings::new(), &Default::default()).unwrap()
    }

    /// The registry of `epoch` with one attestation record for each of `miners` simulated miners.
    fn registry(spec: &ChainSpec, epoch: u64, miners: usize) -> Registry {
        let node = protocol::crypto::Keypair::from_seed(&[0x55; 32]);
        let raw = (0..miners)
            .map(|i| {
                let key = crate::sim::miner_key(4, i);
                let body = crate::sim::signed_body(&key, 4, i, &crate::sim::miner_id(4, i), "n");
                let p = attestation::parse_submission(&body).unwrap().payload();
                let r = AttestationRecord { receipt: attestation::Receipt::sign(spec, &node, &p.payload_id(), spec.first_slot(epoch), "n"), payload: p };
                (r.id(), "attestation".to_owned(), r.to_cbor())
            })
            .collect();
        verify_records(spec, epoch, raw).unwrap()
    }

    #[test]
    fn a_certified_settlement_that_pays_the_wrong_wallets_is_caught_by_re_deriving_it() {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let mut reg = registry(&spec, 5, 3);
        reg.digest_ok = true;
        let state = State::default();
        let seen = Registries { complete: true, suspect: false };
        let truth = derive(&spec, 5, &reg, &state, [0; 32], Vec::new(), None).unwrap();
        assert_eq!(truth.entries.len(), 3);
        let mut report = Report::default();
        assert!(rederive(&mut report, &spec, 5, &reg, &state, &seen, &truth));
        // A consistent lie a quorum could sign: the same pot, totals and weights, one share moved.
        let mut lie = truth.clone();
        lie.entries[0].share_urtc -= 1;
        lie.entries[1].share_urtc += 1;
        let mut report = Report::default();
        assert!(!rederive(&mut report, &spec, 5, &reg, &state, &seen, &lie));
        assert_eq!(report.mismatches, 2, "both shares named");
        // A wallet left out of the record, from a registry that is the one the votes saw.
        let mut dropped = truth.clone();
        dropped.entries.pop();
        let mut report = Report::default();
        assert!(!rederive(&mut report, &spec, 5, &reg, &state, &seen, &dropped));
    }

    #[test]
    fn a_late_record_the_votes_did_not_see_is_told_apart_from_a_wrong_settlement() {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let seen = Registries { complete: true, suspect: false };
        let state = State::default();
        // The validators saw two records; the node serves a third that reached it later.
        let two = registry(&spec, 5, 2);
        let certified = derive(&spec, 5, &two, &state, [0; 32], Vec::new(), None).unwrap();
        let mut three = registry(&spec, 5, 3);
        three.digest_ok = false;
        let mut report = Report::default();
        assert!(rederive(&mut report, &spec, 5, &three, &state, &seen, &certified), "late, and it changes nothing certified");
        // The same registry claimed to be the one the votes saw: the certified record left a wallet out.
        three.digest_ok = true;
        let mut report = Report::default();
        assert!(!rederive(&mut report, &spec, 5, &three, &state, &seen, &certified));
        // Late records do not excuse a wrong share.
        three.digest_ok = false;
        let mut lie = certified.clone();
        lie.entries[0].share_urtc -= 1;
        lie.entries[1].share_urtc += 1;
        let mut report = Report::default();
        assert!(!rederive(&mut report, &spec, 5, &three, &state, &seen, &lie));
    }

    #[test]
    fn a_record_survives_its_json_form() {
        let s = record();
        assert_eq!(Settlement::from_json(&s.to_json()).unwrap(), s);
        let mut extra = s.to_json();
        extra["surprise"] = Value::from(1);
        assert!(Settlement::from_json(&extra).is_err());
    }

    #[test]
    fn compare_names_the_field_that_differs() {
        let want = record();
        let mut got = want.clone();
        got.entries[1].share_urtc += 1;
        let mut report = Report::default();
        assert!(!compare(&mut report, 7, &want, &got));
        assert_eq!(report.mismatches, 1);
        let mut report = Report::default();
        assert!(compare(&mut report, 7, &want, &want.clone()));
        // Two entries swapped: every field agrees, the bytes do not.
        let mut swapped = want.clone();
        swapped.entries.swap(0, 1);
        let mut report = Report::default();
        assert!(!compare(&mut report, 7, &want, &swapped));
    }
}
