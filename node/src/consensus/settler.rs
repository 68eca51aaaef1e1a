//! The epoch manager: settles every epoch once its grace period has passed, including the ones
//! that ended while the node was down, and prunes expired nonces.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::consensus;
use crate::context::Node;
use crate::store;

/// How often catch-up progress is logged, in epochs.
const CATCH_UP_GROUP: u64 = 256;
/// Longest wait, after settling an epoch, for its certificate before settling the next one.
const CHAIN_WAIT_MAX: Duration = Duration::from_secs(60);

/// E's settlement builds on the balances, nonces and judged transfers after E-1: settled before
/// E-1's certificate is applied here, it judges E-1's transfers again. In normal running E-1 was
/// settled an epoch ago; in catch-up (this node, or every validator, back from downtime) it was
/// settled a moment ago and its certificate is on its way: wait for it, a round timeout at most
/// (capped at `CHAIN_WAIT_MAX`). Only for an E-1 the rounds loop still fetches certificates for:
/// older epochs (a long catch-up) would only wait out the limit. A lone node never waits: it
/// applies its own certificate as it votes.
async fn wait_for_previous(node: &Node, previous: u64, settled_at: Instant, stop: &mut watch::Receiver<bool>) {
    let limit = Duration::from_secs(consensus::ROUND_TIMEOUT_SLOTS * node.spec.slot_seconds).min(CHAIN_WAIT_MAX);
    let applied = || node.db.get().and_then(|db| store::is_applied(&db, previous)).unwrap_or(false);
    if node.certifies_alone() || previous < node.oldest_open_epoch() || applied() || settled_at.elapsed() >= limit {
        return;
    }
    tracing::debug!(epoch = previous + 1, previous, "waiting for the previous epoch's certificate before settling");
    while !applied() && settled_at.elapsed() < limit {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    if !applied() {
        tracing::info!(epoch = previous + 1, previous, "the previous epoch is not certified yet; settling without it (later rounds recompute)");
    }
}

pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let last = match node.db.get() {
        Ok(db) => store::resume_epoch(&db),
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
    // The last epoch settled here, and when.
    let mut last_settled: Option<(u64, Instant)> = None;
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
                if let Some((previous, at)) = last_settled.filter(|(e, _)| e + 1 == next) {
                    wait_for_previous(&node, previous, at, &mut stop).await;
                    if *stop.borrow() {
                        return;
                    }
                }
                match node.writer.settle_in_order(next).await {
                    Ok((s, new)) => {
                        if new {
                            // Hashed once for the feed and the log (a record can be megabytes).
                            let hash = hex::encode(s.hash());
                            if !s.entries.is_empty() || behind == 1 {
                                tracing::info!(
                                    epoch = next, hash = %hash, miners = s.entries.len(),
                                    distributed_urtc = s.distributed_urtc, "epoch settled (provisional until certified)"
                                );
                            }
                            node.events.publish("epoch_settled", next, Vec::new(), serde_json::json!({
                                "settlement_hash": hash, "miners": s.entries.len(),
                                "distributed_urtc": s.distributed_urtc, "transfers": s.transfers.len(),
                            }));
                        }
                        consensus::on_settled(&node, next, &s).await;
                        last_settled = Some((next, Instant::now()));
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
