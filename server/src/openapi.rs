//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the
//! handlers and their types: each handler's `#[utoipa::path]` gives its
//! route, parameters, request body and success answer, and the router is
//! built from the same annotations (`server::api_routes`, utoipa-axum's
//! `routes!`), so a route cannot be served undocumented or documented
//! unserved. The answers' schemas are derived (`ToSchema`) from the types
//! the handlers serialize (server/src/answers.rs, the engine's own types).
//!
//! `document` then adds what the types cannot say and a running server
//! knows: the limits of its configuration and of the engine (max `n`, ids,
//! kinds, batch and body sizes), read from the configuration and the
//! engine's constants, never restated by hand; the request bodies' full
//! rules (oneOf by kind, patterns, byte limits); and the errors every
//! operation can answer, as `application/problem+json`.
//! `server/tests/http.rs` and `server/tests/openapi_limits.rs` send
//! requests just inside and just outside each stated limit, and
//! `scripts/schemathesis.sh` fuzzes the server against this document.

use std::borrow::Cow;

use recwal::{
    EngineConfig, Strategy, CATEGORY_BYTES_MAX, EVENT_ID_BYTES_MAX, FILTER_CATEGORIES_MAX, FILTER_LABELS_MAX,
    ID_BYTES_MAX, ITEM_CATEGORIES_MAX, LABELS_MAX, LABEL_KEY_BYTES_MAX, LABEL_TEXT_BYTES_MAX, MODEL_BYTES_MAX,
    WEIGHT_MAX,
};
use serde_json::{json, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::OpenApi;

use crate::api;
use crate::config::ServeConfig;
use crate::problem::ProblemBody;

/// Routes that need no token (the guard in server/src/server.rs reads this
/// list; the document says `security: []` for them).
pub const OPEN_ROUTES: &[&str] = &["/healthz", "/readyz"];

/// The document's base: title, tags, the error schema. Paths come from the
/// router (`server::api_routes`).
#[derive(OpenApi)]
#[openapi(
    info(title = "recwal"),
    components(schemas(ProblemBody)),
    tags(
        (name = "probes", description = "Liveness and readiness: no token needed."),
        (name = "events", description = "Ingest: an answer means durable."),
        (name = "recommend", description = "Recommendations, similar and popular items."),
        (name = "users", description = "Users: labels, interactions, forgetting."),
        (name = "items", description = "The catalogue: items, hiding, the newest."),
        (name = "admin", description = "Operations: counts, the log, checkpoints, backups."),
        (name = "models", description = "Ranking models: upload, activate, roll back."),
        (name = "meta", description = "Metrics and this document."),
    )
)]
pub struct ApiDoc;

/// The answer of `GET /openapi.json`, for the document itself.
pub struct Document;

impl utoipa::PartialSchema for Document {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("An OpenAPI 3.1 document."))
            .property("openapi", ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String))
            .property("paths", ObjectBuilder::new())
            .required("openapi")
            .required("paths")
            .into()
    }
}

impl utoipa::ToSchema for Document {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Document")
    }
}

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

/// One operation of the generated document, as the refinements see it.
struct Route<'a> {
    method: &'a str,
    path: &'a str,
    /// The request body: `Some("Model")` for the raw ONNX file, `Some(_)`
    /// for JSON, `None` without one.
    body: Option<&'a str>,
    kind: Kind,
}

impl Route<'_> {
    fn kind(method: &str, path: &str) -> Kind {
        match path {
            "/healthz" => Kind::Probe,
            "/readyz" => Kind::Ready,
            "/metrics" | "/openapi.json" => Kind::Meta,
            "/v1/sessions/recommend" => Kind::Read,
            _ if method == "get" => Kind::Read,
            _ => Kind::Write,
        }
    }
}

/// The document, for a server running with `config`: `generated` (the
/// router's, from the annotations) with the limits, the request bodies'
/// rules and the errors added.
pub fn document(config: &ServeConfig, generated: utoipa::openapi::OpenApi) -> Value {
    let engine = config.engine().unwrap_or_else(|_| EngineConfig::default());
    let mut document = serde_json::to_value(&generated).unwrap_or_else(|_| json!({}));
    document["openapi"] = json!("3.1.0");
    document["info"] = json!({
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
    });
    document["security"] = json!([{ "bearer": [] }]);
    document["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The server's token (`--token`, RECWAL_TOKEN); every route but /healthz and /readyz needs it when one is set.",
        },
    });
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        if let Value::Object(refined) = request_schemas(config, &engine) {
            schemas.extend(refined);
        }
    }
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, operations) in paths.iter_mut() {
            let Some(operations) = operations.as_object_mut() else { continue };
            for (method, operation) in operations.iter_mut() {
                refine(method, path, operation, config);
            }
        }
    }
    if config.cluster.url.is_some() {
        crate::cluster::openapi::refine(&mut document);
    }
    prune_schemas(&mut document);
    document
}

