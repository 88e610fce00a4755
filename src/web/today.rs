//! Today: the agenda an agent reads with `GET /agenda`, for the people beside it.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::Data;
use poem::Response;

use super::shell::{self, money, when, Section};
use super::{failure, html, Viewer};
use crate::domain::agenda;
use crate::domain::tasks::Task;
use crate::rules::deal_risk::HIGH_FROM;
use crate::state::AppState;

/// `GET /today`: signals and at-risk deals from the API's default threshold (where `high`
/// begins), overdue and due tasks, unanswered email.
#[poem::handler]
pub async fn page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    let org = viewer.principal.org_id.clone();
    let now = state.clock.now_ms();
    let a = match state
        .db
        .read(move |c| agenda::agenda(c, &org, None, HIGH_FROM, now))
        .await
    {
        Ok(a) => a,
        Err(e) => return failure(&e),
    };
    let t = &a.totals;
    let body = html! {
        h1 { "Today, " (a.today) }
        ul.summary aria-label="Totals" {
            li { strong { (t.signals) } " buying signals" }
            li { strong { (t.at_risk) } " deals at risk" }
            li { strong { (t.overdue_tasks) } " overdue tasks" }
            li { strong { (t.due_today) } " due today" }
            li { strong { (t.unanswered_emails) } " unanswered emails" }
        }
        div.grid {
            section.panel aria-labelledby="h-risk" {
                h2 #h-risk { "Deals at risk" }
                @if a.at_risk.is_empty() { p.empty { "No deal at high risk." } }
                ol.list {
                    @for r in &a.at_risk {
                        li {
                            a href={"/deals/" (r.intelligence.deal_id)} { (r.deal.title) }
                            " · " (money(r.deal.value, &r.deal.currency))
                            " · " span class=(shell::risk(Some(r.intelligence.risk_level)).1) { (r.intelligence.risk_score) }
                            p.action { (r.intelligence.suggested_action) }
                        }
                    }
                }
            }
            section.panel aria-labelledby="h-signals" {
                h2 #h-signals { "Buying signals" }
                @if a.signals.is_empty() { p.empty { "No strong signal." } }
                ol.list {
                    @for s in &a.signals {
                        li {
                            strong { (s.score) } " "
                            @if let Some(d) = &s.deal_id.0 {
                                a href={"/deals/" (d)} { (s.title) }
                            } @else { (s.title) }
                            " · " span.when { (when(s.detected_at.0)) }
                        }
                    }
                }
            }
            (tasks("h-overdue", "Overdue tasks", "Nothing overdue.", "was due ", &a.overdue_tasks))
            (tasks("h-due", "Due today", "Nothing else due today.", "", &a.due_today))
            section.panel aria-labelledby="h-mail" {
                h2 #h-mail { "Unanswered email" }
                @if a.unanswered_emails.is_empty() { p.empty { "Every message has an answer." } }
                ol.list {
                    @for m in &a.unanswered_emails {
                        li {
                            @if let Some(d) = &m.deal_id.0 {
                                a href={"/deals/" (d)} { (m.subject) }
                            } @else if let Some(l) = &m.lead_id.0 {
                                a href={"/leads/" (l)} { (m.subject) }
                            } @else { (m.subject) }
                            " · from " (m.from) " · " span.when { (when(m.created_at.0)) }
                        }
                    }
                }
            }
        }
    };
    html(
        StatusCode::OK,
        shell::page(&viewer, Section::Today, "Today", body),
    )
}

/// A panel of tasks, each linked to its deal when it has one.
fn tasks(id: &str, title: &str, none: &str, due: &str, list: &[Task]) -> Markup {
    html! {
        section.panel aria-labelledby=(id) {
            h2 #(id) { (title) }
            @if list.is_empty() { p.empty { (none) } }
            ol.list {
                @for task in list {
                    li class=[task.overdue.then_some("overdue")] {
                        @if let Some(d) = &task.deal_id.0 {
                            a href={"/deals/" (d)} { (task.title) }
                        } @else { (task.title) }
                        @if let Some(at) = &task.due_at.0 { " · " (due) (when(at.0)) }
                    }
                }
            }
        }
    }
}
