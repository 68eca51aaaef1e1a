//! The HTTP API (axum): the field miners' protocol, wallet and explorer reads, health, and admin.
//! Every error is `{"ok": false, "error", "message", "code"}` with a 4xx (or 503) status.
//! The public routes are rate-limited per client IP and time-limited; `/admin/*` has its own,
//! stricter limit; `/livez` and `/readyz` are never limited (see `api/limits.rs`).

pub mod error;
pub mod limits;
pub mod metrics;
pub mod nonce;

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
use protocol::admin::{self, AdminRecord};
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

type ApiResult = Result<Response, ApiError>;

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
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
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
fn json_object(bytes: &[u8]) -> Result<canonical_json::Value, ApiError> {
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
        .route("/attest/challenge", post(challenge))
        .route("/attest/submit", post(submit))
        .route("/epoch", get(epoch_info))
        .route("/epoch/enroll", post(enroll))
        .route("/wallet/balance", get(balance))
        .route("/wallet/transfer/signed", post(transfer_signed))
        .route("/wallet/history", get(wallet_history))
        .route("/wallet/tx/{tx_hash}", get(wallet_tx))
        .route("/rewards/epoch/{n}", get(rewards))
        .route("/api/epoch/{n}/settlement", get(settlement))
        .route("/api/epoch/{n}/anchor", get(anchor))
        .route("/api/stats", get(stats))
        .route("/api/miners", get(miners))
        .route("/api/attestation/{id}", get(attestation_record))
        .route("/api/p2p/status", get(p2p_status))
        .route("/health", get(health));
    if let Some(layer) = limits::rate_limit_layer(limits.rate_limit_per_minute, limits.rate_limit_burst, "public", node.metrics.clone()) {
        public = public.layer(layer);
    }
    let public = public.layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout));

    // Admin work (a backup of a large database) may take longer than a request timeout.
    let mut admin = Router::new()
        .route("/admin/settle-epoch", post(admin_settle))
        .route("/admin/attest/key", post(admin_attest_key)).route("/admin/backup", post(admin_backup));
    if let Some(layer) =
        limits::rate_limit_layer(limits.admin_rate_limit_per_minute, limits.admin_rate_limit_burst, "admin", node.metrics.clone())
    {
        admin = admin.layer(layer);
    }

    let probes = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
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

async fn challenge(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = json_object(&body_bytes(body)?)?;
    let bound = match body.get("miner_id") {
        None | Some(canonical_json::Value::Null) => None,
        Some(canonical_json::Value::Str(s)) if attestation::valid_miner_id(s) => Some(s.as_str()),
        Some(_) => return Err(ApiError::bad_request("INVALID_FIELD", "miner_id must match ^[A-Za-z0-9._:-]{1,128}$")),
    };
    let now = node.clock.now_unix();
    let issued = node.challenges.issue(now, bound);
    Ok(Json(json!({"nonce": issued.nonce, "expires_at": issued.expires_at, "bound_miner": bound, "server_time": now}))
        .into_response())
}

async fn submit(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let outcome = submit_attestation(&node, body).await;
    match &outcome {
        Ok((_, true)) => node.metrics.attestation("accepted", None),
        Ok((_, false)) => node.metrics.attestation("fingerprint_failed", None),
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => node.metrics.attestation("error", Some(e.code)),
        Err(e) => node.metrics.attestation("rejected", Some(e.code)),
    }
    outcome.map(|(r, _)| r)
}

/// Validate, evaluate and store one attestation; the response and whether its fingerprint passed.
async fn submit_attestation(node: &Node, body: Result<Bytes, BytesRejection>) -> Result<(Response, bool), ApiError> {
    let body = body_bytes(body)?;
    // Signature checks and canonical JSON are CPU work: keep them off the async workers' hot path.
    let sub = tokio::task::spawn_blocking(move || attestation::parse_submission(&body))
        .await
        .map_err(|_| ApiError::unavailable("validation task failed"))??;
    let now = node.clock.now_unix();
    let nonce_expires = node.challenges.check(&sub.nonce, &sub.miner_id, now).map_err(|e| match e {
        ChallengeError::IdentityMismatch => ApiError::new(StatusCode::FORBIDDEN, "NONCE_IDENTITY_MISMATCH", e.to_string()),
        ChallengeError::Invalid | ChallengeError::Expired => {
            ApiError::new(StatusCode::CONFLICT, "CHALLENGE_INVALID", e.to_string())
        }
    })?;
    let slot = node.spec.slot_at(now);
    let epoch = node.spec.epoch_of_slot(slot);
    let payload = sub.payload();
    let receipt = Receipt::sign(&node.spec, &node.key, &payload.payload_id(), slot, &sub.nonce);
    let (new, eval) = admission::attestation(&node.spec, &sub, AttestationRecord { payload, receipt }, Origin::Miner, nonce_expires, epoch);
    let id = new.id;
    let outcome = node.writer.attest(new).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    match outcome {
        Ok(_) => node.announce(id),
        Err(r) => return Err(refused(r)),
    }
    if !eval.verdict.passed {
        tracing::info!(miner = %sub.miner, miner_id = %sub.miner_id, reasons = ?eval.verdict.reasons, "attestation accepted; fingerprint failed");
    } else {
        tracing::debug!(miner = %sub.miner, miner_id = %sub.miner_id, epoch, "attestation accepted");
    }
    let d = &eval.device;
    let response = Json(json!({
        "ok": true,
        "status": "accepted",
        "ticket_id": format!("ticket_{}", &hex::encode(id)[..32]),
        "record_id": hex::encode(id),
        "miner": sub.miner,
        "miner_id": sub.miner_id,
        "epoch": epoch,
        "slot": slot,
        "device": {"family": d.family, "arch": d.arch, "model": d.model, "cpu": d.cpu, "cores": d.cores,
                   "machine": d.machine, "serial_hash": eval.serial_hash},
        "fingerprint_passed": eval.verdict.passed,
        "fingerprint_reasons": eval.verdict.reasons,
        "weight": eval.weight,
        "hw_weight": eval.hw_weight,
    }))
    .into_response();
    Ok((response, eval.verdict.passed))
}

