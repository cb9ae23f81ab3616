//! The network edge over real sockets (src/edge.rs): header, idle and body
//! timeouts, the connection cap under a low descriptor limit, problem+json
//! for what hyper refuses below the router, and token rules at start.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{runtime_path, Response, Server};

/// Short edge timeouts, so that the tests wait little.
const FAST: [&str; 6] =
    ["--header-read-timeout-ms", "800", "--idle-timeout-ms", "1500", "--body-read-timeout-ms", "1000"];

/// Sends `bytes` (ignoring a refusal to take them all: the server may close
/// early), then reads until the server closes; the responses, parsed.
fn exchange(addr: &str, bytes: &[u8]) -> (Vec<Response>, Duration) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let _ = stream.write_all(bytes);
    (read_responses(&mut stream), started.elapsed())
}

fn read_responses(stream: &mut TcpStream) -> Vec<Response> {
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 65536];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(err) => panic!("reading the answer: {err} (after {:?})", String::from_utf8_lossy(&raw)),
        }
    }
    parse_responses(&raw)
}

/// HTTP/1.1 responses with a content-length, back to back.
fn parse_responses(mut raw: &[u8]) -> Vec<Response> {
    let mut responses = Vec::new();
    while !raw.is_empty() {
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status: u16 = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap();
        let mut content_type = String::new();
        let mut length = 0;
        for line in head.lines().skip(1) {
            let (name, value) = line.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-type" => content_type = value.trim().to_string(),
                "content-length" => length = value.trim().parse().unwrap(),
                _ => {}
            }
        }
        let body = raw[split + 4..split + 4 + length].to_vec();
        raw = &raw[split + 4 + length..];
        responses.push(Response { status, content_type, body });
    }
    responses
}

fn get(addr: &str, path: &str) -> Response {
    let (mut responses, _) =
        exchange(addr, format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes());
    assert_eq!(responses.len(), 1);
    responses.remove(0)
}

fn metric(addr: &str, name: &str) -> u64 {
    let text = get(addr, "/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[test]
fn requests_hyper_refuses_below_the_router_are_answered_with_problem_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), 400),
        ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 505),
        ("header without a colon", b"GET /healthz HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n".to_vec(), 400),
        ("100 kB URL", [b"GET /".as_slice(), &[b'a'; 100_000], b" HTTP/1.1\r\nhost: x\r\n\r\n"].concat(), 414),
        (
            "1 MB header",
            [b"GET / HTTP/1.1\r\nhost: x\r\nx: ".as_slice(), &[b'a'; 1_000_000], b"\r\n\r\n"].concat(),
            431,
        ),
    ];
    for (what, bytes, status) in cases {
        let (responses, _) = exchange(&server.addr, &bytes);
        assert_eq!(responses.len(), 1, "{what}");
        responses[0].assert_problem(status, what);
    }
    // On a keep-alive connection, after a good request.
    let (responses, _) = exchange(&server.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGARBAGE / HTTP/9\r\n\r\n");
    assert_eq!(responses.len(), 2, "keep-alive");
    assert_eq!(responses[0].status, 200);
    responses[1].assert_problem(400, "garbage after a keep-alive request");
    // Too many header fields.
    let many: String = (0..150).map(|at| format!("x-{at}: y\r\n")).collect();
    let (responses, _) = exchange(&server.addr, format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes());
    responses[0].assert_problem(431, "150 header fields");
    // 413 (the router's) stays a problem too.
    let body = [b"{\"events\": \"".as_slice(), &[b'a'; 1_100_000], b"\"}"].concat();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let (responses, _) = exchange(&server.addr, &[head.as_bytes(), &body].concat());
    responses[0].assert_problem(413, "body over body_limit_bytes");
    assert!(metric(&server.addr, "recwal_http_bad_request_heads_total") >= 6);
}

