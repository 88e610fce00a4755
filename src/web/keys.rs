//! Settings → API keys: the keys agents use, created (secret shown once) and revoked here as
//! with `/api-keys`; admins and owners only, as there.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response};

use super::shell::{self, csrf_field, notice, when, Section};
use super::{failure, html, message_of, see_other, status_of, CsrfOnly, Viewer};
use crate::domain::api_keys::{self, ApiKey, NewApiKey};
use crate::domain::auth::Scope;
use crate::domain::listing::Paging;
use crate::domain::DomainError;
use crate::state::AppState;

/// The new-key form. Checkboxes arrive only when ticked.
#[derive(serde::Deserialize)]
pub struct NewKey {
    csrf: String,
    name: String,
    read: Option<String>,
    write: Option<String>,
    admin: Option<String>,
    expires_in_days: Option<String>,
}

/// `GET /settings/keys`.
#[poem::handler]
pub async fn page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    render(&state, &viewer, StatusCode::OK, None, None).await
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    secret: Option<(&str, &str)>,
    error: Option<&str>,
) -> Response {
    if let Some(resp) = super::settings::admins_only(viewer) {
        return resp;
    }
    let org = viewer.principal.org_id.clone();
    let now = state.clock.now_ms();
    let keys = match state
        .db
        .read(move |c| {
            api_keys::list(
                c,
                &org,
                None,
                Some("-created_at"),
                Paging {
                    page: 1,
                    per_page: 100,
                },
                now,
            )
        })
        .await
    {
        Ok(listed) => listed.items,
        Err(e) => return failure(&e),
    };
    html(
        status,
        shell::page(
            viewer,
            Section::Settings,
            "API keys",
            body(viewer, &keys, secret, error),
        ),
    )
}

fn body(
    viewer: &Viewer,
    keys: &[ApiKey],
    secret: Option<(&str, &str)>,
    error: Option<&str>,
) -> Markup {
    let csrf = viewer.csrf();
    html! {
        (super::settings::tabs("/settings/keys"))
        h1 { "API keys" }
        p { "Agents and scripts act with a key's scopes in this organization. A key's secret is shown once, when it is made." }
        (notice(error))
        @if let Some((name, key)) = secret {
            div.secret role="status" {
                p { "The key " strong { (name) } " was created. Copy its secret now: it will not be shown again." }
                pre { code #new-key { (key) } }
            }
        }
        section.panel aria-labelledby="h-new" {
            h2 #h-new { "New key" }
            form.inline method="post" action="/settings/keys" {
                (csrf_field(&csrf))
                label { "Name" input name="name" required maxlength="100"; }
                fieldset {
                    legend { "Scopes" }
                    label { input type="checkbox" name="read" value="on" checked; " read" }
                    label { input type="checkbox" name="write" value="on" checked; " write" }
                    label { input type="checkbox" name="admin" value="on"; " admin" }
                }
                label { "Expires in days (blank: never)" input name="expires_in_days" type="number" min="1" max="3650"; }
                button type="submit" { "Create key" }
            }
        }
        table.keys {
            caption.sr { "The organization's API keys" }
            thead {
                tr {
                    th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Scopes" }
                    th scope="col" { "Status" } th scope="col" { "Last used" } th scope="col" { "" }
                }
            }
            tbody {
                @for k in keys {
                    tr data-key=(k.id) {
                        td { (k.name) }
                        td { code { (k.prefix) "…" } }
                        td { (k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                        td.status { (k.status.to_string()) }
                        td { (k.last_used_at.0.as_ref().map(|t| when(t.0)).unwrap_or_else(|| "never".into())) }
                        td {
                            @if k.revoked_at.0.is_none() {
                                form method="post" action={"/settings/keys/" (k.id) "/revoke"} {
                                    (csrf_field(&csrf))
                                    button.danger type="submit" aria-label={"Revoke " (k.name)} { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /settings/keys`: makes the key and shows its secret once (the answer is the page, not
/// a redirect, so the secret is never in a URL or the history).
#[poem::handler]
pub async fn create(
    req: &Request,
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Form(f): Form<NewKey>,
) -> Response {
    if let Some(resp) = viewer.refusal_of_change(req, &f.csrf, Scope::Admin) {
        return resp;
    }
    let scopes: Vec<Scope> = [
        (&f.read, Scope::Read),
        (&f.write, Scope::Write),
        (&f.admin, Scope::Admin),
    ]
    .into_iter()
    .filter(|(on, _)| on.is_some())
    .map(|(_, s)| s)
    .collect();
    let expires = match f.expires_in_days.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .map(|d| Some(d * 86_400))
            .ok_or_else(|| {
                DomainError::invalid(
                    "expires_in_days",
                    "must be a whole number of days from 1 to 3650",
                )
            }),
    };
    let p = viewer.principal.clone();
    let now = state.clock.now_ms();
    let name = f.name;
    let made = match expires {
        Ok(expires_in_seconds) => {
            state
                .db
                .write(move |tx| {
                    let input = NewApiKey {
                        name,
                        scopes: Some(scopes),
                        expires_in_seconds,
                    };
                    api_keys::create(tx, &p.org_id, &p.user_id, p.scopes, None, input, now)
                })
                .await
        }
        Err(e) => Err(e),
    };
    match made {
        Ok(created) => {
            render(
                &state,
                &viewer,
                StatusCode::CREATED,
                Some((&created.api_key.name, &created.key)),
                None,
            )
            .await
        }
        Err(e) => render(&state, &viewer, status_of(&e), None, Some(&message_of(&e))).await,
    }
}

/// `POST /settings/keys/{id}/revoke`.
#[poem::handler]
pub async fn revoke(
    req: &Request,
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(resp) = viewer.refusal_of_change(req, &f.csrf, Scope::Admin) {
        return resp;
    }
    let org = viewer.principal.org_id.clone();
    let now = state.clock.now_ms();
    match state
        .db
        .write(move |tx| api_keys::revoke(tx, &org, &id, now))
        .await
    {
        Ok(_) => see_other("/settings/keys"),
        Err(e) => failure(&e),
    }
}
