//! Campaigns: the list with each campaign's rates, and a campaign's page with its funnel, its
//! steps' figures and its enrollments. Campaigns are built by agents through the API; people
//! watch them here.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::Response;

use super::shell::{self, when, word, Section};
use super::{failure, html, Viewer};
use crate::domain::campaigns::metrics::{self, CampaignMetrics};
use crate::domain::campaigns::{self, Campaign};
use crate::domain::enrollments::{self, Enrollment, EnrollmentFilter};
use crate::domain::listing::Paging;
use crate::state::AppState;

fn rate(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// `GET /campaigns`.
#[poem::handler]
pub async fn campaigns_page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    let org = viewer.principal.org_id.clone();
    let read = state
        .db
        .read(move |c| {
            let all = campaigns::list(
                c,
                &org,
                None,
                None,
                Some("-created_at"),
                Paging {
                    page: 1,
                    per_page: 100,
                },
            )?;
            all.items
                .into_iter()
                .map(|camp| Ok((metrics::of(c, &org, &camp.id)?, camp)))
                .collect::<crate::domain::DomainResult<Vec<_>>>()
        })
        .await;
    let rows = match read {
        Ok(rows) => rows,
        Err(e) => return failure(&e),
    };
    let body = html! {
        h1 { "Campaigns" }
        p { "Outbound sequences the agents run through the API (" code { "/api/v1/campaigns" } "); their figures here." }
        @if rows.is_empty() { p.empty { "No campaigns yet." } }
        table.keys {
            caption.sr { "Campaigns and their rates" }
            thead {
                tr {
                    th scope="col" { "Campaign" } th scope="col" { "Status" } th scope="col" { "Enrolled" }
                    th scope="col" { "Sent" } th scope="col" { "Opened" } th scope="col" { "Replied" } th scope="col" { "Converted" }
                }
            }
            tbody {
                @for (m, c) in &rows {
                    tr {
                        td { a href={"/campaigns/" (c.id)} { (c.name) } }
                        td { (word(&c.status)) }
                        td.num { (m.total.enrolled) }
                        td.num { (m.total.sent) }
                        td.num { (rate(m.total.open_rate)) }
                        td.num { (rate(m.total.reply_rate)) }
                        td.num { (rate(m.total.conversion_rate)) }
                    }
                }
            }
        }
    };
    html(
        StatusCode::OK,
        shell::page(&viewer, Section::Campaigns, "Campaigns", body),
    )
}

/// `GET /campaigns/{id}`.
#[poem::handler]
pub async fn campaign(
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    let read = state
        .db
        .read(move |c| {
            let camp = campaigns::get(c, &org, &id)?;
            let m = metrics::of(c, &org, &id)?;
            let filter = EnrollmentFilter {
                campaign_id: Some(id.clone()),
                ..Default::default()
            };
            let enrolled = enrollments::list(
                c,
                &org,
                &filter,
                Some("-created_at"),
                Paging {
                    page: 1,
                    per_page: 50,
                },
            )?;
            Ok((camp, m, enrolled.items, enrolled.total))
        })
        .await;
    match read {
        Ok((c, m, e, total)) => html(
            StatusCode::OK,
            shell::page(
                &viewer,
                Section::Campaigns,
                &c.name.clone(),
                campaign_body(&c, &m, &e, total),
            ),
        ),
        Err(e) => failure(&e),
    }
}

fn campaign_body(c: &Campaign, m: &CampaignMetrics, list: &[Enrollment], total: i64) -> Markup {
    let t = &m.total;
    html! {
        p.crumbs { a href="/campaigns" { "Campaigns" } }
        div.titlebar { h1 { (c.name) } span.badge { (word(&c.status)) } }
        ul.summary aria-label="Funnel" {
            li { "Enrolled " strong { (t.enrolled) } }
            li { "Active " strong { (t.active) } }
            li { "Sent " strong { (t.sent) } }
            li { "Opened " strong { (t.opened) } " (" (rate(t.open_rate)) ")" }
            li { "Replied " strong { (t.replied) } " (" (rate(t.reply_rate)) ")" }
            li { "Bounced " strong { (t.bounced) } }
            li { "Unsubscribed " strong { (t.unsubscribed) } }
            li { "Converted " strong { (t.converted) } " (" (rate(t.conversion_rate)) ")" }
        }
        section.panel aria-labelledby="h-steps" {
            h2 #h-steps { "Steps" }
            table.keys {
                thead { tr { th scope="col" { "#" } th scope="col" { "Kind" } th scope="col" { "Sent" } th scope="col" { "Opened" } th scope="col" { "Replied" } } }
                tbody {
                    @for s in &m.steps {
                        tr { td.num { (s.position) } td { (word(&s.kind)) } td.num { (s.metrics.sent) } td.num { (rate(s.metrics.open_rate)) } td.num { (rate(s.metrics.reply_rate)) } }
                    }
                }
            }
        }
        section.panel aria-labelledby="h-enrolled" {
            h2 #h-enrolled { "Enrollments (" (total) @if total > list.len() as i64 { ", the newest " (list.len()) } ")" }
            table.keys {
                thead { tr { th scope="col" { "Lead" } th scope="col" { "State" } th scope="col" { "Steps run" } th scope="col" { "Next" } } }
                tbody {
                    @for e in list {
                        tr {
                            td {
                                @if let Some(l) = &e.lead_id.0 {
                                    a href={"/leads/" (l)} { (e.email.0.as_deref().unwrap_or(l)) }
                                } @else { (e.email.0.as_deref().unwrap_or("")) }
                            }
                            td {
                                (word(&e.status))
                                @if let Some(r) = &e.stop_reason.0 { " (" (word(r)) ")" }
                            }
                            td.num { (e.steps_run) }
                            td { (e.next_run_at.0.as_ref().map(|t| when(t.0)).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}
