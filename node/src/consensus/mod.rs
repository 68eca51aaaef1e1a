//! Epoch agreement in the node. After settling an epoch, a validator signs and gossips a vote; every
//! node tallies the votes it has (`protocol::consensus::tally`) and, at quorum, stores the
//! certificate and credits the certified settlement. A node whose own settlement differs pulls the
//! difference and recomputes; if it still differs it says so loudly and applies the certified record
//! fetched from a peer. Epochs without a certificate go to another round after a timeout.

pub mod settler;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use protocol::Hash32;
use protocol::consensus::{EpochCertificate, Vote};
use protocol::settlement::Settlement;
use libp2p::gossipsub::MessageAcceptance;
use protocol::wire::{Id, InvEpoch, Request, Response};
use tokio::sync::watch;

use libp2p::PeerId;

use crate::net::{Command, NetHandle};
use crate::replication;
use crate::context::Node;
use crate::store::{self, Applied};

/// Slots to wait for a certificate before the next voting round.
pub const ROUND_TIMEOUT_SLOTS: u64 = 3;
/// Rounds after which a validator stops re-voting an epoch (it still accepts certificates).
pub const MAX_ROUNDS: u32 = 16;
/// Longest pause between the rounds loop's attempts on an epoch that makes no progress: past
/// `MAX_ROUNDS`, or its certified record fetched but waiting for an earlier epoch. Each attempt asks
/// every peer for the epoch, and the answer carries the whole settlement record (tens of MB with
/// 100k transfers), so it backs off: 2, 4, ... up to this many seconds.
const STALLED_RETRY_MAX_SECS: u64 = 32;

/// Called by the epoch manager once `epoch` has a (provisional) settlement.
pub async fn on_settled(node: &Arc<Node>, epoch: u64, s: &Settlement) {
    let round = *node.rounds.lock().expect("rounds lock").entry(epoch).or_insert(0);
    if node.is_validator {
        cast_vote(node, epoch, round, s.hash()).await;
    }
    check(node, epoch).await;
}

async fn cast_vote(node: &Arc<Node>, epoch: u64, round: u32, hash: Hash32) {
    // Having seen a certificate for an epoch, a validator never votes for it again.
    if node.db.get().and_then(|db| store::certificate(&db, epoch)).ok().flatten().is_some() {
        return;
    }
    let digest = node.db.get().and_then(|db| store::epoch_digest(&db, epoch)).map(|d| d.root()).unwrap_or([0; 32]);
    let vote = Vote::sign(&node.spec, &node.key, epoch, round, hash, digest);
    match node.writer.vote(vote.clone()).await {
        Ok(_) => {
            tracing::info!(epoch, round, hash = %hex::encode(hash), "voted");
            // Without a validator set in the chain spec each node certifies alone; nobody else
            // counts our vote, so it is not gossiped.
            if let (Some(net), false) = (&node.net, node.certifies_alone()) {
                net.send(Command::PublishVote(vote));
            }
        }
        Err(e) => tracing::error!(epoch, error = %e, "could not store our vote"),
    }
}

