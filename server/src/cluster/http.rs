//! The HTTP side of a replica: one middleware, in front of the router's
//! handlers, that is a no-op on a single node. On a replica it
//! - takes `POST /v1/events` and `POST /v1/event`: validate, publish, answer
//!   with the stream sequence (`wait=applied`: once this node applied it);
//! - lets reads name `min_seq` (removed before the handler sees the query):
//!   wait up to `cluster.apply_wait_ms` for this node to apply it, or 503
//!   with the node's position; every read answer carries
//!   `X-Recwal-Stream-Seq` (what this node had applied when it read);
//! - lets the catalogue writes, forget user and remove item through to
//!   their handlers, which publish them (`write`) instead of applying them;
//! - lets the model registry's writes through to their handlers, which
//!   publish them (`models.rs`);
//! - refuses the writes that are not replicated (item-model training,
//!   feedback expiry, uploads of state) with 409, since applying them on
//!   one node only would make the replicas differ.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::Replica;
use crate::api::{ApiEvent, IngestRequest};
use crate::problem::{ApiJson, Problem};
use crate::server::App;

/// The header every cluster answer carries: the stream sequence this node
/// had applied (reads), or the message's sequence (ingest).
pub const STREAM_SEQ_HEADER: &str = "x-recwal-stream-seq";

/// `?wait=` (and the single-node `?durability=`) of a cluster ingest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestQuery {
    /// `applied`: answer once this node applied the message too.
    wait: Option<String>,
    /// Accepted for compatibility and ignored: the stream's replication is
    /// the durability of a cluster ingest (docs/CLUSTER.md).
    durability: Option<String>,
}

/// The middleware (`server::router` adds it to every route).
pub async fn layer(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.config.cluster.url.is_none() {
        return next.run(request).await;
    }
    let Some(replica) = app.cluster.get().cloned() else {
        return Problem::unavailable("starting: not connected to the cluster yet").into_response();
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match (&method, path.as_str()) {
        (&Method::POST, "/v1/events" | "/v1/event") => match ingest(&app, &replica, request).await {
            Ok(response) | Err(response) => response,
        },
        (&Method::GET | &Method::HEAD, path) if path.starts_with("/v1/") => read(&app, &replica, request, next).await,
        // Published by their handlers (`write`).
        (&Method::PUT | &Method::DELETE, path) if path.starts_with("/v1/users/") || path.starts_with("/v1/items/") => {
            next.run(request).await
        }
        (&Method::POST, path)
            if path.starts_with("/v1/items/") && (path.ends_with("/hide") || path.ends_with("/show")) =>
        {
            next.run(request).await
        }
        (&Method::POST, "/v1/sessions/recommend") => read(&app, &replica, request, next).await,
        // Published by their handlers (`models.rs`).
        (&Method::POST | &Method::PUT | &Method::DELETE, path) if path.starts_with("/admin/models") => {
            next.run(request).await
        }
        (_, path)
            if (method == Method::GET || method == Method::HEAD)
                || path == "/admin/checkpoint"
                || path == "/admin/backup" =>
        {
            next.run(request).await
        }
        _ => Problem::new(
            StatusCode::CONFLICT,
            "not replicated yet",
            format!(
                "{method} {path} changes the state and is not replicated through the stream yet: on a cluster node it \
                 would apply on this node only; see docs/CLUSTER.md"
            ),
        )
        .into_response(),
    }
}

pub(super) fn with_seq(mut response: Response, seq: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&seq.to_string()) {
        response.headers_mut().insert(STREAM_SEQ_HEADER, value);
    }
    response
}

/// The query string without `min_seq`, and `min_seq` if it was there.
fn split_min_seq(uri: &Uri) -> Result<(Option<u64>, Option<String>), Problem> {
    let Some(query) = uri.query() else { return Ok((None, None)) };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|err| Problem::bad_request(format!("invalid query: {err}")))?;
    let mut min_seq = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if name == "min_seq" {
            let seq = value
                .parse::<u64>()
                .map_err(|_| Problem::bad_request(format!("invalid min_seq: {value:?} is not a stream sequence")))?;
            min_seq = Some(seq);
        } else {
            rest.push((name, value));
        }
    }
    let rest =
        serde_urlencoded::to_string(&rest).map_err(|err| Problem::bad_request(format!("invalid query: {err}")))?;
    Ok((min_seq, Some(rest)))
}

async fn read(app: &App, replica: &Replica, mut request: Request, next: Next) -> Response {
    let (min_seq, rest) = match split_min_seq(request.uri()) {
        Ok(split) => split,
        Err(problem) => return problem.into_response(),
    };
    if let Some(min_seq) = min_seq {
        let wait = Duration::from_millis(app.config.cluster.apply_wait_ms);
        if !replica.wait_applied(min_seq, wait).await {
            let applied = replica.applied();
            let mut problem = Problem::unavailable(format!(
                "this node has applied the stream through sequence {applied}, not yet {min_seq} (waited {} ms, \
                 cluster.apply_wait_ms): retry, or read from another node",
                wait.as_millis()
            ));
            problem.retry_after = Some(1);
            return with_seq(problem.into_response(), applied);
        }
        let path = request.uri().path().to_string();
        let path_and_query = match rest.filter(|rest| !rest.is_empty()) {
            Some(rest) => format!("{path}?{rest}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        match path_and_query.parse() {
            Ok(parsed) => parts.path_and_query = Some(parsed),
            Err(err) => return Problem::bad_request(format!("invalid query: {err}")).into_response(),
        }
        match Uri::from_parts(parts) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(err) => return Problem::bad_request(format!("invalid query: {err}")).into_response(),
        }
    }
    // Read before the handler runs: the answer holds at least this much.
    let applied = replica.applied();
    with_seq(next.run(request).await, applied)
}

