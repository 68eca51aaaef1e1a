//! The one writer: drains a bounded queue of writes and commits them in groups (one fsync per
//! batch), then answers every waiting caller. Nothing is acknowledged before its commit. A failed
//! commit (a full disk) stores nothing of its batch; the writer then reopens the database and
//! goes on, so writes succeed again once space returns. It also keeps the in-memory tallies
//! (enrolled wallets per epoch, total balance) that the read endpoints serve without a scan.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::ChainSpec;
use protocol::settlement::Settlement;
use redb::Database;
use tokio::sync::{mpsc, oneshot};

use protocol::consensus::{EpochCertificate, Vote};

use crate::metrics::Metrics;
use crate::store::{self, AnchorRecord, Applied, DbHandle, NewAdmin, NewAttestation, NewTransfer, Refusal, StoreError, VoteOutcome};

/// Most writes folded into one transaction.
pub const MAX_BATCH: usize = 512;

pub enum WriteOp {
    Attest(Box<NewAttestation>, oneshot::Sender<Result<Result<store::Inserted, Refusal>, WriteFailed>>),
    Transfer(Box<NewTransfer>, oneshot::Sender<Result<Result<bool, Refusal>, WriteFailed>>),
    Admin(Box<NewAdmin>, oneshot::Sender<Result<Result<bool, Refusal>, WriteFailed>>),
    /// Settle an epoch; `in_order` when the epoch manager settles it as the next one, which
    /// records how far it got (where it resumes after a restart).
    Settle { epoch: u64, in_order: bool, reply: oneshot::Sender<Result<(Settlement, bool), WriteFailed>> },
    Vote(Box<Vote>, oneshot::Sender<Result<VoteOutcome, WriteFailed>>),
    Certify(Box<(EpochCertificate, Option<Settlement>)>, oneshot::Sender<Result<Applied, WriteFailed>>),
    RecordAnchor(u64, Box<AnchorRecord>, oneshot::Sender<Result<(), WriteFailed>>),
    PruneNonces(u64),
    /// Reopen the database if a failure left it closed.
    Heal,
}

/// The commit did not happen: nothing of the batch is on disk.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage write failed: {0}")]
pub struct WriteFailed(pub String);

/// The writer's handle; cloneable, bounded.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<WriteOp>,
}

/// Counts the read endpoints need on every request, kept by the writer after each commit instead
/// of being counted from the database per request.
pub struct Tallies {
    enrolled: Mutex<EnrolledCounts>,
    /// False after a failed commit, until the next commit succeeds.
    writable: AtomicBool,
    total_balance_urtc: AtomicU64,
    last_settled: AtomicI64,
}

struct EnrolledCounts {
    /// Counts are exact for every epoch >= `since` (absent = 0); older epochs are read from disk.
    since: u64,
    by_epoch: BTreeMap<u64, u64>,
}

/// Epochs of enrolled counts kept in memory behind the newest one written.
const TALLY_EPOCHS: u64 = 8;

impl Tallies {
    /// Count what is on disk: enrollments from `current_epoch` on, the balances, the last settlement.
    pub fn load(db: &Database, current_epoch: u64) -> Result<Tallies, StoreError> {
        let stats = store::stats(db)?;
        Ok(Tallies {
            enrolled: Mutex::new(EnrolledCounts { since: current_epoch, by_epoch: store::enrolled_counts_from(db, current_epoch)? }),
            writable: AtomicBool::new(true),
            total_balance_urtc: AtomicU64::new(stats.total_balance_urtc),
            last_settled: AtomicI64::new(store::resume_epoch(db)?.map_or(-1, |e| e as i64)),
        })
    }

    /// Wallets enrolled in `epoch`, if the tally covers it (else read it from the database).
    pub fn enrolled(&self, epoch: u64) -> Option<u64> {
        let t = self.enrolled.lock().expect("tally lock");
        (epoch >= t.since).then(|| t.by_epoch.get(&epoch).copied().unwrap_or(0))
    }

    /// Whether the last commit succeeded.
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    pub fn total_balance_urtc(&self) -> u64 {
        self.total_balance_urtc.load(Ordering::Relaxed)
    }

    pub fn last_settled(&self) -> Option<u64> {
        u64::try_from(self.last_settled.load(Ordering::Relaxed)).ok()
    }

    fn add_enrollment(&self, epoch: u64) {
        let mut t = self.enrolled.lock().expect("tally lock");
        if epoch < t.since {
            return;
        }
        *t.by_epoch.entry(epoch).or_insert(0) += 1;
        let keep_from = epoch.saturating_sub(TALLY_EPOCHS);
        if keep_from > t.since {
            t.since = keep_from;
            t.by_epoch = t.by_epoch.split_off(&keep_from);
        }
    }

