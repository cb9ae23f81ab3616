//! The catalogue over HTTP against the real binary: items and users with
//! metadata, hiding and showing, filtered and paged reads, `latest`, and
//! every refusal a 400 problem+json naming the parameter with nothing
//! written.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;

use serde_json::{json, Value};
use support::Server;

fn start(dir: &std::path::Path) -> Server {
    Server::start(dir, None, &["--sync", "never"])
}

fn put(server: &Server, path: &str, body: Value) -> Value {
    let (status, answer) = server.json("PUT", path, &body.to_string());
    assert_eq!(status, 200, "PUT {path} {body}: {answer}");
    assert!(answer["lsn"].as_u64().is_some(), "{answer}");
    answer
}

fn get(server: &Server, path: &str) -> Value {
    let (status, answer) = server.json("GET", path, "");
    assert_eq!(status, 200, "GET {path}: {answer}");
    answer
}

fn ids(answer: &Value) -> Vec<String> {
    let items = answer["items"].as_array().unwrap_or_else(|| panic!("no items in {answer}"));
    items
        .iter()
        .map(|item| item.get("item").or_else(|| item.get("id")).and_then(Value::as_str).unwrap().to_string())
        .collect()
}

fn ingest(server: &Server, events: &[Value]) {
    for chunk in events.chunks(500) {
        let (status, answer) = server.json("POST", "/v1/events", &json!({ "events": chunk }).to_string());
        assert_eq!(status, 200, "{answer}");
    }
}

fn view(user: &str, item: &str) -> Value {
    json!({ "user": user, "item": item, "kind": "view" })
}

/// "star" is viewed by every user with "anchor"; "me" viewed only "anchor":
/// so "star" is the top of `popular`, of `similar` to "anchor" and of
/// every recommendation for "me".
fn seed_star(server: &Server) {
    let mut events = Vec::new();
    for user in 0..20 {
        let user = format!("u{user}");
        events.push(view(&user, "star"));
        events.push(view(&user, "anchor"));
        events.push(view(&user, &format!("x{}", user.len() % 3)));
    }
    events.push(view("me", "anchor"));
    ingest(server, &events);
}

#[test]
fn items_are_upserted_read_back_replaced_and_listed_in_stable_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let item = json!({
        "categories": ["fiction", "classics"],
        "labels": { "price": 12.5, "lang": "en" },
        "timestamp_ms": 1_000,
        "expires_ms": 4_000_000_000_000_i64,
    });
    put(&server, "/v1/items/book-1", item);
    let read = get(&server, "/v1/items/book-1");
    assert_eq!(read["id"], "book-1");
    let categories: HashSet<&str> = read["categories"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(categories, HashSet::from(["fiction", "classics"]));
    assert_eq!(read["labels"], json!({ "price": 12.5, "lang": "en" }));
    assert_eq!((read["timestamp_ms"].as_i64(), read["hidden"].as_bool()), (Some(1_000), Some(false)));
    assert_eq!(read["expires_ms"].as_i64(), Some(4_000_000_000_000));
    // An upsert replaces everything; the body may repeat the path's id (a
    // GET's answer can be PUT back).
    put(&server, "/v1/items/book-1", json!({ "id": "book-1", "categories": ["poetry"] }));
    let read = get(&server, "/v1/items/book-1");
    assert_eq!(read["categories"], json!(["poetry"]));
    assert_eq!(read["labels"], json!({}));
    assert!(read["timestamp_ms"].is_null(), "{read}");
    server.call("GET", "/v1/items/nothing-here", b"").assert_problem(404, "an absent item");
    // An item known from events only has no catalogue entry.
    ingest(&server, &[view("u", "evented")]);
    server.call("GET", "/v1/items/evented", b"").assert_problem(404, "an item known from events only");

    for at in 2..=7 {
        put(&server, &format!("/v1/items/book-{at}"), json!({ "categories": ["c"] }));
    }
    let mut listed = Vec::new();
    let mut path = "/v1/items?limit=3".to_string();
    let mut pages = 0;
    loop {
        let page = get(&server, &path);
        pages += 1;
        listed.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/items?limit=3&after={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=7).map(|at| format!("book-{at}")).collect();
    assert_eq!(listed, expected);
    assert_eq!(pages, 3);
    // The default page holds them all, with no next.
    let all = get(&server, "/v1/items");
    assert_eq!(ids(&all), expected);
    assert!(all["next"].is_null());
    server.call("GET", "/v1/items?limit=0", b"").assert_problem(400, "limit 0");
    // A cursor naming no item points into no page.
    server.call("GET", "/v1/items?after=nothing-here", b"").assert_problem(404, "after an unknown item");
}

#[test]
fn a_hidden_item_is_not_returned_by_the_very_next_request_and_returns_once_shown() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    seed_star(&server);
    let reads = ["/v1/users/me/recommend?n=5", "/v1/popular?n=5", "/v1/items/anchor/similar?n=5"];
    let star_everywhere = |server: &Server| reads.map(|path| ids(&get(server, path)).contains(&"star".to_string()));
    assert_eq!(star_everywhere(&server), [true; 3]);
    let (status, hidden) = server.json("POST", "/v1/items/star/hide", "");
    assert_eq!(status, 200, "{hidden}");
    assert!(hidden["lsn"].as_u64().is_some());
    assert_eq!(star_everywhere(&server), [false; 3], "hidden, yet returned");
    // Every strategy skips it.
    for strategy in ["blend", "popularity", "user_cf", "item_rank", "item_rank_exact"] {
        let answer = get(&server, &format!("/v1/users/me/recommend?n=5&strategy={strategy}"));
        assert!(!ids(&answer).contains(&"star".to_string()), "{strategy}: {answer}");
    }
    // Hiding an item known from events gives it a catalogue entry that says so.
    assert_eq!(get(&server, "/v1/items/star")["hidden"], true);
    let (status, shown) = server.json("POST", "/v1/items/star/show", "");
    assert_eq!(status, 200, "{shown}");
    assert_eq!(star_everywhere(&server), [true; 3], "shown, yet not returned");
    server.call("POST", "/v1/items/nothing-here/hide", b"").assert_problem(404, "hiding an unknown item");
    // The removal stays as it was: permanent.
    assert_eq!(server.call("DELETE", "/v1/items/star", b"").status, 200);
    assert!(!ids(&get(&server, "/v1/popular?n=5")).contains(&"star".to_string()));
}

