//! The history API: what this node holds of the chain, paged. `GET /api/epochs` (the settled
//! epochs, newest first), `GET /api/epochs/{n}` (one epoch's summary), `/api/epochs/{n}/miners`
//! and `/transfers` (its settlement's lines), `/api/epochs/{n}/records` (the records of its
//! registry, as stored: what `rustchain verify` re-derives the settlement from). Every node serves
//! what it holds; an archive holds everything.

use super::*;

/// The most items one page holds, and the default.
const MAX_EPOCHS: usize = 100;
const DEFAULT_EPOCHS: usize = 50;
const MAX_RECORDS: usize = 1000;
const DEFAULT_RECORDS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EpochsQuery {
    cursor: Option<String>,
    limit: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    order: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordsQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

/// `limit` as given, in `1..=max`, or `default`.
fn limit_param(limit: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(text) = limit else { return Ok(default) };
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request("INVALID_LIMIT", format!("limit must be an integer in 1..={max}, got {text:?}"))),
    }
}

/// A cursor that is an epoch number (`next_cursor` of `/api/epochs`, anchors, a miner's history).
fn epoch_cursor(c: Option<&str>) -> Result<Option<u64>, ApiError> {
    match c {
        None | Some("") => Ok(None),
        Some(c) => c.parse::<u64>().map(Some).map_err(|_| ApiError::bad_request("INVALID_CURSOR", format!("cursor must be an epoch number from next_cursor, got {c:?}"))),
    }
}

/// The epoch in the path, the paging query and its limit, of the per-epoch pages.
fn epoch_page(
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
    default: usize,
    max: usize,
) -> Result<(u64, RecordsQuery, usize), ApiError> {
    let epoch = epoch_param(p)?;
    let q = query(q)?;
    let limit = limit_param(q.limit.as_deref(), default, max)?;
    Ok((epoch, q, limit))
}

/// An epoch's status here: `certified` (its certificate and certified record applied),
/// `certified_mismatch` (certified for another hash than the one this node computed, or its record
/// not yet held), `provisional` (settled, no certificate yet).
pub(super) fn epoch_status(node: &Node, certified: bool, applied: bool, epoch: u64) -> &'static str {
    let mismatch = node.mismatches.lock().expect("lock").contains_key(&epoch);
    match (certified, applied, mismatch) {
        (true, true, false) => "certified",
        (true, _, _) => "certified_mismatch",
        (false, _, _) => "provisional",
    }
}

/// A history answer with a strong `ETag` (a hash of its bytes) and a conditional GET: an
/// `If-None-Match` naming it (weakly compared, as RFC 9110 says for this header) gets 304 with no
/// body. `immutable`: the answer can no longer change: cacheable for a day; anything else must be
/// revalidated (`no-cache`: a late record, a vote or an anchor may still change it).
pub(super) fn conditional(headers: &HeaderMap, body: &Value, immutable: bool) -> Response {
    let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
    let tag = format!("\"{}\"", hex::encode(&protocol::crypto::sha256(&bytes)[..16]));
    let cache = if immutable { "public, max-age=86400" } else { "no-cache" };
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
    });
    let status = if matches { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let body = if matches { Body::empty() } else { Body::from(bytes) };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::ETAG, tag.parse().expect("hex is a valid header value"));
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static(cache));
    if !matches {
        h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    r
}

/// Whether the settlement record this node holds for `epoch` is the certified one, applied and not
/// in dispute: it never changes again (its transfers are then immutable; its registry is not, as a
/// peer's record may still arrive late).
fn record_final(node: &Node, db: &redb::Database, epoch: u64) -> Result<bool, ApiError> {
    Ok(store::is_applied(db, epoch)? && !node.mismatches.lock().expect("lock").contains_key(&epoch))
}

