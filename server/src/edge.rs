//! The network edge: accepting connections and driving HTTP/1.1 on them,
//! with the limits a hostile or broken client must not get past.
//!
//! - **Header-read timeout**: once the first byte of a request head arrives,
//!   the whole head must follow within `header_read_timeout_ms`; otherwise
//!   the client gets a 408 problem and the connection is closed.
//! - **Idle timeout**: a connection with no request in flight and no bytes
//!   moving for `idle_timeout_ms` is closed (silently: nothing was asked).
//! - **Body-read timeout**: a request body must be complete within
//!   `body_read_timeout_ms` of its head. A slow body fails its handler at
//!   once (so it frees its concurrency slot then, not at the request
//!   timeout) and is answered 408 with `connection: close`. The time a
//!   handler spends waiting for body bytes does not count against
//!   `request_timeout_ms` ([`handler_timeout`]): each limit measures one thing.
//! - **Connection cap**: at most `max_connections` open connections, and
//!   never more than `RLIMIT_NOFILE` minus `fd_reserve` (descriptors kept for
//!   the engine's log, snapshots and models). At the cap a new connection
//!   evicts the longest-idle connection that has no request in flight
//!   (idle keep-alive and unfinished heads alike), so an orchestrator's
//!   `/healthz` still gets in however many idle sockets a client holds. If
//!   every connection has a request in flight, the newcomer is answered 503
//!   with `Retry-After` and closed.
//!
//! **Errors below the router.** hyper answers a request it cannot parse
//! itself, before any service sees it: 400 (bad request line or header),
//! 414 (URI over 65534 bytes) and 431 (head over the limit), each with an
//! empty body and `connection: close`. hyper has no hook for that answer, so
//! [`EdgeIo`], the connection's I/O wrapper, recognises that exact head as
//! hyper writes it (`HTTP/1.1 <400|414|431> …\r\nconnection: close\r\n
//! content-length: 0\r\n` at the end of a write: it is the last thing
//! hyper sends on the connection) and writes a problem+json answer in its
//! place.
//! This is robust where the alternatives are not: reading request heads
//! ourselves (with httparse) before hyper would need to re-implement HTTP/1
//! body framing to find the next head on a keep-alive connection, and
//! hyper's error is only reported after its bytes are on the wire. The
//! pattern cannot match a response of ours: our handlers answer errors with
//! a JSON body (whose strings escape CR and LF), never `content-length: 0`.
//! After such an answer the connection is closed "lingeringly" (write side
//! shut, unread input drained for a moment) so that the client reads the
//! answer instead of a reset.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use tracing::{debug, info, warn};

use crate::config::ServeConfig;

/// Largest request head (request line and header fields), bytes. Above
/// hyper's own URI limit (65534 bytes) so that a long URI is told apart
/// (414) from a large head (431).
pub const HEAD_BYTES_MAX: usize = 128 << 10;
/// Most header fields in one request head (more: 431).
pub const HEADERS_MAX: usize = 100;
/// How long a connection we answered with an error is drained before it is
/// closed, so that the client reads the answer rather than a reset.
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes drained in that time.
const LINGER_BYTES_MAX: usize = 1 << 20;
/// hyper's bare error head (status line, `connection`, `content-length`,
/// `date`) is about 110 bytes; it is looked for in this many last bytes of a
/// write.
const BARE_TAIL_BYTES: usize = 256;
/// How long writing one of our own error answers may take.
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The edge's limits, from [`ServeConfig`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    /// The configured cap, before `RLIMIT_NOFILE` is applied.
    pub max_connections: usize,
    pub fd_reserve: u64,
}

