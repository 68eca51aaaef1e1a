//! The one task that owns the libp2p swarm. Everything else talks to it through a bounded command
//! channel (`NetHandle`) and hears from it through a bounded event channel; read-mostly state (the
//! peer table, sync status) sits in `NetState` for the HTTP API. Inbound sync requests are answered
//! from the database off this task (blocking threads, a few at a time, a bounded queue), and the
//! answers handed back to it to send; gossip is decoded and checked here, then handed to
//! `replication/mod.rs`, which reports the validation result back once the records it names are fetched and
//! verified.

pub mod behaviour;
pub mod budget;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, ping};
use protocol::consensus::{ValidatorKey, Vote, VoteError};
use protocol::wire::{self, Id, InvAttestation, InvEpoch, Request, Response};
use protocol::{ChainSpec, Hash32};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::net::behaviour::{Behaviour, BehaviourEvent, Role};
use crate::clock::Clock;
use crate::store::{self, DbHandle};

/// Own-score points below which a peer is banned (disconnected and blocked).
pub const BAN_THRESHOLD: i32 = -100;
/// Gossip messages per peer per second beyond which the excess is dropped and penalised.
pub const MAX_GOSSIP_PER_SECOND: u32 = 200;
/// Sync requests answered from the database at once (each on a blocking thread).
const ANSWERING: usize = 4;
/// Sync requests accepted and not answered yet (waiting for a slot, being read, or on their way
/// back), in all and per peer; beyond either a request is answered `BUSY` at once. A request
/// still waiting when its requester's 20 s timeout closes it is dropped unread.
const MAX_QUEUED_ANSWERS: usize = 1024;
const MAX_QUEUED_ANSWERS_PER_PEER: usize = 32;
/// How often a node with no peer at all dials its bootnodes again.
const REDIAL_EVERY: Duration = Duration::from_secs(5);

pub enum Command {
    PublishAttestations(Vec<Hash32>),
    PublishEpoch(InvEpoch),
    PublishVote(Vote),
    Report { msg_id: MessageId, source: PeerId, acceptance: MessageAcceptance },
    Request { peer: PeerId, req: Request, reply: oneshot::Sender<Result<Response, String>> },
    Penalize { peer: PeerId, points: i32, reason: String },
}

pub enum NetEvent {
    /// A well-formed `INV_ATTESTATION`; replication/mod.rs must report a validation result for `msg_id`.
    Inv { msg_id: MessageId, source: PeerId, ids: Vec<Hash32> },
    /// A well-formed `INV_EPOCH`; replication/mod.rs verifies it and must report a result for `msg_id`.
    Epoch { msg_id: MessageId, source: PeerId, inv: InvEpoch },
    /// A vote from a validator, signature verified (already accepted for forwarding).
    Vote(Vote),
    Connected(PeerId),
}

/// One row of `/api/p2p/status`.
#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub address: String,
    pub role: Option<String>,
    pub agent: Option<String>,
    pub last_seen: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub latency_ms: Option<u64>,
    pub score: i32,
}

/// State the HTTP API reads without a round trip to the swarm task.
pub struct NetState {
    pub local_peer_id: PeerId,
    pub role: Role,
    pub listen_addrs: RwLock<Vec<String>>,
    pub peers: RwLock<BTreeMap<PeerId, PeerInfo>>,
    pub synced: AtomicBool,
    /// No bootnodes were configured: this node may be alone by design.
    pub alone_by_config: bool,
    pub gossip_received: AtomicU64,
    pub gossip_sent: AtomicU64,
    pub gossip_rejected: AtomicU64,
    pub banned: AtomicU64,
}

impl NetState {
    pub fn peer_count(&self) -> usize {
        self.peers.read().expect("peer table lock").len()
    }
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.peers.read().expect("peer table lock").keys().copied().collect()
    }
}

/// The handle the rest of the node uses.
#[derive(Clone)]
pub struct NetHandle {
    cmd: mpsc::Sender<Command>,
    pub state: Arc<NetState>,
}