#[test]
fn a_filter_returns_n_items_when_only_one_percent_of_the_catalogue_qualifies() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    // 1000 items, every one with events; i0, i100, …, i900 and 0..10 of the
    // ten "rare" ones are the least viewed.
    let mut events = Vec::new();
    for user in 0..200 {
        for at in 0..8 {
            let item = (user * 13 + at * 37) % 1000;
            events.push(view(&format!("u{user}"), &format!("i{item}")));
        }
    }
    let rare: HashSet<String> = (0..10).map(|at| format!("i{}", at * 100 + 99)).collect();
    // Every rare item co-occurs with i1 (so all ten are similar to it).
    for item in &rare {
        events.push(view(&format!("fan-{item}"), "i1"));
        events.push(view(&format!("fan-{item}"), item));
    }
    events.push(view("me", "i1"));
    events.push(view("me", "i2"));
    ingest(&server, &events);
    for item in 0..1000 {
        let id = format!("i{item}");
        let category = if rare.contains(&id) { "rare" } else { "common" };
        put(
            &server,
            &format!("/v1/items/{id}"),
            json!({ "categories": [category], "timestamp_ms": 1_000 + item, "labels": { "price": item } }),
        );
    }
    for path in [
        "/v1/users/me/recommend?n=10&category=rare",
        "/v1/users/me/recommend?n=10&category=rare&strategy=user_cf",
        "/v1/users/me/recommend?n=10&category=rare&strategy=item_rank",
        "/v1/users/nobody/recommend?n=10&category=rare",
        "/v1/popular?n=10&category=rare",
        "/v1/items/i1/similar?n=10&category=rare",
        "/v1/latest?n=10&category=rare",
    ] {
        let answer = get(&server, path);
        let found: HashSet<String> = ids(&answer).into_iter().collect();
        assert_eq!(found, rare, "{path}: {answer}");
    }
    // Label conditions: text equality and numeric bounds, all of which hold.
    let cheap = get(&server, "/v1/popular?n=50&category=rare&label_max=price:300");
    let expected: HashSet<String> = ["i99", "i199", "i299"].map(String::from).into();
    assert_eq!(ids(&cheap).into_iter().collect::<HashSet<_>>(), expected, "{cheap}");
    let band = get(&server, "/v1/popular?n=50&category=rare&label_min=price:199&label_max=price:299");
    assert_eq!(ids(&band).into_iter().collect::<HashSet<_>>(), ["i199", "i299"].map(String::from).into());
    put(&server, "/v1/items/i99", json!({ "categories": ["rare"], "labels": { "brand": "acme:co" } }));
    let acme = get(&server, "/v1/popular?n=50&label=brand:acme:co");
    assert_eq!(ids(&acme), vec!["i99".to_string()], "the value may hold colons");
    // Any of several categories.
    let either = get(&server, "/v1/latest?n=1000&category=rare&category=common");
    assert_eq!(ids(&either).len(), 999, "every item but i99 (no timestamp any more)");
}

