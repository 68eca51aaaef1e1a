//! Settlement: the pure function from (chain spec, epoch, enrolled weights, pending transfers and
//! the senders' accounts) to the epoch's `Settlement` record, and the record's hash. Integers only;
//! every ordering is explicit. `docs/PROTOCOL.md` specifies the rules and the encoding byte by byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Hash32, HashWriter};
use crate::enrollment::Bindings;
use crate::spec::ChainSpec;

/// Version of the settlement record layout; part of the hashed bytes.
/// Version 2 added `transfers` and `transfer_changes`; version 3 added `bindings`.
pub const SETTLEMENT_VERSION: u64 = 3;

/// An immutable string shared by reference count: a transfer's hash and addresses are copied
/// from the input into the record (and into `transfer_changes`) without copying their bytes.
/// Serialized exactly as a `String`.
pub type Text = std::sync::Arc<str>;

/// One enrolled wallet's line in a settlement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementEntry {
    /// The wallet (the attestation's `miner` field) that receives the share.
    pub miner: String,
    /// Enrolled weight in fixed-point units (1.0x = 1e9).
    pub weight: u64,
    pub share_urtc: u64,
}

/// What an epoch paid, to whom. Field order is the hashed order; do not reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub version: u64,
    pub network_id: String,
    pub epoch: u64,
    pub pot_urtc: u64,
    /// Hash of the previous settled epoch's record on this chain (all zeros for the first).
    #[serde(with = "serde_bytes")]
    pub prev_settlement_hash: Hash32,
    pub total_weight: u64,
    /// Sum of all shares: the pot when anyone is enrolled, 0 otherwise.
    pub distributed_urtc: u64,
    /// Sorted by `miner`, ascending by UTF-8 bytes; one entry per wallet.
    pub entries: Vec<SettlementEntry>,
    /// Every transfer this settlement judged, in the order it judged them: by `from`, then
    /// `nonce`, then `tx_hash` (all ascending).
    pub transfers: Vec<TransferOutcome>,
    /// What the applied transfers did to balances, one line per address they moved, sorted by
    /// `address`. With the shares in `entries` this is everything the epoch changes: see
    /// [`Settlement::balance_changes`].
    pub transfer_changes: Vec<BalanceChange>,
    /// What this epoch bound that no earlier certified settlement had (a serial to a wallet, a
    /// wallet name to a key: PROTOCOL.md §7), sorted by `kind`, then `key`. Once certified, a
    /// binding holds for every later epoch.
    pub bindings: Vec<NewBinding>,
}

/// One binding an epoch made. Field order is the hashed order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBinding {
    /// `profile` (key: machine, owner: profile text), `serial` (key: serial hash, owner: wallet) or
    /// `wallet_key` (key: wallet, owner: public key hex).
    pub kind: String,
    pub key: String,
    pub owner: String,
}

/// A verified transfer waiting to be settled: the fields the settlement needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PendingTransfer {
    pub tx_hash: Text,
    pub from: Text,
    pub to: Text,
    pub amount_urtc: u64,
    pub nonce: u64,
}

/// A sender's state before the epoch: its confirmed balance and the nonce of its last applied
/// transfer (none yet: `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance_urtc: u64,
    pub last_nonce: Option<u64>,
}

/// What the settlement decided for one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferResult {
    Applied,
    /// The sender's balance at that point was below the amount.
    InsufficientBalance,
    /// The nonce was not above the sender's last applied nonce at that point.
    StaleNonce,
    /// Another transfer with the same sender and nonce was in the same settlement: all of them
    /// are rejected, and the record keeps them all as evidence.
    Conflict,
}

impl TransferResult {
    pub fn as_str(&self) -> &'static str {
        match self {
            TransferResult::Applied => "applied",
            TransferResult::InsufficientBalance => "insufficient_balance",
            TransferResult::StaleNonce => "stale_nonce",
            TransferResult::Conflict => "conflict",
        }
    }
}

/// One judged transfer. Field order is the hashed order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOutcome {
    pub tx_hash: Text,
    pub from: Text,
    pub to: Text,
    pub amount_urtc: u64,
    pub nonce: u64,
    pub result: TransferResult,
}

