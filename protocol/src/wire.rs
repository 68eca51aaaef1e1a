//! Peer-to-peer messages: what nodes gossip (announcements) and what they ask each other for
//! (request-response), with their names, limits and CBOR encodings. The bytes on the wire are
//! never hashed; ids and hashes are computed from the decoded records (`docs/PROTOCOL.md` §10).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::admin::AdminRecord;
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
/// Most ids in one answer to `BucketIds`.
pub const MAX_IDS_PER_BUCKET_ANSWER: usize = MAX_IDS_PER_PAGE * 8;
/// Largest answer to `GetAttestations`: a page (cut at about `MAX_PAGE_BYTES`) and the framing.
pub const MAX_RECORDS_ANSWER_BYTES: usize = MAX_PAGE_BYTES + 64 * 1024;
/// Largest answer to `EpochDigest`: 4,096 bucket hashes are about 152 KiB.
pub const MAX_DIGEST_ANSWER_BYTES: usize = 256 * 1024;
/// Largest answer to `SyncPage` or `BucketIds`: 8,192 `(epoch, id)` pairs are about 360 KiB.
pub const MAX_ID_PAGE_ANSWER_BYTES: usize = 512 * 1024;

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
        /// Admin pin changes (§7.2), absent when there are none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        admin: Vec<AdminRecord>,
    },
    Epoch { settlement: Option<Settlement>, certificate: Option<EpochCertificate> },
    /// A page of `(epoch, id)`; `next` is the cursor for the following page, if any.
    Page { ids: Vec<(u64, Id)>, next: Option<(u64, Id)> },
    /// Non-empty buckets' hashes (bucket = first 12 bits of the id) and the record count.
    Digest { epoch: u64, buckets: BTreeMap<u16, Id>, records: u64 },
    /// The request was refused (too large, out of this node's history, ...).
    Error { code: String },
}

/// What a request asks for, and so which answer it may get and how large that may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    GetAttestations,
    GetEpoch,
    EpochDigest,
    BucketIds,
    SyncPage,
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::GetAttestations { .. } => RequestKind::GetAttestations,
            Request::GetEpoch { .. } => RequestKind::GetEpoch,
            Request::EpochDigest { .. } => RequestKind::EpochDigest,
            Request::BucketIds { .. } => RequestKind::BucketIds,
            Request::SyncPage { .. } => RequestKind::SyncPage,
        }
    }
}

impl RequestKind {
    /// The largest answer this request may get. A requester reads no more than this from the
    /// stream, so an oversized answer is refused before any of it is decoded.
    pub fn answer_limit(self) -> usize {
        match self {
            RequestKind::GetAttestations => MAX_RECORDS_ANSWER_BYTES,
            RequestKind::GetEpoch => MAX_RESPONSE_BYTES,
            RequestKind::EpochDigest => MAX_DIGEST_ANSWER_BYTES,
            RequestKind::BucketIds | RequestKind::SyncPage => MAX_ID_PAGE_ANSWER_BYTES,
        }
    }

    /// Whether `r` is an answer to this kind of request (`Error` answers any), within its counts.
    fn check_answer(self, r: &Response) -> Result<(), WireError> {
        let (count, most) = match (self, r) {
            (_, Response::Error { .. }) | (RequestKind::GetEpoch, Response::Epoch { .. }) => return Ok(()),
            (RequestKind::GetAttestations, Response::Attestations { records, transfers, admin }) => {
                (records.len() + transfers.len() + admin.len(), MAX_RECORDS_PER_RESPONSE)
            }
            (RequestKind::EpochDigest, Response::Digest { buckets, .. }) => {
                if buckets.keys().any(|b| usize::from(*b) >= DIGEST_BUCKETS) {
                    return Err(WireError::Malformed("bucket number out of range".into()));
                }
                (buckets.len(), DIGEST_BUCKETS)
            }
            (RequestKind::BucketIds, Response::Page { ids, .. }) => (ids.len(), MAX_IDS_PER_BUCKET_ANSWER),
            (RequestKind::SyncPage, Response::Page { ids, .. }) => (ids.len(), MAX_IDS_PER_PAGE),
            (kind, _) => return Err(WireError::WrongAnswer(kind)),
        };
        if count > most {
            return Err(WireError::TooManyIds(count));
        }
        Ok(())
    }
}

/// Buckets of the registry digest (`docs/PROTOCOL.md` §11): the first 12 bits of an id.
pub const DIGEST_BUCKETS: usize = 1 << 12;

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
    #[error("not an answer to {0:?}")]
    WrongAnswer(RequestKind),
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

/// Requests and responses are written as libp2p's CBOR codec wrote them (cbor4ii), so the bytes
/// on the wire are the same as before the node read answers itself.
fn to_wire_cbor<T: Serialize>(v: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), v).expect("writing CBOR to a Vec cannot fail")
}

