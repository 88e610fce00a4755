//! The gate's small readings of a request (its bearer token, client address, dry-run flag,
//! headers it cannot read) and the answers it gives without calling the route (a replay, a
//! refusal sent before the body was read, the rate headers).

use poem::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use poem::{Request, Response};

use super::super::error::{ApiError, ErrorCode};
use super::super::headers;
use crate::domain::auth::{self, Principal};
use crate::domain::idempotency;
use crate::ratelimit::Decision;

/// Query parameter names that would carry a credential; refused so keys never land in logs.
const CREDENTIAL_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "access_token",
    "token",
    "key",
    "authorization",
];

/// Whether the request asks for whole-organization answers computed afresh rather than
/// remembered from an earlier request at the same commit (`Cache-Control: no-cache`, as
/// HTTP's request directive means; see `db::memo`).
pub(super) fn wants_afresh(req: &Request) -> bool {
    req.headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
}

/// How long a client told the server is shutting down should wait: about what a restart takes.
const RESTART_RETRY_SECS: &str = "5";

/// A refusal sent before the request's body was read, with the rate headers. A body left
/// unread stays in the connection, so the connection is closed after the answer
/// (`Connection: close`): a client that reused it would find its next request garbled or
/// reset.
pub(super) fn unread(resp: Response, decision: Option<Decision>, req: &Request) -> Response {
    let mut resp = with_rate_headers(resp, decision);
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Whether the request asks for a dry run (`dry_run=true`, declared on every write; on any
/// other operation the query check has refused it already).
pub(super) fn wants_rehearsal(req: &Request) -> Result<bool, ApiError> {
    let mut rehearsal = false;
    for pair in req.uri().query().unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "dry_run" {
            rehearsal = match value {
                "true" => true,
                "false" => false,
                _ => return Err(ApiError::invalid("dry_run", "must be true or false")),
            };
        }
    }
    Ok(rehearsal)
}

/// 503 for a request the server will not serve because it is shutting down; the connection is
/// closed after it, so the client's retry finds the next server.
pub(super) fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        format!("the server is shutting down; nothing was done, retry in {RESTART_RETRY_SECS} s"),
    )
    .header(header::RETRY_AFTER, RESTART_RETRY_SECS)
    .header(header::CONNECTION, "close")
}

/// The token of an `Authorization: Bearer <token>` value ("" for anything else).
pub(super) fn bearer_token(value: &HeaderValue) -> &str {
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("")
}

/// A stored first response, sent again with `Idempotent-Replayed: true`.
pub(super) fn replay(stored: idempotency::StoredResponse) -> Response {
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK))
        .body(stored.body);
    for (name, value) in stored.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// The idempotency slot of a POST with an `Idempotency-Key` from an authenticated caller.
pub(super) fn idempotency_slot(
    req: &Request,
    principal: Option<&Principal>,
) -> Result<Option<idempotency::Slot>, ApiError> {
    let Some(raw) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = headers::idempotency_key(raw.as_bytes())?;
    match (req.method(), principal) {
        (&Method::POST, Some(p)) => Ok(Some(idempotency::Slot {
            org_id: p.org_id.clone(),
            credential_id: p.credential_id.clone(),
            key,
        })),
        _ => Ok(None),
    }
}

/// Headers the API gives meaning to (docs/api.md §5); the framework would take one it cannot read
/// as text for an absent one, so a garbled `If-Match` would skip the version check.
const MEANINGFUL_HEADERS: &[&str] = &["if-match", "last-event-id"];

/// Refuses a meaningful header whose value is not visible ASCII.
pub(super) fn unreadable_header(req: &Request) -> Option<ApiError> {
    MEANINGFUL_HEADERS.iter().find_map(|name| {
        let unreadable = req
            .headers()
            .get_all(*name)
            .iter()
            .any(|v| v.to_str().is_err());
        unreadable.then(|| {
            ApiError::bad_request(format!("the {name} header must be visible ASCII text"))
                .detail(*name, "is not visible ASCII text")
        })
    })
}

/// Refuses a credential sent in the query string: URLs end up in logs and browser histories.
pub(super) fn credential_in_query(req: &Request) -> Option<ApiError> {
    let query = req.uri().query()?;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = name.to_ascii_lowercase();
        let looks_like_key =
            value.starts_with(auth::API_KEY_PREFIX) || value.starts_with(auth::SESSION_PREFIX);
        if CREDENTIAL_PARAMS.contains(&name.as_str()) || looks_like_key {
            return Some(
                ApiError::bad_request(
                    "credentials are not accepted in the query string; send Authorization: Bearer <key>",
                )
                .detail(name, "must not carry a credential"),
            );
        }
    }
    None
}

pub(super) fn client_ip(req: &Request) -> String {
    match req.remote_addr().as_socket_addr() {
        Some(addr) => addr.ip().to_string(),
        None => "unknown".into(),
    }
}

/// The answer to a caller over its rate limit: 429 with `Retry-After`.
pub(super) fn too_many(d: Decision) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        format!("rate limit exceeded; retry in {} s", d.retry_after_secs),
    )
    .header(header::RETRY_AFTER, d.retry_after_secs.to_string())
}

/// Adds `RateLimit-*` headers (docs/api.md §6) when rate limiting is on.
pub(super) fn with_rate_headers(mut resp: Response, decision: Option<Decision>) -> Response {
    if let Some(d) = decision {
        let h = resp.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", d.limit.to_string()),
            ("ratelimit-remaining", d.remaining.to_string()),
            ("ratelimit-reset", d.reset_secs.to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
    }
    resp
}
