//! Observability of a real `recwal serve`: request ids in and out, HTTP
//! latency histograms in seconds, per-version inference latency, the gauges
//! the alerting rules need, and logging that never blocks a request.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{fixture, runtime_path, Server};

const TOKEN: &str = "test-token-0123456789";

/// A request; the status and the `x-request-id` of the answer.
fn request_id_of(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: 0\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap();
    let id = text.split("\r\n\r\n").next().unwrap().lines().find_map(|line| {
        line.to_ascii_lowercase().strip_prefix("x-request-id: ").map(|_| line[14..].trim().to_string())
    });
    (status, id)
}

#[test]
fn a_valid_request_id_comes_back_on_every_answer_and_an_unusable_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(TOKEN), &[]);
    let auth = format!("Bearer {TOKEN}");
    let id = "client-7f3a:req/42";
    for (method, path, with_auth, status) in [
        ("GET", "/v1/popular?n=1", true, 200),
        ("GET", "/no/such/route", true, 404),
        ("GET", "/v1/popular?n=1", false, 401),
        ("PUT", "/v1/popular", true, 405),
        ("GET", "/v1/popular?n=0", true, 400),
        ("GET", "/healthz", false, 200),
    ] {
        let mut headers = vec![("x-request-id", id)];
        if with_auth {
            headers.push(("authorization", auth.as_str()));
        }
        let answer = request_id_of(&server.addr, method, path, &headers);
        assert_eq!(answer, (status, Some(id.to_string())), "{method} {path}");
    }
    // No id, or one too long, or with a space: a generated one, new each time.
    let long = "x".repeat(129);
    let mut generated = Vec::new();
    for presented in [None, Some(long.as_str()), Some("has space")] {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(presented) = presented {
            headers.push(("x-request-id", presented));
        }
        let (status, answer) = request_id_of(&server.addr, "GET", "/no/such/route", &headers);
        assert_eq!(status, 404);
        let answer = answer.unwrap_or_else(|| panic!("no request id for {presented:?}"));
        assert_ne!(Some(answer.as_str()), presented);
        assert!(!answer.is_empty() && answer.len() <= 128 && answer.bytes().all(|byte| byte.is_ascii_graphic()));
        generated.push(answer);
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 3, "{generated:?}");
}

#[test]
fn the_request_id_is_in_the_request_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--snapshot-on-shutdown", "false"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("ORT_DYLIB_PATH", runtime_path())
        .env("RUST_LOG", "info")
        .env_remove("RECWAL_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap().to_string();
    // Read the log as it comes (not at exit: the writer's flush at exit
    // is bounded in time, and this machine may be slow).
    let stderr = child.stderr.take().unwrap();
    let (found, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("trace-me-0042") && found.send(line).is_err() {
                return;
            }
        }
    });
    let (status, _) = request_id_of(&addr, "GET", "/healthz", &[("x-request-id", "trace-me-0042")]);
    assert_eq!(status, 200);
    let line = lines.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|_| panic!("no log line with the request id within 60 s"));
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["span"]["request_id"], "trace-me-0042", "{line}");
    assert_eq!(entry["span"]["route"], "/healthz", "{line}");
}

