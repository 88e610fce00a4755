//! Signing in and out: the API's sessions, carried in a cookie.

use std::sync::Arc;

use maud::{html, DOCTYPE};
use poem::http::{header, StatusCode};
use poem::web::{Data, Form, Query};
use poem::{Request, Response};

use super::shell::{head, notice};
use super::{html, refusal, same_origin, see_other, Viewer, SESSION_COOKIE};
use crate::domain::DomainError;
use crate::state::AppState;

/// `?next=` on the sign-in page: where to go afterwards.
#[derive(serde::Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// The sign-in form.
#[derive(serde::Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    next: Option<String>,
}

/// Only a path on this server (`/board`), never `//elsewhere` or `https://...`: the page must not
/// forward a person who just signed in to another site.
fn local(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/today",
    }
}

fn sign_in_page(status: StatusCode, next: &str, email: &str, error: Option<&str>) -> Response {
    html(
        status,
        html! {
            (DOCTYPE)
            html lang="en" {
                (head("Sign in", None))
                body.bare {
                    main #main.signin {
                        h1 { "Sign in to Clozup" }
                        (notice(error))
                        form method="post" action="/login" {
                            input type="hidden" name="next" value=(next);
                            label for="email" { "Email" }
                            input #email type="email" name="email" value=(email) required autocomplete="username";
                            label for="password" { "Password" }
                            input #password type="password" name="password" required autocomplete="current-password";
                            button type="submit" { "Sign in" }
                        }
                        section.firstrun aria-labelledby="firstrun" {
                            h2 #firstrun { "First time here?" }
                            p {
                                "The first start of the server creates the organization and its owner, "
                                "who has no password yet. On the server's machine, give them one:"
                            }
                            pre { code { "clozup users set-password --db crm.sqlite --email OWNER_EMAIL" } }
                            p { "Then sign in here with that email and password. Owners and admins add the rest of the team." }
                        }
                    }
                }
            }
        },
    )
}

/// `GET /login`.
#[poem::handler]
pub async fn form(Query(q): Query<Next>) -> Response {
    sign_in_page(StatusCode::OK, local(q.next.as_deref()), "", None)
}

/// `POST /login`: opens a session and sets its cookie.
#[poem::handler]
pub async fn submit(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Form(input): Form<Credentials>,
) -> Response {
    // Login CSRF (signing a victim into the attacker's account) is refused by origin; there
    // is no session yet to derive a token from.
    if !same_origin(req) {
        return refusal(
            StatusCode::FORBIDDEN,
            "Sign in from this server's own page.",
        );
    }
    let next = local(input.next.as_deref()).to_string();
    let email = input.email.trim().to_string();
    match state.sign_in(email.clone(), input.password, None).await {
        Ok(signed) => {
            let secure = if state.config.public_url().starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let max_age = ((signed.expires_at - state.clock.now_ms()) / 1000).max(0);
            let mut resp = see_other(&next);
            if let Ok(v) = header::HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
                signed.token
            )) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(DomainError::Unauthorized) => sign_in_page(
            StatusCode::UNAUTHORIZED,
            &next,
            &email,
            Some("That email and password do not match an account."),
        ),
        Err(e) => super::failure(&e),
    }
}

/// `POST /logout`: ends the session and clears the cookie.
#[poem::handler]
pub async fn logout(
    req: &Request,
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Form(f): Form<super::CsrfOnly>,
) -> Response {
    if let Some(resp) = viewer.refusal_of_change(req, &f.csrf, crate::domain::auth::Scope::Read) {
        return resp;
    }
    let id = viewer.principal.credential_id.clone();
    let now = state.clock.now_ms();
    if let Err(e) = state
        .db
        .write(move |tx| crate::domain::sessions::close(tx, &id, now))
        .await
    {
        return super::failure(&e);
    }
    let mut resp = see_other("/login");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "clozup_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    resp
}