impl NetHandle {
    /// Queue a command; a full queue drops it (callers treat the network as best-effort).
    pub fn send(&self, c: Command) {
        if self.cmd.try_send(c).is_err() {
            tracing::debug!("network command queue full; dropped a command");
        }
    }

    pub async fn request(&self, peer: PeerId, req: Request) -> Result<Response, String> {
        let (reply, rx) = oneshot::channel();
        self.cmd.send(Command::Request { peer, req, reply }).await.map_err(|_| "network stopped".to_string())?;
        rx.await.map_err(|_| "network stopped".to_string())?
    }

    pub fn penalize(&self, peer: PeerId, points: i32, reason: impl Into<String>) {
        self.send(Command::Penalize { peer, points, reason: reason.into() });
    }
}

pub struct NetConfig {
    pub listen: Multiaddr,
    pub bootnodes: Vec<Multiaddr>,
    pub role: Role,
    pub history_epochs: u64,
}

/// Start listening and dialing; returns the handle, the event stream and the task.
pub fn start(
    mut swarm: Swarm<Behaviour>,
    cfg: NetConfig,
    spec: ChainSpec,
    validators: BTreeSet<ValidatorKey>,
    db: Arc<DbHandle>,
    metrics: libp2p::metrics::Metrics,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(NetHandle, mpsc::Receiver<NetEvent>, tokio::task::JoinHandle<()>)> {
    let att_topic = IdentTopic::new(wire::attestation_topic(&spec.network_id));
    let epoch_topic = IdentTopic::new(wire::epoch_topic(&spec.network_id));
    let vote_topic = IdentTopic::new(wire::vote_topic(&spec.network_id));
    swarm.behaviour_mut().gossipsub.subscribe(&att_topic)?;
    swarm.behaviour_mut().gossipsub.subscribe(&epoch_topic)?;
    swarm.behaviour_mut().gossipsub.subscribe(&vote_topic)?;
    swarm.listen_on(cfg.listen.clone())?;
    for addr in &cfg.bootnodes {
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootnode");
        }
    }
    let state = Arc::new(NetState {
        local_peer_id: *swarm.local_peer_id(),
        role: cfg.role,
        listen_addrs: RwLock::new(Vec::new()),
        peers: RwLock::new(BTreeMap::new()),
        synced: AtomicBool::new(false),
        alone_by_config: cfg.bootnodes.is_empty(),
        gossip_received: AtomicU64::new(0),
        gossip_sent: AtomicU64::new(0),
        gossip_rejected: AtomicU64::new(0),
        banned: AtomicU64::new(0),
    });
    let (cmd_tx, cmd_rx) = mpsc::channel(4096);
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    // Never full: at most MAX_QUEUED_ANSWERS answers are outstanding.
    let (answered_tx, answered_rx) = mpsc::channel(MAX_QUEUED_ANSWERS);
    let task = EventLoop {
        swarm,
        state: state.clone(),
        spec: Arc::new(spec),
        db,
        answering: Arc::new(Semaphore::new(ANSWERING)),
        answers_out: HashMap::new(),
        answered: answered_tx,
        role: cfg.role,
        history_epochs: cfg.history_epochs,
        att_topic,
        epoch_topic,
        vote_topic,
        validators,
        events: ev_tx,
        pending: HashMap::new(),
        scores: HashMap::new(),
        rate: HashMap::new(),
        bootnodes: cfg.bootnodes,
        metrics,
    };
    let handle = tokio::spawn(task.run(cmd_rx, answered_rx, stop));
    Ok((NetHandle { cmd: cmd_tx, state }, ev_rx, handle))
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    state: Arc<NetState>,
    /// Shared with the tasks that answer sync requests.
    spec: Arc<ChainSpec>,
    db: Arc<DbHandle>,
    /// Slots for answering sync requests, the answers outstanding per peer, and where they come back.
    answering: Arc<Semaphore>,
    answers_out: HashMap<PeerId, usize>,
    answered: mpsc::Sender<Answered>,
    role: Role,
    history_epochs: u64,
    att_topic: IdentTopic,
    epoch_topic: IdentTopic,
    vote_topic: IdentTopic,
    validators: BTreeSet<ValidatorKey>,
    events: mpsc::Sender<NetEvent>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, String>>>,
    scores: HashMap<PeerId, i32>,
    /// Per-peer gossip count in the current one-second window.
    rate: HashMap<PeerId, (Instant, u32)>,
    bootnodes: Vec<Multiaddr>,
    /// libp2p's own metrics, in the node's one registry.
    metrics: libp2p::metrics::Metrics,
}