    fn add_settlement(&self, s: &Settlement) {
        self.last_settled.fetch_max(s.epoch as i64, Ordering::Relaxed);
    }

    /// Balances move only when a certified settlement is credited.
    fn add_credited(&self, distributed_urtc: u64) {
        self.total_balance_urtc.fetch_add(distributed_urtc, Ordering::Relaxed);
    }
}

impl Writer {
    pub fn spawn(
        db: Arc<DbHandle>,
        spec: ChainSpec,
        tallies: Arc<Tallies>,
        metrics: Metrics,
        queue: usize,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue);
        let handle = tokio::task::spawn_blocking(move || run(Ctx { db, spec, tallies, metrics }, rx));
        (Writer { tx }, handle)
    }

    /// Ask the writer to reopen a database that a failure left closed.
    pub async fn heal(&self) {
        let _ = self.tx.send(WriteOp::Heal).await;
    }

    pub async fn attest(&self, a: NewAttestation) -> Result<Result<store::Inserted, Refusal>, WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::Attest(Box::new(a), reply)).await?;
        rx.await.map_err(|_| WriteFailed("the write was not completed (storage failure or shutdown)".into()))?
    }

    /// Store a verified transfer record (from a wallet: with the nonce and balance checks).
    pub async fn transfer(&self, t: NewTransfer) -> Result<Result<bool, Refusal>, WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::Transfer(Box::new(t), reply)).await?;
        rx.await.map_err(|_| WriteFailed("the write was not completed (storage failure or shutdown)".into()))?
    }

    /// Store a verified admin pin change (PROTOCOL.md §7.2).
    pub async fn admin(&self, a: NewAdmin) -> Result<Result<bool, Refusal>, WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::Admin(Box::new(a), reply)).await?;
        rx.await.map_err(|_| WriteFailed("the write was not completed (storage failure or shutdown)".into()))?
    }

    /// Settle `epoch` (again) out of the epoch manager's order: a recompute, a manual settlement.
    pub async fn settle(&self, epoch: u64) -> Result<(Settlement, bool), WriteFailed> {
        self.settle_op(epoch, false).await
    }

    /// Settle `epoch` as the epoch manager's next one, and record that every epoch through it
    /// was settled here ([`store::resume_epoch`]).
    pub async fn settle_in_order(&self, epoch: u64) -> Result<(Settlement, bool), WriteFailed> {
        self.settle_op(epoch, true).await
    }

    async fn settle_op(&self, epoch: u64, in_order: bool) -> Result<(Settlement, bool), WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::Settle { epoch, in_order, reply }).await?;
        rx.await.map_err(|_| WriteFailed("the write was not completed (storage failure or shutdown)".into()))?
    }

    pub async fn vote(&self, v: Vote) -> Result<VoteOutcome, WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::Vote(Box::new(v), reply)).await?;
        rx.await.map_err(|_| WriteFailed("writer stopped".into()))?
    }

    /// Store a verified certificate and credit its settlement if it is at hand.
    pub async fn certify(&self, cert: EpochCertificate, offered: Option<Settlement>) -> Result<Applied, WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::Certify(Box::new((cert, offered)), reply)).await?;
        rx.await.map_err(|_| WriteFailed("writer stopped".into()))?
    }

    pub async fn record_anchor(&self, epoch: u64, rec: AnchorRecord) -> Result<(), WriteFailed> {
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::RecordAnchor(epoch, Box::new(rec), reply)).await?;
        rx.await.map_err(|_| WriteFailed("writer stopped".into()))?
    }

    pub async fn prune_nonces(&self, now_unix: u64) {
        let _ = self.tx.send(WriteOp::PruneNonces(now_unix)).await;
    }

    async fn send(&self, op: WriteOp) -> Result<(), WriteFailed> {
        self.tx.send(op).await.map_err(|_| WriteFailed("the write was not completed (storage failure or shutdown)".into()))
    }
}

enum Pending {
    Attest(oneshot::Sender<Result<Result<store::Inserted, Refusal>, WriteFailed>>, Result<store::Inserted, Refusal>, u64),
    /// A transfer or an admin change: whether it was new, or why it was refused.
    Record(oneshot::Sender<Result<Result<bool, Refusal>, WriteFailed>>, Result<bool, Refusal>),
    /// The reply, the settlement and whether it changed, and whether the epoch manager settled it in order.
    Settle(oneshot::Sender<Result<(Settlement, bool), WriteFailed>>, (Settlement, bool), bool),
    Vote(oneshot::Sender<Result<VoteOutcome, WriteFailed>>, VoteOutcome),
    Certify(oneshot::Sender<Result<Applied, WriteFailed>>, Applied),
    Anchor(oneshot::Sender<Result<(), WriteFailed>>),
}

