//! Admin pin changes: the one way a free-form wallet name's key changes after it was pinned
//! (PROTOCOL.md §7.2). A pin is consensus (it decides who earns), so an unpin is too: it is a
//! record signed by one of the network's admin keys, replicated like every other record, and
//! applied by the settlement of the epoch it names. Nothing here trusts the node that relays it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attestation::{is_rtc_address, valid_miner_id};
use crate::crypto::{self, sha256_parts, Hash32, KeyError, Keypair};
use crate::enrollment::{BindingKind, Bindings};
use crate::spec::ChainSpec;

/// The longest note an admin may attach (bytes).
pub const MAX_NOTE_BYTES: usize = 256;

/// A change of the key a free-form wallet name is pinned to, signed by an admin key. Field order is
/// the encoded order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// The epoch whose settlement applies the change: it holds from the next epoch on.
    pub epoch: u64,
    /// The free-form wallet name (never an RTC address: those belong to their key by construction).
    pub wallet: String,
    /// The key the name is pinned to from then on (64 lower-case hex), or "" to unpin it (the next
    /// key that earns for it pins it again, as for a new name).
    pub key: String,
    /// Why (free text for the audit trail, at most 256 bytes).
    pub note: String,
    /// When the admin signed it (unix ms): of two changes of one name in one epoch, the later wins.
    pub issued_unix_ms: u64,
    #[serde(with = "serde_bytes")]
    pub admin_key: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("the wallet must be a free-form name of 1-128 characters [A-Za-z0-9._:-], not an RTC address (an address belongs to its key; nothing to unpin)")]
    NotPinnable,
    #[error("the key must be 64 lower-case hex digits of an Ed25519 public key, or empty to unpin")]
    BadKey,
    #[error("the note is longer than 256 bytes")]
    NoteTooLong,
    #[error("signed by a key that is not one of this network's admin keys")]
    NotAnAdmin,
    #[error("admin signature: {0}")]
    Signature(KeyError),
    #[error("malformed admin record: {0}")]
    Decode(String),
}

impl AdminError {
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotPinnable => "NOT_PINNABLE",
            AdminError::BadKey => "INVALID_PUBLIC_KEY",
            AdminError::NoteTooLong => "NOTE_TOO_LONG",
            AdminError::NotAnAdmin => "NOT_AN_ADMIN_KEY",
            AdminError::Signature(_) => "INVALID_SIGNATURE",
            AdminError::Decode(_) => "MALFORMED",
        }
    }
}

/// What an admin key signs: `sha256_parts("rustchain/admin-pin/v1", [network_id, u64be(epoch),
/// wallet, key, note, u64be(issued_unix_ms)])`.
pub fn signed_digest(network_id: &str, epoch: u64, wallet: &str, key: &str, note: &str, issued_unix_ms: u64) -> Hash32 {
    sha256_parts(
        "rustchain/admin-pin/v1",
        &[network_id.as_bytes(), &epoch.to_be_bytes(), wallet.as_bytes(), key.as_bytes(), note.as_bytes(), &issued_unix_ms.to_be_bytes()],
    )
}

/// The admin keys: the chain spec's `admin.keys`, and no other. A spec without any has none, so no
/// pin can be changed (a key that only some nodes took for an admin key would make a change valid
/// on one node and an offence on the next).
pub fn admin_keys(spec: &ChainSpec) -> Vec<[u8; 32]> {
    spec.admin.keys.iter().filter_map(|k| crypto::decode_hex::<32>("admin key", k).ok()).collect()
}

fn check_fields(wallet: &str, key: &str, note: &str) -> Result<(), AdminError> {
    if !valid_miner_id(wallet) || is_rtc_address(wallet) {
        return Err(AdminError::NotPinnable);
    }
    if !key.is_empty() {
        let lower = key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !lower || crypto::decode_hex::<32>("key", key).and_then(|k| crypto::public_key(&k)).is_err() {
            return Err(AdminError::BadKey);
        }
    }
    if note.len() > MAX_NOTE_BYTES {
        return Err(AdminError::NoteTooLong);
    }
    Ok(())
}

