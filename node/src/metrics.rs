//! Prometheus metrics: the node's metric handles, the one `prometheus_client` registry they live in
//! (shared with libp2p's metrics), and the HTTP middleware that records every API request. The
//! `/metrics` listener, which refreshes the gauges that mirror stored state, is `api::metrics`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;


#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointStatus {
    /// The route template (`/rewards/epoch/{n}`), never the raw path: bounded cardinality.
    pub endpoint: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `in` or `out`.
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    /// `public` or `admin`.
    pub scope: &'static str,
}

type DurationFamily = Family<EndpointLabel, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    // 100 us .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Handles to every application metric. Cloning is cheap (the handles are `Arc`s); every clone
/// updates the same series.
#[derive(Clone)]
pub struct Metrics {
    /// Attestations by outcome: `accepted`, `fingerprint_failed` (accepted, earns ~nothing),
    /// `rejected` (the request was refused), `error` (storage unavailable).
    pub attestations: Family<StatusLabel, Counter>,
    /// Refused attestations by error code (`INVALID_SIGNATURE`, `NONCE_REPLAY`, ...).
    pub attestations_rejected: Family<CodeLabel, Counter>,
    pub current_epoch: Gauge,
    pub epoch_pot_rtc: Gauge<f64, AtomicU64>,
    pub enrolled_miners: Gauge,
    pub total_balance_rtc: Gauge<f64, AtomicU64>,
    pub last_settled_epoch: Gauge,
    pub api_requests: Family<EndpointStatus, Counter>,
    pub api_request_duration: DurationFamily,
    pub api_rate_limited: Family<ScopeLabel, Counter>,
    pub peers: Gauge,
    pub gossip_messages: Family<DirectionLabel, Counter>,
    pub gossip_rejected: Counter,
    pub sync_status: Gauge,
    pub last_certified_epoch: Gauge,
    pub db_size_bytes: Gauge,
    pub db_write_failures: Counter,
    /// Signed transfers accepted over HTTP at this node (pending until settled).
    pub transfers_accepted: Counter,
    /// Live-feed clients connected now (`GET /api/events`).
    pub event_clients: Gauge,
    /// Live-feed events sent, and clients dropped for falling behind.
    pub events_sent: Counter,
    pub event_clients_dropped: Counter,
    pub backup_age_seconds: Gauge<f64, AtomicU64>,
    pub backup_last_success: Gauge,
    pub backups: Family<StatusLabel, Counter>,
    /// Anchoring attempts (after retries), by outcome (`ok`, `failed`); primary only.
    pub anchors: Family<StatusLabel, Counter>,
    pub last_anchored_epoch: Gauge,
}

