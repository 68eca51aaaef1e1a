//! Criterion benchmarks of the consensus hot paths (run with `cargo bench -p rustchain-protocol`,
//! or `scripts/bench.sh` for these plus the node's durable HTTP throughput).
//!
//! * `attestation/validate`: what a node does per `/attest/submit` body before it writes:
//!   `parse_submission` (canonical JSON, shape, Ed25519 `verify_strict`) then `evaluate`
//!   (fingerprint rules, multiplier), on a ~2 KB Linux-miner body. Target >= 20,000/s per core.
//!   The `attestation/part/*` benches split that cost (JSON only, signature only, evaluate only).
//! * `settlement/settle+hash/100000`: `settle` over 100,000 wallets and `Settlement::hash`
//!   (CBOR + SHA-256). Target < 50 ms.
//! * `settlement/settle+hash/100000+transfers/100000`: the same 100,000 wallets plus 100,000 pending
//!   transfers between them (a few conflicting, stale or overdrawn). Target < 300 ms (issue 7).
//! * `enrollment/enroll/100000`: `enroll` over 100,000 claims with bindings and entropy profiles
//!   (extra information).
//! * `entropy/collision_check/100000/*`: one entropy-profile collision check against 100,000 bound
//!   machines, for a copy of a bound profile and for an unrelated machine. Target < 20 us (issue 21).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protocol::ChainSpec;
use protocol::attestation;
use protocol::canonical_json;
use protocol::crypto::{self, Keypair};
use protocol::enrollment::{self, BindingKind, Bindings, Claim};
use protocol::entropy::{self, Profile, ProfileIndex};
use protocol::settlement;

fn bench_attestation(c: &mut Criterion) {
    let spec = ChainSpec::builtin("devnet").expect("devnet spec");
    let key = Keypair::from_seed(&[42; 32]);
    let nonce = "00000000006a1b2c3d4e5f6071829304a5b6c7d8e9f00112233445566778899aa";
    let body = protocol::testkit::linux_miner_body(&key, 0, "bench-ryzen", nonce, "SN");
    let slot = 1_000_000;
    // The body must be valid and pass: otherwise we would be timing an early exit.
    let sub = attestation::parse_submission(&body).expect("the benchmark body is valid");
    let eval = attestation::evaluate(&spec, &sub, slot);
    assert!(eval.verdict.passed, "benchmark body must pass the fingerprint rules: {:?}", eval.verdict.reasons);
    eprintln!("attestation body: {} bytes (canonical signed part {} bytes)", body.len(), sub.canonical.len());

    let mut g = c.benchmark_group("attestation");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("validate", |b| {
        b.iter(|| {
            let sub = attestation::parse_submission(black_box(&body)).expect("valid");
            black_box(attestation::evaluate(&spec, &sub, slot))
        })
    });
    // The same work split into its parts, to see where the time goes.
    g.bench_function("part/json_parse+canonicalize", |b| {
        b.iter(|| black_box(canonical_json::parse(black_box(&body)).expect("json").to_canonical()))
    });
    let msg = sub.signed_message();
    g.bench_function("part/ed25519_verify_strict", |b| {
        b.iter(|| crypto::verify(black_box(&sub.public_key), black_box(&msg), black_box(&sub.signature)).expect("verifies"))
    });
    // What the signature check is made of: point decompression of the public key, then the
    // verification proper (strict, as the protocol requires, and the lax one for comparison).
    g.bench_function("part/ed25519_pubkey_decompress", |b| b.iter(|| crypto::public_key(black_box(&sub.public_key)).expect("valid key")));
    let vk = crypto::public_key(&sub.public_key).expect("valid key");
    let sig = ed25519_dalek::Signature::from_bytes(&sub.signature);
    g.bench_function("part/ed25519_verify_strict_prepared_key", |b| {
        b.iter(|| black_box(&vk).verify_strict(black_box(&msg), black_box(&sig)).expect("verifies"))
    });
    g.bench_function("part/ed25519_verify_lax_prepared_key", |b| {
        b.iter(|| ed25519_dalek::Verifier::verify(black_box(&vk), black_box(&msg), black_box(&sig)).expect("verifies"))
    });
    g.bench_function("part/evaluate", |b| b.iter(|| black_box(attestation::evaluate(&spec, black_box(&sub), slot))));
    g.finish();
}

fn wallets(n: usize) -> Vec<String> {
    // RTC addresses, like real wallets: 43 characters.
    (0..n).map(|i| crypto::address_of(&crypto::sha256(&(i as u64).to_be_bytes()))).collect()
}

