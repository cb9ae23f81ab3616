//! `recwal serve` over real sockets: every endpoint, auth, limits, bad
//! input, graceful shutdown, configuration, the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::process::Command;

use support::{fixture, request, Server};

const TOKEN: &str = "test-token-0123456789";

fn seed(server: &Server) {
    let (status, body) = server.json(
        "POST",
        "/v1/events",
        r#"{"events":[
            {"user":"alice","item":"book","kind":"purchase","event_id":"e1"},
            {"user":"bob","item":"book","kind":"rating","value":4.5},
            {"user":"bob","item":"lamp","kind":"click"},
            {"user":"carol","item":"lamp","kind":"view"},
            {"user":"carol","item":"desk","kind":"cart"}
        ],"durability":"always"}"#,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn every_endpoint_answers_and_auth_guards_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(TOKEN), &[]);
    seed(&server);

    // Data plane.
    let (status, receipts) = server.json(
        "POST",
        "/v1/event?durability=batch",
        r#"{"user":"alice","item":"book","kind":"view","event_id":"e1"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(receipts["receipts"][0]["duplicate"], true, "{receipts}");
    let (status, answer) = server.json("GET", "/v1/users/alice/recommend?n=2&strategy=user_cf&exclude=desk", "");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["items"][0]["item"], "lamp");
    assert_eq!(answer["ranking"]["kind"], "unranked");
    let (status, answer) = server.json("GET", "/v1/users/nobody/recommend?allow=desk,lamp", "");
    assert_eq!((status, answer["cold_start"].as_bool()), (200, Some(true)));
    assert!(answer["items"].as_array().unwrap().iter().all(|item| item["item"] != "book"));
    let (status, similar) = server.json("GET", "/v1/items/book/similar?n=3", "");
    assert_eq!((status, similar["items"][0]["item"].as_str()), (200, Some("lamp")));
    let (status, popular) = server.json("GET", "/v1/popular?n=1", "");
    assert_eq!((status, popular["items"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, interactions) = server.json("GET", "/v1/users/bob/interactions", "");
    assert_eq!((status, interactions["interactions"].as_array().map(Vec::len)), (200, Some(2)));
    assert_eq!(server.json("DELETE", "/v1/items/desk", "").0, 200);
    assert_eq!(server.json("DELETE", "/v1/users/carol", "").0, 200);
    assert_eq!(server.json("GET", "/v1/users/carol/interactions", "").1["interactions"], serde_json::json!([]));
    server.call("DELETE", "/v1/users/nobody", b"").assert_problem(404, "forget an unknown user");

    // Admin plane.
    let (status, stats) = server.json("GET", "/admin/stats", "");
    assert_eq!((status, stats["users"].as_u64()), (200, Some(3)));
    let (status, wal) = server.json("GET", "/admin/wal", "");
    assert_eq!(status, 200);
    assert!(wal["lsn_durable"].as_u64().unwrap() >= 3, "{wal}");
    let (status, checkpoint) = server.json("POST", "/admin/checkpoint", "");
    assert_eq!(status, 200, "{checkpoint}");
    assert_eq!(checkpoint["lsn"], wal["lsn_written"]);
    server.call("GET", "/admin/cluster", b"").assert_problem(404, "a single node's cluster view");
    let metrics = server.call("GET", "/metrics", b"");
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.starts_with("text/plain"));
    let text = metrics.text();
    for series in [
        "recwal_ready 1",
        "recwal_users 3",
        "recwal_wal_sync_latency_us_count",
        "recwal_model_breaker_state{state=\"closed\"}",
        "recwal_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/users/{user}/recommend\",status=\"200\"}",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}");
    }

    // Models.
    let auth = format!("Bearer {TOKEN}");
    let add = |name: &str| {
        request(
            &server.addr,
            "POST",
            "/admin/models",
            &[("authorization", &auth), ("content-type", "application/octet-stream")],
            &fixture(name),
        )
        .unwrap()
    };
    let added = add("linear_v1");
    assert_eq!(added.status, 201, "{}", added.text());
    assert_eq!(added.json()["version"], 1);
    assert_eq!(add("linear_v2").status, 201);
    add("wrong_schema").assert_problem(422, "a model with the wrong schema");
    assert_eq!(server.json("POST", "/admin/models/1/activate", "").0, 200);
    assert_eq!(server.json("POST", "/admin/models/2/activate", "").0, 200);
    let (_, ranked) = server.json("GET", "/v1/users/alice/recommend?n=1", "");
    assert_eq!(ranked["ranking"], serde_json::json!({"kind": "model", "version": 2}), "{ranked}");
    assert!(ranked["items"][0]["model_score"].as_f64().unwrap() >= 10.0);
    assert_eq!(server.json("POST", "/admin/models/rollback", "").1["version"], 1);
    let (_, listed) = server.json("GET", "/admin/models", "");
    assert_eq!(listed["models"].as_array().map(Vec::len), Some(2));
    let (_, status_body) = server.json("GET", "/admin/models/status", "");
    assert_eq!(status_body["serving"], 1);
    server.call("POST", "/admin/models/9/activate", b"").assert_problem(404, "unknown version");
    server.call("POST", "/admin/models/x/activate", b"").assert_problem(400, "bad version");

    // Auth: missing or wrong token → 401, nothing done.
    let lsn = server.lsn();
    let event = br#"{"events":[{"user":"mallory","item":"book","kind":"click"}]}"#;
    for headers in [vec![], vec![("authorization", "Bearer wrong-token-0123456789")], vec![("authorization", TOKEN)]] {
        for (method, path, body) in [
            ("POST", "/v1/events", &event[..]),
            ("GET", "/v1/users/alice/recommend", b""),
            ("DELETE", "/v1/users/alice", b""),
            ("POST", "/admin/checkpoint", b""),
            ("POST", "/admin/models/rollback", b""),
            ("GET", "/metrics", b""),
        ] {
            let response = request(&server.addr, method, path, &headers, body).unwrap();
            response.assert_problem(401, &format!("{method} {path} with {headers:?}"));
        }
    }
    assert_eq!(server.lsn(), lsn, "an unauthorised request wrote to the log");
    assert_eq!(server.json("GET", "/admin/stats", "").1["users"], 3);
    // The scheme is case-insensitive.
    let lower = format!("bearer {TOKEN}");
    assert_eq!(request(&server.addr, "GET", "/admin/stats", &[("authorization", &lower)], b"").unwrap().status, 200);
    // Sent twice, the header is refused whichever copy holds the token.
    let good = format!("Bearer {TOKEN}");
    let wrong = "Bearer wrong-token-0123456789";
    for pair in [
        [("authorization", good.as_str()), ("authorization", wrong)],
        [("authorization", wrong), ("authorization", good.as_str())],
    ] {
        let response = request(&server.addr, "POST", "/v1/events", &pair, event).unwrap();
        response.assert_problem(400, "Authorization twice");
        assert!(response.text().contains("more than once"), "{}", response.text());
    }
    assert_eq!(server.lsn(), lsn, "a request with two Authorization headers wrote to the log");
    // Invented methods are refused and counted under one label, so they
    // cannot grow /metrics.
    for method in ["FOO", "BAR"] {
        request(&server.addr, method, "/v1/popular", &[], b"").unwrap().assert_problem(401, method);
    }
    let text = server.call("GET", "/metrics", b"").text();
    assert!(text.contains("method=\"OTHER\"") && !text.contains("method=\"FOO\""));
    // Health and readiness need no token.
    assert_eq!(request(&server.addr, "GET", "/healthz", &[], b"").unwrap().status, 200);
    assert_eq!(request(&server.addr, "GET", "/readyz", &[], b"").unwrap().status, 200);
}

