//! `/openapi.json` against the server that serves it: every limit the
//! document states is read from the document, then a request just inside it
//! must be accepted and one just outside it refused with a status the
//! document declares for that operation. The document and the code cannot
//! drift apart silently.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use serde_json::{json, Value};
use support::{Response, Server};

/// The server under test with non-default limits, so a document that states
/// the defaults instead of the configuration fails.
fn server(dir: &std::path::Path) -> Server {
    Server::start(dir, None, &["--max-n", "37", "--max-batch", "5", "--body-limit-bytes", "8192"])
}

fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the document");
    operation
}

/// `response`'s status is declared for the operation, and an error is
/// problem+json.
fn declared(document: &Value, method: &str, path: &str, response: &Response, what: &str) {
    let responses = &operation(document, method, path)["responses"];
    let status = response.status.to_string();
    assert!(
        responses.get(&status).is_some(),
        "{what}: {method} {path} answered {status}, which the document does not declare: {}",
        response.text()
    );
    if response.status >= 400 {
        response.assert_problem(response.status, what);
    }
}

fn param<'a>(document: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    operation(document, method, path)["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|param| param["name"] == name)
        .map(|param| &param["schema"])
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    &document["components"]["schemas"][name]
}

/// The Event variant titled `title` (Rating or Implicit).
fn variant<'a>(document: &'a Value, title: &str) -> &'a Value {
    schema(document, "Event")["oneOf"].as_array().unwrap().iter().find(|variant| variant["title"] == title).unwrap()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("{value} is not a number"))
}

fn count(value: &Value) -> usize {
    value.as_u64().unwrap_or_else(|| panic!("{value} is not a count")) as usize
}

struct Check<'a> {
    server: &'a Server,
    document: &'a Value,
}

impl Check<'_> {
    /// Sends, checks the status is declared, and that it is `accepted` (2xx)
    /// or refused (4xx) as expected.
    fn call(&self, method: &str, template: &str, path: &str, body: &[u8], accepted: bool, what: &str) -> Response {
        let response = self.server.call(&method.to_uppercase(), path, body);
        declared(self.document, method, template, &response, what);
        if accepted {
            assert!((200..300).contains(&response.status), "{what}: refused: {} {}", response.status, response.text());
        } else {
            assert!(
                (400..500).contains(&response.status),
                "{what}: not refused: {} {}",
                response.status,
                response.text()
            );
        }
        response
    }

    fn event(&self, event: Value, accepted: bool, what: &str) {
        let body = event.to_string();
        self.call("post", "/v1/event", "/v1/event", body.as_bytes(), accepted, what);
        let batch = json!({ "events": [event] }).to_string();
        self.call("post", "/v1/events", "/v1/events", batch.as_bytes(), accepted, what);
    }
}

fn view(user: &str) -> Value {
    json!({ "user": user, "item": "book", "kind": "view" })
}

