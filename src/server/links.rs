//! The links a sent email carries, served without a credential (the token is the permission):
//! the open-tracking pixel and the unsubscribe page with its one-click POST.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{handler, IntoResponse};

use crate::api;
use crate::state::AppState;

/// The open-tracking pixel: records an open of the message behind the token, and answers the
/// same 1×1 GIF whatever the token, so probing it reveals nothing.
#[handler]
pub(super) async fn open_pixel(
    state: poem::web::Data<&Arc<AppState>>,
    token: poem::web::Path<String>,
) -> poem::Response {
    // Tokens are `o` + 32 base62 characters; anything else is not worth a database call.
    if crate::secrets::is_token_shaped(&token.0, "o") {
        let now = state.clock.now_ms();
        let token = token.0.clone();
        if let Err(e) = state
            .db
            .write(move |tx| crate::domain::email::record_open(tx, &token, now))
            .await
        {
            tracing::warn!("could not record an email open: {e}");
        }
    }
    poem::Response::builder()
        .content_type("image/gif")
        .header("cache-control", "no-store, max-age=0")
        .body(crate::mail_worker::PIXEL_GIF)
}

/// A small page of the unsubscribe flow: `title` and `body` (HTML, already escaped).
fn page(status: StatusCode, title: &str, body: &str) -> poem::Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32rem;\
         margin:4rem auto;padding:0 1rem\"><h1>{title}</h1>{body}</body></html>"
    );
    poem::Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        .body(html)
}

/// `&`, `<`, `>` and `"` escaped for HTML.
fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn unknown_link() -> poem::Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown link",
        "<p>This unsubscribe link is not one this server sent.</p>",
    )
}

/// The unsubscribe link opened in a browser: a button to confirm. Opening it changes nothing,
/// because mail scanners open every link they see; the button (or a mail client's one-click
/// POST, RFC 8058) does.
#[handler]
pub(super) async fn unsubscribe_page(
    state: poem::web::Data<&Arc<AppState>>,
    token: poem::web::Path<String>,
) -> poem::Response {
    if !crate::secrets::is_token_shaped(&token.0, "u") {
        return unknown_link();
    }
    let lookup = token.0.clone();
    match state
        .db
        .read(move |c| crate::domain::email::unsubscribe_target(c, &lookup))
        .await
    {
        Ok(Some(address)) => page(
            StatusCode::OK,
            "Unsubscribe",
            &format!(
                "<p>Stop all email to <b>{}</b> from this sender?</p>\
                 <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
                escape_html(&address)
            ),
        ),
        Ok(None) => unknown_link(),
        Err(e) => api::error::ApiError::from(e).into_response(),
    }
}

/// One-click unsubscribe (RFC 8058 `List-Unsubscribe-Post`, or the page's button): suppresses
/// the message's recipient for the sending organization. Needs no credential: the token is the
/// permission, and it names one address.
#[handler]
pub(super) async fn unsubscribe(
    state: poem::web::Data<&Arc<AppState>>,
    token: poem::web::Path<String>,
) -> poem::Response {
    if !crate::secrets::is_token_shaped(&token.0, "u") {
        return unknown_link();
    }
    let now = state.clock.now_ms();
    let token = token.0.clone();
    match state
        .db
        .write(move |tx| crate::domain::email::unsubscribe(tx, &token, now))
        .await
    {
        Ok(Some(entry)) => page(
            StatusCode::OK,
            "Unsubscribed",
            &format!(
                "<p><b>{}</b> will get no more email from this sender.</p>",
                escape_html(&entry.email)
            ),
        ),
        Ok(None) => unknown_link(),
        Err(e) => api::error::ApiError::from(e).into_response(),
    }
}