#[test]
fn latest_lists_the_newest_items_by_category_skipping_hidden_expired_and_undated_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for at in 0..6_i64 {
        let category = if at % 2 == 0 { "even" } else { "odd" };
        put(&server, &format!("/v1/items/n{at}"), json!({ "categories": [category], "timestamp_ms": 1_000 + at }));
    }
    put(&server, "/v1/items/undated", json!({ "categories": ["even"] }));
    put(&server, "/v1/items/expired", json!({ "categories": ["even"], "timestamp_ms": 5_000, "expires_ms": 6_000 }));
    put(&server, "/v1/items/future", json!({ "categories": ["even"], "timestamp_ms": now + 3_600_000 }));
    put(&server, "/v1/items/hidden", json!({ "categories": ["even"], "timestamp_ms": 9_000, "hidden": true }));
    assert_eq!(ids(&get(&server, "/v1/latest?category=even")), ["n4", "n2", "n0"]);
    assert_eq!(ids(&get(&server, "/v1/latest?category=odd&n=2")), ["n5", "n3"]);
    assert_eq!(ids(&get(&server, "/v1/latest?category=odd&category=even&n=3")), ["n5", "n4", "n3"]);
    assert_eq!(ids(&get(&server, "/v1/latest?n=2&offset=2")), ["n3", "n2"]);
    let latest = get(&server, "/v1/latest?n=1");
    assert_eq!(latest["items"][0]["timestamp_ms"], 1_005, "whole items: {latest}");
    assert_eq!(ids(&get(&server, "/v1/latest?category=none")), Vec::<String>::new());
}

#[test]
fn offset_pages_concatenate_to_the_whole_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut events = Vec::new();
    for user in 0..40 {
        for at in 0..6 {
            events.push(view(&format!("u{user}"), &format!("i{}", (user * 3 + at * 7) % 50)));
        }
    }
    events.push(view("me", "i0"));
    events.push(view("me", "i7"));
    ingest(&server, &events);
    for at in 0..50 {
        put(&server, &format!("/v1/items/i{at}"), json!({ "categories": ["all"], "timestamp_ms": at }));
    }
    for base in [
        "/v1/users/me/recommend?category=all",
        "/v1/users/me/recommend?strategy=user_cf",
        "/v1/popular?category=all",
        "/v1/items/i0/similar?category=all",
        "/v1/latest?category=all",
    ] {
        let whole = ids(&get(&server, &format!("{base}&n=9")));
        assert_eq!(whole.len(), 9, "{base}");
        let mut pages = Vec::new();
        for offset in [0, 3, 6] {
            pages.extend(ids(&get(&server, &format!("{base}&n=3&offset={offset}"))));
        }
        assert_eq!(pages, whole, "{base}");
    }
}

#[test]
fn user_labels_are_set_read_back_and_removed_by_a_forget() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    server.call("GET", "/v1/users/ann", b"").assert_problem(404, "no labels yet");
    put(&server, "/v1/users/ann", json!({ "labels": { "country": "fr", "age": 33 } }));
    let read = get(&server, "/v1/users/ann");
    assert_eq!(read, json!({ "id": "ann", "labels": { "country": "fr", "age": 33.0 } }));
    put(&server, "/v1/users/ann", json!({ "id": "ann", "labels": { "country": "de" } }));
    assert_eq!(get(&server, "/v1/users/ann")["labels"], json!({ "country": "de" }));
    assert_eq!(server.call("DELETE", "/v1/users/ann", b"").status, 200);
    server.call("GET", "/v1/users/ann", b"").assert_problem(404, "forgotten");
}

