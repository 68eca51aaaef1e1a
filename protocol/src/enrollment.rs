//! Per-epoch enrollment and bindings: deterministic views over a set of accepted records and the
//! bindings earlier certified settlements made. Nothing here depends on the order in which records
//! arrived, and nothing a record claims about an epoch that is already certified can change who
//! holds a serial or a wallet name (PROTOCOL.md §7).

use std::collections::BTreeMap;

use crate::attestation::is_rtc_address;
use crate::crypto::Hash32;
use crate::entropy::{Profile, ProfileIndex};
use crate::multiplier::UNIT;

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
    /// The fingerprint's entropy profile (`entropy::Profile::of_body`).
    pub profile: Profile,
}

impl Claim {
    /// What the verified submission `sub` of record `id` claims, evaluated at its receipt `slot`
    /// (`attestation::evaluate`): the node's `StoredClaim` keeps the same fields.
    pub fn of(sub: &crate::attestation::Submission, eval: &crate::attestation::Evaluation, slot: u64, id: Hash32) -> Claim {
        Claim {
            wallet: sub.miner.clone(),
            key: hex::encode(sub.public_key),
            slot,
            id,
            weight: eval.weight,
            serial_hash: eval.serial_hash.clone(),
            profile: eval.profile,
        }
    }

    /// Earlier slot first, then smaller id: the order in which claims win.
    pub fn rank(&self) -> (u64, &Hash32) {
        (self.slot, &self.id)
    }

    /// Whether the wallet is a free-form name, pinned to the first key that earns for it (an RTC
    /// address is owned by its key by construction: §5.1).
    pub fn pins_key(&self) -> bool {
        !is_rtc_address(&self.wallet)
    }

    /// The machine this claim measures: its serial hash, or `wallet:<wallet>` without a serial.
    pub fn machine(&self) -> String {
        match &self.serial_hash {
            Some(s) => s.clone(),
            None => format!("wallet:{}", self.wallet),
        }
    }
}

/// What the entropy rule (§7.1) decided for a claim whose weight it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropyVerdict {
    /// Fewer than five measured fields: no bonus above 1.0x.
    Insufficient,
    /// The profile matches one another machine owns: weight of a failed fingerprint.
    Collision,
    /// The machine's cache timings are not the ones it bound: weight of a failed fingerprint.
    Mismatch,
}

impl EntropyVerdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntropyVerdict::Insufficient => "entropy_insufficient",
            EntropyVerdict::Collision => "entropy_collision",
            EntropyVerdict::Mismatch => "entropy_mismatch",
        }
    }

    /// The weight a claim keeps under this verdict.
    pub fn weight(&self, weight: u64) -> u64 {
        match self {
            EntropyVerdict::Insufficient => weight.min(UNIT),
            EntropyVerdict::Collision | EntropyVerdict::Mismatch => (weight / UNIT).max(1),
        }
    }
}

/// What a binding binds: a machine to its entropy profile, a hardware serial to a wallet, or a
/// free-form wallet name to a key; or an admin's change of a name's key. Declared in the order of
/// their names (`admin_key` < `profile` < `serial` < `wallet_key`): the settlement record lists
/// bindings in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindingKind {
    /// key = wallet name, owner = the key an admin pinned it to, or "" (unpinned): an admin
    /// record's change (`admin::changes`, §7.2). It overrides every earlier pin of the name.
    AdminKey,
    /// key = machine ([`Claim::machine`]), owner = its entropy profile (`Profile::to_text`).
    Profile,
    /// key = serial hash, owner = wallet.
    Serial,
    /// key = wallet name, owner = public key (hex).
    WalletKey,
}

impl BindingKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BindingKind::AdminKey => "admin_key",
            BindingKind::Serial => "serial",
            BindingKind::Profile => "profile",
            BindingKind::WalletKey => "wallet_key",
        }
    }

    pub fn parse(s: &str) -> Option<BindingKind> {
        match s {
            "admin_key" => Some(BindingKind::AdminKey),
            "serial" => Some(BindingKind::Serial),
            "profile" => Some(BindingKind::Profile),
            "wallet_key" => Some(BindingKind::WalletKey),
            _ => None,
        }
    }
}

/// Bindings in force: (kind, key) -> owner.
pub type Bindings = BTreeMap<(BindingKind, String), String>;

