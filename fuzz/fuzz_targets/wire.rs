//! Gossip announcements, votes, and sync requests/responses as both decoders read them (ciborium
//! in `wire::*::decode`, cbor4ii in libp2p's request-response codec). What decodes round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::wire::{self, InvAttestation, InvEpoch, Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(inv) = InvAttestation::decode(data) {
        assert!((1..=wire::MAX_IDS_PER_MESSAGE).contains(&inv.ids.len()));
        assert_eq!(InvAttestation::decode(&inv.encode()), Ok(inv));
    }
    if let Ok(e) = InvEpoch::decode(data) {
        assert_eq!(InvEpoch::decode(&e.encode()), Ok(e));
    }
    if let Ok(v) = wire::decode_vote(data) {
        assert_eq!(wire::decode_vote(&wire::encode_vote(&v)), Ok(v));
    }
    if let Ok(r) = Request::decode(data) {
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(Response::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = cbor4ii::serde::from_slice::<Request>(data) {
        let again = cbor4ii::serde::to_vec(Vec::new(), &r).unwrap();
        assert_eq!(cbor4ii::serde::from_slice::<Request>(&again).ok(), Some(r));
    }
    if let Ok(r) = cbor4ii::serde::from_slice::<Response>(data) {
        let again = cbor4ii::serde::to_vec(Vec::new(), &r).unwrap();
        assert_eq!(cbor4ii::serde::from_slice::<Response>(&again).ok(), Some(r));
    }
});