/// A vote from the network (signature and membership already verified).
pub async fn on_vote(node: &Arc<Node>, vote: Vote) {
    let epoch = vote.epoch;
    match node.writer.vote(vote).await {
        Ok(outcome) => {
            if let (true, Some(e)) = (outcome.new, &outcome.equivocation) {
                tracing::error!(
                    epoch, validator = %hex::encode(e.first.validator), round = e.first.round,
                    first = %hex::encode(e.first.settlement_hash), second = %hex::encode(e.second.settlement_hash),
                    "EQUIVOCATION: a validator signed two different hashes for one epoch; both votes kept as evidence"
                );
                node.counters.equivocations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if outcome.new || outcome.equivocation.is_some() {
                check(node, epoch).await;
            }
        }
        Err(e) => tracing::error!(epoch, error = %e, "could not store a vote"),
    }
}

/// Tally an epoch's votes; certify at quorum.
pub async fn check(node: &Arc<Node>, epoch: u64) {
    if node.db.get().and_then(|db| store::is_applied(&db, epoch)).unwrap_or(false) {
        return;
    }
    let Ok(votes) = node.db.get().and_then(|db| store::votes_for(&db, epoch)) else { return };
    if let Some(cert) = protocol::consensus::tally(&node.validators, &votes).certificate {
        finalize(node, cert, None).await;
    }
}

/// Store a verified certificate and credit it; on a mismatch, try to resolve it.
pub async fn finalize(node: &Arc<Node>, cert: EpochCertificate, offered: Option<Settlement>) {
    let epoch = cert.epoch;
    let ours = node.db.get().and_then(|db| store::settlement(&db, epoch)).ok().flatten().map(|s| s.hash());
    match node.writer.certify(cert.clone(), offered).await {
        Ok(Applied::Now { .. }) => {
            node.mismatches.lock().expect("lock").remove(&epoch);
            tracing::info!(epoch, round = cert.round, hash = %hex::encode(cert.settlement_hash), signers = cert.votes.len(), "epoch certified; rewards credited");
            on_certified(node, &cert);
            if ours != Some(cert.settlement_hash) {
                // Credited from a peer's record (we were cut off, or settled without some
                // records): pull the epoch's records we lack, so our registry holds them too.
                let node = node.clone();
                tokio::spawn(async move { pull_epoch(&node, epoch).await });
            }
            if let (Some(net), Ok(digest)) = (&node.net, node.db.get().and_then(|db| store::epoch_digest(&db, epoch))) {
                net.send(Command::PublishEpoch(InvEpoch {
                    epoch,
                    settlement_hash: Id(cert.settlement_hash),
                    registry_digest: Id(digest.root()),
                    records: digest.count,
                }));
            }
        }
        Ok(Applied::Before) => {}
        Ok(Applied::Conflict { tx_hash, judged_in }) => report_conflict(node, &cert, &tx_hash, judged_in),
        Ok(Applied::Mismatch { ours }) => {
            let first_time = node.mismatches.lock().expect("lock").insert(epoch, ours.unwrap_or([0; 32])).is_none();
            if first_time {
                match ours {
                    Some(ours) => tracing::warn!(
                        epoch, certified = %hex::encode(cert.settlement_hash), ours = %hex::encode(ours),
                        "our settlement differs from the certified one; syncing and recomputing"
                    ),
                    None => tracing::info!(
                        epoch, certified = %hex::encode(cert.settlement_hash),
                        "the certificate came before our own settlement; syncing, settling and comparing"
                    ),
                }
                let node = node.clone();
                tokio::spawn(async move { resolve(&node, cert).await });
            }
        }
        Err(e) => tracing::error!(epoch, error = %e, "could not store a certificate"),
    }
}

/// A certified record this node refuses to apply because it would judge a transfer twice: said
/// once per epoch, loudly, and counted.
fn report_conflict(node: &Arc<Node>, cert: &EpochCertificate, tx_hash: &str, judged_in: u64) {
    let epoch = cert.epoch;
    if node.refused.lock().expect("lock").insert(epoch) {
        tracing::error!(
            epoch, tx_hash, judged_in, certified = %hex::encode(cert.settlement_hash),
            "NOT APPLIED: the certified settlement judges a transfer that a settlement of another epoch, \
             already applied here, judged too (an epoch was settled before the one before it was certified); \
             applying it would pay the transfer twice. Compare balances with peers (PROTOCOL.md §12, Chaining)"
        );
        node.counters.settlement_mismatches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Pull an epoch's records we lack from every connected peer.
async fn pull_epoch(node: &Arc<Node>, epoch: u64) {
    let Some(net) = node.net.clone() else { return };
    let mut pulled = 0;
    for peer in net.state.connected_peers() {
        pulled += replication::reconcile(node, &net, peer, epoch).await.unwrap_or(0);
    }
    if pulled > 0 {
        tracing::info!(epoch, records = pulled, "pulled the records of a certified epoch that we lacked");
    }
}

/// Pull the epoch's records from peers and recompute; failing that, apply the certified record
/// fetched from a peer, and say loudly that our registry still differs.
async fn resolve(node: &Arc<Node>, cert: EpochCertificate) {
    let epoch = cert.epoch;
    let Some(net) = node.net.clone() else { return };
    pull_epoch(node, epoch).await;
    if let Ok((s, _)) = node.writer.settle(epoch).await
        && s.hash() == cert.settlement_hash {
        if let Ok(Applied::Now { .. }) = node.writer.certify(cert.clone(), Some(s)).await {
            tracing::info!(epoch, "after sync our settlement matches the certificate; rewards credited");
            on_certified(node, &cert);
        }
        node.mismatches.lock().expect("lock").remove(&epoch);
        return;
    }
    for peer in net.state.connected_peers() {
        if let Ok(Response::Epoch { settlement: Some(s), .. }) = net.request(peer, Request::GetEpoch { epoch }).await
            && s.hash() == cert.settlement_hash {
            match node.writer.certify(cert.clone(), Some(s)).await {
                Ok(Applied::Now { .. }) => {
                    tracing::error!(
                        epoch, %peer, "SETTLEMENT MISMATCH persists after sync: applied the certified record from a peer; \
                         our own registry still yields another hash (see /api/epoch/{epoch}/settlement)"
                    );
                    node.counters.settlement_mismatches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    on_certified(node, &cert);
                }
                Ok(Applied::Before) => {}
                Ok(Applied::Conflict { tx_hash, judged_in }) => report_conflict(node, &cert, &tx_hash, judged_in),
                Ok(Applied::Mismatch { .. }) => {
                    // A debit that does not fit yet: an earlier certified epoch is not applied
                    // here. The rounds loop retries applying it (this epoch stays marked, so
                    // no second resolve starts meanwhile).
                    tracing::info!(epoch, "certified record fetched; it waits for an earlier epoch to be applied here");
                }
                Err(e) => tracing::error!(epoch, error = %e, "could not store a certificate"),
            }
            return;
        }
    }
    tracing::error!(epoch, "SETTLEMENT MISMATCH: no peer served the certified settlement yet; will retry");
    node.mismatches.lock().expect("lock").remove(&epoch);
}

/// Rounds and certificate catch-up: every second, look at settled epochs that are not final (no
/// certificate, or a certificate whose settlement record we could not get yet).
pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_attempt: BTreeMap<u64, u64> = BTreeMap::new();
    // Epochs whose last attempt did not advance their round: (next attempt, unix s; attempts).
    let mut stalled: BTreeMap<u64, (u64, u32)> = BTreeMap::new();
    let mut open_before: BTreeSet<u64> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
        let now = node.clock.now_unix();
        let from = node.oldest_open_epoch();
        let Ok(open) = node.db.get().and_then(|db| store::unfinished_settled(&db, from)) else { continue };
        let timeout = ROUND_TIMEOUT_SLOTS * node.spec.slot_seconds;
        // An epoch became final (left the open set, not below the floor): a later one waiting for it
        // may apply now, so retry those at once (keeping their count of attempts).
        let open_now: BTreeSet<u64> = open.iter().copied().collect();
        if let Some(f) = open_before.iter().copied().filter(|e| *e >= from && !open_now.contains(e)).min() {
            for (at, _) in stalled.range_mut(f + 1..).map(|(_, s)| s) {
                *at = 0;
            }
        }
        open_before = open_now;
        for epoch in open {
            // A refused record will be refused again: do not fetch it every second.
            if node.refused.lock().expect("lock").contains(&epoch) {
                continue;
            }
            let round = *node.rounds.lock().expect("rounds lock").entry(epoch).or_insert(0);
            let due = node.spec.settle_at_unix(epoch) + timeout * (u64::from(round) + 1);
            if now < due || last_attempt.get(&epoch) == Some(&now) || stalled.get(&epoch).is_some_and(|(at, _)| now < *at) {
                continue;
            }
            last_attempt.insert(epoch, now);
            next_round(&node, epoch, round).await;
            if node.rounds.lock().expect("rounds lock").get(&epoch) == Some(&round) {
                // From the end of the attempt: asking every peer can take longer than the wait.
                let tries = stalled.get(&epoch).map_or(0, |s| s.1) + 1;
                stalled.insert(epoch, (node.clock.now_unix() + stalled_retry_secs(tries), tries));
            } else {
                stalled.remove(&epoch);
            }
        }
        last_attempt.retain(|e, _| *e >= from);
        stalled.retain(|e, _| *e >= from);
        node.rounds.lock().expect("rounds lock").retain(|e, _| *e >= from);
    }
}

/// Seconds before the next attempt on an epoch whose `tries` last attempts made no progress.
fn stalled_retry_secs(tries: u32) -> u64 {
    (1u64 << tries.min(6)).min(STALLED_RETRY_MAX_SECS)
}

/// Apply the certified settlements of the epochs before this node's first epoch, taken from
/// `peers` (in turn, until one serves each): a node that joins a running chain then credits the
/// rewards and transfers those epochs made, as every other node did, instead of starting every
/// balance at zero. Each certificate is verified against the validator set (`certified_from`) and
/// comes with its certified record. Alone (no validator set) there is no chain to join.
pub async fn catch_up_history(node: &Arc<Node>, net: &NetHandle, peers: Vec<PeerId>) {
    if node.certifies_alone() || node.first_epoch == 0 || peers.is_empty() {
        return;
    }
    let Ok(db) = node.db.get() else { return };
    let missing: Vec<u64> = (0..node.first_epoch).filter(|e| !store::is_applied(&db, *e).unwrap_or(true)).collect();
    drop(db);
    if missing.is_empty() {
        return;
    }
    tracing::info!(epochs = missing.len(), first = missing[0], last = missing[missing.len() - 1], "applying the certified epochs before this node's first");
    let (mut applied, mut unavailable) = (0usize, Vec::new());
    for (i, &epoch) in missing.iter().enumerate() {
        let mut done = false;
        for &peer in &peers {
            let Ok((cert, Some(record))) = certified_from(node, net, peer, epoch, None).await else { continue };
            match node.writer.certify(cert.clone(), Some(record)).await {
                Ok(Applied::Now { .. } | Applied::Before) => {
                    done = true;
                    break;
                }
                Ok(Applied::Conflict { tx_hash, judged_in }) => {
                    report_conflict(node, &cert, &tx_hash, judged_in);
                    done = true;
                    break;
                }
                Ok(Applied::Mismatch { .. }) => continue,
                Err(e) => {
                    tracing::error!(epoch, error = %e, "could not store a certificate");
                    return;
                }
            }
        }
        if done {
            applied += 1;
        } else {
            unavailable.push(epoch);
        }
        if (i + 1) % 100 == 0 {
            tracing::info!(done = i + 1, of = missing.len(), "applying earlier certified epochs");
        }
    }
    if unavailable.is_empty() {
        tracing::info!(epochs = applied, "applied every certified epoch before this node's first; balances are the chain's");
    } else {
        tracing::warn!(
            applied, unavailable = unavailable.len(), first_unavailable = unavailable[0],
            "no peer served some certified epochs before this node's first (connect to an archive node): balances leave out what those epochs paid"
        );
    }
}

/// Why a peer's answer to `GetEpoch` gave no certificate to take.
#[derive(Debug, PartialEq, Eq)]
pub enum NotTaken {
    /// The peer answered that it holds no certificate for the epoch.
    NoCertificate,
    /// No answer (busy, timed out, gone).
    NoAnswer,
    /// A certificate or record that does not hold: refused, counted, the peer penalised 50.
    Invalid,
}

/// Ask `peer` for `epoch`'s certificate and settlement record, and hand them back only if they
/// hold: the certificate is for this epoch (and for `announced`, when the peer announced a hash)
/// and verifies against the validator set (signatures, signers in the set, one round and hash, a
/// quorum), and a record, if served, is the certified one (its epoch and hash). Anything else is
/// refused whole, counted in `bad_certificates` and costs the peer 50 points. The one place a node
/// takes a certificate from a peer (rounds that time out, and verified epoch announcements); the
/// caller decides whether to apply it (`finalize`).
pub async fn certified_from(
    node: &Arc<Node>,
    net: &NetHandle,
    peer: PeerId,
    epoch: u64,
    announced: Option<Hash32>,
) -> Result<(EpochCertificate, Option<Settlement>), NotTaken> {
    let (settlement, cert) = match net.request(peer, Request::GetEpoch { epoch }).await {
        Ok(Response::Epoch { settlement, certificate: Some(cert) }) => (settlement, cert),
        Ok(Response::Epoch { certificate: None, .. }) => return Err(NotTaken::NoCertificate),
        _ => return Err(NotTaken::NoAnswer),
    };
    let refusal = if cert.epoch != epoch {
        Some(format!("a certificate of epoch {} when asked for {epoch}", cert.epoch))
    } else if announced.is_some_and(|h| h != cert.settlement_hash) {
        Some("a certificate for another hash than it announced".to_owned())
    } else if let Err(e) = cert.verify(&node.spec, &node.validators) {
        Some(format!("a certificate that does not verify: {e}"))
    } else if settlement.as_ref().is_some_and(|s| s.epoch != epoch || s.hash() != cert.settlement_hash) {
        Some("a settlement record that is not the certified one".to_owned())
    } else {
        None
    };
    match refusal {
        Some(why) => {
            node.counters.bad_certificates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, epoch, why, "BAD CERTIFICATE refused; nothing applied");
            net.penalize(peer, 50, format!("served epoch {epoch}: {why}"));
            Err(NotTaken::Invalid)
        }
        None => Ok((cert, settlement)),
    }
}

