//! The replicated miner registry. State: a grow-only set of verified records' claims per epoch
//! (`crdts::GSet`) and a grow-only set of verified transfer records, so merging is set union:
//! commutative, associative and idempotent by construction. Everything else (enrollment, serial
//! bindings, which epoch a transfer counts in, the settlements, the digest) is a pure view of those
//! sets, so it cannot depend on arrival order or on which node is local.
//!
//! Digest: the ids of an epoch fall into 4,096 buckets by their first 12 bits; a bucket's hash
//! covers its sorted ids and the epoch's root covers the non-empty buckets' hashes. Equal roots mean
//! equal sets; differing buckets say which ids to exchange (docs/PROTOCOL.md §11).

use std::collections::BTreeMap;

use crdts::{CvRDT, GSet};
use protocol::crypto::sha256_parts;
use protocol::enrollment::{self, BindingKind, Bindings, Claim, Enrollment};
use protocol::settlement::{self, Ledger, PendingTransfer, SettleError, Settlement, TransferInput};
use protocol::{ChainSpec, Hash32};
use serde::{Deserialize, Serialize};

/// Number of digest buckets (the first 12 bits of an id), as the wire protocol bounds them.
pub const BUCKETS: usize = protocol::wire::DIGEST_BUCKETS;

/// One verified record's claim. Records are content-addressed: the same id is the same claim.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub id: Hash32,
    pub wallet: String,
    /// The miner's public key (hex).
    pub key: String,
    pub slot: u64,
    pub weight: u64,
    pub serial_hash: Option<String>,
    /// The fingerprint's entropy profile.
    #[serde(default)]
    pub profile: [u16; 5],
}

impl Entry {
    pub fn claim(&self) -> Claim {
        Claim {
            wallet: self.wallet.clone(),
            key: self.key.clone(),
            slot: self.slot,
            id: self.id,
            weight: self.weight,
            serial_hash: self.serial_hash.clone(),
            profile: protocol::entropy::Profile(self.profile),
        }
    }
}

/// One verified transfer record: the transfer and its receipt's slot. The same transfer accepted by
/// two nodes is two entries with one `tx_hash`; it counts from the earlier slot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransferEntry {
    pub record_id: Hash32,
    pub slot: u64,
    pub transfer: PendingTransfer,
}

/// The bucket of an id.
pub fn bucket_of(id: &Hash32) -> u16 {
    (u16::from(id[0]) << 4) | u16::from(id[1] >> 4)
}

