//! The live feed: what happens on this node, as events (`GET /api/events`, server-sent events).
//! Publishers never wait: an event goes into a bounded broadcast buffer; a client that falls more
//! than the buffer behind is dropped with a reason, so a slow client never slows the node. The
//! number of clients is capped.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

/// Events a client may fall behind by before it is dropped.
pub const BUFFER: usize = 1024;
/// Clients at once.
pub const MAX_CLIENTS: usize = 64;

/// The kinds of event, as clients name them in `?types=`.
pub const KINDS: [&str; 6] = ["attestation_accepted", "epoch_settled", "epoch_certified", "transfer_pending", "transfer_judged", "anchored"];

/// One thing that happened.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub kind: &'static str,
    pub epoch: u64,
    /// The wallets it concerns (a miner; a transfer's sender and receiver): what `?wallet=` matches.
    pub wallets: Vec<String>,
    pub data: Value,
}

pub struct Events {
    tx: broadcast::Sender<Arc<Event>>,
    clients: Arc<Semaphore>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new(BUFFER, MAX_CLIENTS)
    }
}

impl Events {
    pub fn new(buffer: usize, max_clients: usize) -> Events {
        Events { tx: broadcast::channel(buffer).0, clients: Arc::new(Semaphore::new(max_clients)) }
    }

    /// Publish; with no client listening, nothing happens.
    pub fn publish(&self, kind: &'static str, epoch: u64, wallets: Vec<String>, data: Value) {
        debug_assert!(KINDS.contains(&kind));
        let _ = self.tx.send(Arc::new(Event { kind, epoch, wallets, data }));
    }

    /// A new client's receiver and its place among the clients, or `None` when all places are taken.
    pub fn subscribe(&self) -> Option<(broadcast::Receiver<Arc<Event>>, OwnedSemaphorePermit)> {
        let permit = self.clients.clone().try_acquire_owned().ok()?;
        Some((self.tx.subscribe(), permit))
    }

    /// Clients listening now.
    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// A new attestation record stored here, accepted here (`origin` "here") or from a peer ("peer").
pub fn attestation_accepted(events: &Events, id: &protocol::crypto::Hash32, epoch: u64, c: &crate::store::StoredClaim, origin: &str) {
    events.publish("attestation_accepted", epoch, vec![c.wallet.clone()], serde_json::json!({
        "record_id": hex::encode(id), "miner": c.wallet, "miner_id": c.miner_id, "slot": c.slot,
        "arch": c.arch, "weight": c.weight, "fingerprint_passed": c.fingerprint_passed, "origin": origin,
    }));
}

/// A transfer now pending (accepted here or from a peer), to be judged by epoch `epoch`'s settlement.
pub fn transfer_pending(events: &Events, epoch: u64, t: &crate::store::StoredTransfer) {
    events.publish("transfer_pending", epoch, vec![t.from.clone(), t.to.clone()], serde_json::json!({
        "tx_hash": t.tx_hash, "from": t.from, "to": t.to, "amount_urtc": t.amount_urtc, "nonce": t.nonce,
    }));
}

/// Epoch `cert.epoch` certified and applied here: the certificate, and each transfer it judged.
pub fn certified(events: &Events, cert: &protocol::consensus::EpochCertificate, record: Option<&protocol::settlement::Settlement>) {
    let epoch = cert.epoch;
    events.publish("epoch_certified", epoch, Vec::new(), serde_json::json!({
        "settlement_hash": hex::encode(cert.settlement_hash), "round": cert.round, "signers": cert.votes.len(),
        "miners": record.map(|r| r.entries.len()), "distributed_urtc": record.map(|r| r.distributed_urtc),
    }));
    for t in record.map(|r| r.transfers.as_slice()).unwrap_or_default() {
        events.publish("transfer_judged", epoch, vec![t.from.to_string(), t.to.to_string()], serde_json::json!({
            "tx_hash": t.tx_hash, "from": t.from, "to": t.to, "amount_urtc": t.amount_urtc, "result": t.result.as_str(),
        }));
    }
}