fn now_unix() -> u64 {
    Clock.now_unix()
}

impl EventLoop {
    async fn run(mut self, mut cmds: mpsc::Receiver<Command>, mut answered: mpsc::Receiver<Answered>, mut stop: watch::Receiver<bool>) {
        let mut maintenance = tokio::time::interval(Duration::from_secs(30));
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut redial = tokio::time::interval(REDIAL_EVERY);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                Some(c) = cmds.recv() => self.on_command(c),
                Some(a) = answered.recv() => self.on_answered(a),
                _ = maintenance.tick() => self.maintain(),
                _ = redial.tick() => self.redial_if_alone(),
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        // Leave the swarm: close every connection before the task ends.
        for peer in self.state.connected_peers() {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        tracing::info!("left the p2p network");
    }

    /// A node that lost every peer (a network partition, its peers restarted) dials its
    /// bootnodes again, every few seconds until one answers.
    fn redial_if_alone(&mut self) {
        if self.state.peer_count() == 0 {
            for addr in self.bootnodes.clone() {
                let _ = self.swarm.dial(addr);
            }
        }
    }

    fn maintain(&mut self) {
        // Bootnodes we are not connected to (one came back after we had found other peers).
        let connected = self.state.connected_peers();
        for addr in self.bootnodes.clone() {
            if let Some(Protocol::P2p(peer)) = addr.iter().last()
                && !connected.contains(&peer) && !connected.is_empty() {
                let _ = self.swarm.dial(addr);
            }
        }
        if self.state.peer_count() > 0 {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
        let cutoff = Instant::now() - Duration::from_secs(5);
        self.rate.retain(|_, (t, _)| *t > cutoff);
        let connected = self.state.connected_peers();
        self.scores.retain(|p, s| *s != 0 && connected.contains(p));
    }

    fn peer_mut<R>(&self, peer: &PeerId, f: impl FnOnce(&mut PeerInfo) -> R) -> Option<R> {
        self.state.peers.write().expect("peer table lock").get_mut(peer).map(f)
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::PublishAttestations(ids) => {
                for chunk in ids.chunks(wire::MAX_IDS_PER_MESSAGE) {
                    let inv = InvAttestation { ids: chunk.iter().map(|i| Id(*i)).collect() };
                    self.publish(self.att_topic.clone(), inv.encode());
                }
            }
            Command::PublishEpoch(inv) => self.publish(self.epoch_topic.clone(), inv.encode()),
            Command::PublishVote(v) => self.publish(self.vote_topic.clone(), wire::encode_vote(&v)),
            Command::Report { msg_id, source, acceptance } => {
                if matches!(acceptance, MessageAcceptance::Reject) {
                    self.state.gossip_rejected.fetch_add(1, Ordering::Relaxed);
                }
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&msg_id, &source, acceptance);
            }
            Command::Request { peer, req, reply } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, req);
                self.peer_mut(&peer, |p| p.messages_sent += 1);
                self.pending.insert(id, reply);
            }
            Command::Penalize { peer, points, reason } => self.penalize(peer, points, &reason),
        }
    }

    fn publish(&mut self, topic: IdentTopic, data: Vec<u8>) {
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) => {
                self.state.gossip_sent.fetch_add(1, Ordering::Relaxed);
            }
            // Peers that miss an announcement catch up through anti-entropy.
            Err(e) => tracing::debug!(error = %e, "gossip publish skipped"),
        }
    }

    fn penalize(&mut self, peer: PeerId, points: i32, reason: &str) {
        let score = self.scores.entry(peer).or_insert(0);
        *score -= points;
        let score = *score;
        tracing::warn!(%peer, points, score, reason, "peer penalised");
        self.peer_mut(&peer, |p| p.score = score);
        if score <= BAN_THRESHOLD {
            tracing::warn!(%peer, score, "peer banned: disconnected and blocked");
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            self.state.banned.fetch_add(1, Ordering::Relaxed);
            self.state.peers.write().expect("peer table lock").remove(&peer);
        }
    }

    /// Count a gossip message from `peer`; false when it exceeds the per-second budget.
    fn within_rate(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        let entry = self.rate.entry(peer).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= MAX_GOSSIP_PER_SECOND
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        self.metrics.record(&ev);
        match &ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.metrics.record(e),
            _ => {}
        }
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(self.state.local_peer_id));
                tracing::info!(addr = %full, "p2p listening");
                self.state.listen_addrs.write().expect("lock").push(full.to_string());
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. }
                if num_established.get() == 1 => {
                let address = endpoint.get_remote_address().to_string();
                tracing::info!(peer = %peer_id, %address, "peer connected");
                self.state.peers.write().expect("lock").insert(peer_id, PeerInfo {
                    peer_id: peer_id.to_string(),
                    address,
                    role: None,
                    agent: None,
                    last_seen: now_unix(),
                    messages_sent: 0,
                    messages_received: 0,
                    latency_ms: None,
                    score: self.scores.get(&peer_id).copied().unwrap_or(0),
                });
                let _ = self.events.try_send(NetEvent::Connected(peer_id));
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                tracing::info!(peer = %peer_id, cause = ?cause.map(|c| c.to_string()), "peer disconnected");
                self.state.peers.write().expect("lock").remove(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                if info.protocol_version != wire::identify_protocol(&self.spec.network_id) {
                    tracing::warn!(peer = %peer_id, theirs = %info.protocol_version, "peer is on another network; disconnecting");
                    self.swarm.behaviour_mut().blocked.block_peer(peer_id);
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                for addr in &info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr.clone());
                }
                let role = info.agent_version.rsplit('/').next().map(str::to_owned);
                self.peer_mut(&peer_id, |p| {
                    p.agent = Some(info.agent_version.clone());
                    p.role = role;
                    p.last_seen = now_unix();
                });
            }
            // A connection whose pings go unanswered is dead (the peer's network is gone, not just
            // its process, so nothing closed it): close it, so that a cut-off node counts no
            // phantom peers and dials its bootnodes again once the network is back.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, connection, result: Err(e) }))
                if !matches!(e, ping::Failure::Unsupported) => {
                tracing::info!(%peer, error = %e, "peer stopped answering pings; closing the connection");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                self.peer_mut(&peer, |p| {
                    p.latency_ms = Some(rtt.as_millis() as u64);
                    p.last_seen = now_unix();
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })) => {
                tracing::debug!(%peer, "kademlia routing table updated");
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, msg_id: MessageId, message: gossipsub::Message) {
        self.state.gossip_received.fetch_add(1, Ordering::Relaxed);
        self.peer_mut(&source, |p| {
            p.messages_received += 1;
            p.last_seen = now_unix();
        });
        let report = |s: &mut Self, acceptance| s.on_command(Command::Report { msg_id: msg_id.clone(), source, acceptance });
        if !self.within_rate(source) {
            report(self, MessageAcceptance::Ignore);
            self.penalize(source, 1, "gossip flood");
            return;
        }
        if message.topic == self.att_topic.hash() {
            match InvAttestation::decode(&message.data) {
                Ok(inv) => {
                    let ids = inv.ids.into_iter().map(|i| i.0).collect();
                    if let Err(e) = self.events.try_send(NetEvent::Inv { msg_id: msg_id.clone(), source, ids }) {
                        // Overloaded: neither forward nor punish; anti-entropy fills the gap.
                        drop(e);
                        report(self, MessageAcceptance::Ignore);
                    }
                }
                Err(e) => {
                    report(self, MessageAcceptance::Reject);
                    self.penalize(source, 20, &format!("malformed INV_ATTESTATION: {e}"));
                }
            }
        } else if message.topic == self.epoch_topic.hash() {
            match InvEpoch::decode(&message.data) {
                Ok(inv) => {
                    if self.events.try_send(NetEvent::Epoch { msg_id: msg_id.clone(), source, inv }).is_err() {
                        report(self, MessageAcceptance::Ignore);
                    }
                }
                Err(e) => {
                    report(self, MessageAcceptance::Reject);
                    self.penalize(source, 20, &format!("malformed INV_EPOCH: {e}"));
                }
            }
        } else if message.topic == self.vote_topic.hash() {
            let decoded = wire::decode_vote(&message.data).map_err(|e| e.to_string());
            let verified = decoded.and_then(|v| match v.verify(&self.spec, &self.validators) {
                Ok(()) => Ok(Some(v)),
                // A chain spec without a validator set makes every node its own validator: the
                // others' votes mean nothing here, but sending them is no offence.
                Err(VoteError::NotAValidator) if self.spec.validators.is_empty() => Ok(None),
                Err(e) => Err(e.to_string()),
            });
            match verified {
                Ok(None) => report(self, MessageAcceptance::Ignore),
                Ok(Some(vote)) => {
                    report(self, MessageAcceptance::Accept);
                    if self.events.try_send(NetEvent::Vote(vote)).is_err() {
                        tracing::warn!("event queue full: a vote was not tallied (round timeouts will catch up)");
                    }
                }
                Err(e) => {
                    report(self, MessageAcceptance::Reject);
                    self.penalize(source, 50, &format!("invalid vote: {e}"));
                }
            }
        } else {
            report(self, MessageAcceptance::Reject);
            self.penalize(source, 20, "gossip on an unknown topic");
        }
    }

    fn on_sync(&mut self, ev: request_response::Event<Request, Response>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.peer_mut(&peer, |p| {
                        p.messages_received += 1;
                        p.last_seen = now_unix();
                    });
                    self.answer_later(peer, request, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    self.peer_mut(&peer, |p| p.messages_received += 1);
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                tracing::debug!(%peer, error = %error, "sync request failed");
                // The codec refused the answer: larger than the request allows, malformed, or
                // another request's kind of answer (net::behaviour::SyncCodec). A timeout is not an offence.
                if let request_response::OutboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.penalize(peer, 20, &format!("bad sync answer: {e}"));
                }
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // Malformed or oversized requests land here (the codec refused them).
                if matches!(error, request_response::InboundFailure::Io(_)) {
                    self.penalize(peer, 20, &format!("bad sync request: {error}"));
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// A sync request answered off the swarm task, on its way back to be sent.
struct Answered {
    peer: PeerId,
    channel: ResponseChannel<Response>,
    /// None: not read, nobody was waiting for it.
    response: Option<Response>,
}

impl EventLoop {
    /// Answer `request` on a blocking thread (a large settlement record takes a while to read and
    /// decode, and gossip must not wait for it). An abusive request is refused and penalised now;
    /// a full queue answers `BUSY` now.
    fn answer_later(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        if let Some((response, reason)) = refuse(&request) {
            self.penalize(peer, 10, reason);
            self.respond(peer, channel, response);
            return;
        }
        let mine = self.answers_out.get(&peer).copied().unwrap_or(0);
        if mine >= MAX_QUEUED_ANSWERS_PER_PEER || self.answers_out.values().sum::<usize>() >= MAX_QUEUED_ANSWERS {
            tracing::debug!(%peer, "too many sync requests waiting; answered BUSY");
            self.respond(peer, channel, Response::Error { code: "BUSY".to_owned() });
            return;
        }
        self.answers_out.insert(peer, mine + 1);
        let (db, spec, role, history_epochs) = (self.db.clone(), self.spec.clone(), self.role, self.history_epochs);
        let (slots, back) = (self.answering.clone(), self.answered.clone());
        tokio::spawn(async move {
            let slot = slots.acquire_owned().await;
            // Nobody to answer any more (the requester timed out, or the node is stopping): skip the read.
            let response = if slot.is_err() || !channel.is_open() || back.is_closed() {
                None
            } else {
                match tokio::task::spawn_blocking(move || answer(&db, &spec, role, history_epochs, request)).await {
                    Ok(response) => Some(response),
                    Err(e) => {
                        tracing::error!(error = %e, "answering a sync request failed");
                        Some(Response::Error { code: "UNAVAILABLE".to_owned() })
                    }
                }
            };
            drop(slot);
            let _ = back.send(Answered { peer, channel, response }).await;
        });
    }

    fn on_answered(&mut self, a: Answered) {
        if let Some(n) = self.answers_out.get_mut(&a.peer) {
            *n -= 1;
            if *n == 0 {
                self.answers_out.remove(&a.peer);
            }
        }
        if let Some(response) = a.response {
            self.respond(a.peer, a.channel, response);
        }
    }

    fn respond(&mut self, peer: PeerId, channel: ResponseChannel<Response>, response: Response) {
        let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
        self.peer_mut(&peer, |p| p.messages_sent += 1);
    }
}

/// A request refused without reading anything, and why it is abusive.
fn refuse(req: &Request) -> Option<(Response, &'static str)> {
    let error = |code: &str| Response::Error { code: code.to_owned() };
    match req {
        Request::BucketIds { buckets, .. } if buckets.len() > crdt::BUCKETS => Some((error("TOO_MANY_BUCKETS"), "BucketIds with too many buckets")),
        Request::SyncPage { from_epoch, to_epoch, .. } if from_epoch > to_epoch => Some((error("BAD_RANGE"), "SyncPage with an empty range")),
        _ => None,
    }
}

/// Answer a sync request from the database; [`refuse`] has passed it.
fn answer(db: &DbHandle, spec: &ChainSpec, role: Role, history_epochs: u64, req: Request) -> Response {
    let error = |code: &str| Response::Error { code: code.to_owned() };
    let db = match db.get() {
        Ok(db) => db,
        Err(_) => return error("UNAVAILABLE"),
    };
    let db = &*db;
    let current = spec.epoch_at(now_unix());
    let oldest_served = if role == Role::Archive { 0 } else { current.saturating_sub(history_epochs) };
    let result = match req {
        Request::GetAttestations { ids } => {
            let ids: Vec<Hash32> = ids.into_iter().map(|i| i.0).collect();
            store::records_by_ids(db, &ids, wire::MAX_RECORDS_PER_RESPONSE, wire::MAX_PAGE_BYTES - 4096)
                .map(|r| Response::Attestations { records: r.attestations, transfers: r.transfers, admin: r.admin })
        }
        Request::GetEpoch { epoch } => store::settlement(db, epoch).and_then(|settlement| {
            let certificate = store::certificate(db, epoch)?;
            // Once a certificate is held, only the certified record goes with it: a node whose own
            // provisional record lost to the certificate (it lacked records) keeps that record
            // until it resolves the mismatch, and must not pass it off as the certified one (a
            // peer would refuse the answer and penalise it, consensus::certified_from). A final
            // epoch's record is the certified one (apply_certificate stored it), so only a
            // certified but not yet applied epoch's record is hashed to tell.
            let settlement = match &certificate {
                Some(c) if !store::is_applied(db, epoch)? => settlement.filter(|s| s.hash() == c.settlement_hash),
                _ => settlement,
            };
            Ok(Response::Epoch { settlement, certificate })
        }),
        Request::EpochDigest { epoch } => store::epoch_digest(db, epoch).map(|d| Response::Digest {
            epoch,
            buckets: d.buckets.into_iter().map(|(b, h)| (b, Id(h))).collect(),
            records: d.count,
        }),
        Request::BucketIds { epoch, buckets } => {
            let mut buckets = buckets;
            buckets.sort_unstable();
            store::epoch_ids(db, epoch).map(|ids| {
                let ids: Vec<(u64, Id)> = ids
                    .into_iter()
                    .filter(|id| buckets.binary_search(&crdt::bucket_of(id)).is_ok())
                    .take(wire::MAX_IDS_PER_PAGE * 8)
                    .map(|id| (epoch, Id(id)))
                    .collect();
                Response::Page { ids, next: None }
            })
        }
        Request::SyncPage { from_epoch, to_epoch, after, limit } => {
            if from_epoch < oldest_served {
                return error("OUT_OF_HISTORY");
            }
            let limit = (limit as usize).clamp(1, wire::MAX_IDS_PER_PAGE);
            store::epoch_ids_page(db, from_epoch, to_epoch, after.map(|(e, id)| (e, id.0)), limit).map(|(ids, next)| {
                Response::Page { ids: ids.into_iter().map(|(e, id)| (e, Id(id))).collect(), next: next.map(|(e, id)| (e, Id(id))) }
            })
        }
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot answer a sync request");
            error("UNAVAILABLE")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Option<(Response, &'static str)>) -> Option<String> {
        r.map(|(resp, _)| match resp {
            Response::Error { code } => code,
            _ => "not an error".to_owned(),
        })
    }

    #[test]
    fn abusive_sync_requests_are_refused_before_any_read_and_fair_ones_are_not() {
        // Too many ids never reach `refuse`: the codec (`Request::decode`) refuses the request.
        let ids = |n: usize| Request::GetAttestations { ids: vec![Id([1; 32]); n] };
        assert!(matches!(Request::decode(&ids(wire::MAX_IDS_PER_MESSAGE + 1).encode()), Err(wire::WireError::TooManyIds(_))));
        assert_eq!(code(refuse(&ids(wire::MAX_IDS_PER_MESSAGE))), None);
        let buckets = |n: usize| Request::BucketIds { epoch: 1, buckets: vec![0; n] };
        assert_eq!(code(refuse(&buckets(crdt::BUCKETS + 1))).as_deref(), Some("TOO_MANY_BUCKETS"));
        assert_eq!(code(refuse(&buckets(crdt::BUCKETS))), None);
        let page = |from_epoch, to_epoch| Request::SyncPage { from_epoch, to_epoch, after: None, limit: 10 };
        assert_eq!(code(refuse(&page(5, 4))).as_deref(), Some("BAD_RANGE"));
        assert_eq!(code(refuse(&page(4, 4))), None);
        assert_eq!(code(refuse(&Request::GetEpoch { epoch: 7 })), None);
    }

    /// A node whose own record of an epoch lost to the certificate serves the certificate alone:
    /// its record is not the certified one, and a peer would refuse the answer and penalise it.
    #[test]
    fn get_epoch_serves_a_record_with_a_certificate_only_when_it_is_the_certified_one() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ChainSpec::builtin("devnet").unwrap();
        let path = dir.path().join("db.redb");
        let db = DbHandle::new(store::open(&path, &spec, 5, 1 << 20).unwrap(), move || store::open_file(&path));
        let ask = |epoch| match answer(&db, &spec, Role::Relay, 10, Request::GetEpoch { epoch }) {
            Response::Epoch { settlement, certificate } => (settlement.map(|s| s.hash()), certificate.map(|c| c.settlement_hash)),
            other => panic!("{other:?}"),
        };
        let cert = |epoch, hash| protocol::consensus::EpochCertificate { epoch, round: 0, settlement_hash: hash, votes: vec![] };
        let w = db.get().unwrap().begin_write().unwrap();
        let (ours, _) = store::settle_epoch(&w, &spec, 6).unwrap();
        let (mine, _) = store::settle_epoch(&w, &spec, 7).unwrap();
        store::apply_certificate(&w, &cert(6, [9; 32]), None).unwrap();
        store::apply_certificate(&w, &cert(7, mine.hash()), None).unwrap();
        w.commit().unwrap();
        assert_eq!(ask(6), (None, Some([9; 32])), "a record that lost to the certificate went with it");
        assert_eq!(ask(7), (Some(mine.hash()), Some(mine.hash())));
        assert_ne!(ours.hash(), [9; 32]);
    }
}
