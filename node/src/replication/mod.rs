//! Relay semantics: records named in an announcement are fetched from the peer that forwarded it,
//! verified exactly as the HTTP path verifies (plus the receipt), stored, and only then is the
//! announcement accepted for forwarding. Also catch-up at start, periodic anti-entropy, and the
//! batcher that announces what this node accepted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;
use protocol::Hash32;
use protocol::admin::AdminRecord;
use protocol::attestation::{self, AttestationRecord};
use protocol::transfer::TransferRecord;
use protocol::wire::{self, Id, Request, Response};
use tokio::sync::mpsc;

use crate::net::budget::take_budget;
use crate::net::{Command, NetHandle};
use crate::admission;
use crate::context::Node;
use crate::store::{self, NewAdmin, NewAttestation, NewTransfer, Origin};

/// Records asked for in one request.
const FETCH_CHUNK: usize = 256;
// A chunk of the largest records (either kind: a body of at most 16 KiB and at most 4 KiB more)
// fits one answer, which a node cuts at `MAX_PAGE_BYTES - 4096` bytes or
// `MAX_RECORDS_PER_RESPONSE` records (net/mod.rs): an honest peer returns every record of a chunk
// that it has.
const _: () = assert!(
    FETCH_CHUNK <= wire::MAX_RECORDS_PER_RESPONSE
        && FETCH_CHUNK * (attestation::MAX_BODY_BYTES + 4096) <= wire::MAX_PAGE_BYTES - 4096
        && protocol::transfer::MAX_BODY_BYTES <= attestation::MAX_BODY_BYTES
        // A chunk always fits a peer's whole budget, so waiting for the budget always ends.
        && FETCH_CHUNK as u32 <= crate::net::budget::PEER_RECORDS_BURST
);
/// What to do when a peer's record budget is spent: wait for it (records this node asked for:
/// catch-up and anti-entropy), or leave the rest (records the peer pushed: an announcement, which
/// is then not forwarded; the records arrive later by anti-entropy, at the budget's pace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    Wait,
    Skip,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid record: {0}")]
    Invalid(String),
    /// Valid, but for an epoch this node no longer works on and has not finalized: not stored,
    /// and not held against the peer (it may have received it late itself).
    #[error("{0}")]
    Stale(store::Refusal),
    #[error("storage: {0}")]
    Storage(String),
}

