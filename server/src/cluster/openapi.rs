//! What `/openapi.json` adds on a cluster node (`serve --cluster`,
//! docs/CLUSTER.md): the same routes, answered as `http.rs` answers them —
//! `min_seq` on the reads and `X-Recwal-Stream-Seq` on their answers,
//! `wait` on the ingests and their stream receipt, the writes' stream
//! receipt and their 202. A single node's document has none of this.

use serde_json::{json, Map, Value};

use super::http::STREAM_SEQ_HEADER;

/// The header every cluster answer carries.
fn seq_header(what: &str) -> Value {
    json!({ STREAM_SEQ_HEADER: { "required": true, "description": what, "schema": { "type": "integer", "minimum": 0 } } })
}

/// A write's answer on a cluster node: the message's stream sequence.
fn receipt_schema(events: bool) -> Value {
    let mut properties = json!({
        "stream_seq": { "type": "integer", "minimum": 1, "description": "The message's stream sequence (the original's for a duplicate): read with `min_seq` of it to see the change on any node." },
        "duplicate": { "type": "boolean", "description": "JetStream had this message id already (its duplicate window)." },
        "applied": { "type": "boolean", "description": "This node had applied the message when it answered." },
    });
    let mut required = vec!["stream_seq", "duplicate", "applied"];
    if events {
        properties["events"] = json!({ "type": "integer", "minimum": 1, "description": "Events in the message." });
        required.push("events");
    }
    json!({ "type": "object", "properties": properties, "required": required })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// Reads that take `min_seq`.
fn is_read(method: &str, path: &str) -> bool {
    (method == "get" && path.starts_with("/v1/")) || (method == "post" && path == "/v1/sessions/recommend")
}

/// Writes a cluster node publishes instead of applying (answered with the
/// stream receipt, or as the single node's answer once applied for the
/// model registry).
fn is_published(method: &str, path: &str) -> Option<Published> {
    match (method, path) {
        ("post", "/v1/events" | "/v1/event") => Some(Published::Ingest),
        ("put" | "delete", path) if path.starts_with("/v1/users/") || path.starts_with("/v1/items/") => {
            Some(Published::Write)
        }
        ("post", path) if path.starts_with("/v1/items/") && (path.ends_with("/hide") || path.ends_with("/show")) => {
            Some(Published::Write)
        }
        ("post" | "put" | "delete", path) if path.starts_with("/admin/models") => Some(Published::Model),
        _ => None,
    }
}

enum Published {
    /// `POST /v1/events`, `/v1/event`: the receipt with `events`; `wait`.
    Ingest,
    /// Catalogue, forget, remove: the receipt (200 applied, 202 not yet).
    Write,
    /// The model registry: the single node's answer once applied, 202 with
    /// the receipt if not within `cluster.apply_wait_ms`.
    Model,
}

/// Adds the cluster's parameters and answers to `document` (the single
/// node's, refined).
pub fn refine(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else { return };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else { continue };
        for (method, operation) in operations.iter_mut() {
            if is_read(method, path) {
                refine_read(operation);
            } else if let Some(published) = is_published(method, path) {
                refine_write(operation, &published);
            }
        }
    }
    if let Some(info) = document["info"]["description"].as_str() {
        document["info"]["description"] = json!(format!(
            "{info} This server is a cluster node (serve --cluster, docs/CLUSTER.md): writes are published to the \
             replication stream and answered with their stream sequence; reads take `min_seq` to read your writes \
             on any node."
        ));
    }
}

fn parameters(operation: &mut Value) -> &mut Vec<Value> {
    if !operation["parameters"].is_array() {
        operation["parameters"] = json!([]);
    }
    match operation["parameters"].as_array_mut() {
        Some(parameters) => parameters,
        None => unreachable!("set to an array above"),
    }
}

fn responses(operation: &mut Value) -> &mut Map<String, Value> {
    if !operation["responses"].is_object() {
        operation["responses"] = json!({});
    }
    match operation["responses"].as_object_mut() {
        Some(responses) => responses,
        None => unreachable!("set to an object above"),
    }
}

fn refine_read(operation: &mut Value) {
    parameters(operation).push(json!({
        "name": "min_seq", "in": "query", "required": false,
        "description": "A stream sequence (from a write's answer): wait up to cluster.apply_wait_ms until this node \
                        has applied it, else 503 with the node's position in X-Recwal-Stream-Seq.",
        "schema": { "type": "integer", "minimum": 0 },
    }));
    let responses = responses(operation);
    if let Some(ok) = responses.get_mut("200") {
        ok["headers"] =
            seq_header("The stream sequence this node had applied when it read: the answer holds at least that.");
    }
    if let Some(unavailable) = responses.get_mut("503") {
        let description = unavailable["description"].as_str().unwrap_or_default().to_string();
        unavailable["description"] = json!(format!(
            "{description} On a cluster node also: this node has not applied `min_seq` within cluster.apply_wait_ms \
             (X-Recwal-Stream-Seq: its position), or it is not connected to the cluster yet."
        ));
    }
}

