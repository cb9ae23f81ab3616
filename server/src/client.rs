//! The client of the commands run against a server (`--server URL`):
//! `models`, `checkpoint`, `backup` and `import`. HTTP/1.1 through ureq,
//! `http://` or `https://` (rustls, with the webpki roots, or only the
//! certificates of `--ca-cert` for a private CA or a self-signed proxy).

use std::path::Path;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Longest a command waits for one answer: checkpoints and backups of a
/// large state take a while.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest answer read.
const ANSWER_BYTES_MAX: u64 = 64 << 20;

pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Remote {
    /// A client of the server at `url` (`http://host:port` or
    /// `https://host:port`, optionally with a path prefix); `ca_cert`: a PEM
    /// file whose certificates are the only trusted roots.
    pub fn new(url: &str, token: Option<String>, ca_cert: Option<&Path>) -> Result<Remote, String> {
        let base = url.trim_end_matches('/');
        let scheme_ok = base.starts_with("http://") || base.starts_with("https://");
        let host = base.split_once("://").map_or("", |(_, rest)| rest);
        if !scheme_ok || host.is_empty() {
            return Err(format!("--server {url:?}: expected http://host:port or https://host:port"));
        }
        let mut tls = TlsConfig::builder();
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|err| format!("--ca-cert {}: {err}", path.display()))?;
            let mut certs: Vec<Certificate<'static>> = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(PemItem::Certificate(cert)) => certs.push(cert),
                    Ok(_) => {}
                    Err(err) => return Err(format!("--ca-cert {}: {err}", path.display())),
                }
            }
            if certs.is_empty() {
                return Err(format!("--ca-cert {}: no PEM certificate in it", path.display()));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(ANSWER_TIMEOUT))
            .tls_config(tls.build())
            .build()
            .new_agent();
        Ok(Remote { base: base.to_string(), token, agent })
    }

    /// Sends a request; the JSON answer of a 2xx, or the problem's detail.
    pub fn call(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<serde_json::Value, String> {
        let url = format!("{}{path}", self.base);
        let fail = |err: ureq::Error| format!("{method} {url}: {err}");
        let request = ureq::http::Request::builder().method(method).uri(&url).header("content-type", content_type);
        let request = match &self.token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        };
        let request = request.body(body.to_vec()).map_err(|err| format!("{method} {url}: {err}"))?;
        let mut response = self.agent.run(request).map_err(fail)?;
        let status = response.status().as_u16();
        let bytes = response.body_mut().with_config().limit(ANSWER_BYTES_MAX).read_to_vec().map_err(fail)?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if (200..300).contains(&status) {
            Ok(json)
        } else {
            let detail =
                json["detail"].as_str().map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), str::to_string);
            Err(format!("{method} {path}: HTTP {status}: {detail}"))
        }
    }
}

/// `segment` percent-encoded for a URL path (an id may hold `/`, `?`, …).
pub fn path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
