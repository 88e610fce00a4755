//! Leads: a searchable, filterable, paged list; a lead's 360 page with its edit, assign and
//! convert forms; CSV import with the row-by-row report, and export of what the list shows.

use std::collections::HashMap;
use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Multipart, Path, Query};
use poem::{IntoResponse, Request, Response};
use poem_openapi::types::MaybeUndefined;

use super::shell::{self, csrf_field, notice, when, word, Section};
use super::{failure, html, message_of, see_other, status_of, urlencode, Outcome, Viewer};
use crate::api::csv::{import_as, CsvDownload};
use crate::domain::auth::Scope;
use crate::domain::deals::{self, ConvertLead};
use crate::domain::lead_view::{self, Lead360};
use crate::domain::leads::{self, Lead, LeadFilter, LeadPatch, NewLead, SettableLeadStatus};
use crate::domain::listing::{ListPage, Paging};
use crate::domain::sheets::{self, leads::LeadImport, ImportResult, OnDuplicate, ReadOptions};
use crate::domain::users::{self, User, UserFilter};
use crate::domain::{DomainError, DomainResult, Issues};
use crate::shape::Shaped;
use crate::state::AppState;

const PER_PAGE: i64 = 25;

/// The list's filters, as the form sends them (blank means "any").
#[derive(serde::Deserialize, Default, Clone)]
pub struct Filter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    owner: String,
    page: Option<i64>,
}

impl Filter {
    fn domain(&self) -> LeadFilter {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        LeadFilter {
            q: some(&self.q),
            status: some(&self.status),
            owner_id: some(&self.owner),
            ..Default::default()
        }
    }

    /// The query string of these filters on page `page`.
    fn query(&self, page: i64) -> String {
        format!(
            "q={}&status={}&owner={}&page={page}",
            urlencode(&self.q),
            urlencode(&self.status),
            urlencode(&self.owner)
        )
    }
}

/// The team, for owner names and the assign menus.
fn team(c: &rusqlite::Connection, org: &str) -> DomainResult<Vec<User>> {
    let filter = UserFilter {
        active: Some(true),
        ..Default::default()
    };
    Ok(users::list(
        c,
        org,
        &filter,
        Some("name"),
        Paging {
            page: 1,
            per_page: 100,
        },
    )?
    .items)
}

fn name_of(l: &Lead) -> String {
    deals::summarize_lead(l).name
}

/// `GET /leads`.
#[poem::handler]
pub async fn list(
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Query(f): Query<Filter>,
) -> Response {
    render_list(&state, &viewer, f, StatusCode::OK, None, None).await
}

async fn render_list(
    state: &AppState,
    viewer: &Viewer,
    f: Filter,
    status: StatusCode,
    error: Option<&str>,
    report: Option<&ImportResult>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    let filter = f.domain();
    let number = f.page.unwrap_or(1);
    let read = state
        .db
        .read(move |c| {
            let paging = Paging::new(Some(number), Some(PER_PAGE))?;
            Ok((
                leads::list(c, &org, &filter, Some("-created_at"), paging)?,
                team(c, &org)?,
            ))
        })
        .await;
    match read {
        Ok((listed, team)) => html(
            status,
            shell::page(
                viewer,
                Section::Leads,
                "Leads",
                list_body(viewer, &f, &listed, &team, error, report),
            ),
        ),
        Err(e) => failure(&e),
    }
}

fn owner_options(team: &[User], chosen: Option<&str>, blank: &str) -> Markup {
    html! {
        option value="" { (blank) }
        @for u in team {
            option value=(u.id) selected[chosen == Some(u.id.as_str())] { (u.name) }
        }
    }
}

