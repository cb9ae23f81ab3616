//! A minimal HTTP/1.1 client for the admin commands run against a server
//! (`recwal models … --server http://host:port`): one request per
//! connection, `http://` only (put TLS in front of the server).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Remote {
    host: String,
    token: Option<String>,
}

impl Remote {
    pub fn new(url: &str, token: Option<String>) -> Result<Remote, String> {
        let host = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--server {url:?}: only http://host:port is supported"))?
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(format!("--server {url:?}: expected http://host:port"));
        }
        Ok(Remote { host: host.to_string(), token })
    }

    /// Sends a request; the JSON answer of a 2xx, or the problem's detail.
    pub fn call(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<serde_json::Value, String> {
        let fail = |err: std::io::Error| format!("{}: {err}", self.host);
        let mut stream = TcpStream::connect(&self.host).map_err(fail)?;
        stream.set_read_timeout(Some(Duration::from_secs(600))).map_err(fail)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(fail)?;
        stream.write_all(body).map_err(fail)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(fail)?;
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .ok_or_else(|| format!("{}: not an HTTP answer", self.host))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let status: u16 = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        let body = &raw[split + 4..];
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            return Err(format!("{}: chunked answers are not supported by this client", self.host));
        }
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        if (200..300).contains(&status) {
            Ok(json)
        } else {
            let detail =
                json["detail"].as_str().map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_string);
            Err(format!("{method} {path}: HTTP {status}: {detail}"))
        }
    }
}
