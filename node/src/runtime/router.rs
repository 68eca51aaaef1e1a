//! The router: the one place that dispatches what the network delivers. Announcements of records
//! go to `replication`, votes and epoch announcements to `consensus`, new connections start
//! catch-up or a reconcile, and a timer runs anti-entropy. Replication never calls consensus; the
//! work each peer can start is bounded here (slots).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;
use tokio::sync::{mpsc, watch};

use crate::consensus;
use crate::context::Node;
use crate::net::{Command, NetEvent, NetHandle};
use crate::replication::{self, Slots};

/// Concurrent fetches triggered by announcements.
const MAX_CONCURRENT_FETCHES: usize = 32;
/// Of those, at most this many from one peer: a peer that announces what it then serves slowly or
/// not at all holds only its own slots, and honest announcements keep theirs.
const MAX_FETCHES_PER_PEER: usize = 4;
/// Epoch announcements verified (and the reconciles they start) at once; one per epoch and one per
/// announcing peer.
const MAX_EPOCH_WORK: usize = 4;
/// How often a node compares its open and last epoch with a random peer.
const ANTI_ENTROPY_EVERY: Duration = Duration::from_secs(5);
/// How long a node with bootnodes waits for a first peer before settling alone.
const FIRST_PEER_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn route(node: Arc<Node>, net: NetHandle, mut events: mpsc::Receiver<NetEvent>, mut stop: watch::Receiver<bool>) {
    let fetches = Slots::<PeerId>::new(MAX_CONCURRENT_FETCHES, MAX_FETCHES_PER_PEER);
    let epoch_work = Slots::<u64>::new(MAX_EPOCH_WORK, 1);
    let epoch_work_by_peer = Slots::<PeerId>::new(MAX_EPOCH_WORK, 1);
    if net.state.alone_by_config {
        net.state.synced.store(true, Ordering::Release);
    }
    let first_peer_deadline = tokio::time::sleep(FIRST_PEER_TIMEOUT);
    tokio::pin!(first_peer_deadline);
    let mut syncing = false;
    let mut tick = tokio::time::interval(ANTI_ENTROPY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => return,
                Some(NetEvent::Inv { msg_id, source, ids }) => {
                    // All slots busy, or this peer's: not forwarded; anti-entropy brings the records.
                    let Some(permit) = fetches.try_take(source) else {
                        net.send(Command::Report { msg_id, source, acceptance: MessageAcceptance::Ignore });
                        continue;
                    };
                    let (node, net) = (node.clone(), net.clone());
                    tokio::spawn(async move {
                        replication::on_inv(node, net, msg_id, source, ids).await;
                        drop(permit);
                    });
                }
                Some(NetEvent::Epoch { msg_id, source, inv }) => {
                    // One piece of work per epoch and one per announcing peer, 4 in all.
                    let slot = if consensus::epoch_announcement_in_window(&node, inv.epoch) {
                        epoch_work_by_peer.try_take(source).and_then(|p| Some((p, epoch_work.try_take(inv.epoch)?)))
                    } else {
                        None
                    };
                    let Some(slot) = slot else {
                        net.send(Command::Report { msg_id, source, acceptance: MessageAcceptance::Ignore });
                        continue;
                    };
                    let (node, net) = (node.clone(), net.clone());
                    tokio::spawn(async move {
                        consensus::on_epoch(&node, &net, msg_id, source, inv).await;
                        drop(slot);
                    });
                }
                Some(NetEvent::Vote(vote)) => {
                    let node = node.clone();
                    tokio::spawn(async move { consensus::on_vote(&node, vote).await });
                }
                Some(NetEvent::Connected(peer)) => {
                    if !syncing && !net.state.synced.load(Ordering::Acquire) {
                        syncing = true;
                        let (node, net) = (node.clone(), net.clone());
                        tokio::spawn(async move {
                            replication::initial_sync(&node, &net, peer).await;
                            // Then the chain before this node: its certified settlements.
                            let mut peers = net.state.connected_peers();
                            peers.sort_by_key(|p| *p != peer);
                            consensus::catch_up_history(&node, &net, peers).await;
                        });
                    } else if net.state.synced.load(Ordering::Acquire) {
                        let (node, net) = (node.clone(), net.clone());
                        tokio::spawn(async move { replication::reconcile_recent(&node, &net, peer).await });
                    }
                }
            },
            _ = &mut first_peer_deadline, if !syncing && !net.state.synced.load(Ordering::Acquire) => {
                tracing::warn!("no peer reachable after {}s; settling on our own until peers appear", FIRST_PEER_TIMEOUT.as_secs());
                net.state.synced.store(true, Ordering::Release);
            }
            _ = tick.tick() => {
                // Forget the budgets of peers that have been quiet long enough to be full again.
                node.peer_records.retain_recent();
                if let Some(peer) = replication::random_peer(&net.state.connected_peers()) {
                    let (node, net) = (node.clone(), net.clone());
                    tokio::spawn(async move { replication::anti_entropy(&node, &net, peer).await });
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
    }
}
