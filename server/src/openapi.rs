//! The OpenAPI 3.1 document served at `/openapi.json`. `ROUTES` is the list
//! of every route the router serves; a test checks the two agree.
//!
//! The limits it states are read from the configuration the server runs
//! with and from the engine's own constants (id length, strategies, kinds,
//! rating and weight ranges), never restated by hand, so the document and the
//! checks cannot drift apart; `server/tests/http.rs` sends requests just
//! inside and just outside each stated limit to hold them together, and
//! `scripts/schemathesis.sh` fuzzes the server against this document.

use recwal::{
    EngineConfig, Strategy, CATEGORY_BYTES_MAX, EVENT_ID_BYTES_MAX, FILTER_CATEGORIES_MAX, FILTER_LABELS_MAX,
    ID_BYTES_MAX, ITEM_CATEGORIES_MAX, LABELS_MAX, LABEL_KEY_BYTES_MAX, LABEL_TEXT_BYTES_MAX, MODEL_BYTES_MAX,
    WEIGHT_MAX,
};
use serde_json::{json, Value};

use crate::api;
use crate::config::ServeConfig;

/// What an operation is, for its responses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `/healthz`: answered by the process alone.
    Probe,
    /// `/readyz`: its 503 is a readiness report, not a problem.
    Ready,
    /// `/metrics`, `/openapi.json`: never refused for load or replay.
    Meta,
    /// Reads the engine's state.
    Read,
    /// Writes to the log (ingest, forget, remove, models, checkpoint).
    Write,
}

/// One route: method, path, summary, request body, auth needed, what it is,
/// its success status and the schema of its success body.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    pub auth: bool,
    kind: Kind,
    success: &'static str,
    answer: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    kind: Kind,
    success: &'static str,
    answer: &'static str,
) -> Route {
    Route { method, path, summary, body: None, auth: true, kind, success, answer }
}

