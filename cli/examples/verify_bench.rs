//! How fast `rustchain verify` checks an archive's history, without the network: EPOCHS epochs of
//! MINERS signed attestation records each (the miners' payloads signed once, a receipt signed per
//! record), a certificate of 3 validators per epoch. Per epoch it times what the verifier does
//! after the bytes arrive: parse the page's JSON and hex, decode and verify every record (payload
//! and receipt signatures, on every core), evaluate and enroll, split, judge, compare, apply, and
//! verify the certificate. Prints a table and the time 1,000 epochs would take at that rate.
//!
//!     cargo run --release -p rustchain-cli --example verify_bench -- [MINERS] [EPOCHS]

use std::time::{Duration, Instant};

use protocol::ChainSpec;
use protocol::attestation::{AttestationRecord, Receipt, parse_submission};
use protocol::consensus::{EpochCertificate, Vote};
use protocol::crypto::Keypair;
use rustchain_cli::{sim, verify};
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let miners: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let epochs: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let validators: Vec<Keypair> = (0..3u8).map(|i| Keypair::from_seed(&[0xa0 + i; 32])).collect();
    let mut spec = ChainSpec::builtin("devnet")?;
    spec.validators = validators.iter().map(|k| hex::encode(k.public())).collect();
    let set = spec.validators.iter().map(|v| protocol::crypto::decode_hex::<32>("v", v).unwrap()).collect();
    let node = Keypair::from_seed(&[0x55; 32]);

    eprintln!("signing {miners} miner payloads and {} receipts ...", miners as u64 * epochs);
    let payloads: Vec<_> = (0..miners)
        .map(|i| {
            let key = sim::miner_key(9, i);
            let body = sim::signed_body(&key, 9, i, &sim::miner_id(9, i), "bench-nonce");
            parse_submission(&body).expect("a valid body").payload()
        })
        .collect();
    // Each epoch's records page as the node serves it: JSON with the CBOR in hex.
    let pages: Vec<String> = (0..epochs)
        .map(|e| {
            let slot = spec.first_slot(e);
            let records: Vec<Value> = payloads
                .iter()
                .map(|p| {
                    let r = AttestationRecord { payload: p.clone(), receipt: Receipt::sign(&spec, &node, &p.payload_id(), slot, "bench-nonce") };
                    json!({"id": hex::encode(r.id()), "kind": "attestation", "cbor": hex::encode(r.to_cbor())})
                })
                .collect();
            json!({"epoch": e, "records": records, "next_cursor": null}).to_string()
        })
        .collect();
    let page_bytes: usize = pages.iter().map(String::len).sum::<usize>() / pages.len().max(1);

    let mut offline = verify::Offline::default();
    let (mut parse, mut check, mut certs) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut prev = [0u8; 32];
    let started = Instant::now();
    for (e, page) in (0..epochs).zip(&pages) {
        let t = Instant::now();
        let v: Value = serde_json::from_str(page)?;
        let raw: Vec<_> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let id = protocol::crypto::decode_hex::<32>("id", r["id"].as_str().unwrap()).unwrap();
                (id, r["kind"].as_str().unwrap().to_owned(), hex::decode(r["cbor"].as_str().unwrap()).unwrap())
            })
            .collect();
        parse += t.elapsed();
        let t = Instant::now();
        let s = offline.epoch(&spec, e, prev, raw)?;
        check += t.elapsed();
        assert_eq!(s.entries.len(), miners, "every miner enrolled");
        let hash = s.hash();
        let cert = EpochCertificate {
            epoch: e,
            round: 0,
            settlement_hash: hash,
            votes: validators.iter().map(|k| Vote::sign(&spec, k, e, 0, hash, [0; 32])).collect(),
        };
        let t = Instant::now();
        cert.verify(&spec, &set)?;
        certs += t.elapsed();
        prev = hash;
    }
    let total = started.elapsed();
    let per_epoch = total / epochs as u32;
    println!("| miners | epochs | page (JSON) | parse JSON+hex | verify records + settle + apply | certificates | total | per epoch | 1,000 epochs at this rate |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {miners} | {epochs} | {:.1} MB | {:.2} s | {:.2} s | {:.3} s | {:.2} s | {:.0} ms | {:.0} s |",
        page_bytes as f64 / 1e6,
        parse.as_secs_f64(),
        check.as_secs_f64(),
        certs.as_secs_f64(),
        total.as_secs_f64(),
        per_epoch.as_secs_f64() * 1e3,
        per_epoch.as_secs_f64() * 1000.0
    );
    Ok(())
}
