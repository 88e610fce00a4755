//! The app's stylesheet and scripts, embedded in the binary and served under content-hashed
//! URLs: a browser caches each for a year and fetches it again only when it changes.

use std::sync::OnceLock;

use poem::http::{header, StatusCode};
use poem::web::Path;
use poem::Response;
use sha2::{Digest, Sha256};

/// Every asset: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/web/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/web/app.js"),
    ),
    (
        "sortable.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/web/sortable.min.js"),
    ),
];

/// Each asset's content hash (12 hex digits), computed once.
fn hashes() -> &'static [String] {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, bytes)| hex::encode(&Sha256::digest(bytes)[..6]))
            .collect()
    })
}

/// The URL of asset `name`, with its content hash.
pub fn url(name: &str) -> String {
    let i = ASSETS.iter().position(|(n, _, _)| *n == name).unwrap_or(0);
    format!("/assets/{name}?v={}", hashes()[i])
}

/// `GET /assets/{name}`.
#[poem::handler]
pub fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => Response::builder()
            .content_type(*content_type)
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .body(*bytes),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}
