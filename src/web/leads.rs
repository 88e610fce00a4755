//! Leads: a searchable, filterable, paged list with the new-lead form; CSV import with the
//! row-by-row report, and export of what the list shows. One lead's page is in lead.rs.

use std::collections::HashMap;
use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Multipart, Query};
use poem::{IntoResponse, Request, Response};

use super::shell::{self, csrf_field, notice, word, Section};
use super::{failure, html, message_of, see_other, status_of, urlencode, Viewer};
use crate::api::csv::{import_as, CsvDownload};
use crate::domain::auth::Scope;
use crate::domain::deals;
use crate::domain::leads::{self, Lead, LeadFilter, NewLead};
use crate::domain::listing::{ListPage, Paging};
use crate::domain::sheets::{self, leads::LeadImport, ImportResult, OnDuplicate, ReadOptions};
use crate::domain::users::{self, User, UserFilter};
use crate::domain::{DomainError, DomainResult};
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
pub(super) fn team(c: &rusqlite::Connection, org: &str) -> DomainResult<Vec<User>> {
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

pub(super) fn name_of(l: &Lead) -> String {
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

pub(super) fn owner_options(team: &[User], chosen: Option<&str>, blank: &str) -> Markup {
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

pub(super) fn given(s: String) -> Option<String> {
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
