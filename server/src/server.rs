//! The HTTP server: the data plane under `/v1`, the admin plane, health,
//! metrics and the OpenAPI document; auth, limits, timeouts, request ids and
//! per-route latency histograms as middleware.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use recwal::model::{ModelInfo, ModelStatus};
use recwal::{Durability, Engine, Recommendations, ReplicaWrite};
use tokio::sync::Semaphore;
use tracing::{info, warn, Instrument};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::answers::{
    Backup, Checkpoint, ClusterStatus, DiskFull, Health, Interactions, Items, Logged, Models, Readiness,
    ReadinessModel, Recovery, ReplayProgress, Stats, WalStatus,
};
use crate::api::{
    self, ApiEvent, ApiReceipt, CountQuery, DurabilityQuery, IngestRequest, IngestResponse, RecommendQuery,
};
use crate::catalogue::{self, FilterParams, Filtered};
use crate::config::ServeConfig;
use crate::docs_ui;
use crate::edge::{self, BodyClock, EdgeStats};
use crate::model_routes;
use crate::observe::{self, HttpMetrics, ProcessGauges};
use crate::openapi;
use crate::problem::{ApiBytes, ApiJson, ApiPath, ApiQuery, Problem, ProblemBody};

/// What every handler shares.
pub struct App {
    pub config: ServeConfig,
    /// Set once the log is replayed.
    pub engine: OnceLock<Arc<Engine>>,
    pub default_durability: Durability,
    in_flight: Semaphore,
    /// Request ids and per-route latency histograms (src/observe.rs).
    http: HttpMetrics,
    pub started: Instant,
    started_wall: SystemTime,
    /// Start-up replay: records done and to do.
    replay_done: AtomicU64,
    replay_total: AtomicU64,
    /// Connections, timeouts, evictions (src/edge.rs).
    pub edge: Arc<EdgeStats>,
    /// /openapi.json, generated with the router (`router`).
    openapi: OnceLock<serde_json::Value>,
    /// The replica, with `cluster.url` (src/cluster/).
    pub cluster: OnceLock<Arc<crate::cluster::Replica>>,
}

impl App {
    /// Whether this server is a cluster node (`cluster.url`): its writes
    /// are published to the stream (`cluster::write`, `cluster::models`)
    /// instead of applied here. (Until it is connected the cluster
    /// middleware answers 503 before any handler runs.)
    pub fn is_cluster_node(&self) -> bool {
        self.config.cluster.url.is_some()
    }

    pub fn new(config: ServeConfig, default_durability: Durability) -> App {
        App {
            in_flight: Semaphore::new(config.server.concurrency),
            config,
            engine: OnceLock::new(),
            default_durability,
            http: HttpMetrics::new(),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            replay_done: AtomicU64::new(0),
            replay_total: AtomicU64::new(0),
            edge: Arc::default(),
            openapi: OnceLock::new(),
            cluster: OnceLock::new(),
        }
    }

    pub(crate) fn engine(&self) -> Result<Arc<Engine>, Problem> {
        self.engine.get().cloned().ok_or_else(|| Problem::unavailable("starting: the log is being replayed"))
    }
}

/// Every route of the API, in one list: the router serves exactly these
/// and /openapi.json documents exactly these (each handler's
/// `#[utoipa::path]` gives both its route and its operation).
pub fn api_routes(app: &Arc<App>) -> OpenApiRouter<Arc<App>> {
    let config = &app.config;
    let models = OpenApiRouter::new()
        .routes(routes!(list_models, add_model))
        .layer(middleware::from_fn_with_state(Arc::clone(app), crate::cluster::layer))
        .layer(DefaultBodyLimit::max(config.server.model_limit_bytes))
        .layer(middleware::from_fn_with_state(
            (config.server.model_limit_bytes, "server.model_limit_bytes"),
            refuse_declared_over,
        ));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(ingest))
        .routes(routes!(ingest_one))
        .routes(routes!(recommend))
        .routes(routes!(recommend_session))
        .routes(routes!(interactions))
        .routes(routes!(catalogue::get_user, catalogue::put_user, forget_user))
        .routes(routes!(similar))
        .routes(routes!(catalogue::get_item, catalogue::put_item, remove_item))
        .routes(routes!(catalogue::hide_item))
        .routes(routes!(catalogue::show_item))
        .routes(routes!(catalogue::list_items))
        .routes(routes!(catalogue::latest))
        .routes(routes!(popular))
        .routes(routes!(stats))
        .routes(routes!(wal_status))
        .routes(routes!(cluster_status))
        .routes(routes!(checkpoint))
        .routes(routes!(backup))
        .routes(routes!(model_status))
        .routes(routes!(rollback_model))
        .routes(routes!(activate_model))
        .routes(routes!(model_routes::set_canary, model_routes::clear_canary))
        .routes(routes!(model_routes::promote_canary))
        .routes(routes!(model_routes::set_shadow, model_routes::clear_shadow))
        .routes(routes!(model_routes::retire_model))
        .layer(middleware::from_fn_with_state(Arc::clone(app), crate::cluster::layer))
        .layer(DefaultBodyLimit::max(config.server.body_limit_bytes))
        .layer(middleware::from_fn_with_state(
            (config.server.body_limit_bytes, "server.body_limit_bytes"),
            refuse_declared_over,
        ))
        .merge(models)
}

