//! The epoch manager: settles every epoch once its grace period has passed, including the ones
//! that ended while the node was down, and prunes expired nonces.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::consensus;
use crate::service::Node;
use crate::store;

/// How often catch-up progress is logged, in epochs.
const CATCH_UP_GROUP: u64 = 256;

pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let last = match node.db.get() {
        Ok(db) => store::last_settled(&db),
        Err(e) => Err(e),
    };
    let mut next = match last {
        Ok(Some(e)) => e + 1,
        Ok(None) => node.first_epoch,
        Err(e) => {
            tracing::error!(error = %e, "epoch manager cannot read the database; not settling");
            return;
        }
    };
    // Settle nothing before catching up: an epoch settled without the records peers hold would be
    // settled wrong.
    while node.sync_status() == "syncing" {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    loop {
        let now = node.clock.now_unix();
        let due_until = (next..).take_while(|e| node.spec.settle_at_unix(*e) <= now).last();
        if let Some(last_due) = due_until {
            let behind = last_due - next + 1;
            if behind > 1 {
                tracing::info!(from = next, to = last_due, epochs = behind, "settling epochs that ended while the node was down");
            }
            // One at a time, in order: an epoch's settlement chains to the certificate of the one
            // before, which a lone validator produces as soon as it votes.
            while next <= last_due {
                match node.writer.settle(next).await {
                    Ok((s, new)) => {
                        if new && (!s.entries.is_empty() || behind == 1) {
                            tracing::info!(
                                epoch = next, hash = %hex::encode(s.hash()), miners = s.entries.len(),
                                distributed_urtc = s.distributed_urtc, "epoch settled (provisional until certified)"
                            );
                        }
                        consensus::on_settled(&node, next, &s).await;
                        next += 1;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, epoch = next, "settlement failed; retrying in 5 s");
                        break;
                    }
                }
                if behind > CATCH_UP_GROUP && (next - (last_due + 1 - behind)) % CATCH_UP_GROUP == 0 {
                    tracing::info!(settled = next - (last_due + 1 - behind), of = behind, "catching up");
                }
            }
            node.writer.prune_nonces(now).await;
        }
        let wait = if next <= due_until.unwrap_or(0) {
            Duration::from_secs(5)
        } else {
            // To the millisecond: validators that settle together vote before a quorum forms
            // without them (a certificate seen first means a validator no longer votes).
            node.clock.until_unix(node.spec.settle_at_unix(next)).max(Duration::from_millis(10))
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
