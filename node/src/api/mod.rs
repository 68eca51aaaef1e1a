//! The HTTP API (axum): the router, the request helpers every route shares, and the server. The
//! routes are split by audience: `miner` (the field miners' protocol), `wallet`, `explorer`
//! (reads for explorers and pools), `history` (the paged history API), `probes` (health),
//! `admin`. Every error is `{"ok": false, "error", "message", "code"}` with a 4xx (or 503) status
//! (`error`).
//! The public routes are rate-limited per client IP and time-limited; `/admin/*` has its own,
//! stricter limit; `/livez` and `/readyz` are never limited (see `api/limits.rs`).

mod admin;
pub mod error;
mod explorer;
mod feed;
mod history;
pub mod limits;
pub mod metrics;
mod miner;
pub mod nonce;
mod probes;
mod wallet;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use protocol::attestation::{self, AttestationRecord, Receipt};
use protocol::canonical_json;
use protocol::settlement::TransferResult;
use protocol::transfer::{self, TransferRecord};
use protocol::spec::{URTC_PER_RTC, rtc_f64};
use redb::ReadableDatabase;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use serde_json::{Value, json};

pub use error::ApiError;
use limits::{CappedListener, HttpLimits};
use crate::api::nonce::ChallengeError;
use crate::admission;
use crate::context::Node;
use crate::store::{self, Origin, Refusal};

pub(super) type ApiResult = Result<Response, ApiError>;

/// `/admin/*` needs `X-Admin-Key` equal to the configured key (compared in constant time);
/// with no key configured, admin is off.
pub fn check_admin(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &node.admin_key else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ADMIN_DISABLED", "no admin key is configured on this node"));
    };
    let given = headers.get("x-admin-key").map(|v| v.as_bytes()).unwrap_or_default();
    if bool::from(given.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "missing or wrong X-Admin-Key"))
    }
}


/// A body that the limit or the connection cut short becomes a JSON error too.
pub(super) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "PAYLOAD_TOO_LARGE", "request body is larger than 16 KiB")
        } else {
            ApiError::bad_request("INVALID_BODY", e.body_text())
        }
    })
}

