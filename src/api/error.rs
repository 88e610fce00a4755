//! The error envelope (docs/api.md §3): the one place where every failure, the framework's own
//! included, becomes `{"error": {code, message, details, request_id}}`.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::error::{
    AuthorizationError, ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ParseError, ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object};

use std::cell::RefCell;
use std::future::Future;

use crate::domain::{DomainError, FieldIssue};

tokio::task_local! {
    /// The request being handled, set by the gate around the whole request, so every error
    /// rendered on its behalf carries its id.
    static REQUEST: RequestScope;
}

/// What the error mapping needs to know about the request being handled.
struct RequestScope {
    id: String,
    /// Why the server's own parser refused a parameter, if it did: poem-openapi hands the error
    /// mapping only a `ParseParamError`, whose one field besides the name is text.
    refusal: RefCell<Option<Refusal>>,
}

/// Runs `f` as the handling of the request with id `id`.
pub async fn in_request<F: Future>(id: String, f: F) -> F::Output {
    let scope = RequestScope {
        id,
        refusal: RefCell::new(None),
    };
    REQUEST.scope(scope, f).await
}

/// The id of the request being handled (empty outside one).
pub fn current_request_id() -> String {
    REQUEST.try_with(|r| r.id.clone()).unwrap_or_default()
}

/// Why a parameter type of the server's refused a value, by kind, so the answer's status is
/// decided by type and not by reading poem-openapi's error text back.
#[derive(Debug)]
pub enum Refusal {
    /// Not of the parameter's documented type (400); the message says what is wrong.
    Type(String),
    /// A header not of its documented form (400), in a sentence that names the header.
    Form(String),
    /// Well formed, but outside a documented rule, such as a range or a set of values (422);
    /// the message is the rule ("must be at most 100").
    Rule(String),
}

impl Refusal {
    /// Records the refusal for [`ApiError::from_poem`] and gives poem-openapi its error, whose
    /// text is used only where no request is being handled.
    pub fn raise<T: Type>(self) -> ParseError<T> {
        let text = match &self {
            Refusal::Type(m) | Refusal::Form(m) | Refusal::Rule(m) => m.clone(),
        };
        let _ = REQUEST.try_with(|r| *r.refusal.borrow_mut() = Some(self));
        ParseError::custom(text)
    }

    /// The refusal recorded for the request being handled, taken.
    fn take() -> Option<Refusal> {
        REQUEST
            .try_with(|r| r.refusal.borrow_mut().take())
            .ok()
            .flatten()
    }

    /// The answer to a request whose parameter `name` was refused.
    fn answer(self, name: &str) -> ApiError {
        match self {
            Refusal::Type(m) => ApiError::bad_request(format!("invalid parameter `{name}`: {m}"))
                .detail(name, "is not of the documented type"),
            Refusal::Form(m) => {
                ApiError::bad_request(m).detail(name, "is not of the documented form")
            }
            Refusal::Rule(m) => ApiError::invalid(name, m),
        }
    }
}

/// One rejected field.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorDetail {
    /// The field, parameter or header at fault.
    pub field: String,
    /// What is wrong with it.
    pub issue: String,
}

/// What kind of failure an error is: what a client branches on (the HTTP status says the
/// same, coarser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request cannot be read (malformed JSON, a bad header).
    BadRequest,
    /// 401: no credential, or one that is unknown, expired or revoked.
    Unauthorized,
    /// 403: the credential may not do this.
    Forbidden,
    /// 404: the path names no record of the caller's organization, or no route.
    NotFound,
    /// 405: the route does not take that method.
    MethodNotAllowed,
    /// 409: the request conflicts with what is stored (a duplicate, a request still running).
    Conflict,
    /// 412: `If-Match` names a version that is no longer current.
    PreconditionFailed,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: a body in a media type the operation does not take.
    UnsupportedMediaType,
    /// 422: well-formed, but a field breaks a rule (see `details`), including a body field or
    /// query parameter naming no record of the caller's organization.
    ValidationError,
    /// 429: too many requests; wait `Retry-After` seconds.
    RateLimited,
    /// 500: the server failed; the cause is logged under `request_id`.
    Internal,
    /// 503: busy or shutting down; retry after `Retry-After` seconds.
    Unavailable,
}

