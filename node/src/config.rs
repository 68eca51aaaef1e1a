//! Node configuration, resolved in one order: command-line flag > `RUSTCHAIN_*` environment
//! variable > TOML config file > built-in default. `--dump-config` prints the result.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use libp2p::Multiaddr;
use ipnet::IpNet;
use protocol::ChainSpec;

use crate::net::behaviour::{GossipPreset, Role};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `rustchain node` options. Every one can also come from the environment or the config file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct NodeArgs {
    /// TOML config file with any of the options below (keys as in --dump-config).
    #[arg(long, env = "RUSTCHAIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Chain spec: `devnet`, `mainnet`, or a path to a chain spec TOML file. [default: devnet]
    #[arg(long, env = "RUSTCHAIN_SPEC", value_name = "NAME|FILE")]
    pub spec: Option<String>,
    /// Directory for the database and the node key; created if missing. [default: ./rustchain-data]
    #[arg(long, env = "RUSTCHAIN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP API (miners, wallets, explorers). [default: 127.0.0.1:8099]
    #[arg(long, env = "RUSTCHAIN_HTTP_ADDR", value_name = "IP:PORT")]
    pub http_addr: Option<SocketAddr>,
    /// File holding the secret for /admin/* (header X-Admin-Key): its first line, trimmed. It
    /// must not be readable by every user (chmod 600, or 640 with the node's group). Instead of a
    /// file, the environment variable RUSTCHAIN_ADMIN_KEY may hold the key itself; the key is
    /// never accepted on the command line (where `ps` shows it). Without a key, /admin/* answers
    /// 503.
    #[arg(long, env = "RUSTCHAIN_ADMIN_KEY_FILE", value_name = "FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// The removed `--admin-key SECRET`: refused at start with a message naming the alternatives.
    #[arg(long = "admin-key", hide = true, value_name = "SECRET", num_args = 0..=1)]
    pub admin_key_flag: Option<Option<String>>,
    /// Log format. [default: text]
    #[arg(long, env = "RUSTCHAIN_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `rustchain_node=debug,info`. [default: info]
    #[arg(long, env = "RUSTCHAIN_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// P2P listen address (libp2p multiaddr). [default: /ip4/0.0.0.0/tcp/8545]
    #[arg(long, env = "RUSTCHAIN_P2P_ADDR", value_name = "MULTIADDR")]
    pub p2p_addr: Option<String>,
    /// Peers to dial at start, comma-separated multiaddrs ending in /p2p/<peer id>; the chain
    /// spec's bootnodes are added.
    #[arg(long, env = "RUSTCHAIN_BOOTNODES", value_delimiter = ',', value_name = "MULTIADDR,...")]
    pub bootnodes: Option<Vec<String>>,
    /// What this node does: primary (bootstrap peer), relay, or archive (keeps and serves all
    /// history). [default: relay]
    #[arg(long, env = "RUSTCHAIN_ROLE", value_enum)]
    pub role: Option<Role>,
    /// Gossipsub mesh sizes: tiny (2-5 nodes), small (dozens), large. [default: small]
    #[arg(long, env = "RUSTCHAIN_GOSSIP_PRESET", value_enum)]
    pub gossip_preset: Option<GossipPreset>,
    /// Gossipsub heartbeat in milliseconds. [default: 700]
    #[arg(long, env = "RUSTCHAIN_GOSSIP_HEARTBEAT_MS", value_name = "MS")]
    pub gossip_heartbeat_ms: Option<u64>,
    /// Most established peer connections. [default: 50]
    #[arg(long, env = "RUSTCHAIN_MAX_PEERS", value_name = "N")]
    pub max_peers: Option<u32>,
    /// Epochs of history a relay pulls when catching up and serves to peers. [default: 3]
    #[arg(long, env = "RUSTCHAIN_HISTORY_EPOCHS", value_name = "N")]
    pub history_epochs: Option<u64>,
    /// Run without the p2p network (a lone node: no relaying, no sync).
    #[arg(long, env = "RUSTCHAIN_NO_P2P")]
    pub no_p2p: bool,
    /// Address of the Prometheus metrics listener (path /metrics); keep it private. [default: 127.0.0.1:9090]
    #[arg(long, env = "RUSTCHAIN_METRICS_ADDR", value_name = "IP:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// Peers needed before /readyz answers 200; 0 means this node runs alone by configuration. [default: 0]
    #[arg(long, env = "RUSTCHAIN_MIN_PEERS", value_name = "N")]
    pub min_peers: Option<u32>,
    /// Requests per minute per client IP on the public API; 0 disables rate limiting. [default: 100]
    #[arg(long, env = "RUSTCHAIN_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub rate_limit_per_minute: Option<u32>,
    /// Requests a client may make at once before the per-minute rate applies. [default: 20]
    #[arg(long, env = "RUSTCHAIN_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// Requests per minute per client IP on /admin/*; 0 disables. [default: 10]
    #[arg(long, env = "RUSTCHAIN_ADMIN_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub admin_rate_limit_per_minute: Option<u32>,
    /// Burst on /admin/*. [default: 5]
    #[arg(long, env = "RUSTCHAIN_ADMIN_RATE_LIMIT_BURST", value_name = "N")]
    pub admin_rate_limit_burst: Option<u32>,
    /// Reverse proxies (CIDRs, comma-separated) whose X-Real-IP / X-Forwarded-For name the client.
    /// From any other peer those headers are ignored. [default: none]
    #[arg(long, env = "RUSTCHAIN_TRUSTED_PROXIES", value_name = "CIDR,...", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<IpNet>>,
    /// Longest time a request may take before it is answered 408. [default: 10s]
    #[arg(long, env = "RUSTCHAIN_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<HumanDuration>,
    /// Longest time a client may take to send a request's headers, counted from connecting (or,
    /// on a kept-alive connection, from the request's first byte); then the connection is
    /// closed. Applies to the API and the metrics listener. [default: 10s]
    #[arg(long, env = "RUSTCHAIN_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<HumanDuration>,
    /// A connection with no request in flight (a kept-alive one between requests), or whose client
    /// stops reading a response, is closed after this long. Applies to the API and the metrics
    /// listener. [default: 60s]
    #[arg(long, env = "RUSTCHAIN_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<HumanDuration>,
    /// Open connections accepted at once on the HTTP API. [default: 1024]
    #[arg(long, env = "RUSTCHAIN_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Open connections accepted at once from one IP (trusted proxies are exempt). [default: 64]
    #[arg(long, env = "RUSTCHAIN_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Requests handled at once; beyond that new requests get 503 at once. [default: 512]
    #[arg(long, env = "RUSTCHAIN_MAX_INFLIGHT_REQUESTS", value_name = "N")]
    pub max_inflight_requests: Option<usize>,
    /// Directory for scheduled backups (compressed snapshots). [default: none: no scheduled backups]
    #[arg(long, env = "RUSTCHAIN_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Interval between scheduled backups, e.g. `6h`, `30m`, `1d`. [default: 6h when --backup-dir is set]
    #[arg(long, env = "RUSTCHAIN_BACKUP_EVERY", value_name = "DURATION")]
    pub backup_every: Option<HumanDuration>,
    /// Scheduled backups kept in --backup-dir; older ones are deleted. [default: 7]
    #[arg(long, env = "RUSTCHAIN_BACKUP_KEEP", value_name = "N")]
    pub backup_keep: Option<usize>,
    /// Database page cache in MiB (memory kept for recently used pages). [default: 32]
    #[arg(long, env = "RUSTCHAIN_DB_CACHE_MB", value_name = "MIB")]
    pub db_cache_mb: Option<u64>,
    /// Ergo node REST API (plain http, e.g. http://127.0.0.1:9053). The primary anchors every
    /// certified settlement hash there; any node uses it to verify anchors. [default: none:
    /// anchoring off]
    #[arg(long, env = "RUSTCHAIN_ERGO_URL", value_name = "URL")]
    pub ergo_url: Option<String>,
    /// File holding the Ergo node's API key (first line); needed to anchor, not to verify.
    #[arg(long, env = "RUSTCHAIN_ERGO_API_KEY_FILE", value_name = "FILE")]
    pub ergo_api_key_file: Option<PathBuf>,
    /// Ergo address that receives the anchoring boxes. [default: the Ergo wallet's first address]
    #[arg(long, env = "RUSTCHAIN_ERGO_ADDRESS", value_name = "ADDRESS")]
    pub ergo_address: Option<String>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
}

