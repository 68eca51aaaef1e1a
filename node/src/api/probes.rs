//! Health and probes: `/health`, `/api/p2p/status`, `/livez`, `/readyz` (never rate-limited).

use super::*;

/// `GET /health`, the operators' summary (fields as the miners' spec lists them). Always 200 when
/// the process answers; `ok` says whether the database can be read and written.
pub(super) async fn health(State(node): State<Arc<Node>>) -> ApiResult {
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

pub(super) async fn p2p_status(State(node): State<Arc<Node>>) -> ApiResult {
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
pub(super) async fn livez() -> Response {
    Json(json!({"ok": true})).into_response()
}

/// `GET /readyz`: 200 when the database is open and its last write succeeded, enough peers are
/// connected (`--min-peers`; 0 for a node alone by configuration) and the node is synced; 503
/// otherwise, saying why.
pub(super) async fn readyz(State(node): State<Arc<Node>>) -> Response {
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
