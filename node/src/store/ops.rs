//! Database operations: consistent snapshots (online through the running node, or offline from the
//! file), restore, integrity check, compaction, and scheduled backups with retention; the
//! `rustchain db ...` commands. redb lets one process open a database file, so an online backup
//! is taken by the node itself: a read transaction (a consistent snapshot that does not block the
//! writer) copied table by table into a new database file, optionally gzip-compressed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use protocol::ChainSpec;
use redb::{Database, DatabaseError, ReadableDatabase, StorageError};
use serde::Serialize;

use crate::config;
use crate::store::{self, CheckReport};

/// First bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The newest backup this node knows of (for `/health` and the metrics), and one-at-a-time.
#[derive(Default)]
pub struct Backups {
    last_success_unix: AtomicU64,
    running: tokio::sync::Mutex<()>,
}

impl Backups {
    pub fn last_success_unix(&self) -> Option<u64> {
        Some(self.last_success_unix.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    pub fn record_success(&self, unix: u64) {
        self.last_success_unix.fetch_max(unix, Ordering::Relaxed);
    }

    /// Whether no other backup is being taken; the guard holds the slot.
    pub fn try_start(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.running.try_lock().ok()
    }

    pub async fn start(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.running.lock().await
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub rows: u64,
    pub bytes: u64,
    pub compressed: bool,
}

pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

pub fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Write a consistent snapshot of `db` (its last commit) to `out`, gzip-compressed if asked.
/// The file appears under its name only when complete (written aside, synced, renamed).
pub fn snapshot(db: &Database, out: &Path, compress: bool) -> anyhow::Result<SnapshotInfo> {
    let dir = parent(out);
    let stem = out.file_name().and_then(|n| n.to_str()).unwrap_or("backup");
    let tmp_db = dir.join(format!(".{stem}.{}.partial", std::process::id()));
    let _ = std::fs::remove_file(&tmp_db);
    let result = (|| {
        let rows = {
            let r = db.begin_read()?;
            let dst = Database::create(&tmp_db).with_context(|| format!("creating {}", tmp_db.display()))?;
            let rows = store::copy_snapshot(&r, &dst)?;
            dst.close().map_err(|e| anyhow::anyhow!("closing the snapshot: {e}"))?;
            rows
        };
        if compress {
            let tmp_gz = tmp_db.with_extension("gz.partial");
            let res = gzip_file(&tmp_db, &tmp_gz).and_then(|()| {
                std::fs::rename(&tmp_gz, out).with_context(|| format!("renaming to {}", out.display()))
            });
            let _ = std::fs::remove_file(&tmp_db);
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp_gz);
            }
            res?;
        } else {
            File::open(&tmp_db)?.sync_all()?;
            std::fs::rename(&tmp_db, out).with_context(|| format!("renaming to {}", out.display()))?;
        }
        sync_dir(dir);
        let bytes = std::fs::metadata(out)?.len();
        Ok(SnapshotInfo { rows, bytes, compressed: compress })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_db);
    }
    result
}

fn gzip_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut input = BufReader::new(File::open(from)?);
    let file = File::create(to).with_context(|| format!("creating {}", to.display()))?;
    let mut gz = GzEncoder::new(BufWriter::new(file), Compression::default());
    std::io::copy(&mut input, &mut gz)?;
    let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// Whether a file is gzip-compressed.
pub fn is_gzip(path: &Path) -> anyhow::Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(f.read(&mut magic)? == 2 && magic == GZIP_MAGIC)
}