/// Drops the component schemas nothing refers to any more (a derived shape
/// that only a replaced request schema used), so a generated client has no
/// unused type.
fn prune_schemas(document: &mut Value) {
    fn references(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    if let Some(name) = target.strip_prefix("#/components/schemas/") {
                        out.push(name.to_string());
                    }
                }
                map.values().for_each(|value| references(value, out));
            }
            Value::Array(values) => values.iter().for_each(|value| references(value, out)),
            _ => {}
        }
    }
    loop {
        let mut used = Vec::new();
        references(&document["paths"], &mut used);
        if let Some(schemas) = document["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                let mut inner = Vec::new();
                references(schema, &mut inner);
                used.extend(inner.into_iter().filter(|target| target != name));
            }
        }
        let Some(schemas) = document["components"]["schemas"].as_object_mut() else { return };
        let before = schemas.len();
        schemas.retain(|name, _| used.contains(name));
        if schemas.len() == before {
            return;
        }
    }
}

/// One operation: its parameters' limits, its body's, its security, every
/// error it can answer.
fn refine(method: &str, path: &str, operation: &mut Value, config: &ServeConfig) {
    let model = method == "post" && path == "/admin/models";
    let body = operation.get("requestBody").map(|_| if model { "Model" } else { "Json" });
    let route = Route { method, path, body, kind: Route::kind(method, path) };
    // Parameters: the generated ones (names, places, types) with the limits.
    let refined = parameters(&route, config);
    if let Some(generated) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
        for parameter in generated.iter_mut() {
            let name = parameter["name"].as_str().unwrap_or_default();
            if let Some(limits) = refined.iter().find(|refined| refined["name"] == name) {
                *parameter = limits.clone();
            }
        }
    }
    if let Some(kind) = body {
        let limit = if kind == "Model" { config.server.model_limit_bytes } else { config.server.body_limit_bytes };
        let request = &mut operation["requestBody"];
        request["required"] = json!(true);
        request["description"] = json!(format!("At most {limit} bytes (413 beyond)."));
        request["x-maxBodyBytes"] = json!(limit);
        if kind == "Model" {
            let max = config.server.model_limit_bytes.min(MODEL_BYTES_MAX);
            request["content"] = json!({ "application/octet-stream": { "schema": {
                "type": "string", "format": "binary", "contentMediaType": "application/octet-stream",
                "minLength": 1, "x-maxBytes": max,
                "description": format!(
                    "The ONNX file, 1–{max} bytes (the body is read as the raw file whatever its Content-Type)."
                ),
            } } });
        }
    }
    if OPEN_ROUTES.contains(&path) {
        operation["security"] = json!([]);
    }
    let open = OPEN_ROUTES.contains(&path);
    if let Some(responses) = operation["responses"].as_object_mut() {
        for (status, response) in errors(&route, !open, config) {
            responses.entry(status).or_insert(response);
        }
    }
}

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