/// The error itself.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorBody {
    /// What kind of failure it is.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// Field-level issues, when there are any.
    pub details: Vec<ErrorDetail>,
    /// The request's id, as in the `X-Request-Id` header; quote it when reporting a problem.
    pub request_id: String,
}

/// `{"error": {...}}`
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The one message every 401 carries, so a caller cannot tell an unknown key from a revoked one.
pub const UNAUTHORIZED_MESSAGE: &str =
    "missing or invalid credentials: send Authorization: Bearer <API key or session token>";

/// An API failure on its way to becoming the error envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Envelope code.
    pub code: ErrorCode,
    /// Envelope message.
    pub message: String,
    /// Envelope details.
    pub details: Vec<ErrorDetail>,
    /// Extra headers (`Retry-After`, `WWW-Authenticate`, `Allow`).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Adds a detail.
    pub fn detail(mut self, field: impl Into<String>, issue: impl Into<String>) -> Self {
        self.details.push(ErrorDetail {
            field: field.into(),
            issue: issue.into(),
        });
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 bad_request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// 401 unauthorized: the same body for every cause.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            UNAUTHORIZED_MESSAGE,
        )
        .header(header::WWW_AUTHENTICATE, "Bearer realm=\"clozup\"")
    }

    /// 404 not_found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 409 conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    /// 413 payload_too_large.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the {limit}-byte limit"),
        )
    }

    /// 422 validation_error about one field.
    pub fn invalid(field: impl Into<String>, issue: impl Into<String>) -> Self {
        let field = field.into();
        let issue = issue.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationError,
            format!("{field} {issue}"),
        )
        .detail(field, issue)
    }

    /// 500 internal: the cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), "internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "an internal error occurred; it has been logged",
        )
    }

    /// The envelope's JSON, stamped with `request_id`.
    pub fn body(&self, request_id: String) -> Vec<u8> {
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
                request_id,
            },
        };
        serde_json::to_vec(&envelope.to_json()).unwrap_or_default()
    }

    /// The envelope as a response, stamped with the current request id.
    pub fn render(&self) -> Response {
        let body = self.body(current_request_id());
        let mut resp = Response::builder()
            .status(self.status)
            .content_type("application/json; charset=utf-8")
            .body(body);
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut().insert(name.clone(), v);
            }
        }
        resp
    }

    /// A body of a media type the operation does not take (`found`; `None` when the request
    /// named none): the message names the one it wants.
    pub fn unsupported_media_type(found: Option<&str>, wanted: &str) -> Self {
        let message = match found {
            Some(found) => format!("Content-Type `{found}` is not supported here; send {wanted}"),
            None => format!("the request has a body but no Content-Type; send {wanted}"),
        };
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            message,
        )
    }

    /// Maps any error a handler or the framework produced to the envelope's terms.
    pub fn from_poem(err: &poem::Error) -> Self {
        if let Some(e) = err.downcast_ref::<ApiError>() {
            return e.clone();
        }
        if err.is::<AuthorizationError>() {
            return Self::unauthorized();
        }
        if let Some(e) = err.downcast_ref::<ParseParamError>() {
            if let Some(refusal) = Refusal::take() {
                return refusal.answer(e.name);
            }
            // A type poem-openapi parses itself (a number, a boolean): its text, unwrapped.
            return Self::bad_request(format!(
                "invalid parameter `{}`: {}",
                e.name,
                own_reason(&e.reason)
            ))
            .detail(e.name, "is not of the documented type");
        }
        if let Some(e) = err.downcast_ref::<ParsePathError>() {
            return Self::bad_request(format!("invalid path segment `{}`: {}", e.name, e.reason));
        }
        if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
            return Self::bad_request(format!("malformed request body: {}", e.reason));
        }
        if let Some(e) = err.downcast_ref::<ContentTypeError>() {
            let message = match e {
                ContentTypeError::NotSupported { content_type } => format!(
                    "Content-Type `{content_type}` is not supported here; see the operation's \
                     request body in /api/v1/public/docs"
                ),
                ContentTypeError::ExpectContentType => "the request has a body but no \
                    Content-Type; see the operation's request body in /api/v1/public/docs"
                    .into(),
            };
            return Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                message,
            );
        }
        match err.status() {
            StatusCode::NOT_FOUND => Self::not_found("no such route; see /api/v1/public/docs"),
            StatusCode::METHOD_NOT_ALLOWED => Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not accept that method; see /api/v1/public/docs",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "the request body is too large",
            ),
            status if status.is_client_error() => Self::bad_request(err.to_string()),
            StatusCode::SERVICE_UNAVAILABLE => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the service is unavailable; retry shortly",
            ),
            _ => Self::internal(err),
        }
    }
}

