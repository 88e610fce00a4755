//! A deal's page: what the agents know of it (intelligence, memory, signals), what happened
//! (timeline, email thread), what is due (tasks), and the forms to act on it.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response};

use super::shell::{self, csrf_field, money, notice, risk_badge, when, word, Section};
use super::{failure, html, see_other, Viewer};
use crate::domain::activities::{self, Activity, ActivityFilter, NewActivity, CLIENT_TYPES};
use crate::domain::auth::Scope;
use crate::domain::deals::{self, DealContext, DealPatch};
use crate::domain::email::{self, Direction, Email, EmailFilter, ReplyEmail, SendEmail};
use crate::domain::intelligence::{self, DealIntelligence};
use crate::domain::listing::Paging;
use crate::domain::memory::{self, MemoryEntry, MemoryFilter};
use crate::domain::notes::{self, Note, NoteFilter};
use crate::domain::signals::{self, Signal, SignalFilter};
use crate::domain::tasks::{self, Task, TaskFilter};
use crate::domain::terms::Term;
use crate::domain::{DomainResult, Issues};
use crate::shape::Shaped;
use crate::state::AppState;

/// Everything the page shows, read in one snapshot.
struct Shown {
    context: DealContext,
    intelligence: DealIntelligence,
    memory: Vec<MemoryEntry>,
    signals: Vec<Signal>,
    tasks: Vec<Task>,
    timeline: Vec<Entry>,
    emails: Vec<Email>,
}

/// One line of the timeline.
enum Entry {
    Activity(Activity),
    Note(Note),
}

impl Entry {
    fn at(&self) -> i64 {
        match self {
            Entry::Activity(a) => a.occurred_at.0,
            Entry::Note(n) => n.created_at.0,
        }
    }
}

const RECENT: Paging = Paging {
    page: 1,
    per_page: 50,
};

fn read(c: &rusqlite::Connection, org: &str, id: &str, now: i64) -> DomainResult<Shown> {
    let context = deals::context(c, org, id, now)?;
    let intelligence = intelligence::for_deal(c, org, id, now)?;
    let memory = memory::list(c, org, id, &MemoryFilter::default(), RECENT)?.items;
    let signals = signals::list(
        c,
        org,
        &SignalFilter {
            deal_id: Some(id.to_string()),
            ..Default::default()
        },
        None,
        RECENT,
    )?
    .items;
    let tasks = tasks::list(
        c,
        org,
        &TaskFilter {
            deal_id: Some(id.to_string()),
            status: Some("open".into()),
            ..Default::default()
        },
        Some("due_at"),
        RECENT,
        now,
    )?
    .items;
    let acts = activities::list(
        c,
        org,
        &ActivityFilter {
            deal_id: Some(id.to_string()),
            ..Default::default()
        },
        Some("-occurred_at"),
        RECENT,
    )?;
    let notes = notes::list(
        c,
        org,
        &NoteFilter {
            deal_id: Some(id.to_string()),
            ..Default::default()
        },
        Some("-created_at"),
        RECENT,
    )?;
    let mut timeline: Vec<Entry> = acts
        .items
        .into_iter()
        .map(Entry::Activity)
        .chain(notes.items.into_iter().map(Entry::Note))
        .collect();
    timeline.sort_by_key(|e| std::cmp::Reverse(e.at()));
    let emails = email::list(c, org, id, &EmailFilter::default(), RECENT)?.items;
    Ok(Shown {
        context,
        intelligence,
        memory,
        signals,
        tasks,
        timeline,
        emails,
    })
}

/// `GET /deals/{id}`.
#[poem::handler]
pub async fn page(viewer: Viewer, state: Data<&Arc<AppState>>, Path(id): Path<String>) -> Response {
    render(&state, &viewer, id, StatusCode::OK, None).await
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    id: String,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    let now = state.clock.now_ms();
    match state.db.read(move |c| read(c, &org, &id, now)).await {
        Ok(shown) => html(
            status,
            shell::page(
                viewer,
                Section::Board,
                &shown.context.deal.title.clone(),
                body(viewer, &shown, now, error),
            ),
        ),
        Err(e) => failure(&e),
    }
}