impl Limits {
    pub fn from_config(config: &ServeConfig) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(config.server.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(config.server.idle_timeout_ms),
            body_read_timeout: Duration::from_millis(config.server.body_read_timeout_ms),
            max_connections: config.server.max_connections,
            fd_reserve: config.server.fd_reserve,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct EdgeStats {
    open: AtomicU64,
    cap: AtomicU64,
    accepted: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    bad_heads: AtomicU64,
    accept_errors: AtomicU64,
}

impl EdgeStats {
    /// Prometheus text.
    pub fn metrics_text(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, kind, help, value) in [
            ("recwal_http_connections_open", "gauge", "Open HTTP connections.", get(&self.open)),
            (
                "recwal_http_connections_max",
                "gauge",
                "The connection cap in force (max_connections, bounded by RLIMIT_NOFILE minus fd_reserve).",
                get(&self.cap),
            ),
            ("recwal_http_connections_accepted_total", "counter", "Connections accepted.", get(&self.accepted)),
            (
                "recwal_http_connections_evicted_total",
                "counter",
                "Idle connections closed at the cap to admit a new one.",
                get(&self.evicted),
            ),
            (
                "recwal_http_connections_refused_total",
                "counter",
                "Connections answered 503 at the cap (every connection had a request in flight).",
                get(&self.refused),
            ),
            (
                "recwal_http_accept_errors_total",
                "counter",
                "Failed accepts (e.g. out of file descriptors).",
                get(&self.accept_errors),
            ),
            (
                "recwal_http_bad_request_heads_total",
                "counter",
                "Request heads refused before routing (400, 414, 431).",
                get(&self.bad_heads),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        out.push_str(
            "# HELP recwal_http_connection_timeouts_total Connections cut by a timeout, per kind.\n\
             # TYPE recwal_http_connection_timeouts_total counter\n",
        );
        for (kind, counter) in
            [("header", &self.header_timeouts), ("idle", &self.idle_timeouts), ("body", &self.body_timeouts)]
        {
            out.push_str(&format!("recwal_http_connection_timeouts_total{{kind=\"{kind}\"}} {}\n", get(counter)));
        }
        out
    }
}

/// One connection's state, shared by its I/O wrapper, its requests and the
/// accept loop (which may evict it).
struct Conn {
    id: u64,
    /// When the connection was opened; the clock for the fields below.
    opened: Instant,
    /// Requests whose handler is running.
    in_flight: AtomicUsize,
    /// Microseconds after `opened`: last byte read or written.
    last_activity_us: AtomicU64,
    /// Microseconds after `opened` + 1 when the first byte of a request head
    /// arrived with no request in flight; 0 while none is pending.
    head_started_us: AtomicU64,
    /// Something the watchdog must re-read changed.
    changed: Notify,
    /// The accept loop asks the connection to close.
    evict: Notify,
    evicting: AtomicBool,
    /// hyper's own error head was replaced by a problem answer.
    rewrote: AtomicBool,
}

impl Conn {
    fn new(id: u64) -> Conn {
        Conn {
            id,
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_activity_us: AtomicU64::new(0),
            head_started_us: AtomicU64::new(0),
            changed: Notify::new(),
            evict: Notify::new(),
            evicting: AtomicBool::new(false),
            rewrote: AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        self.opened.elapsed().as_micros() as u64
    }

    fn at(&self, micros: u64) -> Instant {
        self.opened + Duration::from_micros(micros)
    }

    fn on_read(&self) {
        let now = self.now_us();
        self.last_activity_us.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self.head_started_us.compare_exchange(0, now + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn on_write(&self) {
        self.last_activity_us.store(self.now_us(), Ordering::Relaxed);
    }

    fn request_began(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.head_started_us.store(0, Ordering::SeqCst);
        self.changed.notify_one();
    }

    fn request_ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.last_activity_us.store(self.now_us(), Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// When the connection is due to be cut, and why; `None` while a request
    /// is in flight (its handler and body have their own limits).
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Cut)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        match self.head_started_us.load(Ordering::SeqCst) {
            0 => Some((self.at(self.last_activity_us.load(Ordering::Relaxed)) + limits.idle_timeout, Cut::Idle)),
            started => Some((self.at(started - 1) + limits.header_read_timeout, Cut::Header)),
        }
    }

    /// Evictable: no request in flight; the longer idle, the earlier.
    fn idle_since_us(&self) -> Option<u64> {
        (self.in_flight.load(Ordering::SeqCst) == 0 && !self.evicting.load(Ordering::SeqCst))
            .then(|| self.last_activity_us.load(Ordering::Relaxed))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut {
    /// The request head did not arrive in time.
    Header,
    /// Nothing happened for too long.
    Idle,
    /// hyper finished the connection.
    Finished,
    /// The client opened with the HTTP/2 preface, which hyper (HTTP/1
    /// only here) refuses without an answer.
    Http2,
    /// Closed to admit another at the cap.
    Evicted,
}

/// The open connections, for the cap and eviction.
#[derive(Default)]
struct Registry {
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Notified when a connection task ends.
    closed: Notify,
}

impl Registry {
    fn len(&self) -> usize {
        self.live.lock().map_or(0, |live| live.len())
    }

    fn insert(&self, conn: &Arc<Conn>) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(conn.id, Arc::clone(conn));
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&id);
        }
        self.closed.notify_waiters();
    }

    /// Asks the longest-idle connection without a request in flight to
    /// close, and stops counting it; false if there is none.
    fn evict_one(&self) -> bool {
        let Ok(mut live) = self.live.lock() else { return false };
        // Compare idle time on one clock: each connection counts from its own
        // opening, so convert to instants.
        let victim = live
            .values()
            .filter_map(|conn| conn.idle_since_us().map(|since| (conn.at(since), Arc::clone(conn))))
            .min_by_key(|(since, _)| *since);
        let Some((_, victim)) = victim else { return false };
        victim.evicting.store(true, Ordering::SeqCst);
        victim.evict.notify_one();
        live.remove(&victim.id);
        true
    }
}

/// `RLIMIT_NOFILE`: raises the soft limit to the hard one (as Go and many
/// servers do), then returns the soft limit (`None`: unlimited).
fn descriptor_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return getrlimit(Resource::Nofile).current,
            Err(err) => debug!(%err, "cannot raise RLIMIT_NOFILE to its hard limit"),
        }
    }
    limit.current
}

/// The connection cap in force: `max_connections`, bounded by the
/// descriptors left after `fd_reserve`.
pub fn connection_cap(limits: &Limits) -> Result<usize, String> {
    let Some(descriptors) = descriptor_limit() else { return Ok(limits.max_connections) };
    let spare = descriptors.saturating_sub(limits.fd_reserve);
    if spare == 0 {
        return Err(format!(
            "RLIMIT_NOFILE is {descriptors}: no descriptors are left for connections after fd_reserve = {} \
             (raise `ulimit -n` or lower fd_reserve)",
            limits.fd_reserve
        ));
    }
    let cap = limits.max_connections.min(usize::try_from(spare).unwrap_or(usize::MAX));
    if cap < limits.max_connections {
        warn!(
            descriptors,
            fd_reserve = limits.fd_reserve,
            max_connections = limits.max_connections,
            cap,
            "RLIMIT_NOFILE lowers the connection cap"
        );
    }
    Ok(cap)
}

/// Lowers `server.concurrency` below the connection cap `cap` where it is
/// not: a connection with a request in flight cannot be evicted, so with
/// as many requests allowed as connections, clients that send heads and
/// trickle their bodies could hold every connection, and `/healthz` would
/// find none. Kept under the cap by an eighth (at least 2), the refused
/// requests' connections stay evictable and probes always get in.
pub fn bound_concurrency(config: &mut crate::config::ServeConfig, cap: usize) {
    let most = cap.saturating_sub((cap / 8).max(2)).max(1);
    if config.server.concurrency > most {
        warn!(
            concurrency = config.server.concurrency,
            connection_cap = cap,
            lowered_to = most,
            "server.concurrency lowered below the connection cap, so that probes always find a connection"
        );
        config.server.concurrency = most;
    }
}

/// Accepts connections (at most `cap`, from `connection_cap`) and serves
/// `router` on them until `shutdown` resolves; then lets the connections
/// finish their requests (idle ones close at once) and returns when all
/// are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stats: Arc<EdgeStats>,
    limits: Limits,
    cap: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    stats.cap.store(cap as u64, Ordering::Relaxed);
    info!(
        cap,
        header_read_timeout_ms = limits.header_read_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        body_read_timeout_ms = limits.body_read_timeout.as_millis() as u64,
        "accepting connections"
    );
    let registry = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
    let mut next_id = 0_u64;
    let mut last_accept_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                // Out of descriptors (the engine took more than fd_reserve,
                // or another process shares the limit): make room, retry soon.
                let out_of_descriptors = [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE]
                    .iter()
                    .any(|errno| err.raw_os_error() == Some(errno.raw_os_error()));
                if out_of_descriptors && registry.evict_one() {
                    stats.evicted.fetch_add(1, Ordering::Relaxed);
                }
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    warn!(%err, "accept failed (logged at most every 10 s)");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(if out_of_descriptors { 20 } else { 5 })).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if registry.len() >= cap {
            if registry.evict_one() {
                stats.evicted.fetch_add(1, Ordering::Relaxed);
            } else {
                // Every connection has a request in flight: say so, close.
                stats.refused.fetch_add(1, Ordering::Relaxed);
                let answer = problem_bytes(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many connections",
                    &format!("the server holds its maximum of {cap} connections, each with a request in flight"),
                    Some(1),
                );
                let _ = stream.try_write(&answer);
                continue;
            }
        }
        next_id += 1;
        let conn = Arc::new(Conn::new(next_id));
        registry.insert(&conn);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (router, stats, registry, stopping) =
            (router.clone(), Arc::clone(&stats), Arc::clone(&registry), stopping.clone());
        tokio::spawn(async move {
            let _closed = Closed { id: conn.id, stats: Arc::clone(&stats), registry };
            serve_connection(stream, conn, router, &stats, limits, stopping).await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Wait for every connection task (the registry forgets evicted ones
    // early; the open gauge counts every socket).
    loop {
        let closed = registry.closed.notified();
        if stats.open.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), closed).await;
    }
}

