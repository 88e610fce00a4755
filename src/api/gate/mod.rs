//! The gate every request passes: request id, credential, rate limit, body limit,
//! idempotency, the error envelope for every failure, and one log line.
//!
//! These are cross-cutting rules of the contract (docs/api.md §1–6), so they live in one middleware
//! around the whole route tree rather than in each handler, and a handler can rely on them.

use std::sync::Arc;
use std::time::Instant;

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;

use super::error::ApiError;
use super::headers;
use super::routes;
use crate::domain::auth::{self, CredentialKind, Principal};
use crate::domain::{api_keys, idempotency};
use crate::ids::new_id;
use crate::secrets;
use crate::state::AppState;

mod checks;
use checks::{
    bearer_token, client_ip, credential_in_query, idempotency_slot, replay, shutting_down,
    too_many, unread, unreadable_header, wants_afresh, wants_rehearsal, with_rate_headers,
};

/// The routes that take bulk uploads, with their own (larger) body limit.
const IMPORT_PATHS: &[&str] = &[
    "/api/v1/leads/import",
    "/api/v1/companies/import",
    "/api/v1/deals/import",
    // The web app's upload of the same files.
    "/leads/import",
];
/// Raw inbound mail, attachments included, has its own (larger) limit.
const INBOUND_PATH: &str = "/api/v1/inbound/email";

/// The middleware.
pub struct Gate {
    state: Arc<AppState>,
}

impl Gate {
    /// A gate over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<E: Endpoint> Middleware<E> for Gate {
    type Output = GateEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        GateEndpoint {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The gate around an endpoint.
pub struct GateEndpoint<E> {
    inner: E,
    state: Arc<AppState>,
}

/// What the log line needs to know about a handled request.
#[derive(Default)]
struct Outcome {
    credential: Option<String>,
}

impl<E: Endpoint> Endpoint for GateEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id =
            headers::request_id(req.headers().get("x-request-id").map(HeaderValue::as_bytes))
                .unwrap_or_else(|| new_id("req"));
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (mut resp, outcome) =
            super::error::in_request(request_id.clone(), self.handle(req)).await;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        let operation = resp.data::<OperationId>().map(|op| op.0);
        let (elapsed, status) = (started.elapsed(), resp.status().as_u16());
        count(
            &method,
            operation.unwrap_or_else(|| kind_of_page(&path)),
            status,
            elapsed,
        );
        let route = operation.map_or_else(|| path.clone(), str::to_string);
        tracing::info!(
            target: "clozup::http",
            method = %method,
            path = %path,
            route = %route,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = %request_id,
            credential = outcome.credential.as_deref().unwrap_or("-"),
            "request"
        );
        Ok(resp)
    }
}

/// Counts a request in the metrics (`crate::metrics`).
fn count(method: &poem::http::Method, route: &'static str, status: u16, took: std::time::Duration) {
    let m = crate::metrics::get();
    let method = crate::metrics::method_label(method);
    m.requests
        .get_or_create(&crate::metrics::RequestLabels {
            method,
            route,
            status,
        })
        .inc();
    m.request_seconds
        .get_or_create(&crate::metrics::RouteLabels { method, route })
        .observe(took.as_secs_f64());
}

/// The metrics' route for a request that is not an API operation: a few kinds, never the path
/// itself (ids in paths would make a series per record).
fn kind_of_page(path: &str) -> &'static str {
    match path {
        "/health" => "health",
        MCP_PATH => "mcp",
        _ if path.starts_with("/api/v1/public/") => "docs",
        _ if is_api(path) => "unmatched",
        _ => "web",
    }
}