/// Verify a page of records from a peer and store the valid ones. Verification of the whole page
/// runs in one blocking task, and every write is handed to the writer before any is awaited, so the
/// page lands in as few commits as the writer's batching allows (one, usually) instead of one
/// commit per record. Returns, per record in input order, whether it was new.
pub async fn ingest_page(node: &Node, records: Vec<AnyRecord>) -> Vec<Result<bool, IngestError>> {
    let ids: Vec<Hash32> = records.iter().map(AnyRecord::id).collect();
    let known = node.db.get().and_then(|db| store::have_records(&db, &ids));
    let known = match known {
        Ok(k) => k,
        Err(e) => return records.iter().map(|_| Err(IngestError::Storage(e.to_string()))).collect(),
    };
    let spec = node.spec.clone();
    let now_slot = node.spec.slot_at(node.clock.now_unix());
    let oldest_open_epoch = node.oldest_open_epoch();
    let admins = protocol::admin::admin_keys(&node.spec);
    let n = records.len();
    // Already-stored records are not verified again (a peer's copy of a record we hold is the same bytes).
    let checked = tokio::task::spawn_blocking(move || {
        records
            .into_iter()
            .zip(known)
            .map(|(record, known)| if known { Ok(None) } else { check(&spec, &admins, now_slot, oldest_open_epoch, record).map(Some) })
            .collect::<Vec<_>>()
    })
    .await;
    let checked = match checked {
        Ok(c) => c,
        Err(e) => return (0..n).map(|_| Err(IngestError::Storage(e.to_string()))).collect(),
    };
    let writes = checked.into_iter().map(|c| async move {
        match c {
            Ok(None) => Ok(false),
            Ok(Some(Checked::Attestation(new))) => {
                let seen = (new.id, new.epoch, new.claim.clone());
                match node.writer.attest(new).await {
                    Ok(Ok(stored)) => {
                        if let Some(signer) = stored.equivocating_signer {
                            punish_receipt_equivocation(node, signer);
                        }
                        if stored.new {
                            let (id, epoch, claim) = &seen;
                            crate::events::attestation_accepted(&node.events, id, *epoch, claim, "peer");
                        }
                        Ok(stored.new)
                    }
                    Ok(Err(r @ store::Refusal::StaleReceipt { .. })) => Err(IngestError::Stale(r)),
                    Ok(Err(refused)) => Err(IngestError::Invalid(refused.to_string())),
                    Err(e) => Err(IngestError::Storage(e.to_string())),
                }
            }
            Ok(Some(Checked::Transfer(new))) => {
                let t = new.transfer.clone();
                match node.writer.transfer(new).await {
                    Ok(Ok(stored)) => {
                        if stored {
                            crate::events::transfer_pending(&node.events, node.spec.epoch_of_slot(t.slot), &t);
                        }
                        Ok(stored)
                    }
                    Ok(Err(refused)) => Err(IngestError::Invalid(refused.to_string())),
                    Err(e) => Err(IngestError::Storage(e.to_string())),
                }
            }
            Ok(Some(Checked::Admin(new))) => match node.writer.admin(new).await {
                Ok(Ok(stored)) => Ok(stored),
                Ok(Err(r @ store::Refusal::StaleEpoch(_))) => Err(IngestError::Stale(r)),
                Ok(Err(refused)) => Err(IngestError::Invalid(refused.to_string())),
                Err(e) => Err(IngestError::Storage(e.to_string())),
            },
            Err(e) => Err(e),
        }
    });
    futures::future::join_all(writes).await
}

/// A record as it crosses the wire: an attestation or a transfer, each with its receipt, or an
/// admin pin change (signed by an admin key, no receipt).
pub enum AnyRecord {
    Attestation(AttestationRecord),
    Transfer(TransferRecord),
    Admin(AdminRecord),
}

impl AnyRecord {
    pub fn id(&self) -> Hash32 {
        match self {
            AnyRecord::Attestation(r) => r.id(),
            AnyRecord::Transfer(r) => r.id(),
            AnyRecord::Admin(r) => r.id(),
        }
    }
}

enum Checked {
    Attestation(NewAttestation),
    Transfer(NewTransfer),
    Admin(NewAdmin),
}

/// A key signed receipts for one payload at two slots: a hostile (or cloned) receipt signer. Its
/// peer (a node's peer id is its receipt key) is banned and the evidence was stored.
fn punish_receipt_equivocation(node: &Node, signer: [u8; 32]) {
    node.counters.receipt_equivocations.fetch_add(1, Ordering::Relaxed);
    let peer = libp2p::identity::ed25519::PublicKey::try_from_bytes(&signer)
        .map(|k| libp2p::identity::PublicKey::from(k).to_peer_id());
    tracing::warn!(signer = %hex::encode(signer), peer = ?peer.as_ref().ok(), "RECEIPT EQUIVOCATION: one key receipted one payload at two slots; evidence stored");
    if let (Some(net), Ok(peer)) = (&node.net, peer) {
        net.penalize(peer, 200, "signed receipts for one payload at two slots");
    }
}

