//! Swagger UI at `/docs`: the vendored `swagger-ui-dist` files
//! (server/assets/swagger-ui/, see its README) embedded in the binary, so
//! the page works offline and loads nothing from elsewhere.
//!
//! Not part of the API (the OpenAPI document does not list these routes):
//! static files with no data, served without the token. The page reads
//! `/openapi.json` and calls the API with the bearer token the user gives it
//! (server/assets/swagger-ui/recwal-docs.js).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Where the UI is served.
pub const PREFIX: &str = "/docs";

/// One embedded file: its name under `/docs/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/index.html"),
    },
    Asset {
        name: "recwal-docs.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/recwal-docs.js"),
    },
    Asset {
        name: "recwal-docs.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/recwal-docs.css"),
    },
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui.css"),
    },
    Asset {
        name: "favicon-32x32.png",
        content_type: "image/png",
        bytes: include_bytes!("../assets/swagger-ui/favicon-32x32.png"),
    },
    Asset {
        name: "LICENSE",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/LICENSE"),
    },
    Asset {
        name: "swagger-ui-bundle.js.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
    },
];

/// Scripts and styles from this origin only; Swagger UI sets inline styles
/// and shows data: images; its API calls go to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                                       script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn answer(asset: &'static Asset) -> Response {
    let mut response = (StatusCode::OK, asset.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The files change only with the binary: revalidate rather than cache
    // across an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    response
}

/// The routes of `/docs` (every path is `/docs` or starts with `/docs/`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route(PREFIX, get(|| async { Redirect::permanent("/docs/") }));
    for asset in ASSETS {
        router = router.route(&format!("{PREFIX}/{}", asset.name), get(move || async move { answer(asset) }));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_and_the_page_names_only_embedded_files() {
        let page = std::str::from_utf8(ASSETS[0].bytes).unwrap_or_default();
        for asset in ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.name);
        }
        // Every /docs/ file the page loads is one of ours, and nothing is
        // loaded from another origin.
        for reference in page.split(['"', '\'']).filter(|part| part.starts_with("/docs/")) {
            let name = &reference["/docs/".len()..];
            assert!(ASSETS.iter().any(|asset| asset.name == name), "the page loads {reference}, not embedded");
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "the page loads from elsewhere");
    }

    #[test]
    fn every_file_is_under_the_prefix_the_server_lists_as_not_api() {
        assert!(crate::server::is_not_api(PREFIX));
        for asset in ASSETS {
            assert!(crate::server::is_not_api(&format!("{PREFIX}/{}", asset.name)), "{}", asset.name);
        }
    }
}
