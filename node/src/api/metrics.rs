//! The `/metrics` listener: on each scrape, refresh the gauges that mirror stored state from the
//! node, then encode the registry. Served on its own address, not rate-limited.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use protocol::spec::rtc_f64;

use crate::api::error::ApiError;
use crate::api::limits;
use crate::context::Node;
use crate::metrics::{DirectionLabel, Metrics, encode};
use crate::store;

/// Bring the state-mirroring gauges up to date (called on every scrape).
pub fn refresh(m: &Metrics, node: &Node) {
    let now = node.clock.now_unix();
    let epoch = node.spec.epoch_at(now);
    m.current_epoch.set(epoch as i64);
    m.epoch_pot_rtc.set(rtc_f64(node.spec.epoch_pot_urtc));
    if let Ok(n) = node.enrolled_count(epoch) {
        m.enrolled_miners.set(n as i64);
    }
    m.total_balance_rtc.set(rtc_f64(node.tallies.total_balance_urtc()));
    if let Some(e) = node.tallies.last_settled() {
        m.last_settled_epoch.set(e as i64);
    }
    m.peers.set(node.peer_count() as i64);
    m.sync_status.set(i64::from(node.synced()));
    if let Ok(Some(e)) = node.db.get().and_then(|db| store::last_certified(&db)) {
        m.last_certified_epoch.set(e as i64);
    }
    if let Some(net) = &node.net {
        // Counters only go up: add what the mesh counted since the last scrape.
        let st = &net.state;
        for (direction, total) in [("in", st.gossip_received.load(Ordering::Relaxed)), ("out", st.gossip_sent.load(Ordering::Relaxed))] {
            let c = m.gossip_messages.get_or_create(&DirectionLabel { direction });
            c.inc_by(total.saturating_sub(c.get()));
        }
        let rejected = st.gossip_rejected.load(Ordering::Relaxed);
        m.gossip_rejected.inc_by(rejected.saturating_sub(m.gossip_rejected.get()));
    }
    if let Ok(meta) = std::fs::metadata(&node.db_path) {
        m.db_size_bytes.set(meta.len() as i64);
    }
    match node.backups.last_success_unix() {
        Some(t) => {
            m.backup_last_success.set(t as i64);
            m.backup_age_seconds.set(now.saturating_sub(t) as f64);
        }
        None => {
            m.backup_age_seconds.set(-1.0);
        }
    }
}

async fn scrape(State((registry, node)): State<(Arc<Registry>, Arc<Node>)>) -> Response {
    refresh(&node.metrics, &node);
    let body = encode(&registry);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// Serve `/metrics` on its own listener (not rate-limited; bind it to a private address).
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    node: Arc<Node>,
    timeouts: limits::ConnTimeouts,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "NOT_FOUND", "only /metrics is served here") })
        .with_state((registry, node));
    limits::serve(listener, app, timeouts, shutdown).await
}