/// One address's movement by the epoch's applied transfers. Field order is the hashed order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceChange {
    pub address: Text,
    /// Applied transfers received.
    pub credit_urtc: u64,
    /// Applied transfers sent.
    pub debit_urtc: u64,
}

/// The epoch's transfers and the accounts of their senders (absent = zero balance, no nonce).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferInput {
    /// Keyed by tx hash, so the same transfer counted twice is one transfer.
    pub pending: BTreeMap<Text, PendingTransfer>,
    pub accounts: BTreeMap<Text, Account>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettleError {
    #[error("total weight overflows 64 bits")]
    WeightOverflow,
    #[error("a balance would overflow 64 bits or go below zero")]
    BalanceOverflow,
}

/// The reference node's largest-remainder split: `floor(pot * w / W)` each, then the leftover
/// micro-RTC one each to the largest remainders `(pot * w) mod W`, ties by miner ascending.
/// Returns shares in the order of `weights` (sorted by miner). Zero total weight pays nothing.
pub fn split_pot(pot: u64, weights: &BTreeMap<String, u64>) -> Result<Vec<u64>, SettleError> {
    let total: u64 = weights.values().try_fold(0u64, |a, w| a.checked_add(*w)).ok_or(SettleError::WeightOverflow)?;
    if total == 0 {
        return Ok(vec![0; weights.len()]);
    }
    let (pot, total) = (pot as u128, total as u128);
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, w) in weights.values().enumerate() {
        let p = pot * *w as u128;
        shares.push((p / total) as u64);
        remainders.push((p % total, i));
    }
    let paid: u128 = shares.iter().map(|s| *s as u128).sum();
    let leftover = (pot - paid) as usize; // < number of miners, since each floor loses < 1
    // Largest remainder first; the BTreeMap index order is miner order, so ties go to the smaller id.
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(leftover) {
        shares[i] += 1;
    }
    Ok(shares)
}

/// A string ordered as its bytes, with its first 48 bytes held in the key as three big-endian
/// integers: addresses (43 bytes) compare, sort and match without reading the string itself.
#[derive(Clone, Copy, Debug)]
struct AddrKey<'a> {
    head: (u128, u128, u128),
    s: &'a Text,
}

const KEY_HEAD: usize = 48;

impl<'a> AddrKey<'a> {
    fn of(s: &'a Text) -> AddrKey<'a> {
        let mut b = [0u8; KEY_HEAD];
        let n = s.len().min(KEY_HEAD);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        let word = |i: usize| u128::from_be_bytes(b[i * 16..i * 16 + 16].try_into().expect("16 bytes"));
        AddrKey { head: (word(0), word(1), word(2)), s }
    }
}

impl Ord for AddrKey<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Equal heads: the strings agree on their first 48 bytes (short ones padded with zeros).
        // If both fit in the head, the shorter is a prefix of the longer: order by length.
        self.head.cmp(&other.head).then_with(|| match (self.s.len(), other.s.len()) {
            (a, b) if a <= KEY_HEAD && b <= KEY_HEAD => a.cmp(&b),
            _ => self.s.as_bytes().cmp(other.s.as_bytes()),
        })
    }
}

impl PartialOrd for AddrKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for AddrKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for AddrKey<'_> {}

