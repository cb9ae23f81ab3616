//! Starts the real `recwal` binary on an ephemeral loopback port and talks
//! HTTP/1.1 to it over a plain socket (so tests control every byte sent).
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub token: Option<String>,
}

pub fn runtime_path() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.onnxruntime/lib/libonnxruntime.so"),
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/models/{name}.onnx"))).unwrap()
}

impl Server {
    /// Starts `recwal serve` on `dir` with extra flags; waits until ready.
    pub fn start(dir: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        let server = Server::spawn(dir, token, extra);
        server.wait_ready();
        server
    }

    /// Starts `recwal serve`; returns once it listens (it may still replay).
    pub fn spawn(dir: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_recwal"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("ORT_DYLIB_PATH", runtime_path())
            .env_remove("RECWAL_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server { child, addr, token: token.map(str::to_string) }
    }

    pub fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(response) = self.try_call("GET", "/readyz", &[], b"") {
                if response.status == 200 {
                    return;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the server never became ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A request with the server's token (if any).
    pub fn call(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let auth = self.token.as_ref().map(|token| format!("Bearer {token}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        self.try_call(method, path, &headers, body).unwrap()
    }

    pub fn json(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let response = self.call(method, path, body.as_bytes());
        (response.status, response.json())
    }

    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        request(&self.addr, method, path, headers, body)
    }

    pub fn lsn(&self) -> u64 {
        let (status, wal) = self.json("GET", "/admin/wal", "");
        assert_eq!(status, 200, "{wal}");
        wal["lsn_appended"].as_u64().unwrap()
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A problem+json answer with this status.
    pub fn assert_problem(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        assert_eq!(self.content_type, "application/problem+json", "{what}: {}", self.text());
        let body = self.json();
        assert_eq!(body["status"].as_u64(), Some(u64::from(status)), "{what}");
        assert!(body["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{what}: no detail");
    }
}

pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {:?}", String::from_utf8_lossy(&raw))))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut content_type = String::new();
    let mut chunked = false;
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-type: ") {
            content_type = value.trim().to_string();
        }
        if lower.starts_with("transfer-encoding: chunked") {
            chunked = true;
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response { status, content_type, body })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
    out
}

/// The `recwal` binary under test: `RECWAL_TEST_BIN` (to run the tests
/// against another build), or this build's.
pub fn binary() -> PathBuf {
    std::env::var_os("RECWAL_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_recwal")), PathBuf::from)
}

/// Runs `recwal ARGS` as a user would, without the environment that would
/// point it elsewhere (`RECWAL_DATA_DIR`, `RECWAL_SERVER`, `RECWAL_TOKEN`,
/// `RECWAL_CA_CERT`), stdin closed; killed and reported if it still runs
/// after `limit` (a `serve` that was not refused, a hang).
pub fn run_cli(args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("RECWAL_DATA_DIR")
        .env_remove("RECWAL_SERVER")
        .env_remove("RECWAL_TOKEN")
        .env_remove("RECWAL_CA_CERT")
        .env("ORT_DYLIB_PATH", runtime_path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "`recwal {}` still ran after {limit:?}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The stdout of a command that succeeded (else a failure with both streams).
pub fn succeeds(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The stderr of a command that was refused (else a failure with both streams).
pub fn refused(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "not refused: {}\n{stderr}", String::from_utf8_lossy(&output.stdout));
    stderr
}