impl AdminRecord {
    /// Sign a change with `admin`. The fields are checked as `verify` checks them.
    pub fn sign(spec: &ChainSpec, admin: &Keypair, epoch: u64, wallet: &str, key: &str, note: &str, issued_unix_ms: u64) -> Result<AdminRecord, AdminError> {
        check_fields(wallet, key, note)?;
        let digest = signed_digest(&spec.network_id, epoch, wallet, key, note, issued_unix_ms);
        Ok(AdminRecord {
            epoch,
            wallet: wallet.to_owned(),
            key: key.to_owned(),
            note: note.to_owned(),
            issued_unix_ms,
            admin_key: admin.public(),
            signature: admin.sign(&digest),
        })
    }

    /// The record id: `sha256_parts("rustchain/admin-record/v1", [u64be(epoch), wallet, key, note,
    /// u64be(issued_unix_ms), admin_key, signature])`. Distinct from every attestation and transfer
    /// id (another domain); the signature binds the network.
    pub fn id(&self) -> Hash32 {
        sha256_parts(
            "rustchain/admin-record/v1",
            &[
                &self.epoch.to_be_bytes(),
                self.wallet.as_bytes(),
                self.key.as_bytes(),
                self.note.as_bytes(),
                &self.issued_unix_ms.to_be_bytes(),
                &self.admin_key,
                &self.signature,
            ],
        )
    }

    fn digest(&self, spec: &ChainSpec) -> Hash32 {
        signed_digest(&spec.network_id, self.epoch, &self.wallet, &self.key, &self.note, self.issued_unix_ms)
    }

    /// Everything a node checks before storing or relaying the record: its fields, that `admins`
    /// (see [`admin_keys`]) holds its key, and the signature.
    pub fn verify(&self, spec: &ChainSpec, admins: &[[u8; 32]]) -> Result<(), AdminError> {
        check_fields(&self.wallet, &self.key, &self.note)?;
        if !admins.contains(&self.admin_key) {
            return Err(AdminError::NotAnAdmin);
        }
        crypto::verify(&self.admin_key, &self.digest(spec), &self.signature).map_err(AdminError::Signature)
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.note.len());
        ciborium::into_writer(self, &mut out).expect("writing CBOR to a Vec cannot fail");
        out
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<AdminRecord, AdminError> {
        if bytes.len() > 1024 {
            return Err(AdminError::Decode("larger than 1 KiB".into()));
        }
        ciborium::from_reader(bytes).map_err(|e| AdminError::Decode(e.to_string()))
    }
}