fn refine_write(operation: &mut Value, published: &Published) {
    let header = seq_header("The message's stream sequence.");
    let receipt = |events| json!({ "description": "", "headers": header.clone(), "content": json_content(receipt_schema(events)) });
    match published {
        Published::Ingest => {
            let parameters = parameters(operation);
            parameters.retain(|parameter| parameter["name"] != "durability");
            parameters.push(json!({
                "name": "wait", "in": "query", "required": false,
                "description": "`published` (default): answer once the stream stored the message; `applied`: once \
                                this node applied it too (202 if not within cluster.apply_wait_ms).",
                "schema": { "type": "string", "enum": ["published", "applied"] },
            }));
            parameters.push(json!({
                "name": "durability", "in": "query", "required": false,
                "description": "Accepted and ignored on a cluster node: the stream's replication is the durability.",
                "schema": { "type": "string", "enum": ["always", "batch", "never"] },
            }));
            let responses = responses(operation);
            let mut ok = receipt(true);
            ok["description"] = json!("Stored in the stream (and applied by this node with wait=applied).");
            responses.insert("200".into(), ok);
            let mut accepted = receipt(true);
            accepted["description"] = json!("wait=applied: stored in the stream, not applied by this node yet.");
            responses.insert("202".into(), accepted);
        }
        Published::Write => {
            let responses = responses(operation);
            let mut ok = receipt(false);
            ok["description"] = json!("Stored in the stream and applied by this node.");
            responses.insert("200".into(), ok);
            let mut accepted = receipt(false);
            accepted["description"] =
                json!("Stored in the stream, not applied by this node within cluster.apply_wait_ms.");
            responses.insert("202".into(), accepted);
        }
        Published::Model => {
            let responses = responses(operation);
            for (status, answer) in responses.iter_mut() {
                if status.starts_with('2') {
                    answer["headers"] = header.clone();
                }
            }
            let mut accepted = receipt(false);
            accepted["description"] =
                json!("Stored in the stream, not applied by this node within cluster.apply_wait_ms.");
            responses.insert("202".into(), accepted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_take_min_seq_and_writes_answer_their_stream_receipt() {
        let mut document = json!({
            "info": { "description": "recwal." },
            "paths": {
                "/v1/users/{user}/recommend": { "get": { "parameters": [], "responses": { "200": { "description": "ok" }, "503": { "description": "Unavailable." } } } },
                "/v1/events": { "post": { "parameters": [{ "name": "durability", "in": "query" }], "responses": { "200": { "description": "ok" } } } },
                "/v1/items/{item}": { "delete": { "responses": { "200": { "description": "ok" } } } },
                "/admin/models/{version}/activate": { "post": { "responses": { "200": { "description": "ok" } } } },
                "/admin/checkpoint": { "post": { "responses": { "200": { "description": "ok" } } } },
            },
        });
        refine(&mut document);
        let paths = &document["paths"];
        let read = &paths["/v1/users/{user}/recommend"]["get"];
        assert_eq!(read["parameters"][0]["name"], "min_seq");
        assert!(read["responses"]["200"]["headers"][STREAM_SEQ_HEADER].is_object());
        assert!(read["responses"]["503"]["description"].as_str().unwrap_or_default().contains("min_seq"));
        let ingest = &paths["/v1/events"]["post"];
        let names: Vec<&str> =
            ingest["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["wait", "durability"]);
        let ok = &ingest["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(ok["required"], json!(["stream_seq", "duplicate", "applied", "events"]));
        assert!(ingest["responses"]["202"].is_object());
        assert!(paths["/v1/items/{item}"]["delete"]["responses"]["202"].is_object());
        let model = &paths["/admin/models/{version}/activate"]["post"]["responses"];
        assert_eq!(model["200"]["description"], "ok", "the single node's answer stays");
        assert!(model["200"]["headers"][STREAM_SEQ_HEADER].is_object() && model["202"].is_object());
        // Local operations are left as they are.
        assert!(paths["/admin/checkpoint"]["post"]["responses"]["202"].is_null());
        assert!(document["info"]["description"].as_str().unwrap_or_default().contains("cluster node"));
    }
}
