//! The web app (`ui/`, built by `build.rs` and embedded in the binary) and the journey gallery.
//!
//! Routing: files of the app are served by path (`/assets/…` with a long cache); any other GET
//! that a browser makes for a page (`Accept: text/html`) outside the API gets `index.html`, so
//! client-side routes such as `/journeys/abandoned-cart` survive a reload. API paths (`/v1/…`,
//! `/t/…`, `/u/…`, `/confirm/…`, `/metrics`, `/healthz`) and non-browser clients keep the JSON
//! 404. When the app was not built (no npm at build time), pages get a short explanation.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::error::ApiError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Whether the web app is embedded in this binary.
pub fn built() -> bool {
    asset("index.html").is_some()
}

fn asset(path: &str) -> Option<&'static [u8]> {
    embedded::UI_ASSETS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, bytes)| *bytes)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn is_api_path(path: &str) -> bool {
    path == "/v1"
        || ["/v1/", "/t/", "/u/", "/confirm/"]
            .iter()
            .any(|p| path.starts_with(p))
        || matches!(path, "/metrics" | "/healthz")
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn with_headers(body: &'static [u8], ctype: &'static str, cache: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// The app's pages load only their own scripts and talk only to this server; styles may be
/// inline (React style attributes), and images come from anywhere (email previews, which render
/// in a sandboxed frame without scripts, inherit this policy).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src * data:; font-src * data:; connect-src 'self'; frame-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'";

fn page(body: &'static [u8]) -> Response {
    let mut r = with_headers(body, "text/html; charset=utf-8", "no-cache");
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Waymark</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2937}code{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}</style>
</head><body>
<h1>Waymark</h1>
<p>The server is running, but this binary was built without its web app (npm was not found,
or <code>WAYMARK_SKIP_UI_BUILD</code> was set, when it was compiled).</p>
<p>To get the app, install Node.js (20 or later) with npm and build again:</p>
<pre><code>cargo build --release -p waymark</code></pre>
<p>or build the app by hand and then the binary:</p>
<pre><code>cd ui &amp;&amp; npm install &amp;&amp; npm run build &amp;&amp; cd ..
WAYMARK_SKIP_UI_BUILD=1 cargo build --release -p waymark</code></pre>
<p>The API works without it: see <a href="/v1/openapi.json">/v1/openapi.json</a>.</p>
</body></html>"#;

/// The router's fallback: app files, the app's page for client routes, else the JSON 404.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if (method == Method::GET || method == Method::HEAD) && !is_api_path(path) {
        let rel = path.trim_start_matches('/');
        if !rel.is_empty()
            && rel != "index.html"
            && let Some(bytes) = asset(rel)
        {
            let cache = if rel.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            return with_headers(bytes, content_type(rel), cache);
        }
        if wants_html(&headers) || rel == "index.html" {
            return page(asset("index.html").unwrap_or(NOT_BUILT.as_bytes()));
        }
    }
    ApiError::not_found("no such endpoint; see /v1/openapi.json").into_response()
}

/// The gallery: every example journey shipped with this build (`examples/journeys/`), parsed.
pub fn gallery() -> Vec<Value> {
    embedded::JOURNEY_EXAMPLES
        .iter()
        .filter_map(|(file, text)| {
            let document: Value = if file.ends_with(".json") {
                serde_json::from_str(text).ok()?
            } else {
                serde_yaml_ng::from_str(text).ok()?
            };
            Some(json!({
                "file": file,
                "id": document.get("id").cloned().unwrap_or(Value::Null),
                "name": document.get("name").cloned().unwrap_or(Value::Null),
                "description": document.get("description").cloned().unwrap_or(Value::Null),
                "document": document,
            }))
        })
        .collect()
}

/// The gallery of example journeys (`GET /v1/journey-templates`); each entry is an object
/// with `file`, `id`, `name`, `description` and the parsed `document`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Gallery {
    pub templates: Vec<Value>,
}

/// `GET /v1/journey-templates`: the gallery of example journeys.
pub async fn journey_templates() -> Json<Gallery> {
    Json(Gallery {
        templates: gallery(),
    })
}

/// How the app was obtained when this binary was built (for logs and `/v1/session`).
pub fn build_status() -> &'static str {
    embedded::UI_BUILD
}