#[test]
fn every_limit_the_openapi_document_states_is_the_one_the_server_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let (status, document) = server.json("GET", "/openapi.json", "");
    assert_eq!(status, 200);
    let check = Check { server: &server, document: &document };

    // n: 1..=max_n on every route that takes it (configured to 37 here).
    for (template, path) in [
        ("/v1/popular", "/v1/popular".to_string()),
        ("/v1/users/{user}/recommend", "/v1/users/alice/recommend".to_string()),
        ("/v1/items/{item}/similar", "/v1/items/book/similar".to_string()),
    ] {
        let n = param(&document, "get", template, "n");
        let (min, max) = (count(&n["minimum"]), count(&n["maximum"]));
        assert_eq!((min, max), (1, 37), "{template}: n");
        if template.contains("similar") {
            check.event(view("alice"), true, "seed the item");
        }
        for (n, accepted) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
            check.call("get", template, &format!("{path}?n={n}"), b"", accepted, &format!("{template} n={n}"));
        }
    }

    // Strategies and durabilities: exactly the enumerated names.
    for strategy in param(&document, "get", "/v1/users/{user}/recommend", "strategy")["enum"].as_array().unwrap() {
        let path = format!("/v1/users/alice/recommend?strategy={}", strategy.as_str().unwrap());
        check.call("get", "/v1/users/{user}/recommend", &path, b"", true, "a listed strategy");
    }
    check.call("get", "/v1/users/{user}/recommend", "/v1/users/alice/recommend?strategy=best", b"", false, "strategy");
    for durability in param(&document, "post", "/v1/event", "durability")["enum"].as_array().unwrap() {
        let path = format!("/v1/event?durability={}", durability.as_str().unwrap());
        check.call("post", "/v1/event", &path, view("alice").to_string().as_bytes(), true, "a listed durability");
    }
    let body = view("alice").to_string();
    check.call("post", "/v1/event", "/v1/event?durability=sometimes", body.as_bytes(), false, "durability");

    // Ids: 1..=256 bytes (maxLength and x-maxBytes), no control characters.
    let implicit = variant(&document, "Implicit");
    let user = &implicit["properties"]["user"];
    let (min, max, max_bytes) = (count(&user["minLength"]), count(&user["maxLength"]), count(&user["x-maxBytes"]));
    assert_eq!((min, max, max_bytes), (1, 256, 256));
    let pattern = user["pattern"].as_str().unwrap();
    assert!(pattern.contains("\\u0000-\\u001F") && pattern.contains("\\u007F-\\u009F"), "{pattern}");
    for (id, accepted, what) in [
        ("a".repeat(max), true, "an id of maxLength ASCII characters"),
        ("é".repeat(max_bytes / 2), true, "an id of x-maxBytes bytes"),
        ("\u{a0}x".to_string(), true, "an id with a non-control non-ASCII character"),
        (String::new(), false, "an empty id"),
        ("a".repeat(max + 1), false, "an id over maxLength"),
        ("é".repeat(max_bytes / 2 + 1), false, "an id over x-maxBytes (within maxLength)"),
        ("a\u{85}b".to_string(), false, "an id with a C1 control character"),
        ("a\u{7f}b".to_string(), false, "an id with DEL"),
    ] {
        check.event(view(&id), accepted, what);
        let event_id = json!({ "user": "alice", "item": "book", "kind": "view", "event_id": id });
        check.event(event_id, accepted, &format!("event_id: {what}"));
    }
    // The same id rule on the path.
    let path_user = param(&document, "get", "/v1/users/{user}/interactions", "user");
    assert_eq!(path_user["maxLength"], user["maxLength"]);
    let long = "a".repeat(max + 1);
    check.call(
        "get",
        "/v1/users/{user}/interactions",
        &format!("/v1/users/{long}/interactions"),
        b"",
        false,
        "path id",
    );
    check.call("get", "/v1/users/{user}/interactions", "/v1/users/a%C2%85b/interactions", b"", false, "path id C1");
    check.call("get", "/v1/users/{user}/interactions", "/v1/users/nobody/interactions", b"", false, "unknown user");

    // Kinds: every enumerated one is accepted, nothing else; value only for
    // rating, in its range; weight in its range.
    let kinds = implicit["properties"]["kind"]["enum"].as_array().unwrap();
    assert!(kinds.len() >= 4, "{kinds:?}");
    for kind in kinds {
        check.event(json!({ "user": "alice", "item": "book", "kind": kind }), true, "a listed kind");
        check.event(json!({ "user": "alice", "item": "book", "kind": kind, "value": 1.0 }), false, "value off rating");
    }
    check.event(json!({ "user": "alice", "item": "book", "kind": "share" }), false, "an unlisted kind");
    check.event(json!({ "user": "alice", "item": "book", "kind": "" }), false, "an empty kind");
    let rating = variant(&document, "Rating");
    assert_eq!(rating["properties"]["kind"]["const"], "rating");
    assert!(rating["properties"].get("weight").is_none(), "a rating takes no weight");
    let value = &rating["properties"]["value"];
    let (min, max) = (number(&value["minimum"]), number(&value["maximum"]));
    for (value, accepted) in [(min, true), (max, true), (max + 1e-9, false), (min - 1e-9, false)] {
        check.event(json!({ "user": "bob", "item": "book", "kind": "rating", "value": value }), accepted, "rating");
    }
    check.event(json!({ "user": "bob", "item": "book", "kind": "rating" }), false, "a rating without value");
    let rated = json!({ "user": "bob", "item": "book", "kind": "rating", "value": min, "weight": 1.0 });
    check.event(rated, false, "a rating with a weight");
    let weight = &implicit["properties"]["weight"];
    let (min, max) = (number(&weight["minimum"]), number(&weight["maximum"]));
    for (weight, accepted) in [(min, true), (max, true), (max + 0.01, false), (-1e-30, false)] {
        let event = json!({ "user": "alice", "item": "book", "kind": "view", "weight": weight });
        check.event(event, accepted, &format!("weight {weight}"));
    }

    // timestamp_ms: an integer ≥ 0 as JSON Schema counts integers.
    let stamp = &implicit["properties"]["timestamp_ms"];
    assert_eq!(stamp["minimum"], 0);
    assert!(stamp["x-maxFutureMs"].as_u64().is_some());
    let at = |stamp: &str| format!(r#"{{"user":"alice","item":"book","kind":"view","timestamp_ms":{stamp}}}"#);
    check.call("post", "/v1/event", "/v1/event", at("1057").as_bytes(), true, "an integer timestamp");
    check.call("post", "/v1/event", "/v1/event", at("1057.0").as_bytes(), true, "an integral float timestamp");
    check.call("post", "/v1/event", "/v1/event", at("1057.5").as_bytes(), false, "a fractional timestamp");
    check.call("post", "/v1/event", "/v1/event", at("-1").as_bytes(), false, "a negative timestamp");

    // Batches: minItems..=maxItems (max_batch, configured to 5 here).
    let events = &schema(&document, "IngestRequest")["properties"]["events"];
    let (min, max) = (count(&events["minItems"]), count(&events["maxItems"]));
    assert_eq!((min, max), (1, 5));
    for (size, accepted) in [(min, true), (max, true), (0, false), (max + 1, false)] {
        let batch = json!({ "events": vec![view("alice"); size] }).to_string();
        check.call("post", "/v1/events", "/v1/events", batch.as_bytes(), accepted, &format!("a batch of {size}"));
    }

    // Bodies: at most x-maxBodyBytes (configured to 8192 here); 413 beyond.
    let limit = count(&operation(&document, "post", "/v1/events")["requestBody"]["x-maxBodyBytes"]);
    assert_eq!(limit, 8192);
    let mut at_limit = json!({ "events": [view("alice")] }).to_string();
    at_limit.push_str(&" ".repeat(limit - at_limit.len()));
    check.call("post", "/v1/events", "/v1/events", at_limit.as_bytes(), true, "a body of the limit");
    at_limit.push(' ');
    let over = check.call("post", "/v1/events", "/v1/events", at_limit.as_bytes(), false, "a body over the limit");
    assert_eq!(over.status, 413);

    // Model versions are integers; the model routes answer what they declare.
    let version = param(&document, "post", "/admin/models/{version}/activate", "version");
    assert_eq!(version["type"], "integer");
    let template = "/admin/models/{version}/activate";
    check.call("post", template, "/admin/models/7/activate", b"", false, "an unknown version");
    check.call("post", template, "/admin/models/seven/activate", b"", false, "a version that is not an integer");
    check.call("post", template, "/admin/models/4294967296/activate", b"", false, "a version over u32");
    let garbage = check.call("post", "/admin/models", "/admin/models", b"not an onnx file", false, "garbage model");
    assert_eq!(garbage.status, 422);
    let empty = check.call("post", "/admin/models", "/admin/models", b"", false, "an empty model");
    assert_eq!(empty.status, 400);
    // The rule names this server's limit, the one the document declares.
    let model_limit = count(&operation(&document, "post", "/admin/models")["requestBody"]["x-maxBodyBytes"]);
    assert!(empty.text().contains(&format!("must be 1–{model_limit} bytes")), "{}", empty.text());
    let rollback = check.call("post", "/admin/models/rollback", "/admin/models/rollback", b"", false, "rollback");
    assert_eq!(rollback.status, 409, "no previous version is a conflict: {}", rollback.text());
}