/// The key a free-form wallet name is pinned to for claims of `epoch`, from the certified
/// settlements' `wallet_key` pins and `admin_key` changes of that name (`(epoch, kind, owner)`, any
/// order; entries of `epoch` or later are ignored): the latest admin change if it names a key;
/// otherwise the earliest pin after the latest admin change (after nothing, if there was none);
/// `None`: unpinned. A function of the set of certified settlements, so every node that applied
/// the same ones, in whatever order, agrees (PROTOCOL.md §7.2).
pub fn key_in_force<'a>(log: impl IntoIterator<Item = (u64, BindingKind, &'a str)>, epoch: u64) -> Option<String> {
    let log: Vec<(u64, BindingKind, &str)> = log.into_iter().filter(|e| e.0 < epoch).collect();
    let admin = log.iter().filter(|e| e.1 == BindingKind::AdminKey).max_by_key(|e| e.0);
    match admin {
        Some((_, _, owner)) if !owner.is_empty() => Some((*owner).to_owned()),
        _ => {
            let since = admin.map(|a| a.0);
            log.iter()
                .filter(|e| e.1 == BindingKind::WalletKey && since.is_none_or(|s| e.0 > s))
                .min_by_key(|e| e.0)
                .map(|e| e.2.to_owned())
        }
    }
}

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
    /// Claims (by record id) whose weight the entropy rule changed, and why.
    pub entropy: BTreeMap<Hash32, EntropyVerdict>,
}

/// Enroll an epoch from its claims and the bindings of the certified settlements before it:
///
/// 1. A free-form wallet name belongs to its certified key; if it has none, to the key of its
///    earliest `(slot, id)` claim in the epoch. Claims signed by another key are dropped.
/// 2. Among the remaining claims, a serial belongs to its certified wallet; if it has none, to the
///    wallet of its earliest claim in the epoch. Claims on a serial owned by another wallet are
///    dropped.
/// 3. Per wallet, the earliest remaining claim enrolls it, with its weight as the entropy rule
///    leaves it: taking the remaining claims in `(slot, id)` order, a claim whose profile is not
///    complete keeps at most 1.0x; one whose machine owns a profile (certified, or bound earlier in
///    the epoch) its cache timings do not match, or whose profile collides with one another
///    machine owns (certified in `profiles`, or bound earlier in the epoch), keeps the weight of
///    a failed fingerprint; any other binds its profile to its machine if the machine had none.
///
/// `profiles` holds the certified profiles (at least all those near the claims' profiles).
pub fn enroll<'a>(epoch_claims: impl IntoIterator<Item = &'a Claim>, certified: &Bindings, profiles: &ProfileIndex) -> Enrollment {
    let mut claims: Vec<&Claim> = epoch_claims.into_iter().collect();
    claims.sort_by(|a, b| a.rank().cmp(&b.rank()));
    claims.dedup_by(|a, b| a.id == b.id);
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
        if let Some(serial) = &c.serial_hash
            && !certified.contains_key(&(BindingKind::Serial, serial.clone())) {
            claim_earliest(&mut first_serial, serial, &c.wallet, c);
        }
    }
    for (serial, b) in first_serial {
        new_bindings.insert((BindingKind::Serial, serial), b.owner);
    }

    let claims: Vec<&Claim> = claims
        .into_iter()
        .filter(|c| {
            let Some(serial) = &c.serial_hash else { return true };
            let k = (BindingKind::Serial, serial.clone());
            certified.get(&k).or_else(|| new_bindings.get(&k)).is_none_or(|owner| *owner == c.wallet)
        })
        .collect();

    // The entropy rule, claim by claim: first the claims of machines that already hold a certified
    // profile, then the others, each group in (slot, id) order. An established machine's current
    // (drifted) measurements are claimed before any new machine can present a copy of them,
    // whatever slot a receipt signer gave the copy.
    let established = |c: &Claim| certified.contains_key(&(BindingKind::Profile, c.machine()));
    let mut order: Vec<&Claim> = claims.iter().copied().filter(|c| established(c)).collect();
    order.extend(claims.iter().copied().filter(|c| !established(c)));
    let mut entropy = BTreeMap::new();
    // Every profile claimed in this epoch by a claim the rule did not condemn, with its machine.
    let mut claimed_here = ProfileIndex::default();
    for c in order {
        if !c.profile.is_complete() {
            entropy.insert(c.id, EntropyVerdict::Insufficient);
            continue;
        }
        let machine = c.machine();
        let key = (BindingKind::Profile, machine.clone());
        let own = certified.get(&key).or_else(|| new_bindings.get(&key)).and_then(|t| Profile::from_text(t));
        let verdict = if own.is_some_and(|own| c.profile.mismatches(&own)) {
            Some(EntropyVerdict::Mismatch)
        } else if profiles.collision(&c.profile, &machine).is_some() || claimed_here.collision(&c.profile, &machine).is_some() {
            Some(EntropyVerdict::Collision)
        } else {
            None
        };
        match verdict {
            Some(v) => {
                entropy.insert(c.id, v);
            }
            None => {
                if own.is_none() {
                    new_bindings.insert(key, c.profile.to_text());
                }
                claimed_here.insert(c.profile, machine);
            }
        }
    }

    let mut enrolled: BTreeMap<String, Enrolled> = BTreeMap::new();
    for c in claims {
        match enrolled.get(&c.wallet) {
            Some(e) if (e.slot, &e.id) <= c.rank() => {}
            _ => {
                let weight = entropy.get(&c.id).map_or(c.weight, |v| v.weight(c.weight));
                enrolled.insert(c.wallet.clone(), Enrolled { weight, slot: c.slot, id: c.id });
            }
        }
    }
    Enrollment { enrolled, new_bindings, entropy }
}

