//! The libp2p behaviour and its configuration, built in one place: transports, gossipsub (with
//! presets and peer scoring), Kademlia, identify, ping, the sync request-response protocol,
//! connection limits and the block list. No application logic: `net/mod.rs` drives it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub, identify, identity, kad, noise, ping, tcp, yamux};
use protocol::crypto::{Keypair, sha256};
use protocol::wire::{self, Request, Response};
use serde::{Deserialize, Serialize};

/// What a node does in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Bootstrap peer: accepts attestations, settles, anchors.
    Primary,
    /// Gossip, sync and the miner HTTP API; serves recent history.
    Relay,
    /// A relay that keeps and serves all history.
    Archive,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Relay => "relay",
            Role::Archive => "archive",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "primary" => Ok(Role::Primary),
            "relay" => Ok(Role::Relay),
            "archive" => Ok(Role::Archive),
            other => Err(format!("unknown role {other:?} (primary, relay, archive)")),
        }
    }
}

/// Gossipsub mesh sizes. The defaults do not even form a mesh on a three-node network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GossipPreset {
    /// 2-5 nodes (local testnets).
    Tiny,
    /// Up to a few dozen nodes.
    Small,
    /// gossipsub's defaults: large networks.
    Large,
}

impl GossipPreset {
    /// (mesh_n_low, mesh_n, mesh_n_high, mesh_outbound_min)
    fn mesh(self) -> (usize, usize, usize, usize) {
        match self {
            GossipPreset::Tiny => (1, 2, 4, 1),
            GossipPreset::Small => (3, 4, 8, 1),
            GossipPreset::Large => (5, 6, 12, 2),
        }
    }
}

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub sync: request_response::Behaviour<SyncCodec>,
}

/// The libp2p identity of a node: the same Ed25519 key that signs its receipts.
pub fn identity_of(key: &Keypair) -> identity::Keypair {
    identity::Keypair::ed25519_from_bytes(key.seed()).expect("a 32-byte Ed25519 seed is always valid")
}

/// The gossipsub configuration: content-addressed ids, explicit validation, size limit, preset mesh.
pub fn gossipsub_config(preset: GossipPreset, heartbeat: Duration) -> Result<gossipsub::Config, String> {
    let (low, n, high, outbound) = preset.mesh();
    gossipsub::ConfigBuilder::default()
        .heartbeat_interval(heartbeat)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::from(sha256(&m.data)[..20].to_vec()))
        .max_transmit_size(wire::MAX_GOSSIP_BYTES)
        .mesh_n_low(low)
        .mesh_n(n)
        .mesh_n_high(high)
        .mesh_outbound_min(outbound)
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

/// Peer scoring: invalid messages (reported `Reject`) push a peer below the graylist threshold.
fn peer_score(network_id: &str) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut params = gossipsub::PeerScoreParams::default();
    for topic in [wire::attestation_topic(network_id), wire::epoch_topic(network_id)] {
        let t = gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            invalid_message_deliveries_weight: -20.0,
            invalid_message_deliveries_decay: 0.5,
            // Neither our first-delivery nor mesh-delivery counters reward or punish honest silence.
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            ..Default::default()
        };
        params.topics.insert(gossipsub::IdentTopic::new(topic).hash(), t);
    }
    (params, gossipsub::PeerScoreThresholds::default())
}

pub struct SwarmSettings {
    pub network_id: String,
    pub role: Role,
    pub preset: GossipPreset,
    pub max_peers: u32,
    pub heartbeat: Duration,
}

pub fn agent_version(role: Role) -> String {
    format!("rustchain/{}/{}", env!("CARGO_PKG_VERSION"), role.as_str())
}

/// Build the swarm. Topics are subscribed by the caller. Bootnodes may be `/dns4/` names when the
/// host has a resolver configuration (`/etc/resolv.conf`; docker provides one in every container).
pub fn build_swarm(key: &Keypair, s: &SwarmSettings) -> anyhow::Result<Swarm<Behaviour>> {
    let transport = libp2p::SwarmBuilder::with_existing_identity(identity_of(key))
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?;
    let config = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(300));
    let swarm = if std::path::Path::new(RESOLV_CONF).exists() {
        let with_dns = transport.with_dns().with_context(|| format!("reading the DNS configuration {RESOLV_CONF}"))?;
        with_dns.with_behaviour(|key| behaviour(key, s))?.with_swarm_config(config).build()
    } else {
        tracing::info!("no {RESOLV_CONF}: bootnodes must be IP addresses (/dns4/ names cannot be resolved)");
        transport.with_behaviour(|key| behaviour(key, s))?.with_swarm_config(config).build()
    };
    Ok(swarm)
}

const RESOLV_CONF: &str = "/etc/resolv.conf";