fn from_wire_cbor<T: for<'de> Deserialize<'de>>(bytes: &[u8], limit: usize) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge(limit));
    }
    cbor4ii::serde::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        to_wire_cbor(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let r: Request = from_wire_cbor(bytes, MAX_REQUEST_BYTES)?;
        if let Request::GetAttestations { ids } = &r
            && ids.len() > MAX_IDS_PER_MESSAGE {
            return Err(WireError::TooManyIds(ids.len()));
        }
        Ok(r)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        to_wire_cbor(self)
    }
    /// Decode any response (at most the largest kind's limit).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        from_wire_cbor(bytes, MAX_RESPONSE_BYTES)
    }
    /// Decode the answer to a `kind` request: refused undecoded when larger than the kind's limit,
    /// and refused when it is another kind's answer or carries more ids than the kind allows.
    pub fn decode_answer(kind: RequestKind, bytes: &[u8]) -> Result<Self, WireError> {
        let r: Response = from_wire_cbor(bytes, kind.answer_limit())?;
        kind.check_answer(&r)?;
        Ok(r)
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

    /// The largest answers an honest node sends fit their kind's limit, with room.
    #[test]
    fn honest_answers_fit_their_kinds_limit() {
        let ids = |n: usize| (0..n).map(|i| (u64::MAX, Id(crate::crypto::sha256(&i.to_be_bytes())))).collect::<Vec<_>>();
        let page = Response::Page { ids: ids(MAX_IDS_PER_BUCKET_ANSWER), next: Some((u64::MAX, Id([0xff; 32]))) };
        let bytes = page.encode();
        assert!(bytes.len() < MAX_ID_PAGE_ANSWER_BYTES * 3 / 4, "{}", bytes.len());
        assert_eq!(Response::decode_answer(RequestKind::BucketIds, &bytes).unwrap(), page);
        let digest = Response::Digest {
            epoch: u64::MAX,
            buckets: (0..DIGEST_BUCKETS as u16).map(|b| (b, Id([0xff; 32]))).collect(),
            records: u64::MAX,
        };
        let bytes = digest.encode();
        assert!(bytes.len() < MAX_DIGEST_ANSWER_BYTES * 3 / 4, "{}", bytes.len());
        assert_eq!(Response::decode_answer(RequestKind::EpochDigest, &bytes).unwrap(), digest);
    }

    /// An answer is judged by the request it answers: larger than that kind's limit is refused
    /// before decoding (even when it would be a valid answer to a larger kind), another kind's
    /// answer is refused, and so is one with more ids than the kind allows.
    #[test]
    fn answers_are_bounded_by_the_request_they_answer() {
        let ids = |n: usize| (0..n).map(|i| (1, Id(crate::crypto::sha256(&i.to_be_bytes())))).collect::<Vec<_>>();
        // A huge `Epoch`-sized answer to a digest request: refused on size alone.
        let junk = vec![0u8; MAX_DIGEST_ANSWER_BYTES + 1];
        assert_eq!(Response::decode_answer(RequestKind::EpochDigest, &junk), Err(WireError::TooLarge(MAX_DIGEST_ANSWER_BYTES)));
        let big_page = Response::Page { ids: ids(MAX_IDS_PER_BUCKET_ANSWER + 1), next: None }.encode();
        assert!(big_page.len() > MAX_ID_PAGE_ANSWER_BYTES / 2);
        assert_eq!(Response::decode_answer(RequestKind::BucketIds, &big_page), Err(WireError::TooManyIds(MAX_IDS_PER_BUCKET_ANSWER + 1)));
        let page = Response::Page { ids: ids(MAX_IDS_PER_PAGE + 1), next: None }.encode();
        assert_eq!(Response::decode_answer(RequestKind::SyncPage, &page), Err(WireError::TooManyIds(MAX_IDS_PER_PAGE + 1)));
        assert!(Response::decode_answer(RequestKind::BucketIds, &page).is_ok());
        let epoch = Response::Epoch { settlement: None, certificate: None }.encode();
        assert_eq!(Response::decode_answer(RequestKind::GetAttestations, &epoch), Err(WireError::WrongAnswer(RequestKind::GetAttestations)));
        assert!(Response::decode_answer(RequestKind::GetEpoch, &epoch).is_ok());
        let refused = Response::Error { code: "BUSY".into() }.encode();
        for kind in [RequestKind::GetAttestations, RequestKind::GetEpoch, RequestKind::EpochDigest, RequestKind::BucketIds, RequestKind::SyncPage] {
            assert!(Response::decode_answer(kind, &refused).is_ok(), "{kind:?}");
        }
        let digest = Response::Digest { epoch: 1, buckets: [(DIGEST_BUCKETS as u16, Id([1; 32]))].into(), records: 1 }.encode();
        assert!(matches!(Response::decode_answer(RequestKind::EpochDigest, &digest), Err(WireError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = InvAttestation::decode(&bytes);
            let _ = InvEpoch::decode(&bytes);
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            for kind in [RequestKind::GetAttestations, RequestKind::GetEpoch, RequestKind::EpochDigest, RequestKind::BucketIds, RequestKind::SyncPage] {
                let _ = Response::decode_answer(kind, &bytes);
            }
            let _ = decode_vote(&bytes);
        }
    }
}
