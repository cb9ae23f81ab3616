//! Swagger UI at `/docs`: served from the binary, without the token (static
//! files, no data), loading nothing from elsewhere; not part of the API
//! (absent from /openapi.json), which still needs the token.
#![allow(clippy::unwrap_used)]

mod support;

use support::Server;

const TOKEN: &str = "docs-ui-token-0123456789";

#[test]
fn swagger_ui_is_served_at_docs_without_the_token_and_the_api_still_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(TOKEN), &[]);
    let get = |path: &str| server.try_call("GET", path, &[], b"").unwrap();

    let redirect = get("/docs");
    assert_eq!(redirect.status, 308, "{}", redirect.text());
    let page = get("/docs/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    let html = page.text();
    assert!(!html.contains("http://") && !html.contains("https://"), "the page loads from elsewhere");
    // Every file the page names is served, byte for byte the vendored one.
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/swagger-ui");
    let mut named = 0;
    for reference in html.split('"').filter(|part| part.starts_with("/docs/")) {
        let name = &reference["/docs/".len()..];
        let answer = get(reference);
        assert_eq!(answer.status, 200, "{reference}");
        assert_eq!(answer.body, std::fs::read(assets.join(name)).unwrap(), "{reference}");
        named += 1;
    }
    assert!(named >= 4, "the page names its script, styles and icon: {html}");
    let bundle = get("/docs/swagger-ui-bundle.js");
    assert!(bundle.content_type.starts_with("text/javascript"), "{}", bundle.content_type);
    assert!(String::from_utf8_lossy(&bundle.body).contains("SwaggerUIBundle"));
    // The start-up script reads this server's document.
    assert!(get("/docs/recwal-docs.js").text().contains("\"/openapi.json\""));
    // Not a prefix that serves anything: an unknown file is no route (and
    // needs the token like every unknown path).
    assert_eq!(get("/docs/secret").status, 401);

    // The API: the document and every route but the probes need the token.
    assert_eq!(get("/openapi.json").status, 401);
    assert_eq!(get("/v1/popular").status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let document = server.try_call("GET", "/openapi.json", &[("authorization", &bearer)], b"").unwrap();
    assert_eq!(document.status, 200);
    let document = document.json();
    for path in document["paths"].as_object().unwrap().keys() {
        assert!(!path.starts_with("/docs"), "{path}: the UI's files are not part of the API");
    }
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[test]
fn the_docs_page_may_not_be_framed_or_load_foreign_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    use std::io::{Read, Write};
    write!(stream, "GET /docs/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert!(head.contains("frame-ancestors 'none'"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
}
