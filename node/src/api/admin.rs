//! Admin routes (`X-Admin-Key`): `/admin/settle-epoch`, `/admin/attest/key`, `/admin/backup`.

use super::*;
use protocol::admin::{AdminRecord, admin_keys};

pub(super) async fn admin_settle(State(node): State<Arc<Node>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult {
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
pub(super) async fn admin_attest_key(State(node): State<Arc<Node>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult {
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
    if !admin_keys(&node.spec).contains(&node.key.public()) {
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
pub(super) struct BackupQuery {
    compress: Option<String>,
}

/// `POST /admin/backup?compress=gzip|none`: a consistent snapshot of the database (its last
/// commit, taken without stopping writes), streamed as the response body.
pub(super) async fn admin_backup(
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