/// Whether an `INV_EPOCH` is worth any work here: an epoch this node still works on (the
/// window of the rounds, `Node::oldest_open_epoch`) and not one that has not even ended on our
/// clock. Anything else is ignored: not forwarded, not held against the sender (its clock may
/// differ a little from ours).
pub fn epoch_announcement_in_window(node: &Node, epoch: u64) -> bool {
    let current = node.spec.epoch_at(node.clock.now_unix());
    epoch < current && epoch >= node.oldest_open_epoch()
}

/// A peer says it certified an epoch (`INV_EPOCH`). Verified before it is forwarded: if this node
/// holds the epoch's certificate, the announced hash must be the certified one; if not, the
/// announcer must serve a certificate for that hash that verifies (which this node then applies).
/// A contradicted or undeliverable announcement is rejected and its sender penalised 50. Only a
/// verified announcement whose registry digest differs from ours starts a reconcile with the
/// sender. Alone (no validator set), no peer's certificate means anything here: the announcement
/// is not forwarded, but its digest still starts a reconcile.
pub async fn on_epoch(node: &Arc<Node>, net: &NetHandle, msg_id: libp2p::gossipsub::MessageId, source: PeerId, inv: InvEpoch) {
    let report = |acceptance| net.send(Command::Report { msg_id: msg_id.clone(), source, acceptance });
    let held = match node.db.get().and_then(|db| store::certificate(&db, inv.epoch)) {
        Ok(held) => held,
        Err(_) => return report(MessageAcceptance::Ignore),
    };
    let acceptance = match held {
        _ if node.certifies_alone() => MessageAcceptance::Ignore,
        Some(cert) if cert.settlement_hash == inv.settlement_hash.0 => MessageAcceptance::Accept,
        held => match certified_from(node, net, source, inv.epoch, Some(inv.settlement_hash.0)).await {
            Ok((cert, settlement)) => match held {
                None => {
                    finalize(node, cert, settlement).await;
                    MessageAcceptance::Accept
                }
                // Another hash than the one certified here. A second certificate for an epoch needs
                // more than f equivocators in one round, or honest validators that re-voted in a
                // later round before the first certificate reached them (PROTOCOL.md §12): a split,
                // not the announcer's offence. Never applied: the first certificate here stands.
                Some(ours) => {
                    tracing::error!(
                        epoch = inv.epoch, peer = %source, ours = %hex::encode(ours.settlement_hash), theirs = %hex::encode(inv.settlement_hash.0),
                        "CERTIFICATE SPLIT: a peer holds a valid certificate for another hash of this epoch; the first one applied here stands"
                    );
                    MessageAcceptance::Ignore
                }
            },
            Err(NotTaken::Invalid) => MessageAcceptance::Reject,
            // It announced a certificate it does not have: false.
            Err(NotTaken::NoCertificate) => {
                net.penalize(source, 50, format!("announced epoch {} certified but served no certificate for it", inv.epoch));
                MessageAcceptance::Reject
            }
            // Busy, timed out or gone: not proven wrong.
            Err(NotTaken::NoAnswer) => MessageAcceptance::Ignore,
        },
    };
    report(acceptance);
    if acceptance == MessageAcceptance::Reject {
        return;
    }
    let Ok(digest) = node.db.get().and_then(|db| store::epoch_digest(&db, inv.epoch)) else { return };
    if digest.root() != inv.registry_digest.0 {
        tracing::debug!(epoch = inv.epoch, peer = %source, mine = digest.count, theirs = inv.records, "registry differs from a peer's; reconciling");
        let _ = replication::reconcile(node, net, source, inv.epoch).await;
    }
}

