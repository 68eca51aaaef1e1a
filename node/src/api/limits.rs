//! Abuse protection for the HTTP API: caps on open connections (in total and per IP), time
//! limits on connections (headers must arrive in time; idle keep-alive connections are closed),
//! the client's real IP (from `X-Real-IP`/`X-Forwarded-For` only when the TCP peer is a trusted
//! proxy), per-IP rate limits (public and admin separately), a cap on requests in flight, and
//! JSON bodies for the errors these layers produce.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use crate::api::error::ApiError;
use crate::config::NodeConfig;
use crate::metrics::{Metrics, ScopeLabel};

/// The HTTP API's protection settings (from the node configuration).
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub admin_rate_limit_per_minute: u32,
    pub admin_rate_limit_burst: u32,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_inflight_requests: usize,
    pub timeouts: ConnTimeouts,
}

impl HttpLimits {
    pub fn from_config(cfg: &NodeConfig) -> Self {
        HttpLimits {
            rate_limit_per_minute: cfg.rate_limit_per_minute,
            rate_limit_burst: cfg.rate_limit_burst,
            admin_rate_limit_per_minute: cfg.admin_rate_limit_per_minute,
            admin_rate_limit_burst: cfg.admin_rate_limit_burst,
            trusted_proxies: Arc::new(cfg.trusted_proxies.clone()),
            request_timeout: cfg.request_timeout.0,
            max_connections: cfg.max_connections,
            max_connections_per_ip: cfg.max_connections_per_ip,
            max_inflight_requests: cfg.max_inflight_requests,
            timeouts: ConnTimeouts::from_config(cfg),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        is_trusted(&self.trusted_proxies, ip)
    }
}

fn is_trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|n| n.contains(&ip))
}

// ---------------------------------------------------------------------------------------------
// Connections

