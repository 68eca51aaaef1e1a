//! Peer-to-peer messages: what nodes gossip (announcements) and what they ask each other for
//! (request-response), with their names, limits and CBOR encodings. The bytes on the wire are
//! never hashed; ids and hashes are computed from the decoded records (`docs/PROTOCOL.md` §10).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::attestation::AttestationRecord;
use crate::consensus::{EpochCertificate, Vote};
use crate::crypto::Hash32;
use crate::settlement::Settlement;
use crate::transfer::TransferRecord;

/// Wire version; part of every topic and protocol id.
pub const WIRE_VERSION: u32 = 2;

/// Largest gossip message accepted or sent.
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;
/// Largest request accepted.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest response accepted: an epoch's settlement record (`Epoch`), which lists every transfer
/// the epoch judged (100,000 transfers are ~34 MB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// A page of records (`Attestations`) is cut at about this size.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most ids in one announcement or one `GetAttestations`.
pub const MAX_IDS_PER_MESSAGE: usize = 512;
/// Most records in one `Attestations` response.
pub const MAX_RECORDS_PER_RESPONSE: usize = 256;
/// Most ids in one `SyncPage` response.
pub const MAX_IDS_PER_PAGE: usize = 1024;

/// Gossip topic for attestation announcements.
pub fn attestation_topic(network_id: &str) -> String {
    format!("/rustchain/{network_id}/attestations/{WIRE_VERSION}")
}

/// Gossip topic for epoch announcements.
pub fn epoch_topic(network_id: &str) -> String {
    format!("/rustchain/{network_id}/epochs/{WIRE_VERSION}")
}

/// Gossip topic for validators' votes.
pub fn vote_topic(network_id: &str) -> String {
    format!("/rustchain/{network_id}/votes/{WIRE_VERSION}")
}

/// Request-response protocol id.
pub fn sync_protocol(network_id: &str) -> String {
    format!("/rustchain/{network_id}/sync/{WIRE_VERSION}")
}

/// Kademlia protocol id (one DHT per network).
pub fn kad_protocol(network_id: &str) -> String {
    format!("/rustchain/{network_id}/kad/{WIRE_VERSION}")
}

/// Identify protocol version: peers announcing another one are on another network.
pub fn identify_protocol(network_id: &str) -> String {
    format!("/rustchain/{network_id}/{WIRE_VERSION}")
}

/// A 32-byte hash as a CBOR byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id(#[serde(with = "serde_bytes")] pub Hash32);

/// `INV_ATTESTATION`: "I have these records" (on the attestation topic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvAttestation {
    pub ids: Vec<Id>,
}

/// `INV_EPOCH`: "I settled this epoch to this hash, from this registry state" (on the epoch topic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvEpoch {
    pub epoch: u64,
    pub settlement_hash: Id,
    pub registry_digest: Id,
    pub records: u64,
}

/// Requests over the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// `GET_ATTESTATION`: the full signed records for these ids (at most `MAX_IDS_PER_MESSAGE`).
    GetAttestations { ids: Vec<Id> },
    /// `GET_EPOCH`: the settlement record of an epoch, with its certificate if it has one.
    GetEpoch { epoch: u64 },
    /// Anti-entropy: the per-bucket registry digest of an epoch.
    EpochDigest { epoch: u64 },
    /// Anti-entropy: the record ids of an epoch that fall in these buckets.
    BucketIds { epoch: u64, buckets: Vec<u16> },
    /// Catch-up: record ids of epochs `from_epoch..=to_epoch` in (epoch, id) order, after `after`.
    SyncPage { from_epoch: u64, to_epoch: u64, after: Option<(u64, Id)>, limit: u32 },
}

/// Responses over the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// `DATA`: the records found (unknown ids are left out): attestation records, and transfer
    /// records in `transfers` (absent when there are none, so version-1 peers read the answer).
    Attestations {
        records: Vec<AttestationRecord>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        transfers: Vec<TransferRecord>,
    },
    Epoch { settlement: Option<Settlement>, certificate: Option<EpochCertificate> },
    /// A page of `(epoch, id)`; `next` is the cursor for the following page, if any.
    Page { ids: Vec<(u64, Id)>, next: Option<(u64, Id)> },
    /// Non-empty buckets' hashes (bucket = first 12 bits of the id) and the record count.
    Digest { epoch: u64, buckets: BTreeMap<u16, Id>, records: u64 },
    /// The request was refused (too large, out of this node's history, ...).
    Error { code: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    #[error("too many ids: {0}")]
    TooManyIds(usize),
    #[error("empty announcement")]
    Empty,
}

/// The gossip messages, one per topic, in one enum for decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gossip {
    Attestations(InvAttestation),
    Epoch(InvEpoch),
}

