//! Per-epoch enrollment and bindings: deterministic views over a set of accepted records and the
//! bindings earlier certified settlements made. Nothing here depends on the order in which records
//! arrived, and nothing a record claims about an epoch that is already certified can change who
//! holds a serial or a wallet name (PROTOCOL.md §7).

use std::collections::BTreeMap;

use crate::attestation::is_rtc_address;
use crate::crypto::Hash32;

/// What one accepted record claims: this wallet, signed by this key, at this slot, with this weight
/// (and this serial).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub wallet: String,
    /// The miner's public key, hex (lower case).
    pub key: String,
    /// The slot of the accepting node's receipt.
    pub slot: u64,
    /// The record id.
    pub id: Hash32,
    pub weight: u64,
    pub serial_hash: Option<String>,
}

impl Claim {
    /// Earlier slot first, then smaller id: the order in which claims win.
    pub fn rank(&self) -> (u64, &Hash32) {
        (self.slot, &self.id)
    }

    /// Whether the wallet is a free-form name, pinned to the first key that earns for it (an RTC
    /// address is owned by its key by construction: §5.1).
    pub fn pins_key(&self) -> bool {
        !is_rtc_address(&self.wallet)
    }
}

/// What a binding binds: a hardware serial to a wallet, or a free-form wallet name to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindingKind {
    /// key = serial hash, owner = wallet.
    Serial,
    /// key = wallet name, owner = public key (hex).
    WalletKey,
}

impl BindingKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BindingKind::Serial => "serial",
            BindingKind::WalletKey => "wallet_key",
        }
    }

    pub fn parse(s: &str) -> Option<BindingKind> {
        match s {
            "serial" => Some(BindingKind::Serial),
            "wallet_key" => Some(BindingKind::WalletKey),
            _ => None,
        }
    }
}

/// Bindings in force: (kind, key) -> owner.
pub type Bindings = BTreeMap<(BindingKind, String), String>;

/// The earliest claim on something within one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub owner: String,
    pub slot: u64,
    pub id: Hash32,
}

/// Fold one claim into an epoch's table of earliest claims (`key` is what it claims, `owner` who
/// claims it). Applying claims in any order gives the same table.
pub fn claim_earliest(table: &mut BTreeMap<String, Binding>, key: &str, owner: &str, claim: &Claim) {
    match table.get(key) {
        Some(old) if (old.slot, &old.id) <= claim.rank() => {}
        _ => {
            table.insert(key.to_owned(), Binding { owner: owner.to_owned(), slot: claim.slot, id: claim.id });
        }
    }
}

/// One wallet's enrollment in an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolled {
    pub weight: u64,
    pub slot: u64,
    pub id: Hash32,
}

/// An epoch's enrollment and the bindings it makes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enrollment {
    pub enrolled: BTreeMap<String, Enrolled>,
    /// What this epoch binds that no earlier certified settlement had bound.
    pub new_bindings: Bindings,
}

