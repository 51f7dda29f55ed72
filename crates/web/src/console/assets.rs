//! The console's static files, compiled into the binary and served under names that carry
//! their content's hash, so a browser may keep them for a year and never uses a stale one. Each
//! is referenced with its Subresource Integrity hash. htmx is the npm package's own file, kept
//! byte for byte (a test compares it with the registry's copy).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::LazyLock;

/// The htmx release embedded (npm `htmx.org`, pinned in tests/browser/package.json too).
pub const HTMX_VERSION: &str = "2.0.11";
/// htmx's own file, as the npm registry publishes it.
pub const HTMX: &[u8] = include_bytes!("../../static/vendor/htmx-2.0.11.min.js");
const CSS: &[u8] = include_bytes!("../../static/console.css");
const JS: &[u8] = include_bytes!("../../static/console.js");
const ICON: &[u8] = include_bytes!("../../static/favicon.svg");

/// Where each file is served and its integrity hash, for the pages to name them by.
pub struct Assets {
    pub css: String,
    pub css_sri: String,
    pub js: String,
    pub js_sri: String,
    pub htmx: String,
    pub htmx_sri: String,
    pub icon: String,
    files: HashMap<String, (&'static [u8], &'static str)>,
}

/// `sha384-...`, as the `integrity` attribute takes it.
pub fn sri(bytes: &[u8]) -> String {
    format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes)))
}

/// A name carrying the first 16 hex digits of the content's SHA-256.
fn hashed(stem: &str, ext: &str, bytes: &[u8]) -> String {
    let h: String = sha2::Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{stem}.{h}.{ext}")
}

pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let css = hashed("console", "css", CSS);
    let js = hashed("console", "js", JS);
    let htmx = hashed(&format!("htmx-{HTMX_VERSION}"), "min.js", HTMX);
    let mut files = HashMap::new();
    files.insert(css.clone(), (CSS, "text/css; charset=utf-8"));
    files.insert(js.clone(), (JS, "text/javascript; charset=utf-8"));
    files.insert(htmx.clone(), (HTMX, "text/javascript; charset=utf-8"));
    let icon = hashed("favicon", "svg", ICON);
    files.insert(icon.clone(), (ICON, "image/svg+xml"));
    Assets {
        css: format!("/static/{css}"),
        css_sri: sri(CSS),
        js: format!("/static/{js}"),
        js_sri: sri(JS),
        htmx: format!("/static/{htmx}"),
        htmx_sri: sri(HTMX),
        icon: format!("/static/{icon}"),
        files,
    }
});

/// `GET /static/{file}`: a file by its hashed name, cached for a year; anything else 404.
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.files.get(&file) {
        Some((bytes, kind)) => {
            let mut r = (*bytes).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
            r
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_content_and_integrity_is_sha384() {
        let a = &*ASSETS;
        assert!(a.css.starts_with("/static/console.") && a.css.ends_with(".css"), "{}", a.css);
        assert!(a.htmx.starts_with("/static/htmx-2.0.11.") && a.htmx.ends_with(".min.js"), "{}", a.htmx);
        assert_ne!(hashed("x", "css", b"a"), hashed("x", "css", b"b"));
        // RFC 4648 base64 of SHA-384("abc"), the FIPS 180-2 test vector.
        assert_eq!(sri(b"abc"), "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn");
        assert_eq!(HTMX.len(), 52_182, "htmx.org 2.0.11's dist/htmx.min.js");
    }
}
