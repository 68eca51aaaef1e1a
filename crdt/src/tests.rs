use proptest::prelude::*;
use protocol::crypto::sha256;
use protocol::settlement::PendingTransfer;

use super::*;

/// An entry determined by its id, as records are (content-addressed).
fn entry_from(seed: u16, epochs: u64) -> (u64, Entry) {
    let id = sha256(&seed.to_be_bytes());
    let epoch = u64::from(id[2]) % epochs;
    let wallet = format!("w{}", id[3] % 12);
    let serial_hash = id[4].is_multiple_of(3).then(|| format!("serial-{}", id[5] % 5));
    (epoch, Entry {
        id,
        wallet,
        key: format!("k{}", id[8] % 2),
        slot: epoch * 10 + u64::from(id[6] % 10),
        weight: 1 + u64::from(id[7]) * 10_000_000,
        serial_hash,
        // Few distinct measurements, so copies (collisions) and sparse profiles are common.
        profile: if id[9].is_multiple_of(4) { [0, 500, 500, 500, 500] } else { [500 + u16::from(id[9] % 3) * 2; 5] },
    })
}

/// A transfer record determined by its seed. Few senders, recipients, nonces and amounts, so sets
/// of them hold the same transfer under two receipts (same signed fields, another slot), different
/// transfers with the same sender and nonce (conflicts), stale nonces and overdrafts.
fn transfer_from(seed: u16) -> TransferEntry {
    let h = sha256(&[b"transfer".as_slice(), &seed.to_be_bytes()].concat());
    let sender = h[0] % 6;
    let from = format!("w{sender}");
    let to = format!("w{}", (sender + 1 + h[1] % 11) % 12);
    let nonce = 1 + u64::from(h[2] % 3);
    let amount_urtc = 1 + u64::from(h[3] % 4) * 200_000;
    let tx_hash = hex::encode(&sha256(format!("{from}|{to}|{amount_urtc}|{nonce}").as_bytes())[..16]);
    TransferEntry { record_id: h, slot: u64::from(h[4] % 30), transfer: PendingTransfer { tx_hash: tx_hash.into(), from: from.into(), to: to.into(), amount_urtc, nonce } }
}