/// The config file: the same options, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    spec: Option<String>,
    data_dir: Option<PathBuf>,
    http_addr: Option<SocketAddr>,
    /// No longer read (the key belongs in its own file): refused with a message.
    admin_key: Option<toml::Value>,
    admin_key_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    p2p_addr: Option<String>,
    bootnodes: Option<Vec<String>>,
    role: Option<Role>,
    gossip_preset: Option<GossipPreset>,
    gossip_heartbeat_ms: Option<u64>,
    max_peers: Option<u32>,
    history_epochs: Option<u64>,
    no_p2p: Option<bool>,
    metrics_addr: Option<SocketAddr>,
    min_peers: Option<u32>,
    rate_limit_per_minute: Option<u32>,
    rate_limit_burst: Option<u32>,
    admin_rate_limit_per_minute: Option<u32>,
    admin_rate_limit_burst: Option<u32>,
    trusted_proxies: Option<Vec<IpNet>>,
    request_timeout: Option<HumanDuration>,
    header_read_timeout: Option<HumanDuration>,
    idle_timeout: Option<HumanDuration>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_inflight_requests: Option<usize>,
    backup_dir: Option<PathBuf>,
    backup_every: Option<HumanDuration>,
    backup_keep: Option<usize>,
    db_cache_mb: Option<u64>,
    ergo_url: Option<String>,
    ergo_api_key_file: Option<PathBuf>,
    ergo_address: Option<String>,
}