/// Everything the HTTP path checks, plus the receipt: the write a valid record becomes.
fn check(spec: &protocol::ChainSpec, admins: &[[u8; 32]], now_slot: u64, oldest_open_epoch: u64, record: AnyRecord) -> Result<Checked, IngestError> {
    let future = |slot: u64| {
        if slot > now_slot + 2 {
            return Err(IngestError::Invalid(format!("receipt slot {slot} is in the future (now {now_slot})")));
        }
        Ok(())
    };
    match record {
        AnyRecord::Attestation(record) => {
            let sub = record.verify(spec).map_err(|e| IngestError::Invalid(e.to_string()))?;
            future(record.receipt.slot)?;
            Ok(Checked::Attestation(admission::attestation(spec, &sub, record, Origin::Peer, 0, oldest_open_epoch).0))
        }
        AnyRecord::Transfer(record) => {
            let t = record.verify(spec).map_err(|e| IngestError::Invalid(e.to_string()))?;
            future(record.receipt.slot)?;
            Ok(Checked::Transfer(admission::transfer(spec, &t, record, Origin::Peer)))
        }
        AnyRecord::Admin(record) => {
            record.verify(spec, admins).map_err(|e| IngestError::Invalid(e.to_string()))?;
            // A change names the epoch whose settlement applies it: not one that has not begun.
            if record.epoch > spec.epoch_of_slot(now_slot + 2) {
                return Err(IngestError::Invalid(format!("admin change for epoch {}, which has not begun", record.epoch)));
            }
            Ok(Checked::Admin(admission::admin(record, Origin::Peer, oldest_open_epoch)))
        }
    }
}

/// What fetching ids from a peer came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Fetched {
    /// New records stored.
    stored: usize,
    /// Asked for, answered, but left out of the answer: the peer does not have them.
    omitted: usize,
    /// Asked for in a request that failed (timeout, closed connection, refused answer).
    failed: usize,
    /// Sent, but invalid or not asked for.
    invalid: usize,
    /// Valid but not stored here: an epoch no longer open here, or a storage error.
    skipped: usize,
    /// Not asked for: the peer's record budget was spent (no offence).
    deferred: usize,
}

/// Fetch `ids` from `peer`, verify and store them, within the peer's record budget.
async fn fetch_from(node: &Node, net: &NetHandle, peer: PeerId, ids: Vec<Hash32>, pace: Pace) -> Fetched {
    let mut f = Fetched::default();
    // An id named twice (an announcement may repeat one) is asked for once: the answer would carry
    // the record twice and the peer that honestly sent both would look like it sent one unasked.
    let ids: Vec<Hash32> = ids.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
    for chunk in ids.chunks(FETCH_CHUNK) {
        let mut budget = take_budget(&node.peer_records, &peer, chunk.len());
        if budget.is_err() && pace == Pace::Skip {
            f.deferred += chunk.len();
            continue;
        }
        while let Err(wait) = budget {
            tracing::debug!(%peer, wait_ms = wait.as_millis() as u64, "peer's record budget spent; pacing");
            tokio::time::sleep(wait).await;
            budget = take_budget(&node.peer_records, &peer, chunk.len());
        }
        let wanted: BTreeSet<Hash32> = chunk.iter().copied().collect();
        let req = Request::GetAttestations { ids: chunk.iter().map(|i| Id(*i)).collect() };
        let records: Vec<AnyRecord> = match net.request(peer, req).await {
            Ok(Response::Attestations { records, transfers, admin }) => records
                .into_iter()
                .map(AnyRecord::Attestation)
                .chain(transfers.into_iter().map(AnyRecord::Transfer))
                .chain(admin.into_iter().map(AnyRecord::Admin))
                .collect(),
            Ok(Response::Error { code }) => {
                tracing::debug!(%peer, %code, "peer refused GetAttestations");
                f.failed += chunk.len();
                continue;
            }
            Ok(other) => {
                // The codec lets only Attestations or Error answer GetAttestations.
                tracing::debug!(%peer, response = ?std::mem::discriminant(&other), "unexpected answer to GetAttestations");
                f.failed += chunk.len();
                continue;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "fetch failed");
                f.failed += chunk.len();
                continue;
            }
        };
        // One penalty per answer, the worst of what it did: an invalid record (50), else a record
        // not asked for (20); records named and left out are `delivered`'s to judge.
        let mut offence: Option<(i32, String)> = None;
        let mut offend = |points: i32, why: String| {
            if offence.as_ref().is_none_or(|(p, _)| points > *p) {
                offence = Some((points, why));
            }
        };
        let mut got = BTreeSet::new();
        let mut page = Vec::with_capacity(records.len());
        for record in records {
            let id = record.id();
            if !wanted.contains(&id) || !got.insert(id) {
                offend(20, "sent a record that was not asked for".to_owned());
                f.invalid += 1;
                continue;
            }
            page.push(record);
        }
        for outcome in ingest_page(node, page).await {
            match outcome {
                Ok(new) => f.stored += usize::from(new),
                Err(IngestError::Invalid(why)) => {
                    offend(50, format!("sent an invalid record: {why}"));
                    f.invalid += 1;
                }
                Err(IngestError::Storage(why)) => {
                    tracing::warn!(error = %why, "could not store a fetched record");
                    f.skipped += 1;
                }
                Err(e @ IngestError::Stale(_)) => {
                    tracing::debug!(%peer, error = %e, "not storing a record of an epoch no longer open here");
                    f.skipped += 1;
                }
            }
        }
        if let Some((points, why)) = offence {
            net.penalize(peer, points, why);
        }
        // A chunk always fits one answer (the assertion at FETCH_CHUNK), so an id left out is one
        // the peer does not have.
        f.omitted += wanted.len() - got.len();
    }
    f
}