fn registry_of(seeds: &[u16]) -> Registry {
    let mut r = Registry::new();
    for s in seeds {
        let (e, entry) = entry_from(*s, 3);
        r.insert(e, entry);
        if s % 2 == 0 {
            r.insert_transfer(transfer_from(*s));
        }
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
        // Transfers: every replica gets every transfer record, each in its own order (a union of sets
        // has no order to depend on; this checks the settlement views do not either).
        let transfers: Vec<TransferEntry> = seeds.iter().map(|s| transfer_from(*s)).collect();
        for (r, plan) in replicas.iter_mut().zip(&deliveries) {
            let mut order: Vec<(u8, usize)> = (0..transfers.len()).map(|i| (plan[i].0 ^ 0x5a, i)).collect();
            order.sort();
            for (_, i) in order {
                r.insert_transfer(transfers[i].clone());
            }
        }
        for t in &transfers {
            everything.insert_transfer(t.clone());
        }
        let whole = everything.settle_chain(&spec, 0, 2).unwrap();
        for r in &replicas {
            let chain = r.settle_chain(&spec, 0, 2).unwrap();
            prop_assert_eq!(chain.0.iter().map(|s| s.hash()).collect::<Vec<_>>(), whole.0.iter().map(|s| s.hash()).collect::<Vec<_>>());
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any set of transfers, in any arrival order, settles over a chain of epochs to the same records
    /// and hashes; no balance ever goes below zero (the ledger refuses that); every uRTC in a balance
    /// was paid as a reward (supply is conserved); the same sender and nonce is never paid twice.
    #[test]
    fn transfers_settle_the_same_in_any_order(
        (seeds, shuffled) in prop::collection::btree_set(any::<u16>(), 0..80)
            .prop_flat_map(|s| { let v: Vec<u16> = s.into_iter().collect(); (Just(v.clone()), Just(v).prop_shuffle()) })
    ) {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let build = |order: &[u16]| {
            let mut r = Registry::new();
            for s in order {
                let (e, entry) = entry_from(*s, 3);
                r.insert(e, entry);
                r.insert_transfer(transfer_from(*s));
            }
            r
        };
        let (a, b) = (build(&seeds), build(&shuffled));
        let (sa, ledger) = a.settle_chain(&spec, 0, 3).unwrap();
        let (sb, _) = b.settle_chain(&spec, 0, 3).unwrap();
        prop_assert_eq!(&sa, &sb);
        let rewards: u64 = sa.iter().map(|s| s.distributed_urtc).sum();
        let balances: u64 = ledger.accounts.values().map(|a| a.balance_urtc).sum();
        prop_assert_eq!(balances, rewards, "supply conserved");
        let mut paid = std::collections::BTreeSet::new();
        for s in &sa {
            let credits: u64 = s.balance_changes().iter().map(|c| c.credit_urtc).sum();
            let debits: u64 = s.balance_changes().iter().map(|c| c.debit_urtc).sum();
            prop_assert_eq!(credits - debits, s.distributed_urtc);
            for t in s.transfers.iter().filter(|t| t.result == protocol::settlement::TransferResult::Applied) {
                prop_assert!(paid.insert((t.from.clone(), t.nonce)), "sender and nonce paid twice: {:?}", t);
            }
        }
        // Every transfer was judged exactly once, in the epoch of its earliest receipt or later.
        let judged: Vec<&str> = sa.iter().flat_map(|s| s.transfers.iter().map(|t| &*t.tx_hash)).collect();
        let unique: std::collections::BTreeSet<&str> = judged.iter().copied().collect();
        prop_assert_eq!(judged.len(), unique.len());
        prop_assert_eq!(unique.len(), a.transfers_through(&spec, 3).len());
    }
}

#[test]
fn a_transfer_counts_from_its_earliest_receipt_and_is_judged_once() {
    let spec = ChainSpec::builtin("devnet").unwrap();
    let mut r = Registry::new();
    r.insert(0, Entry { id: [1; 32], wallet: "alice".into(), key: "ka".into(), slot: 3, weight: 1_000_000_000, serial_hash: None, profile: [0; 5] });
    let t = PendingTransfer { tx_hash: "t1".into(), from: "alice".into(), to: "bob".into(), amount_urtc: 1_000_000, nonce: 1 };
    // Accepted by two nodes: at slot 25 (epoch 2) and slot 12 (epoch 1).
    r.insert_transfer(TransferEntry { record_id: [2; 32], slot: 25, transfer: t.clone() });
    r.insert_transfer(TransferEntry { record_id: [3; 32], slot: 12, transfer: t.clone() });
    let (chain, ledger) = r.settle_chain(&spec, 0, 2).unwrap();
    assert!(chain[0].transfers.is_empty());
    assert_eq!(chain[1].transfers.len(), 1, "judged in epoch 1, the earliest receipt");
    assert_eq!(chain[1].transfers[0].result, protocol::settlement::TransferResult::Applied);
    assert!(chain[2].transfers.is_empty(), "never judged again");
    assert_eq!(ledger.accounts["alice"].balance_urtc, 500_000);
    assert_eq!(ledger.accounts["bob"].balance_urtc, 1_000_000);

    // A second, different transfer with the same nonce in the same epoch: both rejected.
    let mut c = Registry::new();
    c.insert(0, Entry { id: [1; 32], wallet: "alice".into(), key: "ka".into(), slot: 3, weight: 1_000_000_000, serial_hash: None, profile: [0; 5] });
    let t2 = PendingTransfer { tx_hash: "t2".into(), to: "carol".into(), ..t.clone() };
    c.insert_transfer(TransferEntry { record_id: [2; 32], slot: 12, transfer: t });
    c.insert_transfer(TransferEntry { record_id: [4; 32], slot: 15, transfer: t2 });
    let (chain, ledger) = c.settle_chain(&spec, 0, 1).unwrap();
    let results: Vec<_> = chain[1].transfers.iter().map(|t| (&*t.tx_hash, t.result.as_str())).collect();
    assert_eq!(results, [("t1", "conflict"), ("t2", "conflict")]);
    assert_eq!(ledger.accounts["alice"].balance_urtc, 1_500_000, "nothing moved");
    assert_eq!(ledger.accounts["alice"].last_nonce, None, "a conflict consumes no nonce");
}

#[test]
fn views_ignore_arrival_order_and_locality() {
    // Two nodes that each accepted a claim on the same serial for different wallets: after merging
    // both, both pick the same winner (earliest slot, then smallest id), not "the local one".
    let mut a = Registry::new();
    let mut b = Registry::new();
    let ea = Entry { id: [9; 32], wallet: "alice".into(), key: "ka".into(), slot: 5, weight: 10, serial_hash: Some("s".into()), profile: [0; 5] };
    let eb = Entry { id: [1; 32], wallet: "bob".into(), key: "kb".into(), slot: 5, weight: 20, serial_hash: Some("s".into()), profile: [0; 5] };
    a.insert(0, ea.clone());
    b.insert(0, eb.clone());
    let (mut ab, mut ba) = (a.clone(), b.clone());
    ab.merge(b);
    ba.merge(a);
    assert_eq!(ab.serial_owner("s").as_deref(), Some("bob"));
    assert_eq!(ba.serial_owner("s").as_deref(), Some("bob"));
    assert_eq!(ab.enrollment(0, &Default::default()).enrolled.keys().collect::<Vec<_>>(), ["bob"]);
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
