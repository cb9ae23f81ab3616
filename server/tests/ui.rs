//! The dashboard at `/ui`: its assets are embedded and served without the
//! token (they hold no data), with the right content types and no reference
//! to anything outside the server, while every API route still needs the
//! token. The browser test (scripts/ui-check.sh) drives the pages themselves.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::collections::BTreeSet;

use support::{request, Response, Server};

const TOKEN: &str = "ui-test-token-0123456789";
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

fn get(server: &Server, path: &str) -> Response {
    request(&server.addr, "GET", path, &[], b"").unwrap()
}

/// The header `name` of a GET of `path` (lower-cased names).
fn header(server: &Server, path: &str, name: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n", server.addr);
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_string();
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

/// The content type an asset must be served with, by its extension.
fn expected_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        other => panic!("an asset of unexpected kind {other:?}: {path}"),
    }
}

/// Paths (relative to /ui/) that `text` refers to: `src="…"`, `href="…"`
/// and JavaScript `from "./…"` / `import("./…")`.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["src=\"", "href=\"", "from \"", "from '", "import(\"", "import('"] {
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let end = rest.find(['"', '\'']).unwrap_or(rest.len());
            let target = &rest[..end];
            // Fragments (#/models) and data: URLs are not assets.
            if !target.is_empty() && !target.starts_with('#') && !target.starts_with("data:") {
                found.push(target.trim_start_matches("./").to_string());
            }
        }
    }
    found
}

/// A line that only carries a comment (or is part of a block comment).
fn comment_line(line: &str) -> bool {
    let line = line.trim_start();
    ["//", "/*", "*", "<!--"].iter().any(|start| line.starts_with(start))
}

#[test]
fn the_dashboard_is_served_without_the_token_and_references_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(TOKEN), &[]);

    // /ui sends the browser to /ui/ (relative, so it works behind a prefix).
    let redirect = get(&server, "/ui");
    assert!(matches!(redirect.status, 301 | 308), "GET /ui: {} {}", redirect.status, redirect.text());
    assert_eq!(header(&server, "/ui", "location").as_deref(), Some("ui/"));

    let index = get(&server, "/ui/");
    assert_eq!(index.status, 200, "GET /ui/ without the token: {}", index.text());
    assert_eq!(index.content_type, "text/html; charset=utf-8");
    let csp = header(&server, "/ui/", "content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'"), "the page may load only from the server: {csp:?}");
    assert_eq!(header(&server, "/ui/", "x-content-type-options").as_deref(), Some("nosniff"));

    // Every asset the page reaches, following imports.
    let mut todo = vec![("index.html".to_string(), index.text())];
    let mut seen = BTreeSet::from(["index.html".to_string()]);
    let mut scripts = 0;
    while let Some((name, text)) = todo.pop() {
        for (number, line) in text.lines().enumerate() {
            // The SVG namespace is a name (createElementNS, xmlns), never fetched.
            let line = line.replace(SVG_NAMESPACE, "");
            if (line.contains("http://") || line.contains("https://")) && !comment_line(&line) {
                panic!("{name}:{}: an external URL outside a comment: {line}", number + 1);
            }
        }
        assert!(!text.contains("//cdn") && !text.contains("\"//"), "{name}: a protocol-relative URL");
        for reference in references(&text) {
            if !seen.insert(reference.clone()) {
                continue;
            }
            let path = format!("/ui/{reference}");
            let asset = get(&server, &path);
            assert_eq!(asset.status, 200, "GET {path} (referenced by {name}) without the token: {}", asset.text());
            assert_eq!(asset.content_type, expected_type(&reference), "{path}");
            scripts += usize::from(reference.ends_with(".js"));
            todo.push((reference, asset.text()));
        }
    }
    assert!(scripts >= 2, "the page and its modules: {seen:?}");

    // An unknown asset is a 404 problem, not the page, and never a way out
    // of the asset table.
    for path in ["/ui/no-such.js", "/ui/../admin/stats", "/ui/%2e%2e/admin/stats", "/ui/app.js/"] {
        let answer = get(&server, path);
        answer.assert_problem(404, path);
    }

    // The API behind it still needs the token; the probes do not.
    for path in ["/admin/stats", "/admin/wal", "/admin/models", "/metrics", "/v1/users/u/recommend"] {
        let answer = get(&server, path);
        answer.assert_problem(401, path);
    }
    let refused = request(&server.addr, "POST", "/admin/models/1/activate", &[], b"").unwrap();
    refused.assert_problem(401, "activate without the token");
    assert_eq!(get(&server, "/healthz").status, 200);
    assert_eq!(get(&server, "/readyz").status, 200);
    let auth = format!("Bearer {TOKEN}");
    let stats = request(&server.addr, "GET", "/admin/stats", &[("authorization", &auth)], b"").unwrap();
    assert_eq!(stats.status, 200, "{}", stats.text());
}

#[test]
fn admin_wal_states_the_logs_disk_use_and_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let (status, wal) = server.json("GET", "/admin/wal", "");
    assert_eq!(status, 200, "{wal}");
    let segment_bytes = wal["segment_bytes"].as_u64().unwrap_or_else(|| panic!("no segment_bytes: {wal}"));
    let segments_max = wal["segments_max"].as_u64().unwrap_or_else(|| panic!("no segments_max: {wal}"));
    let files = wal["segments_live"].as_u64().unwrap() + wal["segments_free"].as_u64().unwrap();
    assert_eq!(segment_bytes, 4 << 20, "the default segment size");
    assert_eq!(segments_max, 1024, "the default bound");
    assert_eq!(wal["disk_bytes"].as_u64(), Some(files * segment_bytes), "{wal}");
    assert_eq!(wal["disk_bytes_max"].as_u64(), Some(segments_max * segment_bytes), "{wal}");
}