#[test]
fn http_latency_is_a_histogram_in_seconds_and_inference_latency_is_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    assert_eq!(server.call("POST", "/admin/models", &fixture("linear_v1")).status, 201);
    assert_eq!(server.call("POST", "/admin/models/1/activate", b"").status, 200);
    let (status, body) = server.json(
        "POST",
        "/v1/events",
        r#"{"events":[{"user":"a","item":"x","kind":"click"},{"user":"b","item":"x","kind":"click"},
                      {"user":"b","item":"y","kind":"click"}],"durability":"always"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, answer) = server.json("GET", "/v1/users/a/recommend?n=3", "");
    assert_eq!((status, answer["ranking"]["kind"].as_str()), (200, Some("model")), "{answer}");

    let text = server.call("GET", "/metrics", b"").text();
    assert!(!text.contains("recwal_http_request_duration_us"), "the microsecond histogram is gone");
    assert!(text.contains("# TYPE recwal_http_request_duration_seconds histogram\n"), "{text}");
    let route = "method=\"GET\",route=\"/v1/users/{user}/recommend\",status=\"200\"";
    let mut bounds = Vec::new();
    for line in text.lines().filter(|line| line.starts_with("recwal_http_request_duration_seconds_bucket{")) {
        if line.contains(route) {
            let le = line.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            bounds.push(le.to_string());
        }
    }
    // The fixed bounds, in seconds: 100 µs up to 10 s.
    assert_eq!(bounds.first().map(String::as_str), Some("0.0001"), "{bounds:?}");
    assert!(bounds.iter().any(|le| le == "10.0" || le == "10"), "{bounds:?}");
    assert!(bounds.iter().any(|le| le == "+Inf"), "{bounds:?}");
    let sum: f64 = text
        .lines()
        .find(|line| line.starts_with("recwal_http_request_duration_seconds_sum{") && line.contains(route))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap();
    assert!(sum > 0.0 && sum < 30.0, "one request, in seconds: {sum}");

    assert!(text.contains("# TYPE recwal_model_inference_seconds histogram\n"), "{text}");
    assert!(text.contains("recwal_model_inference_seconds_count{version=\"1\"} 1\n"), "{text}");
    assert!(text.contains("recwal_model_inference_seconds_bucket{version=\"1\",le=\"+Inf\"} 1\n"), "{text}");
}

#[test]
fn the_gauges_the_alerts_need_are_exported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let event = r#"{"events":[{"user":"a","item":"x","kind":"click"}],"durability":"always"}"#;
    assert_eq!(server.json("POST", "/v1/events", event).0, 200);
    assert_eq!(server.call("POST", "/admin/checkpoint", b"").status, 200);
    let text = server.call("GET", "/metrics", b"").text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - value("process_start_time_seconds")).abs() < 600.0);
    assert_eq!(value("recwal_ready"), 1.0);
    assert_eq!(value("recwal_poisoned"), 0.0);
    assert_eq!(value("recwal_replaying"), 0.0);
    assert!(value("recwal_replay_seconds") >= 0.0);
    let (avail, size) = (value("recwal_data_dir_fs_avail_bytes"), value("recwal_data_dir_fs_size_bytes"));
    assert!(avail > 0.0 && avail <= size, "{avail} {size}");
    assert!((now - value("recwal_snapshot_timestamp_seconds")).abs() < 600.0);
    assert_eq!(value("recwal_log_lines_dropped_total"), 0.0);
    assert!(value("recwal_wal_segments_max") >= value("recwal_wal_segments_live"));
}

/// Regression: log lines were written to stderr on the request's thread, so
/// a stderr nobody read (a full pipe, a stuck log shipper) stalled every
/// request. Now a thread drains a queue and requests never wait for it.
#[test]
fn a_stalled_stderr_does_not_stall_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--snapshot-on-shutdown", "false"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("ORT_DYLIB_PATH", runtime_path())
        .env("RUST_LOG", "info")
        .env_remove("RECWAL_TOKEN")
        .stdout(Stdio::piped())
        // Piped and never read: the pipe fills after a few hundred lines.
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stderr_never_read = child.stderr.take();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap().to_string();
    // Each request logs a line of ~300 bytes: 2,000 of them are ten times a
    // 64 KiB pipe.
    let started = Instant::now();
    for at in 0..2_000 {
        let mut stream = TcpStream::connect(&addr).unwrap();
        // Generous: a blocked server never answers; a loaded machine is slow.
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw);
        assert!(read.is_ok() && raw.starts_with(b"HTTP/1.1 200"), "request {at} stalled or failed: {read:?}");
        assert!(started.elapsed() < Duration::from_secs(300), "requests stalled behind the log");
    }
    let _ = child.kill();
    let _ = child.wait();
}