#[test]
fn bad_input_is_refused_with_problem_json_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("recwal.toml");
    std::fs::write(&config, "[server]\nmodel_limit_bytes = 100000\n").unwrap();
    // The data dir beside the configuration file: serve refuses a directory that holds other files.
    let server = Server::start(
        &dir.path().join("data"),
        None,
        &["--body-limit-bytes", "4096", "--max-batch", "5", "--max-n", "50", "--config", config.to_str().unwrap()],
    );
    seed(&server);
    let lsn = server.lsn();
    let long = "x".repeat(257);
    let many = format!(r#"{{"events":[{}]}}"#, [r#"{"user":"u","item":"i","kind":"click"}"#; 6].join(","));
    let huge = format!(r#"{{"events":[{{"user":"u","item":"{}","kind":"click"}}]}}"#, "y".repeat(5000));
    let json_cases: Vec<(&str, String)> = vec![
        ("malformed JSON", "{\"events\": [".into()),
        ("not JSON", "hello".into()),
        ("wrong type", r#"{"events":"nope"}"#.into()),
        ("wrong field type", r#"{"events":[{"user":1,"item":"i","kind":"click"}]}"#.into()),
        ("unknown field", r#"{"events":[{"user":"u","item":"i","kind":"click","colour":"red"}]}"#.into()),
        ("unknown top-level field", r#"{"events":[],"extra":1}"#.into()),
        ("empty batch", r#"{"events":[]}"#.into()),
        ("too many events", many),
        ("oversize user id", format!(r#"{{"events":[{{"user":"{long}","item":"i","kind":"click"}}]}}"#)),
        ("empty item id", r#"{"events":[{"user":"u","item":"","kind":"click"}]}"#.into()),
        ("negative weight", r#"{"events":[{"user":"u","item":"i","kind":"click","weight":-1}]}"#.into()),
        ("NaN literal", r#"{"events":[{"user":"u","item":"i","kind":"click","weight":NaN}]}"#.into()),
        ("rating out of range", r#"{"events":[{"user":"u","item":"i","kind":"rating","value":99}]}"#.into()),
        ("rating without value", r#"{"events":[{"user":"u","item":"i","kind":"rating"}]}"#.into()),
        ("value on a click", r#"{"events":[{"user":"u","item":"i","kind":"click","value":3}]}"#.into()),
        ("unknown custom kind", r#"{"events":[{"user":"u","item":"i","kind":"teleport"}]}"#.into()),
        ("far future", r#"{"events":[{"user":"u","item":"i","kind":"click","timestamp_ms":99999999999999}]}"#.into()),
        ("bad durability", r#"{"events":[{"user":"u","item":"i","kind":"click"}],"durability":"sometimes"}"#.into()),
    ];
    for (what, body) in &json_cases {
        server.call("POST", "/v1/events", body.as_bytes()).assert_problem(400, what);
    }
    server.call("POST", "/v1/events", huge.as_bytes()).assert_problem(413, "oversize body");
    server
        .call("POST", "/v1/events", b"{\"events\":[{\"user\":\"\xff\xfe\",\"item\":\"i\",\"kind\":\"click\"}]}")
        .assert_problem(400, "invalid UTF-8");
    let wrong_type =
        request(&server.addr, "POST", "/v1/events", &[("content-type", "text/plain")], br#"{"events":[]}"#).unwrap();
    wrong_type.assert_problem(415, "wrong content type");
    for (what, path) in [
        ("huge n", "/v1/users/alice/recommend?n=100000"),
        ("n over max_n", "/v1/users/alice/recommend?n=51"),
        ("zero n", "/v1/popular?n=0"),
        ("negative n", "/v1/popular?n=-3"),
        ("n not a number", "/v1/items/book/similar?n=ten"),
        ("unknown strategy", "/v1/users/alice/recommend?strategy=magic"),
        ("unknown query parameter", "/v1/users/alice/recommend?colour=red"),
        ("oversize user id in the path", &format!("/v1/users/{long}/recommend")),
    ] {
        server.call("GET", path, b"").assert_problem(400, what);
    }
    server.call("GET", "/v1/items/no-such-item/similar", b"").assert_problem(404, "unknown item");
    server.call("GET", "/v1/users/nobody/interactions", b"").assert_problem(404, "unknown user");
    server.call("DELETE", "/v1/items/no-such-item", b"").assert_problem(404, "remove an unknown item");
    server.call("GET", "/v1/nothing-here", b"").assert_problem(404, "unknown route");
    server.call("PUT", "/v1/events", b"{}").assert_problem(405, "wrong method");
    server.call("GET", "/v1/users/%ff/recommend", b"").assert_problem(400, "invalid percent-encoding");
    server.call("DELETE", "/v1/users/%c3%28", b"").assert_problem(400, "invalid UTF-8 in the path");
    // In a query value (or name) too: a 400 naming the parameter, never an
    // answer for U+FFFD in its place.
    for (path, name) in [
        ("/v1/users/alice/recommend?category=%FF", "category"),
        ("/v1/popular?n=5&label=%c3%28", "label"),
        ("/v1/items/i1/similar?exclude=ok&exclude=%e2%82", "exclude"),
        ("/v1/popular?%ff=1", "\u{fffd}"),
    ] {
        let answer = server.call("GET", path, b"");
        answer.assert_problem(400, path);
        assert!(answer.text().contains(&format!("query parameter `{name}`")), "{path}: {}", answer.text());
    }
    assert_eq!(server.call("GET", "/v1/popular?n=5&category=caf%C3%A9", b"").status, 200);
    let upload = request(
        &server.addr,
        "POST",
        "/admin/models",
        &[("content-type", "application/octet-stream")],
        &fixture("slow"),
    )
    .unwrap();
    upload.assert_problem(413, "a model over model_limit_bytes");
    assert_eq!(server.lsn(), lsn, "refused input moved the log");
    // Still up and answering.
    assert_eq!(server.json("GET", "/v1/popular?n=2", "").0, 200);
    assert_eq!(server.json("GET", "/healthz", "").0, 200);
}

#[test]
fn timeouts_and_the_concurrency_limit_answer_503() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = Server::start(dir.path(), None, &[]);
        seed(&server);
        let auth_free: [(&str, &str); 1] = [("content-type", "application/octet-stream")];
        let added = request(&server.addr, "POST", "/admin/models", &auth_free, &fixture("slow")).unwrap();
        assert_eq!(added.status, 201, "{}", added.text());
        assert_eq!(server.json("POST", "/admin/models/1/activate", "").0, 200);
    }
    // The slow model takes tens of ms; the timeout is 1 ms.
    let server = Server::start(dir.path(), None, &["--request-timeout-ms", "1"]);
    server.call("GET", "/v1/users/alice/recommend", b"").assert_problem(503, "timeout");
    drop(server);
    // One request at a time: a second one while the first is scoring is refused.
    let server = std::sync::Arc::new(Server::start(dir.path(), None, &["--concurrency", "1"]));
    let busy = {
        let server = std::sync::Arc::clone(&server);
        std::thread::spawn(move || {
            (0..20).map(|_| server.call("GET", "/v1/users/alice/recommend", b"").status).collect::<Vec<u16>>()
        })
    };
    let mut refused = 0;
    for _ in 0..200 {
        // Probes are never refused for load.
        assert_eq!(server.call("GET", "/healthz", b"").status, 200);
        let response = server.call("GET", "/v1/popular", b"");
        if response.status == 503 {
            response.assert_problem(503, "concurrency limit");
            assert!(response.text().contains("concurrency limit"));
            refused += 1;
        }
    }
    let statuses = busy.join().unwrap();
    assert!(refused > 0, "the concurrency limit never refused a request");
    assert!(statuses.iter().all(|&status| status == 200 || status == 503));
}

#[test]
fn sigterm_finishes_snapshots_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    seed(&server);
    let lsn = server.lsn();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let snapshot = dir.path().join(format!("snapshots/snapshot-{lsn:020}.bin"));
    assert!(snapshot.is_file(), "no shutdown snapshot at LSN {lsn}");
    // Back up from the snapshot with nothing to replay.
    let server = Server::start(dir.path(), None, &[]);
    let (_, wal) = server.json("GET", "/admin/wal", "");
    assert_eq!(wal["recovery"]["snapshot_lsn"], lsn);
    assert_eq!(wal["recovery"]["records_replayed"], 0);
    assert_eq!(
        server.json("GET", "/v1/users/bob/interactions", "").1["interactions"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn configuration_layers_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recwal.toml");
    std::fs::write(&file, "[server]\nmax_n = 20\n\n[engine.wal]\nsync = \"always\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .args(["--max-n", "30"])
        .env("RECWAL_SYNC", "never")
        .env("RECWAL_TOKEN", "a-secret-that-is-long")
        .output()
        .unwrap();
    assert!(output.status.success());
    let shown = String::from_utf8_lossy(&output.stdout);
    // Flag over file; environment over file; the token never shown.
    assert!(shown.contains("max_n = 30"), "{shown}");
    assert!(shown.contains("sync = \"never\""), "{shown}");
    assert!(shown.contains("token = \"<set>\"") && !shown.contains("a-secret"), "{shown}");
    assert!(shown.contains("listen = \"127.0.0.1:8089\""), "{shown}");
    let refused = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("RECWAL_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a loopback address"));
    assert!(!dir.path().join("data").exists(), "a refused start created the data directory");
    // A data directory that cannot be opened: a clear message, exit 1.
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let failed = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&not_a_dir)
        .env_remove("RECWAL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("recwal: cannot open the engine"), "{failed:?}");
    std::fs::write(&file, "colour = \"red\"\n").unwrap();
    let unknown = Command::new(env!("CARGO_BIN_EXE_recwal")).args(["serve", "--config"]).arg(&file).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("configuration colour: unknown key"));
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    seed(&server);
    let (status, document) = server.json("GET", "/openapi.json", "");
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, operations) in paths {
        for (method, _) in operations.as_object().unwrap() {
            documented += 1;
            let concrete = path.replace("{user}", "alice").replace("{item}", "book").replace("{version}", "1");
            let body: &[u8] = if method == "post" && concrete.starts_with("/v1/event") { b"{}" } else { b"" };
            let response = server.call(&method.to_uppercase(), &concrete, body);
            // Routed: anything but the router's own "no such route" / 405.
            assert_ne!(response.status, 405, "{method} {path}");
            assert!(!response.text().contains("no such route"), "{method} {path} is documented but not served");
        }
    }
    assert_eq!(documented, 37);
    // And an undocumented path is not served.
    assert!(server.call("GET", "/v1/secret", b"").text().contains("no such route"));
}

#[test]
fn healthz_answers_while_the_log_replays_and_readyz_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A log with no snapshot: 300k events to replay at the next start.
        let mut config = recwal::EngineConfig::default();
        config.checkpoint.disable_automatic();
        let engine = recwal::Engine::open(dir.path(), config).unwrap();
        for batch in 0..300 {
            let events: Vec<recwal::Event> = (0..1000)
                .map(|at| {
                    recwal::Event::new(
                        format!("u{}", (batch * 7 + at) % 5000),
                        format!("i{at}"),
                        recwal::EventKind::Click,
                    )
                })
                .collect();
            engine.ingest_batch_with(&events, recwal::Durability::Never).unwrap();
        }
    }
    let server = Server::spawn(dir.path(), None, &[]);
    let ready = server.call("GET", "/readyz", b"");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.json()["reasons"][0].as_str().unwrap().starts_with("replaying the log"), "{}", ready.text());
    assert_eq!(server.call("GET", "/healthz", b"").status, 200);
    server.call("GET", "/v1/popular", b"").assert_problem(503, "a request during replay");
    assert!(server.call("GET", "/metrics", b"").text().contains("recwal_ready 0"));
    server.wait_ready();
    assert_eq!(server.json("GET", "/admin/stats", "").1["events_applied"], 300_000);
    assert_eq!(server.json("GET", "/admin/wal", "").1["recovery"]["records_replayed"], 300);
}