/// Every route the router serves.
pub const ROUTES: &[Route] = &[
    Route { auth: false, ..route("get", "/healthz", "Liveness: the process answers.", Kind::Probe, "200", "Health") },
    Route {
        auth: false,
        ..route(
            "get",
            "/readyz",
            "Readiness: replay finished and the log is writable (503 with reasons otherwise).",
            Kind::Ready,
            "200",
            "Readiness",
        )
    },
    route(
        "get",
        "/metrics",
        "Prometheus text: engine, log, models, HTTP latency per route.",
        Kind::Meta,
        "200",
        "Metrics",
    ),
    route("get", "/openapi.json", "This document.", Kind::Meta, "200", "Document"),
    Route {
        body: Some("IngestRequest"),
        ..route(
            "post",
            "/v1/events",
            "Ingest a batch of events (one log record); durable before the answer.",
            Kind::Write,
            "200",
            "IngestResponse",
        )
    },
    Route {
        body: Some("Event"),
        ..route("post", "/v1/event", "Ingest one event (`?durability=`).", Kind::Write, "200", "IngestResponse")
    },
    route(
        "get",
        "/v1/users/{user}/recommend",
        "Recommend items for a user (`n`, `strategy`, `exclude`, `allow`, the filter `category`, `label`, \
         `label_min`, `label_max`, and `offset`); an unknown user gets popular items (`cold_start`).",
        Kind::Read,
        "200",
        "Recommendations",
    ),
    Route {
        body: Some("SessionRequest"),
        ..route(
            "post",
            "/v1/sessions/recommend",
            "Recommend items for an anonymous session from its events, given in the body (nothing is written; \
             items the server does not know are ignored; the strategy's order, no model).",
            Kind::Read,
            "200",
            "Recommendations",
        )
    },
    route("get", "/v1/users/{user}/interactions", "A user's recorded interactions.", Kind::Read, "200", "Interactions"),
    route("delete", "/v1/users/{user}", "Forget a user, their labels too (logged).", Kind::Write, "200", "Logged"),
    route(
        "get",
        "/v1/users/{user}",
        "A user's labels (404 when none were set, or after a forget).",
        Kind::Read,
        "200",
        "User",
    ),
    Route {
        body: Some("UserBody"),
        ..route(
            "put",
            "/v1/users/{user}",
            "Set a user's labels, replacing what they had (logged).",
            Kind::Write,
            "200",
            "Logged",
        )
    },
    route(
        "get",
        "/v1/items/{item}/similar",
        "Items most often interacted with together with this one (`n`, the filter, `offset`).",
        Kind::Read,
        "200",
        "Items",
    ),
    route("delete", "/v1/items/{item}", "Stop recommending an item, for good (logged).", Kind::Write, "200", "Logged"),
    route(
        "get",
        "/v1/items/{item}",
        "An item's catalogue entry (404 when it has none: unknown, or known from events only).",
        Kind::Read,
        "200",
        "Item",
    ),
    Route {
        body: Some("ItemBody"),
        ..route(
            "put",
            "/v1/items/{item}",
            "Set an item's catalogue entry (categories, labels, hidden, timestamp_ms, expires_ms), replacing what \
             it had (logged).",
            Kind::Write,
            "200",
            "Logged",
        )
    },
    route(
        "post",
        "/v1/items/{item}/hide",
        "Hide an item from every read from the next request on (logged; 404 for an unknown item).",
        Kind::Write,
        "200",
        "Logged",
    ),
    route("post", "/v1/items/{item}/show", "Show a hidden item again (logged).", Kind::Write, "200", "Logged"),
    route(
        "get",
        "/v1/items",
        "A page of catalogue items in the order they entered it (`limit`, `after`: the previous page's `next`; \
         404 when `after` names no item).",
        Kind::Read,
        "200",
        "ItemPage",
    ),
    route(
        "get",
        "/v1/latest",
        "The newest catalogue items by publication time (`n`, the filter, `offset`); hidden, expired, not yet \
         published and undated items are left out.",
        Kind::Read,
        "200",
        "CatalogueItems",
    ),
    route("get", "/v1/popular", "The most popular items (`n`, the filter, `offset`).", Kind::Read, "200", "Items"),
    route("get", "/admin/stats", "Engine counts.", Kind::Read, "200", "Stats"),
    route(
        "get",
        "/admin/wal",
        "The log: watermarks, counters, sync latency, recovery report.",
        Kind::Read,
        "200",
        "WalStatus",
    ),
    route(
        "post",
        "/admin/checkpoint",
        "Write a snapshot now and release the log behind it.",
        Kind::Write,
        "200",
        "Checkpoint",
    ),
    Route {
        body: Some("BackupRequest"),
        ..route(
            "post",
            "/admin/backup",
            "Write a consistent, verified backup into a new directory `out` (absolute, on the server's machine); \
             ingest goes on meanwhile.",
            Kind::Write,
            "201",
            "Backup",
        )
    },
    route("get", "/admin/models", "Every model version.", Kind::Read, "200", "Models"),
    Route {
        body: Some("Model"),
        ..route(
            "post",
            "/admin/models",
            "Add a model (body: the ONNX file). 201 with the version (an identical file already added answers \
             its version); 422 when the file is not a usable model.",
            Kind::Write,
            "201",
            "ModelInfo",
        )
    },
    route(
        "get",
        "/admin/models/status",
        "Runtime, active and serving versions, fault, breaker.",
        Kind::Read,
        "200",
        "ModelStatus",
    ),
    route(
        "post",
        "/admin/models/rollback",
        "Re-activate the previous version (409 when there is none).",
        Kind::Write,
        "200",
        "ModelInfo",
    ),
    route(
        "post",
        "/admin/models/{version}/activate",
        "Activate a version (durable, then swapped in).",
        Kind::Write,
        "200",
        "ModelInfo",
    ),
];

/// An external id (user, item, event id): what `recwal::event` enforces.
/// JSON Schema counts characters and the server counts UTF-8 bytes: both
/// are stated (`maxLength`, and `x-maxBytes` with the description).
fn id_schema(what: &str, max_bytes: usize) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max_bytes,
        "x-maxBytes": max_bytes,
        "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        "description": format!("{what}: 1–{max_bytes} bytes of UTF-8, no control characters (Unicode Cc)."),
    })
}

