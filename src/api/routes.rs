//! What the OpenAPI document says about a path before the router has matched it: the methods
//! it takes (the `Allow` header of a 405, RFC 9110 §15.5.6) and the query parameters each
//! operation defines (anything else is refused, docs/api.md: a misspelt filter must not silently
//! list everything, nor an unknown `dry_run` write for real).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::error::ApiError;

/// One path of the document: its segments (`None` for a `{parameter}`), its methods and their
/// operations.
struct Route {
    segments: Vec<Option<String>>,
    methods: String,
    operations: BTreeMap<String, Operation>,
}

/// What the gate needs to know of an operation.
struct Operation {
    /// The query parameters it defines.
    queries: Vec<String>,
    /// Whether it needs a credential (then a caller without one hears 401 first).
    secured: bool,
}

fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let spec: Value = serde_json::from_str(&super::spec_json()).unwrap_or_default();
        let Some(paths) = spec.get("paths").and_then(Value::as_object) else {
            return Vec::new();
        };
        paths
            .iter()
            .map(|(path, ops)| {
                let ops = ops.as_object().cloned().unwrap_or_default();
                let operations: BTreeMap<String, Operation> = ops
                    .iter()
                    .map(|(method, op)| {
                        let queries = op["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|p| p["in"] == "query")
                            .filter_map(|p| p["name"].as_str().map(str::to_string))
                            .collect();
                        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
                        (method.to_ascii_uppercase(), Operation { queries, secured })
                    })
                    .collect();
                let mut methods: Vec<String> = operations.keys().cloned().collect();
                // poem answers HEAD wherever it answers GET.
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                Route {
                    segments: split(path)
                        .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                        .collect(),
                    methods: methods.join(", "),
                    operations,
                }
            })
            .collect()
    })
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.trim_matches('/').split('/')
}

/// The document's path that `path` (relative to `/api/v1`) falls under. Where templates
/// overlap (`/deals/at-risk` and `/deals/{id}`), the one with the most literal segments wins,
/// as in the router.
fn route(path: &str) -> Option<&'static Route> {
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
}

/// The methods `path` (relative to `/api/v1`) accepts, as an `Allow` value; `None` when no
/// path of the document matches.
pub fn allowed(path: &str) -> Option<&'static str> {
    route(path).map(|r| r.methods.as_str())
}

/// Refuses (422, each named, with the closest defined name when one is close) the query
/// parameters that the operation `method path` does not define. A path or method the
/// document lacks passes, and so does a secured operation called without a credential: the
/// router and the handler answer those (404, 405, 401).
pub fn check_query(
    method: &str,
    path: &str,
    query: &str,
    authenticated: bool,
) -> Result<(), ApiError> {
    if query.is_empty() {
        return Ok(());
    }
    let method = if method == "HEAD" { "GET" } else { method };
    let Some(operation) = route(path).and_then(|r| r.operations.get(method)) else {
        return Ok(());
    };
    if operation.secured && !authenticated {
        return Ok(());
    }
    let known = &operation.queries;
    let mut unknown: Vec<String> = Vec::new();
    for name in query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let raw = pair.split('=').next().unwrap_or_default();
        percent_decode(raw)
    }) {
        if !known.contains(&name) && !unknown.contains(&name) {
            unknown.push(name);
        }
    }
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let paged = known.iter().any(|k| k == "page");
    let issue = |name: &str| {
        let hint = if !paged && (name == "page" || name == "per_page") {
            // A list that is not paged answers every item at once (meta.total of them); taking
            // `page=2` silently would hand an agent page 1 again.
            "; this list is not paged: it always returns every item".to_string()
        } else {
            closest(name, known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default()
        };
        format!("is not a query parameter of {method} /api/v1{path}{hint}")
    };
    let mut err = ApiError::invalid(first.clone(), issue(first));
    for name in &unknown[1..] {
        err.message.push_str(&format!("; {name} {}", issue(name)));
        err = err.detail(name.clone(), issue(name));
    }
    Err(err)
}

/// The defined name closest to `name`, if it is close: the same but for case, the same words
/// in another order (`min_score` for `score_min`), or at most a third of its letters away
/// (two for short names).
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let words = |s: &str| {
        let mut w: Vec<String> = s.split('_').map(str::to_string).collect();
        w.sort();
        w
    };
    let budget = (name.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| {
            let distance = if words(&lower) == words(k) {
                1
            } else {
                edit_distance(&lower, k)
            };
            (distance, k)
        })
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance, with a swap of two neighbouring letters counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![(0..=b.len()).collect::<Vec<_>>()];
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (rows[i - 1][j] + 1)
                .min(row[j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(rows[i - 2][j - 2] + 1);
            }
        }
        rows.push(row);
    }
    rows[a.len()][b.len()]
}

/// A query key as sent: `%XX` escapes and `+` for a space decoded (invalid UTF-8 replaced).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn unknown_query_parameters_are_named_with_the_closest_known_one() {
        assert!(check_query("GET", "/leads", "status=new&page=2", true).is_ok());
        assert!(check_query("HEAD", "/leads", "status=new", true).is_ok());
        assert!(check_query("GET", "/no/such/route", "x=1", true).is_ok());
        assert!(
            check_query("GET", "/leads", "x=1", false).is_ok(),
            "401 comes first"
        );
        assert!(check_query("POST", "/auth/login", "x=1", false).is_err());
        let e = check_query("GET", "/leads", "stauts=new", true).unwrap_err();
        assert_eq!(e.details[0].field, "stauts");
        assert!(
            e.message.contains("did you mean `status`?"),
            "{}",
            e.message
        );
        let e = check_query("GET", "/leads", "Status=new&zzzzzz=1", true).unwrap_err();
        assert_eq!(e.details.len(), 2);
        assert!(
            e.message.contains("did you mean `status`?"),
            "{}",
            e.message
        );
        assert!(
            !e.details[1].issue.contains("did you mean"),
            "{}",
            e.details[1].issue
        );
        // `min_score` was at-risk's name before `score_min`.
        let e = check_query("GET", "/deals/at-risk", "min_score=10", true).unwrap_err();
        assert!(
            e.message.contains("did you mean `score_min`?"),
            "{}",
            e.message
        );
        // Decoded as the router decodes it.
        assert!(check_query("GET", "/leads", "st%61tus=new", true).is_ok());
    }

    #[test]
    fn edit_distance_counts_a_swap_as_one() {
        assert_eq!(edit_distance("stauts", "status"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
