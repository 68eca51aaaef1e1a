//! Settlement: the pure function from (chain spec, epoch, enrolled weights, pending transfers and
//! the senders' accounts) to the epoch's `Settlement` record, and the record's hash. Integers only;
//! every ordering is explicit. `docs/PROTOCOL.md` specifies the rules and the encoding byte by byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Hash32, sha256};
use crate::spec::ChainSpec;

/// Version of the settlement record layout; part of the hashed bytes.
/// Version 2 added `transfers` and `transfer_changes`.
pub const SETTLEMENT_VERSION: u64 = 2;

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
}

/// A verified transfer waiting to be settled: the fields the settlement needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PendingTransfer {
    pub tx_hash: String,
    pub from: String,
    pub to: String,
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
    pub tx_hash: String,
    pub from: String,
    pub to: String,
    pub amount_urtc: u64,
    pub nonce: u64,
    pub result: TransferResult,
}

/// One address's movement by the epoch's applied transfers. Field order is the hashed order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceChange {
    pub address: String,
    /// Applied transfers received.
    pub credit_urtc: u64,
    /// Applied transfers sent.
    pub debit_urtc: u64,
}

/// The epoch's transfers and the accounts of their senders (absent = zero balance, no nonce).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferInput {
    /// Keyed by tx hash, so the same transfer counted twice is one transfer.
    pub pending: BTreeMap<String, PendingTransfer>,
    pub accounts: BTreeMap<String, Account>,
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

/// A string ordered as its bytes, compared first by its first 16 bytes as one integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AddrKey<'a>(u128, &'a str);

impl<'a> AddrKey<'a> {
    fn of(s: &'a str) -> AddrKey<'a> {
        let mut b = [0u8; 16];
        let n = s.len().min(16);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        AddrKey(u128::from_be_bytes(b), s)
    }
}

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
    transfers: &TransferInput,
) -> Result<Settlement, SettleError> {
    let shares = split_pot(spec.epoch_pot_urtc, weights)?;
    let entries: Vec<SettlementEntry> = weights
        .iter()
        .zip(shares)
        .map(|((miner, weight), share_urtc)| SettlementEntry { miner: miner.clone(), weight: *weight, share_urtc })
        .collect();
    // Every lookup below is by address. Keys lead with the address's first 16 bytes as a
    // big-endian integer, so most comparisons never leave the (contiguous) key: ordering by
    // (prefix, address) is ordering by address (a tie on the prefix falls back to the bytes).
    let mut ordered: Vec<(AddrKey<'_>, u64, AddrKey<'_>, &PendingTransfer)> =
        transfers.pending.values().map(|t| (AddrKey::of(&t.from), t.nonce, AddrKey::of(&t.tx_hash), t)).collect();
    ordered.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    // (credit, debit) per address by the transfers applied so far: the record's `transfer_changes`.
    let mut moved: BTreeMap<AddrKey<'_>, (u64, u64)> = BTreeMap::new();
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
        let from = from_key.1;
        let end = i + ordered[i..].iter().take_while(|t| t.0 == from_key).count();
        while accounts.next_if(|(a, _)| a.as_str() < from).is_some() {}
        let account = accounts.next_if(|(a, _)| a.as_str() == from).map(|(_, a)| *a).unwrap_or_default();
        while shares.next_if(|e| e.miner.as_str() < from).is_some() {}
        let share = shares.next_if(|e| e.miner == from).map_or(0, |e| e.share_urtc);
        let credit = moved.get(&from_key).map_or(0, |c| c.0);
        // Rewards are credited before any transfer. Never negative: a debit is applied only when covered.
        let mut available = u128::from(account.balance_urtc) + u128::from(share) + u128::from(credit);
        let mut last_nonce = account.last_nonce;
        let mut debit = 0u64;
        for k in i..end {
            let t = ordered[k].3;
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
                let to = moved.entry(AddrKey::of(&t.to)).or_default();
                to.0 = to.0.checked_add(t.amount_urtc).ok_or(SettleError::BalanceOverflow)?;
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
            moved.entry(from_key).or_default().1 = debit;
        }
        i = end;
    }
    let transfer_changes = moved
        .into_iter()
        .map(|(a, (credit_urtc, debit_urtc))| BalanceChange { address: a.1.to_owned(), credit_urtc, debit_urtc })
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
    })
}