fn is_api(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// The web app's sign-in form (`crate::web`), rate-limited here like the API's login.
const WEB_SIGN_IN: &str = "/login";

/// The MCP server's path. The gate authenticates and rate-limits its requests as the API's;
/// each tool call is then an API request of its own, made in-process ([`InProcess`]).
pub const MCP_PATH: &str = "/mcp";

/// Marks a request the server makes of itself for an MCP tool call: the `/mcp` request that
/// carried the call was counted against the rate limit already, so the call is not counted
/// again. Only the server can set it (it is request data, not a header).
#[derive(Debug, Clone, Copy)]
pub struct InProcess;

impl<E: Endpoint> GateEndpoint<E> {
    async fn handle(&self, mut req: Request) -> (Response, Outcome) {
        let mut outcome = Outcome::default();
        let Some(_admitted) = self.state.shutdown.admit() else {
            return (self.turn_away(req).await, outcome);
        };
        let mcp = req.uri().path() == MCP_PATH;
        if !mcp && !is_api(req.uri().path()) {
            // A password typed into the web app's sign-in form is limited per address as a
            // request without a credential is (the API's login is one), so it cannot be
            // guessed faster there.
            if req.method() == Method::POST && req.uri().path() == WEB_SIGN_IN {
                let key = format!("ip:{}", client_ip(&req));
                if let Some(d) = self.state.limiter.check(&key, Instant::now()) {
                    if !d.allowed {
                        return (too_many(d).render(), outcome);
                    }
                }
            }
            // The web app's forms and the unsubscribe page: their bodies are held to the
            // same limit as the API's.
            if req.method() != Method::GET && req.method() != Method::HEAD {
                if let Err(err) = self.buffer_body(&mut req).await {
                    return (err.render(), outcome);
                }
            }
            return (self.call_inner(req).await, outcome);
        }
        let state = &self.state;

        let principal = match self.authenticate(&req).await {
            Ok(None) if mcp => {
                return (
                    unread(ApiError::unauthorized().render(), None, &req),
                    outcome,
                )
            }
            Ok(p) => p,
            Err(e) => return (unread(e.render(), None, &req), outcome),
        };
        outcome.credential = principal.as_ref().map(|p| p.credential_id.clone());

        let caller = match &principal {
            Some(p) => p.credential_id.clone(),
            None => format!("ip:{}", client_ip(&req)),
        };
        let decision = if req.data::<InProcess>().is_some() {
            None
        } else {
            state.limiter.check(&caller, Instant::now())
        };
        if let Some(d) = decision.filter(|d| !d.allowed) {
            return (unread(too_many(d).render(), decision, &req), outcome);
        }

        if let Some(err) = credential_in_query(&req).or_else(|| unreadable_header(&req)) {
            return (unread(err.render(), decision, &req), outcome);
        }
        let principal = match (mcp, principal) {
            (true, Some(p)) => {
                // The MCP server reads the JSON-RPC message (within the body limit); the API's
                // rules apply to each tool call it makes.
                if let Err(err) = self.buffer_body(&mut req).await {
                    return (with_rate_headers(err.render(), decision), outcome);
                }
                self.touch_key(&p);
                req.set_data(p);
                let resp = self.call_inner(req).await;
                return (with_rate_headers(resp, decision), outcome);
            }
            (_, principal) => principal,
        };
        if let Some(p) = &principal {
            let path = req.uri().path().trim_start_matches("/api/v1");
            if let Some(scope) = auth::minimum_scope(req.method().as_str(), path) {
                if let Err(e) = p.require(scope) {
                    return (unread(ApiError::from(e).render(), decision, &req), outcome);
                }
            }
        }
        if let Err(err) = routes::check_query(
            req.method().as_str(),
            req.uri().path().trim_start_matches("/api/v1"),
            req.uri().query().unwrap_or_default(),
            principal.is_some(),
        ) {
            return (unread(err.render(), decision, &req), outcome);
        }
        let rehearsal = match wants_rehearsal(&req) {
            Ok(r) => r,
            Err(err) => return (unread(err.render(), decision, &req), outcome),
        };
        if let Err(err) = self.buffer_body(&mut req).await {
            return (with_rate_headers(err.render(), decision), outcome);
        }

        // A dry run is neither answered from nor kept for an `Idempotency-Key`.
        let slot = match idempotency_slot(&req, principal.as_ref()) {
            Ok(slot) => slot.filter(|_| !rehearsal),
            Err(err) => return (with_rate_headers(err.render(), decision), outcome),
        };
        if let Some(p) = principal {
            self.touch_key(&p);
            req.set_data(p);
        }
        // `Cache-Control: no-cache` matters to reads, which are neither dry runs nor idempotent.
        let resp = match slot {
            None if rehearsal => {
                let mut resp = crate::db::rehearse(self.call_inner(req)).await;
                resp.headers_mut()
                    .insert("dry-run", HeaderValue::from_static("true"));
                resp
            }
            None if wants_afresh(&req) => crate::db::memo::afresh(self.call_inner(req)).await,
            None => self.call_inner(req).await,
            Some(slot) => self.call_idempotent(req, slot).await,
        };
        (with_rate_headers(resp, decision), outcome)
    }

    /// The answer to a request that arrives while the server shuts down: 503 with
    /// `Retry-After`, once its body is read (closing a connection with unread data in it would
    /// reset it, and the client would never see the answer).
    async fn turn_away(&self, req: Request) -> Response {
        let limit = self.body_limit(&req);
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            req.into_body().into_bytes_limit(limit),
        )
        .await;
        shutting_down().render()
    }

    /// Runs the route tree and renders any error as the envelope.
    async fn call_inner(&self, req: Request) -> Response {
        let path = req.uri().path().to_string();
        let mut resp = match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            // An answer a handler gave as an error (the web app's "sign in first").
            Err(err) if err.is_from_response() => err.into_response(),
            Err(err) => {
                let op = err.data::<OperationId>().copied();
                let mut resp = ApiError::from_poem(&err).render();
                if let Some(op) = op {
                    resp.set_data(op);
                }
                resp
            }
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
            let methods = path.strip_prefix("/api/v1").and_then(routes::allowed);
            if let Some(v) = methods.and_then(|m| HeaderValue::from_str(m).ok()) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp
    }

    /// Resolves the bearer token, if any, from the credentials recently resolved when nothing
    /// can have changed it since (see [`crate::credentials`]), else from the database.
    /// `Ok(None)` is "no valid credential": the operation's security scheme then answers 401
    /// (public operations don't care).
    async fn authenticate(&self, req: &Request) -> Result<Option<Principal>, ApiError> {
        let mut given = req.headers().get_all(header::AUTHORIZATION).iter();
        let Some(raw) = given.next() else {
            return Ok(None);
        };
        if given.next().is_some() {
            // Which one would count is a guess a proxy and this server could make differently.
            return Err(ApiError::bad_request(
                "send one Authorization header: this request has several",
            )
            .detail("Authorization", "is given more than once"));
        }
        Ok(self.state.principal_of(bearer_token(raw)).await?)
    }

    /// Marks an API key used, at most once a minute, without holding up the request.
    fn touch_key(&self, p: &Principal) {
        let now = self.state.clock.now_ms();
        if p.kind != CredentialKind::ApiKey || !api_keys::needs_touch(p.last_used_at, now) {
            return;
        }
        let db = self.state.db.clone();
        let id = p.credential_id.clone();
        tokio::spawn(async move {
            if let Err(e) = db.write(move |tx| api_keys::touch(tx, &id, now)).await {
                tracing::warn!("could not record API key use: {e}");
            }
        });
    }

    /// Reads the whole body up to the limit, so an oversized body is a 413 before any handler
    /// runs, whether or not it declared its length.
    ///
    /// A body still arriving when the shutdown's grace period ends is given up with 503: the
    /// request cannot finish, and nothing of it was done.
    async fn buffer_body(&self, req: &mut Request) -> Result<(), ApiError> {
        let limit = self.body_limit(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::payload_too_large(limit));
        }
        if matches!(
            *req.method(),
            Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
        ) && declared.unwrap_or(0) == 0
            && !req.headers().contains_key(header::TRANSFER_ENCODING)
        {
            return Ok(());
        }
        let read = req.take_body().into_bytes_limit(limit);
        let bytes = tokio::select! {
            read = read => read.map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => ApiError::payload_too_large(limit),
                other => ApiError::bad_request(format!("cannot read the request body: {other}")),
            })?,
            _ = self.state.shutdown.cut() => return Err(shutting_down()),
        };
        req.set_body(bytes);
        Ok(())
    }

    /// The largest body the request's route takes.
    fn body_limit(&self, req: &Request) -> usize {
        let config = &self.state.config;
        match req.uri().path() {
            INBOUND_PATH => config.inbound_limit,
            path if IMPORT_PATHS.contains(&path) => config.import_limit,
            _ => config.body_limit,
        }
    }

    /// Runs a POST that carries an `Idempotency-Key`: replays a finished one, refuses a reused
    /// key with another body or one still running, and records the first response.
    async fn call_idempotent(&self, mut req: Request, slot: idempotency::Slot) -> Response {
        let state = &self.state;
        let body = req.take_body().into_bytes().await.unwrap_or_default();
        let mut fingerprint_input = format!(
            "{} {}\n",
            req.method(),
            req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
        )
        .into_bytes();
        fingerprint_input.extend_from_slice(&body);
        let fingerprint = secrets::sha256_hex(&fingerprint_input).into_bytes();
        req.set_body(body);

        let begin = {
            let slot = slot.clone();
            let instance = state.instance_id.clone();
            let now = state.clock.now_ms();
            state
                .db
                .write(move |tx| idempotency::begin(tx, &slot, &fingerprint, &instance, now))
                .await
        };
        // Only the caller can open what is stored for it: the slot is its credential's, and
        // the answer is sealed with that credential's token.
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(bearer_token)
            .unwrap_or_default()
            .to_string();
        let context = slot.context();
        match begin {
            Err(e) => return ApiError::from(e).render(),
            Ok(idempotency::Begin::Proceed) => {}
            Ok(idempotency::Begin::Replay(mut stored)) => {
                if secrets::is_sealed(&stored.body) {
                    match secrets::open(&token, &context, &stored.body) {
                        Some(body) => stored.body = body,
                        None => {
                            return ApiError::internal("a stored answer did not open").render()
                        }
                    }
                }
                return replay(stored);
            }
            Ok(idempotency::Begin::Mismatch) => {
                return ApiError::invalid(
                    "Idempotency-Key",
                    "was already used with a different request; use a new key",
                )
                .render()
            }
            Ok(idempotency::Begin::InFlight) => {
                return ApiError::conflict(
                    "a request with this Idempotency-Key is still in flight; retry when it has finished",
                )
                .render()
            }
            Ok(idempotency::Begin::Interrupted) => {
                return ApiError::conflict(
                    "a request with this Idempotency-Key was cut off by a server restart, so its \
                     outcome is unknown; check the resource, then retry with a new key",
                )
                .render()
            }
        }

        let mut resp = self.call_inner(req).await;
        let status = resp.status();
        let db = state.db.clone();
        let result = if status.is_server_error() {
            // Nothing the client can rely on happened: let it retry with the same key.
            db.write(move |tx| idempotency::release(tx, &slot)).await
        } else {
            let body = resp
                .take_body()
                .into_bytes()
                .await
                .unwrap_or_default()
                .to_vec();
            let stored = idempotency::StoredResponse {
                status: status.as_u16(),
                headers: [header::CONTENT_TYPE, header::ETAG, header::LOCATION]
                    .iter()
                    .filter_map(|name| {
                        let value = resp.headers().get(name)?.to_str().ok()?;
                        Some((name.as_str().to_string(), value.to_string()))
                    })
                    .collect(),
                body: secrets::seal(&token, &context, &body),
            };
            resp.set_body(body);
            db.write(move |tx| idempotency::finish(tx, &slot, &stored))
                .await
        };
        if let Err(e) = result {
            tracing::error!("could not record an idempotent response: {e}");
        }
        resp
    }
}