fn behaviour(key: &identity::Keypair, s: &SwarmSettings) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    let gs_config = gossipsub_config(s.preset, s.heartbeat)?;
    let (score_params, thresholds) = peer_score(&s.network_id);
    let mut gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gs_config)?;
    gossipsub.with_peer_score(score_params, thresholds)?;
    let kad_proto = StreamProtocol::try_from_owned(wire::kad_protocol(&s.network_id))?;
    let mut kad = kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad::Config::new(kad_proto));
    kad.set_mode(Some(kad::Mode::Server));
    let identify = identify::Behaviour::new(
        identify::Config::new(wire::identify_protocol(&s.network_id), key.public()).with_agent_version(agent_version(s.role)),
    );
    let sync = request_response::Behaviour::with_codec(
        SyncCodec::default(),
        [(StreamProtocol::try_from_owned(wire::sync_protocol(&s.network_id))?, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(20)).with_max_concurrent_streams(64),
    );
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(s.max_peers))
        .with_max_established_per_peer(Some(2))
        .with_max_pending_incoming(Some(32));
    Ok(Behaviour {
        blocked: Default::default(),
        limits: connection_limits::Behaviour::new(limits),
        gossipsub,
        kad,
        identify,
        // Two pings in a row unanswered (libp2p forgives the first) close the connection: a
        // dead connection is noticed within about 25 s (net/mod.rs).
        ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(5)).with_timeout(Duration::from_secs(10))),
        sync,
    })
}

/// The sync protocol's codec: CBOR, as libp2p's `cbor` codec writes it, but an answer is read only
/// up to the limit of the request it answers (`wire::RequestKind::answer_limit`) and must be that
/// request's kind of answer. A request-response stream carries one request and its answer, and
/// libp2p writes the request and reads the answer with one clone of the codec, so the clone knows
/// what it asked. Anything larger, malformed or of another kind is an `InvalidData` error: the
/// network task penalises the peer that sent it.
#[derive(Clone, Default)]
pub struct SyncCodec {
    asked: Option<wire::RequestKind>,
}

async fn read_at_most<T: futures::AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> std::io::Result<Vec<u8>> {
    use futures::AsyncReadExt as _;
    let mut bytes = Vec::new();
    io.take(limit as u64 + 1).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

fn invalid(e: wire::WireError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Request> {
        Request::decode(&read_at_most(io, wire::MAX_REQUEST_BYTES).await?).map_err(invalid)
    }

    async fn read_response<T: futures::AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Response> {
        let kind = self.asked.ok_or_else(|| std::io::Error::other("an answer read before any request was written"))?;
        let bytes = read_at_most(io, kind.answer_limit()).await?;
        // No answer at all: the peer closed the stream (it is stopping), which is no offence.
        if bytes.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the peer closed the stream without an answer"));
        }
        Response::decode_answer(kind, &bytes).map_err(invalid)
    }

    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T, req: Request) -> std::io::Result<()> {
        use futures::AsyncWriteExt as _;
        self.asked = Some(req.kind());
        io.write_all(&req.encode()).await
    }

    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T, res: Response) -> std::io::Result<()> {
        use futures::AsyncWriteExt as _;
        io.write_all(&res.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codec reads no more of an answer than the request it wrote allows, so an oversized
    /// answer is refused after `limit + 1` bytes, undecoded, however much the peer sends.
    #[tokio::test]
    async fn an_answer_is_read_only_up_to_its_requests_limit() {
        use request_response::Codec as _;
        let proto = StreamProtocol::new("/test");
        let mut codec = SyncCodec::default();
        let mut sent = Vec::new();
        codec.write_request(&proto, &mut sent, Request::EpochDigest { epoch: 3 }).await.unwrap();
        assert_eq!(Request::decode(&sent).unwrap(), Request::EpochDigest { epoch: 3 });
        let mut flood = futures::io::Cursor::new(vec![0x5a; wire::MAX_RESPONSE_BYTES]);
        let err = codec.read_response(&proto, &mut flood).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert_eq!(flood.position(), wire::MAX_DIGEST_ANSWER_BYTES as u64 + 1, "read past the digest's limit");
        // Another kind's answer, however small, is refused too; the right kind is read.
        let mut epoch = futures::io::Cursor::new(Response::Epoch { settlement: None, certificate: None }.encode());
        assert_eq!(codec.read_response(&proto, &mut epoch).await.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        // Nothing at all (a peer that stopped): not an offence.
        let mut nothing = futures::io::Cursor::new(Vec::new());
        assert_eq!(codec.read_response(&proto, &mut nothing).await.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        let digest = Response::Digest { epoch: 3, buckets: Default::default(), records: 0 };
        let mut ok = futures::io::Cursor::new(digest.encode());
        assert_eq!(codec.read_response(&proto, &mut ok).await.unwrap(), digest);
        // A request larger than the request limit is refused the same way.
        let mut big = futures::io::Cursor::new(vec![0u8; wire::MAX_REQUEST_BYTES * 4]);
        assert!(codec.read_request(&proto, &mut big).await.is_err());
        assert_eq!(big.position(), wire::MAX_REQUEST_BYTES as u64 + 1);
    }

    #[test]
    fn every_gossip_preset_builds() {
        for preset in [GossipPreset::Tiny, GossipPreset::Small, GossipPreset::Large] {
            let cfg = gossipsub_config(preset, Duration::from_millis(700)).unwrap();
            assert_eq!(cfg.max_transmit_size(), wire::MAX_GOSSIP_BYTES);
            assert!(cfg.validate_messages());
        }
    }

    #[tokio::test]
    async fn the_swarm_builds_with_every_preset() {
        for preset in [GossipPreset::Tiny, GossipPreset::Small, GossipPreset::Large] {
            let s = SwarmSettings { network_id: "devnet".into(), role: Role::Relay, preset, max_peers: 8, heartbeat: Duration::from_secs(1) };
            let swarm = build_swarm(&Keypair::from_seed(&[4; 32]), &s).unwrap();
            assert_eq!(*swarm.local_peer_id(), identity_of(&Keypair::from_seed(&[4; 32])).public().to_peer_id());
        }
    }
}