/// The state settlements build on, as a model: every account and the transfers already judged. The
/// node keeps the same state in its database (`node/src/store.rs`); the property tests use this.
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
        for t in pending.into_iter().filter(|t| !self.judged.contains(&t.tx_hash)) {
            if let Some(a) = self.accounts.get(&t.from) {
                input.accounts.insert(t.from.clone(), *a);
            }
            input.pending.insert(t.tx_hash.clone(), t);
        }
        input
    }

    /// Apply a settlement: add its balance changes, move the senders' nonces, remember its transfers.
    pub fn apply(&mut self, s: &Settlement) -> Result<(), SettleError> {
        for c in &s.balance_changes() {
            let a = self.accounts.entry(c.address.clone()).or_default();
            a.balance_urtc = a
                .balance_urtc
                .checked_add(c.credit_urtc)
                .and_then(|b| b.checked_sub(c.debit_urtc))
                .ok_or(SettleError::BalanceOverflow)?;
        }
        for t in &s.transfers {
            if t.result == TransferResult::Applied {
                self.accounts.entry(t.from.clone()).or_default().last_nonce = Some(t.nonce);
            }
            self.judged.insert(t.tx_hash.clone());
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
            let a = all.entry(c.address.as_str()).or_default();
            a.0 = a.0.saturating_add(c.credit_urtc);
            a.1 = a.1.saturating_add(c.debit_urtc);
        }
        all.into_iter().map(|(a, (credit_urtc, debit_urtc))| BalanceChange { address: a.to_owned(), credit_urtc, debit_urtc }).collect()
    }

    /// The canonical bytes: CBOR (RFC 8949) as specified in docs/PROTOCOL.md.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 48);
        ciborium::into_writer(self, &mut out).expect("writing CBOR to a Vec cannot fail");
        out
    }

    /// SHA-256 of the canonical bytes.
    pub fn hash(&self) -> Hash32 {
        sha256(&self.canonical_bytes())
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
        })
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Settlement, ciborium::de::Error<std::io::Error>> {
        ciborium::from_reader(bytes)
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
        let s = settle(&spec, 7, [0; 32], &BTreeMap::new(), &TransferInput::default()).unwrap();
        assert_eq!((s.distributed_urtc, s.entries.len(), s.total_weight), (0, 0, 0));
    }

    #[test]
    fn golden_bytes_and_hash() {
        // The worked example in docs/PROTOCOL.md, cross-checked with scripts/settlement_hash.py (an
        // independent Python encoder). Changing these bytes is a consensus change.
        let spec = ChainSpec::builtin("mainnet").unwrap();
        let s = settle(&spec, 355, [0x11; 32],
            &weights(&[("alice", 2_500_000_000), ("bob", 800_000_000), ("carol", 1_000_000_000)]), &TransferInput::default()).unwrap();
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
        let s = settle(&spec, 1_410_000, prev, &BTreeMap::new(), &TransferInput::default()).unwrap();
        assert_eq!(hex::encode(s.canonical_bytes()), "aa6776657273696f6e026a6e6574776f726b5f6964666465766e65746565706f63681a001583d068706f745f757274631a0016e36074707265765f736574746c656d656e745f68617368582024dbcc562882c7185e4257bda0642a2f26340ba38f4e728bad3ede9cff8491366c746f74616c5f776569676874007064697374726962757465645f757274630067656e747269657380697472616e736665727380707472616e736665725f6368616e67657380");
        assert_eq!(hex::encode(s.hash()), "1d28de4ef89786a12dca927251485ddb77b6caa73bf64dcddb7d8f47c9bc84d6");
    }

    /// Worked example 3 in docs/PROTOCOL.md: the rewards of example 1, then four transfers: one
    /// applied, one over the balance, two with the same sender and nonce.
    fn example_with_transfers() -> Settlement {
        let spec = ChainSpec::builtin("mainnet").unwrap();
        let t = |tx: &str, from: &str, to: &str, amount_urtc: u64, nonce: u64| {
            (tx.to_owned(), PendingTransfer { tx_hash: tx.into(), from: from.into(), to: to.into(), amount_urtc, nonce })
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
            accounts: [("alice".to_owned(), Account { balance_urtc: 10, last_nonce: Some(7) })].into_iter().collect(),
        };
        settle(&spec, 356, [0x22; 32],
            &weights(&[("alice", 2_500_000_000), ("bob", 800_000_000), ("carol", 1_000_000_000)]), &input).unwrap()
    }

    #[test]
    fn golden_with_transfers() {
        let s = example_with_transfers();
        let results: Vec<_> = s.transfers.iter().map(|t| (t.tx_hash.as_str(), t.result)).collect();
        assert_eq!(results, [
            ("aa01", TransferResult::Applied),
            ("bb02", TransferResult::InsufficientBalance),
            ("cc03", TransferResult::Conflict),
            ("cc04", TransferResult::Conflict),
        ]);
        let changes: Vec<_> = s.transfer_changes.iter().map(|c| (c.address.as_str(), c.credit_urtc, c.debit_urtc)).collect();
        assert_eq!(changes, [("alice", 0, 500_000), ("dave", 500_000, 0)]);
        let all: Vec<_> = s.balance_changes().iter().map(|c| (c.address.clone(), c.credit_urtc, c.debit_urtc)).collect();
        let all: Vec<_> = all.iter().map(|(a, c, d)| (a.as_str(), *c, *d)).collect();
        assert_eq!(all, [("alice", 872093, 500_000), ("bob", 279070, 0), ("carol", 348837, 0), ("dave", 500_000, 0)]);
        if std::env::var_os("PRINT_GOLDEN").is_some() {
            println!("{}", s.to_json());
        }
        assert_eq!(hex::encode(s.hash()), GOLDEN_TRANSFERS_HASH);
        assert_eq!(Settlement::from_cbor(&s.canonical_bytes()).unwrap(), s);
    }

    const GOLDEN_TRANSFERS_HASH: &str = "46f2839ad26950940493dea8286f659e89834d8ec4397457537b5a568ff18655";
    const GOLDEN_HEX: &str = "aa6776657273696f6e026a6e6574776f726b5f6964676d61696e6e65746565706f636819016368706f745f757274631a0016e36074707265765f736574746c656d656e745f68617368582011111111111111111111111111111111111111111111111111111111111111116c746f74616c5f7765696768741b00000001004ccb007064697374726962757465645f757274631a0016e36067656e747269657383a3656d696e657265616c696365667765696768741a9502f9006a73686172655f757274631a000d4e9da3656d696e657263626f62667765696768741a2faf08006a73686172655f757274631a0004421ea3656d696e6572656361726f6c667765696768741a3b9aca006a73686172655f757274631a000552a5697472616e736665727380707472616e736665725f6368616e67657380";
    const GOLDEN_HASH: &str = "24dbcc562882c7185e4257bda0642a2f26340ba38f4e728bad3ede9cff849136";

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
            (ordered, shuffled) in prop::collection::btree_map("[a-z]{1,8}", 1u64..5_000_000_000, 0..200)
                .prop_flat_map(|m| { let v: Vec<_> = m.into_iter().collect(); (Just(v.clone()), Just(v).prop_shuffle()) })
        ) {
            let spec = ChainSpec::builtin("devnet").unwrap();
            let a: BTreeMap<String, u64> = ordered.into_iter().collect();
            let b: BTreeMap<String, u64> = shuffled.into_iter().collect();
            let (sa, sb) = (settle(&spec, 3, [0; 32], &a, &TransferInput::default()).unwrap(), settle(&spec, 3, [0; 32], &b, &TransferInput::default()).unwrap());
            prop_assert_eq!(sa.canonical_bytes(), sb.canonical_bytes());
            prop_assert_eq!(sa.distributed_urtc, if a.is_empty() { 0 } else { spec.epoch_pot_urtc });
        }
    }
}