fn lacking(node: &Node, ids: Vec<Hash32>) -> Vec<Hash32> {
    match node.db.get().and_then(|db| store::have_records(&db, &ids)) {
        Ok(have) => ids.into_iter().zip(have).filter(|(_, h)| !h).map(|(id, _)| id).collect(),
        // Unreadable for the moment: ask for everything; what turns out to be known is skipped.
        Err(_) => ids,
    }
}

/// An announcement: fetch what we lack from the peer that forwarded it, then report. A peer
/// forwards an announcement only after storing every record it names (and the first announcer
/// accepted them itself), so a peer that then leaves some out of its answer announced what it
/// cannot deliver: rejected, and penalised.
pub async fn on_inv(node: Arc<Node>, net: NetHandle, msg_id: libp2p::gossipsub::MessageId, source: PeerId, ids: Vec<Hash32>) {
    let want = lacking(&node, ids);
    let acceptance = if want.is_empty() {
        MessageAcceptance::Accept
    } else {
        let f = fetch_from(&node, &net, source, want, Pace::Skip).await;
        if f.deferred > 0 {
            tracing::debug!(%source, deferred = f.deferred, "announcement beyond the peer's record budget; not forwarded");
        }
        if f.stored > 0 {
            tracing::debug!(%source, stored = f.stored, "stored relayed attestations");
        }
        let _ = delivered(&net, source, &f);
        inv_acceptance(&f)
    };
    net.send(Command::Report { msg_id, source, acceptance });
}

/// Records a peer named (announced, or listed in a page or a bucket answer) are its to deliver: one
/// it left out costs it 20 points (an invalid one was penalised when it was checked). The number
/// stored, or why the peer's answer cannot be trusted.
fn delivered(net: &NetHandle, peer: PeerId, f: &Fetched) -> Result<usize, String> {
    if f.omitted > 0 {
        net.penalize(peer, 20, format!("named {} records it could not deliver", f.omitted));
    }
    if f.invalid > 0 || f.omitted > 0 {
        return Err(format!("{} invalid records, {} named but not delivered", f.invalid, f.omitted));
    }
    Ok(f.stored)
}

/// Whether an announcement whose records were fetched is forwarded: only when every record it
/// named was delivered and stored. Otherwise it is ignored, not rejected: the fault (an invalid or
/// missing record, penalised on its own) is the sending peer's, not the message's, and a rejection
/// would also count against every honest peer that sent gossipsub the same announcement.
fn inv_acceptance(f: &Fetched) -> MessageAcceptance {
    if f.invalid > 0 || f.omitted > 0 || f.failed > 0 || f.skipped > 0 || f.deferred > 0 {
        MessageAcceptance::Ignore
    } else {
        MessageAcceptance::Accept
    }
}

