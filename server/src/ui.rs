//! The dashboard at `/ui`: static HTML, CSS and JavaScript modules embedded
//! in the binary (server/assets/ui/), so it needs no build step, no CDN and
//! no network beyond the server itself. The assets hold no data and are
//! served without the token; the page sends the token the operator types
//! with every API call it makes, and the API refuses those without it as it
//! refuses any other client's (docs/SERVER.md, "Dashboard").

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::problem::Problem;

/// One embedded file: its name under `/ui/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset { name: $name, content_type: $content_type, bytes: include_bytes!(concat!("../assets/ui/", $name)) }
    };
}

/// Every file of the dashboard; anything else under `/ui/` is a 404.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("icon.svg", SVG),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("prom.js", JS),
    asset!("chart.js", JS),
    asset!("pages.js", JS),
    asset!("explorer.js", JS),
];

/// Where the page may load from and talk to: this server only. Styles and
/// scripts come from files (no inline code), images from files or `data:`.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/ui`, `/ui/` and `/ui/<asset>`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        // Relative, so that a proxy serving the API under a prefix keeps it.
        .route("/ui", get(|| async { Redirect::permanent("ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route("/ui/{*path}", get(asset))
}

async fn asset(uri: Uri) -> Response {
    match uri.path().strip_prefix("/ui/") {
        Some(name) => serve(name),
        None => serve(""),
    }
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "no such route",
            format!("/ui/{name} is not a file of the dashboard (open /ui/)"),
        )
        .into_response();
    };
    let mut response = (StatusCode::OK, asset.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Revalidated on each load, so an upgraded server's page is never mixed
    // with an older module from the cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_unique_name_and_is_not_empty() {
        for (at, asset) in ASSETS.iter().enumerate() {
            assert!(!asset.bytes.is_empty(), "{}", asset.name);
            assert!(ASSETS[..at].iter().all(|other| other.name != asset.name), "{} twice", asset.name);
        }
    }

    #[test]
    fn every_file_of_the_assets_directory_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/ui");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries.filter_map(Result::ok).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|asset| asset.name.to_string()).collect();
        served.sort();
        assert_eq!(files, served, "a file in {} that ASSETS does not list, or the reverse", dir.display());
    }
}