/// The resolved configuration.
#[derive(Clone, Debug, Serialize)]
pub struct NodeConfig {
    pub spec: String,
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    /// The admin key from RUSTCHAIN_ADMIN_KEY, if that is where it comes from.
    #[serde(skip)]
    pub admin_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_level: String,
    #[serde(serialize_with = "display")]
    pub p2p_addr: Multiaddr,
    pub bootnodes: Vec<String>,
    pub role: Role,
    pub gossip_preset: GossipPreset,
    pub gossip_heartbeat_ms: u64,
    pub max_peers: u32,
    pub history_epochs: u64,
    pub no_p2p: bool,
    pub metrics_addr: SocketAddr,
    pub min_peers: u32,
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub admin_rate_limit_per_minute: u32,
    pub admin_rate_limit_burst: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub request_timeout: HumanDuration,
    pub header_read_timeout: HumanDuration,
    pub idle_timeout: HumanDuration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_inflight_requests: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<PathBuf>,
    pub backup_every: HumanDuration,
    pub backup_keep: usize,
    pub db_cache_mb: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ergo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ergo_api_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ergo_address: Option<String>,
}

fn display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl NodeConfig {
    /// Resolve `args` with this process's environment (for the variables clap does not read).
    pub fn resolve(args: &NodeArgs) -> anyhow::Result<NodeConfig> {
        let env_key = match std::env::var(ADMIN_KEY_ENV) {
            Ok(k) => Some(k),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => bail!("{ADMIN_KEY_ENV} is not valid UTF-8"),
        };
        Self::resolve_with(args, env_key)
    }

    /// Resolve `args`, with `env_admin_key` the value of RUSTCHAIN_ADMIN_KEY.
    pub fn resolve_with(args: &NodeArgs, env_admin_key: Option<String>) -> anyhow::Result<NodeConfig> {
        if args.admin_key_flag.is_some() {
            bail!(
                "--admin-key is not accepted: a key on the command line is visible to every user of this machine \
                 (ps, /proc/<pid>/cmdline). Put the key in a file only the node can read and pass \
                 --admin-key-file FILE (or admin_key_file in the config file), or set the environment variable \
                 {ADMIN_KEY_ENV}"
            );
        }
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text).with_context(|| format!("config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        if file.admin_key.is_some() {
            bail!(
                "the config file key admin_key is not accepted: put the key in a file only the node can read \
                 and set admin_key_file = \"/path/to/that/file\" (or set the environment variable {ADMIN_KEY_ENV})"
            );
        }
        let env_admin_key = env_admin_key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
        if env_admin_key.is_some() && args.admin_key_file.is_some() {
            bail!("both {ADMIN_KEY_ENV} and --admin-key-file (or RUSTCHAIN_ADMIN_KEY_FILE) are set: use one");
        }
        // Flag > environment > file: the environment's key beats the config file's key file.
        let admin_key_file = if env_admin_key.is_some() { None } else { args.admin_key_file.clone().or(file.admin_key_file) };
        NodeConfig {
            spec: args.spec.clone().or(file.spec).unwrap_or_else(|| "devnet".into()),
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| "rustchain-data".into()),
            http_addr: args.http_addr.or(file.http_addr).unwrap_or_else(|| "127.0.0.1:8099".parse().expect("valid")),
            admin_key: env_admin_key,
            admin_key_file,
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            log_level: args.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".into()),
            p2p_addr: {
                let a = args.p2p_addr.clone().or(file.p2p_addr).unwrap_or_else(|| "/ip4/0.0.0.0/tcp/8545".into());
                a.parse().with_context(|| format!("--p2p-addr {a:?} is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/8545)"))?
            },
            bootnodes: args.bootnodes.clone().or(file.bootnodes).unwrap_or_default().into_iter().filter(|b| !b.trim().is_empty()).collect(),
            role: args.role.or(file.role).unwrap_or(Role::Relay),
            gossip_preset: args.gossip_preset.or(file.gossip_preset).unwrap_or(GossipPreset::Small),
            gossip_heartbeat_ms: args.gossip_heartbeat_ms.or(file.gossip_heartbeat_ms).unwrap_or(700).max(50),
            max_peers: args.max_peers.or(file.max_peers).unwrap_or(50).max(1),
            history_epochs: args.history_epochs.or(file.history_epochs).unwrap_or(3),
            no_p2p: args.no_p2p || file.no_p2p.unwrap_or(false),
            metrics_addr: args.metrics_addr.or(file.metrics_addr).unwrap_or_else(|| "127.0.0.1:9090".parse().expect("valid")),
            min_peers: args.min_peers.or(file.min_peers).unwrap_or(0),
            rate_limit_per_minute: args.rate_limit_per_minute.or(file.rate_limit_per_minute).unwrap_or(100),
            rate_limit_burst: args.rate_limit_burst.or(file.rate_limit_burst).unwrap_or(20),
            admin_rate_limit_per_minute: args.admin_rate_limit_per_minute.or(file.admin_rate_limit_per_minute).unwrap_or(10),
            admin_rate_limit_burst: args.admin_rate_limit_burst.or(file.admin_rate_limit_burst).unwrap_or(5),
            trusted_proxies: args.trusted_proxies.clone().or(file.trusted_proxies).unwrap_or_default(),
            request_timeout: args.request_timeout.or(file.request_timeout).unwrap_or(HumanDuration::secs(10)),
            header_read_timeout: args.header_read_timeout.or(file.header_read_timeout).unwrap_or(HumanDuration::secs(10)),
            idle_timeout: args.idle_timeout.or(file.idle_timeout).unwrap_or(HumanDuration::secs(60)),
            max_connections: args.max_connections.or(file.max_connections).unwrap_or(1024),
            max_connections_per_ip: args.max_connections_per_ip.or(file.max_connections_per_ip).unwrap_or(64),
            max_inflight_requests: args.max_inflight_requests.or(file.max_inflight_requests).unwrap_or(512),
            backup_dir: args.backup_dir.clone().or(file.backup_dir),
            backup_every: args.backup_every.or(file.backup_every).unwrap_or(HumanDuration::secs(6 * 3600)),
            backup_keep: args.backup_keep.or(file.backup_keep).unwrap_or(7),
            db_cache_mb: args.db_cache_mb.or(file.db_cache_mb).unwrap_or((crate::store::DEFAULT_CACHE_BYTES >> 20) as u64),
            ergo_url: args.ergo_url.clone().or(file.ergo_url).filter(|u| !u.trim().is_empty()),
            ergo_api_key_file: args.ergo_api_key_file.clone().or(file.ergo_api_key_file),
            ergo_address: args.ergo_address.clone().or(file.ergo_address).filter(|a| !a.trim().is_empty()),
        }
        .checked()
    }

    fn checked(self) -> anyhow::Result<NodeConfig> {
        if self.request_timeout.0.is_zero() {
            bail!("request_timeout must be positive");
        }
        if self.header_read_timeout.0.is_zero() || self.idle_timeout.0.is_zero() {
            bail!("header_read_timeout and idle_timeout must be positive");
        }
        if self.backup_every.0 < Duration::from_secs(60) {
            bail!("backup_every must be at least 1m");
        }
        if self.db_cache_mb == 0 {
            bail!("db_cache_mb must be at least 1");
        }
        if self.backup_keep == 0 {
            bail!("backup_keep must be at least 1");
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 || self.max_inflight_requests == 0 {
            bail!("max_connections, max_connections_per_ip and max_inflight_requests must be positive");
        }
        if let Some(url) = &self.ergo_url
            && !url.starts_with("http://")
        {
            bail!("ergo_url {url:?} must be a plain http:// URL (this client has no TLS; run it beside a local Ergo node)");
        }
        if self.metrics_addr == self.http_addr && self.http_addr.port() != 0 {
            bail!("metrics_addr and http_addr must differ");
        }
        Ok(self)
    }

    pub fn db_cache_bytes(&self) -> usize {
        usize::try_from(self.db_cache_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    /// Where the node keeps its database.
    pub fn db_path(&self) -> PathBuf {
        db_path(&self.data_dir)
    }

    /// The configuration as TOML, with the admin secret shown only as set or not.
    pub fn dump(&self) -> String {
        let mut text = toml::to_string_pretty(self).expect("config serializes");
        let key = match (&self.admin_key, &self.admin_key_file) {
            (Some(_), _) => format!("(set, from {ADMIN_KEY_ENV})"),
            (None, Some(_)) => "(from admin_key_file)".to_owned(),
            (None, None) => "(not set: /admin/* answers 503)".to_owned(),
        };
        text.push_str(&format!("# admin_key: {key}\n"));
        text
    }

    /// Bootnodes as multiaddrs; each must name its peer (`/p2p/<peer id>`).
    pub fn bootnode_addrs(&self) -> anyhow::Result<Vec<Multiaddr>> {
        self.bootnodes
            .iter()
            .map(|b| {
                let addr: Multiaddr = b.trim().parse().with_context(|| format!("bootnode {b:?} is not a multiaddr"))?;
                if !matches!(addr.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
                    bail!("bootnode {b:?} must end in /p2p/<peer id>");
                }
                Ok(addr)
            })
            .collect()
    }

    pub fn load_spec(&self) -> anyhow::Result<ChainSpec> {
        load_spec(&self.spec)
    }

    /// The admin key: from RUSTCHAIN_ADMIN_KEY, or read from `admin_key_file`.
    pub fn admin_key(&self) -> anyhow::Result<Option<String>> {
        if let Some(k) = &self.admin_key {
            return Ok(Some(k.clone()));
        }
        self.admin_key_file.as_deref().map(read_admin_key_file).transpose()
    }

    /// The Ergo API key from `ergo_api_key_file`, if one is configured.
    pub fn ergo_api_key(&self) -> anyhow::Result<Option<String>> {
        self.ergo_api_key_file.as_deref().map(|p| first_line_secret(p, "Ergo API key")).transpose()
    }
}

/// The environment variable that may hold the admin key itself.
pub const ADMIN_KEY_ENV: &str = "RUSTCHAIN_ADMIN_KEY";

/// The admin key from its file (first line, trimmed). A file every user may read is refused.
pub fn read_admin_key_file(path: &Path) -> anyhow::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("reading admin key file {}", path.display()))?.permissions().mode();
        if mode & 0o004 != 0 {
            bail!(
                "admin key file {p} is readable by every user (mode {m:03o}); restrict it: chmod 600 {p} \
                 (or chmod 640 and give it the node's group)",
                p = path.display(),
                m = mode & 0o777,
            );
        }
    }
    first_line_secret(path, "admin key")
}

