//! `GET /api/events?types=&wallet=`: the live feed as server-sent events (`crate::events`). Each
//! event is `event: <kind>` with `data: {"kind", "epoch", "wallets", "data"}`. A client that falls
//! more than the buffer behind gets a last `event: dropped` saying so, and the stream ends; when
//! every place is taken a new client gets 503 `TOO_MANY_CLIENTS`.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tokio::sync::broadcast::error::RecvError;

use super::*;
use crate::events::KINDS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedQuery {
    /// Comma-separated kinds (default: all).
    types: Option<String>,
    /// Only events concerning this wallet.
    wallet: Option<String>,
}

pub(super) async fn events(State(node): State<Arc<Node>>, q: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult {
    let q = query(q)?;
    let kinds: Vec<&'static str> = match q.types.as_deref().filter(|t| !t.is_empty()) {
        None => KINDS.to_vec(),
        Some(t) => t
            .split(',')
            .map(|k| KINDS.iter().copied().find(|known| *known == k.trim()).ok_or_else(|| {
                ApiError::bad_request("INVALID_TYPES", format!("unknown event type {k:?}; the types are {}", KINDS.join(", ")))
            }))
            .collect::<Result<_, _>>()?,
    };
    let wallet = match q.wallet {
        Some(w) => Some(wallet_param(Some(w))?),
        None => None,
    };
    let Some((rx, permit)) = node.events.subscribe() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "TOO_MANY_CLIENTS", format!("the live feed has {} clients already", crate::events::MAX_CLIENTS)));
    };
    node.metrics.event_clients.set(node.events.clients() as i64);
    // The stream's state: the receiver, this client's place (`None` once it has been dropped), and
    // its filters.
    let state = (rx, Some(permit), node.clone(), kinds, wallet);
    let stream = futures::stream::unfold(state, |(mut rx, permit, node, kinds, wallet)| {
        async move {
            permit.as_ref()?;
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if !kinds.contains(&e.kind) || wallet.as_ref().is_some_and(|w| !e.wallets.contains(w)) {
                            continue;
                        }
                        node.metrics.events_sent.inc();
                        let sse = SseEvent::default().event(e.kind).json_data(&*e).unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
                        return Some((Ok::<_, Infallible>(sse), (rx, permit, node, kinds, wallet)));
                    }
                    Err(RecvError::Lagged(n)) => {
                        node.metrics.event_clients_dropped.inc();
                        let why = format!("this client fell {n} events behind the node's buffer of {}; reconnect", crate::events::BUFFER);
                        let sse = SseEvent::default().event("dropped").data(why);
                        node.metrics.event_clients.set(node.events.clients().saturating_sub(1) as i64);
                        return Some((Ok(sse), (rx, None, node, kinds, wallet)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}