/// Settle `epoch`: split the spec's pot over the enrolled wallets' weights, credit the shares, then
/// judge the pending transfers (docs/PROTOCOL.md §12):
///
/// 1. Transfers are taken in the order (`from`, `nonce`, `tx_hash`), ascending.
/// 2. Two or more different transfers with the same `from` and `nonce`: all are `conflict`.
/// 3. Otherwise a transfer whose nonce is not above the sender's last applied nonce (as it stands
///    at that point) is `stale_nonce`; one whose amount is above the sender's balance at that
///    point (before the epoch, plus this epoch's credits and applied transfers judged before it)
///    is `insufficient_balance`; any other is `applied`: it moves the amount and becomes the
///    sender's last nonce.
pub fn settle(
    spec: &ChainSpec,
    epoch: u64,
    prev_settlement_hash: Hash32,
    weights: &BTreeMap<String, u64>,
    bindings: &Bindings,
    transfers: &TransferInput,
) -> Result<Settlement, SettleError> {
    let shares = split_pot(spec.epoch_pot_urtc, weights)?;
    let entries: Vec<SettlementEntry> = weights
        .iter()
        .zip(shares)
        .map(|((miner, weight), share_urtc)| SettlementEntry { miner: miner.clone(), weight: *weight, share_urtc })
        .collect();
    // The transfers in judging order (ordering by `AddrKey` is ordering by the string's bytes).
    // The tx hash only breaks ties of one sender's nonce (rare): it is read only then.
    let mut ordered: Vec<(AddrKey<'_>, u64, &PendingTransfer)> =
        transfers.pending.values().map(|t| (AddrKey::of(&t.from), t.nonce, t)).collect();
    ordered.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| a.2.tx_hash.cmp(&b.2.tx_hash)));
    // Every address a transfer names, numbered in address order: credits and debits are kept by
    // number, and `transfer_changes` comes out in address order by walking the numbers. One sort
    // of all (address, transfer, sender or receiver) references numbers them all.
    let mut refs: Vec<(AddrKey<'_>, u32)> = Vec::with_capacity(2 * ordered.len());
    for (k, t) in ordered.iter().enumerate() {
        let k = u32::try_from(2 * k).expect("fewer than 2^31 transfers");
        refs.push((t.0, k));
        refs.push((AddrKey::of(&t.2.to), k | 1));
    }
    refs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut addresses: Vec<AddrKey<'_>> = Vec::with_capacity(refs.len());
    // The number of each transfer's sender ([2k]) and receiver ([2k + 1]).
    let mut numbers = vec![0u32; refs.len()];
    for (key, r) in &refs {
        if addresses.last() != Some(key) {
            addresses.push(*key);
        }
        numbers[*r as usize] = (addresses.len() - 1) as u32;
    }
    drop(refs);
    // (credit, debit, named by an applied transfer) per address number, by the transfers applied so far.
    let mut moved: Vec<(u64, u64, bool)> = vec![(0, 0, false); addresses.len()];
    let mut outcomes = Vec::with_capacity(ordered.len());
    // Senders come in ascending order, and so do `entries` (by miner) and the accounts: each is
    // walked once, alongside.
    let mut accounts = transfers.accounts.iter().peekable();
    let mut shares = entries.iter().peekable();
    // One sender at a time (its transfers are contiguous in the order). A sender cannot pay
    // itself, so while its own transfers are judged only its own debits change its balance:
    // its account, share and credits so far are read once per sender.
    let mut i = 0;
    while i < ordered.len() {
        let from_key = ordered[i].0;
        let from: &str = from_key.s;
        let sender = numbers[2 * i] as usize;
        let end = i + ordered[i..].iter().take_while(|t| t.0 == from_key).count();
        while accounts.next_if(|(a, _)| &***a < from).is_some() {}
        let account = accounts.next_if(|(a, _)| &***a == from).map(|(_, a)| *a).unwrap_or_default();
        while shares.next_if(|e| e.miner.as_str() < from).is_some() {}
        let share = shares.next_if(|e| e.miner == from).map_or(0, |e| e.share_urtc);
        // Rewards are credited before any transfer. Never negative: a debit is applied only when covered.
        let mut available = u128::from(account.balance_urtc) + u128::from(share) + u128::from(moved[sender].0);
        let mut last_nonce = account.last_nonce;
        let mut debit = 0u64;
        for k in i..end {
            let t = ordered[k].2;
            // Same sender and nonce sort next to each other.
            let conflict = (k + 1 < end && ordered[k + 1].1 == t.nonce) || (k > i && ordered[k - 1].1 == t.nonce);
            let result = if conflict {
                TransferResult::Conflict
            } else if last_nonce.is_some_and(|n| t.nonce <= n) {
                TransferResult::StaleNonce
            } else if u128::from(t.amount_urtc) > available {
                TransferResult::InsufficientBalance
            } else {
                TransferResult::Applied
            };
            if result == TransferResult::Applied {
                last_nonce = Some(t.nonce);
                available -= u128::from(t.amount_urtc);
                debit = debit.checked_add(t.amount_urtc).ok_or(SettleError::BalanceOverflow)?;
                let to = &mut moved[numbers[2 * k + 1] as usize];
                to.0 = to.0.checked_add(t.amount_urtc).ok_or(SettleError::BalanceOverflow)?;
                to.2 = true;
            }
            outcomes.push(TransferOutcome {
                tx_hash: t.tx_hash.clone(),
                from: t.from.clone(),
                to: t.to.clone(),
                amount_urtc: t.amount_urtc,
                nonce: t.nonce,
                result,
            });
        }
        if debit > 0 {
            moved[sender].1 = debit;
            moved[sender].2 = true;
        }
        i = end;
    }
    let transfer_changes = addresses
        .iter()
        .zip(moved)
        .filter(|(_, m)| m.2)
        .map(|(a, (credit_urtc, debit_urtc, _))| BalanceChange { address: a.s.clone(), credit_urtc, debit_urtc })
        .collect();
    Ok(Settlement {
        version: SETTLEMENT_VERSION,
        network_id: spec.network_id.clone(),
        epoch,
        pot_urtc: spec.epoch_pot_urtc,
        prev_settlement_hash,
        total_weight: weights.values().sum(),
        distributed_urtc: entries.iter().map(|e| e.share_urtc).sum(),
        entries,
        transfers: outcomes,
        transfer_changes,
        // `Bindings` is ordered by (kind, key), and `BindingKind` is declared in the order of the
        // kinds' names, so this is the order of PROTOCOL.md §8.3 (kind text, then key).
        bindings: bindings
            .iter()
            .map(|((kind, key), owner)| NewBinding { kind: kind.as_str().to_owned(), key: key.clone(), owner: owner.clone() })
            .collect(),
    })
}