async fn epoch_info(State(node): State<Arc<Node>>) -> ApiResult {
    let now = node.clock.now_unix();
    let slot = node.spec.slot_at(now);
    let epoch = node.spec.epoch_of_slot(slot);
    let enrolled = node.enrolled_count(epoch)?;
    Ok(Json(json!({
        "epoch": epoch,
        "slot": slot,
        "epoch_pot": rtc_f64(node.spec.epoch_pot_urtc),
        "epoch_pot_urtc": node.spec.epoch_pot_urtc,
        "enrolled_miners": enrolled,
        "blocks_per_epoch": node.spec.slots_per_epoch,
        "slot_seconds": node.spec.slot_seconds,
        "total_supply_rtc": node.spec.total_supply_urtc / URTC_PER_RTC,
        "network_id": node.spec.network_id,
        "epoch_ends_at": node.spec.epoch_end_unix(epoch),
    }))
    .into_response())
}

/// `POST /epoch/enroll`: the miner confirms, with the key it attested with, that it takes part in
/// the current epoch. Enrollment itself comes from the epoch's attestations (see
/// docs/ARCHITECTURE.md), so this checks the signature and reports the enrollment.
async fn enroll(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = json_object(&body_bytes(body)?)?;
    let field = |k: &'static str| -> Result<&str, ApiError> {
        body.get(k).and_then(canonical_json::Value::as_str).ok_or_else(|| {
            ApiError::bad_request("MISSING_FIELD", format!("`{k}` is required and must be a string"))
        })
    };
    let wallet = field("miner_pubkey")?;
    canonical_address(wallet)?;
    let miner_id = field("miner_id")?;
    let sig = protocol::crypto::decode_hex::<64>("signature", field("signature")?)
        .map_err(|e| ApiError::bad_request("INVALID_SIGNATURE", e.to_string()))?;
    let pk = protocol::crypto::decode_hex::<32>("public_key", field("public_key")?)
        .map_err(|e| ApiError::bad_request("INVALID_SIGNATURE", e.to_string()))?;
    let now = node.clock.now_unix();
    let epoch = node.spec.epoch_at(now);
    let msg = format!("{wallet}|{miner_id}|{epoch}");
    protocol::crypto::verify(&pk, msg.as_bytes(), &sig)
        .map_err(|e| ApiError::bad_request("INVALID_SIGNATURE", format!("{e} (signed message is \"{{miner_pubkey}}|{{miner_id}}|{{epoch}}\" with the current epoch)")))?;
    let row = store::enrollment(&*node.db()?, epoch, wallet)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "ATTESTATION_REQUIRED",
            format!("{wallet} has no accepted attestation in epoch {epoch}; POST /attest/submit first (an attestation enrolls)"),
        )
    })?;
    if row.miner_id != miner_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "MINER_ID_MISMATCH",
            format!("{wallet} is enrolled in epoch {epoch} through miner_id {}, not {miner_id}", row.miner_id),
        ));
    }
    let record = store::record(&*node.db()?, &row.id)?.ok_or_else(|| ApiError::unavailable("enrollment without its record"))?;
    if record.payload.public_key != pk {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "KEY_MISMATCH", "public_key is not the key this miner attested with"));
    }
    Ok(Json(json!({
        "ok": true, "epoch": epoch, "miner_pubkey": wallet, "miner_id": row.miner_id, "weight": row.weight,
        "hw_weight": row.hw_weight, "fingerprint_passed": row.fingerprint_passed, "enrolled_at_slot": row.slot,
    }))
    .into_response())
}