async fn next_round(node: &Arc<Node>, epoch: u64, round: u32) {
    if let Some(net) = node.net.clone() {
        // A certificate formed elsewhere? Fetch it (and the record) from peers; alone, no peer's
        // certificate can certify anything here.
        let peers = if node.certifies_alone() { Vec::new() } else { net.state.connected_peers() };
        for peer in peers {
            if let Ok((cert, settlement)) = certified_from(node, &net, peer, epoch, None).await {
                finalize(node, cert, settlement).await;
                return;
            }
        }
        // Otherwise sync the registry (and the previous certificate) and vote again.
        pull_epoch(node, epoch).await;
    }
    if round + 1 >= MAX_ROUNDS {
        return;
    }
    let Ok((s, _)) = node.writer.settle(epoch).await else { return };
    node.rounds.lock().expect("rounds lock").insert(epoch, round + 1);
    if node.is_validator {
        tracing::info!(epoch, round = round + 1, "no certificate yet; voting again");
        cast_vote(node, epoch, round + 1, s.hash()).await;
    }
    check(node, epoch).await;
}

/// Epoch `cert.epoch` was certified and applied here just now: wake the anchoring task and tell
/// the live feed (with the certified record, as stored).
fn on_certified(node: &Arc<Node>, cert: &EpochCertificate) {
    node.anchor_wake.notify_one();
    let record = node.db.get().and_then(|db| store::settlement(&db, cert.epoch)).ok().flatten();
    crate::events::certified(&node.events, cert, record.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_epoch_is_retried_less_and_less_often_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(stalled_retry_secs).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 32, 32, 32]);
        assert_eq!(stalled_retry_secs(u32::MAX), STALLED_RETRY_MAX_SECS);
    }
}
