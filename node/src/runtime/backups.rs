//! Scheduled backups: every `--backup-every`, a consistent snapshot of the database into
//! `--backup-dir` (gzipped), keeping the newest `--backup-keep` (the operations are `store::ops`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::HumanDuration;
use crate::context::Node;
use crate::metrics::StatusLabel;
use crate::store::ops::{SnapshotInfo, backup_prefix, list_backups, newest_backup_unix, snapshot, unix_now, utc_stamp};

/// Take one scheduled backup into `dir` and delete all but the newest `keep`.
pub fn backup_once(node: &Node, dir: &Path, keep: usize) -> anyhow::Result<(PathBuf, SnapshotInfo)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating backup dir {}", dir.display()))?;
    let now = unix_now();
    let out = dir.join(format!("{}{}.redb.gz", backup_prefix(&node.spec.network_id), utc_stamp(now)));
    let db = node.db.get()?;
    let info = snapshot(&db, &out, true)?;
    drop(db);
    let all = list_backups(dir, &node.spec.network_id);
    for old in all.iter().take(all.len().saturating_sub(keep)) {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), error = %e, "could not delete an old backup");
        }
    }
    Ok((out, info))
}

/// Take a backup every `every` (the first when the newest in `dir` is older than that), keeping
/// `keep`, until `stop`.
pub async fn run_schedule(node: Arc<Node>, dir: PathBuf, every: HumanDuration, keep: usize, mut stop: watch::Receiver<bool>) {
    loop {
        let newest = newest_backup_unix(&dir, &node.spec.network_id);
        let due_in = newest.map_or(0, |t| (t + every.0.as_secs()).saturating_sub(unix_now()));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(due_in)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let guard = node.backups.start().await;
        let n = node.clone();
        let d = dir.clone();
        let res = tokio::task::spawn_blocking(move || backup_once(&n, &d, keep)).await;
        drop(guard);
        match res {
            Ok(Ok((path, info))) => {
                node.backups.record_success(unix_now());
                node.metrics.backups.get_or_create(&StatusLabel { status: "ok" }).inc();
                tracing::info!(file = %path.display(), rows = info.rows, bytes = info.bytes, "scheduled backup written");
            }
            Ok(Err(e)) => {
                node.metrics.backups.get_or_create(&StatusLabel { status: "failed" }).inc();
                tracing::error!(error = format!("{e:#}"), dir = %dir.display(), "scheduled backup failed; retrying in 5 minutes");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            Err(e) => tracing::error!(error = %e, "backup task failed"),
        }
    }
}