/// A parse error's own message, without the type names poem-openapi wraps it in
/// (`failed to parse "T": <message> (occurred while parsing "optional_T")`).
fn own_reason(reason: &str) -> &str {
    let inner = match reason.strip_prefix("failed to parse \"") {
        Some(rest) => rest.split_once("\": ").map_or(rest, |(_, m)| m),
        None => reason,
    };
    inner
        .rsplit_once(" (occurred while parsing")
        .map_or(inner, |(m, _)| m)
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code
                .to_json()
                .as_ref()
                .and_then(|c| c.as_str())
                .unwrap_or("?"),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        self.render()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render()
    }
}

impl ApiError {
    /// An error whose message lists every field issue, each also in `details`.
    fn listing(status: StatusCode, code: ErrorCode, issues: Vec<FieldIssue>) -> Self {
        let message = issues
            .iter()
            .map(|i| format!("{} {}", i.field, i.issue))
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Self::new(status, code, message);
        e.details = issues_to_details(issues);
        e
    }
}

fn issues_to_details(issues: Vec<FieldIssue>) -> Vec<ErrorDetail> {
    issues
        .into_iter()
        .map(|i| ErrorDetail {
            field: i.field,
            issue: i.issue,
        })
        .collect()
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::NotFound(what) => Self::not_found(format!("{what} not found")),
            DomainError::Validation(issues) => Self::listing(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationError,
                issues,
            ),
            DomainError::Conflict { message, details } => {
                let mut e = Self::conflict(message);
                e.details = issues_to_details(details);
                e
            }
            e @ DomainError::VersionMismatch { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::PreconditionFailed,
                e.to_string(),
            ),
            DomainError::Forbidden(why) => {
                Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, why)
            }
            DomainError::Unauthorized => Self::unauthorized(),
            DomainError::Unavailable(why) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, why)
                    .header(header::RETRY_AFTER, "1")
            }
            DomainError::Internal(why) => Self::internal(why),
        }
    }
}

/// Every status the error envelope can carry, for the OpenAPI document.
const DOCUMENTED: &[(u16, &str)] = &[
    (
        400,
        "bad_request: malformed JSON, bad query or path syntax, bad header values",
    ),
    (
        401,
        "unauthorized: missing, malformed, unknown, expired or revoked credential",
    ),
    (403, "forbidden: the credential lacks the scope or role"),
    (
        404,
        "not_found: the path names no object of the caller's organization",
    ),
    (
        409,
        "conflict: uniqueness clash, state conflict, or an idempotent request in flight",
    ),
    (
        412,
        "precondition_failed: If-Match does not match the current version",
    ),
    (413, "payload_too_large: body over the limit"),
    (415, "unsupported_media_type: wrong Content-Type"),
    (
        422,
        "validation_error: well-formed input that breaks a rule, or a body field naming no object of the caller's organization; details name each field",
    ),
    (429, "rate_limited: too many requests; see Retry-After"),
    (500, "internal: a bug; details are logged"),
    (
        503,
        "unavailable: shutting down, database busy, or disk full",
    ),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: super::envelope::DOCUMENTED_JSON,
                        schema: ErrorEnvelope::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorEnvelope::register(registry);
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
