//! Records peers send and the database holds: attestation and transfer records, settlements and
//! certificates (CBOR). What decodes verifies without panic and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::attestation::AttestationRecord;
use protocol::consensus::EpochCertificate;
use protocol::settlement::Settlement;
use protocol::transfer::TransferRecord;

fuzz_target!(|data: &[u8]| {
    let spec = protocol::ChainSpec::builtin("devnet").unwrap();
    if let Ok(r) = AttestationRecord::from_cbor(data) {
        let _ = (r.verify(&spec), r.id());
        assert_eq!(AttestationRecord::from_cbor(&r.to_cbor()).ok(), Some(r));
    }
    if let Ok(r) = TransferRecord::from_cbor(data) {
        let _ = (r.verify(&spec), r.id());
        assert_eq!(TransferRecord::from_cbor(&r.to_cbor()).ok(), Some(r));
    }
    if let Ok(s) = Settlement::from_cbor(data) {
        let _ = (s.hash(), s.to_json());
        assert_eq!(Settlement::from_cbor(&s.canonical_bytes()).ok(), Some(s));
    }
    if let Ok(c) = ciborium::from_reader::<EpochCertificate, _>(data) {
        let _ = c.verify(&spec, &Default::default());
    }
});
