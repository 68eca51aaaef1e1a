//! Epoch agreement: validators' signed votes on a settlement hash, the quorum rule, certificates,
//! and equivocation evidence. Pure: the node stores and gossips; this decides.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::crypto::{self, Hash32, KeyError, Keypair, sha256_parts};
use crate::spec::ChainSpec;

/// A validator's public key.
pub type ValidatorKey = [u8; 32];

/// Signatures needed for a certificate: at least two thirds of `n`, i.e. `ceil(2n / 3)`.
pub fn quorum(n: usize) -> usize {
    (2 * n).div_ceil(3)
}

/// The validator set: the chain spec's, or, when it lists none, this node alone (a lone devnet
/// node certifies its own settlements).
pub fn validator_set(spec: &ChainSpec, own: &ValidatorKey) -> Result<BTreeSet<ValidatorKey>, KeyError> {
    if spec.validators.is_empty() {
        return Ok(BTreeSet::from([*own]));
    }
    spec.validators.iter().map(|v| crypto::decode_hex::<32>("validator key", v)).collect()
}

/// "Epoch `epoch` settles to `settlement_hash`", signed by one validator in one round.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vote {
    pub epoch: u64,
    pub round: u32,
    #[serde(with = "serde_bytes")]
    pub settlement_hash: Hash32,
    /// The voter's registry root for the epoch (diagnostics: who saw which records).
    #[serde(with = "serde_bytes")]
    pub registry_digest: Hash32,
    #[serde(with = "serde_bytes")]
    pub validator: ValidatorKey,
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

fn vote_message(network_id: &str, epoch: u64, round: u32, hash: &Hash32, digest: &Hash32) -> Hash32 {
    sha256_parts(
        "rustchain/vote/v1",
        &[network_id.as_bytes(), &epoch.to_be_bytes(), &round.to_be_bytes(), hash, digest],
    )
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VoteError {
    #[error("signer is not a validator of this chain")]
    NotAValidator,
    #[error("vote signature: {0}")]
    Signature(KeyError),
    #[error("certificate has {have} distinct validator votes; {need} needed")]
    NoQuorum { have: usize, need: usize },
    #[error("certificate votes disagree on epoch, round or hash")]
    Inconsistent,
}

impl Vote {
    pub fn sign(spec: &ChainSpec, key: &Keypair, epoch: u64, round: u32, settlement_hash: Hash32, registry_digest: Hash32) -> Vote {
        let msg = vote_message(&spec.network_id, epoch, round, &settlement_hash, &registry_digest);
        Vote { epoch, round, settlement_hash, registry_digest, validator: key.public(), signature: key.sign(&msg) }
    }

    pub fn verify(&self, spec: &ChainSpec, validators: &BTreeSet<ValidatorKey>) -> Result<(), VoteError> {
        if !validators.contains(&self.validator) {
            return Err(VoteError::NotAValidator);
        }
        let msg = vote_message(&spec.network_id, self.epoch, self.round, &self.settlement_hash, &self.registry_digest);
        crypto::verify(&self.validator, &msg, &self.signature).map_err(VoteError::Signature)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200);
        ciborium::into_writer(self, &mut out).expect("writing CBOR to a Vec cannot fail");
        out
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Vote, String> {
        if bytes.len() > 1024 {
            return Err("vote larger than 1 KiB".into());
        }
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

/// Proof that a quorum of validators signed one settlement hash for an epoch in one round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochCertificate {
    pub epoch: u64,
    pub round: u32,
    #[serde(with = "serde_bytes")]
    pub settlement_hash: Hash32,
    /// One vote per signer, sorted by validator key.
    pub votes: Vec<Vote>,
}

impl EpochCertificate {
    pub fn verify(&self, spec: &ChainSpec, validators: &BTreeSet<ValidatorKey>) -> Result<(), VoteError> {
        let mut signers = BTreeSet::new();
        for v in &self.votes {
            if (v.epoch, v.round, v.settlement_hash) != (self.epoch, self.round, self.settlement_hash) {
                return Err(VoteError::Inconsistent);
            }
            v.verify(spec, validators)?;
            signers.insert(v.validator);
        }
        let need = quorum(validators.len());
        if signers.len() < need {
            return Err(VoteError::NoQuorum { have: signers.len(), need });
        }
        Ok(())
    }
}

/// Two different hashes signed by one validator for one (epoch, round).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    pub first: Vote,
    pub second: Vote,
}

/// What a set of (already verified) votes for one epoch amounts to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// The certificate of the lowest round in which some hash reached quorum.
    pub certificate: Option<EpochCertificate>,
    pub equivocations: Vec<Equivocation>,
    /// (round, hash) -> signers, for reporting.
    pub by_hash: BTreeMap<(u32, Hash32), BTreeSet<ValidatorKey>>,
}

