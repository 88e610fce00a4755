//! One lead, whole (the lead 360): its fields edited inline, its owner, its conversion to a deal,
//! and what the CRM knows around it. Each change is the API's own domain call.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response};
use poem_openapi::types::MaybeUndefined;

use super::leads::{given, name_of, team};
use super::shell::{self, csrf_field, notice, when, word, Section};
use super::{failure, html, see_other, Outcome, Viewer};
use crate::domain::auth::Scope;
use crate::domain::deals::{self, ConvertLead};
use crate::domain::lead_view::{self, Lead360};
use crate::domain::leads::{self, LeadPatch, SettableLeadStatus};
use crate::domain::users::User;
use crate::domain::{DomainError, Issues};
use crate::shape::Shaped;
use crate::state::AppState;

/// `GET /leads/{id}`: the lead 360.
#[poem::handler]
pub async fn lead(viewer: Viewer, state: Data<&Arc<AppState>>, Path(id): Path<String>) -> Response {
    render_lead(&state, &viewer, id, StatusCode::OK, None).await
}

async fn render_lead(
    state: &AppState,
    viewer: &Viewer,
    id: String,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    let now = state.clock.now_ms();
    let read = state
        .db
        .read(move |c| Ok((lead_view::lead_360(c, &org, &id, now)?, team(c, &org)?)))
        .await;
    match read {
        Ok((v, team)) => html(
            status,
            shell::page(
                viewer,
                Section::Leads,
                &name_of(&v.lead),
                lead_body(viewer, &v, &team, error),
            ),
        ),
        Err(e) => failure(&e),
    }
}

fn lead_body(viewer: &Viewer, v: &Lead360, team: &[User], error: Option<&str>) -> Markup {
    let l = &v.lead;
    let csrf = viewer.csrf();
    let text = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        p.crumbs { a href="/leads" { "Leads" } }
        div.titlebar {
            h1 { (name_of(l)) }
            span.badge { (word(&l.status)) }
            span.badge { "score " (l.score) }
        }
        (notice(error))
        dl.facts {
            dt { "Email" } dd { (text(&l.email.0)) }
            dt { "Phone" } dd { (text(&l.phone.0)) }
            dt { "Title" } dd { (text(&l.title.0)) }
            dt { "Company" } dd { (text(&l.company_name.0)) }
            dt { "Owner" } dd { (team.iter().find(|u| Some(&u.id) == l.owner_id.0.as_ref()).map(|u| u.name.as_str()).unwrap_or("nobody")) }
            @if let Some(d) = &l.converted_deal_id.0 {
                dt { "Converted" } dd { a href={"/deals/" (d)} { "to its deal" } }
            }
        }
        @if viewer.can_write() {
            div.grid {
                section.panel aria-labelledby="h-edit" {
                    h2 #h-edit { "Edit" }
                    form.stack method="post" action={"/leads/" (l.id) "/edit"} {
                        (csrf_field(&csrf))
                        input type="hidden" name="version" value=(l.version);
                        label for="ed-first" { "First name" } input #ed-first name="first_name" value=(text(&l.first_name.0)) maxlength="100";
                        label for="ed-last" { "Last name" } input #ed-last name="last_name" value=(text(&l.last_name.0)) maxlength="100";
                        label for="ed-email" { "Email" } input #ed-email name="email" type="email" value=(text(&l.email.0)) maxlength="254";
                        label for="ed-phone" { "Phone" } input #ed-phone name="phone" value=(text(&l.phone.0)) maxlength="50";
                        label for="ed-title" { "Job title" } input #ed-title name="title" value=(text(&l.title.0)) maxlength="200";
                        label for="ed-company" { "Company" } input #ed-company name="company_name" value=(text(&l.company_name.0)) maxlength="200";
                        @if l.converted_deal_id.0.is_none() {
                            label for="ed-status" { "Status" }
                            select #ed-status name="status" {
                                @for s in ["new", "contacted", "qualified", "lost"] {
                                    option value=(s) selected[word(&l.status) == s] { (s) }
                                }
                            }
                        }
                        button type="submit" { "Save" }
                    }
                }
                div {
                    section.panel aria-labelledby="h-assign" {
                        h2 #h-assign { "Assign" }
                        form.inline method="post" action={"/leads/" (l.id) "/assign"} {
                            (csrf_field(&csrf))
                            label for="as-user" { "Owner" }
                            select #as-user name="user_id" required {
                                @for u in team { option value=(u.id) selected[Some(&u.id) == l.owner_id.0.as_ref()] { (u.name) } }
                            }
                            button type="submit" { "Assign" }
                        }
                    }
                    @if l.converted_deal_id.0.is_none() {
                        section.panel aria-labelledby="h-convert" {
                            h2 #h-convert { "Convert to a deal" }
                            form.stack method="post" action={"/leads/" (l.id) "/convert"} {
                                (csrf_field(&csrf))
                                label for="cv-title" { "Deal title (blank: from the company or name)" }
                                input #cv-title name="title" maxlength="200";
                                label for="cv-value" { "Value" }
                                input #cv-value name="value" type="number" min="0" step="0.01";
                                button type="submit" { "Convert" }
                            }
                        }
                    }
                }
            }
        }
        div.grid {
            section.panel aria-labelledby="h-deals" {
                h2 #h-deals { "Deals (" (v.totals.deals) ")" }
                ul.list { @for d in &v.deals { li { a href={"/deals/" (d.id)} { (d.title) } " · " (d.stage_name) } } }
            }
            section.panel aria-labelledby="h-acts" {
                h2 #h-acts { "Activities (" (v.totals.activities) ")" }
                ol.timeline {
                    @for a in &v.activities {
                        li { span.kind { (a.activity_type.replace('_', " ")) } " " (text(&a.subject.0)) " " span.when { (when(a.occurred_at.0)) } }
                    }
                }
            }
            section.panel aria-labelledby="h-ltasks" {
                h2 #h-ltasks { "Tasks (" (v.totals.tasks) ")" }
                ul.list { @for t in &v.tasks { li class=[t.overdue.then_some("overdue")] { (t.title) " · " (word(&t.status)) } } }
            }
            section.panel aria-labelledby="h-lmail" {
                h2 #h-lmail { "Email (" (v.totals.emails) ")" }
                ul.list { @for m in &v.emails { li { (m.subject) " · " (word(&m.direction)) " " span.when { (when(m.created_at.0)) } } } }
            }
        }
    }
}