/// Parse a JSON object body with our own parser, so every failure is a JSON error.
pub(super) fn json_object(bytes: &[u8]) -> Result<canonical_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(canonical_json::Value::Object(Default::default()));
    }
    match canonical_json::parse(bytes) {
        Ok(v @ canonical_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::bad_request("INVALID_JSON", "body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request("INVALID_JSON", format!("body is not valid JSON: {e}"))),
    }
}

/// The whole API with its protection layers.
pub fn router(node: Arc<Node>, limits: &HttpLimits) -> Router {
    let mut public = Router::new()
        .route("/attest/challenge", post(miner::challenge))
        .route("/attest/submit", post(miner::submit))
        .route("/epoch", get(miner::epoch_info))
        .route("/epoch/enroll", post(miner::enroll))
        .route("/wallet/balance", get(wallet::balance))
        .route("/wallet/transfer/signed", post(wallet::transfer_signed))
        .route("/wallet/history", get(wallet::wallet_history))
        .route("/wallet/tx/{tx_hash}", get(wallet::wallet_tx))
        .route("/rewards/epoch/{n}", get(explorer::rewards))
        .route("/api/epoch/{n}/settlement", get(explorer::settlement))
        .route("/api/epoch/{n}/anchor", get(explorer::anchor))
        .route("/api/epochs", get(history::epochs))
        .route("/api/epochs/{n}", get(history::epoch))
        .route("/api/epochs/{n}/records", get(history::records))
        .route("/api/epochs/{n}/miners", get(history::miners))
        .route("/api/epochs/{n}/transfers", get(history::transfers))
        .route("/api/anchors", get(history::anchors))
        .route("/api/events", get(feed::events))
        .route("/api/search", get(history::search))
        .route("/api/miner/{wallet}", get(history::miner))
        .route("/api/miner/{wallet}/history", get(history::miner_history))
        .route("/api/stats", get(explorer::stats))
        .route("/api/miners", get(explorer::miners))
        .route("/api/attestation/{id}", get(explorer::attestation_record))
        .route("/api/p2p/status", get(probes::p2p_status))
        .route("/health", get(probes::health));
    if let Some(layer) = limits::rate_limit_layer(limits.rate_limit_per_minute, limits.rate_limit_burst, "public", node.metrics.clone()) {
        public = public.layer(layer);
    }
    let public = public.layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout));

    // Admin work (a backup of a large database) may take longer than a request timeout.
    let mut admin = Router::new()
        .route("/admin/settle-epoch", post(admin::admin_settle))
        .route("/admin/attest/key", post(admin::admin_attest_key)).route("/admin/backup", post(admin::admin_backup));
    if let Some(layer) =
        limits::rate_limit_layer(limits.admin_rate_limit_per_minute, limits.admin_rate_limit_burst, "admin", node.metrics.clone())
    {
        admin = admin.layer(layer);
    }

    let probes = Router::new()
        .route("/livez", get(probes::livez))
        .route("/readyz", get(probes::readyz))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout));

    Router::new()
        .merge(public)
        .merge(admin)
        .merge(probes)
        .fallback(|| async { ApiError::not_found("NOT_FOUND", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method not allowed on this endpoint")
        })
        .layer(DefaultBodyLimit::max(attestation::MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(limits.request_timeout))
        .layer(from_fn_with_state(limits.trusted_proxies.clone(), limits::resolve_client_ip))
        .layer(from_fn_with_state(node.metrics.clone(), crate::metrics::track_requests))
        .layer(from_fn(limits::json_errors))
        .layer(from_fn_with_state(Arc::new(tokio::sync::Semaphore::new(limits.max_inflight_requests)), limits::limit_in_flight))
        .with_state(node)
}

/// A write the store refused, as the HTTP answer (a 409 with its own code; a wallet name held
/// by another key is a 403).
pub(super) fn refused(r: Refusal) -> ApiError {
    if let Refusal::KeyMismatch { .. } = r {
        return ApiError::new(StatusCode::FORBIDDEN, "KEY_MISMATCH", r.to_string());
    }
    let code = match &r {
        Refusal::KeyMismatch { .. } => "KEY_MISMATCH",
        Refusal::StaleReceipt { .. } => "STALE_RECEIPT",
        Refusal::HardwareBinding { .. } => "HARDWARE_BINDING_FAILED",
        Refusal::NonceReplay => "NONCE_REPLAY",
        Refusal::DuplicateHardware(_) => "DUPLICATE_HARDWARE",
        Refusal::EpochSettled(_) => "EPOCH_SETTLED",
        Refusal::StaleNonce { .. } => "STALE_NONCE",
        Refusal::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
        Refusal::DuplicateTransfer(_) => "DUPLICATE_TRANSFER",
        Refusal::StaleEpoch(_) => "STALE_EPOCH",
    };
    let message = match &r {
        Refusal::NonceReplay => "nonce already used".to_owned(),
        Refusal::DuplicateHardware(_) => format!("hardware_already_bound: {r}"),
        _ => r.to_string(),
    };
    ApiError::new(StatusCode::CONFLICT, code, message)
}

pub(super) fn wallet_param(w: Option<String>) -> Result<String, ApiError> {
    let wallet = w.ok_or_else(|| ApiError::bad_request("MISSING_FIELD", "miner_id (or address) is required"))?;
    if !attestation::valid_miner_id(&wallet) {
        return Err(ApiError::bad_request("INVALID_FIELD", "miner_id must match ^[A-Za-z0-9._:-]{1,128}$"));
    }
    canonical_address(&wallet)?;
    Ok(wallet)
}

/// Another spelling of an RTC address is no account of its own (it would answer an empty one):
/// 400 `NON_CANONICAL_ADDRESS`.
pub(super) fn canonical_address(wallet: &str) -> Result<(), ApiError> {
    if attestation::is_non_canonical_address(wallet) {
        return Err(ApiError::bad_request(
            attestation::NON_CANONICAL_ADDRESS,
            format!("{wallet} is an RTC address in another spelling: write it RTC and 40 lower-case hex digits"),
        ));
    }
    Ok(())
}

/// A query string, or 400 INVALID_QUERY saying what is wrong with it.
pub(super) fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::bad_request("INVALID_QUERY", e.body_text()))
}

pub(super) fn epoch_param(p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<u64, ApiError> {
    let Path(s) = p.map_err(|e| ApiError::bad_request("INVALID_EPOCH", e.body_text()))?;
    s.parse().map_err(|_| ApiError::bad_request("INVALID_EPOCH", format!("epoch must be a non-negative integer, got {s:?}")))
}

pub(super) fn unsettled(node: &Node, epoch: u64) -> ApiError {
    let current = node.spec.epoch_at(node.clock.now_unix());
    let why = if epoch >= current { "has not ended yet" } else { "is not settled on this node" };
    ApiError::not_found("UNKNOWN_EPOCH", format!("epoch {epoch} {why} (current epoch {current})"))
}

/// Serve until `shutdown` resolves (then finish the requests in flight), with the connection
/// caps and time limits of `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(node, &limits);
    let timeouts = limits.timeouts;
    limits::serve(CappedListener::new(listener, limits), app, timeouts, shutdown).await
}