/// Beside each `DefaultBodyLimit` (which bounds the bytes read): a body
/// whose `Content-Length` declares more than `limit` (the setting `key`)
/// is refused with 413 before any of it is read, and before `Expect:
/// 100-continue` asks for it.
async fn refuse_declared_over(
    State((limit, key)): State<(usize, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok());
    match declared.and_then(|value| value.trim().parse::<u64>().ok()) {
        Some(declared) if declared > limit as u64 => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large",
            format!("the body is {declared} bytes (Content-Length); this route takes at most {limit} ({key})"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// The router with every route and middleware: the API (`api_routes`),
/// then the routes that are not part of it (`NOT_API`).
pub fn router(app: Arc<App>) -> Router {
    let (api, document) = api_routes(&app).split_for_parts();
    if app.openapi.set(openapi::document(&app.config, document)).is_err() {
        warn!("the router was built twice; /openapi.json keeps the first document");
    }
    api.merge(docs_ui::router())
        .merge(crate::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}

/// Routes served beside the API and not part of it (not in /openapi.json):
/// static files with no data, served without the token. Each entry is a
/// route template or, ending in `/`, a prefix.
pub const NOT_API: &[&str] = &["/docs", "/docs/", "/ui", "/ui/"];

/// Whether `route` (a matched route template) is one of `NOT_API`.
pub fn is_not_api(route: &str) -> bool {
    NOT_API.iter().any(|other| route == *other || (other.ends_with('/') && route.starts_with(other)))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        format!("{method} is not allowed on {} (see /openapi.json)", uri.path()),
    )
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no such route",
        format!("{method} {} is not a route of this API (see /openapi.json)", uri.path()),
    )
}

/// Request id, auth, concurrency limit, timeout, latency histogram.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let id = app.http.request_id(request.headers());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    let body_clock = request.extensions().get::<BodyClock>().cloned();
    let response = async {
        // The probes, and the static files beside the API (/docs, /ui: no
        // data; the pages call the API with the token the user gives them).
        let open = openapi::OPEN_ROUTES.contains(&route.as_str()) || is_not_api(&route);
        if let (Some(token), false) = (app.config.server.token.as_deref(), open) {
            if request.headers().get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
                // A singleton field (RFC 9110): which one counts would be a
                // guess, and proxies disagree on it.
                return Problem::bad_request("the header Authorization is sent more than once; send it once")
                    .into_response();
            }
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, presented)| presented.trim());
            if !presented.is_some_and(|presented| same_secret(presented, token)) {
                let mut response = Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this endpoint needs the header `Authorization: Bearer <token>` with the configured token",
                )
                .into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        }
        if let Some(problem) = request.uri().query().and_then(crate::problem::query_not_utf8) {
            return problem.into_response();
        }
        // Probes and metrics are never refused for load: an orchestrator
        // must see a busy server as alive.
        if open || route == "/metrics" {
            return next.run(request).await;
        }
        let Ok(_permit) = app.in_flight.try_acquire() else {
            let mut problem = Problem::unavailable(format!(
                "too many requests in flight (concurrency limit {}); retry later",
                app.config.server.concurrency
            ));
            // A slot frees as soon as a request in flight ends.
            problem.retry_after = Some(1);
            return problem.into_response();
        };
        // Operator actions (model uploads, checkpoints of a large state) may
        // take long and are not cut off.
        if route.starts_with("/admin/") {
            return next.run(request).await;
        }
        // Time spent waiting for the client's body is not handler time
        // (body_read_timeout_ms bounds it).
        match edge::handler_timeout(body_clock.clone(), app.config.request_timeout(), next.run(request)).await {
            Some(response) => response,
            None => Problem::unavailable(format!(
                "the request took longer than {} ms (request_timeout_ms); a write it carried may still \
                 complete: resend ingests with the same event ids",
                app.config.server.request_timeout_ms
            ))
            .into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let took = started.elapsed();
    // A body too slow to arrive failed its extractor: say so (408).
    let mut response = match body_clock.as_ref().and_then(edge::body_timeout_response) {
        Some(timed_out) => timed_out,
        None => response,
    };
    // Every answer carries the id (errors too), so a client can quote it.
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(observe::REQUEST_ID_HEADER, value);
    }
    app.http.record(&method, &route, response.status(), took.as_secs_f64());
    span.in_scope(|| info!(status = response.status().as_u16(), micros = took.as_micros() as u64, "request"));
    response
}