/// Pull every record of epochs `from..=to` that `peer` has and we lack, page by page.
pub async fn sync_epochs(node: &Node, net: &NetHandle, peer: PeerId, from: u64, to: u64) -> Result<usize, String> {
    let (mut after, mut total, mut pages) = (None, 0usize, 0usize);
    loop {
        let req = Request::SyncPage { from_epoch: from, to_epoch: to, after, limit: wire::MAX_IDS_PER_PAGE as u32 };
        let (ids, next) = match net.request(peer, req).await? {
            Response::Page { ids, next } => (ids, next),
            Response::Error { code } => return Err(format!("peer refused the sync: {code}")),
            _ => return Err("unexpected answer to SyncPage".into()),
        };
        // The codec bounded the count; the ids must be of the range asked for, in order, after
        // the cursor.
        let mut prev = after;
        for &(epoch, id) in &ids {
            if epoch < from || epoch > to || prev.is_some_and(|p| (epoch, id) <= p) {
                net.penalize(peer, 20, "sync page out of range or out of order");
                return Err("page out of range or out of order".into());
            }
            prev = Some((epoch, id));
        }
        let want = lacking(node, ids.iter().map(|(_, id)| id.0).collect());
        let f = fetch_from(node, net, peer, want, Pace::Wait).await;
        total += delivered(net, peer, &f)?;
        pages += 1;
        if pages % 10 == 0 || (next.is_none() && total > 0) {
            tracing::info!(%peer, pages, records = total, from, to, "catch-up progress");
        }
        match next {
            // A cursor must move forward, or a hostile peer could keep us paging forever.
            Some(n) if after.is_none_or(|a| n > a) => after = Some(n),
            Some(_) => {
                net.penalize(peer, 50, "sync cursor did not advance");
                return Err("cursor did not advance".into());
            }
            None => return Ok(total),
        }
    }
}

/// Compare one epoch's bucket digest with `peer` and pull what we lack from the buckets that
/// differ: only those buckets' ids cross the wire, then only the missing records.
pub async fn reconcile(node: &Node, net: &NetHandle, peer: PeerId, epoch: u64) -> Result<usize, String> {
    let mine = node.db.get().and_then(|db| store::epoch_digest(&db, epoch)).map_err(|e| e.to_string())?;
    let theirs = match net.request(peer, Request::EpochDigest { epoch }).await? {
        // The digest of the epoch asked for (a peer's digest of another epoch would make us ask
        // for buckets we do not lack); the codec bounded the buckets.
        Response::Digest { epoch: of, buckets, records } if of == epoch && buckets.len() <= crdt::BUCKETS => {
            crdt::BucketDigest { buckets: buckets.into_iter().map(|(b, h)| (b, h.0)).collect(), count: records }
        }
        _ => return Err("unexpected answer to EpochDigest".into()),
    };
    // Only buckets where the peer has something we may lack.
    let wanted: Vec<u16> = mine.differing(&theirs).into_iter().filter(|b| theirs.buckets.contains_key(b)).collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let ids = match net.request(peer, Request::BucketIds { epoch, buckets: wanted.clone() }).await? {
        Response::Page { ids, .. } => ids,
        Response::Error { code } => return Err(format!("peer refused BucketIds: {code}")),
        _ => return Err("unexpected answer to BucketIds".into()),
    };
    // The codec bounded the count; every id must be of this epoch and one of the buckets asked for.
    if ids.iter().any(|(e, id)| *e != epoch || wanted.binary_search(&crdt::bucket_of(&id.0)).is_err()) {
        net.penalize(peer, 20, "BucketIds answer with ids that were not asked for");
        return Err("BucketIds answer with ids that were not asked for".into());
    }
    let want = lacking(node, ids.into_iter().map(|(_, id)| id.0).collect());
    let f = fetch_from(node, net, peer, want, Pace::Wait).await;
    delivered(net, peer, &f)
}

pub fn random_peer(peers: &[PeerId]) -> Option<PeerId> {
    if peers.is_empty() {
        return None;
    }
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).ok()?;
    Some(peers[(u64::from_le_bytes(b) % peers.len() as u64) as usize])
}