fn list_body(
    viewer: &Viewer,
    f: &Filter,
    listed: &ListPage<Lead>,
    team: &[User],
    error: Option<&str>,
    report: Option<&ImportResult>,
) -> Markup {
    let csrf = viewer.csrf();
    let names: HashMap<&str, &str> = team
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect();
    let page = listed.paging.page;
    let pages = ((listed.total + PER_PAGE - 1) / PER_PAGE).max(1);
    html! {
        div.titlebar {
            h1 { "Leads" }
            a.button href={"/leads/export?" (f.query(1))} download { "Export CSV" }
        }
        (notice(error))
        @if let Some(r) = report { (import_report(r)) }
        form.filters method="get" action="/leads" role="search" {
            label { "Search" input type="search" name="q" value=(f.q) placeholder="name, email, company"; }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in leads::STATUSES { option value=(s) selected[f.status == *s] { (s) } }
                }
            }
            label { "Owner" select name="owner" { (owner_options(team, Some(f.owner.as_str()), "anyone")) } }
            button type="submit" { "Filter" }
        }
        p.count { (listed.total) " leads" @if pages > 1 { " · page " (page) " of " (pages) } }
        table.leads {
            caption.sr { "Leads matching the filters" }
            thead {
                tr {
                    th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Company" }
                    th scope="col" { "Status" } th scope="col" { "Score" } th scope="col" { "Owner" }
                }
            }
            tbody {
                @for l in &listed.items {
                    tr {
                        td { a href={"/leads/" (l.id)} { (name_of(l)) } }
                        td { (l.email.0.as_deref().unwrap_or("")) }
                        td { (l.company_name.0.as_deref().unwrap_or("")) }
                        td { (word(&l.status)) }
                        td.num { (l.score) }
                        td { (l.owner_id.0.as_deref().and_then(|o| names.get(o).copied()).unwrap_or("")) }
                    }
                }
            }
        }
        nav.pages aria-label="Pages" {
            @if page > 1 { a href={"/leads?" (f.query(page - 1))} rel="prev" { "← Previous" } }
            @if page < pages { a href={"/leads?" (f.query(page + 1))} rel="next" { "Next →" } }
        }
        @if viewer.can_write() {
            div.grid {
                section.panel aria-labelledby="h-new-lead" {
                    h2 #h-new-lead { "New lead" }
                    form.stack method="post" action="/leads" {
                        (csrf_field(&csrf))
                        label for="nl-first" { "First name" } input #nl-first name="first_name" maxlength="100";
                        label for="nl-last" { "Last name" } input #nl-last name="last_name" maxlength="100";
                        label for="nl-email" { "Email" } input #nl-email name="email" type="email" maxlength="254";
                        label for="nl-company" { "Company" } input #nl-company name="company_name" maxlength="200";
                        label for="nl-title" { "Job title" } input #nl-title name="title" maxlength="200";
                        label for="nl-owner" { "Owner" } select #nl-owner name="owner_id" { (owner_options(team, None, "nobody")) }
                        button type="submit" { "Add lead" }
                    }
                }
                section.panel aria-labelledby="h-import" {
                    h2 #h-import { "Import a CSV file" }
                    p { "A header row names the columns (first_name, last_name, email, company, title, phone, country, status, source, tags, owner_email, and the usual spellings of them). Each row is reported." }
                    form.stack method="post" action="/leads/import" enctype="multipart/form-data" {
                        (csrf_field(&csrf))
                        label for="im-dup" { "A row whose email is already a lead" }
                        select #im-dup name="on_duplicate" {
                            option value="skip" { "is skipped" }
                            option value="update" { "updates that lead" }
                            option value="error" { "is an error" }
                        }
                        label for="im-file" { "File" }
                        input #im-file type="file" name="file" accept=".csv,text/csv" required;
                        button type="submit" { "Import" }
                    }
                }
            }
        }
    }
}