/// The registry: per epoch, a grow-only set of entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    epochs: BTreeMap<u64, GSet<Entry>>,
    transfers: GSet<TransferEntry>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, epoch: u64, entry: Entry) {
        self.epochs.entry(epoch).or_default().insert(entry);
    }

    pub fn insert_transfer(&mut self, entry: TransferEntry) {
        self.transfers.insert(entry);
    }

    /// State-based merge: pointwise union of the per-epoch sets, union of the transfer sets.
    pub fn merge(&mut self, other: Registry) {
        for (epoch, set) in other.epochs {
            self.epochs.entry(epoch).or_default().merge(set);
        }
        self.transfers.merge(other.transfers);
    }

    /// Transfers that count in `epoch` or before: each transfer once, from its earliest receipt.
    pub fn transfers_through(&self, spec: &ChainSpec, epoch: u64) -> Vec<PendingTransfer> {
        let mut first: BTreeMap<&str, (u64, &PendingTransfer)> = BTreeMap::new();
        let all = self.transfers.read();
        for e in &all {
            let slot = first.get(&*e.transfer.tx_hash).map_or(u64::MAX, |f| f.0);
            if e.slot < slot {
                first.insert(&*e.transfer.tx_hash, (e.slot, &e.transfer));
            }
        }
        first.into_values().filter(|(slot, _)| spec.epoch_of_slot(*slot) <= epoch).map(|(_, t)| t.clone()).collect()
    }

    /// Settle `from..=to` in order, each epoch on the ledger the ones before left: the registry's
    /// model of what every node does epoch by epoch. Returns the settlements and the final ledger.
    pub fn settle_chain(&self, spec: &ChainSpec, from: u64, to: u64) -> Result<(Vec<Settlement>, Ledger), SettleError> {
        let (mut ledger, mut prev, mut out) = (Ledger::default(), [0; 32], Vec::new());
        let mut bindings = self.bindings_before(from);
        for epoch in from..=to {
            let input = ledger.input(self.transfers_through(spec, epoch));
            let e = self.enrollment(epoch, &bindings);
            let s = settlement::settle(spec, epoch, prev, &enrollment::weights(&e.enrolled), &e.new_bindings, &input)?;
            ledger.apply(&s)?;
            bindings.extend(e.new_bindings);
            prev = s.hash();
            out.push(s);
        }
        Ok((out, ledger))
    }

    pub fn contains(&self, epoch: u64, entry: &Entry) -> bool {
        self.epochs.get(&epoch).is_some_and(|s| s.contains(entry))
    }

    /// An epoch's entries, ordered by id (one per id).
    pub fn entries(&self, epoch: u64) -> Vec<Entry> {
        let mut v: Vec<Entry> = self.epochs.get(&epoch).map(|s| s.read().into_iter().collect()).unwrap_or_default();
        v.dedup_by(|a, b| a.id == b.id);
        v
    }

    pub fn epochs(&self) -> impl Iterator<Item = u64> + '_ {
        self.epochs.keys().copied()
    }

    /// Attestation entries and transfer records.
    pub fn len(&self) -> usize {
        self.epochs.values().map(|s| s.read().len()).sum::<usize>() + self.transfers.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bindings the epochs before `epoch` made, each settled in order on the bindings of the
    /// ones before it (what the certified settlements of those epochs carry).
    pub fn bindings_before(&self, epoch: u64) -> Bindings {
        let mut b = Bindings::new();
        for e in self.epochs.keys().copied().filter(|e| *e < epoch) {
            let new = self.enrollment(e, &b).new_bindings;
            b.extend(new);
        }
        b
    }

    /// Who holds `serial_hash` after every epoch of this registry.
    pub fn serial_owner(&self, serial_hash: &str) -> Option<String> {
        self.bindings_before(u64::MAX).remove(&(BindingKind::Serial, serial_hash.to_owned()))
    }

    /// Enrollment in `epoch` (the protocol's rule, over this registry's claims and the bindings of
    /// the epochs before it).
    pub fn enrollment(&self, epoch: u64, certified: &Bindings) -> Enrollment {
        let claims: Vec<Claim> = self.entries(epoch).iter().map(Entry::claim).collect();
        enrollment::enroll(&claims, certified, &enrollment::profile_index(certified))
    }

    /// Settle `epoch` from this registry.
    pub fn settle(&self, spec: &ChainSpec, epoch: u64, prev: Hash32) -> Result<Settlement, SettleError> {
        let e = self.enrollment(epoch, &self.bindings_before(epoch));
        settlement::settle(spec, epoch, prev, &enrollment::weights(&e.enrolled), &e.new_bindings, &TransferInput::default())
    }

    /// The bucket digest of this model's attestation entries of `epoch`. The node's digest
    /// (`node/src/store/mod.rs`, `epoch_digest`: the one votes and announcements carry, PROTOCOL.md
    /// §11) covers the epoch's transfer record ids too; this model does not file transfers by epoch.
    pub fn digest(&self, epoch: u64) -> BucketDigest {
        BucketDigest::from_sorted_ids(self.entries(epoch).iter().map(|e| &e.id))
    }

    /// Entries of `epoch` in the given buckets: what a peer asks for after comparing digests.
    pub fn entries_in(&self, epoch: u64, buckets: &[u16]) -> Vec<Entry> {
        self.entries(epoch).into_iter().filter(|e| buckets.binary_search(&bucket_of(&e.id)).is_ok()).collect()
    }
}

/// Per-bucket hashes of one epoch's ids, and their root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDigest {
    /// Non-empty buckets only: bucket -> sha256_parts("rustchain/registry-bucket/v1", [ids]).
    pub buckets: BTreeMap<u16, Hash32>,
    pub count: u64,
}

impl BucketDigest {
    /// From ids in ascending order (as every store yields them).
    pub fn from_sorted_ids<'a>(ids: impl IntoIterator<Item = &'a Hash32>) -> BucketDigest {
        let mut per: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        let mut count = 0;
        for id in ids {
            per.entry(bucket_of(id)).or_default().extend_from_slice(id);
            count += 1;
        }
        let buckets = per.into_iter().map(|(b, ids)| (b, sha256_parts("rustchain/registry-bucket/v1", &[&ids]))).collect();
        BucketDigest { buckets, count }
    }

    /// The epoch's registry root: `sha256_parts("rustchain/registry-root/v1", [u64be(count),
    /// (u16be(bucket) ‖ hash) for each non-empty bucket in order])`.
    pub fn root(&self) -> Hash32 {
        let mut all = Vec::with_capacity(self.buckets.len() * 34);
        for (b, h) in &self.buckets {
            all.extend_from_slice(&b.to_be_bytes());
            all.extend_from_slice(h);
        }
        sha256_parts("rustchain/registry-root/v1", &[&self.count.to_be_bytes(), &all])
    }

    /// Buckets whose contents differ between the two (ascending).
    pub fn differing(&self, other: &BucketDigest) -> Vec<u16> {
        let mut out: Vec<u16> = self
            .buckets
            .iter()
            .filter(|(b, h)| other.buckets.get(b) != Some(h))
            .map(|(b, _)| *b)
            .chain(other.buckets.keys().filter(|b| !self.buckets.contains_key(b)).copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