struct Ctx {
    db: Arc<DbHandle>,
    spec: ChainSpec,
    tallies: Arc<Tallies>,
    metrics: Metrics,
}

/// How long a reopen waits for readers to let go of the old handle.
const REOPEN_WAIT: Duration = Duration::from_secs(10);

fn run(ctx: Ctx, mut rx: mpsc::Receiver<WriteOp>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if ctx.db.is_closed() {
            heal(&ctx);
        }
        commit_batch(&ctx, &mut batch);
    }
    tracing::debug!("writer stopped: queue closed");
}

/// Reopen a closed database; on failure it stays closed and the next batch (or heal tick) retries.
fn heal(ctx: &Ctx) {
    match ctx.db.reopen(REOPEN_WAIT) {
        Ok(()) => tracing::warn!("database reopened after a storage failure; accepting writes again"),
        Err(e) => tracing::error!(error = %e, "database still unavailable; retrying on the next write"),
    }
}

/// Do one op inside the batch's transaction; on failure, hand the op back (unanswered).
fn apply_op(ctx: &Ctx, w: &redb::WriteTransaction, op: WriteOp, pending: &mut Vec<Pending>) -> Result<(), (StoreError, Option<WriteOp>)> {
    match op {
        WriteOp::Attest(a, reply) => match store::insert_attestation(w, &a) {
            Ok(outcome) => pending.push(Pending::Attest(reply, outcome, a.epoch)),
            Err(e) => return Err((e, Some(WriteOp::Attest(a, reply)))),
        },
        WriteOp::Transfer(t, reply) => match store::insert_transfer(w, &t) {
            Ok(outcome) => pending.push(Pending::Record(reply, outcome)),
            Err(e) => return Err((e, Some(WriteOp::Transfer(t, reply)))),
        },
        WriteOp::Admin(a, reply) => match store::insert_admin(w, &a) {
            Ok(outcome) => pending.push(Pending::Record(reply, outcome)),
            Err(e) => return Err((e, Some(WriteOp::Admin(a, reply)))),
        },
        WriteOp::Settle { epoch, in_order, reply } => {
            let settled = store::settle_epoch(w, &ctx.spec, epoch).and_then(|s| {
                if in_order {
                    store::mark_settled_through(w, epoch)?;
                }
                Ok(s)
            });
            match settled {
                Ok(settled) => pending.push(Pending::Settle(reply, settled, in_order)),
                Err(e) => return Err((e, Some(WriteOp::Settle { epoch, in_order, reply }))),
            }
        }
        WriteOp::Vote(v, reply) => match store::store_vote(w, &v) {
            Ok(outcome) => pending.push(Pending::Vote(reply, outcome)),
            Err(e) => return Err((e, Some(WriteOp::Vote(v, reply)))),
        },
        WriteOp::Certify(c, reply) => match store::apply_certificate(w, &c.0, c.1.as_ref()) {
            Ok(applied) => pending.push(Pending::Certify(reply, applied)),
            Err(e) => return Err((e, Some(WriteOp::Certify(c, reply)))),
        },
        WriteOp::RecordAnchor(epoch, rec, reply) => match store::record_anchor(w, epoch, &rec) {
            Ok(()) => pending.push(Pending::Anchor(reply)),
            Err(e) => return Err((e, Some(WriteOp::RecordAnchor(epoch, rec, reply)))),
        },
        WriteOp::PruneNonces(now) => match store::prune_nonces(w, now) {
            Ok(removed) if removed > 0 => tracing::debug!(removed, "pruned expired nonces"),
            Ok(_) => {}
            Err(e) => return Err((e, None)),
        },
        WriteOp::Heal => {}
    }
    Ok(())
}