/// Every error `route` can answer, and what it means there.
fn errors(route: &Route, auth: bool, config: &ServeConfig) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    // Below the router (hyper, the connection layer): every route.
    out.push((
        "400".to_string(),
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
    ));
    if auth {
        let mut unauthorized =
            problem("The server has a token and the request lacked `Authorization: Bearer <token>` or had another.");
        unauthorized["headers"] =
            json!({ "WWW-Authenticate": { "required": true, "schema": { "type": "string", "const": "Bearer" } } });
        out.push(("401".into(), unauthorized));
    }
    if (route.path.contains('{') && !route.path.ends_with("/recommend")) || route.path == "/v1/items" {
        out.push((
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
        ));
    }
    out.push(("408".into(), problem("The client took too long to send the request headers or body.")));
    if let Some(body) = route.body {
        let limit = if body == "Model" { config.server.model_limit_bytes } else { config.server.body_limit_bytes };
        out.push(("413".into(), problem(&format!("The body is larger than {limit} bytes."))));
        if body != "Model" {
            out.push(("415".into(), problem("The body's Content-Type is not application/json.")));
        }
    }
    out.push(("414".into(), problem("The URI is too long.")));
    out.push(("431".into(), problem("The request headers are too large.")));
    if route.kind != Kind::Probe {
        out.push(("500".into(), problem("An internal error; the detail says which.")));
    }
    match route.kind {
        // /readyz declares its own 503 (a readiness report).
        Kind::Probe | Kind::Meta | Kind::Ready => {}
        Kind::Read => out.push((
            "503".into(),
            retry_later(
                "Unavailable: starting (the log is being replayed), the concurrency limit is reached, the \
                 request timed out, or (recommend) the model runtime is unavailable.",
            ),
        )),
        Kind::Write => out.push((
            "503".into(),
            retry_later(
                "Unavailable: starting, the concurrency limit is reached, the request timed out (a write it \
                 carried may still complete: resend ingests with the same event ids), the disk is full, the \
                 log is full, or the engine stopped accepting writes after a failed sync.",
            ),
        )),
    }
    out
}