/// Compares a presented token with the configured one in time that does not
/// depend on where they differ.
fn same_secret(presented: &str, token: &str) -> bool {
    let (a, b) = (presented.as_bytes(), token.as_bytes());
    let mut differ = u8::from(a.len() != b.len());
    for (at, &byte) in b.iter().enumerate() {
        differ |= byte ^ a.get(at).copied().unwrap_or(0);
    }
    differ == 0
}

#[utoipa::path(get, path = "/healthz", tag = "probes", summary = "Liveness: the process answers.",
    responses((status = 200, description = "Alive.", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "alive" })
}

#[utoipa::path(get, path = "/readyz", tag = "probes",
    summary = "Readiness: replay finished and the log is writable (503 with reasons otherwise).",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready: replaying the log, or unable to write (the reasons say why).", body = Readiness),
    ))]
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let Some(engine) = app.engine.get() else {
        let (done, total) = (app.replay_done.load(Ordering::Relaxed), app.replay_total.load(Ordering::Relaxed));
        let percent = if total == 0 { 0.0 } else { 100.0 * done as f64 / total as f64 };
        let body = Readiness {
            ready: false,
            reasons: vec![format!("replaying the log: {percent:.1}% ({done} of {total} records)")],
            replay: Some(ReplayProgress { records_done: done, records_total: total }),
            records_replayed: None,
            disk_full: None,
            model: None,
            cluster: None,
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    let engine = Arc::clone(engine);
    let replica = app.cluster.get().cloned();
    let Ok((wal, models, replayed, disk_full, poisoned, position)) = tokio::task::spawn_blocking(move || {
        let replayed = engine.open_report().records_replayed;
        // Only a replica shows its digest (it reads the whole state).
        let position = replica.map(|replica| replica.position(&engine));
        (engine.wal_metrics(), engine.model_status(), replayed, engine.disk_full(), engine.poisoned(), position)
    })
    .await
    else {
        return Problem::unavailable("the readiness check failed").into_response();
    };
    let mut reasons = Vec::new();
    if wal.sync_failures > 0 {
        reasons.push(format!(
            "the log failed {} sync(s) or write(s): the engine accepts no writes; restart it",
            wal.sync_failures
        ));
    } else if let Some(reason) = &poisoned {
        reasons.push(format!("the engine accepts no writes ({reason}); restart it"));
    }
    // A snapshot that does not fit fails checkpoints only: the log still
    // takes writes, so the node stays ready (the condition is in the body
    // and in `recwal_disk_full`).
    if let Some(full) = disk_full.as_ref().filter(|full| full.refuses_writes()) {
        reasons.push(format!(
            "disk full: the {} cannot be written ({}); writes answer 503 until space is freed, then resume by themselves",
            full.what, full.detail
        ));
    }
    let cluster = app.cluster.get().zip(position).map(|(replica, position)| {
        reasons.extend(replica.unready_reason());
        replica.status(position)
    });
    let ready = reasons.is_empty();
    let body = Readiness {
        ready,
        reasons,
        cluster,
        replay: None,
        records_replayed: Some(replayed),
        disk_full: disk_full.map(|full| DiskFull {
            what: full.what.to_string(),
            path: full.path.display().to_string(),
            detail: full.detail.to_string(),
            since_unix_ms: full.since.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64),
        }),
        model: Some(ReadinessModel {
            active: models.active,
            serving: models.serving,
            fault: models.fault,
            breaker: models.breaker,
            canary: models.canary,
            shadow: models.shadow,
            route_fault: models.route_fault,
            // The ONNX Runtime library: loaded, or why not and where it was looked for.
            runtime: recwal::model::runtime_report(),
        }),
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "meta",
    summary = "Prometheus text: engine, log, models, HTTP latency per route.",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain")))]
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut text = String::new();
    text.push_str(&format!(
        "# HELP recwal_replay_records_done Start-up replay: records replayed.\n# TYPE recwal_replay_records_done gauge\nrecwal_replay_records_done {}\n\
         # HELP recwal_replay_records_total Start-up replay: records to replay.\n# TYPE recwal_replay_records_total gauge\nrecwal_replay_records_total {}\n",
        app.replay_done.load(Ordering::Relaxed),
        app.replay_total.load(Ordering::Relaxed)
    ));
    let engine = app.engine.get().cloned();
    let mut ready = false;
    let mut replay_took = None;
    let mut segments_max = None;
    if let Some(engine) = engine {
        segments_max = Some(engine.config().wal.segments_max);
        let replay = engine.open_report().replay;
        replay_took = Some(replay);
        text.push_str(&format!(
            "# HELP recwal_replay_ms Time the start-up replay took (see recwal_replay_seconds).\n# TYPE recwal_replay_ms gauge\nrecwal_replay_ms {}\n",
            replay.as_millis()
        ));
        // Off the async threads: it reads the state under its lock.
        match tokio::task::spawn_blocking(move || {
            let refuses_writes = engine.disk_full().is_some_and(|full| full.refuses_writes());
            (engine.poisoned().is_none() && !refuses_writes, engine.metrics_text())
        })
        .await
        {
            Ok((accepts_writes, engine_text)) => {
                // Not ready while poisoned or the log's disk is full (as /readyz says).
                ready = accepts_writes;
                text.push_str(&engine_text);
            }
            Err(err) => warn!(%err, "rendering the engine's metrics failed"),
        }
    }
    text.push_str(&observe::process_text(&ProcessGauges {
        started: app.started_wall,
        data_dir: &app.config.server.data_dir,
        replay_started: app.started,
        replay_took,
        ready,
        segments_max,
    }));
    text.push_str(&app.edge.metrics_text());
    if let Some(replica) = app.cluster.get() {
        text.push_str(&replica.metrics_text());
    }
    text.push_str(&app.http.text());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "meta", summary = "This document.",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server.", body = openapi::Document)))]
async fn openapi_json(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(app.openapi.get().cloned().unwrap_or_default())
}

fn receipts(receipts: Vec<recwal::Receipt>) -> Json<IngestResponse> {
    Json(IngestResponse {
        receipts: receipts.into_iter().map(|r| ApiReceipt { lsn: r.lsn, duplicate: r.duplicate }).collect(),
    })
}

#[utoipa::path(post, path = "/v1/events", tag = "events",
    summary = "Ingest a batch of events (one log record); durable before the answer.",
    request_body = IngestRequest,
    responses((status = 200, description = "Every event is durable under the requested durability (or a duplicate).", body = IngestResponse)))]
