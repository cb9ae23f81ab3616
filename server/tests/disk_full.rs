//! A full disk, end to end, on a real small file system: `recwal serve`
//! with its data dir on a `tmpfs` volume (root only: where mounting fails
//! the test says so and returns; the engine's `tests/disk_full.rs` covers the
//! same conditions on the simulated disk's out-of-space fault).
//!
//! Ingest until the volume is full → 503 + `Retry-After` + problem+json
//! "disk full", `/readyz` 503 with the reason, `recwal_disk_full 1`; a
//! checkpoint is 503 too. Free the space → ready again and writes resume
//! without a restart, no temp file left; after a SIGKILL and a restart every
//! acknowledged event is there, and no refused one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use recwal_wal::testing::Tmpfs;
use support::Server;

/// A raw HTTP/1.1 exchange: (status, lower-cased head, body).
fn exchange(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn temp_files(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            temp_files(&path, found);
        } else if path.to_string_lossy().ends_with(".tmp") {
            found.push(path.display().to_string());
        }
    }
}

/// One batch of events, each its own item, with ids.
fn batch(from: usize, count: usize) -> (String, Vec<(String, String)>) {
    let events: Vec<(String, String)> =
        (from..from + count).map(|n| (format!("u{}", n % 23), format!("i{n}"))).collect();
    let json: Vec<String> = events
        .iter()
        .map(|(user, item)| format!(r#"{{"user":"{user}","item":"{item}","kind":"view","event_id":"e-{item}"}}"#))
        .collect();
    (format!(r#"{{"events":[{}]}}"#, json.join(",")), events)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

type Acked = BTreeMap<String, BTreeSet<String>>;

/// A 16 MiB tmpfs and a `serve.toml` with 256 KiB segments, or `None`
/// (said) where mounting is not allowed.
fn volume_and_config() -> Option<(Tmpfs, tempfile::TempDir, String)> {
    let volume = match Tmpfs::mount(16 << 20) {
        Ok(volume) => volume,
        Err(why) => {
            println!("SKIPPED on this machine ({why}); tests/disk_full.rs covers it on the simulated disk");
            return None;
        }
    };
    println!("ran on a real 16 MiB tmpfs");
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("serve.toml");
    std::fs::write(&config, "[engine.wal]\nsync = \"always\"\nsegment_bytes = 262144\n").unwrap();
    let config = config.to_str().unwrap().to_string();
    Some((volume, config_dir, config))
}

/// Ingests batches of 200 until one is refused; returns the refusal's head and body.
fn ingest_until_refused(server: &Server, acked: &mut Acked, next: &mut usize) -> (String, String) {
    loop {
        let (body, events) = batch(*next, 200);
        *next += 200;
        let (status, head, answer) = exchange(&server.addr, "POST", "/v1/events", &body);
        match status {
            200 => {
                for (user, item) in events {
                    acked.entry(user).or_default().insert(item);
                }
            }
            503 => return (head, answer),
            other => panic!("ingest answered {other}: {answer}"),
        }
        assert!(*next < 200_000, "the volume never filled");
    }
}

/// Ingests `count` events from `from` and records them, expecting a 200.
fn ingest_acked(server: &Server, acked: &mut Acked, from: usize, count: usize) {
    let (body, events) = batch(from, count);
    let (status, _, answer) = exchange(&server.addr, "POST", "/v1/events", &body);
    assert_eq!(status, 200, "{answer}");
    for (user, item) in events {
        acked.entry(user).or_default().insert(item);
    }
}

/// Every acknowledged event is there, and no refused one.
fn assert_exactly(server: &Server, acked: &Acked) {
    for (user, items) in acked {
        let (status, _, answer) = exchange(&server.addr, "GET", &format!("/v1/users/{user}/interactions"), "");
        assert_eq!(status, 200, "{answer}");
        let found: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let found: BTreeSet<String> = found["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|interaction| interaction["item"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(&found, items, "user {user}: acknowledged events lost, or refused ones invented");
    }
}

#[test]
fn a_full_disk_answers_503_until_space_is_freed_and_loses_nothing() {
    let Some((volume, _config_dir, config)) = volume_and_config() else { return };
    let data = volume.path().join("data");
    let server = Server::start(&data, None, &["--config", &config]);
    volume.fill("filler").unwrap();

    let mut acked = Acked::new();
    let mut next = 0;
    let refused = ingest_until_refused(&server, &mut acked, &mut next);
    let (head, answer) = refused;
    assert!(head.contains("content-type: application/problem+json"), "{head}");
    assert!(head.contains("retry-after: "), "{head}");
    let problem: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(problem["title"], "disk full", "{answer}");
    assert!(problem["detail"].as_str().unwrap().contains("disk is full"), "{answer}");

    // Still refused the same way (not "stopped accepting writes").
    let (status, _, answer) = exchange(&server.addr, "POST", "/v1/events", &batch(next, 200).0);
    next += 200;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("disk full"), "{answer}");
    let (status, _, ready) = exchange(&server.addr, "GET", "/readyz", "");
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("disk full"), "{ready}");
    let (_, _, metrics) = exchange(&server.addr, "GET", "/metrics", "");
    assert!(metrics.contains("recwal_disk_full 1") && metrics.contains("recwal_ready 0"), "{metrics}");
    let (status, head, answer) = exchange(&server.addr, "POST", "/admin/checkpoint", "");
    assert_eq!(status, 503, "{answer}");
    assert!(head.contains("retry-after: ") && answer.contains("disk full"), "{head}{answer}");

    // Space back: ready again without a restart and without a write.
    std::fs::remove_file(volume.path().join("filler")).unwrap();
    wait_for("/readyz is 200 again", || exchange(&server.addr, "GET", "/readyz", "").0 == 200);
    let (_, _, metrics) = exchange(&server.addr, "GET", "/metrics", "");
    assert!(metrics.contains("recwal_disk_full 0") && metrics.contains("recwal_ready 1"), "{metrics}");
    for _ in 0..5 {
        ingest_acked(&server, &mut acked, next, 200);
        next += 200;
    }
    let (status, _, answer) = exchange(&server.addr, "POST", "/admin/checkpoint", "");
    assert_eq!(status, 200, "{answer}");
    let mut left = Vec::new();
    temp_files(&data, &mut left);
    assert_eq!(left, Vec::<String>::new(), "temp files left behind");

    server.kill();
    let server = Server::start(&data, None, &["--config", &config]);
    assert_exactly(&server, &acked);
}

/// SIGTERM while the disk is full: the shutdown snapshot cannot be written,
/// but the log holds every acknowledged event, so the server still closes
/// it and exits 0; the next start (space freed) has them all.
#[test]
fn a_shutdown_on_a_full_disk_closes_the_log_and_exits_cleanly() {
    let Some((volume, _config_dir, config)) = volume_and_config() else { return };
    let data = volume.path().join("data");
    let server = Server::start(&data, None, &["--config", &config]);
    volume.fill("filler").unwrap();
    let mut acked = Acked::new();
    ingest_until_refused(&server, &mut acked, &mut 0);
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?} on a full disk");
    std::fs::remove_file(volume.path().join("filler")).unwrap();
    let server = Server::start(&data, None, &["--config", &config]);
    assert_exactly(&server, &acked);
}

/// A snapshot that does not fit fails the checkpoint (503 `disk full`) but
/// not writes: the log still has room in its segment, so the server stays
/// ready, shows the condition (`/readyz`'s `disk_full`, `recwal_disk_full
/// 1`) and keeps acknowledging events; once space is back the checkpoint
/// succeeds and the condition clears.
#[test]
fn a_snapshot_that_does_not_fit_leaves_the_server_ready_and_writable() {
    let Some((volume, _config_dir, config)) = volume_and_config() else { return };
    let data = volume.path().join("data");
    let server = Server::start(&data, None, &["--config", &config]);
    let mut acked = Acked::new();
    for from in [0, 200] {
        ingest_acked(&server, &mut acked, from, 200);
    }
    volume.fill("filler").unwrap();
    let (status, head, answer) = exchange(&server.addr, "POST", "/admin/checkpoint", "");
    assert_eq!(status, 503, "{answer}");
    assert!(head.contains("retry-after: ") && answer.contains("disk full"), "{head}{answer}");
    let (status, _, ready) = exchange(&server.addr, "GET", "/readyz", "");
    assert_eq!(status, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["disk_full"]["what"], "snapshot", "{ready}");
    let (_, _, metrics) = exchange(&server.addr, "GET", "/metrics", "");
    assert!(metrics.contains("recwal_disk_full 1") && metrics.contains("recwal_ready 1"), "{metrics}");
    ingest_acked(&server, &mut acked, 400, 20);
    std::fs::remove_file(volume.path().join("filler")).unwrap();
    let (status, _, answer) = exchange(&server.addr, "POST", "/admin/checkpoint", "");
    assert_eq!(status, 200, "{answer}");
    wait_for("the condition clears", || {
        let (_, _, metrics) = exchange(&server.addr, "GET", "/metrics", "");
        metrics.contains("recwal_disk_full 0")
    });
    server.kill();
    let server = Server::start(&data, None, &["--config", &config]);
    assert_exactly(&server, &acked);
}

/// A model upload on a full disk is refused like any write for lack of
/// space (503 `disk full`, `Retry-After`), leaves no temp file, and
/// succeeds once space is back.
#[test]
fn a_model_upload_on_a_full_disk_answers_503_and_succeeds_with_space() {
    let Some((volume, _config_dir, config)) = volume_and_config() else { return };
    let data = volume.path().join("data");
    let server = Server::start(&data, None, &["--config", &config]);
    volume.fill("filler").unwrap();
    let model = support::fixture("linear_v1");
    let upload = || {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST /admin/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             content-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
            model.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&model).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        String::from_utf8_lossy(&raw).to_ascii_lowercase()
    };
    let refused = upload();
    assert!(refused.starts_with("http/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: ") && refused.contains("disk full"), "{refused}");
    let mut left = Vec::new();
    temp_files(&data, &mut left);
    assert_eq!(left, Vec::<String>::new(), "temp files left behind");
    std::fs::remove_file(volume.path().join("filler")).unwrap();
    let added = upload();
    assert!(added.starts_with("http/1.1 201"), "{added}");
}