/// The state settlements build on, as a model: every account and the transfers already judged. The
/// node keeps the same state in its database (`node/src/store/mod.rs`); the property tests use this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub accounts: BTreeMap<String, Account>,
    /// Tx hashes judged by an applied settlement (applied or rejected): never judged again.
    pub judged: std::collections::BTreeSet<String>,
}

impl Ledger {
    /// The input of the next settlement: `pending` minus what was judged, with the senders' accounts.
    pub fn input(&self, pending: impl IntoIterator<Item = PendingTransfer>) -> TransferInput {
        let mut input = TransferInput::default();
        for t in pending.into_iter().filter(|t| !self.judged.contains(&*t.tx_hash)) {
            if let Some(a) = self.accounts.get(&*t.from) {
                input.accounts.insert(t.from.clone(), *a);
            }
            input.pending.insert(t.tx_hash.clone(), t);
        }
        input
    }

    /// Apply a settlement: add its balance changes, move the senders' nonces, remember its transfers.
    pub fn apply(&mut self, s: &Settlement) -> Result<(), SettleError> {
        for c in &s.balance_changes() {
            let a = self.accounts.entry(c.address.to_string()).or_default();
            a.balance_urtc = a
                .balance_urtc
                .checked_add(c.credit_urtc)
                .and_then(|b| b.checked_sub(c.debit_urtc))
                .ok_or(SettleError::BalanceOverflow)?;
        }
        for t in &s.transfers {
            if t.result == TransferResult::Applied {
                self.accounts.entry(t.from.to_string()).or_default().last_nonce = Some(t.nonce);
            }
            self.judged.insert(t.tx_hash.to_string());
        }
        Ok(())
    }
}