fn body(viewer: &Viewer, s: &Shown, now: i64, error: Option<&str>) -> Markup {
    let d = &s.context.deal;
    let csrf = viewer.csrf();
    let i = &s.intelligence;
    html! {
        p.crumbs { a href={"/board?pipeline=" (d.pipeline_id)} { "Pipeline" } " › " (s.context.stage.name) }
        div.titlebar {
            h1 { (d.title) }
            (risk_badge(d.risk_level, d.risk_score))
        }
        (notice(error))
        dl.facts {
            dt { "Value" } dd { (money(d.value, &d.currency)) }
            dt { "Stage" } dd { (d.stage_name) " (" (word(&d.status)) ")" }
            dt { "In stage" } dd { (shell::days_since(d.stage_entered_at.0, now)) " days" }
            dt { "Expected close" } dd { (d.expected_close_date.0.as_deref().unwrap_or("—")) }
            @if let Some(lead) = &s.context.lead.0 {
                dt { "Lead" } dd { (lead.name) @if let Some(e) = &lead.email.0 { " <" (e) ">" } }
            }
            @if let Some(co) = &s.context.company.0 {
                dt { "Company" } dd { (co.name) }
            }
        }
        div.grid {
            section.panel aria-labelledby="h-intel" {
                h2 #h-intel { "Intelligence" }
                p.score { "Risk " strong { (i.risk_score) } " / 100 · " (word(&i.risk_level)) }
                p.action { strong { "Suggested: " } (i.suggested_action) }
                table.factors {
                    caption.sr { "Risk factors and their points" }
                    thead { tr { th scope="col" { "Factor" } th scope="col" { "Points" } } }
                    tbody {
                        @for f in &i.factors {
                            tr { td { (f.detail) } td.num { (f.points) } }
                        }
                    }
                }
            }
            section.panel aria-labelledby="h-signals" {
                h2 #h-signals { "Buying signals" }
                @if s.signals.is_empty() { p.empty { "None open." } }
                ul.list {
                    @for g in &s.signals {
                        li { strong { (g.score) } " " (g.title) " · " span.when { (when(g.detected_at.0)) } }
                    }
                }
            }
            section.panel aria-labelledby="h-memory" {
                h2 #h-memory { "Agent memory" }
                @if s.memory.is_empty() { p.empty { "Nothing remembered yet." } }
                ul.list {
                    @for m in &s.memory {
                        li { span.kind { (word(&m.kind)) } " " (m.content) }
                    }
                }
            }
            section.panel aria-labelledby="h-tasks" {
                h2 #h-tasks { "Open tasks" }
                @if s.tasks.is_empty() { p.empty { "No open tasks." } }
                ul.list {
                    @for t in &s.tasks {
                        li class=[t.overdue.then_some("overdue")] {
                            (t.title)
                            @if let Some(due) = &t.due_at.0 { " · due " (when(due.0)) }
                            @if t.overdue { " · " strong { "overdue" } }
                        }
                    }
                }
            }
        }
        @if viewer.can_write() {
            section.panel aria-labelledby="h-edit" {
                h2 #h-edit { "Edit" }
                form.inline method="post" action={"/deals/" (d.id) "/edit"} {
                    (csrf_field(&csrf))
                    input type="hidden" name="version" value=(d.version);
                    label { "Title" input name="title" value=(d.title) required maxlength="200"; }
                    label { "Value" input name="value" type="number" step="0.01" min="0" value=(d.value); }
                    label { "Expected close" input name="expected_close_date" type="date" value=(d.expected_close_date.0.as_deref().unwrap_or("")); }
                    button type="submit" { "Save" }
                }
            }
        }
        div.grid {
            section.panel aria-labelledby="h-timeline" {
                h2 #h-timeline { "Timeline" }
                @if viewer.can_write() {
                    form.stack method="post" action={"/deals/" (d.id) "/activities"} {
                        (csrf_field(&csrf))
                        label for="act-type" { "Log an activity" }
                        select #act-type name="type" {
                            @for t in CLIENT_TYPES { option value=(t) { (t) } }
                        }
                        label for="act-subject" { "Subject" }
                        input #act-subject name="subject" required maxlength="200";
                        label for="act-body" { "Notes" }
                        textarea #act-body name="body" rows="2" {}
                        button type="submit" { "Log activity" }
                    }
                }
                ol.timeline {
                    @for e in &s.timeline {
                        @match e {
                            Entry::Activity(a) => li {
                                span.kind { (a.activity_type.replace('_', " ")) }
                                " " (a.subject.0.as_deref().unwrap_or(""))
                                @if let Some(b) = &a.body.0 { p.body { (b) } }
                                span.when { (when(a.occurred_at.0)) }
                            },
                            Entry::Note(n) => li {
                                span.kind { "note" } " " (n.content)
                                span.when { (when(n.created_at.0)) }
                            },
                        }
                    }
                }
            }
            section.panel aria-labelledby="h-email" {
                h2 #h-email { "Email" }
                @if viewer.can_write() {
                    form.stack method="post" action={"/deals/" (d.id) "/email"} {
                        (csrf_field(&csrf))
                        label for="em-to" { "To" }
                        input #em-to name="to" type="email" required
                            value=(s.context.lead.0.as_ref().and_then(|l| l.email.0.clone()).unwrap_or_default());
                        label for="em-subject" { "Subject" }
                        input #em-subject name="subject" required maxlength="300";
                        label for="em-text" { "Message" }
                        textarea #em-text name="text" rows="4" required {}
                        button type="submit" { "Send" }
                    }
                }
                @if s.emails.is_empty() { p.empty { "No messages yet." } }
                ol.thread {
                    @for m in &s.emails {
                        li class=(word(&m.direction)) {
                            p.head {
                                strong { (m.subject) }
                                " · " (word(&m.direction)) " · " (word(&m.status))
                                " · " span.when { (when(m.created_at.0)) }
                            }
                            p.addr { "From " (m.from) " to " (m.to.join(", ")) }
                            @if let Some(t) = &m.text.0 { p.body { (t) } }
                            @if viewer.can_write() && m.direction == Direction::Inbound {
                                details.reply {
                                    summary { "Reply" }
                                    form.stack method="post" action={"/deals/" (d.id) "/email/" (m.id) "/reply"} {
                                        (csrf_field(&csrf))
                                        label for={"re-" (m.id)} { "Reply to " (m.from) }
                                        textarea #{"re-" (m.id)} name="text" rows="3" required {}
                                        button type="submit" { "Send reply" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The edit form.
#[derive(serde::Deserialize)]
pub struct Edit {
    csrf: String,
    version: i64,
    title: String,
    value: String,
    expected_close_date: String,
}

/// The activity form.
#[derive(serde::Deserialize)]
pub struct LogActivity {
    csrf: String,
    #[serde(rename = "type")]
    kind: String,
    subject: String,
    body: String,
}

/// The email form.
#[derive(serde::Deserialize)]
pub struct Compose {
    csrf: String,
    to: String,
    subject: String,
    text: String,
}

/// Runs a change of the deal page's forms: on success back to the page, on a refusal the page
/// again with the reason (422, 412, 403).
async fn change<F>(req: &Request, state: &AppState, id: String, csrf: &str, f: F) -> Response
where
    F: FnOnce(&crate::db::Tx<'_>, &crate::domain::auth::Principal, i64) -> DomainResult<()>
        + Send
        + 'static,
{
    super::change(req, state, csrf, Scope::Write, f)
        .await
        .answer(
            async |_, _| see_other(&format!("/deals/{id}")),
            async |v, status, why| render(state, &v, id.clone(), status, Some(&why)).await,
        )
        .await
}

/// `POST /deals/{id}/edit`: title, value and expected close, as of the version the form showed.
#[poem::handler]
pub async fn edit(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<Edit>,
) -> Response {
    let deal_id = id.clone();
    change(req, &state, id, &f.csrf.clone(), move |tx, p, now| {
        let mut issues = Issues::new();
        let value = match f.value.trim() {
            "" => None,
            v => match v.parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => {
                    issues.add("value", "must be a number");
                    None
                }
            },
        };
        let close = match f.expected_close_date.trim() {
            "" => poem_openapi::types::MaybeUndefined::Null,
            d => poem_openapi::types::MaybeUndefined::Value(Shaped::checked(
                &mut issues,
                "expected_close_date",
                d.to_string(),
            )),
        };
        let patch = DealPatch {
            title: Some(Shaped::checked(&mut issues, "title", f.title)),
            value,
            expected_close_date: close,
            ..Default::default()
        };
        issues.finish()?;
        deals::update(tx, p, &deal_id, patch, Some(f.version), now).map(drop)
    })
    .await
}

/// `POST /deals/{id}/activities`.
#[poem::handler]
pub async fn log_activity(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<LogActivity>,
) -> Response {
    let deal_id = id.clone();
    change(req, &state, id, &f.csrf.clone(), move |tx, p, now| {
        let kind =
            Term::parse(&f.kind).map_err(|e| crate::domain::DomainError::invalid("type", e))?;
        let input = NewActivity {
            activity_type: kind,
            subject: Some(f.subject),
            body: Some(f.body).filter(|b| !b.trim().is_empty()),
            deal_id: Some(deal_id),
            lead_id: None,
            user_id: None,
            occurred_at: None,
            duration_seconds: None,
            outcome: None,
        };
        activities::create(tx, p, input, now).map(drop)
    })
    .await
}

/// `POST /deals/{id}/email`: queued on the deal's inbox like `POST /deals/{id}/emails`.
#[poem::handler]
pub async fn send_email(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<Compose>,
) -> Response {
    let deal_id = id.clone();
    let domain = state.config.email_domain.clone();
    change(req, &state, id, &f.csrf.clone(), move |tx, p, now| {
        let mut issues = Issues::new();
        let to: Vec<String> =
            f.to.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
        let input = SendEmail {
            to: to.into(),
            cc: Default::default(),
            bcc: Default::default(),
            subject: Shaped::checked(&mut issues, "subject", f.subject),
            text: Shaped::checked(&mut issues, "text", f.text),
            html: None,
            track_opens: None,
            unsubscribe_link: None,
        };
        issues.finish()?;
        email::send(tx, p, &deal_id, input, &domain, now).map(drop)
    })
    .await
}

/// The reply form.
#[derive(serde::Deserialize)]
pub struct Reply {
    csrf: String,
    text: String,
}

/// `POST /deals/{id}/email/{message}/reply`: in the message's thread, to its sender, as
/// `POST /deals/{id}/emails/{message}/reply`.
#[poem::handler]
pub async fn reply(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path((id, message)): Path<(String, String)>,
    Form(f): Form<Reply>,
) -> Response {
    let deal_id = id.clone();
    let domain = state.config.email_domain.clone();
    change(req, &state, id, &f.csrf.clone(), move |tx, p, now| {
        let mut issues = Issues::new();
        let input = ReplyEmail {
            text: Shaped::checked(&mut issues, "text", f.text),
            html: None,
            cc: Default::default(),
            track_opens: None,
        };
        issues.finish()?;
        email::reply(tx, p, &deal_id, &message, input, &domain, now).map(drop)
    })
    .await
}