/// A write the store refused, as the HTTP answer (a 409 with its own code; a wallet name held
/// by another key is a 403).
fn refused(r: Refusal) -> ApiError {
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

/// `POST /wallet/transfer/signed`: a field wallet's signed transfer. Verified, checked against the
/// sender's nonce and confirmed-minus-pending balance, stored, announced; settled with the epoch.
async fn transfer_signed(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body_bytes(body)?;
    let spec = node.spec.clone();
    let t = tokio::task::spawn_blocking(move || transfer::parse_transfer(&spec, &body))
        .await
        .map_err(|_| ApiError::unavailable("validation task failed"))?
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let slot = node.spec.slot_at(node.clock.now_unix());
    transfer::check_signed_time(&node.spec, t.nonce, slot).map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let new = admission::transfer(&node.spec, &t, TransferRecord::accept(&node.spec, &node.key, &t, slot), Origin::Miner);
    let (id, stored) = (new.id, new.transfer.clone());
    // The epoch whose settlement judges it: its receipt's, or later if the sender signed a later time.
    let confirms_at = node.spec.epoch_of_slot(stored.slot);
    match node.writer.transfer(new).await.map_err(|e| ApiError::unavailable(e.to_string()))? {
        Ok(_) => node.announce(id),
        Err(r) => return Err(refused(r)),
    }
    node.metrics.transfers_accepted.inc();
    tracing::info!(tx_hash = %stored.tx_hash, from = %stored.from, to = %stored.to, amount_urtc = stored.amount_urtc, epoch = confirms_at, "transfer accepted; pending");
    Ok(Json(json!({
        "ok": true,
        "verified": true,
        "tx_hash": stored.tx_hash,
        "phase": "pending",
        "from_address": stored.from,
        "to_address": stored.to,
        "amount_rtc": rtc_f64(stored.amount_urtc),
        "amount_i64": stored.amount_urtc,
        "nonce": stored.nonce,
        "confirms_at_epoch": confirms_at,
    }))
    .into_response())
}

fn transfer_json(t: &store::StoredTransfer) -> Value {
    json!({
        "tx_hash": t.tx_hash, "from_address": t.from, "to_address": t.to, "amount_i64": t.amount_urtc,
        "amount_rtc": rtc_f64(t.amount_urtc), "nonce": t.nonce, "memo": t.memo,
    })
}

/// `GET /wallet/tx/{tx_hash}`: pending, confirmed (epoch) or rejected (reason), as this node knows it.
async fn wallet_tx(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
    let Path(tx) = p.map_err(|e| ApiError::bad_request("INVALID_TX_HASH", e.body_text()))?;
    if tx.len() != 32 || !tx.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ApiError::bad_request("INVALID_TX_HASH", "tx_hash must be 32 lowercase hex characters"));
    }
    let state = store::tx_state(&*node.db()?, &tx)?
        .ok_or_else(|| ApiError::not_found("UNKNOWN_TX", format!("transfer {tx} is not known to this node")))?;
    let mut out = match state {
        store::TxState::Pending(t) => {
            let mut v = transfer_json(&t);
            v["status"] = "pending".into();
            v["confirms_at_epoch"] = node.spec.epoch_of_slot(t.slot).into();
            v
        }
        store::TxState::Judged(j) => {
            let mut v = transfer_json(&j.transfer);
            v["epoch"] = j.epoch.into();
            if j.result == TransferResult::Applied {
                v["status"] = "confirmed".into();
            } else {
                v["status"] = "rejected".into();
                v["reason"] = j.result.as_str().into();
            }
            v
        }
    };
    out["ok"] = true.into();
    out["tx_hash"] = tx.into();
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct HistoryQuery {
    address: Option<String>,
    miner_id: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /wallet/history?address=&limit=&offset=`: pending transfers first, then the confirmed
/// ledger (rewards and transfers), newest first.
async fn wallet_history(State(node): State<Arc<Node>>, q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let wallet = wallet_param(q.address.or(q.miner_id))?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(ApiError::bad_request("INVALID_LIMIT", "limit must be 1..=500"));
    }
    let offset = q.offset.unwrap_or(0);
    let db = node.db()?;
    let (incoming, outgoing) = store::pending_for(&db, &wallet)?;
    let mut pending: Vec<(u64, Value)> = Vec::new();
    for (t, kind) in incoming.iter().map(|t| (t, "transfer_in")).chain(outgoing.iter().map(|t| (t, "transfer_out"))) {
        let counterparty = if kind == "transfer_in" { &t.from } else { &t.to };
        pending.push((t.slot, json!({
            "kind": kind, "status": "pending", "tx_hash": t.tx_hash, "counterparty": counterparty,
            "amount_i64": t.amount_urtc, "amount_rtc": rtc_f64(t.amount_urtc),
            "confirms_at_epoch": node.spec.epoch_of_slot(t.slot),
        })));
    }
    pending.sort_by_key(|p| std::cmp::Reverse(p.0));
    let skip_pending = offset.min(pending.len());
    let mut items: Vec<Value> = pending.into_iter().skip(skip_pending).take(limit).map(|(_, v)| v).collect();
    let (confirmed, entries) = store::history(&db, &wallet, offset - skip_pending, limit - items.len())?;
    for e in entries {
        items.push(json!({
            "kind": e.kind, "status": "confirmed", "epoch": e.epoch, "tx_hash": e.tx_hash, "counterparty": e.counterparty,
            "amount_i64": e.amount_urtc, "amount_rtc": rtc_f64(e.amount_urtc),
        }));
    }
    Ok(Json(json!({
        "ok": true, "address": wallet, "total": confirmed as usize + incoming.len() + outgoing.len(),
        "limit": limit, "offset": offset, "items": items,
    }))
    .into_response())
}

fn wallet_param(w: Option<String>) -> Result<String, ApiError> {
    let wallet = w.ok_or_else(|| ApiError::bad_request("MISSING_FIELD", "miner_id (or address) is required"))?;
    if !attestation::valid_miner_id(&wallet) {
        return Err(ApiError::bad_request("INVALID_FIELD", "miner_id must match ^[A-Za-z0-9._:-]{1,128}$"));
    }
    canonical_address(&wallet)?;
    Ok(wallet)
}

/// Another spelling of an RTC address is no account of its own (it would answer an empty one):
/// 400 `NON_CANONICAL_ADDRESS`.
fn canonical_address(wallet: &str) -> Result<(), ApiError> {
    if attestation::is_non_canonical_address(wallet) {
        return Err(ApiError::bad_request(
            attestation::NON_CANONICAL_ADDRESS,
            format!("{wallet} is an RTC address in another spelling: write it RTC and 40 lower-case hex digits"),
        ));
    }
    Ok(())
}

/// A query string, or 400 INVALID_QUERY saying what is wrong with it.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::bad_request("INVALID_QUERY", e.body_text()))
}

#[derive(Deserialize)]
struct BalanceQuery {
    miner_id: Option<String>,
    address: Option<String>,
}

async fn balance(State(node): State<Arc<Node>>, q: Result<Query<BalanceQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let wallet = wallet_param(q.miner_id.or(q.address))?;
    let db = node.db()?;
    let amount = store::balance(&db, &wallet)?;
    let (incoming, outgoing) = store::pending_for(&db, &wallet)?;
    let sum = |v: &[store::StoredTransfer]| v.iter().map(|t| t.amount_urtc).sum::<u64>();
    // The last nonce a new transfer must exceed: of the last applied transfer or a pending one.
    let last_nonce = store::last_applied_nonce(&db, &wallet)?.max(outgoing.iter().map(|t| t.nonce).max());
    Ok(Json(json!({
        "miner_id": wallet, "amount_i64": amount, "amount_rtc": rtc_f64(amount),
        "pending_in_i64": sum(&incoming), "pending_out_i64": sum(&outgoing), "last_nonce": last_nonce,
    }))
    .into_response())
}

fn epoch_param(p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<u64, ApiError> {
    let Path(s) = p.map_err(|e| ApiError::bad_request("INVALID_EPOCH", e.body_text()))?;
    s.parse().map_err(|_| ApiError::bad_request("INVALID_EPOCH", format!("epoch must be a non-negative integer, got {s:?}")))
}

fn unsettled(node: &Node, epoch: u64) -> ApiError {
    let current = node.spec.epoch_at(node.clock.now_unix());
    let why = if epoch >= current { "has not ended yet" } else { "is not settled on this node" };
    ApiError::not_found("UNKNOWN_EPOCH", format!("epoch {epoch} {why} (current epoch {current})"))
}

async fn rewards(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
    let epoch = epoch_param(p)?;
    let s = store::settlement(&*node.db()?, epoch)?.ok_or_else(|| unsettled(&node, epoch))?;
    let ledger = store::ledger_for_epoch(&*node.db()?, epoch)?;
    Ok(Json(json!({
        "epoch": epoch,
        "settlement_hash": hex::encode(s.hash()),
        "pot_urtc": s.pot_urtc,
        "distributed_urtc": s.distributed_urtc,
        "rewards": s.entries.iter().map(|e| json!({
            "miner_id": e.miner, "weight": e.weight, "share_i64": e.share_urtc,
            "share_rtc": rtc_f64(e.share_urtc),
        })).collect::<Vec<_>>(),
        "ledger": ledger.iter().map(|l| json!({"wallet": l.wallet, "amount_i64": l.amount_urtc, "kind": l.kind})).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn settlement(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
    let epoch = epoch_param(p)?;
    let db = node.db()?;
    let s = store::settlement(&db, epoch)?.ok_or_else(|| unsettled(&node, epoch))?;
    let cert = store::certificate(&db, epoch)?;
    let applied = store::is_applied(&db, epoch)?;
    let votes = store::votes_for(&db, epoch)?;
    let tally = protocol::consensus::tally(&node.validators, &votes);
    let mismatch = node.mismatches.lock().expect("lock").get(&epoch).copied();
    let status = match (&cert, applied, mismatch) {
        (Some(_), true, None) => "certified",
        (Some(_), _, _) => "certified_mismatch",
        (None, _, _) => "provisional",
    };
    let certificate = cert.map(|c| json!({
        "epoch": c.epoch, "round": c.round, "settlement_hash": hex::encode(c.settlement_hash),
        "signers": c.votes.iter().map(|v| hex::encode(v.validator)).collect::<Vec<_>>(),
        "votes": c.votes.iter().map(|v| json!({
            "validator": hex::encode(v.validator), "registry_digest": hex::encode(v.registry_digest),
            "signature": hex::encode(v.signature)})).collect::<Vec<_>>(),
    }));
    let by_hash: Vec<Value> = tally.by_hash.iter().map(|((round, hash), signers)| json!({
        "round": round, "settlement_hash": hex::encode(hash),
        "validators": signers.iter().map(hex::encode).collect::<Vec<_>>(),
    })).collect();
    let evidence: Vec<Value> = store::evidence_for(&db, epoch)?.iter().map(|e| json!({
        "validator": hex::encode(e.first.validator), "round": e.first.round,
        "first": {"settlement_hash": hex::encode(e.first.settlement_hash), "signature": hex::encode(e.first.signature)},
        "second": {"settlement_hash": hex::encode(e.second.settlement_hash), "signature": hex::encode(e.second.signature)},
    })).collect();
    Ok(Json(json!({
        "epoch": epoch,
        "settlement_hash": hex::encode(s.hash()),
        "status": status,
        "our_settlement_hash_differs": mismatch.map(hex::encode),
        "record": s.to_json(),
        "certificate": certificate,
        "votes": by_hash,
        "equivocations": evidence,
        "quorum": protocol::consensus::quorum(node.validators.len()),
        "validators": node.validators.len(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorQuery {
    /// Verify this Ergo transaction instead of the one this node recorded.
    tx_id: Option<String>,
}

/// `GET /api/epoch/{n}/anchor[?tx_id=]`: the Ergo transaction anchoring the epoch's certified hash
/// (recorded here by the primary, or named by the caller), checked against the Ergo node: R4 must
/// equal this node's certified hash and R5 the epoch.
async fn anchor(
    State(node): State<Arc<Node>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<AnchorQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let epoch = epoch_param(p)?;
    let q = query(q)?;
    let db = node.db()?;
    let cert = store::certificate(&db, epoch)?.ok_or_else(|| {
        ApiError::not_found("NOT_CERTIFIED", format!("epoch {epoch} has no certificate on this node; only certified hashes are anchored"))
    })?;
    let record = store::anchor_record(&db, epoch)?;
    let (tx_id, anchored_at) = match (q.tx_id, &record) {
        (Some(tx), _) => {
            let tx = tx.trim().to_ascii_lowercase();
            if tx.len() != 64 || !tx.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::bad_request("INVALID_TX_ID", "tx_id must be 64 hex digits (an Ergo transaction id)"));
            }
            let at = record.as_ref().filter(|r| r.tx_id == tx).map(|r| r.anchored_at);
            (tx, at)
        }
        (None, Some(r)) => (r.tx_id.clone(), Some(r.anchored_at)),
        (None, None) => {
            return Err(ApiError::not_found(
                "NOT_ANCHORED",
                format!("this node has no anchor for epoch {epoch}; the primary anchors (or pass ?tx_id= to verify a transaction)"),
            ));
        }
    };
    // The look-up: confirmations and the registers, compared with our own certified hash.
    let (confirmations, verified, onchain, lookup_error) = match node.anchor.lookup(&tx_id).await {
        Ok(l) => {
            let ok = crate::anchoring::ergo::verify(&l, &cert.settlement_hash) && l.epoch == Some(epoch);
            let onchain = json!({"settlement_hash": l.settlement_hash.map(hex::encode), "epoch": l.epoch, "inclusion_height": l.inclusion_height});
            (Some(l.confirmations), ok, onchain, None)
        }
        Err(crate::anchoring::ergo::AnchorError::Disabled) => {
            (None, false, Value::Null, Some("no Ergo node is configured on this node (--ergo-url): cannot verify".to_owned()))
        }
        Err(e) => (None, false, Value::Null, Some(e.to_string())),
    };
    Ok(Json(json!({
        "epoch": epoch,
        "settlement_hash": hex::encode(cert.settlement_hash),
        "ergo_tx_id": tx_id,
        "anchored_at": anchored_at,
        "confirmations": confirmations,
        "verified": verified,
        "onchain": onchain,
        "lookup_error": lookup_error,
    }))
    .into_response())
}

async fn stats(State(node): State<Arc<Node>>) -> ApiResult {
    let db = node.db()?;
    let s = store::stats(&db)?;
    let now = node.clock.now_unix();
    let epoch = node.spec.epoch_at(now);
    Ok(Json(json!({
        "network_id": node.spec.network_id,
        "version": env!("CARGO_PKG_VERSION"),
        "epoch": epoch,
        "slot": node.spec.slot_at(now),
        "last_settled_epoch": store::last_settled(&db)?,
        "last_certified_epoch": store::last_certified(&db)?,
        "is_validator": node.is_validator,
        "equivocations_seen": node.counters.equivocations.load(std::sync::atomic::Ordering::Relaxed),
        "settlement_mismatches": node.counters.settlement_mismatches.load(std::sync::atomic::Ordering::Relaxed),
        "receipt_equivocations": node.counters.receipt_equivocations.load(std::sync::atomic::Ordering::Relaxed),
        "bad_certificates": node.counters.bad_certificates.load(std::sync::atomic::Ordering::Relaxed),
        "enrolled_miners": node.enrolled_count(epoch)?,
        "attestations": s.attestations,
        "miners": s.miners,
        "settled_epochs": s.settled_epochs,
        "wallets_with_balance": s.wallets_with_balance,
        "total_balance_i64": s.total_balance_urtc,
        "total_balance_rtc": rtc_f64(s.total_balance_urtc),
        "node_public_key": hex::encode(node.key.public()),
    }))
    .into_response())
}

/// `GET /api/attestation/{id}`: one record of the registry by its id (64 hex digits), as stored
/// here: whose, when, and which node's receipt it carries.
async fn attestation_record(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
    let Path(text) = p.map_err(|e| ApiError::bad_request("INVALID_ID", e.body_text()))?;
    let id = protocol::crypto::decode_hex::<32>("record id", &text).map_err(|e| ApiError::bad_request("INVALID_ID", e.to_string()))?;
    let record = store::record(&*node.db()?, &id)?
        .ok_or_else(|| ApiError::not_found("UNKNOWN_RECORD", format!("no attestation record {text} on this node")))?;
    let slot = record.receipt.slot;
    let body = canonical_json::parse(record.payload.body.as_bytes()).ok();
    let field = |k: &str| body.as_ref().and_then(|b| b.get(k)).and_then(canonical_json::Value::as_str).map(str::to_owned);
    Ok(Json(json!({
        "ok": true,
        "id": hex::encode(id),
        "miner": field("miner"),
        "miner_id": field("miner_id"),
        "epoch": node.spec.epoch_of_slot(slot),
        "slot": slot,
        "receipt_node": hex::encode(record.receipt.node_key),
        "public_key": hex::encode(record.payload.public_key),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn miners(State(node): State<Arc<Node>>, q: Result<Query<Page>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("INVALID_QUERY", "limit must be in 1..=1000"));
    }
    let offset = q.offset.unwrap_or(0);
    let (total, rows) = store::miners(&*node.db()?, offset, limit)?;
    Ok(Json(json!({"total": total, "limit": limit, "offset": offset, "miners": rows})).into_response())
}

/// `GET /health`, the operators' summary (fields as the miners' spec lists them). Always 200 when
/// the process answers; `ok` says whether the database can be read and written.
async fn health(State(node): State<Arc<Node>>) -> ApiResult {
    let db_open = node.db().is_ok_and(|db| db.begin_read().is_ok());
    let db_rw = db_open && node.tallies.writable();
    let now = node.clock.now_unix();
    let tip_age_slots = match node.tallies.last_settled() {
        Some(e) => node.spec.slot_at(now).saturating_sub(node.spec.first_slot(e + 1)),
        None => node.spec.slot_at(now).saturating_sub(node.spec.first_slot(node.first_epoch)),
    };
    let backup_age_hours = match node.backups.last_success_unix() {
        Some(t) => json!(now.saturating_sub(t) as f64 / 3600.0),
        None => Value::Null,
    };
    Ok(Json(json!({
        "ok": db_rw,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": node.started.elapsed().as_secs(),
        "db_rw": db_rw,
        "backup_age_hours": backup_age_hours,
        "tip_age_slots": tip_age_slots,
        "network_id": node.spec.network_id,
        "peers": node.peer_count(),
    }))
    .into_response())
}

async fn p2p_status(State(node): State<Arc<Node>>) -> ApiResult {
    let Some(net) = &node.net else {
        return Ok(Json(json!({"local_peer_id": null, "listen_addrs": [], "role": null, "peers": [], "total_peers": 0,
                              "sync_status": "disabled"})).into_response());
    };
    let peers: Vec<_> = net.state.peers.read().expect("peer table lock").values().cloned().collect();
    let st = &net.state;
    Ok(Json(json!({
        "local_peer_id": st.local_peer_id.to_string(),
        "listen_addrs": *st.listen_addrs.read().expect("lock"),
        "role": st.role.as_str(),
        "total_peers": peers.len(),
        "peers": peers,
        "sync_status": node.sync_status(),
        "gossip": {
            "received": st.gossip_received.load(std::sync::atomic::Ordering::Relaxed),
            "sent": st.gossip_sent.load(std::sync::atomic::Ordering::Relaxed),
            "rejected": st.gossip_rejected.load(std::sync::atomic::Ordering::Relaxed),
        },
        "banned_peers": st.banned.load(std::sync::atomic::Ordering::Relaxed),
    }))
    .into_response())
}

/// `GET /livez`: the process answers.
async fn livez() -> Response {
    Json(json!({"ok": true})).into_response()
}

/// `GET /readyz`: 200 when the database is open and its last write succeeded, enough peers are
/// connected (`--min-peers`; 0 for a node alone by configuration) and the node is synced; 503
/// otherwise, saying why.
async fn readyz(State(node): State<Arc<Node>>) -> Response {
    let db_open = node.db().is_ok_and(|db| db.begin_read().is_ok());
    let db_writable = node.tallies.writable();
    let peers = node.peer_count();
    let synced = node.synced();
    let enough_peers = peers >= u64::from(node.min_peers);
    let ready = db_open && db_writable && enough_peers && synced;
    let mut body = json!({"ok": ready, "db_open": db_open, "db_writable": db_writable, "peers": peers,
                          "peers_required": node.min_peers, "synced": synced});
    if ready {
        return Json(body).into_response();
    }
    let mut why = Vec::new();
    if !db_open {
        why.push("database not open".to_owned());
    }
    if !db_writable {
        why.push("the last database write failed (disk full?)".to_owned());
    }
    if !enough_peers {
        why.push(format!("{peers} peers connected, {} required", node.min_peers));
    }
    if !synced {
        why.push("not synced".to_owned());
    }
    let why = why.join("; ");
    body["code"] = json!("NOT_READY");
    body["error"] = json!(why);
    body["message"] = json!(why);
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn admin_settle(State(node): State<Arc<Node>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult {
    check_admin(&node, &headers)?;
    let body = json_object(&body_bytes(body)?)?;
    let current = node.spec.epoch_at(node.clock.now_unix());
    let epoch = match body.get("epoch") {
        None | Some(canonical_json::Value::Null) => current.checked_sub(1).ok_or_else(|| {
            ApiError::new(StatusCode::CONFLICT, "EPOCH_NOT_ENDED", "no epoch has ended yet")
        })?,
        Some(v) => v.as_i64().and_then(|e| u64::try_from(e).ok()).ok_or_else(|| {
            ApiError::bad_request("INVALID_EPOCH", "epoch must be a non-negative integer")
        })?,
    };
    if epoch >= current {
        return Err(ApiError::new(StatusCode::CONFLICT, "EPOCH_NOT_ENDED", format!("epoch {epoch} has not ended (current {current})")));
    }
    if epoch < node.first_epoch {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "EPOCH_BEFORE_HISTORY",
            format!("epoch {epoch} is before this node's first epoch {}: it holds no records for it", node.first_epoch),
        ));
    }
    if !node.spec.admin.manual_settlement {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "DISABLED", "manual settlement is disabled by the chain spec"));
    }
    let (s, new) = node.writer.settle(epoch).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    if new {
        tracing::info!(epoch, hash = %hex::encode(s.hash()), miners = s.entries.len(), "epoch settled by admin request");
    }
    Ok(Json(json!({
        "ok": true, "epoch": epoch, "settled_now": new, "settlement_hash": hex::encode(s.hash()),
        "miners": s.entries.len(), "distributed_urtc": s.distributed_urtc,
    }))
    .into_response())
}

/// `POST /admin/attest/key` `{miner, action: status|unpin|set, public_key, note}`: inspect or change
/// the key a free-form wallet name is pinned to (PROTOCOL.md §7.2). `status` (the default) reads.
/// `unpin` and `set` sign an admin record with this node's key, which must be one of the chain
/// spec's admin keys, for the open epoch; every node applies it with that epoch's certified
/// settlement, so it holds from the next epoch on.
async fn admin_attest_key(State(node): State<Arc<Node>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult {
    check_admin(&node, &headers)?;
    let body = json_object(&body_bytes(body)?)?;
    let text = |k: &'static str| -> Result<Option<&str>, ApiError> {
        match body.get(k) {
            None | Some(canonical_json::Value::Null) => Ok(None),
            Some(canonical_json::Value::Str(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::bad_request("INVALID_FIELD", format!("`{k}` must be a string"))),
        }
    };
    let miner = text("miner")?.ok_or_else(|| ApiError::bad_request("MISSING_FIELD", "`miner` (the wallet name) is required"))?;
    let action = text("action")?.unwrap_or("status");
    let now_ms = node.clock.now_unix_ms();
    let epoch = node.spec.epoch_at(now_ms / 1000);
    let key = match (action, text("public_key")?) {
        ("status", _) => {
            let st = store::pin_status(&*node.db()?, miner, epoch)?;
            return Ok(Json(json!({
                "ok": true, "miner": miner, "epoch": epoch, "pinned_key": st.pinned_key,
                "pinnable": attestation::valid_miner_id(miner) && !attestation::is_rtc_address(miner),
                "history": st.history.iter().map(|(e, kind, key)| json!({"epoch": e, "kind": kind, "key": key})).collect::<Vec<_>>(),
                "changes": st.changes,
            }))
            .into_response());
        }
        ("unpin", None) => String::new(),
        ("unpin", Some(_)) => return Err(ApiError::bad_request("INVALID_FIELD", "`unpin` takes no public_key (use `set` to pin the name to a key)")),
        ("set", Some(k)) => k.to_ascii_lowercase(),
        ("set", None) => return Err(ApiError::bad_request("MISSING_FIELD", "`set` needs `public_key` (64 hex digits)")),
        (other, _) => {
            return Err(ApiError::bad_request("INVALID_ACTION", format!("action must be status, unpin or set, got {other:?}")));
        }
    };
    let note = text("note")?.unwrap_or("");
    if !admin::admin_keys(&node.spec).contains(&node.key.public()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_AN_ADMIN_NODE",
            format!(
                "this node's key ({}) is not one of the chain spec's admin.keys: send the request to an admin node, or list this key under [admin] keys in the spec of every node",
                hex::encode(node.key.public())
            ),
        ));
    }
    let record = AdminRecord::sign(&node.spec, &node.key, epoch, miner, &key, note, now_ms).map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let id = record.id();
    let new = admission::admin(record, Origin::Miner, epoch);
    match node.writer.admin(new).await.map_err(|e| ApiError::unavailable(e.to_string()))? {
        Ok(_) => node.announce(id),
        Err(r) => return Err(refused(r)),
    }
    tracing::warn!(wallet = miner, action, key = %key, note, epoch, "ADMIN PIN CHANGE signed: applies from epoch {} once epoch {epoch} is certified", epoch + 1);
    Ok(Json(json!({
        "ok": true, "miner": miner, "action": action, "public_key": key, "note": note, "epoch": epoch,
        "applies_from_epoch": epoch + 1, "record_id": hex::encode(id),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct BackupQuery {
    compress: Option<String>,
}

/// `POST /admin/backup?compress=gzip|none`: a consistent snapshot of the database (its last
/// commit, taken without stopping writes), streamed as the response body.
async fn admin_backup(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    q: Result<Query<BackupQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    check_admin(&node, &headers)?;
    let q = query(q)?;
    let compress = match q.compress.as_deref() {
        None | Some("gzip") => true,
        Some("none") => false,
        Some(other) => return Err(ApiError::bad_request("INVALID_QUERY", format!("compress must be gzip or none, not {other:?}"))),
    };
    let guard = node
        .backups
        .try_start()
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "BACKUP_IN_PROGRESS", "another backup is being taken; retry later"))?;
    let db = node.db()?;
    let dir = node.data_dir.clone();
    let (file, info) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let path = dir.join(format!(".online-backup-{}.tmp", hex::encode(crate::keys::generate().public())));
        let info = crate::store::ops::snapshot(&db, &path, compress)?;
        // Unlinked at once: the open handle keeps it readable and nothing is left behind.
        let file = std::fs::File::open(&path)?;
        std::fs::remove_file(&path)?;
        Ok((file, info))
    })
    .await
    .map_err(|_| ApiError::unavailable("backup task failed"))?
    .map_err(|e| {
        node.metrics.backups.get_or_create(&crate::metrics::StatusLabel { status: "failed" }).inc();
        tracing::error!(error = format!("{e:#}"), "online backup failed");
        ApiError::unavailable(format!("backup failed: {e:#}"))
    })?;
    drop(guard);
    tracing::info!(rows = info.rows, bytes = info.bytes, compressed = info.compressed, "online backup taken; streaming it");
    let file = tokio::fs::File::from_std(file);
    let done = node.clone();
    let total = info.bytes;
    // The backup counts as taken once its last byte has gone out (the client stops reading there).
    let stream = futures::stream::unfold(Some((file, done, 0u64)), move |state| async move {
        use tokio::io::AsyncReadExt;
        let (mut file, node, sent) = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                let sent = sent + n as u64;
                if sent == total {
                    node.backups.record_success(node.clock.now_unix());
                    node.metrics.backups.get_or_create(&crate::metrics::StatusLabel { status: "ok" }).inc();
                }
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some((file, node, sent))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let ctype = if compress { "application/gzip" } else { "application/octet-stream" };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (header::CONTENT_LENGTH, info.bytes.to_string()),
            (header::HeaderName::from_static("x-rustchain-backup-rows"), info.rows.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
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
