//! HTTP bodies: `/attest/submit` (`parse_submission`), `/wallet/transfer/signed`
//! (`parse_transfer`), and canonical JSON (every other JSON body). Canonical text is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{attestation, canonical_json, transfer};

fuzz_target!(|data: &[u8]| {
    let spec = protocol::ChainSpec::builtin("devnet").unwrap();
    if let Ok(v) = canonical_json::parse(data) {
        let text = v.to_canonical();
        let again = canonical_json::parse(text.as_bytes()).expect("canonical text parses");
        assert_eq!(again, v);
        assert_eq!(again.to_canonical(), text);
    }
    if let Ok(sub) = attestation::parse_submission(data) {
        assert_eq!(sub.payload().verify().map(|s| s.canonical).ok(), Some(sub.canonical.clone()));
        let _ = attestation::evaluate(&spec, &sub, 1234);
    }
    if let Ok(t) = transfer::parse_transfer(&spec, data) {
        assert!(t.amount_i64 >= 1 && t.amount_i64 as u64 <= spec.total_supply_urtc);
    }
});