fn parameters(route: &Route, config: &ServeConfig) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, what) in [("user", "User id"), ("item", "Item id")] {
        if route.path.contains(&format!("{{{name}}}")) {
            out.push(json!({ "name": name, "in": "path", "required": true, "schema": id_schema(what, ID_BYTES_MAX) }));
        }
    }
    if route.path.contains("{version}") {
        out.push(json!({
            "name": "version", "in": "path", "required": true,
            "schema": { "type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "A model version number." },
        }));
    }
    let query = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    let n = || {
        query(
            "n",
            &format!("Items wanted (default {}, at most max_n = {}).", api::DEFAULT_N, config.server.max_n),
            json!({ "type": "integer", "minimum": 1, "maximum": config.server.max_n }),
        )
    };
    // The user's recommend route; the session route takes its whole request
    // in the body.
    if route.path == "/v1/users/{user}/recommend" {
        out.push(n());
        let strategies: Vec<&str> = Strategy::ALL.iter().map(|strategy| strategy.name()).collect();
        out.push(query(
            "strategy",
            "Scoring strategy (default blend).",
            json!({ "type": "string", "enum": strategies }),
        ));
        out.push(query("exclude", "Comma-separated item ids never to return.", json!({ "type": "string" })));
        out.push(query("allow", "Comma-separated item ids: only these may be returned.", json!({ "type": "string" })));
    }
    if route.path.ends_with("/similar") || route.path == "/v1/popular" || route.path == "/v1/latest" {
        out.push(n());
    }
    if route.method == "get"
        && (route.path == "/v1/users/{user}/recommend"
            || route.path.ends_with("/similar")
            || route.path == "/v1/popular"
            || route.path == "/v1/latest")
    {
        out.extend(filter_parameters(config.server.max_n));
    }
    if route.path == "/v1/items" {
        out.push(query(
            "after",
            "The `next` of the previous page (404 when it names no item).",
            id_schema("Item id", ID_BYTES_MAX),
        ));
        out.push(query(
            "limit",
            &format!(
                "Items per page (default {}, at most max_n = {}).",
                crate::catalogue::ITEMS_PAGE_DEFAULT.min(config.server.max_n),
                config.server.max_n
            ),
            json!({ "type": "integer", "minimum": 1, "maximum": config.server.max_n }),
        ));
    }
    if route.path == "/v1/event" {
        out.push(query(
            "durability",
            "always, batch or never (default: the server's `sync`).",
            json!({ "type": "string", "enum": ["always", "batch", "never"] }),
        ));
    }
    out
}

/// No control characters (Unicode Cc), as the engine checks names and text.
const NO_CONTROL: &str = "\\u0000-\\u001F\\u007F-\\u009F";

/// A category (of an item, or named by a filter).
fn category_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": CATEGORY_BYTES_MAX,
        "x-maxBytes": CATEGORY_BYTES_MAX,
        "pattern": format!("^[^{NO_CONTROL}]*$"),
        "description": format!("1–{CATEGORY_BYTES_MAX} bytes of UTF-8, no control characters."),
    })
}

