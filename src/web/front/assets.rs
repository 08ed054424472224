//! The front's static assets, compiled into the binary (no CDN, no file on the server's
//! disk): the stylesheet and the icon. Pages link them with a hash of their content in
//! the query, so a browser may keep them for a year and still gets a new one after an
//! upgrade. One small script, for the upload form's progress bar and drag and drop;
//! every page works without it.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::OnceLock;

const CSS: &str = include_str!("../assets/style.css");
const ICON: &str = include_str!("../assets/icon.svg");
const UPLOAD_JS: &str = include_str!("../assets/upload.js");

/// (name, type, content).
const ASSETS: [(&str, &str, &str); 3] = [
    ("style.css", "text/css; charset=utf-8", CSS),
    ("icon.svg", "image/svg+xml", ICON),
    ("upload.js", "text/javascript; charset=utf-8", UPLOAD_JS),
];

pub fn upload_js_href() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    versioned("upload.js", UPLOAD_JS, &CELL)
}

fn versioned(name: &str, content: &str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| {
        let h = blake3::hash(content.as_bytes()).to_hex();
        format!("/static/{name}?v={}", &h[..16])
    })
}

pub fn css_href() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    versioned("style.css", CSS, &CELL)
}

pub fn icon_href() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    versioned("icon.svg", ICON, &CELL)
}

/// `GET /static/{name}`. An unknown name is a bare 404 (the security middleware adds the
/// headers, and `no-store` since it sets no cache header).
pub async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, kind, content)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        let mut r = Response::new(Body::from("not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let mut r = Response::new(Body::from(*content));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    r
}