/// Count votes of one epoch. Order of `votes` does not matter. An equivocating validator's votes in
/// that round count for neither hash.
pub fn tally(validators: &BTreeSet<ValidatorKey>, votes: &[Vote]) -> Tally {
    let mut sorted: Vec<&Vote> = votes.iter().filter(|v| validators.contains(&v.validator)).collect();
    sorted.sort();
    sorted.dedup();
    let mut per: BTreeMap<(u32, ValidatorKey), Vec<&Vote>> = BTreeMap::new();
    for v in &sorted {
        per.entry((v.round, v.validator)).or_default().push(v);
    }
    let mut t = Tally::default();
    for ((round, validator), vs) in &per {
        let hashes: BTreeSet<Hash32> = vs.iter().map(|v| v.settlement_hash).collect();
        if hashes.len() > 1 {
            t.equivocations.push(Equivocation { first: vs[0].clone(), second: vs[vs.len() - 1].clone() });
            continue;
        }
        t.by_hash.entry((*round, vs[0].settlement_hash)).or_default().insert(*validator);
    }
    let need = quorum(validators.len());
    if let Some(((round, hash), _)) = t.by_hash.iter().find(|(_, signers)| signers.len() >= need) {
        let votes = sorted
            .iter()
            .filter(|v| v.round == *round && v.settlement_hash == *hash && t.by_hash[&(*round, *hash)].contains(&v.validator))
            .map(|v| (*v).clone())
            .collect();
        t.certificate = Some(EpochCertificate { epoch: sorted[0].epoch, round: *round, settlement_hash: *hash, votes });
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn setup(n: u8) -> (ChainSpec, Vec<Keypair>, BTreeSet<ValidatorKey>) {
        let keys: Vec<Keypair> = (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let mut spec = ChainSpec::builtin("devnet").unwrap();
        spec.validators = keys.iter().map(|k| hex::encode(k.public())).collect();
        let set = validator_set(&spec, &[0; 32]).unwrap();
        (spec, keys, set)
    }

    #[test]
    fn quorum_is_two_thirds_rounded_up() {
        assert_eq!([1, 2, 3, 4, 5, 6, 7, 10].map(quorum), [1, 2, 2, 3, 4, 4, 5, 7]);
    }

    #[test]
    fn three_of_four_certify_and_the_fourth_cannot() {
        let (spec, keys, set) = setup(4);
        let good = [7; 32];
        let mut votes: Vec<Vote> = keys[..3].iter().map(|k| Vote::sign(&spec, k, 5, 0, good, [1; 32])).collect();
        votes.push(Vote::sign(&spec, &keys[3], 5, 0, [8; 32], [2; 32]));
        for v in &votes {
            v.verify(&spec, &set).unwrap();
        }
        let t = tally(&set, &votes);
        let cert = t.certificate.unwrap();
        assert_eq!((cert.settlement_hash, cert.votes.len()), (good, 3));
        cert.verify(&spec, &set).unwrap();
        // Two votes are not enough; a forged vote does not verify; an outsider is not a validator.
        let short = EpochCertificate { votes: cert.votes[..2].to_vec(), ..cert.clone() };
        assert_eq!(short.verify(&spec, &set), Err(VoteError::NoQuorum { have: 2, need: 3 }));
        let mut forged = cert.clone();
        forged.settlement_hash = [9; 32];
        assert_eq!(forged.verify(&spec, &set), Err(VoteError::Inconsistent));
        let outsider = Vote::sign(&spec, &Keypair::from_seed(&[99; 32]), 5, 0, good, [1; 32]);
        assert_eq!(outsider.verify(&spec, &set), Err(VoteError::NotAValidator));
        let mut bad_sig = votes[0].clone();
        bad_sig.registry_digest = [0; 32];
        assert!(matches!(bad_sig.verify(&spec, &set), Err(VoteError::Signature(_))));
        assert_eq!(Vote::from_cbor(&votes[0].to_cbor()).unwrap(), votes[0]);
    }

    #[test]
    fn equivocation_is_detected_and_does_not_count() {
        let (spec, keys, set) = setup(4);
        let votes = vec![
            Vote::sign(&spec, &keys[0], 5, 0, [7; 32], [1; 32]),
            Vote::sign(&spec, &keys[1], 5, 0, [7; 32], [1; 32]),
            Vote::sign(&spec, &keys[2], 5, 0, [7; 32], [1; 32]),
            Vote::sign(&spec, &keys[2], 5, 0, [6; 32], [1; 32]),
        ];
        let t = tally(&set, &votes);
        assert_eq!(t.equivocations.len(), 1);
        assert_eq!(t.equivocations[0].first.validator, keys[2].public());
        assert!(t.certificate.is_none(), "the equivocator's vote counts for neither hash");
    }

    #[test]
    fn lone_node_is_its_own_validator_set() {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let me = Keypair::from_seed(&[3; 32]);
        let set = validator_set(&spec, &me.public()).unwrap();
        let t = tally(&set, &[Vote::sign(&spec, &me, 1, 0, [5; 32], [0; 32])]);
        assert!(t.certificate.is_some());
    }

    proptest! {
        /// Any order of the same votes, with any of them delivered again, gives the same tally
        /// (votes of two rounds, outsiders' votes mixed in); with at most f equivocators among
        /// n >= 3f + 1, two hashes never both reach quorum in one round.
        #[test]
        fn tally_is_order_independent_and_safe(
            choices in prop::collection::vec((0u8..2, any::<bool>(), 0u32..2), 7),
            seed in any::<u64>(),
            again in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let (spec, keys, set) = setup(7); // n = 7, f = 2
            let mut votes = Vec::new();
            for (i, (pick, equivocate, round)) in choices.iter().enumerate() {
                votes.push(Vote::sign(&spec, &keys[i], 9, *round, [*pick; 32], [0; 32]));
                if *equivocate && i < 2 {
                    votes.push(Vote::sign(&spec, &keys[i], 9, *round, [1 - *pick; 32], [0; 32]));
                }
            }
            votes.push(Vote::sign(&spec, &Keypair::from_seed(&[99; 32]), 9, 0, [0; 32], [0; 32]));
            // Another order (a seeded Fisher-Yates shuffle), and duplicates of some votes.
            let mut reordered = votes.clone();
            let mut x = seed | 1;
            for i in (1..reordered.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                reordered.swap(i, (x % (i as u64 + 1)) as usize);
            }
            for idx in &again {
                let dup = votes[idx.index(votes.len())].clone();
                reordered.insert(idx.index(reordered.len() + 1), dup);
            }
            prop_assert_eq!(tally(&set, &votes), tally(&set, &reordered));
            let t = tally(&set, &votes);
            let reaching: Vec<_> = t.by_hash.iter().filter(|(_, s)| s.len() >= quorum(7)).collect();
            prop_assert!(reaching.len() <= 1);
        }
    }
}