#[test]
fn a_slowloris_request_head_is_cut_with_408_at_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &FAST);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
    let started = Instant::now();
    // A byte every 150 ms, never finishing the head.
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut answer = Vec::new();
    for byte in head {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut chunk = [0_u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the slow head was never cut");
    }
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stream.read_to_end(&mut answer);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(700), "cut after {elapsed:?}, before the 800 ms timeout");
    assert!(elapsed < Duration::from_secs(5), "cut only after {elapsed:?}");
    let responses = parse_responses(&answer);
    assert_eq!(responses.len(), 1);
    responses[0].assert_problem(408, "slow head");
    assert!(responses[0].text().contains("header_read_timeout_ms"));
    // A head that never starts is an idle connection: closed without a word.
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() >= Duration::from_millis(1400), "idle cut after {:?}", started.elapsed());
    assert!(metric(&server.addr, "recwal_http_connection_timeouts_total{kind=\"header\"}") >= 1);
    assert!(metric(&server.addr, "recwal_http_connection_timeouts_total{kind=\"idle\"}") >= 1);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &FAST);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let responses = read_responses(&mut stream);
    let elapsed = started.elapsed();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 200);
    assert!(elapsed >= Duration::from_millis(1400), "closed after {elapsed:?}, before the 1500 ms idle timeout");
    assert!(elapsed < Duration::from_secs(8), "closed only after {elapsed:?}");
}

#[test]
fn a_slow_body_is_cut_with_408_at_the_body_read_timeout_and_frees_its_slot_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // One slot, and a request timeout far beyond the body timeout.
    let server = Server::start(
        dir.path(),
        None,
        &[&FAST[..], &["--concurrency", "1", "--request-timeout-ms", "60000"]].concat(),
    );
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(
        b"POST /v1/event HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"user\"",
    )
    .unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // The slow body holds the only slot...
    get(&server.addr, "/v1/popular").assert_problem(503, "slot held by the slow body");
    // ...which trickles on, a byte every 100 ms, and is cut at 1 s.
    slow.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        let _ = slow.write_all(b" ");
        let mut chunk = [0_u8; 4096];
        match slow.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if answer.windows(4).any(|window| window == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    let elapsed = started.elapsed();
    let responses = parse_responses(&answer);
    assert_eq!(responses.len(), 1, "{:?}", String::from_utf8_lossy(&answer));
    responses[0].assert_problem(408, "slow body");
    assert!(responses[0].text().contains("body_read_timeout_ms"));
    assert!(elapsed >= Duration::from_millis(900), "cut after {elapsed:?}, before the 1000 ms timeout");
    assert!(elapsed < Duration::from_secs(8), "cut only after {elapsed:?}");
    // The slot is free now, long before the 60 s request timeout.
    assert_eq!(get(&server.addr, "/v1/popular").status, 200);
    // Nothing was written.
    assert_eq!(server.lsn(), 0);
    assert!(metric(&server.addr, "recwal_http_connection_timeouts_total{kind=\"body\"}") >= 1);
}

#[test]
fn a_body_that_arrives_slowly_but_in_time_does_not_count_against_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The body takes ~1.2 s of a 3 s body timeout; the handler has 500 ms.
    let server = Server::start(dir.path(), None, &["--body-read-timeout-ms", "3000", "--request-timeout-ms", "500"]);
    let body = br#"{"user":"u1","item":"i1","kind":"view"}"#;
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/event HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    for part in body.chunks(4) {
        std::thread::sleep(Duration::from_millis(120));
        stream.write_all(part).unwrap();
    }
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let responses = read_responses(&mut stream);
    assert_eq!(responses[0].status, 200, "{}", responses[0].text());
    assert_eq!(server.lsn(), 1);
}

/// `recwal serve` under `ulimit -n <descriptors>` (soft and hard).
fn spawn_with_descriptor_limit(dir: &Path, descriptors: u32) -> Server {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {descriptors} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
        .arg(dir)
        .env("ORT_DYLIB_PATH", runtime_path())
        .env_remove("RECWAL_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line {line:?}")).to_string();
    let server = Server { child, addr, token: None };
    server.wait_ready();
    server
}