#[test]
fn every_refusal_is_a_problem_naming_the_parameter_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    seed_star(&server);
    put(&server, "/v1/items/star", json!({ "categories": ["a"] }));
    let lsn = server.lsn();
    let refused = |method: &str, path: &str, body: Value, names: &str| {
        let body = if body.is_null() { String::new() } else { body.to_string() };
        let response = server.call(method, path, body.as_bytes());
        response.assert_problem(400, &format!("{method} {path} {body}"));
        let detail = response.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(names), "{method} {path}: {detail:?} does not name {names:?}");
    };
    let many_labels: serde_json::Map<String, Value> =
        (0..=recwal::LABELS_MAX).map(|at| (format!("k{at}"), json!(at))).collect();
    let many_categories: Vec<String> = (0..=recwal::ITEM_CATEGORIES_MAX).map(|at| format!("c{at}")).collect();
    refused("PUT", "/v1/items/star", json!({ "categories": [""] }), "categories[0]");
    refused(
        "PUT",
        "/v1/items/star",
        json!({ "categories": ["x".repeat(recwal::CATEGORY_BYTES_MAX + 1)] }),
        "categories[0]",
    );
    refused("PUT", "/v1/items/star", json!({ "categories": many_categories }), "categories");
    refused("PUT", "/v1/items/star", json!({ "labels": many_labels }), "labels");
    refused(
        "PUT",
        "/v1/items/star",
        json!({ "labels": { "k": "x".repeat(recwal::LABEL_TEXT_BYTES_MAX + 1) } }),
        "labels.k",
    );
    refused("PUT", "/v1/items/star", json!({ "labels": { "k": true } }), "labels");
    refused("PUT", "/v1/items/star", json!({ "timestamp_ms": 10, "expires_ms": 10 }), "expires_ms");
    refused("PUT", "/v1/items/star", json!({ "colour": "red" }), "colour");
    refused("PUT", "/v1/items/star", json!({ "id": "other" }), "id");
    refused("PUT", "/v1/users/ann", json!({ "labels": many_labels }), "labels");
    refused("PUT", "/v1/users/ann", json!({ "labels": { "": 1 } }), "labels");
    let n_max = recwal::N_MAX;
    for base in ["/v1/users/me/recommend?", "/v1/popular?", "/v1/items/anchor/similar?", "/v1/latest?"] {
        refused("GET", &format!("{base}category="), Value::Null, "category");
        let too_many: String = (0..=recwal::FILTER_CATEGORIES_MAX).map(|at| format!("&category=c{at}")).collect();
        refused("GET", &format!("{base}n=1{too_many}"), Value::Null, "category");
        refused("GET", &format!("{base}label=brand"), Value::Null, "label");
        refused("GET", &format!("{base}label=:acme"), Value::Null, "label");
        refused("GET", &format!("{base}label_min=price:cheap"), Value::Null, "label_min");
        refused("GET", &format!("{base}label_max=price:inf"), Value::Null, "label_max");
        refused("GET", &format!("{base}label_max=price"), Value::Null, "label_max");
        let too_many: String = (0..=recwal::FILTER_LABELS_MAX).map(|at| format!("&label=k{at}:v")).collect();
        refused("GET", &format!("{base}n=1{too_many}"), Value::Null, "label");
        refused("GET", &format!("{base}offset=-1"), Value::Null, "offset");
        refused("GET", &format!("{base}offset={}&n=1", n_max), Value::Null, "offset");
        refused("GET", &format!("{base}offset=1&offset=2"), Value::Null, "offset");
        refused("GET", &format!("{base}colour=red"), Value::Null, "colour");
    }
    refused("GET", "/v1/users/me/recommend?n=1&n=2", Value::Null, "n");
    refused("GET", "/v1/users/me/recommend?strategy=astrology", Value::Null, "strategy");
    refused("GET", "/v1/items?limit=x", Value::Null, "limit");
    // A label given twice (serde_json would keep the last in silence).
    for path in ["/v1/items/star", "/v1/users/ann"] {
        let response = server.call("PUT", path, br#"{"labels": {"a": 1, "b": 2, "a": 3}}"#);
        response.assert_problem(400, path);
        let detail = response.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains("labels") && detail.contains("`a` appears twice"), "{path}: {detail}");
    }
    assert_eq!(server.lsn(), lsn, "a refusal wrote to the log");
    assert_eq!(get(&server, "/v1/items/star")["categories"], json!(["a"]));
    server.call("GET", "/v1/users/ann", b"").assert_problem(404, "a refused user upsert");
}