/// `category`, `label`, `label_min`, `label_max`, `offset`: what every list
/// read takes (server/src/catalogue.rs).
fn filter_parameters(max_n: usize) -> Vec<Value> {
    let repeated = |name: &str, description: String, items: Value, max: usize| {
        json!({
            "name": name, "in": "query", "required": false, "style": "form", "explode": true,
            "description": description,
            "schema": { "type": "array", "maxItems": max, "items": items },
        })
    };
    let key = format!("[^:{NO_CONTROL}]{{1,{LABEL_KEY_BYTES_MAX}}}");
    let number = "-?[0-9]{1,15}(\\.[0-9]{1,15})?";
    let conditions = format!(
        "At most {FILTER_LABELS_MAX} label conditions in all (`label`, `label_min` and `label_max` together), all \
         of which must hold; an item without the label fails its condition. The key is what comes before the first \
         colon (1–{LABEL_KEY_BYTES_MAX} bytes, so a key holding a colon cannot be named here)."
    );
    vec![
        repeated(
            "category",
            format!(
                "Only items in at least one of these categories (repeat the parameter: `category=a&category=b`; at \
                 most {FILTER_CATEGORIES_MAX})."
            ),
            category_schema(),
            FILTER_CATEGORIES_MAX,
        ),
        repeated(
            "label",
            format!(
                "`key:text`: the item's label `key` is the text `text` (the rest of the value, colons included, \
                 at most {LABEL_TEXT_BYTES_MAX} bytes). For a number use `label_min` and `label_max` with the same \
                 bound. {conditions}"
            ),
            json!({ "type": "string", "pattern": format!("^{key}:[^{NO_CONTROL}]{{0,{LABEL_TEXT_BYTES_MAX}}}$"), "x-maxBytes": LABEL_KEY_BYTES_MAX + 1 + LABEL_TEXT_BYTES_MAX }),
            FILTER_LABELS_MAX,
        ),
        repeated(
            "label_min",
            format!("`key:number`: the item's label `key` is a number ≥ `number` (finite). {conditions}"),
            json!({ "type": "string", "pattern": format!("^{key}:{number}$") }),
            FILTER_LABELS_MAX,
        ),
        repeated(
            "label_max",
            format!("`key:number`: the item's label `key` is a number ≤ `number` (finite). {conditions}"),
            json!({ "type": "string", "pattern": format!("^{key}:{number}$") }),
            FILTER_LABELS_MAX,
        ),
        json!({
            "name": "offset", "in": "query", "required": false,
            "description": format!(
                "Items of the full answer to skip (the next page; default 0). offset + n must be at most max_n = \
                 {max_n}. Pages are stable while the state does not change."
            ),
            "schema": { "type": "integer", "minimum": 0, "maximum": max_n - 1, "x-maxOffsetPlusN": max_n },
        }),
    ]
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

/// A 503 that a client should retry after a while.
fn retry_later(description: &str) -> Value {
    let mut response = problem(description);
    response["headers"] = json!({
        "Retry-After": {
            "description": "Seconds to wait before retrying, when the server can tell.",
            "required": false,
            "schema": { "type": "string" },
        },
    });
    response
}

/// Every status `route` can answer, and what it means there.
fn responses(route: &Route, config: &ServeConfig) -> Value {
    let success = match route.answer {
        "Metrics" => {
            json!({ "description": "Prometheus text exposition format 0.0.4.", "content": { "text/plain": { "schema": { "type": "string" } } } })
        }
        answer => json!({
            "description": "Success.",
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{answer}") } } },
        }),
    };
    let mut out = serde_json::Map::new();
    out.insert(route.success.to_string(), success);
    // Below the router (hyper, the connection layer): every route.
    out.insert(
        "400".into(),
        problem(match route.body {
            Some("Model") => "Bad request: a malformed request, or an empty model file. Nothing was written.",
            Some(_) => {
                "Bad request: malformed JSON, a field of the wrong type, an unknown field, or a value breaking a \
                 rule (the detail names the field). Nothing was written."
            }
            None if route.kind == Kind::Probe || route.kind == Kind::Ready || route.kind == Kind::Meta => {
                "Bad request: the request line or headers are malformed."
            }
            None => {
                "Bad request: a malformed request, or a parameter breaking a rule (the detail names it). \
                     Nothing was written."
            }
        }),
    );
    if route.auth {
        let mut unauthorized =
            problem("The server has a token and the request lacked `Authorization: Bearer <token>` or had another.");
        unauthorized["headers"] =
            json!({ "WWW-Authenticate": { "required": true, "schema": { "type": "string", "const": "Bearer" } } });
        out.insert("401".into(), unauthorized);
    }
    if (route.path.contains('{') && !route.path.ends_with("/recommend")) || route.path == "/v1/items" {
        out.insert(
            "404".into(),
            problem(if route.path.contains("{version}") {
                "No such model version (or it was retired)."
            } else if route.path == "/v1/items" {
                "`after` names no item."
            } else if route.method == "get" && (route.path == "/v1/items/{item}" || route.path == "/v1/users/{user}") {
                "The item has no catalogue entry, or the user no labels."
            } else {
                "The user or item is not known to the engine."
            }),
        );
    }
    out.insert("408".into(), problem("The client took too long to send the request headers or body."));
    if let Some(body) = route.body {
        let limit = if body == "Model" { config.server.model_limit_bytes } else { config.server.body_limit_bytes };
        out.insert("413".into(), problem(&format!("The body is larger than {limit} bytes.")));
        if body != "Model" {
            out.insert("415".into(), problem("The body's Content-Type is not application/json."));
        }
    }
    out.insert("414".into(), problem("The URI is too long."));
    if route.body == Some("Model") {
        out.insert(
            "422".into(),
            problem("The file is not a usable model (it does not load, breaks the feature contract or fails warm-up)."),
        );
    }
    if route.path == "/admin/models/rollback" {
        out.insert("409".into(), problem("There is no previous version to roll back to."));
    }
    out.insert("431".into(), problem("The request headers are too large."));
    if route.kind != Kind::Probe {
        out.insert("500".into(), problem("An internal error; the detail says which."));
    }
    match route.kind {
        Kind::Probe | Kind::Meta => {}
        Kind::Ready => {
            out.insert(
                "503".into(),
                json!({
                    "description": "Not ready: replaying the log, or unable to write (the reasons say why).",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } },
                }),
            );
        }
        Kind::Read => {
            out.insert(
                "503".into(),
                retry_later(
                    "Unavailable: starting (the log is being replayed), the concurrency limit is reached, the \
                     request timed out, or (recommend) the model runtime is unavailable.",
                ),
            );
        }
        Kind::Write => {
            out.insert(
                "503".into(),
                retry_later(
                    "Unavailable: starting, the concurrency limit is reached, the request timed out (a write it \
                     carried may still complete: resend ingests with the same event ids), the disk is full, the \
                     log is full, or the engine stopped accepting writes after a failed sync.",
                ),
            );
        }
    }
    Value::Object(out)
}