#[test]
fn healthz_answers_within_a_second_with_more_idle_and_half_open_connections_than_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_with_descriptor_limit(dir.path(), 256);
    let mut held = Vec::new();
    for at in 0..400 {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        if at % 4 == 0 {
            // Half-open: a head begun, never finished.
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n");
        }
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    for path in ["/healthz", "/readyz", "/healthz"] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).unwrap();
        let responses = read_responses(&mut stream);
        assert_eq!(responses[0].status, 200, "{path}");
        assert!(started.elapsed() < Duration::from_secs(1), "{path} took {:?}", started.elapsed());
    }
    let cap = metric(&server.addr, "recwal_http_connections_max");
    assert!(cap > 0 && cap <= 256, "cap {cap} under 256 descriptors");
    assert!(metric(&server.addr, "recwal_http_connections_open") <= cap + 1);
    assert!(metric(&server.addr, "recwal_http_connections_evicted_total") >= 400 - cap);
    // The engine still has its descriptors: a write and a checkpoint work.
    let (status, body) =
        server.json("POST", "/v1/event?durability=always", r#"{"user":"u1","item":"i1","kind":"view"}"#);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.json("POST", "/admin/checkpoint", "");
    assert_eq!(status, 200, "{body}");
    drop(held);
}

fn refused_at_start(token: &str, listen: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--listen", listen, "--token", token, "--data-dir"])
        .arg(&data)
        .env_remove("RECWAL_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal exits at once; a server that accepted the token runs on.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("token {token:?} on {listen} was accepted: the server started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "token {token:?} on {listen}: exit {status}");
    assert!(!data.exists(), "a refused start created the data dir");
    stderr
}

#[test]
fn whitespace_only_token_is_refused_at_start() {
    for listen in ["127.0.0.1:0", "0.0.0.0:0"] {
        let stderr = refused_at_start("                    ", listen);
        assert!(stderr.contains("token") && stderr.contains("whitespace"), "{stderr}");
    }
}

#[test]
fn short_padded_or_unsendable_tokens_are_refused_at_start() {
    for (token, says) in [
        ("0123456789", "at least 16"),
        (" a-long-enough-secret ", "leading or trailing whitespace"),
        ("a-long enough-secret", "visible ASCII"),
    ] {
        let stderr = refused_at_start(token, "0.0.0.0:0");
        assert!(stderr.contains("token") && stderr.contains(says), "{token:?}: {stderr}");
    }
}

#[test]
fn print_config_shows_the_edge_settings() {
    let output = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["serve", "--print-config", "--idle-timeout-ms", "1234"])
        .env("RECWAL_MAX_CONNECTIONS", "77")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for line in [
        "header_read_timeout_ms = 10000",
        "idle_timeout_ms = 1234",
        "body_read_timeout_ms = 30000",
        "max_connections = 77",
        "fd_reserve = 128",
    ] {
        assert!(text.contains(line), "{line} missing from {text}");
    }
}