fn bench_settlement(c: &mut Criterion) {
    const N: usize = 100_000;
    let spec = ChainSpec::builtin("mainnet").expect("mainnet spec");
    // Weights between 0.8x and 3.5x, spread deterministically.
    let weights: BTreeMap<String, u64> = wallets(N)
        .into_iter()
        .enumerate()
        .map(|(i, w)| (w, 800_000_000 + (i as u64 * 2_654_435_761) % 2_700_000_000))
        .collect();
    assert_eq!(weights.len(), N);
    let none = settlement::TransferInput::default();
    let s = settlement::settle(&spec, 355, [0; 32], &weights, &Default::default(), &none).expect("settles");
    assert_eq!(s.distributed_urtc, spec.epoch_pot_urtc);
    eprintln!("settlement of {N} wallets: {} canonical bytes", s.canonical_bytes().len());

    let mut g = c.benchmark_group("settlement");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("settle+hash/100000", |b| {
        b.iter(|| {
            let s = settlement::settle(&spec, black_box(355), [0; 32], black_box(&weights), &Default::default(), &none).expect("settles");
            black_box(s.hash())
        })
    });
    g.bench_function("part/settle/100000", |b| {
        b.iter(|| black_box(settlement::settle(&spec, black_box(355), [0; 32], black_box(&weights), &Default::default(), &none).expect("settles")))
    });
    g.bench_function("part/hash/100000", |b| b.iter(|| black_box(black_box(&s).hash())));

    // 100,000 transfers among the same wallets: every wallet sends one (nonce 1) to another,
    // every 500th also sends a second with the same nonce (a conflict), every 1,000th has a stale
    // nonce and every 250th asks for more than it has.
    let names: Vec<&String> = weights.keys().collect();
    let mut input = settlement::TransferInput::default();
    for (i, from) in names.iter().enumerate() {
        let balance = 5_000_000 + i as u64;
        input.accounts.insert(from.as_str().into(), settlement::Account { balance_urtc: balance, last_nonce: (i % 1000 == 0).then_some(7) });
        let mut push = |k: u64, amount: u64| {
            // Each transfer owns its strings, as when the node reads them from its database.
            let tx_hash: settlement::Text = hex::encode(&crypto::sha256(&[i.to_be_bytes().as_slice(), &k.to_be_bytes()].concat())[..16]).into();
            let to = names[(i * 7919 + 1 + k as usize) % N].as_str().into();
            input.pending.insert(tx_hash.clone(), settlement::PendingTransfer { tx_hash, from: from.as_str().into(), to, amount_urtc: amount, nonce: 1 });
        };
        push(0, if i % 250 == 0 { balance * 3 } else { 1_000 + i as u64 % 5_000 });
        if i % 500 == 0 {
            push(1, 10);
        }
    }
    let pending = input.pending.len();
    let s = settlement::settle(&spec, 355, [0; 32], &weights, &Default::default(), &input).expect("settles");
    let applied = s.transfers.iter().filter(|t| t.result == settlement::TransferResult::Applied).count();
    eprintln!("settlement of {N} wallets + {pending} transfers: {applied} applied, {} canonical bytes", s.canonical_bytes().len());
    assert!(pending >= N && applied > N * 9 / 10 && applied < pending, "the benchmark must judge real transfers");
    g.bench_function("part/settle/100000+transfers/100000", |b| {
        b.iter(|| black_box(settlement::settle(&spec, black_box(355), [0; 32], black_box(&weights), &Default::default(), black_box(&input)).expect("settles")))
    });
    g.bench_function("part/hash/100000+transfers/100000", |b| b.iter(|| black_box(black_box(&s).hash())));
    // The hash's two halves: encoding the record, and SHA-256 over its bytes.
    g.bench_function("part/encode/100000+transfers/100000", |b| b.iter(|| black_box(black_box(&s).canonical_bytes())));
    let bytes = s.canonical_bytes();
    g.bench_function("part/sha256/100000+transfers/100000", |b| b.iter(|| black_box(crypto::sha256(black_box(&bytes)))));
    g.bench_function("settle+hash/100000+transfers/100000", |b| {
        b.iter(|| {
            let s = settlement::settle(&spec, black_box(355), [0; 32], black_box(&weights), &Default::default(), black_box(&input)).expect("settles");
            black_box(s.hash())
        })
    });
    g.finish();
}