/// The request bodies' schemas, with every limit of the engine and of this
/// server's configuration (the derived ones state only the shapes; a test
/// checks both name the same fields).
fn request_schemas(config: &ServeConfig, engine: &EngineConfig) -> Value {
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
    let catalogue = json!({
        "ItemBody": {
            "type": "object",
            "example": { "categories": ["home"], "labels": { "price": 19.5, "brand": "acme" }, "timestamp_ms": 1_700_000_000_000_i64 },
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
            "example": { "labels": { "tier": "gold", "age": 34 } },
            "additionalProperties": false,
            "properties": { "id": nullable_id("The path's id, repeated (optional; any other is refused)"), "labels": labels },
        },
    });
    let mut all = json!({
        "Event": {
            "example": { "user": "alice", "item": "book", "kind": "click" },
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
            "example": { "events": [{ "item": "book", "kind": "view" }, { "item": "lamp", "kind": "rating", "value": 4.5 }], "n": 5 },
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
            "example": { "events": [
                { "user": "alice", "item": "book", "kind": "purchase" },
                { "user": "bob", "item": "lamp", "kind": "rating", "value": 4.5, "event_id": "bob-lamp-1" },
            ] },
            "additionalProperties": false,
            "required": ["events"],
            "description": format!("At most {} bytes in all (413 beyond).", config.server.body_limit_bytes),
            "properties": {
                "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" }, "minItems": 1, "maxItems": config.engine.batch_events_max },
                "durability": { "type": ["string", "null"], "enum": ["always", "batch", "never", null], "description": "The server's `sync` when absent or null." },
            },
        },
        "BackupRequest": {
            "type": "object",
            "required": ["out"],
            "additionalProperties": false,
            "properties": { "out": { "type": "string", "minLength": 1, "pattern": "^/", "description": "An absolute path on the server's machine that does not exist, or an empty directory." } },
        },
    });
    if let (Some(all), Value::Object(catalogue)) = (all.as_object_mut(), catalogue) {
        all.extend(catalogue);
    }
    all
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::PartialSchema;

    use super::*;
    use crate::server::{api_routes, is_not_api, App, NOT_API};

    fn test_app(config: &ServeConfig) -> std::sync::Arc<App> {
        std::sync::Arc::new(App::new(config.clone(), recwal::Durability::Always))
    }

    fn operations(document: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, operations) in document["paths"].as_object().unwrap() {
            for method in operations.as_object().unwrap().keys() {
                out.insert((method.clone(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn the_router_and_the_document_list_the_same_routes() {
        let config = ServeConfig::default();
        // What the router registers: utoipa-axum adds each `routes!` entry
        // to the router and to this OpenApi alike.
        let (_, generated) = api_routes(&test_app(&config)).split_for_parts();
        let registered = operations(&serde_json::to_value(&generated).unwrap());
        let document = document(&config, generated);
        assert_eq!(operations(&document), registered, "the document adds or drops routes");
        assert_eq!(registered.len(), 37);
        for (_, path) in &registered {
            assert!(!is_not_api(path), "{path} is both an API route and a non-API one");
        }
        for open in OPEN_ROUTES {
            assert!(registered.contains(&("get".to_string(), open.to_string())), "{open}");
        }
        // Every route of the API goes through `routes!` (so into the
        // document): the router-building code adds none by hand. The only
        // other routes are /docs' static files (`NOT_API`).
        let source = include_str!("server.rs");
        let start = source.find("pub fn api_routes").unwrap();
        let end = source[start..].find("\nasync fn method_not_allowed").unwrap() + start;
        let building = &source[start..end];
        // A route added by hand must be one of `NOT_API` (a literal path).
        for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            for (at, _) in building.match_indices(call) {
                let path = building[at + call.len()..].split('"').nth(1).unwrap_or_default();
                assert!(is_not_api(path), "a route added outside `routes!` and not in NOT_API: {call}\"{path}\"");
            }
        }
        assert!(!building.contains(".fallback_service("));
        assert!(building.contains(".merge(docs_ui::router())"));
        assert!(!NOT_API.is_empty());
    }

    #[test]
    fn every_schema_of_the_document_is_used_and_every_reference_resolves() {
        let config = ServeConfig::default();
        let (_, generated) = api_routes(&test_app(&config)).split_for_parts();
        let document = document(&config, generated);
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        assert!(!schemas.contains_key("ApiSessionEvent"), "the replaced shape is dropped");
        for name in schemas.keys() {
            assert!(text.contains(&format!("\"#/components/schemas/{name}\"")), "{name} is not used");
        }
        for target in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = target.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "{name} is referred to but not defined");
        }
    }

    #[test]
    fn every_generated_parameter_gets_the_servers_limits() {
        let config = ServeConfig::default();
        let (_, generated) = api_routes(&test_app(&config)).split_for_parts();
        let raw = serde_json::to_value(&generated).unwrap();
        let document = document(&config, generated);
        for (method, path) in operations(&raw) {
            let names = |document: &Value| -> Vec<String> {
                document["paths"][&path][&method]["parameters"]
                    .as_array()
                    .map(|parameters| {
                        parameters.iter().map(|parameter| parameter["name"].as_str().unwrap().to_string()).collect()
                    })
                    .unwrap_or_default()
            };
            // The types declare the parameters; the limits name the same ones.
            let route = Route { method: &method, path: &path, body: None, kind: Route::kind(&method, &path) };
            let limited: Vec<String> = parameters(&route, &config)
                .iter()
                .map(|parameter| parameter["name"].as_str().unwrap().to_string())
                .collect();
            let mut declared = names(&raw);
            declared.sort();
            let mut limited_sorted = limited.clone();
            limited_sorted.sort();
            assert_eq!(declared, limited_sorted, "{method} {path}: declared parameters and their limits differ");
            for parameter in document["paths"][&path][&method]["parameters"].as_array().into_iter().flatten() {
                assert!(parameter["schema"].is_object(), "{method} {path}: {parameter}");
            }
        }
    }

    /// The property names of a schema (of every branch of a oneOf).
    fn properties(schema: &Value) -> BTreeSet<String> {
        let mut out: BTreeSet<String> =
            schema["properties"].as_object().map(|properties| properties.keys().cloned().collect()).unwrap_or_default();
        for branch in schema["oneOf"].as_array().into_iter().flatten() {
            out.extend(properties(branch));
        }
        out
    }

    #[test]
    fn the_request_schemas_name_the_fields_of_the_types() {
        let config = ServeConfig::default();
        let refined = request_schemas(&config, &EngineConfig::default());
        let derived = [
            ("Event", serde_json::to_value(api::ApiEvent::schema()).unwrap()),
            ("IngestRequest", serde_json::to_value(api::IngestRequest::schema()).unwrap()),
            ("SessionRequest", serde_json::to_value(api::SessionBody::schema()).unwrap()),
            ("ItemBody", serde_json::to_value(crate::catalogue::ItemBody::schema()).unwrap()),
            ("UserBody", serde_json::to_value(crate::catalogue::UserBody::schema()).unwrap()),
            ("BackupRequest", serde_json::to_value(crate::backup::BackupRequest::schema()).unwrap()),
        ];
        assert_eq!(refined.as_object().unwrap().len(), derived.len());
        for (name, derived) in derived {
            assert_eq!(properties(&refined[name]), properties(&derived), "{name}");
            assert!(!properties(&derived).is_empty(), "{name}");
        }
        // A session event has the fields of an ingested one less user, time and id.
        let session = serde_json::to_value(api::ApiSessionEvent::schema()).unwrap();
        let items = &refined["SessionRequest"]["properties"]["events"]["items"];
        assert_eq!(properties(items), properties(&session));
    }
}
