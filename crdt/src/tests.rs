use proptest::prelude::*;
use protocol::crypto::sha256;

use super::*;

/// An entry determined by its id, as records are (content-addressed).
fn entry_from(seed: u16, epochs: u64) -> (u64, Entry) {
    let id = sha256(&seed.to_be_bytes());
    let epoch = u64::from(id[2]) % epochs;
    let wallet = format!("w{}", id[3] % 12);
    let serial_hash = (id[4] % 3 == 0).then(|| format!("serial-{}", id[5] % 5));
    (epoch, Entry { id, wallet, slot: epoch * 10 + u64::from(id[6] % 10), weight: 1 + u64::from(id[7]) * 10_000_000, serial_hash })
}

fn registry_of(seeds: &[u16]) -> Registry {
    let mut r = Registry::new();
    for s in seeds {
        let (e, entry) = entry_from(*s, 3);
        r.insert(e, entry);
    }
    r
}

fn arb_registry() -> impl Strategy<Value = Registry> {
    prop::collection::vec(any::<u16>(), 0..40).prop_map(|s| registry_of(&s))
}

/// One anti-entropy exchange between two replicas: compare each epoch's digest and send each other
/// the entries of the buckets that differ.
fn reconcile(a: &mut Registry, b: &mut Registry) {
    let epochs: std::collections::BTreeSet<u64> = a.epochs().chain(b.epochs()).collect();
    for epoch in epochs {
        let diff = a.digest(epoch).differing(&b.digest(epoch));
        if diff.is_empty() {
            continue;
        }
        let (from_a, from_b) = (a.entries_in(epoch, &diff), b.entries_in(epoch, &diff));
        for e in from_b {
            a.insert(epoch, e);
        }
        for e in from_a {
            b.insert(epoch, e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn merge_is_commutative(a in arb_registry(), b in arb_registry()) {
        let mut ab = a.clone();
        ab.merge(b.clone());
        let mut ba = b;
        ba.merge(a);
        prop_assert_eq!(ab, ba);
    }

    #[test]
    fn merge_is_associative(a in arb_registry(), b in arb_registry(), c in arb_registry()) {
        let mut left = a.clone();
        left.merge(b.clone());
        left.merge(c.clone());
        let mut bc = b;
        bc.merge(c);
        let mut right = a;
        right.merge(bc);
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merge_is_idempotent(a in arb_registry(), b in arb_registry()) {
        let mut once = a.clone();
        once.merge(b.clone());
        let mut twice = once.clone();
        twice.merge(b);
        twice.merge(a);
        prop_assert_eq!(once, twice);
    }

    /// N replicas get the same updates in random orders, with duplicates and drops; anti-entropy
    /// then makes them identical, with the same digests and the same settlement hash as a replica
    /// that saw everything.
    #[test]
    fn replicas_converge_after_anti_entropy(
        seeds in prop::collection::btree_set(any::<u16>(), 1..60),
        deliveries in prop::collection::vec(prop::collection::vec((any::<u8>(), any::<bool>(), any::<bool>()), 60), 4),
    ) {
        let updates: Vec<(u64, Entry)> = seeds.iter().map(|s| entry_from(*s, 3)).collect();
        let mut replicas: Vec<Registry> = vec![Registry::new(); 4];
        for (r, plan) in replicas.iter_mut().zip(&deliveries) {
            // Order by a random key, drop some, deliver some twice.
            let mut order: Vec<(u8, usize)> = (0..updates.len()).map(|i| (plan[i].0, i)).collect();
            order.sort();
            for (_, i) in order {
                let (_, drop, dup) = plan[i];
                if drop { continue; }
                r.insert(updates[i].0, updates[i].1.clone());
                if dup { r.insert(updates[i].0, updates[i].1.clone()); }
            }
        }
        // Every update reached someone (here: replica 0 gets what all others dropped).
        for (i, (epoch, e)) in updates.iter().enumerate() {
            if deliveries.iter().all(|p| p[i].1) {
                replicas[0].insert(*epoch, e.clone());
            }
        }
        // Anti-entropy: every pair once.
        for i in 0..4 {
            for j in (i + 1)..4 {
                let (left, right) = replicas.split_at_mut(j);
                reconcile(&mut left[i], &mut right[0]);
            }
        }
        let mut everything = Registry::new();
        for (epoch, e) in &updates {
            everything.insert(*epoch, e.clone());
        }
        let spec = ChainSpec::builtin("devnet").unwrap();
        for r in &replicas {
            prop_assert_eq!(r, &everything);
            for epoch in 0..3 {
                prop_assert_eq!(r.digest(epoch).root(), everything.digest(epoch).root());
                prop_assert_eq!(r.settle(&spec, epoch, [0; 32]).unwrap().hash(), everything.settle(&spec, epoch, [0; 32]).unwrap().hash());
            }
        }
    }

    #[test]
    fn digest_roots_differ_when_sets_differ(seeds in prop::collection::btree_set(any::<u16>(), 2..40)) {
        let all: Vec<u16> = seeds.into_iter().collect();
        let full = registry_of(&all);
        let less = registry_of(&all[1..]);
        let (epoch, _) = entry_from(all[0], 3);
        prop_assert_ne!(full.digest(epoch).root(), less.digest(epoch).root());
        let diff = full.digest(epoch).differing(&less.digest(epoch));
        prop_assert_eq!(diff, vec![bucket_of(&entry_from(all[0], 3).1.id)]);
    }
}

#[test]
fn views_ignore_arrival_order_and_locality() {
    // Two nodes that each accepted a claim on the same serial for different wallets: after merging
    // both, both pick the same winner (earliest slot, then smallest id), not "the local one".
    let mut a = Registry::new();
    let mut b = Registry::new();
    let ea = Entry { id: [9; 32], wallet: "alice".into(), slot: 5, weight: 10, serial_hash: Some("s".into()) };
    let eb = Entry { id: [1; 32], wallet: "bob".into(), slot: 5, weight: 20, serial_hash: Some("s".into()) };
    a.insert(0, ea.clone());
    b.insert(0, eb.clone());
    let (mut ab, mut ba) = (a.clone(), b.clone());
    ab.merge(b);
    ba.merge(a);
    assert_eq!(ab.bindings()["s"].wallet, "bob");
    assert_eq!(ba.bindings()["s"].wallet, "bob");
    assert_eq!(ab.enrollment(0).keys().collect::<Vec<_>>(), ["bob"]);
    assert_eq!(ab.digest(0).root(), ba.digest(0).root());
}

#[test]
fn buckets_are_the_first_twelve_bits() {
    let mut id = [0u8; 32];
    id[0] = 0xab;
    id[1] = 0xcd;
    assert_eq!(bucket_of(&id), 0xabc);
    assert_eq!(bucket_of(&[0xff; 32]) as usize, BUCKETS - 1);
}