/// The pin changes an epoch's settlement makes from its admin records (all of that epoch, verified):
/// per wallet name, the record with the greatest `(issued_unix_ms, id)`. Any order of the same
/// records gives the same changes.
pub fn changes<'a>(records: impl IntoIterator<Item = (&'a AdminRecord, Hash32)>) -> Bindings {
    let mut last: BTreeMap<&str, (u64, Hash32, &str)> = BTreeMap::new();
    for (r, id) in records {
        let rank = (r.issued_unix_ms, id);
        match last.get(r.wallet.as_str()) {
            Some(&(t, i, _)) if (t, i) >= rank => {}
            _ => {
                last.insert(&r.wallet, (rank.0, rank.1, &r.key));
            }
        }
    }
    last.into_iter().map(|(w, (_, _, k))| ((BindingKind::AdminKey, w.to_owned()), k.to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec() -> ChainSpec {
        ChainSpec::builtin("devnet").unwrap()
    }

    fn admin() -> Keypair {
        Keypair::from_seed(&[7; 32])
    }

    #[test]
    fn a_signed_change_verifies_for_its_admin_only() {
        let s = spec();
        let key = hex::encode(Keypair::from_seed(&[1; 32]).public());
        let r = AdminRecord::sign(&s, &admin(), 4, "alice-g4", &key, "lost the old key", 1_700_000_000_000).unwrap();
        assert_eq!(r.verify(&s, &[admin().public()]), Ok(()));
        assert_eq!(r.verify(&s, &[Keypair::from_seed(&[8; 32]).public()]), Err(AdminError::NotAnAdmin));
        assert_eq!(AdminRecord::from_cbor(&r.to_cbor()).unwrap(), r);
        // Every signed field is covered: change any one and the signature fails.
        let mut tampered = [r.clone(), r.clone(), r.clone(), r.clone(), r.clone()];
        tampered[0].epoch = 5;
        tampered[1].wallet = "bob".into();
        tampered[2].key = String::new();
        tampered[3].note = "x".into();
        tampered[4].issued_unix_ms += 1;
        for t in tampered {
            assert!(matches!(t.verify(&s, &[admin().public()]), Err(AdminError::Signature(_))), "{t:?}");
        }
        // Another network's admin signature does not verify here.
        let mut other = s.clone();
        other.network_id = "othernet".into();
        assert!(matches!(r.verify(&other, &[admin().public()]), Err(AdminError::Signature(_))));
    }

    #[test]
    fn fields_are_refused_with_their_reason() {
        let s = spec();
        let a = admin();
        let rtc = Keypair::from_seed(&[2; 32]).address();
        assert_eq!(AdminRecord::sign(&s, &a, 1, &rtc, "", "", 0), Err(AdminError::NotPinnable));
        assert_eq!(AdminRecord::sign(&s, &a, 1, "", "", "", 0), Err(AdminError::NotPinnable));
        assert_eq!(AdminRecord::sign(&s, &a, 1, "a b", "", "", 0), Err(AdminError::NotPinnable));
        let upper = hex::encode(Keypair::from_seed(&[1; 32]).public()).to_uppercase();
        assert_eq!(AdminRecord::sign(&s, &a, 1, "w", &upper, "", 0), Err(AdminError::BadKey));
        assert_eq!(AdminRecord::sign(&s, &a, 1, "w", "00", "", 0), Err(AdminError::BadKey));
        assert_eq!(AdminRecord::sign(&s, &a, 1, "w", "", &"n".repeat(257), 0), Err(AdminError::NoteTooLong));
        assert!(AdminRecord::sign(&s, &a, 1, "w", "", &"n".repeat(256), 0).is_ok());
        assert!(AdminRecord::from_cbor(&[0xff; 2000]).is_err());
    }

    #[test]
    fn only_the_specs_admin_keys_are_admin_keys() {
        let mut s = spec();
        assert_eq!(admin_keys(&s), Vec::<[u8; 32]>::new(), "no admin keys in the spec: none, for every node");
        s.admin.keys = vec![hex::encode(admin().public())];
        assert_eq!(admin_keys(&s), vec![admin().public()]);
    }

    #[test]
    fn the_latest_change_of_a_name_in_an_epoch_wins() {
        let s = spec();
        let k1 = hex::encode(Keypair::from_seed(&[1; 32]).public());
        let a = AdminRecord::sign(&s, &admin(), 2, "w", &k1, "", 10).unwrap();
        let b = AdminRecord::sign(&s, &admin(), 2, "w", "", "", 20).unwrap();
        let c = AdminRecord::sign(&s, &admin(), 2, "v", &k1, "", 5).unwrap();
        let got = changes([(&b, b.id()), (&a, a.id()), (&c, c.id())]);
        let want: Bindings = [((BindingKind::AdminKey, "v".to_owned()), k1.clone()), ((BindingKind::AdminKey, "w".to_owned()), String::new())].into_iter().collect();
        assert_eq!(got, want);
    }

    proptest! {
        #[test]
        fn changes_do_not_depend_on_order_or_duplicates(
            picks in prop::collection::vec((0u8..3, 0u8..3, 0u64..4), 1..12),
            seed in any::<u64>(),
        ) {
            let s = spec();
            let keys: Vec<String> = (0..3u8).map(|i| if i == 0 { String::new() } else { hex::encode(Keypair::from_seed(&[i; 32]).public()) }).collect();
            let recs: Vec<AdminRecord> = picks
                .iter()
                .map(|(w, k, t)| AdminRecord::sign(&s, &admin(), 1, &format!("w{w}"), &keys[*k as usize], "", *t).unwrap())
                .collect();
            let with_ids: Vec<(&AdminRecord, Hash32)> = recs.iter().map(|r| (r, r.id())).collect();
            let mut shuffled = with_ids.clone();
            shuffled.extend(with_ids.iter().cloned());
            // A deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(changes(with_ids), changes(shuffled));
        }
    }
}