impl Settlement {
    /// Everything the epoch does to balances: each share plus the transfers' credits as a credit,
    /// the transfers' debits as a debit; one line per address, sorted by address.
    pub fn balance_changes(&self) -> Vec<BalanceChange> {
        let mut all: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.share_urtc > 0) {
            all.entry(e.miner.as_str()).or_default().0 += e.share_urtc;
        }
        for c in &self.transfer_changes {
            let a = all.entry(&*c.address).or_default();
            a.0 = a.0.saturating_add(c.credit_urtc);
            a.1 = a.1.saturating_add(c.debit_urtc);
        }
        all.into_iter().map(|(a, (credit_urtc, debit_urtc))| BalanceChange { address: a.into(), credit_urtc, debit_urtc }).collect()
    }

    /// The canonical bytes: CBOR (RFC 8949) as specified in docs/PROTOCOL.md.
    ///
    /// Written by cbor4ii, which encodes this record several times faster than ciborium (used
    /// for decoding); both write definite lengths, shortest integer forms and fields in
    /// declaration order, and the tests hold the two to the same bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let out = Vec::with_capacity(64 + self.entries.len() * 48 + self.transfers.len() * 200);
        cbor4ii::serde::to_vec(out, self).expect("writing CBOR to a Vec cannot fail")
    }

    /// SHA-256 of the canonical bytes.
    pub fn hash(&self) -> Hash32 {
        // Streamed: a settlement with many transfers is tens of megabytes of CBOR.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, HashWriter::default());
        cbor4ii::serde::to_writer(&mut out, self).expect("hashing cannot fail");
        out.into_inner().map_err(|_| ()).expect("flushing into a hash cannot fail").finish()
    }

    /// The JSON form served by the API and used in docs: hashes as lowercase hex.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "network_id": self.network_id,
            "epoch": self.epoch,
            "pot_urtc": self.pot_urtc,
            "prev_settlement_hash": hex::encode(self.prev_settlement_hash),
            "total_weight": self.total_weight,
            "distributed_urtc": self.distributed_urtc,
            "entries": self.entries.iter().map(|e| serde_json::json!({
                "miner": e.miner, "weight": e.weight, "share_urtc": e.share_urtc,
            })).collect::<Vec<_>>(),
            "transfers": self.transfers.iter().map(|t| serde_json::json!({
                "tx_hash": t.tx_hash, "from": t.from, "to": t.to, "amount_urtc": t.amount_urtc,
                "nonce": t.nonce, "result": t.result.as_str(),
            })).collect::<Vec<_>>(),
            "transfer_changes": self.transfer_changes.iter().map(|c| serde_json::json!({
                "address": c.address, "credit_urtc": c.credit_urtc, "debit_urtc": c.debit_urtc,
            })).collect::<Vec<_>>(),
            "bindings": self.bindings.iter().map(|b| serde_json::json!({
                "kind": b.kind, "key": b.key, "owner": b.owner,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Settlement, ciborium::de::Error<std::io::Error>> {
        ciborium::from_reader(bytes)
    }

    /// The record from its JSON form ([`Settlement::to_json`]; `prev_settlement_hash` as 64 hex
    /// digits). Unknown fields are refused; the caller recomputes the hash from what was read.
    pub fn from_json(v: &serde_json::Value) -> Result<Settlement, String> {
        let mut v = v.clone();
        let obj = v.as_object_mut().ok_or("a settlement record is a JSON object")?;
        let prev = obj.get("prev_settlement_hash").and_then(|h| h.as_str()).ok_or("prev_settlement_hash is missing")?;
        let prev = crate::crypto::decode_hex::<32>("prev_settlement_hash", prev).map_err(|e| e.to_string())?;
        obj.insert("prev_settlement_hash".into(), serde_json::Value::from(prev.to_vec()));
        let keys = ["version", "network_id", "epoch", "pot_urtc", "prev_settlement_hash", "total_weight", "distributed_urtc", "entries", "transfers", "transfer_changes", "bindings"];
        if let Some(k) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(format!("unknown field {k:?} in a settlement record"));
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn weights(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(m, w)| (m.to_string(), *w)).collect()
    }

    fn split_named(pot: u64, pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        let w = weights(pairs);
        w.keys().cloned().zip(split_pot(pot, &w).unwrap()).collect()
    }

    #[test]
    fn vector_v1() {
        let got = split_named(1_500_000, &[("alice", 2_500_000_000), ("bob", 800_000_000), ("carol", 1_000_000_000)]);
        assert_eq!(got, weights(&[("alice", 872093), ("bob", 279070), ("carol", 348837)]));
    }

    #[test]
    fn vector_v1b_equal_three() {
        let got = split_named(1_000_000, &[("m1", 1), ("m2", 1), ("m3", 1)]);
        assert_eq!(got, weights(&[("m1", 333334), ("m2", 333333), ("m3", 333333)]));
    }

    #[test]
    fn vector_v1c_tiebreak() {
        let got = split_named(10, &[("z", 3), ("y", 3), ("x", 1)]);
        assert_eq!(got, weights(&[("z", 4), ("y", 4), ("x", 2)]));
    }

    #[test]
    fn empty_epoch_pays_nothing() {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let s = settle(&spec, 7, [0; 32], &BTreeMap::new(), &Bindings::new(), &TransferInput::default()).unwrap();
        assert_eq!((s.distributed_urtc, s.entries.len(), s.total_weight), (0, 0, 0));
    }

    #[test]
    fn golden_bytes_and_hash() {
        // The worked example in docs/PROTOCOL.md, cross-checked with scripts/settlement_hash.py (an
        // independent Python encoder). Changing these bytes is a consensus change.
        let spec = ChainSpec::builtin("mainnet").unwrap();
        let s = settle(&spec, 355, [0x11; 32],
            &weights(&[("alice", 2_500_000_000), ("bob", 800_000_000), ("carol", 1_000_000_000)]), &Bindings::new(), &TransferInput::default()).unwrap();
        let bytes = s.canonical_bytes();
        assert_eq!(hex::encode(&bytes), GOLDEN_HEX);
        assert_eq!(hex::encode(s.hash()), GOLDEN_HASH);
        assert_eq!(Settlement::from_cbor(&bytes).unwrap(), s);
    }

    #[test]
    fn golden_empty_epoch() {
        // Worked example 2 in docs/PROTOCOL.md: an epoch nobody enrolled in.
        let spec = ChainSpec::builtin("devnet").unwrap();
        let prev: Hash32 = hex::decode(GOLDEN_HASH).unwrap().try_into().unwrap();
        let s = settle(&spec, 1_410_000, prev, &BTreeMap::new(), &Bindings::new(), &TransferInput::default()).unwrap();
        assert_eq!(hex::encode(s.canonical_bytes()), "ab6776657273696f6e036a6e6574776f726b5f6964666465766e65746565706f63681a001583d068706f745f757274631a0016e36074707265765f736574746c656d656e745f686173685820dcc6450b0771f810b4b7ee34c45f66f60c4914dd7c678fb9a35549429f676a026c746f74616c5f776569676874007064697374726962757465645f757274630067656e747269657380697472616e736665727380707472616e736665725f6368616e676573806862696e64696e677380");
        assert_eq!(hex::encode(s.hash()), "4a851cf7963a20d816777e2bd15dd33c01f6f0f24809c7fbcb3f9a9400c26d89");
    }

    /// Worked example 3 in docs/PROTOCOL.md: the rewards of example 1, then four transfers: one
    /// applied, one over the balance, two with the same sender and nonce.
    fn example_with_transfers() -> Settlement {
        let spec = ChainSpec::builtin("mainnet").unwrap();
        let t = |tx: &str, from: &str, to: &str, amount_urtc: u64, nonce: u64| {
            (tx.into(), PendingTransfer { tx_hash: tx.into(), from: from.into(), to: to.into(), amount_urtc, nonce })
        };
        let input = TransferInput {
            pending: [
                t("aa01", "alice", "dave", 500_000, 8),
                t("bb02", "bob", "carol", 2_000_000, 3),
                t("cc03", "carol", "alice", 100, 1),
                t("cc04", "carol", "bob", 200, 1),
            ]
            .into_iter()
            .collect(),
            accounts: [("alice".into(), Account { balance_urtc: 10, last_nonce: Some(7) })].into_iter().collect(),
        };
        settle(&spec, 356, [0x22; 32],
            &weights(&[("alice", 2_500_000_000), ("bob", 800_000_000), ("carol", 1_000_000_000)]), &example_bindings(), &input).unwrap()
    }

    /// Example 3's bindings: alice's serial, and the wallet names' keys.
    fn example_bindings() -> Bindings {
        use crate::enrollment::BindingKind::{Serial, WalletKey};
        [
            ((Serial, "6b0032bb4aa5ae248b6f7aa17b5ddeaf8d787a37".to_owned()), "alice".to_owned()),
            ((WalletKey, "alice".to_owned()), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8".to_owned()),
            ((WalletKey, "bob".to_owned()), "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c".to_owned()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn bindings_are_listed_by_kind_name_then_key() {
        use crate::enrollment::BindingKind::{Profile, Serial, WalletKey};
        let spec = ChainSpec::builtin("devnet").unwrap();
        let b: Bindings = [
            ((WalletKey, "a".to_owned()), "k".to_owned()),
            ((Serial, "b".to_owned()), "w".to_owned()),
            ((Profile, "c".to_owned()), "1.2.3.4.5".to_owned()),
            ((Serial, "a".to_owned()), "w".to_owned()),
        ]
        .into_iter()
        .collect();
        let s = settle(&spec, 1, [0; 32], &BTreeMap::new(), &b, &TransferInput::default()).unwrap();
        let got: Vec<(&str, &str)> = s.bindings.iter().map(|x| (x.kind.as_str(), x.key.as_str())).collect();
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got[0], ("profile", "c"));
    }

    #[test]
    fn golden_with_transfers() {
        let s = example_with_transfers();
        let results: Vec<_> = s.transfers.iter().map(|t| (&*t.tx_hash, t.result)).collect();
        assert_eq!(results, [
            ("aa01", TransferResult::Applied),
            ("bb02", TransferResult::InsufficientBalance),
            ("cc03", TransferResult::Conflict),
            ("cc04", TransferResult::Conflict),
        ]);
        let changes: Vec<_> = s.transfer_changes.iter().map(|c| (&*c.address, c.credit_urtc, c.debit_urtc)).collect();
        assert_eq!(changes, [("alice", 0, 500_000), ("dave", 500_000, 0)]);
        let all: Vec<_> = s.balance_changes().iter().map(|c| (c.address.clone(), c.credit_urtc, c.debit_urtc)).collect();
        let all: Vec<_> = all.iter().map(|(a, c, d)| (&**a, *c, *d)).collect();
        assert_eq!(all, [("alice", 872093, 500_000), ("bob", 279070, 0), ("carol", 348837, 0), ("dave", 500_000, 0)]);
        if std::env::var_os("PRINT_GOLDEN").is_some() {
            println!("{}", s.to_json());
        }
        assert_eq!(hex::encode(s.hash()), GOLDEN_TRANSFERS_HASH);
        assert_eq!(Settlement::from_cbor(&s.canonical_bytes()).unwrap(), s);
    }

    const GOLDEN_TRANSFERS_HASH: &str = "6dbb11fae9feee0810a5e0072425bc39111532e1b1db37862391441bef20870b";
    const GOLDEN_HEX: &str = "ab6776657273696f6e036a6e6574776f726b5f6964676d61696e6e65746565706f636819016368706f745f757274631a0016e36074707265765f736574746c656d656e745f68617368582011111111111111111111111111111111111111111111111111111111111111116c746f74616c5f7765696768741b00000001004ccb007064697374726962757465645f757274631a0016e36067656e747269657383a3656d696e657265616c696365667765696768741a9502f9006a73686172655f757274631a000d4e9da3656d696e657263626f62667765696768741a2faf08006a73686172655f757274631a0004421ea3656d696e6572656361726f6c667765696768741a3b9aca006a73686172655f757274631a000552a5697472616e736665727380707472616e736665725f6368616e676573806862696e64696e677380";
    const GOLDEN_HASH: &str = "dcc6450b0771f810b4b7ee34c45f66f60c4914dd7c678fb9a35549429f676a02";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn shares_sum_to_the_pot(ws in prop::collection::vec(1u64..=3_000_000_000, 1..10_000), pot in 0u64..=2_000_000) {
            let w: BTreeMap<String, u64> = ws.iter().enumerate().map(|(i, w)| (format!("m{i:05}"), *w)).collect();
            let shares = split_pot(pot, &w).unwrap();
            prop_assert_eq!(shares.iter().sum::<u64>(), pot);
            // No miner is more than 1 uRTC away from its exact proportional share.
            let total: u128 = w.values().map(|x| *x as u128).sum();
            for (s, wi) in shares.iter().zip(w.values()) {
                let floor = (pot as u128 * *wi as u128 / total) as u64;
                prop_assert!(*s == floor || *s == floor + 1);
            }
        }

        #[test]
        fn settle_ignores_input_order(
            (claims, shuffled) in prop::collection::vec(("[a-e]{1,2}", 0u8..3, 0u64..6, 1u64..5_000_000_000, prop::option::of(0u8..4)), 0..60)
                .prop_map(|cs| cs.into_iter().enumerate().map(|(i, (wallet, key, slot, weight, serial))| crate::enrollment::Claim {
                    wallet, key: format!("k{key}"), slot, id: crate::crypto::sha256(&(i as u64).to_be_bytes()), weight,
                    serial_hash: serial.map(|s| format!("s{s}")), profile: Default::default(),
                }).collect::<Vec<_>>())
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
            again in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            // The whole path from an epoch's claims (one wallet under several keys, one serial
            // under several wallets, ties on slot) to its hashed record: claims in another order,
            // some delivered twice, give the same bytes.
            let spec = ChainSpec::builtin("devnet").unwrap();
            let mut other = shuffled;
            if !claims.is_empty() {
                for idx in &again {
                    other.push(claims[idx.index(claims.len())].clone());
                }
            }
            let settle_claims = |cs: &[crate::enrollment::Claim]| {
                let e = crate::enrollment::enroll(cs, &Bindings::new(), &Default::default());
                let weights: BTreeMap<String, u64> = e.enrolled.iter().map(|(w, x)| (w.clone(), x.weight)).collect();
                settle(&spec, 3, [0; 32], &weights, &e.new_bindings, &TransferInput::default()).unwrap()
            };
            let (sa, sb) = (settle_claims(&claims), settle_claims(&other));
            prop_assert_eq!(sa.canonical_bytes(), sb.canonical_bytes());
            prop_assert_eq!(sa.distributed_urtc, if claims.is_empty() { 0 } else { spec.epoch_pot_urtc });
        }

        /// `AddrKey` orders exactly as the strings' bytes, at every length around its 48-byte head
        /// (a small alphabet with NUL makes long shared prefixes and zero padding ties).
        #[test]
        fn addr_key_orders_as_bytes(a in "[\\x00ab]{0,60}", b in "[\\x00ab]{0,12}", cut in 0usize..60) {
            // Shared prefixes of every length, and pairs equal but for trailing NULs.
            let b = match cut % 3 {
                0 if cut <= a.len() => format!("{}{}", &a[..cut], b),
                1 => format!("{a}{}", "\0".repeat(cut % 4)),
                _ => b,
            };
            let (ta, tb): (Text, Text) = (a.as_str().into(), b.as_str().into());
            prop_assert_eq!(AddrKey::of(&ta).cmp(&AddrKey::of(&tb)), a.as_bytes().cmp(b.as_bytes()));
            prop_assert_eq!(AddrKey::of(&ta) == AddrKey::of(&tb), a == b);
        }

        /// The hashed bytes come from cbor4ii; ciborium (which decodes them) must write the same
        /// bytes for any record: every field kind, integers of every CBOR length, UTF-8 text.
        #[test]
        fn encoders_agree(
            weights in prop::collection::btree_map("[a-z\u{e9}\u{4e16}]{0,30}", any::<u32>().prop_map(u64::from), 0..40),
            transfers in prop::collection::vec(("[a-f0-9]{0,70}", "[a-c]{1,3}", "[a-d]{1,3}", any::<u64>(), any::<u64>()), 0..40),
            accounts in prop::collection::btree_map("[a-c]{1,3}", (any::<u64>(), any::<Option<u64>>()), 0..10),
            bindings in prop::collection::btree_map(
                (prop_oneof![Just(crate::enrollment::BindingKind::Serial), Just(crate::enrollment::BindingKind::WalletKey)], "[a-f0-9\u{e9}]{0,40}"),
                "[a-z0-9]{0,64}", 0..10),
            epoch in any::<u64>(), prev in any::<[u8; 32]>(),
        ) {
            let spec = ChainSpec::builtin("devnet").unwrap();
            let input = TransferInput {
                pending: transfers.into_iter().map(|(tx, from, to, amount_urtc, nonce)| (tx.as_str().into(), PendingTransfer {
                    tx_hash: tx.into(), from: from.into(), to: to.into(), amount_urtc, nonce,
                })).collect(),
                accounts: accounts.into_iter().map(|(a, (balance_urtc, last_nonce))| (a.into(), Account { balance_urtc, last_nonce })).collect(),
            };
            // Overflowing inputs are refused, not encoded.
            if let Ok(s) = settle(&spec, epoch, prev, &weights, &bindings, &input) {
                let mut reference = Vec::new();
                ciborium::into_writer(&s, &mut reference).unwrap();
                prop_assert_eq!(&s.canonical_bytes(), &reference);
                prop_assert_eq!(s.hash(), crate::crypto::sha256(&reference));
                prop_assert_eq!(Settlement::from_cbor(&reference).unwrap(), s);
            }
        }
    }
}
