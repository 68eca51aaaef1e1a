//! The wallets' routes: `/wallet/balance`, `/wallet/transfer/signed`, `/wallet/history`,
//! `/wallet/tx/{tx_hash}`.

use super::*;

/// `POST /wallet/transfer/signed`: a field wallet's signed transfer. Verified, checked against the
/// sender's nonce and confirmed-minus-pending balance, stored, announced; settled with the epoch.
pub(super) async fn transfer_signed(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
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
    crate::events::transfer_pending(&node.events, confirms_at, &stored);
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

pub(super) fn transfer_json(t: &store::StoredTransfer) -> Value {
    json!({
        "tx_hash": t.tx_hash, "from_address": t.from, "to_address": t.to, "amount_i64": t.amount_urtc,
        "amount_rtc": rtc_f64(t.amount_urtc), "nonce": t.nonce, "memo": t.memo,
    })
}

/// `GET /wallet/tx/{tx_hash}`: pending, confirmed (epoch) or rejected (reason), as this node knows it.
pub(super) async fn wallet_tx(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
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
pub(super) struct HistoryQuery {
    address: Option<String>,
    miner_id: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /wallet/history?address=&limit=&offset=`: pending transfers first, then the confirmed
/// ledger (rewards and transfers), newest first.
pub(super) async fn wallet_history(State(node): State<Arc<Node>>, q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
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

#[derive(Deserialize)]
pub(super) struct BalanceQuery {
    miner_id: Option<String>,
    address: Option<String>,
}

pub(super) async fn balance(State(node): State<Arc<Node>>, q: Result<Query<BalanceQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
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