/// One epoch's summary, or `None` when this node holds no settlement of it.
fn summary(node: &Node, db: &redb::Database, epoch: u64) -> Result<Option<Value>, ApiError> {
    let Some(s) = store::settlement(db, epoch)? else { return Ok(None) };
    let cert = store::certificate(db, epoch)?;
    let applied = store::is_applied(db, epoch)?;
    let anchor = store::anchor_record(db, epoch)?;
    // Once applied (and not in dispute) the record held is the certified one: its hash is the
    // certificate's, without hashing a record that may be megabytes.
    let hash = match &cert {
        Some(c) if applied && !node.mismatches.lock().expect("lock").contains_key(&epoch) => c.settlement_hash,
        _ => s.hash(),
    };
    let judged = s.transfers.len();
    let applied_transfers = s.transfers.iter().filter(|t| t.result == TransferResult::Applied).count();
    Ok(Some(json!({
        "epoch": epoch,
        "status": epoch_status(node, cert.is_some(), applied, epoch),
        "settlement_hash": hex::encode(hash),
        "certified_hash": cert.as_ref().map(|c| hex::encode(c.settlement_hash)),
        "prev_settlement_hash": hex::encode(s.prev_settlement_hash),
        "pot_urtc": s.pot_urtc,
        "distributed_urtc": s.distributed_urtc,
        "enrolled_miners": s.entries.len(),
        "total_weight": s.total_weight,
        "transfers_judged": judged,
        "transfers_applied": applied_transfers,
        "new_bindings": s.bindings.len(),
        "certificate": cert.as_ref().map(|c| json!({"round": c.round, "signers": c.votes.len()})),
        "anchor_tx": anchor.map(|a| a.tx_id),
    })))
}

/// 404 for an epoch this node holds no settlement of, saying which it does hold.
fn not_held(node: &Node, db: &redb::Database, epoch: u64) -> Result<ApiError, ApiError> {
    let current = node.spec.epoch_at(node.clock.now_unix());
    if epoch >= current {
        return Ok(unsettled(node, epoch));
    }
    Ok(match store::settled_range(db)? {
        Some((oldest, newest)) => ApiError::not_found(
            "UNKNOWN_EPOCH",
            format!("this node holds no settlement of epoch {epoch}; it holds epochs {oldest} to {newest} (an archive node holds them all)"),
        ),
        None => ApiError::not_found("UNKNOWN_EPOCH", format!("this node holds no settled epoch yet (current epoch {current})")),
    })
}

/// `GET /api/epochs?cursor=&limit=&order=`: the settled epochs this node holds, newest first (or
/// `order=asc`), `limit` (1..=100, default 50) per page; `next_cursor` starts the next page.
/// A cursor is an epoch number: an epoch settled while a client pages is never shown twice nor
/// shifts the others. (An old epoch filled in later, by a node catching up on history, can land
/// behind a client's cursor; it is there on the next walk.)
pub(super) async fn epochs(State(node): State<Arc<Node>>, q: Result<Query<EpochsQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let limit = limit_param(q.limit.as_deref(), DEFAULT_EPOCHS, MAX_EPOCHS)?;
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(o) => return Err(ApiError::bad_request("INVALID_ORDER", format!("order must be asc or desc, got {o:?}"))),
    };
    let cursor = epoch_cursor(q.cursor.as_deref())?;
    let db = node.db()?;
    let (page, next) = store::settled_epochs_page(&db, cursor, limit, ascending)?;
    let mut items = Vec::with_capacity(page.len());
    for e in page {
        items.extend(summary(&node, &db, e)?);
    }
    let range = store::settled_range(&db)?;
    Ok(Json(json!({
        "epochs": items,
        "next_cursor": next.map(|n| n.to_string()),
        "oldest_epoch": range.map(|r| r.0),
        "newest_epoch": range.map(|r| r.1),
    }))
    .into_response())
}

/// `GET /api/epochs/{n}`: the epoch's summary, and how many records its registry holds here.
pub(super) async fn epoch(State(node): State<Arc<Node>>, headers: HeaderMap, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
    let epoch = epoch_param(p)?;
    let db = node.db()?;
    let Some(mut s) = summary(&node, &db, epoch)? else { return Err(not_held(&node, &db, epoch)?) };
    s["records"] = json!(store::epoch_ids(&db, epoch)?.len());
    Ok(conditional(&headers, &s, false))
}

/// `GET /api/epochs/{n}/records?cursor=&limit=`: the records of the epoch's registry this node
/// holds (attestations and transfers received in it, admin changes naming it), in id order, as
/// stored: `{id, kind, cbor}` with the CBOR in hex, `limit` (1..=1000, default 500) per page.
pub(super) async fn records(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let (epoch, q, limit) = epoch_page(p, q, DEFAULT_RECORDS, MAX_RECORDS)?;
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            protocol::crypto::decode_hex::<32>("cursor", c)
                .map_err(|_| ApiError::bad_request("INVALID_CURSOR", format!("cursor must be a record id (64 hex digits) from next_cursor, got {c:?}")))?,
        ),
    };
    let db = node.db()?;
    if !store::has_settlement(&db, epoch)? && store::epoch_ids_page(&db, epoch, epoch, None, 1)?.0.is_empty() {
        return Err(not_held(&node, &db, epoch)?);
    }
    let (page, next) = store::epoch_records_page(&db, epoch, after, limit)?;
    let body = json!({
        "epoch": epoch,
        "records": page.iter().map(|(kind, id, cbor)| json!({"id": hex::encode(id), "kind": kind, "cbor": hex::encode(cbor)})).collect::<Vec<_>>(),
        "next_cursor": next.map(hex::encode),
    });
    Ok(conditional(&headers, &body, false))
}