fn commit_batch(ctx: &Ctx, batch: &mut Vec<WriteOp>) {
    let n = batch.len();
    let mut pending = Vec::with_capacity(n);
    // An op whose write fails comes back here, so its caller is answered with the failure too.
    let mut failed_op: Option<WriteOp> = None;
    // Not drained: ops after a failed one stay in `ops`, to be answered below.
    let mut ops = std::mem::take(batch).into_iter();
    let result: Result<(), StoreError> = (|| {
        let db = ctx.db.get()?;
        let w = db.begin_write()?;
        for op in ops.by_ref() {
            if let Err((e, op)) = apply_op(ctx, &w, op, &mut pending) {
                failed_op = op;
                return Err(e);
            }
        }
        w.commit()?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            ctx.tallies.writable.store(true, Ordering::Relaxed);
            // Tallies first, so a caller that reads right after its answer sees its write.
            for p in &pending {
                match p {
                    Pending::Attest(_, Ok(ins), epoch) if ins.new_enrollment => ctx.tallies.add_enrollment(*epoch),
                    // The epoch manager's progress: a recompute or a settlement ahead of it
                    // (resolving a peer's certificate, an admin request) does not move it.
                    Pending::Settle(_, (s, _), true) => ctx.tallies.add_settlement(s),
                    Pending::Certify(_, Applied::Now { distributed_urtc }) => ctx.tallies.add_credited(*distributed_urtc),
                    _ => {}
                }
            }
            for p in pending {
                match p {
                    Pending::Attest(reply, outcome, _) => drop(reply.send(Ok(outcome))),
                    Pending::Record(reply, outcome) => drop(reply.send(Ok(outcome))),
                    Pending::Settle(reply, s, _) => drop(reply.send(Ok(s))),
                    Pending::Vote(reply, o) => drop(reply.send(Ok(o))),
                    Pending::Certify(reply, a) => drop(reply.send(Ok(a))),
                    Pending::Anchor(reply) => drop(reply.send(Ok(()))),
                }
            }
        }
        Err(e) => {
            // The transaction was dropped, so nothing of this batch is on disk. Every caller,
            // including those whose ops were not reached, learns that.
            tracing::error!(error = %e, ops = n, "write batch failed; nothing of it was stored");
            ctx.metrics.db_write_failures.inc();
            ctx.tallies.writable.store(false, Ordering::Relaxed);
            let failed = WriteFailed(e.to_string());
            for p in pending {
                match p {
                    Pending::Attest(reply, ..) => drop(reply.send(Err(failed.clone()))),
                    Pending::Record(reply, _) => drop(reply.send(Err(failed.clone()))),
                    Pending::Settle(reply, ..) => drop(reply.send(Err(failed.clone()))),
                    Pending::Vote(reply, _) => drop(reply.send(Err(failed.clone()))),
                    Pending::Certify(reply, _) => drop(reply.send(Err(failed.clone()))),
                    Pending::Anchor(reply) => drop(reply.send(Err(failed.clone()))),
                }
            }
            // The op that failed, and those the failed transaction never reached (it may fail
            // before the first).
            for op in failed_op.into_iter().chain(ops) {
                match op {
                    WriteOp::Attest(_, reply) => drop(reply.send(Err(failed.clone()))),
                    WriteOp::Transfer(_, reply) | WriteOp::Admin(_, reply) => drop(reply.send(Err(failed.clone()))),
                    WriteOp::Settle { reply, .. } => drop(reply.send(Err(failed.clone()))),
                    WriteOp::Vote(_, reply) => drop(reply.send(Err(failed.clone()))),
                    WriteOp::Certify(_, reply) => drop(reply.send(Err(failed.clone()))),
                    WriteOp::RecordAnchor(_, _, reply) => drop(reply.send(Err(failed.clone()))),
                    WriteOp::PruneNonces(_) | WriteOp::Heal => {}
                }
            }
            // redb refuses a handle after an I/O failure until it is reopened; reopening also
            // recovers to the last commit. Nothing acknowledged is lost: it was committed before.
            if matches!(e, StoreError::Db(_)) {
                heal(ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use protocol::attestation::{AttestationRecord, Receipt, Scheme, SignedPayload};
    use redb::StorageBackend;
    use redb::backends::FileBackend;

    use super::*;
    use crate::metrics::MetricsBuilder;
    use crate::store::StoredClaim;

    /// A file backend whose writes fail with ENOSPC while `full` is set: a full disk on demand.
    #[derive(Debug)]
    struct FillableDisk {
        inner: FileBackend,
        full: Arc<AtomicBool>,
    }

    impl FillableDisk {
        fn check(&self) -> std::io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
            } else {
                Ok(())
            }
        }
    }

    impl StorageBackend for FillableDisk {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.check()?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
        fn close(&self) -> std::io::Result<()> {
            self.inner.close()
        }
    }

    fn open_on(path: &std::path::Path, full: &Arc<AtomicBool>) -> Result<Database, StoreError> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(redb::DatabaseError::from)?;
        let backend = FillableDisk { inner: FileBackend::new(file)?, full: full.clone() };
        Ok(redb::Builder::new().set_check_integrity_on_open(true).create_with_backend(backend)?)
    }

    fn attestation(i: u8, epoch: u64) -> NewAttestation {
        let payload = SignedPayload { scheme: Scheme::CanonicalJson, body: format!("{{\"i\":{i}}}"), public_key: [i; 32], signature: [i; 64] };
        let receipt = Receipt { node_key: [0; 32], slot: epoch * 10, nonce: format!("nonce-{i}"), signature: [0; 64] };
        let id = protocol::attestation::record_id(&payload.payload_id(), &receipt.node_key, receipt.slot);
        let claim = StoredClaim {
            wallet: format!("wallet-{i}"),
            key: hex::encode([i; 32]),
            miner_id: format!("box-{i}"),
            slot: epoch * 10,
            weight: 1_000_000_000,
            hw_weight: 1_000_000_000,
            fingerprint_passed: true,
            serial_hash: None,
            family: "x86".into(),
            arch: "modern".into(),
            profile: [0; 5],
        };
        NewAttestation { origin: store::Origin::Miner, record: AttestationRecord { payload, receipt }, id, epoch, claim, nonce_expires: u64::MAX, oldest_open_epoch: epoch }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_fails_the_batch_and_the_writer_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let full = Arc::new(AtomicBool::new(false));
        let spec = ChainSpec::builtin("devnet").unwrap();
        let db = store::init(open_on(&path, &full).unwrap(), &spec, 5).unwrap();
        let tallies = Arc::new(Tallies::load(&db, 5).unwrap());
        let reopen = (path.clone(), full.clone());
        let handle = Arc::new(DbHandle::new(db, move || open_on(&reopen.0, &reopen.1)));
        let metrics = MetricsBuilder::new().into_shared().0;
        let (writer, task) = Writer::spawn(handle.clone(), spec, tallies.clone(), metrics.clone(), 64);

        assert!(writer.attest(attestation(1, 5)).await.unwrap().unwrap().new);
        assert_eq!(tallies.enrolled(5), Some(1));

        // The disk fills: the write fails, nothing of it is stored, the node says so.
        full.store(true, Ordering::SeqCst);
        let err = writer.attest(attestation(2, 5)).await.unwrap_err();
        assert!(err.0.contains("No space left") || err.0.contains("I/O") || err.0.contains("closed"), "{err}");
        assert_eq!(metrics.db_write_failures.get(), 1);
        assert!(!tallies.writable());
        // Still full: writes keep failing (the reopen cannot commit either), reads say why.
        assert!(writer.attest(attestation(3, 5)).await.is_err());
        assert_eq!(tallies.enrolled(5), Some(1), "failed writes change no tally");

        // Space returns: the next write reopens the database and succeeds.
        full.store(false, Ordering::SeqCst);
        assert!(writer.attest(attestation(4, 5)).await.unwrap().unwrap().new);
        assert!(tallies.writable());
        // What failed was not half-stored: the same writes go through now, exactly once.
        assert!(writer.attest(attestation(2, 5)).await.unwrap().unwrap().new);
        assert_eq!(writer.attest(attestation(2, 5)).await.unwrap(), Err(Refusal::NonceReplay));
        assert_eq!(tallies.enrolled(5), Some(3));

        let db = handle.get().unwrap();
        let stats = store::stats(&db).unwrap();
        assert_eq!(stats.attestations, 3, "records 1, 4 and 2; not 3");
        for (i, present) in [(1, true), (2, true), (3, false), (4, true)] {
            assert_eq!(store::record(&db, &attestation(i, 5).id).unwrap().is_some(), present, "record {i}");
        }
        drop(db);
        drop(writer);
        task.await.unwrap();
        handle.close(Duration::from_secs(5)).unwrap();
        // And the file on disk holds the same after a fresh open with full checks.
        let db = store::open_file(&path).unwrap();
        assert_eq!(store::stats(&db).unwrap().attestations, 3);
        assert!(store::check_consistency(&db, None).unwrap().problems.is_empty());
    }

    #[test]
    fn tallies_count_new_enrollments_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ChainSpec::builtin("devnet").unwrap();
        let db = store::open(&dir.path().join("db.redb"), &spec, 10, store::DEFAULT_CACHE_BYTES).unwrap();
        let t = Tallies::load(&db, 10).unwrap();
        assert_eq!((t.enrolled(9), t.enrolled(10), t.enrolled(11)), (None, Some(0), Some(0)));
        t.add_enrollment(10);
        t.add_enrollment(12);
        t.add_enrollment(12);
        assert_eq!((t.enrolled(10), t.enrolled(12)), (Some(1), Some(2)));
        // Far ahead: old epochs leave memory and are read from disk again.
        t.add_enrollment(100);
        assert_eq!((t.enrolled(10), t.enrolled(100)), (None, Some(1)));
    }
}