/// Counts a connection closed when its task ends, even by a panic (a
/// panicking handler must not make the shutdown wait forever).
struct Closed {
    id: u64,
    stats: Arc<EdgeStats>,
    registry: Arc<Registry>,
}

impl Drop for Closed {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        self.registry.remove(self.id);
    }
}

async fn serve_connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    router: Router,
    stats: &Arc<EdgeStats>,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = EdgeIo { stream, conn: Arc::clone(&conn), pending: Vec::new(), sent: 0 };
    let service = {
        let (conn, stats) = (Arc::clone(&conn), Arc::clone(stats));
        hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(request, router.clone(), Arc::clone(&conn), Arc::clone(&stats), limits.body_read_timeout)
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_headers(HEADERS_MAX).max_header_size(HEAD_BYTES_MAX).header_read_timeout(None);
    let mut connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut draining = false;
    let cut = loop {
        let changed = conn.changed.notified();
        let deadline = conn.deadline(&limits);
        let sleep_until = deadline.map_or_else(|| Instant::now() + Duration::from_secs(3600), |(at, _)| at);
        tokio::select! {
            finished = &mut connection => {
                if let Err(err) = finished {
                    debug!(connection = conn.id, %err, "connection ended with an error");
                    if err.is_parse_version_h2() {
                        break Cut::Http2;
                    }
                }
                break Cut::Finished;
            }
            () = tokio::time::sleep_until(sleep_until) => {
                // Re-read: a request may have begun meanwhile.
                if let Some((at, cut)) = conn.deadline(&limits) {
                    if at <= Instant::now() {
                        break cut;
                    }
                }
            }
            () = changed => {}
            () = conn.evict.notified() => {
                debug!(connection = conn.id, "evicted at the connection cap");
                break Cut::Evicted;
            }
            changed = stopping.changed(), if !draining => {
                draining = true;
                if changed.is_err() || *stopping.borrow() {
                    Pin::new(&mut connection).graceful_shutdown();
                }
            }
        }
    };
    let rewrote = conn.rewrote.load(Ordering::SeqCst);
    if cut == Cut::Evicted {
        return;
    }
    // hyper is done with the socket (finished, or cut before it wrote
    // anything for the pending head): take it back to answer or linger.
    let stream = connection.into_parts().io.into_inner().stream;
    let closing = async {
        match cut {
            Cut::Header => {
                stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                debug!(connection = conn.id, "request head not complete within header_read_timeout_ms");
                let answer = problem_bytes(
                    StatusCode::REQUEST_TIMEOUT,
                    "request head timeout",
                    &format!(
                        "the request head was not complete within {} ms (header_read_timeout_ms)",
                        limits.header_read_timeout.as_millis()
                    ),
                    None,
                );
                if write_all(&stream, &answer).await.is_ok() {
                    linger_close(&stream).await;
                }
            }
            Cut::Http2 => {
                stats.bad_heads.fetch_add(1, Ordering::Relaxed);
                let answer = problem_bytes(
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    "HTTP version not supported",
                    "this server speaks HTTP/1.1 (and 1.0), not HTTP/2: send the request as HTTP/1.1",
                    None,
                );
                if write_all(&stream, &answer).await.is_ok() {
                    linger_close(&stream).await;
                }
            }
            Cut::Idle => {
                stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                debug!(connection = conn.id, "idle for idle_timeout_ms: closed");
            }
            Cut::Finished => {
                if rewrote {
                    stats.bad_heads.fetch_add(1, Ordering::Relaxed);
                }
                // hyper ended it (the client closed, or an answer said
                // `connection: close`, perhaps before the body was read):
                // let the client read the last answer before the socket
                // closes.
                linger_close(&stream).await;
            }
            Cut::Evicted => {}
        }
    };
    // A closing connection still counts against the cap and may be evicted
    // like an idle one: then it closes at once.
    tokio::select! {
        () = closing => {}
        () = conn.evict.notified() => {}
    }
}