/// The profiles `bindings` bind, indexed: what [`enroll`] checks collisions against.
pub fn profile_index(bindings: &Bindings) -> ProfileIndex {
    let mut index = ProfileIndex::default();
    for ((kind, machine), text) in bindings {
        if let (BindingKind::Profile, Some(p)) = (kind, Profile::from_text(text)) {
            index.insert(p, machine.clone());
        }
    }
    index
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
        Claim { wallet: wallet.into(), key: key.into(), slot, id: [id; 32], weight, serial_hash: serial.map(Into::into), profile: Profile::default() }
    }

    fn certified(pairs: &[(BindingKind, &str, &str)]) -> Bindings {
        pairs.iter().map(|(k, key, owner)| ((*k, key.to_string()), owner.to_string())).collect()
    }

    #[test]
    fn earliest_claim_wins_then_smallest_id() {
        let cs = [claim("a", "k", 5, 9, 100, None), claim("a", "k", 3, 7, 200, None), claim("a", "k", 3, 2, 300, None)];
        let e = enroll(&cs, &Bindings::new(), &ProfileIndex::default());
        assert_eq!(e.enrolled["a"].weight, 300);
        assert_eq!(e.new_bindings, certified(&[(BindingKind::WalletKey, "a", "k")]));
    }

    #[test]
    fn a_new_serial_belongs_to_the_epochs_first_wallet() {
        let cs = [claim("b", "kb", 4, 1, 10, Some("s")), claim("a", "ka", 2, 9, 20, Some("s")), claim("c", "kc", 1, 1, 5, None)];
        let e = enroll(&cs, &Bindings::new(), &ProfileIndex::default());
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
        let e = enroll(&cs, &held, &ProfileIndex::default());
        assert_eq!(e.enrolled.keys().collect::<Vec<_>>(), ["b", "w"]);
        assert_eq!(e.enrolled["w"].weight, 30);
        // Nothing new: "b" and "thief" were bound before or lose; "w" is pinned.
        assert_eq!(e.new_bindings, certified(&[(BindingKind::WalletKey, "b", "kb"), (BindingKind::WalletKey, "thief", "kt")]));
    }

    #[test]
    fn an_admin_change_overrides_pins_until_the_next_one() {
        use BindingKind::{AdminKey, WalletKey};
        let log = [(3, WalletKey, "k1"), (5, AdminKey, ""), (7, WalletKey, "k2"), (9, WalletKey, "k3"), (10, AdminKey, "k4")];
        let at = |e: u64| key_in_force(log.iter().copied(), e);
        assert_eq!(at(3), None, "a pin holds from the next epoch");
        assert_eq!(at(4), Some("k1".into()));
        assert_eq!(at(6), None, "unpinned by the admin");
        assert_eq!(at(8), Some("k2".into()), "pinned again by the first key after the unpin");
        assert_eq!(at(10), Some("k2".into()), "a later pin (made without knowing) does not move it");
        assert_eq!(at(11), Some("k4".into()), "set by the admin");
        // A pin in the admin change's own epoch was judged before it: the change wins.
        assert_eq!(key_in_force([(5, WalletKey, "k9"), (5, AdminKey, "")], 6), None);
    }

    proptest! {
        #[test]
        fn the_key_in_force_does_not_depend_on_the_order_settlements_were_applied(
            // At most one pin and one admin change per epoch (a settlement binds a key once per
            // kind), often both in one epoch.
            log in prop::collection::btree_map((0u64..8, any::<bool>()), 0u8..3, 0..12),
            seed in any::<u64>(),
            at in 0u64..10,
        ) {
            let owners = ["", "k1", "k2"];
            let entries: Vec<(u64, BindingKind, &str)> = log
                .iter()
                .map(|((e, admin), o)| if *admin { (*e, BindingKind::AdminKey, owners[*o as usize]) } else { (*e, BindingKind::WalletKey, owners[1 + (*o as usize) % 2]) })
                .collect();
            let mut shuffled = entries.clone();
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            // The same as replaying the certified settlements in epoch order (within an epoch the
            // pin was judged before the admin change), keeping the state of a name's pin.
            let mut replay: Option<&str> = None;
            let mut ordered: Vec<&(u64, BindingKind, &str)> = entries.iter().filter(|e| e.0 < at).collect();
            ordered.sort_by_key(|e| (e.0, e.1 == BindingKind::AdminKey));
            for (_, kind, owner) in ordered {
                match kind {
                    BindingKind::AdminKey => replay = Some(*owner).filter(|o| !o.is_empty()),
                    _ => replay = replay.or(Some(*owner)),
                }
            }
            prop_assert_eq!(key_in_force(entries.iter().copied(), at), replay.map(str::to_owned));
            prop_assert_eq!(key_in_force(entries, at), key_in_force(shuffled, at));
        }
    }

    #[test]
    fn an_rtc_address_is_never_pinned() {
        let addr = "RTC56475aa75463474c0285df5dbf2bcab73da65135";
        let cs = [claim(addr, "k1", 1, 1, 10, None)];
        let e = enroll(&cs, &Bindings::new(), &ProfileIndex::default());
        assert!(e.new_bindings.is_empty());
        assert_eq!(e.enrolled[addr].weight, 10);
    }

    #[test]
    fn a_claim_under_a_key_that_lost_the_name_does_not_bind_a_serial() {
        // The hijacker's claim is earlier on the serial, but its key does not own the wallet name.
        let held = certified(&[(BindingKind::WalletKey, "victim", "kv")]);
        let cs = [claim("victim", "kx", 0, 0, 1, Some("s")), claim("other", "ko", 3, 3, 10, Some("s"))];
        let e = enroll(&cs, &held, &ProfileIndex::default());
        assert_eq!(e.new_bindings.get(&(BindingKind::Serial, "s".into())).map(String::as_str), Some("other"));
        assert_eq!(e.enrolled.keys().collect::<Vec<_>>(), ["other"]);
    }

    /// Distinct records (ids are content hashes: one id, one claim), with few wallets, keys,
    /// serials and slots, so ties, pins and serial conflicts are common.
    fn arb_claims() -> impl Strategy<Value = Vec<Claim>> {
        let profile = prop_oneof![Just(Profile::default()), prop::array::uniform5(300u16..303).prop_map(Profile)];
        prop::collection::vec(("[a-e]", "k[12]", 0u64..20, 1u64..5_000_000_000, prop::option::of("[xyz]"), profile), 0..30).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (w, k, slot, weight, s, profile))| Claim { wallet: w, key: k, slot, id: [i as u8; 32], weight, serial_hash: s, profile })
                .collect()
        })
    }

    /// One machine ("w") certified with profile 301x5, for collisions with the generated ones.
    fn certified_profiles() -> ProfileIndex {
        let mut p = ProfileIndex::default();
        p.insert(Profile([301; 5]), "wallet:certified".into());
        p
    }

    fn complete(v: u16) -> Profile {
        Profile([v; 5])
    }

    fn with_profile(mut c: Claim, p: Profile) -> Claim {
        c.profile = p;
        c
    }

    /// Issue 21: one real fingerprint under three serials and wallets enrolls once at full weight;
    /// a fourth machine whose measurements differ in one field by a bucket is another machine.
    #[test]
    fn a_copied_fingerprint_earns_once() {
        let g4 = 2_290_242_199;
        let cs = [
            with_profile(claim("w1", "k1", 3, 1, g4, Some("s1")), complete(500)),
            with_profile(claim("w2", "k2", 4, 2, g4, Some("s2")), complete(500)),
            with_profile(claim("w3", "k3", 5, 3, g4, Some("s3")), complete(500)),
        ];
        let mut cs = cs.to_vec();
        cs.push(with_profile(claim("w4", "k4", 6, 4, g4, Some("s4")), Profile([500, 500, 500, 500, 501])));
        let e = enroll(&cs, &Bindings::new(), &ProfileIndex::default());
        let weights: Vec<u64> = e.enrolled.values().map(|x| x.weight).collect();
        assert_eq!(weights, [g4, 2, 2, g4]);
        assert_eq!(e.entropy[&[2; 32]], EntropyVerdict::Collision);
        // Once certified, the copy collides in every later epoch, whoever comes first.
        let mut held = Bindings::new();
        held.extend(e.new_bindings.clone());
        let mut index = ProfileIndex::default();
        index.insert(complete(500), "s1".into());
        let later = [with_profile(claim("w2", "k2", 0, 9, g4, Some("s2")), complete(500)), with_profile(claim("w1", "k1", 7, 8, g4, Some("s1")), complete(500))];
        let e = enroll(&later, &held, &index);
        assert_eq!(e.enrolled["w1"].weight, g4);
        assert_eq!(e.enrolled["w2"].weight, 2);
    }

    /// The review's attack: a new machine copies an established machine's current, drifted
    /// measurements (not the certified first profile) under a receipt backdated to the epoch's
    /// first slot. The established machine claims them first; the copy collides.
    #[test]
    fn a_backdated_copy_of_an_established_machines_drifted_measurements_earns_nothing() {
        let mut held = Bindings::new();
        held.insert((BindingKind::Profile, "s1".into()), complete(500).to_text());
        let drifted = Profile([540, 510, 490, 508, 470]);
        let cs = [
            with_profile(claim("thief", "kt", 0, 0, 3_000_000_000, Some("s9")), drifted),
            with_profile(claim("owner", "ko", 7, 7, 3_000_000_000, Some("s1")), drifted),
        ];
        let e = enroll(&cs, &held, &profile_index(&held));
        assert_eq!((e.enrolled["owner"].weight, e.enrolled["thief"].weight), (3_000_000_000, 3));
        assert_eq!(e.entropy[&[0; 32]], EntropyVerdict::Collision);
    }

    #[test]
    fn drift_is_accepted_a_different_machine_behind_the_serial_is_not_and_sparse_caps_at_one() {
        let mut held = Bindings::new();
        held.insert((BindingKind::Profile, "s1".into()), complete(500).to_text());
        let drifted = Profile([540, 510, 490, 508, 470]); // volatile fields moved a lot, caches 10 buckets
        let swapped = Profile([500, 530, 470, 500, 500]); // both caches 30 buckets (> 31 %) away
        let cs = [
            with_profile(claim("a", "ka", 1, 1, 3_000_000_000, Some("s1")), drifted),
            with_profile(claim("b", "kb", 1, 2, 3_000_000_000, Some("s2")), Profile([0, 500, 500, 500, 500])),
        ];
        let e = enroll(&cs, &held, &ProfileIndex::default());
        assert_eq!((e.enrolled["a"].weight, e.enrolled["b"].weight), (3_000_000_000, 1_000_000_000));
        assert_eq!(e.entropy.get(&[2; 32]), Some(&EntropyVerdict::Insufficient));
        let e = enroll(&[with_profile(claim("a", "ka", 1, 1, 3_000_000_000, Some("s1")), swapped)], &held, &ProfileIndex::default());
        assert_eq!(e.enrolled["a"].weight, 3);
        assert_eq!(e.entropy[&[1; 32]], EntropyVerdict::Mismatch);
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
            let profiles = certified_profiles();
            prop_assert_eq!(enroll(&claims, &held, &profiles), enroll(&reordered, &held, &profiles));
        }

        /// Every enrolled wallet's claim respects the bindings in force, and every serial a
        /// dropped claim names is owned by someone else.
        #[test]
        fn enrollment_respects_bindings(claims in arb_claims(), held in arb_certified()) {
            let e = enroll(&claims, &held, &certified_profiles());
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
            // No two machines bound in one epoch hold colliding profiles, nor one near a certified one.
            let bound: Vec<(String, Profile)> = e.new_bindings.iter()
                .filter(|((k, _), _)| *k == BindingKind::Profile)
                .map(|((_, m), p)| (m.clone(), Profile::from_text(p).unwrap())).collect();
            for (i, (m, p)) in bound.iter().enumerate() {
                prop_assert!(certified_profiles().collision(p, m).is_none());
                for (m2, p2) in &bound[i + 1..] {
                    prop_assert!(m == m2 || !p.collides(p2));
                }
            }
        }
    }
}