async fn ingest(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<IngestRequest>,
) -> Result<Json<IngestResponse>, Problem> {
    let engine = app.engine()?;
    if body.events.is_empty() || body.events.len() > app.config.engine.batch_events_max {
        return Err(Problem::bad_request(format!(
            "invalid events: must hold 1–{} events, got {}",
            app.config.engine.batch_events_max,
            body.events.len()
        )));
    }
    let durability = api::durability(body.durability.as_deref(), app.default_durability)?;
    let events = body
        .events
        .into_iter()
        .enumerate()
        .map(|(at, event)| event.into_event(&format!("events[{at}]"), engine.config()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(receipts(blocking(engine, move |engine| engine.ingest_batch_with(&events, durability)).await?))
}

#[utoipa::path(post, path = "/v1/event", tag = "events", summary = "Ingest one event (`?durability=`).",
    params(DurabilityQuery), request_body = ApiEvent,
    responses((status = 200, description = "The event is durable under the requested durability (or a duplicate).", body = IngestResponse)))]
async fn ingest_one(
    State(app): State<Arc<App>>,
    ApiQuery(query): ApiQuery<DurabilityQuery>,
    ApiJson(event): ApiJson<ApiEvent>,
) -> Result<Json<IngestResponse>, Problem> {
    let engine = app.engine()?;
    let durability = api::durability(query.durability.as_deref(), app.default_durability)?;
    let event = event.into_event("event", engine.config())?;
    Ok(receipts(blocking(engine, move |engine| engine.ingest_batch_with(&[event], durability)).await?))
}