/// Copy `from` (plain or gzip) to `to` as a plain database file, synced.
fn materialize(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut out = BufWriter::new(File::create(to).with_context(|| format!("creating {}", to.display()))?);
    let input = BufReader::new(File::open(from).with_context(|| format!("opening {}", from.display()))?);
    if is_gzip(from)? {
        std::io::copy(&mut GzDecoder::new(input), &mut out).with_context(|| format!("decompressing {}", from.display()))?;
    } else {
        std::io::copy(&mut { input }, &mut out)?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// Why a database file could not be opened, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpenFailure {
    #[error("the database is in use by another process (a running node?); stop it first, or take an online backup with `rustchain db backup --node URL`")]
    InUse,
    #[error("the database is corrupted: {0}")]
    Corrupted(String),
    #[error("{0}")]
    Other(String),
}

/// Open a database file for maintenance, verifying every page checksum.
pub fn open_checked(path: &Path) -> Result<Database, OpenFailure> {
    if !path.exists() {
        return Err(OpenFailure::Other(format!("{} does not exist", path.display())));
    }
    match redb::Builder::new().set_check_integrity_on_open(true).open(path) {
        Ok(db) => Ok(db),
        Err(DatabaseError::DatabaseAlreadyOpen) => Err(OpenFailure::InUse),
        Err(DatabaseError::Storage(StorageError::Corrupted(m))) => Err(OpenFailure::Corrupted(m)),
        Err(e @ DatabaseError::Storage(StorageError::Io(_))) => {
            // A lock held by another process shows as an I/O error on some platforms.
            Err(OpenFailure::Other(e.to_string()))
        }
        Err(e) => Err(OpenFailure::Corrupted(e.to_string())),
    }
}

/// Open a database file for maintenance, catching a panic in redb as corruption (a damaged file
/// may trip an assertion instead of returning an error).
pub fn open_guarded(path: &Path) -> Result<Database, OpenFailure> {
    let p = path.to_owned();
    match std::panic::catch_unwind(move || open_checked(&p)) {
        Ok(r) => r,
        Err(_) => Err(OpenFailure::Corrupted("the storage engine failed while reading the file".into())),
    }
}

/// Result of `check`: 0 consistent, 1 corrupt or inconsistent, 2 could not check.
#[derive(Debug, Serialize)]
pub struct CheckOutcome {
    pub file: PathBuf,
    pub ok: bool,
    pub exit_code: i32,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<CheckReport>,
}

/// Check a database file (plain or gzip backup): redb's page checksums, then our schema and data.
pub fn check(path: &Path, spec: Option<&ChainSpec>) -> CheckOutcome {
    let fail = |code: i32, e: String| CheckOutcome { file: path.to_owned(), ok: false, exit_code: code, error: Some(e), report: None };
    let gz = match is_gzip(path) {
        Ok(g) => g,
        Err(e) => return fail(2, format!("{e:#}")),
    };
    let tmp;
    let file = if gz {
        tmp = match tempfile::Builder::new().prefix(".rustchain-check").suffix(".redb").tempfile_in(parent(path)) {
            Ok(t) => t,
            Err(e) => return fail(2, format!("creating a temporary file: {e}")),
        };
        if let Err(e) = materialize(path, tmp.path()) {
            return fail(1, format!("{e:#}"));
        }
        tmp.path().to_owned()
    } else {
        path.to_owned()
    };
    let db = match open_guarded(&file) {
        Ok(db) => db,
        Err(e @ OpenFailure::Corrupted(_)) => return fail(1, e.to_string()),
        Err(e) => return fail(2, e.to_string()),
    };
    // Without a given spec, a database of a built-in network is checked against that network.
    let builtin = match spec {
        Some(_) => None,
        None => store::network_id(&db).ok().flatten().and_then(|n| ChainSpec::builtin(&n).ok()),
    };
    let spec = spec.or(builtin.as_ref());
    let checked = {
        let db = &db;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store::check_consistency(db, spec)))
    };
    match checked {
        Ok(Ok(report)) => {
            let ok = report.problems.is_empty();
            CheckOutcome { file: path.to_owned(), ok, exit_code: if ok { 0 } else { 1 }, error: None, report: Some(report) }
        }
        Ok(Err(e)) => fail(1, e.to_string()),
        Err(_) => fail(1, "the storage engine failed while reading the data".into()),
    }
}

/// Restore `from` (a backup, plain or gzip) as the database of `data_dir`. Refuses while a node
/// has the current database open, and refuses a backup that does not pass `check`. The database
/// it replaces is kept beside it as `rustchain.redb.pre-restore-<time>`.
pub fn restore(from: &Path, data_dir: &Path, spec: Option<&ChainSpec>) -> anyhow::Result<PathBuf> {
    let target = config::db_path(data_dir);
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    // Holding the current database open (if it opens) keeps a node from starting meanwhile.
    let _held = if target.exists() {
        match redb::Database::open(&target) {
            Ok(db) => Some(db),
            Err(DatabaseError::DatabaseAlreadyOpen) => bail!("{}", OpenFailure::InUse),
            Err(_) => None, // damaged: that is why we are restoring
        }
    } else {
        None
    };
    let staging = data_dir.join("rustchain.redb.restoring");
    let _ = std::fs::remove_file(&staging);
    materialize(from, &staging)?;
    let outcome = check(&staging, spec);
    if !outcome.ok {
        let _ = std::fs::remove_file(&staging);
        let why = outcome.error.or_else(|| outcome.report.map(|r| r.problems.join("; "))).unwrap_or_default();
        bail!("the backup {} does not pass the check, nothing was changed: {why}", from.display());
    }
    let mut aside = None;
    if target.exists() {
        let name = format!("rustchain.redb.pre-restore-{}", utc_stamp(unix_now()));
        let p = data_dir.join(name);
        std::fs::rename(&target, &p).with_context(|| format!("moving the current database to {}", p.display()))?;
        aside = Some(p);
    }
    std::fs::rename(&staging, &target).with_context(|| format!("moving the backup into {}", target.display()))?;
    sync_dir(data_dir);
    Ok(aside.unwrap_or_default())
}

/// Compact a database file (offline). Returns its size before and after.
pub fn compact(path: &Path) -> anyhow::Result<(u64, u64)> {
    let before = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    let mut db = open_guarded(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    for _ in 0..8 {
        if !db.compact().map_err(|e| anyhow::anyhow!("compacting: {e}"))? {
            break;
        }
    }
    db.close().map_err(|e| anyhow::anyhow!("closing: {e}"))?;
    Ok((before, std::fs::metadata(path)?.len()))
}

pub fn unix_now() -> u64 {
    crate::clock::Clock.now_unix()
}

/// `YYYYMMDDTHHMMSSZ` for a unix time (UTC).
pub fn utc_stamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

// ---------------------------------------------------------------------------------------------
// Scheduled backups

pub fn backup_prefix(network_id: &str) -> String {
    format!("rustchain-{network_id}-")
}

/// Scheduled backups in `dir`, oldest first (names sort by time).
pub fn list_backups(dir: &Path, network_id: &str) -> Vec<PathBuf> {
    let prefix = backup_prefix(network_id);
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".redb.gz"))
        })
        .collect();
    out.sort();
    out
}

fn mtime_unix(p: &Path) -> Option<u64> {
    let t = std::fs::metadata(p).ok()?.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
}

/// The newest scheduled backup's time, if any.
pub fn newest_backup_unix(dir: &Path, network_id: &str) -> Option<u64> {
    list_backups(dir, network_id).last().and_then(|p| mtime_unix(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_764_706_927), "20251202T202207Z");
        assert_eq!(utc_stamp(4_102_444_799), "20991231T235959Z");
    }
}
