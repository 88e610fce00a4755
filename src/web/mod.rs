//! The web app at `/`: pages for the people who approve, review and take over from the agents.
//!
//! Server-rendered HTML (maud: templates checked by the compiler, everything escaped), plain
//! forms that work without JavaScript, and two small embedded scripts where interaction needs
//! them (dragging cards on the board, live updates). The pages call the domain layer directly,
//! with the signed-in user's principal, so the API's rules (roles, organizations, validation,
//! versions) hold here by the same code, not by a copy of it.
//!
//! Security: the session is the API's own (`clzs_` token) in an HttpOnly, SameSite=Lax cookie
//! (Secure when the public URL is https); every POST carries a CSRF token derived from the
//! session and is refused from another origin; every page is sent with a strict
//! Content-Security-Policy (no inline script or style) and is never cached.

mod analytics;
mod assets;
mod board;
mod campaigns;
mod deal;
mod hooks;
mod keys;
mod lead;
mod leads;
mod live;
mod settings;
mod shell;
mod signin;
mod today;

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use maud::Markup;
use poem::http::{header, StatusCode};
use poem::{get, post, Request, Response, Route};
use sha2::Sha256;

use crate::domain::auth::{Principal, Scope};
use crate::domain::DomainError;
use crate::state::AppState;

/// The cookie that holds the session token.
const SESSION_COOKIE: &str = "clozup_session";

/// The web app's routes (mounted at `/` beside the API).
pub fn routes() -> Route {
    Route::new()
        .at("/", get(home))
        .at("/login", get(signin::form).post(signin::submit))
        .at("/logout", post(signin::logout))
        .at("/board", get(board::page))
        .at("/board/move", post(board::move_card))
        .at("/deals/:id", get(deal::page))
        .at("/deals/:id/edit", post(deal::edit))
        .at("/deals/:id/activities", post(deal::log_activity))
        .at("/deals/:id/email", post(deal::send_email))
        .at("/deals/:id/email/:message/reply", post(deal::reply))
        .at("/leads", get(leads::list).post(leads::create))
        .at("/leads/export", get(leads::export))
        .at("/leads/import", post(leads::import))
        .at("/leads/:id", get(lead::lead))
        .at("/leads/:id/edit", post(lead::edit))
        .at("/leads/:id/assign", post(lead::assign))
        .at("/leads/:id/convert", post(lead::convert))
        .at("/campaigns", get(campaigns::campaigns_page))
        .at("/campaigns/:id", get(campaigns::campaign))
        .at("/today", get(today::page))
        .at("/analytics", get(analytics::page))
        .at(
            "/settings",
            get(settings::org_page).post(settings::save_organization),
        )
        .at(
            "/settings/users",
            get(settings::team_page).post(settings::add_user),
        )
        .at("/settings/users/:id/role", post(settings::set_role))
        .at("/settings/users/:id/deactivate", post(settings::deactivate))
        .at(
            "/settings/webhooks",
            get(hooks::hooks_page).post(hooks::add_hook),
        )
        .at("/settings/webhooks/:id", get(hooks::hook_page))
        .at(
            "/settings/webhooks/:id/deliveries/:delivery/redeliver",
            post(hooks::redeliver),
        )
        .at(
            "/settings/backups",
            get(settings::backups_page).post(settings::back_up),
        )
        .at("/settings/keys", get(keys::page).post(keys::create))
        .at("/settings/keys/:id/revoke", post(keys::revoke))
        .at("/live", get(live::stream))
        .at("/assets/:name", get(assets::serve))
}

/// `/`: the day's agenda for someone signed in, else the sign-in page.
#[poem::handler]
async fn home(req: &Request, state: poem::web::Data<&Arc<AppState>>) -> Response {
    match Viewer::of(req, &state).await {
        Ok(_) => see_other("/today"),
        Err(resp) => resp,
    }
}

/// A form that carries nothing but its CSRF token (sign out, revoke).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// The signed-in person looking at a page: their principal (role, organization) and the
/// session token, from which the CSRF token is derived.
pub struct Viewer {
    /// Who acts: the session's user, with their role's scopes.
    pub principal: Principal,
    token: String,
}