/// The document, for a server running with `config`.
pub fn document(config: &ServeConfig) -> Value {
    let engine = config.engine().unwrap_or_else(|_| EngineConfig::default());
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let mut operation = json!({
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '.'], "_")),
            "summary": route.summary,
            "parameters": parameters(route, config),
            "responses": responses(route, config),
        });
        if let Some(schema) = route.body {
            let content = if schema == "Model" {
                json!({ "application/octet-stream": { "schema": {
                    "type": "string", "format": "binary", "contentMediaType": "application/octet-stream",
                    "minLength": 1, "x-maxBytes": config.server.model_limit_bytes.min(MODEL_BYTES_MAX),
                    "description": format!(
                        "The ONNX file, 1–{} bytes (the body is read as the raw file whatever its Content-Type).",
                        config.server.model_limit_bytes.min(MODEL_BYTES_MAX)
                    ),
                } } })
            } else {
                json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } })
            };
            let limit =
                if schema == "Model" { config.server.model_limit_bytes } else { config.server.body_limit_bytes };
            operation["requestBody"] = json!({
                "required": true,
                "description": format!("At most {limit} bytes (413 beyond)."),
                "x-maxBodyBytes": limit,
                "content": content,
            });
        }
        if !route.auth {
            operation["security"] = json!([]);
        }
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        entry[route.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "recwal",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "A stateful recommendation engine with its own write-ahead log. An HTTP 200 on an ingest means the \
                 events are durable under the requested durability. When a token is configured every route but \
                 /healthz and /readyz needs `Authorization: Bearer <token>`. Every error is \
                 application/problem+json. Limits of this server: request bodies at most {} bytes (model uploads \
                 {}), at most {} events per ingest, n at most {}.",
                config.server.body_limit_bytes, config.server.model_limit_bytes, config.engine.batch_events_max, config.server.max_n
            ),
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(config, &engine),
        },
    })
}