/// The edit form.
#[derive(serde::Deserialize)]
pub struct EditForm {
    csrf: String,
    version: i64,
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    title: String,
    company_name: String,
    status: Option<String>,
}

/// A text field of the edit form: blank clears it.
fn set(s: String) -> MaybeUndefined<String> {
    match given(s) {
        Some(v) => MaybeUndefined::Value(v),
        None => MaybeUndefined::Null,
    }
}

/// Back to the lead's page, or the page again with why the change was refused.
async fn lead_outcome<T>(state: &AppState, id: String, outcome: Outcome<T>) -> Response {
    outcome
        .answer(
            async |_, _| see_other(&format!("/leads/{id}")),
            async |v, status, why| render_lead(state, &v, id.clone(), status, Some(&why)).await,
        )
        .await
}

/// `POST /leads/{id}/edit`.
#[poem::handler]
pub async fn edit(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<EditForm>,
) -> Response {
    let (lead_id, csrf) = (id.clone(), f.csrf.clone());
    let outcome = super::change(req, &state, &csrf, Scope::Write, move |tx, p, now| {
        let status = match f.status.as_deref() {
            None => None,
            Some("new") => Some(SettableLeadStatus::New),
            Some("contacted") => Some(SettableLeadStatus::Contacted),
            Some("qualified") => Some(SettableLeadStatus::Qualified),
            Some("lost") => Some(SettableLeadStatus::Lost),
            Some(_) => {
                return Err(DomainError::invalid(
                    "status",
                    "must be new, contacted, qualified or lost",
                ))
            }
        };
        let patch = LeadPatch {
            first_name: set(f.first_name),
            last_name: set(f.last_name),
            email: set(f.email).map_value(Shaped::new),
            phone: set(f.phone),
            title: set(f.title),
            company_name: set(f.company_name),
            status,
            ..Default::default()
        };
        leads::update(tx, p, &lead_id, patch, Some(f.version), now)
    })
    .await;
    lead_outcome(&state, id, outcome).await
}

/// The assign form.
#[derive(serde::Deserialize)]
pub struct AssignForm {
    csrf: String,
    user_id: String,
}

/// `POST /leads/{id}/assign`.
#[poem::handler]
pub async fn assign(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<AssignForm>,
) -> Response {
    let lead_id = id.clone();
    let outcome = super::change(req, &state, &f.csrf, Scope::Write, move |tx, p, now| {
        leads::assign(tx, p, &lead_id, &f.user_id, now)
    })
    .await;
    lead_outcome(&state, id, outcome).await
}

/// The convert form.
#[derive(serde::Deserialize)]
pub struct ConvertForm {
    csrf: String,
    title: String,
    value: String,
}

/// `POST /leads/{id}/convert`: to the new deal's page.
#[poem::handler]
pub async fn convert(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<ConvertForm>,
) -> Response {
    let (lead_id, csrf) = (id.clone(), f.csrf.clone());
    let outcome = super::change(req, &state, &csrf, Scope::Write, move |tx, p, now| {
        let mut issues = Issues::new();
        let value = match f.value.trim() {
            "" => None,
            v => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .or_else(|| {
                    issues.add("value", "must be a number, 0 or more");
                    None
                }),
        };
        let input = ConvertLead {
            title: given(f.title).map(|t| Shaped::checked(&mut issues, "title", t)),
            value,
            ..Default::default()
        };
        issues.finish()?;
        deals::convert_lead(tx, p, &lead_id, input, now)
    })
    .await;
    match outcome {
        Outcome::Done(_, conversion) => see_other(&format!("/deals/{}", conversion.deal.id)),
        other => lead_outcome(&state, id, other).await,
    }
}