fn to_cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn from_cbor<T: for<'de> Deserialize<'de>>(bytes: &[u8], limit: usize) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge(limit));
    }
    ciborium::from_reader(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

impl InvAttestation {
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let inv: InvAttestation = from_cbor(bytes, MAX_GOSSIP_BYTES)?;
        if inv.ids.is_empty() {
            return Err(WireError::Empty);
        }
        if inv.ids.len() > MAX_IDS_PER_MESSAGE {
            return Err(WireError::TooManyIds(inv.ids.len()));
        }
        Ok(inv)
    }
}

impl InvEpoch {
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        from_cbor(bytes, MAX_GOSSIP_BYTES)
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let r: Request = from_cbor(bytes, MAX_REQUEST_BYTES)?;
        if let Request::GetAttestations { ids } = &r {
            if ids.len() > MAX_IDS_PER_MESSAGE {
                return Err(WireError::TooManyIds(ids.len()));
            }
        }
        Ok(r)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        from_cbor(bytes, MAX_RESPONSE_BYTES)
    }
}

/// A vote on the votes topic.
pub fn encode_vote(v: &Vote) -> Vec<u8> {
    v.to_cbor()
}

pub fn decode_vote(bytes: &[u8]) -> Result<Vote, WireError> {
    if bytes.len() > MAX_GOSSIP_BYTES {
        return Err(WireError::TooLarge(MAX_GOSSIP_BYTES));
    }
    Vote::from_cbor(bytes).map_err(WireError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A peer can serve the settlement of an epoch with 100,000 transfers (real address and tx
    /// hash lengths) in one `Epoch` answer, as libp2p's codec (cbor4ii) writes it.
    #[test]
    fn a_settlement_of_100k_transfers_fits_one_response() {
        use crate::settlement::{self, PendingTransfer, TransferInput};
        let spec = crate::spec::ChainSpec::builtin("devnet").unwrap();
        let addr = |i: usize| crate::crypto::address_of(&crate::crypto::sha256(&i.to_be_bytes()));
        let mut input = TransferInput::default();
        for i in 0..100_000 {
            let tx: settlement::Text = format!("{i:032x}").into();
            let t = PendingTransfer { tx_hash: tx.clone(), from: addr(i).into(), to: addr(i + 1).into(), amount_urtc: 1_000_000, nonce: 1 };
            input.accounts.insert(t.from.clone(), settlement::Account { balance_urtc: 5_000_000, last_nonce: None });
            input.pending.insert(tx, t);
        }
        let weights = (0..100_000).map(|i| (addr(i), 1_000_000_000)).collect();
        let s = settlement::settle(&spec, 7, [0; 32], &weights, &Default::default(), &input).unwrap();
        assert!(s.transfers.iter().all(|t| t.result == settlement::TransferResult::Applied));
        assert_eq!(s.transfer_changes.len(), 100_001, "every sender and receiver moved");
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &Response::Epoch { settlement: Some(s), certificate: None }).unwrap();
        eprintln!("an Epoch answer with 100,000 miners and 100,000 applied transfers: {} bytes", bytes.len());
        assert!(bytes.len() > MAX_PAGE_BYTES, "the record is larger than a page: {}", bytes.len());
        assert!(bytes.len() < MAX_RESPONSE_BYTES * 2 / 3, "{} bytes leave too little room to grow", bytes.len());
    }

    #[test]
    fn round_trips_and_limits() {
        let inv = InvAttestation { ids: vec![Id([1; 32]), Id([2; 32])] };
        assert_eq!(InvAttestation::decode(&inv.encode()).unwrap(), inv);
        assert_eq!(InvAttestation::decode(&InvAttestation { ids: vec![] }.encode()), Err(WireError::Empty));
        let big = InvAttestation { ids: vec![Id([0; 32]); MAX_IDS_PER_MESSAGE + 1] };
        assert!(matches!(InvAttestation::decode(&big.encode()), Err(WireError::TooManyIds(_))));
        let e = InvEpoch { epoch: 9, settlement_hash: Id([3; 32]), registry_digest: Id([4; 32]), records: 2 };
        assert_eq!(InvEpoch::decode(&e.encode()).unwrap(), e);
        for r in [
            Request::GetAttestations { ids: vec![Id([5; 32])] },
            Request::GetEpoch { epoch: 3 },
            Request::EpochDigest { epoch: 4 },
            Request::BucketIds { epoch: 4, buckets: vec![1, 4095] },
            Request::SyncPage { from_epoch: 1, to_epoch: 2, after: Some((1, Id([6; 32]))), limit: 10 },
        ] {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        assert!(matches!(Request::decode(&vec![0u8; MAX_REQUEST_BYTES + 1]), Err(WireError::TooLarge(_))));
        assert!(matches!(InvAttestation::decode(b"\xa1\x63ids\x01"), Err(WireError::Malformed(_))));
        assert_eq!(attestation_topic("devnet"), "/rustchain/devnet/attestations/2");
    }


    proptest! {
        #[test]
        fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = InvAttestation::decode(&bytes);
            let _ = InvEpoch::decode(&bytes);
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            let _ = decode_vote(&bytes);
        }
    }
}