fn schemas(config: &ServeConfig, engine: &EngineConfig) -> Value {
    let ids = |what| id_schema(what, ID_BYTES_MAX);
    let max_future_ms = u64::try_from(engine.max_future.as_millis()).unwrap_or(u64::MAX);
    let timestamp = json!({
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": i64::MAX,
        "x-maxFutureMs": max_future_ms,
        "description": format!(
            "Milliseconds since the Unix epoch, at most {max_future_ms} ms ahead of the server's clock \
             (a rule of the clock that JSON Schema cannot state); now when absent or null."
        ),
    });
    let event_id = {
        let mut schema =
            id_schema("Client event id (a repeat inside the dedup window is a duplicate)", EVENT_ID_BYTES_MAX);
        schema["type"] = json!(["string", "null"]);
        schema
    };
    let implicit_kinds: Vec<String> = api::kinds(engine).into_iter().filter(|kind| kind != "rating").collect();
    let (rating_min, rating_max) = (f64::from(engine.rating_min), f64::from(engine.rating_max));
    let weight_max = f64::from(WEIGHT_MAX);
    let integer = json!({ "type": "integer", "minimum": 0 });
    let nullable_integer = json!({ "type": ["integer", "null"], "minimum": 0 });
    let scored = json!({
        "type": "object",
        "required": ["item", "score", "strategy", "reasons"],
        "properties": {
            "item": { "type": "string" },
            "score": { "type": "number" },
            "strategy": { "type": "string" },
            "reasons": { "type": "array", "items": { "type": "object", "required": ["kind"], "properties": { "kind": { "type": "string" } } } },
            "model_score": { "type": ["number", "null"] },
        },
    });
    let label_key = json!({
        "type": "string",
        "minLength": 1, "maxLength": LABEL_KEY_BYTES_MAX, "x-maxBytes": LABEL_KEY_BYTES_MAX,
        "pattern": format!("^[^{NO_CONTROL}]*$"),
    });
    let label_value = json!({
        "anyOf": [
            { "type": "number", "minimum": f64::MIN, "maximum": f64::MAX, "description": "A finite number." },
            {
                "type": "string",
                "maxLength": LABEL_TEXT_BYTES_MAX,
                "x-maxBytes": LABEL_TEXT_BYTES_MAX,
                "pattern": format!("^[^{NO_CONTROL}]*$"),
                "description": format!("Text: at most {LABEL_TEXT_BYTES_MAX} bytes of UTF-8, no control characters."),
            },
        ],
    });
    let labels = json!({
        "type": "object",
        "maxProperties": LABELS_MAX,
        "propertyNames": {
            "minLength": 1, "maxLength": LABEL_KEY_BYTES_MAX, "x-maxBytes": LABEL_KEY_BYTES_MAX,
            "pattern": format!("^[^{NO_CONTROL}]*$"),
        },
        "additionalProperties": label_value,
        "description": format!(
            "At most {LABELS_MAX} labels: keys of 1–{LABEL_KEY_BYTES_MAX} bytes with no control characters, values \
             a number or a text."
        ),
    });
    let categories = json!({
        "type": "array",
        "maxItems": ITEM_CATEGORIES_MAX,
        "items": category_schema(),
        "description": format!("At most {ITEM_CATEGORIES_MAX} distinct categories (repeats are dropped)."),
    });
    let stamp = |what: &str| json!({ "type": ["integer", "null"], "minimum": i64::MIN, "maximum": i64::MAX, "description": what });
    let nullable_id = |what| {
        let mut schema = ids(what);
        schema["type"] = json!(["string", "null"]);
        schema
    };
    let item = json!({
        "type": "object",
        "required": ["id", "categories", "labels", "hidden"],
        "properties": {
            "id": { "type": "string" }, "categories": { "type": "array", "items": { "type": "string" } },
            "labels": { "type": "object" }, "hidden": { "type": "boolean" },
            "timestamp_ms": { "type": ["integer", "null"] }, "expires_ms": { "type": ["integer", "null"] },
        },
    });
    let catalogue = json!({
        "ItemBody": {
            "type": "object",
            "additionalProperties": false,
            "description": format!(
                "An item's whole catalogue entry: what is absent is cleared. At most {} bytes in all (413 beyond).",
                config.server.body_limit_bytes
            ),
            "properties": {
                "id": nullable_id("The path's id, repeated (optional; any other is refused)"),
                "categories": categories,
                "labels": labels,
                "hidden": { "type": ["boolean", "null"], "description": "Hidden from every read (default false)." },
                "timestamp_ms": stamp("Published / valid from, ms since the Unix epoch: not returned before it, and the order of /v1/latest (an item without one is not listed there)."),
                "expires_ms": stamp("Not returned from this time on (ms since the Unix epoch); after timestamp_ms when both are set."),
            },
        },
        "UserBody": {
            "type": "object",
            "additionalProperties": false,
            "properties": { "id": nullable_id("The path's id, repeated (optional; any other is refused)"), "labels": labels },
        },
        "Item": item,
        "User": {
            "type": "object",
            "required": ["id", "labels"],
            "properties": { "id": { "type": "string" }, "labels": { "type": "object" } },
        },
        "ItemPage": {
            "type": "object",
            "required": ["items", "next"],
            "properties": {
                "items": { "type": "array", "items": item },
                "next": { "type": ["string", "null"], "description": "`after` of the next page; null on the last." },
            },
        },
        "CatalogueItems": { "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": item } } },
    });
    let mut all = json!({
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": { "type": "string" }, "title": { "type": "string" },
                "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "detail": { "type": "string", "description": "Names the field or rule." },
            },
        },
        "Event": {
            "description": "One event. `value` (the rating) only with kind rating, which takes no weight; every \
                            other kind may override its configured weight.",
            "oneOf": [
                {
                    "type": "object",
                    "title": "Rating",
                    "additionalProperties": false,
                    "required": ["user", "item", "kind", "value"],
                    "properties": {
                        "user": ids("User id"),
                        "item": ids("Item id"),
                        "kind": { "const": "rating" },
                        "value": { "type": "number", "minimum": rating_min, "maximum": rating_max, "description": "The rating." },
                        "timestamp_ms": timestamp,
                        "event_id": event_id,
                    },
                },
                {
                    "type": "object",
                    "title": "Implicit",
                    "additionalProperties": false,
                    "required": ["user", "item", "kind"],
                    "properties": {
                        "user": ids("User id"),
                        "item": ids("Item id"),
                        "kind": { "type": "string", "enum": implicit_kinds, "description": "A built-in kind or a custom one configured in [engine.weights.custom]." },
                        "value": { "type": "null", "description": "Only kind rating takes a value." },
                        "weight": { "type": ["number", "null"], "minimum": 0, "maximum": weight_max, "description": "Overrides the kind's configured weight." },
                        "timestamp_ms": timestamp,
                        "event_id": event_id,
                    },
                },
            ],
        },
        "SessionRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["events"],
            "properties": {
                "events": {
                    "type": "array",
                    "maxItems": recwal::SESSION_EVENTS_MAX,
                    "description": "The session's events, oldest first; as ingested events, without user, time or id.",
                    "items": { "oneOf": [
                        {
                            "type": "object",
                            "title": "Rating",
                            "additionalProperties": false,
                            "required": ["item", "kind", "value"],
                            "properties": {
                                "item": ids("Item id"),
                                "kind": { "const": "rating" },
                                "value": { "type": "number", "minimum": rating_min, "maximum": rating_max },
                            },
                        },
                        {
                            "type": "object",
                            "title": "Implicit",
                            "additionalProperties": false,
                            "required": ["item", "kind"],
                            "properties": {
                                "item": ids("Item id"),
                                "kind": { "type": "string", "enum": implicit_kinds.clone() },
                                "value": { "type": "null" },
                                "weight": { "type": ["number", "null"], "minimum": 0, "maximum": weight_max },
                            },
                        },
                    ] },
                },
                "n": { "type": ["integer", "null"], "minimum": 1, "maximum": config.server.max_n, "description": "10 when absent or null." },
                "strategy": {
                    "type": ["string", "null"],
                    "enum": Strategy::ALL.iter().map(|strategy| json!(strategy.name())).chain([Value::Null]).collect::<Vec<_>>(),
                    "description": "blend when absent or null.",
                },
                "exclude": { "type": "array", "items": { "type": "string" }, "description": "Item ids never to return (ids the server does not know are ignored)." },
                "filter": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "categories": { "type": "array", "maxItems": FILTER_CATEGORIES_MAX, "items": category_schema(), "description": "Any of these." },
                        "labels": { "type": "array", "maxItems": FILTER_LABELS_MAX, "description": "All of these.", "items": { "oneOf": [
                            {
                                "type": "object", "additionalProperties": false, "required": ["op", "key", "value"],
                                "properties": { "op": { "const": "equals" }, "key": label_key.clone(), "value": label_value.clone() },
                            },
                            {
                                "type": "object", "additionalProperties": false, "required": ["op", "key", "value"],
                                "properties": {
                                    "op": { "type": "string", "enum": ["at_least", "at_most"] },
                                    "key": label_key.clone(),
                                    "value": { "type": "number", "minimum": f64::MIN, "maximum": f64::MAX },
                                },
                            },
                        ] } },
                    },
                },
                "offset": {
                    "type": ["integer", "null"], "minimum": 0, "maximum": config.server.max_n - 1, "x-maxOffsetPlusN": config.server.max_n,
                    "description": "Items of the whole answer to skip (0 when absent or null); offset + n must not exceed max_n.",
                },
            },
        },
        "IngestRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["events"],
            "description": format!("At most {} bytes in all (413 beyond).", config.server.body_limit_bytes),
            "properties": {
                "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" }, "minItems": 1, "maxItems": config.engine.batch_events_max },
                "durability": { "type": ["string", "null"], "enum": ["always", "batch", "never", null], "description": "The server's `sync` when absent or null." },
            },
        },
        "Health": { "type": "object", "required": ["status"], "properties": { "status": { "const": "alive" } } },
        "Readiness": {
            "type": "object",
            "required": ["ready", "reasons"],
            "properties": {
                "ready": { "type": "boolean" },
                "reasons": { "type": "array", "items": { "type": "string" } },
                "disk_full": {
                    "description": "Set while a write was refused for lack of space (null otherwise); clears by itself once space is back.",
                    "type": ["object", "null"],
                    "properties": {
                        "what": { "type": "string" },
                        "path": { "type": "string" },
                        "detail": { "type": "string" },
                        "since_unix_ms": integer,
                    },
                },
            },
        },
        "Document": { "type": "object", "required": ["openapi", "paths"] },
        "IngestResponse": {
            "type": "object",
            "required": ["receipts"],
            "properties": {
                "receipts": { "type": "array", "items": {
                    "type": "object", "required": ["lsn", "duplicate"],
                    "properties": { "lsn": integer, "duplicate": { "type": "boolean" } },
                } },
            },
        },
        "Recommendations": {
            "type": "object",
            "required": ["strategy", "cold_start", "lsn", "items", "ranking"],
            "properties": {
                "strategy": { "type": "string" },
                "cold_start": { "type": "boolean" },
                "lsn": integer,
                "items": { "type": "array", "items": scored },
                "ranking": { "type": "object", "required": ["kind"], "properties": { "kind": { "enum": ["unranked", "model", "degraded"] } } },
            },
        },
        "Items": { "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": scored } } },
        "Interactions": {
            "type": "object",
            "required": ["interactions"],
            "properties": { "interactions": { "type": "array", "items": {
                "type": "object", "required": ["item", "value", "events"],
                "properties": { "item": { "type": "string" }, "value": { "type": "number" }, "rating": { "type": ["number", "null"] }, "events": integer },
            } } },
        },
        "Logged": { "type": "object", "required": ["lsn"], "properties": { "lsn": integer } },
        "Stats": {
            "type": "object",
            "required": ["users", "items", "events_applied", "applied_lsn"],
            "properties": { "users": integer, "items": integer, "catalogue_items": integer, "pairs": integer, "events_applied": integer, "applied_lsn": integer, "dedup_ids": integer, "snapshot_lsn": nullable_integer, "uptime_s": integer },
        },
        "WalStatus": {
            "type": "object",
            "required": ["lsn_written", "lsn_appended", "lsn_durable", "recovery"],
            "properties": { "lsn_written": integer, "lsn_appended": integer, "lsn_durable": integer, "sync_failures": integer,
                "recovery": {
                    "type": "object",
                    "description": "What the start found: `clean` is false when it cut a torn tail or set a snapshot aside.",
                    "properties": {
                        "clean": { "type": "boolean" }, "records_recovered": integer, "bytes_cut": integer, "records_dropped": integer,
                        "tail_damage": { "type": ["string", "null"] }, "corruption": { "type": ["string", "null"] },
                        "records_missing": integer, "snapshots_skipped": { "type": "array", "items": { "type": "string" } },
                    },
                },
            },
        },
        "Checkpoint": {
            "type": "object",
            "required": ["lsn", "path", "bytes", "segments_released"],
            "properties": { "lsn": integer, "path": { "type": ["string", "null"] }, "bytes": integer, "segments_released": integer },
        },
        "BackupRequest": {
            "type": "object",
            "required": ["out"],
            "additionalProperties": false,
            "properties": { "out": { "type": "string", "minLength": 1, "pattern": "^/", "description": "An absolute path on the server's machine that does not exist, or an empty directory." } },
        },
        "Backup": {
            "type": "object",
            "required": ["dir", "manifest"],
            "properties": {
                "dir": { "type": "string" },
                "manifest": {
                    "type": "object",
                    "description": "The backup's BACKUP.json (docs/SERVER.md, `recwal backup`).",
                    "required": ["format", "version", "lsn_snapshot", "lsn_last", "records", "files"],
                    "properties": {
                        "format": { "type": "string" }, "version": integer, "lsn_snapshot": integer, "lsn_last": integer,
                        "records": integer, "created_ms": integer, "files": { "type": "array" },
                    },
                },
            },
        },
        "ModelInfo": {
            "type": "object",
            "required": ["version", "sha256", "bytes", "active", "retired"],
            "properties": {
                "version": integer, "sha256": { "type": "string" }, "bytes": integer, "added_ms": integer,
                "added_lsn": integer, "activations": { "type": "array" }, "active": { "type": "boolean" }, "retired": { "type": "boolean" },
            },
        },
        "Models": { "type": "object", "required": ["models"], "properties": { "models": { "type": "array", "items": { "$ref": "#/components/schemas/ModelInfo" } } } },
        "ModelStatus": {
            "type": "object",
            "required": ["runtime", "active", "serving"],
            "properties": { "active": nullable_integer, "serving": nullable_integer, "fault": { "type": ["string", "null"] } },
        },
    });
    if let (Some(all), Value::Object(catalogue)) = (all.as_object_mut(), catalogue) {
        all.extend(catalogue);
    }
    all
}