#[utoipa::path(get, path = "/v1/users/{user}/recommend", tag = "recommend",
    summary = "Recommend items for a user (`n`, `strategy`, `exclude`, `allow`, the filter `category`, `label`, \
               `label_min`, `label_max`, and `offset`); an unknown user gets popular items (`cold_start`).",
    params(("user" = String, Path, description = "User id"), RecommendQuery, FilterParams),
    responses((status = 200, description = "Best first, with each item's reasons.", body = Recommendations)))]
async fn recommend(
    State(app): State<Arc<App>>,
    ApiPath(user): ApiPath<String>,
    query: Filtered<RecommendQuery>,
) -> Result<Response, Problem> {
    let engine = app.engine()?;
    let request = query.base.into_request(user, app.config.server.max_n)?.filter(query.filter).offset(query.offset);
    catalogue::check_page(request.n, request.offset, app.config.server.max_n)?;
    Ok(Json(engine.recommend_async(request).await?).into_response())
}

#[utoipa::path(post, path = "/v1/sessions/recommend", tag = "recommend",
    summary = "Recommend items for an anonymous session from its events, given in the body (nothing is written; \
               items the server does not know are ignored; the strategy's order, no model).",
    request_body(content = api::SessionBody, description = "The session."),
    responses((status = 200, description = "Best first, with each item's reasons.", body = Recommendations)))]
async fn recommend_session(
    State(app): State<Arc<App>>,
    ApiQuery(_): ApiQuery<api::NoQuery>,
    ApiJson(body): ApiJson<api::SessionBody>,
) -> Result<Response, Problem> {
    let engine = app.engine()?;
    let request = body.into_request(engine.config(), app.config.server.max_n)?;
    catalogue::check_page(request.n, request.offset, app.config.server.max_n)?;
    Ok(Json(blocking(engine, move |engine| engine.recommend_session(&request)).await?).into_response())
}

#[utoipa::path(get, path = "/v1/items/{item}/similar", tag = "recommend",
    summary = "Items most often interacted with together with this one (`n`, the filter, `offset`).",
    params(("item" = String, Path, description = "Item id"), CountQuery, FilterParams),
    responses((status = 200, description = "Best first.", body = Items)))]
async fn similar(
    State(app): State<Arc<App>>,
    ApiPath(item): ApiPath<String>,
    query: Filtered<CountQuery>,
) -> Result<Response, Problem> {
    let engine = app.engine()?;
    let n = api::check_n(query.base.n, app.config.server.max_n)?;
    let query = query.query(n, app.config.server.max_n)?;
    let items = blocking(engine, move |engine| engine.similar_matching(&item, &query)).await?;
    Ok(Json(Items { items }).into_response())
}

#[utoipa::path(get, path = "/v1/popular", tag = "recommend", summary = "The most popular items (`n`, the filter, `offset`).",
    params(CountQuery, FilterParams),
    responses((status = 200, description = "Most events first.", body = Items)))]
async fn popular(State(app): State<Arc<App>>, query: Filtered<CountQuery>) -> Result<Response, Problem> {
    let engine = app.engine()?;
    let n = api::check_n(query.base.n, app.config.server.max_n)?;
    let query = query.query(n, app.config.server.max_n)?;
    let items = blocking(engine, move |engine| engine.popular_matching(&query)).await?;
    Ok(Json(Items { items }).into_response())
}

#[utoipa::path(get, path = "/v1/users/{user}/interactions", tag = "users", summary = "A user's recorded interactions.",
    params(("user" = String, Path, description = "User id")),
    responses((status = 200, description = "Every item the user interacted with.", body = Interactions)))]
async fn interactions(State(app): State<Arc<App>>, ApiPath(user): ApiPath<String>) -> Result<Response, Problem> {
    let engine = app.engine()?;
    let interactions = blocking(engine, move |engine| engine.interactions(&user)).await?;
    Ok(Json(Interactions { interactions }).into_response())
}

/// Runs a blocking engine call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    engine: Arc<Engine>,
    work: impl FnOnce(&Engine) -> Result<T, recwal::EngineError> + Send + 'static,
) -> Result<T, Problem> {
    match tokio::task::spawn_blocking(move || work(&engine)).await {
        Ok(result) => result.map_err(Problem::from),
        Err(err) => Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", err.to_string())),
    }
}