/// Whether the server closed `stream` (EOF or reset) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut chunk = [0_u8; 1024];
    match stream.read(&mut chunk) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn at_the_cap_the_longest_idle_connection_is_evicted_and_requests_in_flight_never_fill_it() {
    let dir = tempfile::tempdir().unwrap();
    // A cap of 2 lowers the concurrency to 1 (requests in flight stay under
    // the cap).
    let server = Server::start(dir.path(), None, &["--max-connections", "2", "--body-read-timeout-ms", "3000"]);
    // Two idle connections, the first older; a third evicts the first.
    let mut oldest = TcpStream::connect(&server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut newer = TcpStream::connect(&server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(&server.addr, "/healthz").status, 200);
    assert!(closed_within(&mut oldest, Duration::from_secs(2)), "the longest-idle connection was not evicted");
    // A request in flight (a slow body) holds the only concurrency slot.
    let slow_head =
        b"POST /v1/event HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
    let mut busy = TcpStream::connect(&server.addr).unwrap();
    busy.write_all(slow_head).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A second slow body evicts `newer`, idle the longest, and is refused at
    // once (503, Retry-After): its connection stays evictable...
    let mut second = TcpStream::connect(&server.addr).unwrap();
    second.write_all(slow_head).unwrap();
    second.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !(raw.windows(4).any(|window| window == b"\r\n\r\n") && raw.ends_with(b"}")) {
        let n = second.read(&mut chunk).expect("the second slow body must be answered at once");
        assert!(n > 0, "closed without an answer");
        raw.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 503 ") && text.to_ascii_lowercase().contains("\r\nretry-after: "), "{text}");
    assert!(text.contains("concurrency limit"), "{text}");
    assert!(closed_within(&mut newer, Duration::from_secs(2)), "the idle connection was not evicted");
    // ...so probes still get in, evicting it.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(&server.addr, path).status, 200, "{path}");
    }
    // The slow body is cut (408) at the body timeout.
    busy.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    read_responses(&mut busy)[0].assert_problem(408, "slow body at the cap");
    assert_eq!(get(&server.addr, "/healthz").status, 200);
    assert!(metric(&server.addr, "recwal_http_connections_evicted_total") >= 2);
}

/// A body declared (Content-Length) over the route's limit is refused with
/// 413 at once, before it is read: with `Expect: 100-continue` the server
/// never asks for it, and a client that sends only the head is not kept
/// waiting for the body timeout. The model route has its own, larger limit.
#[test]
fn a_declared_body_over_the_limit_is_refused_with_413_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[&FAST[..], &["--request-timeout-ms", "60000"]].concat());
    for (path, length, expect) in [
        ("/v1/events", 5_000_000u64, true),
        ("/v1/events", (1 << 20) + 1, false),
        ("/v1/event", 5_000_000, false),
        ("/admin/models", (256 << 20) + 1, true),
    ] {
        let expect = if expect { "expect: 100-continue\r\n" } else { "" };
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{expect}content-length: {length}\r\n\r\n"
        );
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0_u8; 4096];
        while !(answer.windows(4).any(|window| window == b"\r\n\r\n") && answer.ends_with(b"}")) {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(err) => {
                    panic!("{path} {length}: no answer within 700 ms ({err}): {:?}", String::from_utf8_lossy(&answer))
                }
            }
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(!text.contains("100 Continue"), "{path}: asked for the body: {text}");
        let responses = parse_responses(&answer);
        responses[0].assert_problem(413, path);
        assert!(responses[0].text().contains(&format!("the body is {length} bytes")), "{}", responses[0].text());
    }
    // Within the limit, the same route still answers as before.
    let body = r#"{"user":"u","item":"i","kind":"view"}"#;
    let request = format!(
        "POST /v1/event HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (responses, _) = exchange(&server.addr, request.as_bytes());
    assert_eq!(responses[0].status, 200, "{}", responses[0].text());
}

/// Under a descriptor limit that puts the connection cap below
/// `server.concurrency`, requests in flight stay under the cap (the
/// concurrency is lowered at start): as many clients as the cap allows
/// sending heads and trickling their bodies cannot hold every connection,
/// and `/healthz` and `/readyz` still get in at once.
#[test]
fn slow_bodies_on_every_connection_cannot_lock_probes_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_with_descriptor_limit(dir.path(), 256);
    let cap = metric(&server.addr, "recwal_http_connections_max") as usize;
    assert!(cap < 512, "the test needs a cap under the default concurrency, got {cap}");
    let mut slow = Vec::new();
    for _ in 0..cap + 16 {
        let Ok(mut stream) = TcpStream::connect(&server.addr) else { continue };
        let head =
            "POST /v1/event HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{";
        let _ = stream.write_all(head.as_bytes());
        slow.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    for path in ["/healthz", "/readyz"] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).unwrap();
        let responses = read_responses(&mut stream);
        assert_eq!(responses[0].status, 200, "{path}: {}", responses[0].text());
        assert!(started.elapsed() < Duration::from_secs(1), "{path} took {:?}", started.elapsed());
    }
    drop(slow);
}