/// The TCP peer of a connection (what `ConnectInfo` carries for our listener).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// A TCP listener that refuses (closes at once) connections beyond a total and a per-IP cap.
/// Trusted proxies are exempt from the per-IP cap.
pub struct CappedListener {
    inner: TcpListener,
    limits: HttpLimits,
    open: Arc<Mutex<OpenConnections>>,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl CappedListener {
    pub fn new(inner: TcpListener, limits: HttpLimits) -> Self {
        CappedListener { inner, limits, open: Default::default() }
    }
}

/// A connection counted against the caps until it is dropped.
pub struct CountedStream {
    inner: TcpStream,
    ip: IpAddr,
    open: Arc<Mutex<OpenConnections>>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        let mut o = self.open.lock().expect("connection table");
        o.total -= 1;
        if let Some(n) = o.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Listener for CappedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let ip = addr.ip().to_canonical();
            let exempt = self.limits.trusted(ip);
            {
                let mut o = self.open.lock().expect("connection table");
                let per_ip = o.per_ip.get(&ip).copied().unwrap_or(0);
                if o.total >= self.limits.max_connections || (!exempt && per_ip >= self.limits.max_connections_per_ip) {
                    tracing::debug!(%ip, total = o.total, per_ip, "connection refused: too many open connections");
                    continue; // dropping the stream closes it
                }
                o.total += 1;
                *o.per_ip.entry(ip).or_insert(0) += 1;
            }
            let _ = stream.set_nodelay(true);
            return (CountedStream { inner: stream, ip, open: self.open.clone() }, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// ---------------------------------------------------------------------------------------------
// Serving connections, with time limits

/// How long a connection may keep the server waiting on the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnTimeouts {
    /// From accepting the connection (or from the first byte of the next request on a keep-alive
    /// connection) until the request's headers are complete.
    pub header_read: Duration,
    /// With no request in flight (between requests), or while a response waits for the client to
    /// read it: no progress for this long closes the connection.
    pub idle: Duration,
}

impl ConnTimeouts {
    pub fn from_config(cfg: &NodeConfig) -> Self {
        ConnTimeouts { header_read: cfg.header_read_timeout.0, idle: cfg.idle_timeout.0 }
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, then stop accepting, let the requests in
/// flight finish and return once every connection is closed.
///
/// Each connection is served by hyper's HTTP/1 server (what `axum::serve` uses) under a watchdog
/// that closes it when the client is too slow: headers not complete within
/// [`ConnTimeouts::header_read`], or nothing happening for [`ConnTimeouts::idle`] while no request
/// is being handled. A request being handled is never cut by these (the routes' own request
/// timeout does that). Every request carries `ConnectInfo<PeerAddr>`.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    timeouts: ConnTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let mut shutdown = std::pin::pin!(shutdown);
    // `stop` tells the connections to finish; `open` counts them (each task holds a receiver).
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            _ = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(io, peer, app.clone(), timeouts, stop_rx.clone(), open_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    timeouts: ConnTimeouts,
    mut stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watch = Arc::new(ConnWatch::new());
    let io = TokioIo::new(WatchedIo { inner: io, watch: watch.clone() });
    let service = ConnService { app, peer, watch: watch.clone() };
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let expired = watch.expired(timeouts);
    let mut expired = std::pin::pin!(expired);
    let mut stopping = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            why = &mut expired => {
                // Dropping the connection closes the socket. No handler is running: the client was
                // sending its headers, idle, or not reading a response that is already made.
                tracing::debug!(%peer, "connection closed: {why}");
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                if watch.waiting_on_client() {
                    return;
                }
                // Finish the request in flight, then close.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection stands, as far as its timeouts are concerned.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Reading a request's headers, since then.
    Head(Instant),
    /// A request is being handled.
    Handling,
    /// A response is going out; the last progress then.
    Sending(Instant),
    /// Between requests, since then.
    Idle(Instant),
}

struct ConnWatch {
    state: Mutex<WatchState>,
    changed: Notify,
}

struct WatchState {
    phase: Phase,
    /// Requests handed to the router whose responses have not gone out yet.
    in_flight: usize,
}

impl ConnWatch {
    fn new() -> Self {
        ConnWatch { state: Mutex::new(WatchState { phase: Phase::Head(Instant::now()), in_flight: 0 }), changed: Notify::new() }
    }

    fn phase(&self) -> Phase {
        self.state.lock().expect("connection state").phase
    }

    fn update(&self, f: impl FnOnce(&mut WatchState)) {
        f(&mut self.state.lock().expect("connection state"));
        self.changed.notify_one();
    }

    /// A request goes to the router.
    fn begin(&self) {
        self.update(|s| {
            s.in_flight += 1;
            s.phase = Phase::Handling;
        });
    }

    /// Its response head is ready; the body goes out now.
    fn responded(&self) {
        self.update(|s| {
            if s.in_flight == 1 {
                s.phase = Phase::Sending(Instant::now());
            }
        });
    }

    /// The response has gone out (or the request was dropped).
    fn finished(&self) {
        self.update(|s| {
            s.in_flight -= 1;
            s.phase = if s.in_flight == 0 { Phase::Idle(Instant::now()) } else { Phase::Handling };
        });
    }

    /// Bytes came in: after an idle spell, a new request's headers start.
    fn on_read(&self) {
        let mut s = self.state.lock().expect("connection state");
        if let Phase::Idle(_) = s.phase {
            s.phase = Phase::Head(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// A response made progress (a body chunk, or bytes written to the client).
    fn on_progress(&self) {
        let mut s = self.state.lock().expect("connection state");
        if let Phase::Sending(_) = s.phase {
            s.phase = Phase::Sending(Instant::now());
        }
    }

    /// Nothing is being handled: the connection may be closed without losing work.
    fn waiting_on_client(&self) -> bool {
        matches!(self.phase(), Phase::Head(_) | Phase::Idle(_))
    }

    /// Resolves (with the reason) when the client has been too slow.
    async fn expired(&self, t: ConnTimeouts) -> &'static str {
        loop {
            let changed = self.changed.notified();
            let (deadline, why) = match self.phase() {
                Phase::Head(since) => (Some(since + t.header_read), "request headers not received in time"),
                Phase::Handling => (None, ""),
                Phase::Sending(since) => (Some(since + t.idle), "the client stopped reading the response"),
                Phase::Idle(since) => (Some(since + t.idle), "idle"),
            };
            match deadline {
                Some(d) if Instant::now() >= d => return why,
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(d.into()) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// The connection's IO, reporting traffic to its watch.
struct WatchedIo<I> {
    inner: I,
    watch: Arc<ConnWatch>,
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_read();
        }
        res
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_progress();
        }
        res
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_progress();
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router, for one connection: adds `ConnectInfo<PeerAddr>` and tracks each request until its
/// response has gone out.
struct ConnService {
    app: Router,
    peer: SocketAddr,
    watch: Arc<ConnWatch>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(PeerAddr(self.peer)));
        let request = InFlight::begin(self.watch.clone());
        let response = self.app.clone().oneshot(req);
        Box::pin(async move {
            let response = response.await?;
            request.watch.responded();
            Ok(response.map(|body| TrackedBody { inner: body, request }))
        })
    }
}

/// A request from the moment it is handed to the router until its response body is done (or
/// the request is dropped).
struct InFlight {
    watch: Arc<ConnWatch>,
}

impl InFlight {
    fn begin(watch: Arc<ConnWatch>) -> Self {
        watch.begin();
        InFlight { watch }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.watch.finished();
    }
}

/// A response body that keeps its request in flight until hyper has taken all of it.
struct TrackedBody {
    inner: Body,
    request: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(res, Poll::Ready(Some(Ok(_)))) {
            self.request.watch.on_progress();
        }
        res
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// The client's IP

/// The client's IP as this node believes it: the TCP peer, or what a trusted proxy says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client behind `peer`: `X-Real-IP`, else the right-most `X-Forwarded-For` entry that is not a
/// trusted proxy; both only when `peer` itself is a trusted proxy. Otherwise `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let parse = |s: &str| s.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    if let Some(ip) = headers.get("x-real-ip").and_then(|v| v.to_str().ok()).and_then(parse) {
        return ip;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(trusted, ip) {
                    break;
                }
            }
            None => break, // a malformed entry: trust nothing further left
        }
    }
    client
}

/// Middleware: put the [`ClientIp`] into the request's extensions for the limiters and handlers.
pub async fn resolve_client_ip(State(trusted): State<Arc<Vec<IpNet>>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|c| c.0.0.ip())
        .or_else(|| req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
    if let Some(peer) = peer {
        let ip = client_ip(peer, req.headers(), &trusted);
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// Keys the rate limiter by [`ClientIp`].
#[derive(Clone, Copy, Debug)]
pub struct ClientIpKey;

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        req.extensions().get::<ClientIp>().map(|c| c.0).ok_or(GovernorError::UnableToExtractKey)
    }
}

/// A per-client-IP rate limit layer: `per_minute` sustained, `burst` at once; `None` when disabled
/// (`per_minute` or `burst` 0). Refusals are 429 JSON with `Retry-After`.
pub fn rate_limit_layer(
    per_minute: u32,
    burst: u32,
    scope: &'static str,
    metrics: Metrics,
) -> Option<tower_governor::GovernorLayer<ClientIpKey, governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>, axum::body::Body>> {
    if per_minute == 0 || burst == 0 {
        return None;
    }
    let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute));
    let config = GovernorConfigBuilder::default().key_extractor(ClientIpKey).period(period).burst_size(burst).finish()?;
    let config = Arc::new(config);
    // Forget idle clients now and then, so the table does not grow without bound.
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
    Some(tower_governor::GovernorLayer::new(config).error_handler(move |e| {
        match e {
            GovernorError::TooManyRequests { wait_time, .. } => {
                metrics.api_rate_limited.get_or_create(&ScopeLabel { scope }).inc();
                let wait = wait_time.max(1);
                let mut resp = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                    format!("too many requests from your address; retry in {wait} s"),
                )
                .into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
                resp
            }
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", other.to_string()).into_response(),
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// Requests in flight, and JSON for layer-made errors

/// Middleware: at most `permits` requests in flight; beyond that, 503 at once (no queueing).
/// The probes are exempt, so an overloaded node is not also declared dead.
pub async fn limit_in_flight(State(sem): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/livez" | "/readyz") {
        return next.run(req).await;
    }
    match sem.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", "the node is handling too many requests; retry shortly")
            .into_response(),
    }
}

/// Middleware: an error response without a body type (made by a tower layer, e.g. the timeout's
/// 408) gets the API's JSON error shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || resp.headers().contains_key(header::CONTENT_TYPE) {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::REQUEST_TIMEOUT => ("REQUEST_TIMEOUT", "the request took too long and was cancelled"),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body is larger than 16 KiB"),
        StatusCode::SERVICE_UNAVAILABLE => ("UNAVAILABLE", "service unavailable"),
        StatusCode::TOO_MANY_REQUESTS => ("RATE_LIMITED", "too many requests"),
        _ => ("HTTP_ERROR", "request failed"),
    };
    let (parts, _) = resp.into_parts();
    let mut json = ApiError::new(status, code, message).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_LENGTH {
            json.headers_mut().insert(k.clone(), v.clone());
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn client_ip_trusts_headers_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let spoof = h(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(client_ip(stranger, &spoof, &trusted), stranger, "a stranger's headers are ignored");
        assert_eq!(client_ip(proxy, &spoof, &trusted), "5.6.7.8".parse::<IpAddr>().unwrap(), "X-Real-IP first");
        // Right-most untrusted hop: the client cannot push a fake address past our proxies.
        let xff = h(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.9.9.9")]);
        assert_eq!(client_ip(proxy, &xff, &trusted), "198.51.100.7".parse::<IpAddr>().unwrap());
        let two = h(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.8")]);
        assert_eq!(client_ip(proxy, &two, &trusted), "198.51.100.8".parse::<IpAddr>().unwrap());
        let garbage = h(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(proxy, &garbage, &trusted), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        // IPv4-mapped IPv6 peers match IPv4 CIDRs.
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_ip(mapped, &spoof, &trusted), "5.6.7.8".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(proxy, &spoof, &[]), proxy, "no trusted proxies: headers never count");
    }
}
