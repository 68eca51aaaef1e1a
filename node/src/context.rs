//! What every handler and task shares: the chain spec, the database and its writer, the node key,
//! the network handle, the consensus state (rounds, mismatches), counters and metrics. Built once by
//! `runtime::run`; everything else receives it as `Arc<Node>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use protocol::ChainSpec;
use protocol::Hash32;
use protocol::consensus::ValidatorKey;
use protocol::crypto::Keypair;
use redb::Database;
use tokio::sync::{Notify, mpsc};

use crate::anchoring::ergo::Anchor;
use crate::api::nonce::Challenges;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::net::NetHandle;
use crate::store::ops::Backups;
use crate::store::writer::{Tallies, Writer};
use crate::store::{self, DbHandle, StoreError};

/// What every handler and task shares.
pub struct Node {
    pub spec: ChainSpec,
    /// New records each peer may still deliver (`net::budget`).
    pub peer_records: crate::net::budget::PeerBudget,
    pub db: Arc<DbHandle>,
    pub db_path: PathBuf,
    pub data_dir: PathBuf,
    pub writer: Writer,
    pub key: Keypair,
    pub challenges: Challenges,
    pub admin_key: Option<String>,
    pub clock: Clock,
    pub started: Instant,
    pub first_epoch: u64,
    /// The p2p network, unless disabled (`--no-p2p`).
    pub net: Option<NetHandle>,
    /// Ids of records accepted here, to be announced.
    pub announcements: Option<mpsc::Sender<Hash32>>,
    /// Epochs of history a relay serves and pulls when catching up.
    pub history_epochs: u64,
    /// The validators whose votes certify settlements.
    pub validators: BTreeSet<ValidatorKey>,
    pub is_validator: bool,
    /// Current voting round per open epoch.
    pub rounds: Mutex<BTreeMap<u64, u32>>,
    /// Epochs whose certified hash differs from ours: epoch -> our hash.
    pub mismatches: Mutex<BTreeMap<u64, Hash32>>,
    /// Certified epochs this node refuses to apply (`Applied::Conflict`): reported once, and not
    /// fetched again by the rounds loop.
    pub refused: Mutex<std::collections::BTreeSet<u64>>,
    pub counters: Counters,
    pub metrics: Metrics,
    pub tallies: Arc<Tallies>,
    pub backups: Backups,
    /// Peers needed for `/readyz` (0: alone by configuration).
    pub min_peers: u32,
    /// Where anchors are looked up (and, on the primary, sent): Ergo, or nothing.
    pub anchor: Arc<dyn Anchor>,
    /// Wakes the anchoring task when an epoch is certified.
    pub anchor_wake: Notify,
    /// The live feed (`GET /api/events`).
    pub events: crate::events::Events,
}

/// Event counters shown by the API.
#[derive(Debug, Default)]
pub struct Counters {
    pub equivocations: AtomicU64,
    pub settlement_mismatches: AtomicU64,
    /// Receipt signers caught putting one payload at two slots.
    pub receipt_equivocations: AtomicU64,
    /// Certificates or certified records served by peers that did not hold (refused).
    pub bad_certificates: AtomicU64,
}

impl Node {
    /// Announce a record accepted here (best-effort: a full queue is caught up by anti-entropy).
    pub fn announce(&self, id: Hash32) {
        if let Some(tx) = &self.announcements {
            let _ = tx.try_send(id);
        }
    }

    /// The chain spec names no validators: this node is its own validator set and certifies
    /// alone. Other nodes' votes and certificates mean nothing here (and are no offence).
    pub fn certifies_alone(&self) -> bool {
        self.spec.validators.is_empty()
    }

    /// The oldest epoch this node still works on: the rounds vote again and fetch certificates for
    /// it, and peers' records of it are stored (PROTOCOL.md §10.5, §12): the last `history_epochs`,
    /// at least 2, before the current one.
    pub fn oldest_open_epoch(&self) -> u64 {
        self.spec.epoch_at(self.clock.now_unix()).saturating_sub(self.history_epochs.max(2))
    }

    /// Connected mesh peers.
    pub fn peer_count(&self) -> u64 {
        self.net.as_ref().map_or(0, |n| n.state.peer_count() as u64)
    }

    /// Caught up with the mesh (or alone: nothing to catch up with).
    pub fn synced(&self) -> bool {
        self.sync_status() != "syncing"
    }

    /// `synced`, `syncing`, or `disabled` (no p2p).
    pub fn sync_status(&self) -> &'static str {
        match &self.net {
            None => "disabled",
            Some(n) if n.state.synced.load(std::sync::atomic::Ordering::Acquire) => "synced",
            Some(_) => "syncing",
        }
    }

    /// The database for a read (`StoreError::Closed` while it is being reopened after a storage
    /// failure: a 503 over HTTP).
    pub fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db.get()
    }

    /// Wallets enrolled in `epoch`: from the writer's tally, or counted on disk for old epochs.
    pub fn enrolled_count(&self, epoch: u64) -> Result<u64, StoreError> {
        match self.tallies.enrolled(epoch) {
            Some(n) => Ok(n),
            None => store::enrolled_count(&*self.db.get()?, epoch),
        }
    }
}
