//! The primary's anchoring policy: every certified settlement hash is anchored once, in epoch
//! order, through the configured [`Anchor`] backend (see `anchoring/ergo.rs` for the Ergo client).
//!
//! One task does all anchoring, so an epoch is never sent twice by this process. It wakes when an
//! epoch is certified here (and every [`SWEEP_EVERY`] otherwise), reads the certified epochs of
//! the last [`LOOKBACK_EPOCHS`] that have no anchor record, and anchors them oldest first with
//! [`anchor_with_retry`]. The record (tx id, time) is committed by the writer after the Ergo node
//! accepted the transaction; a crash between the two sends that epoch again after the restart (the
//! only way an epoch can be anchored twice). Only hashes read from stored certificates are ever
//! anchored, never a provisional settlement.

pub mod ergo;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::anchoring::ergo::{Anchor, AnchorError, anchor_with_retry};
use crate::metrics::StatusLabel;
use crate::context::Node;
use crate::store::{self, AnchorRecord};

/// How far back (in epochs from the current one) unanchored certified epochs are picked up.
/// Older ones are left alone: enabling anchoring on a node with a long history does not pay for
/// anchoring all of it.
pub const LOOKBACK_EPOCHS: u64 = 16;
/// Sweep for unanchored epochs this often even without a wake-up (retries after failures).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Attempts per epoch and sweep while the Ergo node is unreachable, and the first backoff.
pub const ATTEMPTS: u32 = 5;
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Run until `stop`. Call only on a node that anchors (the primary, with a backend configured).
pub async fn run(node: Arc<Node>, anchor: Arc<dyn Anchor>, mut stop: watch::Receiver<bool>) {
    tracing::info!(lookback_epochs = LOOKBACK_EPOCHS, "anchoring certified settlement hashes");
    loop {
        let sweep = sweep(&node, anchor.as_ref());
        tokio::select! {
            done = sweep => if let Err(AnchorError::Disabled) = done { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = node.anchor_wake.notified() => {}
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Anchor every unanchored certified epoch in the lookback window, oldest first; stop at the first
/// failure (the next sweep tries again).
async fn sweep(node: &Node, anchor: &dyn Anchor) -> Result<(), AnchorError> {
    let from = node.spec.epoch_at(node.clock.now_unix()).saturating_sub(LOOKBACK_EPOCHS);
    let pending = match node.db.get().and_then(|db| store::unanchored_certified(&db, from)) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read certified epochs to anchor; retrying later");
            return Ok(());
        }
    };
    for (epoch, hash) in pending {
        match anchor_with_retry(anchor, epoch, hash, ATTEMPTS, FIRST_BACKOFF).await {
            Ok(receipt) => {
                let rec = AnchorRecord { settlement_hash: hash, tx_id: receipt.tx_id.clone(), anchored_at: receipt.anchored_at };
                match node.writer.record_anchor(epoch, rec).await {
                    Ok(()) => {
                        tracing::info!(epoch, hash = %hex::encode(hash), tx_id = %receipt.tx_id, "settlement hash anchored");
                        node.metrics.anchors.get_or_create(&StatusLabel { status: "ok" }).inc();
                        node.events.publish("anchored", epoch, Vec::new(), serde_json::json!({
                            "settlement_hash": hex::encode(hash), "ergo_tx_id": receipt.tx_id,
                        }));
                        node.metrics.last_anchored_epoch.set(i64::try_from(epoch).unwrap_or(i64::MAX));
                    }
                    Err(e) => {
                        // The transaction exists; only our note of it is missing. Sending again
                        // after a restart is the lesser harm than never anchoring.
                        tracing::error!(epoch, tx_id = %receipt.tx_id, error = %e, "anchored, but the anchor record was not stored");
                        return Ok(());
                    }
                }
            }
            Err(AnchorError::Disabled) => return Err(AnchorError::Disabled),
            Err(e) => {
                tracing::warn!(epoch, error = %e, retry_in = ?SWEEP_EVERY, "anchoring failed; will retry");
                node.metrics.anchors.get_or_create(&StatusLabel { status: "failed" }).inc();
                return Ok(());
            }
        }
    }
    Ok(())
}
