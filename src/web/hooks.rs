//! Settings → Webhooks, for admins and owners: the endpoints, each one's delivery log, and
//! redelivery. Each change is the API's own domain call with the signed-in admin's principal.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response};

use super::settings::{admins_only, settings_page};
use super::shell::{csrf_field, notice, when};
use super::{failure, see_other, CsrfOnly, Viewer};
use crate::domain::auth::Scope;
use crate::domain::listing::Paging;
use crate::domain::terms::Term;
use crate::domain::webhooks::{self, Delivery, NewWebhook, Webhook};
use crate::domain::Issues;
use crate::shape::Shaped;
use crate::state::AppState;
/// `GET /settings/webhooks`.
#[poem::handler]
pub async fn hooks_page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    if let Some(resp) = admins_only(&viewer) {
        return resp;
    }
    render_hooks(&state, &viewer, StatusCode::OK, None, None).await
}

async fn render_hooks(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    secret: Option<&str>,
    error: Option<&str>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    match state
        .db
        .read(move |c| {
            webhooks::list(
                c,
                &org,
                Paging {
                    page: 1,
                    per_page: 100,
                },
            )
        })
        .await
    {
        Ok(listed) => settings_page(
            viewer,
            status,
            "/settings/webhooks",
            "Webhooks",
            hooks_body(viewer, &listed.items, secret, error),
        ),
        Err(e) => failure(&e),
    }
}

fn hooks_body(
    viewer: &Viewer,
    hooks: &[Webhook],
    secret: Option<&str>,
    error: Option<&str>,
) -> Markup {
    html! {
        (notice(error))
        @if let Some(s) = secret {
            div.secret role="status" {
                p { "The endpoint was added. Its signing secret, shown this once:" }
                pre { code #new-secret { (s) } }
            }
        }
        table.keys {
            caption.sr { "Webhook endpoints" }
            thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "State" } } }
            tbody {
                @for h in hooks {
                    tr {
                        td { a href={"/settings/webhooks/" (h.id)} { (h.url) } }
                        td { (h.event_types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")) }
                        td {
                            @if h.active { "active" } @else { "disabled" }
                            @if let Some(why) = &h.disabled_reason.0 { " (" (why) ")" }
                        }
                    }
                }
            }
        }
        section.panel aria-labelledby="h-add-hook" {
            h2 #h-add-hook { "Add an endpoint" }
            form.inline method="post" action="/settings/webhooks" {
                (csrf_field(&viewer.csrf()))
                label { "URL" input name="url" type="url" required placeholder="https://example.com/hooks/clozup"; }
                label { "Events (comma separated; blank: all)" input name="event_types" placeholder="deal.*, lead.created"; }
                button type="submit" { "Add endpoint" }
            }
        }
    }
}

/// The new-endpoint form.
#[derive(serde::Deserialize)]
pub struct HookForm {
    csrf: String,
    url: String,
    event_types: String,
}

/// `POST /settings/webhooks`: answers with the page showing the secret once.
#[poem::handler]
pub async fn add_hook(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Form(f): Form<HookForm>,
) -> Response {
    let policy = state.config.webhook_policy();
    let csrf = f.csrf.clone();
    let outcome = super::change(req, &state, &csrf, Scope::Admin, move |tx, p, now| {
        let mut issues = Issues::new();
        let types: Vec<_> = f
            .event_types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .filter_map(|t| {
                Term::parse(t)
                    .map_err(|e| issues.add("event_types", e))
                    .ok()
            })
            .collect();
        let input = NewWebhook {
            url: Shaped::checked(&mut issues, "url", f.url.trim().to_string()),
            description: None,
            event_types: (!types.is_empty()).then_some(types),
        };
        issues.finish()?;
        webhooks::create(tx, &p.org_id, input, &policy, now)
    })
    .await;
    outcome
        .answer(
            async |v, made| {
                render_hooks(&state, &v, StatusCode::CREATED, Some(&made.secret), None).await
            },
            async |v, status, why| render_hooks(&state, &v, status, None, Some(&why)).await,
        )
        .await
}

/// `GET /settings/webhooks/{id}`: the endpoint's delivery log.
#[poem::handler]
pub async fn hook_page(
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    if let Some(resp) = admins_only(&viewer) {
        return resp;
    }
    render_log(&state, &viewer, id, StatusCode::OK, None).await
}

async fn render_log(
    state: &AppState,
    viewer: &Viewer,
    id: String,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    let read = state
        .db
        .read(move |c| {
            let hook = webhooks::get(c, &org, &id)?;
            let log = webhooks::deliveries(
                c,
                &org,
                &id,
                None,
                Paging {
                    page: 1,
                    per_page: 50,
                },
            )?;
            Ok((hook, log.items))
        })
        .await;
    match read {
        Ok((hook, log)) => settings_page(
            viewer,
            status,
            "/settings/webhooks",
            "Deliveries",
            log_body(viewer, &hook, &log, error),
        ),
        Err(e) => failure(&e),
    }
}

fn log_body(viewer: &Viewer, hook: &Webhook, log: &[Delivery], error: Option<&str>) -> Markup {
    let csrf = viewer.csrf();
    html! {
        p { "To " code { (hook.url) } }
        (notice(error))
        @if log.is_empty() { p.empty { "Nothing sent yet." } }
        table.keys {
            caption.sr { "The latest deliveries" }
            thead { tr { th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Answer" } th scope="col" { "When" } th scope="col" { "" } } }
            tbody {
                @for d in log {
                    tr data-delivery=(d.id) {
                        td { (d.event_type.to_string()) }
                        td.status { (d.status.to_string()) }
                        td.num { (d.attempts) }
                        td {
                            @if let Some(code) = d.last_status_code.0 { (code) " " }
                            @if let Some(e) = &d.last_error.0 { (e) }
                        }
                        td { (when(d.created_at.0)) }
                        td {
                            form method="post" action={"/settings/webhooks/" (hook.id) "/deliveries/" (d.id) "/redeliver"} {
                                (csrf_field(&csrf))
                                button type="submit" aria-label={"Redeliver " (d.event_type.to_string())} { "Redeliver" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /settings/webhooks/{id}/deliveries/{delivery}/redeliver`.
#[poem::handler]
pub async fn redeliver(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path((id, delivery)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let hook_id = id.clone();
    let outcome = super::change(req, &state, &f.csrf, Scope::Admin, move |tx, p, now| {
        webhooks::redeliver(tx, &p.org_id, &hook_id, &delivery, now)
    })
    .await;
    outcome
        .answer(
            async |_, _| see_other(&format!("/settings/webhooks/{id}")),
            async |v, status, why| render_log(&state, &v, id.clone(), status, Some(&why)).await,
        )
        .await
}