/// A page's handler takes a `Viewer`: without a live session the request never reaches it and
/// the answer is the way to the sign-in page.
impl<'a> poem::FromRequest<'a> for Viewer {
    async fn from_request(req: &'a Request, _body: &mut poem::RequestBody) -> poem::Result<Self> {
        let state = req
            .data::<Arc<AppState>>()
            .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        Self::of(req, state)
            .await
            .map_err(poem::Error::from_response)
    }
}

impl Viewer {
    /// The viewer behind the request's session cookie; else the response that sends them to
    /// sign in (and back here afterwards).
    pub async fn of(req: &Request, state: &AppState) -> Result<Self, Response> {
        let token = cookie(req, SESSION_COOKIE);
        let principal = match token.as_deref() {
            Some(t) if t.starts_with(crate::domain::auth::SESSION_PREFIX) => {
                state.principal_of(t).await.map_err(|e| failure(&e))?
            }
            _ => None,
        };
        match (principal, token) {
            (Some(principal), Some(token)) => Ok(Self { principal, token }),
            _ => {
                let back = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let to = if req.method() == poem::http::Method::GET && back != "/" {
                    format!("/login?next={}", urlencode(back))
                } else {
                    "/login".to_string()
                };
                Err(see_other(&to))
            }
        }
    }

    /// This session's CSRF token: an HMAC of a fixed label under the session token, so it
    /// needs no storage and is worthless without the cookie it belongs to.
    pub fn csrf(&self) -> String {
        csrf_of(&self.token)
    }

    /// Whether the viewer may change things (a viewer role may not).
    pub fn can_write(&self) -> bool {
        self.principal.scopes.grants(Scope::Write)
    }

    /// Whether the viewer may administer (keys, users, webhooks).
    pub fn can_admin(&self) -> bool {
        self.principal.scopes.grants(Scope::Admin)
    }

    /// The checks every change takes (same origin, the right CSRF token, the scope): the
    /// answer that refuses the change, or `None` when it may go ahead.
    pub fn refusal_of_change(&self, req: &Request, sent: &str, scope: Scope) -> Option<Response> {
        if !same_origin(req) {
            return Some(refusal(
                StatusCode::FORBIDDEN,
                "This form was sent from another site, so nothing was changed.",
            ));
        }
        if !csrf_matches(&self.token, sent) {
            return Some(refusal(
                StatusCode::FORBIDDEN,
                "This form is out of date (or was not sent by this app). Reload the page and try again.",
            ));
        }
        self.principal.require(scope).err().map(|e| failure(&e))
    }
}

/// What became of a change a form asked for.
pub enum Outcome<T> {
    /// Done: the viewer and what the change returned.
    Done(Viewer, T),
    /// Refused by the domain (a rule, a stale version): the page shows it again with why.
    Refused(Viewer, DomainError),
    /// Answered already: not signed in, a bad CSRF token or origin, a role that may not.
    Answered(Response),
}

impl<T> Outcome<T> {
    /// The answer to the form: `done` with what the change returned; for a refusal, `again`
    /// draws the page once more with the status and the reason.
    pub async fn answer(
        self,
        done: impl AsyncFnOnce(Viewer, T) -> Response,
        again: impl AsyncFnOnce(Viewer, StatusCode, String) -> Response,
    ) -> Response {
        match self {
            Outcome::Done(viewer, value) => done(viewer, value).await,
            Outcome::Refused(viewer, e) => again(viewer, status_of(&e), message_of(&e)).await,
            Outcome::Answered(resp) => resp,
        }
    }
}