#[test]
fn the_existing_request_shapes_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    seed_star(&server);
    let answer = get(&server, "/v1/users/me/recommend?n=2&strategy=user_cf&exclude=x2&allow=star,x2");
    assert_eq!(ids(&answer), ["star"]);
    assert_eq!(get(&server, "/v1/users/me/recommend")["cold_start"], false);
    assert_eq!(ids(&get(&server, "/v1/popular?n=2")), ["anchor", "star"]);
    assert_eq!(ids(&get(&server, "/v1/items/anchor/similar?n=1")), ["star"]);
    // Percent-encoded values are decoded.
    put(&server, "/v1/items/star", json!({ "categories": ["sci fi"], "labels": { "brand": "a&b" } }));
    assert_eq!(ids(&get(&server, "/v1/popular?n=1&category=sci%20fi&label=brand:a%26b")), ["star"]);
    assert_eq!(ids(&get(&server, "/v1/popular?n=1&category=sci+fi")), ["star"]);
}

#[test]
fn the_catalogue_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    put(&server, "/v1/items/a", json!({ "categories": ["k"], "timestamp_ms": 5, "labels": { "p": 1 } }));
    put(&server, "/v1/users/ann", json!({ "labels": { "c": "fr" } }));
    assert_eq!(server.json("POST", "/v1/items/a/hide", "").0, 200);
    let before = (get(&server, "/v1/items/a"), get(&server, "/v1/users/ann"));
    drop(server);
    let server = start(dir.path());
    assert_eq!((get(&server, "/v1/items/a"), get(&server, "/v1/users/ann")), before);
}

#[test]
fn the_openapi_document_states_the_catalogue_routes_and_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let document = get(&server, "/openapi.json");
    for (method, path) in [
        ("get", "/v1/items"),
        ("get", "/v1/items/{item}"),
        ("put", "/v1/items/{item}"),
        ("delete", "/v1/items/{item}"),
        ("post", "/v1/items/{item}/hide"),
        ("post", "/v1/items/{item}/show"),
        ("get", "/v1/users/{user}"),
        ("put", "/v1/users/{user}"),
        ("get", "/v1/latest"),
    ] {
        assert!(document["paths"][path][method].is_object(), "{method} {path} is not documented");
    }
    let param = |method: &str, path: &str, name: &str| -> Value {
        let parameters = document["paths"][path][method]["parameters"].as_array().unwrap();
        parameters.iter().find(|param| param["name"] == name).cloned().unwrap_or_else(|| panic!("{path} has no {name}"))
    };
    for (method, path) in [
        ("get", "/v1/users/{user}/recommend"),
        ("get", "/v1/popular"),
        ("get", "/v1/items/{item}/similar"),
        ("get", "/v1/latest"),
    ] {
        let category = param(method, path, "category");
        assert_eq!(category["schema"]["maxItems"], recwal::FILTER_CATEGORIES_MAX, "{path}");
        assert_eq!(category["schema"]["items"]["maxLength"], recwal::CATEGORY_BYTES_MAX, "{path}");
        assert_eq!(category["explode"], true, "{path}: repeated, not comma-separated");
        for name in ["label", "label_min", "label_max"] {
            assert!(param(method, path, name)["schema"]["maxItems"].is_number(), "{path} {name}");
        }
        assert_eq!(param(method, path, "offset")["schema"]["maximum"], recwal::N_MAX - 1, "{path}: max_n - 1");
    }
    let item = &document["components"]["schemas"]["ItemBody"];
    assert_eq!(item["properties"]["categories"]["maxItems"], recwal::ITEM_CATEGORIES_MAX);
    assert_eq!(item["properties"]["labels"]["maxProperties"], recwal::LABELS_MAX);
}