#[utoipa::path(delete, path = "/v1/users/{user}", tag = "users", summary = "Forget a user, their labels too (logged).",
    params(("user" = String, Path, description = "User id")),
    responses((status = 200, description = "Forgotten; the LSN of the record.", body = Logged)))]
async fn forget_user(State(app): State<Arc<App>>, ApiPath(user): ApiPath<String>) -> Result<Response, Problem> {
    if app.is_cluster_node() {
        return crate::cluster::write(&app, move |engine| engine.replica_write(ReplicaWrite::ForgetUser(&user))).await;
    }
    let lsn = blocking(app.engine()?, move |engine| engine.forget_user(&user)).await?;
    Ok(Json(Logged { lsn }).into_response())
}

#[utoipa::path(delete, path = "/v1/items/{item}", tag = "items", summary = "Stop recommending an item, for good (logged).",
    params(("item" = String, Path, description = "Item id")),
    responses((status = 200, description = "Removed; the LSN of the record.", body = Logged)))]
async fn remove_item(State(app): State<Arc<App>>, ApiPath(item): ApiPath<String>) -> Result<Response, Problem> {
    if app.is_cluster_node() {
        return crate::cluster::write(&app, move |engine| engine.replica_write(ReplicaWrite::RemoveItem(&item))).await;
    }
    let lsn = blocking(app.engine()?, move |engine| engine.remove_item(&item)).await?;
    Ok(Json(Logged { lsn }).into_response())
}

#[utoipa::path(get, path = "/admin/stats", tag = "admin", summary = "Engine counts.",
    responses((status = 200, description = "Counts.", body = Stats)))]
async fn stats(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    let stats = blocking(app.engine()?, |engine| Ok(engine.stats())).await?;
    Ok(Json(Stats {
        users: stats.users,
        items: stats.items,
        catalogue_items: stats.catalogue_items,
        pairs: stats.pairs,
        events_applied: stats.events_applied,
        lsn_applied: stats.lsn_applied,
        dedup_ids: stats.dedup_ids,
        lsn_snapshot: stats.lsn_snapshot,
        uptime_s: app.started.elapsed().as_secs(),
    })
    .into_response())
}

#[utoipa::path(get, path = "/admin/cluster", tag = "admin",
    summary = "This replica's view of the cluster: phase, stream position, apply lag, state digest (404 on a single node).",
    responses((status = 200, description = "The replica's status (as in `/readyz`).", body = ClusterStatus),
              (status = 404, description = "Not a cluster node (no `cluster.url`).", body = ProblemBody, content_type = "application/problem+json")))]
async fn cluster_status(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    let Some(replica) = app.cluster.get().cloned() else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "not a cluster node", "this node runs without cluster.url"));
    };
    let engine = app.engine()?;
    let status = blocking(engine, move |engine| Ok(replica.status(replica.position(engine)))).await?;
    Ok(Json(status).into_response())
}

#[utoipa::path(get, path = "/admin/wal", tag = "admin", summary = "The log: watermarks, counters, sync latency, recovery report.",
    responses((status = 200, description = "The log's state.", body = WalStatus)))]
async fn wal_status(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    let engine = app.engine()?;
    let wal = engine.wal_metrics();
    let report = engine.open_report();
    let (segment_bytes, segments_max) =
        (engine.config().wal.segment_bytes, u64::from(engine.config().wal.segments_max));
    Ok(Json(WalStatus {
        lsn_written: wal.lsn_written,
        lsn_appended: wal.lsn_appended,
        lsn_durable: wal.lsn_durable,
        lsn_released: wal.lsn_released,
        records_appended: wal.records_appended,
        bytes_appended: wal.bytes_appended,
        syncs: wal.syncs,
        sync_failures: wal.sync_failures,
        segments_live: wal.segments_live,
        segments_free: wal.segments_free,
        segment_bytes,
        segments_max,
        // Segment files (live and free) are preallocated; the ring never
        // holds more than `segments_max` of them.
        disk_bytes: (wal.segments_live + wal.segments_free) * segment_bytes,
        disk_bytes_max: segments_max * segment_bytes,
        sync_latency_us_p50: wal.sync_latency_us.quantile_upper_bound(0.5),
        sync_latency_us_p99: wal.sync_latency_us.quantile_upper_bound(0.99),
        recovery: Recovery {
            // False when the start cut or repaired anything (docs/DURABILITY.md,
            // "Damage at rest"): the operator's signal, beside the WARN line.
            clean: report.wal.is_clean() && report.snapshots_skipped.is_empty(),
            records_recovered: report.wal.records_recovered,
            bytes_cut: report.wal.bytes_cut,
            records_dropped: report.wal.records_dropped,
            tail_damage: report
                .wal
                .tail_damage
                .as_ref()
                .map(|damage| format!("{}: {}", damage.position, damage.reason)),
            corruption: report.wal.corruption.as_ref().map(|damage| format!("{}: {}", damage.position, damage.reason)),
            records_missing: report.wal.records_missing,
            snapshots_skipped: report
                .snapshots_skipped
                .iter()
                .map(|(path, reason)| format!("{}: {reason}", path.display()))
                .collect(),
            lsn_snapshot: report.lsn_snapshot,
            records_replayed: report.records_replayed,
            replay_ms: report.replay.as_millis() as u64,
        },
    })
    .into_response())
}