/// One request: the body under its read timeout, the router, and the 408
/// when the body was too slow.
async fn handle(
    request: Request<Incoming>,
    mut router: Router,
    conn: Arc<Conn>,
    stats: Arc<EdgeStats>,
    body_read_timeout: Duration,
) -> Result<Response<Body>, Infallible> {
    conn.request_began();
    let _ended = RequestEnded(Arc::clone(&conn));
    let clock = BodyClock::default();
    let mut request = request.map(|body| Body::new(TimedBody::new(body, body_read_timeout, clock.clone())));
    request.extensions_mut().insert(clock.clone());
    let response = match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if clock.0.timed_out.load(Ordering::SeqCst) {
        stats.body_timeouts.fetch_add(1, Ordering::Relaxed);
        // The router's middleware answers 408 itself (with its request id
        // and in its latency histogram); this covers anything else.
        if response.status() != StatusCode::REQUEST_TIMEOUT {
            return Ok(body_timeout_response(&clock).unwrap_or(response));
        }
    }
    Ok(response)
}

/// The 408 for a request whose body did not arrive in time; `None` if it
/// did (or was not read).
pub fn body_timeout_response(clock: &BodyClock) -> Option<Response<Body>> {
    clock.0.timed_out.load(Ordering::SeqCst).then(|| {
        problem_response(
            StatusCode::REQUEST_TIMEOUT,
            "request body timeout",
            &format!(
                "the request body was not complete within {} ms of its head (body_read_timeout_ms); nothing was done",
                clock.0.limit_ms.load(Ordering::Relaxed)
            ),
        )
    })
}

