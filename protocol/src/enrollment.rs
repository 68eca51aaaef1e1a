//! Per-epoch enrollment and hardware-serial bindings: deterministic views over a set of accepted
//! records. Nothing here depends on the order in which records arrived.

use std::collections::BTreeMap;

use crate::crypto::Hash32;

/// What one accepted record claims: this wallet, at this slot, with this weight (and this serial).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub wallet: String,
    /// The slot of the accepting node's receipt.
    pub slot: u64,
    /// The record id.
    pub id: Hash32,
    pub weight: u64,
    pub serial_hash: Option<String>,
}

impl Claim {
    /// Earlier slot first, then smaller id: the order in which claims win.
    fn rank(&self) -> (u64, &Hash32) {
        (self.slot, &self.id)
    }
}

/// Who holds a hardware serial: the wallet of the earliest `(slot, id)` claim naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub wallet: String,
    pub slot: u64,
    pub id: Hash32,
}

/// Fold one claim into the binding table. Applying claims in any order gives the same table.
pub fn bind_serial(bindings: &mut BTreeMap<String, Binding>, claim: &Claim) {
    let Some(serial) = &claim.serial_hash else { return };
    let new = Binding { wallet: claim.wallet.clone(), slot: claim.slot, id: claim.id };
    match bindings.get(serial) {
        Some(old) if (old.slot, &old.id) <= claim.rank() => {}
        _ => {
            bindings.insert(serial.clone(), new);
        }
    }
}

/// The wallet `serial_hash` is bound to, if any other than `wallet`.
pub fn bound_elsewhere<'a>(bindings: &'a BTreeMap<String, Binding>, serial_hash: &str, wallet: &str) -> Option<&'a str> {
    bindings.get(serial_hash).map(|b| b.wallet.as_str()).filter(|w| *w != wallet)
}

/// One wallet's enrollment in an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolled {
    pub weight: u64,
    pub slot: u64,
    pub id: Hash32,
}

/// Enroll an epoch from its claims: per wallet, the earliest `(slot, id)` claim counts; a claim on a
/// serial bound to another wallet does not enroll.
pub fn enroll<'a>(
    epoch_claims: impl IntoIterator<Item = &'a Claim>,
    bindings: &BTreeMap<String, Binding>,
) -> BTreeMap<String, Enrolled> {
    let mut out: BTreeMap<String, Enrolled> = BTreeMap::new();
    for c in epoch_claims {
        if let Some(serial) = &c.serial_hash {
            if bound_elsewhere(bindings, serial, &c.wallet).is_some() {
                continue;
            }
        }
        let candidate = Enrolled { weight: c.weight, slot: c.slot, id: c.id };
        match out.get(&c.wallet) {
            Some(e) if (e.slot, &e.id) <= c.rank() => {}
            _ => {
                out.insert(c.wallet.clone(), candidate);
            }
        }
    }
    out
}

/// The weights to settle: wallet -> enrolled weight.
pub fn weights(enrolled: &BTreeMap<String, Enrolled>) -> BTreeMap<String, u64> {
    enrolled.iter().map(|(w, e)| (w.clone(), e.weight)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(wallet: &str, slot: u64, id: u8, weight: u64, serial: Option<&str>) -> Claim {
        Claim { wallet: wallet.into(), slot, id: [id; 32], weight, serial_hash: serial.map(Into::into) }
    }

    #[test]
    fn earliest_claim_wins_then_smallest_id() {
        let cs = [claim("a", 5, 9, 100, None), claim("a", 3, 7, 200, None), claim("a", 3, 2, 300, None)];
        let e = enroll(&cs, &BTreeMap::new());
        assert_eq!(e["a"].weight, 300);
    }

    #[test]
    fn serial_belongs_to_the_first_wallet() {
        let cs = [claim("b", 4, 1, 10, Some("s")), claim("a", 2, 9, 20, Some("s")), claim("c", 1, 1, 5, None)];
        let mut bindings = BTreeMap::new();
        for c in &cs {
            bind_serial(&mut bindings, c);
        }
        assert_eq!(bindings["s"].wallet, "a");
        assert_eq!(bound_elsewhere(&bindings, "s", "b"), Some("a"));
        assert_eq!(bound_elsewhere(&bindings, "s", "a"), None);
        let e = enroll(&cs, &bindings);
        assert_eq!(e.keys().collect::<Vec<_>>(), ["a", "c"]);
    }

    fn arb_claim() -> impl Strategy<Value = Claim> {
        ("[a-e]", 0u64..20, 0u8..8, 1u64..5_000_000_000, prop::option::of("[xyz]"))
            .prop_map(|(w, slot, id, weight, s)| Claim { wallet: w, slot, id: [id; 32], weight, serial_hash: s })
    }

    proptest! {
        #[test]
        fn enrollment_is_order_independent(
            (claims, shuffled) in prop::collection::vec(arb_claim(), 0..40)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            // Ids are records' content hashes: the same id is the same record, so make it so here.
            let dedup = |cs: Vec<Claim>| -> Vec<Claim> {
                let mut seen = BTreeMap::new();
                let first: Vec<Claim> = claims.clone();
                for c in &first { seen.entry(c.id).or_insert_with(|| c.clone()); }
                cs.into_iter().map(|c| seen[&c.id].clone()).collect()
            };
            let (a, b) = (dedup(claims.clone()), dedup(shuffled));
            let view = |cs: &[Claim]| {
                let mut bindings = BTreeMap::new();
                for c in cs { bind_serial(&mut bindings, c); }
                (enroll(cs, &bindings), bindings)
            };
            prop_assert_eq!(view(&a), view(&b));
        }
    }
}