#[utoipa::path(post, path = "/admin/checkpoint", tag = "admin", summary = "Write a snapshot now and release the log behind it.",
    responses((status = 200, description = "The snapshot.", body = Checkpoint)))]
async fn checkpoint(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    let info = blocking(app.engine()?, |engine| engine.checkpoint()).await?;
    Ok(Json(Checkpoint {
        lsn: info.lsn,
        path: info.path.map(|path| path.display().to_string()),
        bytes: info.bytes,
        segments_released: info.segments_released,
    })
    .into_response())
}

/// `POST /admin/backup {"out": "/absolute/path"}`: a consistent, verified
/// backup written by the server into a new directory on its machine
/// (`recwal backup --server`); ingest goes on while it is taken.
#[utoipa::path(post, path = "/admin/backup", tag = "admin",
    summary = "Write a consistent, verified backup into a new directory `out` (absolute, on the server's machine); \
               ingest goes on meanwhile.",
    request_body = crate::backup::BackupRequest,
    responses((status = 201, description = "Written and verified.", body = Backup)))]
async fn backup(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<crate::backup::BackupRequest>,
) -> Result<Response, Problem> {
    let engine = app.engine()?;
    if !body.out.is_absolute() {
        return Err(Problem::bad_request(format!(
            "invalid out: must be an absolute path on the server's machine, got {:?}",
            body.out
        )));
    }
    let written = tokio::task::spawn_blocking(move || crate::backup::backup(&engine, &body.out))
        .await
        .map_err(|err| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", err.to_string()))?;
    match written {
        Ok(written) => {
            let body = Backup { dir: written.dir.display().to_string(), manifest: written.manifest };
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Err(crate::backup::BackupError::Engine(err)) => Err(Problem::from(err)),
        Err(err @ crate::backup::BackupError::Destination { .. }) => Err(Problem::bad_request(err.to_string())),
        Err(err) => Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "backup failed", err.to_string())),
    }
}

#[utoipa::path(get, path = "/admin/models", tag = "models", summary = "Every model version.",
    responses((status = 200, description = "Oldest first.", body = Models)))]
async fn list_models(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    let models = blocking(app.engine()?, |engine| Ok(engine.models())).await?;
    Ok(Json(Models { models }).into_response())
}