/// Enroll an epoch from its claims and the bindings of the certified settlements before it:
///
/// 1. A free-form wallet name belongs to its certified key; if it has none, to the key of its
///    earliest `(slot, id)` claim in the epoch. Claims signed by another key are dropped.
/// 2. Among the remaining claims, a serial belongs to its certified wallet; if it has none, to the
///    wallet of its earliest claim in the epoch. Claims on a serial owned by another wallet are
///    dropped.
/// 3. Per wallet, the earliest remaining claim enrolls it, with its weight.
pub fn enroll<'a>(epoch_claims: impl IntoIterator<Item = &'a Claim>, certified: &Bindings) -> Enrollment {
    let claims: Vec<&Claim> = epoch_claims.into_iter().collect();
    let mut new_bindings = Bindings::new();

    let mut first_key: BTreeMap<String, Binding> = BTreeMap::new();
    for c in claims.iter().filter(|c| c.pins_key()) {
        if !certified.contains_key(&(BindingKind::WalletKey, c.wallet.clone())) {
            claim_earliest(&mut first_key, &c.wallet, &c.key, c);
        }
    }
    for (wallet, b) in first_key {
        new_bindings.insert((BindingKind::WalletKey, wallet), b.owner);
    }
    let owns_wallet = |c: &Claim| {
        !c.pins_key() || {
            let k = (BindingKind::WalletKey, c.wallet.clone());
            certified.get(&k).or_else(|| new_bindings.get(&k)).is_some_and(|owner| *owner == c.key)
        }
    };
    let claims: Vec<&Claim> = claims.into_iter().filter(|c| owns_wallet(c)).collect();

    let mut first_serial: BTreeMap<String, Binding> = BTreeMap::new();
    for c in &claims {
        if let Some(serial) = &c.serial_hash {
            if !certified.contains_key(&(BindingKind::Serial, serial.clone())) {
                claim_earliest(&mut first_serial, serial, &c.wallet, c);
            }
        }
    }
    for (serial, b) in first_serial {
        new_bindings.insert((BindingKind::Serial, serial), b.owner);
    }

    let mut enrolled: BTreeMap<String, Enrolled> = BTreeMap::new();
    for c in claims {
        if let Some(serial) = &c.serial_hash {
            let k = (BindingKind::Serial, serial.clone());
            if certified.get(&k).or_else(|| new_bindings.get(&k)).is_some_and(|owner| *owner != c.wallet) {
                continue;
            }
        }
        match enrolled.get(&c.wallet) {
            Some(e) if (e.slot, &e.id) <= c.rank() => {}
            _ => {
                enrolled.insert(c.wallet.clone(), Enrolled { weight: c.weight, slot: c.slot, id: c.id });
            }
        }
    }
    Enrollment { enrolled, new_bindings }
}

