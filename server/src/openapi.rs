//! The OpenAPI 3.1 document served at `/openapi.json`. `ROUTES` is the list
//! of every route the router serves; a test checks the two agree.

use serde_json::{json, Value};

/// (method, path, summary, request body schema, auth needed).
pub const ROUTES: &[(&str, &str, &str, Option<&str>, bool)] = &[
    ("get", "/healthz", "Liveness: the process answers.", None, false),
    ("get", "/readyz", "Readiness: replay finished and the log is writable (503 with reasons otherwise).", None, false),
    ("get", "/metrics", "Prometheus text: engine, log, models, HTTP latency per route.", None, true),
    ("get", "/openapi.json", "This document.", None, true),
    (
        "post",
        "/v1/events",
        "Ingest a batch of events (one log record); durable before the answer.",
        Some("IngestRequest"),
        true,
    ),
    ("post", "/v1/event", "Ingest one event (`?durability=`).", Some("Event"), true),
    (
        "get",
        "/v1/users/{user}/recommend",
        "Recommend items for a user (`n`, `strategy`, `exclude`, `allow`).",
        None,
        true,
    ),
    ("get", "/v1/users/{user}/interactions", "A user's recorded interactions.", None, true),
    ("delete", "/v1/users/{user}", "Forget a user (logged).", None, true),
    ("get", "/v1/items/{item}/similar", "Items most often interacted with together with this one (`n`).", None, true),
    ("delete", "/v1/items/{item}", "Stop recommending an item (logged).", None, true),
    ("get", "/v1/popular", "The most popular items (`n`).", None, true),
    ("get", "/admin/stats", "Engine counts.", None, true),
    ("get", "/admin/wal", "The log: watermarks, counters, sync latency, recovery report.", None, true),
    ("post", "/admin/checkpoint", "Write a snapshot now and release the log behind it.", None, true),
    ("get", "/admin/models", "Every model version.", None, true),
    ("post", "/admin/models", "Add a model (body: the ONNX file, application/octet-stream).", Some("Model"), true),
    ("get", "/admin/models/status", "Runtime, active and serving versions, fault, breaker.", None, true),
    ("post", "/admin/models/rollback", "Re-activate the previous version.", None, true),
    ("post", "/admin/models/{version}/activate", "Activate a version (durable, then swapped in).", None, true),
];

fn parameters(path: &str, method: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for name in ["user", "item", "version"] {
        if path.contains(&format!("{{{name}}}")) {
            out.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
        }
    }
    let query = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    if path.ends_with("/recommend") {
        out.push(query("n", "Items wanted (default 10, at most max_n).", json!({ "type": "integer", "minimum": 1 })));
        out.push(query(
            "strategy",
            "Scoring strategy (default blend).",
            json!({ "enum": ["user_cf", "item_rank", "item_rank_exact", "popularity", "blend"] }),
        ));
        out.push(query("exclude", "Comma-separated item ids never to return.", json!({ "type": "string" })));
        out.push(query("allow", "Comma-separated item ids: only these may be returned.", json!({ "type": "string" })));
    }
    if path.ends_with("/similar") || path == "/v1/popular" {
        out.push(query("n", "Items wanted (default 10).", json!({ "type": "integer", "minimum": 1 })));
    }
    if path == "/v1/event" && method == "post" {
        out.push(query("durability", "always, batch or never.", json!({ "enum": ["always", "batch", "never"] })));
    }
    out
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for &(method, path, summary, body, auth) in ROUTES {
        let mut operation = json!({
            "summary": summary,
            "parameters": parameters(path, method),
            "responses": {
                "200": { "description": "Success (JSON; /metrics is Prometheus text)." },
                "4XX": { "description": "The request broke a rule; nothing was written.", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } },
                "503": { "description": "Starting, overloaded, timed out or unable to write.", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } },
            },
        });
        if let Some(schema) = body {
            let content = if schema == "Model" {
                json!({ "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } })
            } else {
                json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } })
            };
            operation["requestBody"] = json!({ "required": true, "content": content });
        }
        if !auth {
            operation["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "recwal",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A stateful recommendation engine with its own write-ahead log. An HTTP 200 on an ingest means the events are durable under the requested durability. When a token is configured every route but /healthz and /readyz needs `Authorization: Bearer <token>`.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": { "type": "string" }, "title": { "type": "string" },
                        "status": { "type": "integer" }, "detail": { "type": "string", "description": "Names the field or rule." },
                    },
                },
                "Event": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["user", "item", "kind"],
                    "properties": {
                        "user": { "type": "string", "minLength": 1, "maxLength": 256 },
                        "item": { "type": "string", "minLength": 1, "maxLength": 256 },
                        "kind": { "type": "string", "description": "view, click, cart, purchase, rating, or a configured custom kind" },
                        "value": { "type": "number", "description": "The rating (kind rating only)." },
                        "weight": { "type": "number", "minimum": 0 },
                        "timestamp_ms": { "type": "integer" },
                        "event_id": { "type": "string", "minLength": 1, "maxLength": 256 },
                    },
                },
                "IngestRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["events"],
                    "properties": {
                        "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" }, "minItems": 1 },
                        "durability": { "enum": ["always", "batch", "never"] },
                    },
                },
            },
        },
    })
}
