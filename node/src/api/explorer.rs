//! Reads for explorers and pools: `/rewards/epoch/{n}`, `/api/epoch/{n}/settlement`,
//! `/api/epoch/{n}/anchor`, `/api/stats`, `/api/miners`, `/api/attestation/{id}`.

use super::*;

pub(super) async fn rewards(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
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

pub(super) async fn settlement(State(node): State<Arc<Node>>, headers: HeaderMap, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
    let epoch = epoch_param(p)?;
    let db = node.db()?;
    let s = store::settlement(&db, epoch)?.ok_or_else(|| unsettled(&node, epoch))?;
    let cert = store::certificate(&db, epoch)?;
    let applied = store::is_applied(&db, epoch)?;
    let votes = store::votes_for(&db, epoch)?;
    let tally = protocol::consensus::tally(&node.validators, &votes);
    let mismatch = node.mismatches.lock().expect("lock").get(&epoch).copied();
    let status = super::history::epoch_status(&node, cert.is_some(), applied, epoch);
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
    let body = json!({
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
    });
    // Votes and evidence for it may still arrive: revalidated, never cached as final.
    Ok(super::history::conditional(&headers, &body, false))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnchorQuery {
    /// Verify this Ergo transaction instead of the one this node recorded.
    tx_id: Option<String>,
}

/// `GET /api/epoch/{n}/anchor[?tx_id=]`: the Ergo transaction anchoring the epoch's certified hash
/// (recorded here by the primary, or named by the caller), checked against the Ergo node: R4 must
/// equal this node's certified hash and R5 the epoch.
pub(super) async fn anchor(
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

pub(super) async fn stats(State(node): State<Arc<Node>>) -> ApiResult {
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
pub(super) async fn attestation_record(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
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
pub(super) struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(super) async fn miners(State(node): State<Arc<Node>>, q: Result<Query<Page>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("INVALID_QUERY", "limit must be in 1..=1000"));
    }
    let offset = q.offset.unwrap_or(0);
    let (total, rows) = store::miners(&*node.db()?, offset, limit)?;
    Ok(Json(json!({"total": total, "limit": limit, "offset": offset, "miners": rows})).into_response())
}