#[test]
fn every_operation_declares_its_errors_as_problem_json_with_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some("openapi-limits-token-0123"), &[]);
    let (status, document) = server.json("GET", "/openapi.json", "");
    assert_eq!(status, 200);
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let open = operation["security"] == json!([]);
            for status in ["400", "408", "414", "431"] {
                assert!(responses.contains_key(status), "{method} {path} does not declare {status}");
            }
            assert_eq!(responses.contains_key("401"), !open, "{method} {path}: 401 iff protected");
            if path != "/healthz" && path != "/metrics" && path != "/openapi.json" {
                assert!(responses.contains_key("503"), "{method} {path} does not declare 503");
            }
            if operation.get("requestBody").is_some() {
                assert!(responses.contains_key("413"), "{method} {path} does not declare 413");
            }
            for (status, response) in responses {
                let content = response["content"].as_object();
                assert!(content.is_some_and(|content| !content.is_empty()), "{method} {path} {status}: no content");
                if status.starts_with('4') || status.starts_with('5') {
                    let is_readiness = path == "/readyz" && status == "503";
                    assert_eq!(
                        content.unwrap().contains_key("application/problem+json"),
                        !is_readiness,
                        "{method} {path} {status}"
                    );
                }
            }
            // A protected operation really answers its declared 401.
            if !open {
                let concrete = path.replace("{user}", "alice").replace("{item}", "book").replace("{version}", "1");
                let response = server.try_call(&method.to_uppercase(), &concrete, &[], b"").unwrap();
                declared(&document, method, path, &response, "without a token");
                assert_eq!(response.status, 401, "{method} {path}");
            }
        }
    }
}

// Defects schemathesis found, one test each (they fail on the code before
// the fix).

#[test]
fn rollback_without_a_previous_version_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    server.call("POST", "/admin/models/rollback", b"").assert_problem(409, "rollback with nothing to roll back to");
}

#[test]
fn a_rating_or_weight_just_outside_its_range_is_refused_not_rounded_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let before = server.lsn();
    for body in [
        r#"{"user":"u","item":"i","kind":"rating","value":5.00000001}"#,
        r#"{"user":"u","item":"i","kind":"view","weight":-1e-50}"#,
        r#"{"user":"u","item":"i","kind":"view","weight":1000000.01}"#,
    ] {
        server.call("POST", "/v1/event", body.as_bytes()).assert_problem(400, body);
    }
    assert_eq!(server.lsn(), before, "a refused event was written");
}

#[test]
fn an_integral_timestamp_written_as_a_float_is_an_integer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let (status, body) =
        server.json("POST", "/v1/event", r#"{"user":"u","item":"i","kind":"view","timestamp_ms":1057.0}"#);
    assert_eq!(status, 200, "{body}");
    server
        .call("POST", "/v1/event", br#"{"user":"u","item":"i","kind":"view","timestamp_ms":1057.5}"#)
        .assert_problem(400, "fraction");
}