/// The first line of a secret file, trimmed; an empty one is an error.
fn first_line_secret(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {what} file {}", path.display()))?;
    let key = text.lines().next().unwrap_or("").trim().to_owned();
    if key.is_empty() {
        bail!("{what} file {} is empty", path.display());
    }
    Ok(key)
}

/// The database file inside a data dir.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("rustchain.redb")
}

/// A duration written the way operators write them: `90`, `90s`, `30m`, `6h`, `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 90s, 30m, 6h, 1d)"))?;
        let mul = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
        };
        n.checked_mul(mul).map(HumanDuration::secs).ok_or_else(|| format!("{s:?} is too long"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match s {
            _ if s > 0 && s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s > 0 && s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s > 0 && s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A built-in spec by name, or a spec TOML file by path.
pub fn load_spec(name_or_path: &str) -> anyhow::Result<ChainSpec> {
    match name_or_path {
        "devnet" | "mainnet" => Ok(ChainSpec::builtin(name_or_path)?),
        path => {
            let text = std::fs::read_to_string(Path::new(path))
                .with_context(|| format!("reading chain spec {path} (built-in specs: devnet, mainnet)"))?;
            ChainSpec::from_toml(&text).with_context(|| format!("chain spec {path}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "spec = \"mainnet\"\nhttp_addr = \"0.0.0.0:9000\"\nlog_level = \"debug\"\n").unwrap();
        let args = NodeArgs { config: Some(file.clone()), http_addr: Some("127.0.0.1:1".parse().unwrap()), ..Default::default() };
        let cfg = NodeConfig::resolve(&args).unwrap();
        assert_eq!(cfg.http_addr, "127.0.0.1:1".parse().unwrap()); // flag
        assert_eq!(cfg.spec, "mainnet"); // file
        assert_eq!(cfg.log_level, "debug"); // file
        assert_eq!(cfg.data_dir, PathBuf::from("rustchain-data")); // default
        std::fs::write(&file, "spce = \"mainnet\"\n").unwrap();
        assert!(NodeConfig::resolve(&args).is_err(), "unknown keys are refused");
    }

    #[test]
    fn dump_never_shows_the_admin_key() {
        let cfg = NodeConfig::resolve_with(&NodeArgs::default(), Some("hunter2\n".into())).unwrap();
        assert_eq!(cfg.admin_key().unwrap().as_deref(), Some("hunter2"));
        let dump = cfg.dump();
        assert!(!dump.contains("hunter2"));
        assert!(dump.contains("(set, from RUSTCHAIN_ADMIN_KEY)"));
    }

    #[test]
    fn admin_key_comes_from_a_private_file_or_the_environment_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("admin.key");
        std::fs::write(&key, "hunter2\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let args = NodeArgs { admin_key_file: Some(key.clone()), ..Default::default() };
        let cfg = NodeConfig::resolve_with(&args, None).unwrap();
        assert_eq!(cfg.admin_key().unwrap().as_deref(), Some("hunter2"), "first line, newline trimmed");
        assert!(!cfg.dump().contains("hunter2"));

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeConfig::resolve_with(&args, None).unwrap().admin_key().unwrap_err().to_string();
        assert!(err.contains("readable by every user") && err.contains("chmod 600"), "{err}");

        let flag = NodeArgs { admin_key_flag: Some(Some("hunter2".into())), ..Default::default() };
        let err = NodeConfig::resolve_with(&flag, None).unwrap_err().to_string();
        assert!(err.contains("--admin-key-file") && err.contains("RUSTCHAIN_ADMIN_KEY") && !err.contains("hunter2"), "{err}");

        let both = NodeConfig::resolve_with(&args, Some("other".into())).unwrap_err().to_string();
        assert!(both.contains("use one"), "{both}");

        // The config file names a key file; a literal key there is refused.
        let toml = dir.path().join("node.toml");
        std::fs::write(&toml, format!("admin_key_file = {:?}\n", key.to_str().unwrap())).unwrap();
        let from_file = NodeArgs { config: Some(toml.clone()), ..Default::default() };
        assert_eq!(NodeConfig::resolve_with(&from_file, None).unwrap().admin_key_file, Some(key.clone()));
        let env_wins = NodeConfig::resolve_with(&from_file, Some("from-env".into())).unwrap();
        assert_eq!((env_wins.admin_key().unwrap().as_deref(), env_wins.admin_key_file), (Some("from-env"), None));
        std::fs::write(&toml, "admin_key = \"hunter2\"\n").unwrap();
        let err = NodeConfig::resolve_with(&from_file, None).unwrap_err().to_string();
        assert!(err.contains("admin_key_file") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn operations_options_resolve_and_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "backup_every = \"30m\"\ntrusted_proxies = [\"10.0.0.0/8\"]\nrate_limit_per_minute = 0\n").unwrap();
        let args = NodeArgs { config: Some(file), rate_limit_burst: Some(3), ..Default::default() };
        let cfg = NodeConfig::resolve(&args).unwrap();
        assert_eq!(cfg.backup_every, HumanDuration::secs(1800));
        assert_eq!(cfg.trusted_proxies, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert_eq!((cfg.rate_limit_per_minute, cfg.rate_limit_burst), (0, 3));
        assert_eq!(cfg.metrics_addr, "127.0.0.1:9090".parse().unwrap());
        assert_eq!((cfg.min_peers, cfg.backup_keep, cfg.request_timeout), (0, 7, HumanDuration::secs(10)));
        assert_eq!((cfg.header_read_timeout, cfg.idle_timeout), (HumanDuration::secs(10), HumanDuration::secs(60)));
        let bad = NodeArgs { idle_timeout: Some(HumanDuration::secs(0)), ..Default::default() };
        assert!(NodeConfig::resolve(&bad).is_err());
        let bad = NodeArgs { backup_keep: Some(0), ..Default::default() };
        assert!(NodeConfig::resolve(&bad).is_err());
        let same = NodeArgs { metrics_addr: Some("127.0.0.1:8099".parse().unwrap()), ..Default::default() };
        assert!(NodeConfig::resolve(&same).is_err(), "metrics and API on one port");
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, secs, shown) in [("90", 90, "90s"), ("90s", 90, "90s"), ("30m", 1800, "30m"), ("6h", 21600, "6h"), ("1d", 86400, "1d"), ("120m", 7200, "2h")] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0.as_secs(), secs, "{text}");
            assert_eq!(d.to_string(), shown);
        }
        for bad in ["", "h", "5w", "1.5h", "-1s", "99999999999999999999d"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad}");
        }
    }
}