/// Catch up once, from the first peer that answers; then the node counts as synced.
pub async fn initial_sync(node: &Node, net: &NetHandle, peer: PeerId) {
    let current = node.spec.epoch_at(node.clock.now_unix());
    let from = if net.state.role == crate::net::behaviour::Role::Archive { 0 } else { current.saturating_sub(node.history_epochs) };
    tracing::info!(%peer, from, to = current, "catching up");
    match sync_epochs(node, net, peer, from, current).await {
        Ok(n) => tracing::info!(%peer, records = n, "caught up; synced"),
        Err(e) => tracing::warn!(%peer, error = %e, "catch-up incomplete; continuing with anti-entropy"),
    }
    net.state.synced.store(true, Ordering::Release);
}

/// One anti-entropy round with `peer`: reconcile the last epoch and the current one.
pub async fn anti_entropy(node: &Node, net: &NetHandle, peer: PeerId) {
    let current = node.spec.epoch_at(node.clock.now_unix());
    for epoch in [current.saturating_sub(1), current] {
        match reconcile(node, net, peer, epoch).await {
            Ok(n) if n > 0 => tracing::info!(%peer, epoch, records = n, "anti-entropy pulled missing records"),
            Ok(_) => {}
            Err(e) => tracing::debug!(%peer, epoch, error = %e, "anti-entropy round failed"),
        }
    }
}

/// A peer (re)connected: after a partition or a restart either side may hold records of recent
/// epochs that the other missed (an announcement made while apart reached nobody). Each side pulls
/// what it lacks, so both end with the union.
pub async fn reconcile_recent(node: &Node, net: &NetHandle, peer: PeerId) {
    let current = node.spec.epoch_at(node.clock.now_unix());
    let mut pulled = 0;
    for epoch in current.saturating_sub(node.history_epochs)..=current {
        match reconcile(node, net, peer, epoch).await {
            Ok(n) => pulled += n,
            Err(e) => tracing::debug!(%peer, epoch, error = %e, "reconciling with a connected peer failed"),
        }
    }
    if pulled > 0 {
        tracing::info!(%peer, records = pulled, "pulled records a newly connected peer held and we lacked");
    }
}

/// At most `limit` tasks at once, and at most one per key: the work a peer's messages can start is
/// bounded however many it sends.
#[derive(Clone)]
pub struct Slots<K> {
    busy: Arc<std::sync::Mutex<std::collections::HashMap<K, usize>>>,
    limit: usize,
    per_key: usize,
}

/// A running task's hold on its slot; released when dropped.
pub struct Slot<K: std::hash::Hash + Eq + Copy> {
    slots: Slots<K>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Copy> Slots<K> {
    pub fn new(limit: usize, per_key: usize) -> Self {
        Slots { busy: Default::default(), limit, per_key }
    }

    pub fn try_take(&self, key: K) -> Option<Slot<K>> {
        let mut busy = self.busy.lock().expect("slots lock");
        let total: usize = busy.values().sum();
        let mine = busy.get(&key).copied().unwrap_or(0);
        if total >= self.limit || mine >= self.per_key {
            return None;
        }
        busy.insert(key, mine + 1);
        Some(Slot { slots: self.clone(), key })
    }
}

impl<K: std::hash::Hash + Eq + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut busy = self.slots.busy.lock().expect("slots lock");
        if let Some(n) = busy.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.key);
            }
        }
    }
}