/// A state change other than events on a cluster node (forget user,
/// remove item, the catalogue writes): `message` (from
/// `Engine::replica_write`, which validates it as the single-node method
/// would, against this node's state) is published and answered like a
/// cluster ingest once this node applied it: 200 with `applied: true`, or
/// 202 after `cluster.apply_wait_ms` (it is stored all the same). The
/// single node's handlers call this when `app` is a replica.
pub async fn write(
    app: &App,
    message: impl FnOnce(&recwal::Engine) -> Result<Vec<u8>, recwal::EngineError> + Send + 'static,
) -> Result<Response, Problem> {
    Ok(publish_checked(app, message).await?.receipt())
}

/// A write published by this node (`publish_checked`).
pub(super) struct Stored {
    pub replica: Arc<Replica>,
    pub engine: Arc<recwal::Engine>,
    pub seq: u64,
    pub duplicate: bool,
    /// This node applied it within `cluster.apply_wait_ms`.
    pub applied: bool,
}

impl Stored {
    /// `{"stream_seq", "duplicate", "applied"}`: 200 once applied here,
    /// 202 before.
    pub(super) fn receipt(&self) -> Response {
        let status = if self.applied { StatusCode::OK } else { StatusCode::ACCEPTED };
        let body = json!({ "stream_seq": self.seq, "duplicate": self.duplicate, "applied": self.applied });
        with_seq((status, Json(body)).into_response(), self.seq)
    }
}

/// Builds a write's message with `message` (checked on this node; nothing
/// applied), publishes it with a fresh message id (the node's own publish
/// retries are stored once) and waits up to `cluster.apply_wait_ms` for
/// this node to apply it.
pub(super) async fn publish_checked(
    app: &App,
    message: impl FnOnce(&recwal::Engine) -> Result<Vec<u8>, recwal::EngineError> + Send + 'static,
) -> Result<Stored, Problem> {
    let replica = replica_of(app)?;
    let engine = app.engine()?;
    let message = crate::server::blocking(Arc::clone(&engine), message).await?;
    let published =
        replica.publish(message, &replica.message_id(&[None])).await.map_err(|reason| not_stored(&reason))?;
    let seq = published.stream_seq;
    let applied = replica.wait_applied(seq, Duration::from_millis(app.config.cluster.apply_wait_ms)).await;
    Ok(Stored { replica, engine, seq, duplicate: published.duplicate, applied })
}

/// This node's replica, or 503 while it is not connected yet.
pub(super) fn replica_of(app: &App) -> Result<Arc<Replica>, Problem> {
    app.cluster.get().cloned().ok_or_else(|| Problem::unavailable("starting: not connected to the cluster yet"))
}

/// 503 for a write the stream did not store.
pub(super) fn not_stored(reason: &str) -> Problem {
    let mut problem = Problem::unavailable(format!("not stored: {reason}; retry"));
    problem.retry_after = Some(1);
    problem
}

async fn ingest(app: &App, replica: &Replica, request: Request) -> Result<Response, Response> {
    let reject = |problem: Problem| problem.into_response();
    let engine = app.engine().map_err(reject)?;
    let query: IngestQuery = match request.uri().query() {
        Some(query) => serde_urlencoded::from_str(query)
            .map_err(|err| reject(Problem::bad_request(format!("invalid query: {err}"))))?,
        None => IngestQuery::default(),
    };
    let wait_applied = match query.wait.as_deref() {
        None | Some("published") => false,
        Some("applied") => true,
        Some(other) => {
            return Err(reject(Problem::bad_request(format!("invalid wait: {other:?}: published or applied"))))
        }
    };
    let _ = query.durability;
    let single = request.uri().path() == "/v1/event";
    let events = if single {
        let ApiJson(event) = ApiJson::<ApiEvent>::from_request(request, &()).await.map_err(reject)?;
        vec![event.into_event("event", engine.config()).map_err(reject)?]
    } else {
        let ApiJson(body) = ApiJson::<IngestRequest>::from_request(request, &()).await.map_err(reject)?;
        let batch_max = app.config.engine.batch_events_max;
        if body.events.is_empty() || body.events.len() > batch_max {
            return Err(reject(Problem::bad_request(format!(
                "invalid events: must hold 1–{batch_max} events, got {}",
                body.events.len()
            ))));
        }
        body.events
            .into_iter()
            .enumerate()
            .map(|(at, event)| event.into_event(&format!("events[{at}]"), engine.config()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(reject)?
    };
    let message = engine.replica_events(&events).map_err(|err| reject(Problem::from(err)))?;
    let ids: Vec<Option<&str>> = events.iter().map(|event| event.event_id.as_deref()).collect();
    let message_id = replica.message_id(&ids);
    let published = replica.publish(message, &message_id).await.map_err(|reason| {
        let mut problem = Problem::unavailable(format!("not stored: {reason}; retry with the same event ids"));
        problem.retry_after = Some(1);
        reject(problem)
    })?;
    let seq = published.stream_seq;
    let applied = if wait_applied {
        replica.wait_applied(seq, Duration::from_millis(app.config.cluster.apply_wait_ms)).await
    } else {
        replica.applied() >= seq
    };
    // Stored in the stream either way; 202 when asked to wait and this node
    // has not applied it yet (read with min_seq, or from another node).
    let status = if wait_applied && !applied { StatusCode::ACCEPTED } else { StatusCode::OK };
    let body = json!({
        "stream_seq": seq,
        "duplicate": published.duplicate,
        "applied": applied,
        "events": events.len(),
    });
    Ok(with_seq((status, Json(body)).into_response(), seq))
}
