//! Settlement: the pure function from (chain spec, epoch, enrolled weights) to the epoch's
//! `Settlement` record, and the record's hash. Integers only; every ordering is explicit.
//! `docs/PROTOCOL.md` specifies the encoding byte by byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Hash32, sha256};
use crate::spec::ChainSpec;

/// Version of the settlement record layout; part of the hashed bytes.
pub const SETTLEMENT_VERSION: u64 = 1;

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
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettleError {
    #[error("total weight overflows 64 bits")]
    WeightOverflow,
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

/// Settle `epoch`: split the spec's pot over the enrolled wallets' weights.
pub fn settle(
    spec: &ChainSpec,
    epoch: u64,
    prev_settlement_hash: Hash32,
    weights: &BTreeMap<String, u64>,
) -> Result<Settlement, SettleError> {
    let shares = split_pot(spec.epoch_pot_urtc, weights)?;
    let entries: Vec<SettlementEntry> = weights
        .iter()
        .zip(shares)
        .map(|((miner, weight), share_urtc)| SettlementEntry { miner: miner.clone(), weight: *weight, share_urtc })
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
    })
}

impl Settlement {
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
        let s = settle(&spec, 7, [0; 32], &BTreeMap::new()).unwrap();
        assert_eq!((s.distributed_urtc, s.entries.len(), s.total_weight), (0, 0, 0));
    }

    #[test]
    fn golden_bytes_and_hash() {
        // The worked example in docs/PROTOCOL.md, cross-checked with scripts/settlement_hash.py (an
        // independent Python encoder). Changing these bytes is a consensus change.
        let spec = ChainSpec::builtin("mainnet").unwrap();
        let s = settle(&spec, 355, [0x11; 32],
            &weights(&[("alice", 2_500_000_000), ("bob", 800_000_000), ("carol", 1_000_000_000)])).unwrap();
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
        let s = settle(&spec, 1_410_000, prev, &BTreeMap::new()).unwrap();
        assert_eq!(hex::encode(s.canonical_bytes()), "a86776657273696f6e016a6e6574776f726b5f6964666465766e65746565706f63681a001583d068706f745f757274631a0016e36074707265765f736574746c656d656e745f6861736858209900cb9c8bdd12c56938104df4e9a76be9f53ee02ea80ba06ae2b147f96b84376c746f74616c5f776569676874007064697374726962757465645f757274630067656e747269657380");
        assert_eq!(hex::encode(s.hash()), "a1e50f4ade3ec53c673315a4b2994a85558fcabb9dc4fb6a869ad752a2c975e8");
    }

    const GOLDEN_HEX: &str = "a86776657273696f6e016a6e6574776f726b5f6964676d61696e6e65746565706f636819016368706f745f757274631a0016e36074707265765f736574746c656d656e745f68617368582011111111111111111111111111111111111111111111111111111111111111116c746f74616c5f7765696768741b00000001004ccb007064697374726962757465645f757274631a0016e36067656e747269657383a3656d696e657265616c696365667765696768741a9502f9006a73686172655f757274631a000d4e9da3656d696e657263626f62667765696768741a2faf08006a73686172655f757274631a0004421ea3656d696e6572656361726f6c667765696768741a3b9aca006a73686172655f757274631a000552a5";
    const GOLDEN_HASH: &str = "9900cb9c8bdd12c56938104df4e9a76be9f53ee02ea80ba06ae2b147f96b8437";

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
            let (sa, sb) = (settle(&spec, 3, [0; 32], &a).unwrap(), settle(&spec, 3, [0; 32], &b).unwrap());
            prop_assert_eq!(sa.canonical_bytes(), sb.canonical_bytes());
            prop_assert_eq!(sa.distributed_urtc, if a.is_empty() { 0 } else { spec.epoch_pot_urtc });
        }
    }
}