/// Collects ids this node accepted and announces them in batches.
pub async fn announcer(net: NetHandle, mut ids: mpsc::Receiver<Hash32>) {
    let mut batch = Vec::new();
    while let Some(first) = ids.recv().await {
        batch.push(first);
        // Gather what arrives within a few milliseconds into the same announcement.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(5);
        while batch.len() < wire::MAX_IDS_PER_MESSAGE {
            match tokio::time::timeout_at(deadline, ids.recv()).await {
                Ok(Some(id)) => batch.push(id),
                _ => break,
            }
        }
        net.send(Command::PublishAttestations(std::mem::take(&mut batch)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_cannot_take_every_slot_and_a_dropped_slot_is_free_again() {
        let slots = Slots::new(3, 2);
        let a1 = slots.try_take('a').unwrap();
        let _a2 = slots.try_take('a').unwrap();
        assert!(slots.try_take('a').is_none(), "a third slot for one key");
        let _b = slots.try_take('b').unwrap();
        assert!(slots.try_take('c').is_none(), "more than the total");
        drop(a1);
        assert!(slots.try_take('c').is_some(), "a dropped slot was not given back");
    }

    #[test]
    fn an_announcement_is_forwarded_only_when_everything_it_named_was_delivered_and_stored() {
        let f = |omitted, failed, invalid, skipped| inv_acceptance(&Fetched { stored: 1, omitted, failed, invalid, skipped, deferred: 0 });
        assert_eq!(f(0, 0, 0, 0), MessageAcceptance::Accept);
        assert_eq!(f(1, 0, 0, 0), MessageAcceptance::Ignore, "left out what it announced (penalised apart)");
        assert_eq!(f(0, 0, 1, 0), MessageAcceptance::Ignore, "sent an invalid record (penalised apart)");
        assert_eq!(f(0, 1, 0, 0), MessageAcceptance::Ignore, "a failed request is not the peer's proven fault");
        assert_eq!(f(0, 0, 0, 1), MessageAcceptance::Ignore, "not stored here (stale epoch)");
        let over_budget = Fetched { stored: 1, deferred: 1, ..Fetched::default() };
        assert_eq!(inv_acceptance(&over_budget), MessageAcceptance::Ignore, "beyond the peer's record budget");
    }

    /// One peer delivers a burst of PEER_RECORDS_BURST records, then PEER_RECORDS_PER_SECOND a
    /// second; another peer's budget is its own.
    #[test]
    fn a_peers_record_budget_is_a_burst_then_a_rate() {
        use crate::net::budget::{PEER_RECORDS_BURST, PEER_RECORDS_PER_SECOND, peer_budget};
        let budget = peer_budget();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut taken = 0;
        while take_budget(&budget, &a, FETCH_CHUNK).is_ok() {
            taken += FETCH_CHUNK;
            assert!(taken <= PEER_RECORDS_BURST as usize, "more than a burst at once");
        }
        assert!(taken + FETCH_CHUNK > PEER_RECORDS_BURST as usize, "less than a burst: {taken}");
        let wait = take_budget(&budget, &a, FETCH_CHUNK).unwrap_err();
        // The next chunk fits after about FETCH_CHUNK / PEER_RECORDS_PER_SECOND s (less what the loop took).
        assert!(wait <= Duration::from_millis(1000 * FETCH_CHUNK as u64 / PEER_RECORDS_PER_SECOND as u64 + 1), "{wait:?}");
        assert!(take_budget(&budget, &b, FETCH_CHUNK).is_ok(), "one peer's budget is not another's");
    }

    /// A peer's admin change is taken only if an admin key signed it, for an epoch that has begun:
    /// anything else is an invalid record (its sender is penalised by the fetch path).
    #[test]
    fn a_peers_admin_change_must_be_signed_by_an_admin_key_for_a_begun_epoch() {
        let mut spec = protocol::ChainSpec::builtin("devnet").unwrap();
        let admin = protocol::crypto::Keypair::from_seed(&[9; 32]);
        let outsider = protocol::crypto::Keypair::from_seed(&[10; 32]);
        spec.admin.keys = vec![hex::encode(admin.public())];
        let admins = protocol::admin::admin_keys(&spec);
        let now_slot = 10 * spec.slots_per_epoch;
        let rec = |key: &protocol::crypto::Keypair, epoch| AdminRecord::sign(&spec, key, epoch, "w", "", "", 1).unwrap();
        assert!(matches!(check(&spec, &admins, now_slot, 0, AnyRecord::Admin(rec(&admin, 10))), Ok(Checked::Admin(_))));
        let refused = |r| matches!(check(&spec, &admins, now_slot, 0, AnyRecord::Admin(r)), Err(IngestError::Invalid(_)));
        assert!(refused(rec(&outsider, 10)), "signed by a key that is not an admin key");
        assert!(refused(rec(&admin, 11)), "an epoch that has not begun");
        let mut forged = rec(&admin, 10);
        forged.key = hex::encode(outsider.public());
        assert!(refused(forged), "a field changed after signing");
    }
}