/// Builds the registry: the node's metrics first, then anything else (libp2p) through
/// [`registry`](Self::registry), then [`into_shared`](Self::into_shared) freezes it for serving.
pub struct MetricsBuilder {
    registry: Registry,
    metrics: Metrics,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsBuilder {
    pub fn new() -> Self {
        let m = Metrics {
            attestations: Family::default(),
            attestations_rejected: Family::default(),
            current_epoch: Gauge::default(),
            epoch_pot_rtc: Gauge::default(),
            enrolled_miners: Gauge::default(),
            total_balance_rtc: Gauge::default(),
            last_settled_epoch: Gauge::default(),
            api_requests: Family::default(),
            api_request_duration: Family::new_with_constructor(request_histogram),
            api_rate_limited: Family::default(),
            peers: Gauge::default(),
            gossip_messages: Family::default(),
            gossip_rejected: Counter::default(),
            sync_status: Gauge::default(),
            last_certified_epoch: Gauge::default(),
            db_size_bytes: Gauge::default(),
            db_write_failures: Counter::default(),
            transfers_accepted: Counter::default(),
            event_clients: Gauge::default(),
            events_sent: Counter::default(),
            event_clients_dropped: Counter::default(),
            backup_age_seconds: Gauge::default(),
            backup_last_success: Gauge::default(),
            backups: Family::default(),
            anchors: Family::default(),
            last_anchored_epoch: Gauge::default(),
        };
        // Every known label value starts at 0, so the series exist (and rate() works) from the start.
        for status in ["accepted", "fingerprint_failed", "rejected", "error"] {
            let _ = m.attestations.get_or_create(&StatusLabel { status });
        }
        for status in ["ok", "failed"] {
            let _ = m.backups.get_or_create(&StatusLabel { status });
            let _ = m.anchors.get_or_create(&StatusLabel { status });
        }
        for direction in ["in", "out"] {
            let _ = m.gossip_messages.get_or_create(&DirectionLabel { direction });
        }
        for scope in ["public", "admin"] {
            let _ = m.api_rate_limited.get_or_create(&ScopeLabel { scope });
        }
        m.last_settled_epoch.set(-1);
        m.last_certified_epoch.set(-1);
        m.backup_age_seconds.set(-1.0);
        m.last_anchored_epoch.set(-1);
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("rustchain");
        r.register("attestations", "Attestations received, by outcome", m.attestations.clone());
        r.register("attestations_rejected", "Refused attestations, by error code", m.attestations_rejected.clone());
        r.register("current_epoch", "Current epoch by this node's clock", m.current_epoch.clone());
        r.register("epoch_pot_rtc", "Reward pot of every epoch, in RTC", m.epoch_pot_rtc.clone());
        r.register("enrolled_miners", "Wallets enrolled in the current epoch", m.enrolled_miners.clone());
        r.register("total_balance_rtc", "Sum of all confirmed balances, in RTC", m.total_balance_rtc.clone());
        r.register("last_settled_epoch", "Highest epoch settled on this node (-1: none)", m.last_settled_epoch.clone());
        r.register("api_requests", "HTTP API requests, by route template and status", m.api_requests.clone());
        r.register("api_request_duration_seconds", "HTTP API request latency, by route template", m.api_request_duration.clone());
        r.register("api_rate_limited", "Requests refused with 429, by limiter", m.api_rate_limited.clone());
        r.register("peers", "Connected mesh peers", m.peers.clone());
        r.register("gossip_messages", "Gossip messages, by direction", m.gossip_messages.clone());
        r.register("gossip_messages_rejected", "Gossip messages rejected by validation", m.gossip_rejected.clone());
        r.register("sync_status", "1 when the node is synced with the mesh, 0 while syncing", m.sync_status.clone());
        r.register("last_certified_epoch", "Highest epoch with a certificate (-1: none)", m.last_certified_epoch.clone());
        r.register("db_size_bytes", "Size of the database file", m.db_size_bytes.clone());
        r.register("db_write_failures", "Write batches whose commit failed (nothing of them was stored)", m.db_write_failures.clone());
        r.register("transfers_accepted", "Signed transfers accepted over HTTP at this node", m.transfers_accepted.clone());
        r.register("event_clients", "Live-feed clients connected (GET /api/events)", m.event_clients.clone());
        r.register("events_sent", "Live-feed events sent to clients", m.events_sent.clone());
        r.register("event_clients_dropped", "Live-feed clients dropped for falling more than the buffer behind", m.event_clients_dropped.clone());
        r.register("backup_age_seconds", "Age of the newest backup (-1: none)", m.backup_age_seconds.clone());
        r.register("backup_last_success_timestamp_seconds", "Unix time of the newest backup (0: none)", m.backup_last_success.clone());
        r.register("backups", "Backups taken, by outcome (ok, failed)", m.backups.clone());
        r.register("anchors", "Certified hashes sent for anchoring on Ergo, by outcome (ok, failed)", m.anchors.clone());
        r.register("last_anchored_epoch", "Highest epoch this node anchored (-1: none)", m.last_anchored_epoch.clone());
        r.register(
            "build",
            "Version of this node",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        MetricsBuilder { registry, metrics: m }
    }

    /// The registry, for more registrations (libp2p's) before it is frozen.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn into_shared(self) -> (Metrics, Arc<Registry>) {
        (self.metrics, Arc::new(self.registry))
    }
}

impl Metrics {
    /// Count one attestation outcome. `code` is the error code for refused ones.
    pub fn attestation(&self, status: &'static str, code: Option<&'static str>) {
        self.attestations.get_or_create(&StatusLabel { status }).inc();
        if let Some(code) = code {
            self.attestations_rejected.get_or_create(&CodeLabel { code }).inc();
        }
    }
}

/// Axum middleware: count and time every request under its route template.
pub async fn track_requests(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let endpoint = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    metrics.api_requests.get_or_create(&EndpointStatus { endpoint: endpoint.clone(), status }).inc();
    metrics.api_request_duration.get_or_create(&EndpointLabel { endpoint }).observe(elapsed);
    response
}

/// The OpenMetrics text of the whole registry.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_operators_expect() {
        let mut b = MetricsBuilder::new();
        // Something else (libp2p) registers into the same registry before it is frozen.
        let extra = Counter::<u64>::default();
        b.registry().sub_registry_with_prefix("libp2p").register("dials", "test", extra.clone());
        let (m, registry) = b.into_shared();
        m.attestation("accepted", None);
        m.attestation("rejected", Some("INVALID_SIGNATURE"));
        extra.inc();
        m.api_requests.get_or_create(&EndpointStatus { endpoint: "/rewards/epoch/{n}".into(), status: 404 }).inc();
        m.api_request_duration.get_or_create(&EndpointLabel { endpoint: "/epoch".into() }).observe(0.002);
        let text = encode(&registry);
        for want in [
            "rustchain_attestations_total{status=\"accepted\"} 1",
            "rustchain_attestations_rejected_total{code=\"INVALID_SIGNATURE\"} 1",
            "rustchain_api_requests_total{endpoint=\"/rewards/epoch/{n}\",status=\"404\"} 1",
            "rustchain_api_request_duration_seconds_bucket{le=",
            "rustchain_current_epoch ",
            "rustchain_epoch_pot_rtc ",
            "rustchain_enrolled_miners ",
            "rustchain_total_balance_rtc ",
            "rustchain_peers ",
            "rustchain_gossip_messages_rejected_total ",
            "rustchain_sync_status ",
            "rustchain_last_certified_epoch -1",
            "rustchain_db_size_bytes ",
            "rustchain_backup_age_seconds -1",
            "rustchain_build_info{version=",
            "libp2p_dials_total 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