fn bench_enrollment(c: &mut Criterion) {
    const N: usize = 100_000;
    // 100,000 claims: 80,000 wallets (a fifth attest twice), most with a serial, 1,000 of which
    // are bound to another wallet (a duplicate-hardware claim that must not enroll).
    let names = wallets(N * 4 / 5);
    let claims: Vec<Claim> = (0..N)
        .map(|i| {
            let wallet = names[i % names.len()].clone();
            let serial = (i % 10 != 0).then(|| format!("{:040x}", i % names.len()));
            let key = format!("{:064x}", i % names.len());
            let profile = machine_profile(i % names.len());
            Claim { wallet, key, slot: (i as u64 * 7919) % 600, id: crypto::sha256(&(i as u64).to_le_bytes()), weight: 1_000_000_000 + i as u64, serial_hash: serial, profile }
        })
        .collect();
    // Bindings certified before the epoch: half the wallets' keys and serials; 1,000 of the
    // serials held by another wallet.
    let mut bindings = Bindings::new();
    for (i, c) in claims.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        bindings.insert((BindingKind::WalletKey, c.wallet.clone()), c.key.clone());
        if let Some(s) = &c.serial_hash {
            let owner = if i < 2_000 { format!("someone-else-{i}") } else { c.wallet.clone() };
            bindings.insert((BindingKind::Serial, s.clone()), owner);
        }
        bindings.insert((BindingKind::Profile, c.machine()), c.profile.to_text());
    }
    let profiles = enrollment::profile_index(&bindings);
    let e = enrollment::enroll(&claims, &bindings, &profiles);
    eprintln!("enrollment: {N} claims -> {} wallets enrolled, {} new bindings", e.enrolled.len(), e.new_bindings.len());

    let mut g = c.benchmark_group("enrollment");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("enroll/100000", |b| b.iter(|| black_box(enrollment::enroll(black_box(&claims), black_box(&bindings), black_box(&profiles)))));
    g.bench_function("enroll+weights/100000", |b| {
        b.iter(|| black_box(enrollment::weights(&enrollment::enroll(black_box(&claims), black_box(&bindings), black_box(&profiles)).enrolled)))
    });
    g.finish();
}

/// A distinct, complete, realistic entropy profile per machine: clock cv 0.5-3 %, L1 1-4 ns, L2
/// 3-15 ns, thermal ratio 1.00-1.05, jitter cv 0.5-5 % (spread by a hash of the index).
fn machine_profile(i: usize) -> Profile {
    let h = crypto::sha256(&(i as u64).to_be_bytes());
    let f = |k: usize, lo: f64, hi: f64| lo + (hi - lo) * f64::from(u16::from_be_bytes([h[2 * k], h[2 * k + 1]])) / 65535.0;
    Profile([
        entropy::bucket(f(0, 0.005, 0.03)),
        entropy::bucket(f(1, 1.0, 4.0)),
        entropy::bucket(f(2, 3.0, 15.0)),
        entropy::bucket(f(3, 1.0, 1.05)),
        entropy::bucket(f(4, 0.005, 0.05)),
    ])
}

/// Issue 21's target: one collision check against 100,000 bound machines in < 20 us.
fn bench_entropy(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut index = ProfileIndex::default();
    for i in 0..N {
        index.insert(machine_profile(i), format!("{i:040x}"));
    }
    let copies = (0..1000).map(|i| machine_profile(i * 97)).collect::<Vec<_>>();
    let fresh = (0..1000).map(|i| machine_profile(N + i)).collect::<Vec<_>>();
    let hits = copies.iter().filter(|p| index.collision(p, "nobody").is_some()).count();
    let false_hits = fresh.iter().filter(|p| index.collision(p, "nobody").is_some()).count();
    eprintln!("entropy: {N} bound machines; copies found {hits}/1000; unrelated machines flagged {false_hits}/1000");
    let mut g = c.benchmark_group("entropy");
    g.sample_size(30);
    let mut k = 0;
    g.bench_function("collision_check/100000/copy", |b| {
        b.iter(|| {
            k = (k + 1) % copies.len();
            black_box(index.collision(black_box(&copies[k]), "nobody").is_some())
        })
    });
    g.bench_function("collision_check/100000/fresh", |b| {
        b.iter(|| {
            k = (k + 1) % fresh.len();
            black_box(index.collision(black_box(&fresh[k]), "nobody").is_some())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_attestation, bench_settlement, bench_enrollment, bench_entropy);
criterion_main!(benches);