fn import_report(r: &ImportResult) -> Markup {
    html! {
        section.panel.report aria-labelledby="h-report" role="status" {
            h2 #h-report { "Import report" }
            p.totals {
                (r.rows) " rows: " strong { (r.created) " created" } ", " (r.updated) " updated, "
                (r.skipped) " skipped, " strong { (r.failed) " failed" }
                " · read as " (r.encoding) ", separated by " (word(&r.delimiter))
            }
            @if !r.unknown_columns.is_empty() {
                p { "Columns not understood (ignored): " (r.unknown_columns.join(", ")) }
            }
            @for (title, rows) in [("Errors", &r.errors), ("Duplicates", &r.duplicates), ("Warnings", &r.warnings)] {
                @if !rows.is_empty() {
                    table.issues {
                        caption { (title) }
                        thead { tr { th scope="col" { "Row" } th scope="col" { "Line" } th scope="col" { "Field" } th scope="col" { "What" } } }
                        tbody {
                            @for i in rows.iter() {
                                tr { td.num { (i.row) } td.num { (i.line) } td { (i.field.0.as_deref().unwrap_or("")) } td { (i.message) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /leads/export`: the leads the filters match, as the API's export writes them.
#[poem::handler]
pub async fn export(
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Query(f): Query<Filter>,
) -> Response {
    let org = viewer.principal.org_id;
    let filter = f.domain();
    if let Err(e) = leads::filters_for(&org, &filter) {
        return failure(&e);
    }
    CsvDownload::stream(&state.db, "leads.csv", move |c, sink| {
        sheets::leads::export(c, &org, &filter, Some("-created_at"), false, sink)
    })
    .into_response()
}

/// The new-lead form.
#[derive(serde::Deserialize)]
pub struct NewLeadForm {
    csrf: String,
    first_name: String,
    last_name: String,
    email: String,
    company_name: String,
    title: String,
    owner_id: String,
}

fn given(s: String) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `POST /leads`.
#[poem::handler]
pub async fn create(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Form(f): Form<NewLeadForm>,
) -> Response {
    let csrf = f.csrf.clone();
    let outcome = super::change(req, &state, &csrf, Scope::Write, move |tx, p, now| {
        let input = NewLead {
            first_name: given(f.first_name),
            last_name: given(f.last_name),
            email: given(f.email).map(Shaped::new),
            phone: None,
            title: given(f.title),
            company_id: None,
            company_name: given(f.company_name),
            country: None,
            status: None,
            source: Some("web app".into()),
            tags: None,
            owner_id: given(f.owner_id),
        };
        leads::create(tx, p, input, now)
    })
    .await;
    outcome
        .answer(
            async |_, made| see_other(&format!("/leads/{}", made.id)),
            async |v, status, why| {
                render_list(&state, &v, Filter::default(), status, Some(&why), None).await
            },
        )
        .await
}

/// `POST /leads/import`: a multipart form with the CSRF token first, then the file.
#[poem::handler]
pub async fn import(
    req: &Request,
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    mut form: Multipart,
) -> Response {
    let (mut csrf, mut on_duplicate, mut file) = (String::new(), OnDuplicate::Skip, None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("on_duplicate") => {
                on_duplicate = match field.text().await.unwrap_or_default().as_str() {
                    "update" => OnDuplicate::Update,
                    "error" => OnDuplicate::Error,
                    _ => OnDuplicate::Skip,
                }
            }
            Some("file") => file = field.bytes().await.ok(),
            _ => {}
        }
    }
    if let Some(resp) = viewer.refusal_of_change(req, &csrf, Scope::Write) {
        return resp;
    }
    let bytes = match file.filter(|b| !b.is_empty()) {
        Some(b) => b,
        None => {
            let e = DomainError::invalid("file", "choose a CSV file to import");
            return render_list(
                &state,
                &viewer,
                Filter::default(),
                status_of(&e),
                Some(&message_of(&e)),
                None,
            )
            .await;
        }
    };
    let options = ReadOptions {
        charset: None,
        delimiter: None,
    };
    let principal = viewer.principal.clone();
    let result = import_as(
        &state,
        principal,
        bytes.to_vec(),
        options,
        on_duplicate,
        LeadImport,
    )
    .await;
    match result {
        Ok(report) => {
            render_list(
                &state,
                &viewer,
                Filter::default(),
                StatusCode::OK,
                None,
                Some(&report),
            )
            .await
        }
        Err(e) => {
            render_list(
                &state,
                &viewer,
                Filter::default(),
                status_of(&e),
                Some(&message_of(&e)),
                None,
            )
            .await
        }
    }
}

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