#[test]
fn pages_stay_inside_the_servers_max_n_and_stats_count_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &["--sync", "never", "--max-n", "50"]);
    for at in 0..3 {
        put(&server, &format!("/v1/items/i{at}"), json!({ "categories": ["c"], "timestamp_ms": at }));
    }
    assert_eq!(get(&server, "/admin/stats")["catalogue_items"], 3);
    for path in ["/v1/popular?n=10&offset=40", "/v1/latest?n=10&offset=40", "/v1/users/u/recommend?n=10&offset=40"] {
        assert_eq!(server.call("GET", path, b"").status, 200, "{path}");
    }
    for path in ["/v1/popular?n=10&offset=41", "/v1/latest?offset=41", "/v1/users/u/recommend?n=10&offset=41"] {
        let response = server.call("GET", path, b"");
        response.assert_problem(400, path);
        assert!(response.text().contains("invalid offset: offset + n must be at most 50"), "{}", response.text());
    }
    assert_eq!(ids(&get(&server, "/v1/items?limit=50")).len(), 3);
    let response = server.call("GET", "/v1/items?limit=51", b"");
    response.assert_problem(400, "limit over max_n");
    assert!(response.text().contains("invalid limit"), "{}", response.text());
    let document = get(&server, "/openapi.json");
    let limit = document["paths"]["/v1/items"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|param| param["name"] == "limit")
        .cloned()
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 50);
    let offset = document["paths"]["/v1/popular"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|param| param["name"] == "offset")
        .cloned()
        .unwrap();
    assert_eq!(offset["schema"]["maximum"], 49);
}

#[test]
fn a_session_is_recommended_from_the_events_in_the_body_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    seed_star(&server);
    put(&server, "/v1/items/star", json!({ "categories": ["top"] }));
    let lsn = get(&server, "/admin/stats")["lsn_applied"].clone();
    let body = json!({
        "events": [{ "item": "anchor", "kind": "view" }, { "item": "unknown-item", "kind": "rating", "value": 4.0 }],
        "n": 3,
        "strategy": "user_cf",
    });
    let (status, answer) = server.json("POST", "/v1/sessions/recommend", &body.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ids(&answer)[0], "star", "{answer}");
    assert_eq!(answer["cold_start"], false);
    assert!(!ids(&answer).contains(&"anchor".to_string()), "a session's own item came back");
    assert!(answer["items"][0]["reasons"].as_array().is_some_and(|reasons| !reasons.is_empty()));
    // The filter in the body, and a page.
    let filtered =
        json!({ "events": [{ "item": "anchor", "kind": "click" }], "n": 2, "filter": { "categories": ["top"] } });
    let (status, answer) = server.json("POST", "/v1/sessions/recommend", &filtered.to_string());
    assert_eq!((status, ids(&answer)), (200, vec!["star".to_string()]), "{answer}");
    let paged =
        json!({ "events": [{ "item": "anchor", "kind": "view" }], "n": 1, "offset": 1, "strategy": "item_rank" });
    let (_, whole) = server.json(
        "POST",
        "/v1/sessions/recommend",
        &json!({ "events": [{ "item": "anchor", "kind": "view" }], "n": 2, "strategy": "item_rank" }).to_string(),
    );
    let (status, page) = server.json("POST", "/v1/sessions/recommend", &paged.to_string());
    assert_eq!(status, 200);
    assert_eq!(ids(&page), ids(&whole)[1..].to_vec());
    // Refusals name the field; nothing is written either way.
    for (bad, field) in [
        (json!({ "events": [{ "item": "anchor", "kind": "rating", "value": 9.0 }] }), "events[0].value"),
        (json!({ "events": [{ "item": "anchor", "kind": "view", "value": 1.0 }] }), "events[0].value"),
        (
            json!({ "events": [], "filter": { "labels": [{ "op": "at_least", "key": "price", "value": "x" }] } }),
            "filter",
        ),
        (json!({ "events": [], "n": 10, "offset": 995 }), "offset"),
    ] {
        let (status, answer) = server.json("POST", "/v1/sessions/recommend", &bad.to_string());
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["detail"].as_str().unwrap_or_default().contains(field), "{bad}: {answer}");
    }
    assert_eq!(get(&server, "/admin/stats")["lsn_applied"], lsn, "a session wrote something");
}

#[test]
fn feedback_older_than_the_configured_ttl_expires_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        None,
        &[
            "--sync",
            "never",
            "--set",
            "engine.feedback.ttl_ms=3600000",
            "--set",
            "engine.feedback.expire_every_ms=1000",
        ],
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let old = json!({ "user": "old", "item": "a", "kind": "view", "timestamp_ms": now - 7_200_000 });
    ingest(&server, &[old, view("new", "a")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, answer) = server.json("GET", "/v1/users/old/interactions", "");
        if status == 200 && answer["interactions"].as_array().is_some_and(|items| items.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the two-hour-old view never expired: {status} {answer}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, fresh) = server.json("GET", "/v1/users/new/interactions", "");
    assert_eq!(fresh["interactions"].as_array().map(Vec::len), Some(1), "the fresh view expired too: {fresh}");
}