struct RequestEnded(Arc<Conn>);

impl Drop for RequestEnded {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

fn problem_json(status: StatusCode, title: &str, detail: &str) -> String {
    serde_json::json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail })
        .to_string()
}

/// A problem answer that also closes the connection.
fn problem_response(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(problem_json(status, title, detail)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A whole HTTP/1.1 problem answer, for the paths where hyper is not
/// writing (or was replaced).
fn problem_bytes(status: StatusCode, title: &str, detail: &str, retry_after_s: Option<u32>) -> Vec<u8> {
    let body = problem_json(status, title, detail);
    let retry = retry_after_s.map(|seconds| format!("retry-after: {seconds}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\nconnection: close\r\n{retry}content-length: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// The answer in place of hyper's bare error head, if `written` holds one:
/// where it starts, and ours.
fn replace_bare_error(written: &[u8]) -> Option<(usize, Vec<u8>)> {
    // hyper's error head is the last thing it writes on a connection, and
    // has no body: only a buffer ending a head can hold one, in its last
    // few hundred bytes (so a large response is not scanned).
    if !written.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = written.len().saturating_sub(BARE_TAIL_BYTES);
    let tail = &written[from..];
    for (status, title, detail) in [
        (
            StatusCode::BAD_REQUEST,
            "malformed request",
            "the request line or a header field is not valid HTTP/1.1".to_string(),
        ),
        (StatusCode::URI_TOO_LONG, "URI too long", "the request target is longer than 65534 bytes".to_string()),
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
            format!(
                "the request head is larger than {HEAD_BYTES_MAX} bytes or has more than {HEADERS_MAX} header fields"
            ),
        ),
    ] {
        let bare = format!(
            "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-length: 0\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        // Anywhere in the buffer: after a keep-alive response it may follow
        // that response's bytes. Our bodies never hold a raw CR LF.
        if let Some(at) = find(tail, bare.as_bytes()) {
            return Some((from + at, problem_bytes(status, title, &detail, None)));
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    tokio::time::timeout(ANSWER_WRITE_TIMEOUT, async {
        while !bytes.is_empty() {
            stream.writable().await?;
            match stream.try_write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// Shuts the write side, then reads and drops what the client still sends
/// for a moment, so that the close does not become a reset that destroys
/// the answer before the client reads it.
async fn linger_close(stream: &TcpStream) {
    let _ = rustix::net::shutdown(stream, rustix::net::Shutdown::Write);
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0_u8; 8192];
        let mut drained = 0;
        while drained < LINGER_BYTES_MAX {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(n) => drained += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

/// The socket as hyper sees it: counts activity for the timeouts and
/// replaces hyper's bare error heads (see the module docs). Not vectored, so
/// that hyper hands each response over as one contiguous buffer.
struct EdgeIo {
    stream: TcpStream,
    conn: Arc<Conn>,
    /// Our replacement answer, still to be written.
    pending: Vec<u8>,
    sent: usize,
}

impl EdgeIo {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
            self.conn.on_write();
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for EdgeIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.conn.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for EdgeIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some((at, answer)) = replace_bare_error(buf) {
            this.conn.rewrote.store(true, Ordering::SeqCst);
            this.pending = buf[..at].to_vec();
            this.pending.extend_from_slice(&answer);
            // hyper's bytes are taken (replaced); ours go out now or on flush.
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        this.conn.on_write();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // FIN; the socket closes when dropped, after `linger_close`.
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// How long a request's handler has waited for its body, and whether the
/// body timed out; shared by [`TimedBody`], [`handler_timeout`] and
/// [`handle`] (a request extension).
#[derive(Clone, Default)]
pub struct BodyClock(Arc<BodyClockInner>);

#[derive(Default)]
struct BodyClockInner {
    /// Finished waits, microseconds.
    waited_us: AtomicU64,
    /// The wait in progress: its start, microseconds after `epoch` + 1; 0 if none.
    waiting_since_us: AtomicU64,
    epoch: Mutex<Option<Instant>>,
    timed_out: AtomicBool,
    /// body_read_timeout_ms, for the answer.
    limit_ms: AtomicU64,
}

impl BodyClock {
    fn now_us(&self) -> u64 {
        let Ok(mut epoch) = self.0.epoch.lock() else { return 0 };
        epoch.get_or_insert_with(Instant::now).elapsed().as_micros() as u64
    }

    fn wait_began(&self) {
        let now = self.now_us();
        let _ = self.0.waiting_since_us.compare_exchange(0, now + 1, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn wait_ended(&self) {
        let since = self.0.waiting_since_us.swap(0, Ordering::SeqCst);
        if since > 0 {
            self.0.waited_us.fetch_add(self.now_us().saturating_sub(since - 1), Ordering::SeqCst);
        }
    }

    /// Time spent waiting for body bytes so far, the wait in progress included.
    fn waited(&self) -> Duration {
        let mut micros = self.0.waited_us.load(Ordering::SeqCst);
        let since = self.0.waiting_since_us.load(Ordering::SeqCst);
        if since > 0 {
            micros += self.now_us().saturating_sub(since - 1);
        }
        Duration::from_micros(micros)
    }
}

/// Runs a handler under `limit`, not counting the time it waits for the
/// request body (that is `body_read_timeout_ms`'s).
pub async fn handler_timeout<F: Future>(clock: Option<BodyClock>, limit: Duration, work: F) -> Option<F::Output> {
    let started = Instant::now();
    tokio::pin!(work);
    loop {
        let waited = clock.as_ref().map_or(Duration::ZERO, BodyClock::waited);
        tokio::select! {
            output = &mut work => return Some(output),
            () = tokio::time::sleep_until(started + limit + waited) => {
                let waited_now = clock.as_ref().map_or(Duration::ZERO, BodyClock::waited);
                if started + limit + waited_now <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// A request body that must be complete by a deadline.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    clock: BodyClock,
    timeout: Duration,
    done: bool,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration, clock: BodyClock) -> TimedBody {
        clock.0.limit_ms.store(timeout.as_millis() as u64, Ordering::Relaxed);
        TimedBody { inner, deadline: Box::pin(tokio::time::sleep(timeout)), clock, timeout, done: false }
    }
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not complete within {0:?} (body_read_timeout_ms)")]
pub struct BodyTimeout(Duration);

impl HttpBody for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.clock.wait_ended();
                if frame.is_none() {
                    this.done = true;
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                this.clock.wait_began();
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.clock.wait_ended();
                    this.clock.0.timed_out.store(true, Ordering::SeqCst);
                    this.done = true;
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_bare_error_heads_are_replaced_and_ours_are_not() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (at, answer) = replace_bare_error(bare).expect("replaced");
        assert_eq!(at, 0);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        // After a keep-alive response in the same buffer.
        let first = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let two =
            [first.as_slice(), b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"].concat();
        assert_eq!(replace_bare_error(&two).map(|(at, _)| at), Some(first.len()));
        // One of ours, with a body, is left alone.
        let ours = problem_bytes(StatusCode::BAD_REQUEST, "invalid request", "x", None);
        assert!(replace_bare_error(&ours).is_none());
        // A large response before it in the same buffer.
        let large = [vec![b'x'; 100_000].as_slice(), bare.as_slice()].concat();
        assert_eq!(replace_bare_error(&large).map(|(at, _)| at), Some(100_000));
    }
}