/// `GET /api/epochs/{n}/miners?cursor=&limit=`: the settlement's enrolled wallets in wallet order
/// (weight, share) with the claim that enrolled each (miner id, record id, family, arch,
/// fingerprint verdict), `limit` (1..=100, default 50); `next_cursor` is the last wallet returned.
pub(super) async fn miners(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let (epoch, q, limit) = epoch_page(p, q, DEFAULT_EPOCHS, MAX_EPOCHS)?;
    let after = q.cursor.as_deref().filter(|c| !c.is_empty());
    if let Some(c) = after
        && !attestation::valid_miner_id(c) {
        return Err(ApiError::bad_request("INVALID_CURSOR", format!("cursor must be a wallet from next_cursor, got {c:?}")));
    }
    let db = node.db()?;
    let Some((page, next)) = store::epoch_miners_page(&db, epoch, after, limit)? else { return Err(not_held(&node, &db, epoch)?) };
    let body = json!({"epoch": epoch, "miners": page, "next_cursor": next});
    Ok(conditional(&headers, &body, false))
}

/// `GET /api/epochs/{n}/transfers?cursor=&limit=`: the transfers the settlement judged, in judging
/// order (sender, nonce, tx hash), with their results, `limit` (1..=100, default 50); `next_cursor`
/// is the position of the next one.
pub(super) async fn transfers(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let (epoch, q, limit) = epoch_page(p, q, DEFAULT_EPOCHS, MAX_EPOCHS)?;
    let start = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<usize>().map_err(|_| ApiError::bad_request("INVALID_CURSOR", format!("cursor must be a position from next_cursor, got {c:?}")))?,
    };
    let db = node.db()?;
    let Some(s) = store::settlement(&db, epoch)? else { return Err(not_held(&node, &db, epoch)?) };
    let page: Vec<Value> = s.transfers.iter().skip(start).take(limit).map(|t| json!({
        "tx_hash": t.tx_hash, "from": t.from, "to": t.to, "amount_urtc": t.amount_urtc, "nonce": t.nonce, "result": t.result.as_str(),
    })).collect();
    let next = (start.saturating_add(limit) < s.transfers.len()).then(|| (start + limit).to_string());
    let body = json!({"epoch": epoch, "transfers": page, "next_cursor": next, "total": s.transfers.len()});
    Ok(conditional(&headers, &body, record_final(&node, &db, epoch)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnchorsQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

/// An Ergo transaction on the public explorer.
fn ergo_explorer(tx: &str) -> String {
    format!("https://explorer.ergoplatform.com/en/transactions/{tx}")
}

/// `GET /api/anchors?cursor=&limit=`: the anchors this node recorded (the primary records them),
/// newest first: epoch, certified hash, Ergo transaction and an explorer link.
pub(super) async fn anchors(State(node): State<Arc<Node>>, q: Result<Query<AnchorsQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let limit = limit_param(q.limit.as_deref(), DEFAULT_EPOCHS, MAX_EPOCHS)?;
    let from = epoch_cursor(q.cursor.as_deref())?;
    let (page, next) = store::anchors_page(&*node.db()?, from, limit)?;
    let items: Vec<Value> = page
        .iter()
        .map(|(e, a)| json!({"epoch": e, "settlement_hash": hex::encode(a.settlement_hash), "ergo_tx_id": a.tx_id, "anchored_at": a.anchored_at, "explorer_url": ergo_explorer(&a.tx_id)}))
        .collect();
    Ok(Json(json!({"anchors": items, "next_cursor": next.map(|n| n.to_string())})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    q: Option<String>,
}

/// How many certificates a search for a settlement hash looks through (newest first).
const SEARCH_CERTIFICATES: usize = 10_000;

/// `GET /api/search?q=`: what `q` is and where to look at it. An RTC address is a wallet; a number
/// an epoch; 64 hex digits a record id or a certified settlement hash; 32 hex digits a transfer;
/// and any wallet name that attested here (whatever it looks like) a miner. Every match is listed
/// with the API path that shows it; none is an empty list, not an error.
pub(super) async fn search(State(node): State<Arc<Node>>, q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let text = q.q.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if text.is_empty() || text.len() > 128 {
        return Err(ApiError::bad_request("INVALID_QUERY", "q must be 1 to 128 characters"));
    }
    let node2 = node.clone();
    let asked = text.clone();
    let results = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, ApiError> {
        let db = node2.db()?;
        let hex_of = |n: usize| text.len() == n && text.bytes().all(|b| b.is_ascii_hexdigit());
        let mut results = Vec::new();
        let mut hit = |kind: &str, href: Option<String>| results.push(json!({"kind": kind, "href": href}));
        if attestation::is_rtc_address(&text) {
            // Any spelling is the one canonical address: RTC and lower-case hex.
            let canonical = format!("RTC{}", text[3..].to_ascii_lowercase());
            hit("wallet", Some(format!("/wallet/balance?address={canonical}")));
        } else if text.bytes().all(|b| b.is_ascii_digit()) && let Ok(epoch) = text.parse::<u64>() {
            if store::has_settlement(&db, epoch)? {
                hit("epoch", Some(format!("/api/epochs/{epoch}")));
            }
        } else if hex_of(64) {
            let lower = text.to_ascii_lowercase();
            let id = protocol::crypto::decode_hex::<32>("q", &lower).map_err(|e| ApiError::bad_request("INVALID_QUERY", e.to_string()))?;
            match store::record_kind(&db, &id)? {
                Some("attestation") => hit("attestation", Some(format!("/api/attestation/{lower}"))),
                // Transfer and admin records have no page of their own: their epoch's records list them.
                Some(kind) => hit(kind, None),
                None => {
                    if let Some(epoch) = store::epoch_certified_as(&db, &id, SEARCH_CERTIFICATES)? {
                        hit("settlement", Some(format!("/api/epoch/{epoch}/settlement")));
                    }
                }
            }
        } else if hex_of(32) {
            let lower = text.to_ascii_lowercase();
            if store::tx_state(&db, &lower)?.is_some() {
                hit("transfer", Some(format!("/wallet/tx/{lower}")));
            }
        }
        // A wallet name can look like anything above (digits, hex): a miner too, whenever it is one.
        if attestation::valid_miner_id(&text) && store::is_miner(&db, &text)? {
            hit("miner", Some(format!("/api/miner/{text}")));
        }
        Ok(results)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "STORAGE_UNAVAILABLE", "the search task failed"))??;
    Ok(Json(json!({"query": asked, "results": results})).into_response())
}

/// The wallet in a `/api/miner/{wallet}` path: a valid miner id in its canonical spelling.
fn wallet_path(p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<String, ApiError> {
    let Path(w) = p.map_err(|e| ApiError::bad_request("INVALID_FIELD", e.body_text()))?;
    super::wallet_param(Some(w))
}

/// `GET /api/miner/{wallet}`: first and last epoch enrolled here, how many, total earned, and the
/// latest attestation's device.
pub(super) async fn miner(State(node): State<Arc<Node>>, p: Result<Path<String>, axum::extract::rejection::PathRejection>) -> ApiResult {
    let wallet = wallet_path(p)?;
    let o = store::miner_overview(&*node.db()?, &wallet)?
        .ok_or_else(|| ApiError::not_found("UNKNOWN_MINER", format!("{wallet} never attested on this node")))?;
    Ok(Json(json!({"miner": wallet, "overview": o, "total_earned_rtc": rtc_f64(o.total_earned_urtc)})).into_response())
}

/// `GET /api/miner/{wallet}/history?cursor=&limit=`: per epoch the wallet enrolled in, newest
/// first: the enrolling claim (weight, miner id, record, arch, fingerprint verdict) and the reward.
pub(super) async fn miner_history(
    State(node): State<Arc<Node>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<AnchorsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let wallet = wallet_path(p)?;
    let q = query(q)?;
    let limit = limit_param(q.limit.as_deref(), DEFAULT_EPOCHS, MAX_EPOCHS)?;
    let from = epoch_cursor(q.cursor.as_deref())?;
    let (page, next) = store::miner_history(&*node.db()?, &wallet, from, limit)?;
    Ok(Json(json!({"miner": wallet, "epochs": page, "next_cursor": next.map(|n| n.to_string())})).into_response())
}