/// Runs a change a form asked for: the session, the checks every change takes, then `f` as one
/// write with the viewer's principal and the time.
pub async fn change<T, F>(
    req: &Request,
    state: &AppState,
    csrf: &str,
    scope: Scope,
    f: F,
) -> Outcome<T>
where
    T: Send + 'static,
    F: FnOnce(&crate::db::Tx<'_>, &Principal, i64) -> crate::domain::DomainResult<T>
        + Send
        + 'static,
{
    let viewer = match Viewer::of(req, state).await {
        Ok(v) => v,
        Err(resp) => return Outcome::Answered(resp),
    };
    if let Some(resp) = viewer.refusal_of_change(req, csrf, scope) {
        return Outcome::Answered(resp);
    }
    let p = viewer.principal.clone();
    let now = state.clock.now_ms();
    match state.db.write(move |tx| f(tx, &p, now)).await {
        Ok(v) => Outcome::Done(viewer, v),
        Err(e @ (DomainError::NotFound(_) | DomainError::Internal(_))) => {
            Outcome::Answered(failure(&e))
        }
        Err(e) => Outcome::Refused(viewer, e),
    }
}

/// The HMAC behind a session's CSRF token.
fn csrf_mac(session_token: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(session_token.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(b"clozup web csrf v1");
    mac
}

/// The CSRF token of a session: the first 16 bytes of its HMAC, in hex.
fn csrf_of(session_token: &str) -> String {
    hex::encode(&csrf_mac(session_token).finalize().into_bytes()[..16])
}

/// Whether `sent` is the CSRF token of the session, compared in constant time by the HMAC
/// library (no hand-written comparison).
fn csrf_matches(session_token: &str, sent: &str) -> bool {
    hex::decode(sent).is_ok_and(|tag| {
        tag.len() == 16 && csrf_mac(session_token).verify_truncated_left(&tag).is_ok()
    })
}

/// A change must come from a page of this server: when the browser names the origin (every
/// current browser does on a POST), its host must be the one the request was sent to.
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

/// The value of cookie `name`, if the request has it.
fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Percent-encodes a value for a query string.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers every page carries: a strict CSP (scripts, styles and connections from this
/// server only; no inline code, no framing), no sniffing, no caching of private pages.
fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// An HTML page.
fn html(status: StatusCode, page: Markup) -> Response {
    secure(
        Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(page.into_string()),
    )
}

/// 303 to `to` (after a form: the browser follows with a GET).
fn see_other(to: &str) -> Response {
    secure(
        Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, to)
            .finish(),
    )
}

/// A page that says why a request was refused.
fn refusal(status: StatusCode, message: &str) -> Response {
    html(status, shell::bare("Not done", message))
}

/// The HTTP status of a domain error, as the API answers it.
fn status_of(e: &DomainError) -> StatusCode {
    match e {
        DomainError::NotFound(_) => StatusCode::NOT_FOUND,
        DomainError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DomainError::Conflict { .. } => StatusCode::CONFLICT,
        DomainError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
        DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
        DomainError::Unauthorized => StatusCode::UNAUTHORIZED,
        DomainError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The page for a domain error: what the API would have said, as a page.
fn failure(e: &DomainError) -> Response {
    refusal(status_of(e), &message_of(e))
}

/// A domain error as a sentence for a person.
fn message_of(e: &DomainError) -> String {
    match e {
        DomainError::NotFound(what) => format!("No such {what} in your organization."),
        DomainError::VersionMismatch { .. } => {
            "Someone changed this meanwhile; the page now shows their version.".into()
        }
        DomainError::Forbidden(_) => "Your role may look at this but not change it.".into(),
        DomainError::Internal(why) => {
            tracing::error!("web page failed: {why}");
            "Something went wrong on the server; it is in the log.".into()
        }
        other => {
            let mut s = other.to_string();
            if let Some(first) = s.get(..1) {
                let upper = first.to_uppercase();
                s.replace_range(..1, &upper);
            }
            s + "."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let a = csrf_of("clzs_aaaa");
        let b = csrf_of("clzs_bbbb");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(csrf_matches("clzs_aaaa", &a));
        assert!(!csrf_matches("clzs_aaaa", &b));
        assert!(!csrf_matches("clzs_aaaa", &a[..30]));
    }

    #[test]
    fn next_links_are_percent_encoded() {
        assert_eq!(urlencode("/board?p=a b&x"), "/board%3Fp%3Da%20b%26x");
    }
}
