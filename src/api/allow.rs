//! The `Allow` header of a 405 (RFC 9110 §15.5.6): the methods the OpenAPI document declares
//! for the path, so a client that guessed the wrong method learns the right ones.

use std::sync::OnceLock;

/// One path of the document: its segments (`None` for a `{parameter}`) and its methods.
struct Route {
    segments: Vec<Option<String>>,
    methods: String,
}

fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(&super::spec_json()).unwrap_or_default();
        let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) else {
            return Vec::new();
        };
        paths
            .iter()
            .map(|(path, ops)| {
                let mut methods: Vec<String> = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                // poem answers HEAD wherever it answers GET.
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                Route {
                    segments: split(path)
                        .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                        .collect(),
                    methods: methods.join(", "),
                }
            })
            .collect()
    })
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.trim_matches('/').split('/')
}

/// The methods `path` (relative to `/api/v1`) accepts, as an `Allow` value; `None` when no
/// path of the document matches. Where templates overlap (`/deals/at-risk` and
/// `/deals/{id}`), the one with the most literal segments wins, as in the router.
pub fn allowed(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = split(path).collect();
    routes()
        .iter()
        .filter(|r| {
            r.segments.len() == segments.len()
                && r.segments
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| match want {
                        Some(literal) => literal == got,
                        None => !got.is_empty(),
                    })
        })
        .max_by_key(|r| r.segments.iter().filter(|s| s.is_some()).count())
        .map(|r| r.methods.as_str())
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn literal_segments_win_and_unknown_paths_have_none() {
        assert_eq!(allowed("/deals/at-risk"), Some("GET, HEAD"));
        let by_id = allowed("/deals/deal_123").unwrap();
        for m in ["GET", "PATCH", "DELETE"] {
            assert!(by_id.contains(m), "{by_id}");
        }
        assert!(!by_id.contains("POST"), "{by_id}");
        assert_eq!(allowed("/no/such/route/here"), None);
    }
}
