//! Registry benchmarks: merging two 100,000-miner registries, and how many bytes a digest-driven
//! reconciliation of two registries that differ in 1 % of entries moves, against a full transfer.
//! Run: `cargo bench -p rustchain-crdt`.

use criterion::{Criterion, criterion_group, criterion_main};
use crdt::{Entry, Registry};
use protocol::crypto::sha256;

const MINERS: u32 = 100_000;
/// Bytes of one stored attestation record (CBOR): an estimate for a field miner's record (its signed
/// body plus keys, signatures and receipt). `rustchain attest` records are larger (~3.4 KB: a
/// 3,173-byte body), which only lowers the ratio, so this is the conservative figure.
const RECORD_BYTES: usize = 2_300;

fn entry(i: u32) -> Entry {
    Entry { id: sha256(&i.to_be_bytes()), wallet: format!("RTC{i:040}"), key: String::new(), profile: [0; 5], slot: 10, weight: 1_000_000_000 + u64::from(i), serial_hash: None }
}

fn registry(range: impl Iterator<Item = u32>) -> Registry {
    let mut r = Registry::new();
    for i in range {
        r.insert(1, entry(i));
    }
    r
}

fn merge(c: &mut Criterion) {
    // Two registries of 100,000 miners each, overlapping in half.
    let a = registry(0..MINERS);
    let b = registry(MINERS / 2..MINERS + MINERS / 2);
    c.bench_function("merge two 100k-miner registries", |bench| {
        bench.iter_batched(|| (a.clone(), b.clone()), |(mut a, b)| a.merge(b), criterion::BatchSize::LargeInput)
    });
}

fn reconcile_bytes(_c: &mut Criterion) {
    // B lacks 1 % of A's entries.
    let a = registry(0..MINERS);
    let b = registry((0..MINERS).filter(|i| i % 100 != 0));
    let (da, db) = (a.digest(1), b.digest(1));
    let digest_bytes = da.buckets.len() * (2 + 32) + 8;
    let diff = da.differing(&db);
    let ids_bytes = a.entries_in(1, &diff).len() * 32 + b.entries_in(1, &diff).len() * 32;
    let missing = a.entries_in(1, &diff).len() - b.entries_in(1, &diff).len();
    let moved = digest_bytes + ids_bytes + missing * RECORD_BYTES;
    let full = MINERS as usize * RECORD_BYTES;
    println!(
        "reconcile 100k vs 99k (1% differ): digest {digest_bytes} B + ids in {} differing buckets {ids_bytes} B + {missing} records = {moved} B; full transfer {full} B; ratio {:.2}%",
        diff.len(),
        100.0 * moved as f64 / full as f64
    );
}

criterion_group!(benches, merge, reconcile_bytes);
criterion_main!(benches);