#[utoipa::path(post, path = "/admin/models", tag = "models",
    summary = "Add a model (body: the ONNX file). 201 with the version (an identical file already added answers \
               its version); 422 when the file is not a usable model.",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The ONNX file."),
    responses(
        (status = 201, description = "Added (or already there): its version.", body = ModelInfo),
        (status = 422, description = "The file is not a usable model (it does not load, breaks the feature contract or fails warm-up).", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn add_model(State(app): State<Arc<App>>, ApiBytes(body): ApiBytes) -> Result<Response, Problem> {
    if body.is_empty() {
        // The engine's own bound is wider than this server's limit: name the one in force.
        let max = app.config.server.model_limit_bytes.min(recwal::MODEL_BYTES_MAX);
        return Err(Problem::bad_request(format!("invalid body: must be 1–{max} bytes (an ONNX file), got 0")));
    }
    if app.is_cluster_node() {
        return crate::cluster::models::add(&app, body.to_vec()).await;
    }
    let info = blocking(app.engine()?, move |engine| engine.add_model(&body)).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(post, path = "/admin/models/{version}/activate", tag = "models",
    summary = "Activate a version (durable, then swapped in).",
    params(("version" = u32, Path, description = "A model version number.")),
    responses((status = 200, description = "Active.", body = ModelInfo)))]
async fn activate_model(State(app): State<Arc<App>>, ApiPath(version): ApiPath<String>) -> Result<Response, Problem> {
    let version: u32 = version
        .parse()
        .map_err(|_| Problem::bad_request(format!("invalid version: {version:?} is not a version number")))?;
    if app.is_cluster_node() {
        return crate::cluster::models::activate(&app, Some(version)).await;
    }
    let info = blocking(app.engine()?, move |engine| engine.activate_model(version)).await?;
    Ok(Json(info).into_response())
}

#[utoipa::path(post, path = "/admin/models/rollback", tag = "models",
    summary = "Re-activate the previous version (409 when there is none).",
    responses(
        (status = 200, description = "The version now active.", body = ModelInfo),
        (status = 409, description = "There is no previous version to roll back to.", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn rollback_model(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    // With no previous version the request is well-formed but the registry's
    // state forbids it: a conflict, not a bad request.
    let as_conflict = model_routes::as_conflict;
    if app.is_cluster_node() {
        return crate::cluster::models::activate(&app, None).await.map_err(as_conflict);
    }
    let info = blocking(app.engine()?, |engine| engine.rollback_model()).await.map_err(as_conflict)?;
    Ok(Json(info).into_response())
}

#[utoipa::path(get, path = "/admin/models/status", tag = "models",
    summary = "Runtime, active and serving versions, fault, breaker.",
    responses((status = 200, description = "The ranking side now.", body = ModelStatus)))]
async fn model_status(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    let status = blocking(app.engine()?, |engine| Ok(engine.model_status())).await?;
    Ok(Json(status).into_response())
}

/// Opens the engine off the async threads, then marks the server ready.
pub async fn open_engine(app: Arc<App>) -> Result<(), String> {
    let dir = app.config.server.data_dir.clone();
    let config = app.config.engine().map_err(|err| err.to_string())?;
    info!(data_dir = %dir.display(), "opening the engine: replaying the log");
    let watcher = Arc::clone(&app);
    let engine_config = config.clone();
    let opened = tokio::task::spawn_blocking(move || {
        // A progress bar when a person watches; log lines (every second,
        // from the engine) either way.
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("replay {bar:40} {pos}/{len} records ({per_sec}, eta {eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let opened = Engine::open_with_progress(&dir, config, &|progress| {
            watcher.replay_done.store(progress.records_done, Ordering::Relaxed);
            watcher.replay_total.store(progress.records_total, Ordering::Relaxed);
            if let Some(bar) = &bar {
                bar.set_length(progress.records_total);
                bar.set_position(progress.records_done);
            }
        });
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        opened
    })
    .await
    .map_err(|err| format!("the start-up task failed: {err}"))?
    .map_err(|err| err.to_string())?;
    // A replica's state comes from the stream alone, a single node's from
    // its own writes: one data dir is never both (it would serve a state no
    // other replica has, while ready).
    let stats = opened.stats();
    let shown = app.config.server.data_dir.display();
    match (app.cluster.get().is_some(), opened.stream_seq()) {
        (false, seq) if seq > 0 => {
            return Err(format!(
                "{shown} is a replica's data dir (it applied the cluster's stream through sequence {seq}): start it \
                 with --cluster; a write of a single node here would make it differ from every other replica \
                 (`recwal export` copies its events out for a single node)"
            ));
        }
        (true, 0) if stats.users + stats.items + stats.catalogue_items > 0 => {
            return Err(format!(
                "{shown} holds a single node's data ({} users, {} items, none of them from the cluster's stream): a \
                 replica's state comes from the stream alone; start it on an empty data dir (`recwal import \
                 --server` sends these events to the cluster)",
                stats.users, stats.items
            ));
        }
        _ => {}
    }
    // A replica that cannot follow the stream from where it stands (or a
    // new one) starts from the snapshot bucket instead (cluster/seed.rs).
    let opened = match app.cluster.get() {
        Some(replica) => replica.seed_at_open(opened, &app.config.server.data_dir, engine_config).await?,
        None => opened,
    };
    let report = opened.open_report();
    info!(
        records_replayed = report.records_replayed,
        lsn_snapshot = report.lsn_snapshot,
        replay_ms = report.replay.as_millis() as u64,
        "ready"
    );
    if app.engine.set(Arc::new(opened)).is_err() {
        warn!("the engine was opened twice");
    }
    Ok(())
}