/// The weights to settle: wallet -> enrolled weight.
pub fn weights(enrolled: &BTreeMap<String, Enrolled>) -> BTreeMap<String, u64> {
    enrolled.iter().map(|(w, e)| (w.clone(), e.weight)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(wallet: &str, key: &str, slot: u64, id: u8, weight: u64, serial: Option<&str>) -> Claim {
        Claim { wallet: wallet.into(), key: key.into(), slot, id: [id; 32], weight, serial_hash: serial.map(Into::into) }
    }

    fn certified(pairs: &[(BindingKind, &str, &str)]) -> Bindings {
        pairs.iter().map(|(k, key, owner)| ((*k, key.to_string()), owner.to_string())).collect()
    }

    #[test]
    fn earliest_claim_wins_then_smallest_id() {
        let cs = [claim("a", "k", 5, 9, 100, None), claim("a", "k", 3, 7, 200, None), claim("a", "k", 3, 2, 300, None)];
        let e = enroll(&cs, &Bindings::new());
        assert_eq!(e.enrolled["a"].weight, 300);
        assert_eq!(e.new_bindings, certified(&[(BindingKind::WalletKey, "a", "k")]));
    }

    #[test]
    fn a_new_serial_belongs_to_the_epochs_first_wallet() {
        let cs = [claim("b", "kb", 4, 1, 10, Some("s")), claim("a", "ka", 2, 9, 20, Some("s")), claim("c", "kc", 1, 1, 5, None)];
        let e = enroll(&cs, &Bindings::new());
        assert_eq!(e.enrolled.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(e.new_bindings[&(BindingKind::Serial, "s".into())], "a");
    }

    #[test]
    fn a_certified_binding_beats_any_claim_of_a_later_epoch_however_early_its_slot() {
        // "b" holds serial s and wallet name "w" from an earlier certified epoch. A claim backdated
        // to the epoch's first slot by a hostile relay changes neither.
        let held = certified(&[(BindingKind::Serial, "s", "b"), (BindingKind::WalletKey, "w", "kw")]);
        let cs = [
            claim("thief", "kt", 0, 0, 9_000, Some("s")),
            claim("b", "kb", 7, 5, 10, Some("s")),
            claim("w", "kt", 0, 1, 1, None),
            claim("w", "kw", 8, 6, 30, None),
        ];
        let e = enroll(&cs, &held);
        assert_eq!(e.enrolled.keys().collect::<Vec<_>>(), ["b", "w"]);
        assert_eq!(e.enrolled["w"].weight, 30);
        // Nothing new: "b" and "thief" were bound before or lose; "w" is pinned.
        assert_eq!(e.new_bindings, certified(&[(BindingKind::WalletKey, "b", "kb"), (BindingKind::WalletKey, "thief", "kt")]));
    }

    #[test]
    fn an_rtc_address_is_never_pinned() {
        let addr = "RTC56475aa75463474c0285df5dbf2bcab73da65135";
        let cs = [claim(addr, "k1", 1, 1, 10, None)];
        let e = enroll(&cs, &Bindings::new());
        assert!(e.new_bindings.is_empty());
        assert_eq!(e.enrolled[addr].weight, 10);
    }

    #[test]
    fn a_claim_under_a_key_that_lost_the_name_does_not_bind_a_serial() {
        // The hijacker's claim is earlier on the serial, but its key does not own the wallet name.
        let held = certified(&[(BindingKind::WalletKey, "victim", "kv")]);
        let cs = [claim("victim", "kx", 0, 0, 1, Some("s")), claim("other", "ko", 3, 3, 10, Some("s"))];
        let e = enroll(&cs, &held);
        assert_eq!(e.new_bindings.get(&(BindingKind::Serial, "s".into())).map(String::as_str), Some("other"));
        assert_eq!(e.enrolled.keys().collect::<Vec<_>>(), ["other"]);
    }

    /// Distinct records (ids are content hashes: one id, one claim), with few wallets, keys,
    /// serials and slots, so ties, pins and serial conflicts are common.
    fn arb_claims() -> impl Strategy<Value = Vec<Claim>> {
        prop::collection::vec(("[a-e]", "k[12]", 0u64..20, 1u64..5_000_000_000, prop::option::of("[xyz]")), 0..30).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (w, k, slot, weight, s))| Claim { wallet: w, key: k, slot, id: [i as u8; 32], weight, serial_hash: s })
                .collect()
        })
    }

    fn arb_certified() -> impl Strategy<Value = Bindings> {
        prop::collection::btree_map(
            prop_oneof![("[xyz]").prop_map(|s| (BindingKind::Serial, s)), ("[a-e]").prop_map(|w| (BindingKind::WalletKey, w))],
            "[a-e]|k[12]",
            0..4,
        )
    }

    proptest! {
        /// Any arrival order, with duplicates, gives the same enrollment and bindings. The claims
        /// are fed to `enroll` in genuinely different orders (not sorted first).
        #[test]
        fn enrollment_is_order_and_duplicate_independent(
            (claims, reordered, held) in (arb_claims(), arb_certified())
                .prop_flat_map(|(v, held)| {
                    let doubled: Vec<Claim> = v.iter().chain(v.iter().take(5)).cloned().collect();
                    (Just(v), Just(doubled).prop_shuffle(), Just(held))
                })
        ) {
            prop_assert_eq!(enroll(&claims, &held), enroll(&reordered, &held));
        }

        /// Every enrolled wallet's claim respects the bindings in force, and every serial a
        /// dropped claim names is owned by someone else.
        #[test]
        fn enrollment_respects_bindings(claims in arb_claims(), held in arb_certified()) {
            let e = enroll(&claims, &held);
            for (wallet, en) in &e.enrolled {
                let c = claims.iter().find(|c| c.id == en.id).unwrap();
                prop_assert_eq!(&c.wallet, wallet);
                let pin = held.get(&(BindingKind::WalletKey, wallet.clone())).or(e.new_bindings.get(&(BindingKind::WalletKey, wallet.clone())));
                prop_assert_eq!(pin, Some(&c.key));
                if let Some(s) = &c.serial_hash {
                    let owner = held.get(&(BindingKind::Serial, s.clone())).or(e.new_bindings.get(&(BindingKind::Serial, s.clone())));
                    prop_assert_eq!(owner, Some(wallet));
                }
            }
            for k in e.new_bindings.keys() {
                prop_assert!(!held.contains_key(k), "a new binding never overrides a certified one");
            }
        }
    }
}
