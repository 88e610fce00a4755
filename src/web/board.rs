//! The pipeline board: a column per stage, a card per deal. Cards move by dragging (app.js) or,
//! without a mouse or JavaScript, by each card's "Move to" form; both are the API's move, with
//! the card's version as `If-Match`, so a card someone else moved meanwhile is not moved back.

use std::collections::HashMap;
use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{Request, Response};

use super::shell::{self, csrf_field, money, notice, risk_badge, Section};
use super::{failure, html, message_of, see_other, status_of, urlencode, Viewer};
use crate::domain::auth::Scope;
use crate::domain::deals::{self, Board, MoveDeal};
use crate::domain::listing::Paging;
use crate::domain::users::{self, UserFilter};
use crate::domain::DomainError;
use crate::state::AppState;

/// Cards shown per column (the newest); the column's totals count them all.
const PER_COLUMN: i64 = 25;

/// `?pipeline=`.
#[derive(serde::Deserialize)]
pub struct Which {
    pipeline: Option<String>,
}

/// A card's move, from the drag script or the card's form.
#[derive(serde::Deserialize)]
pub struct Move {
    csrf: String,
    deal_id: String,
    stage_id: String,
    version: i64,
    pipeline: Option<String>,
}

/// `GET /board`.
#[poem::handler]
pub async fn page(viewer: Viewer, state: Data<&Arc<AppState>>, Query(q): Query<Which>) -> Response {
    render(&state, &viewer, q.pipeline, StatusCode::OK, None).await
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    pipeline: Option<String>,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    let now = state.clock.now_ms();
    let read = state
        .db
        .read(move |c| {
            let board = deals::board(c, &org, pipeline.as_deref(), PER_COLUMN, now)?;
            let team = users::list(
                c,
                &org,
                &UserFilter::default(),
                None,
                Paging {
                    page: 1,
                    per_page: 100,
                },
            )?;
            let names: HashMap<String, String> =
                team.items.into_iter().map(|u| (u.id, u.name)).collect();
            Ok((board, names))
        })
        .await;
    match read {
        Ok((board, names)) => html(
            status,
            shell::page(
                viewer,
                Section::Board,
                &format!("{} pipeline", board.pipeline.name),
                body(viewer, &board, &names, now, error),
            ),
        ),
        Err(e) => failure(&e),
    }
}

fn body(
    viewer: &Viewer,
    board: &Board,
    names: &HashMap<String, String>,
    now: i64,
    error: Option<&str>,
) -> Markup {
    let csrf = viewer.csrf();
    let writable = viewer.can_write();
    let pid = &board.pipeline.id;
    html! {
        div.titlebar {
            h1 { (board.pipeline.name) " pipeline" }
            @if board.pipelines.len() > 1 {
                form.switch method="get" action="/board" {
                    label for="pipeline" { "Pipeline" }
                    select #pipeline name="pipeline" {
                        @for p in &board.pipelines {
                            option value=(p.id) selected[p.id == *pid] { (p.name) }
                        }
                    }
                    button type="submit" { "Show" }
                }
            }
        }
        p #board-status.notice role="status" aria-live="polite" {}
        (notice(error))
        div #board.board data-pipeline=(pid) data-writable=(writable) {
            @for col in &board.columns {
                section.column aria-labelledby={"h-" (col.stage.id)} {
                    header {
                        h2 #{"h-" (col.stage.id)} { (col.stage.name) }
                        p.totals {
                            span.count { (col.count) (if col.count == 1 { " deal" } else { " deals" }) }
                            " · "
                            span.sum { (money(col.value, &board.currency)) }
                        }
                    }
                    ul.cards data-stage=(col.stage.id) aria-label={ "Deals in " (col.stage.name) } {
                        @for d in &col.deals {
                            li.card data-deal=(d.id) data-version=(d.version) {
                                a.title href={"/deals/" (d.id)} { (d.title) }
                                p.meta {
                                    span.value { (money(d.value, &d.currency)) }
                                    @if let Some(owner) = d.owner_id.0.as_ref().and_then(|o| names.get(o)) {
                                        " · " span.owner { (owner) }
                                    }
                                }
                                p.meta {
                                    (risk_badge(d.risk_level, d.risk_score))
                                    " "
                                    span.age { (shell::days_since(d.stage_entered_at.0, now)) " d in stage" }
                                }
                                @if writable {
                                    details.move {
                                        summary { "Move" span.sr { " " (d.title) } }
                                        form.move method="post" action="/board/move" {
                                            (csrf_field(&csrf))
                                            input type="hidden" name="deal_id" value=(d.id);
                                            input type="hidden" name="version" value=(d.version);
                                            input type="hidden" name="pipeline" value=(pid);
                                            label.sr for={"mv-" (d.id)} { "Move " (d.title) " to" }
                                            select #{"mv-" (d.id)} name="stage_id" {
                                                @for s in &board.columns {
                                                    option value=(s.stage.id) selected[s.stage.id == d.stage_id] { (s.stage.name) }
                                                }
                                            }
                                            button type="submit" { "Move" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if col.count > col.deals.len() as i64 {
                        p.more { "and " (col.count - col.deals.len() as i64) " older" }
                    }
                }
            }
        }
    }
}

/// `POST /board/move`: the script gets a short JSON answer (`{"version": 4}`, or
/// `{"error": "..."}` with the status), the card's form a new board.
#[poem::handler]
pub async fn move_card(
    req: &Request,
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Form(m): Form<Move>,
) -> Response {
    let scripted = req.header("x-requested-with") == Some("clozup");
    if let Some(resp) = viewer.refusal_of_change(req, &m.csrf, Scope::Write) {
        return if scripted {
            let message = match resp.status() {
                StatusCode::FORBIDDEN if viewer.can_write() => {
                    "This page is out of date; reload it and try again."
                }
                _ => "Your role may look at the board but not move deals.",
            };
            json(resp.status(), serde_json::json!({ "error": message }))
        } else {
            resp
        };
    }
    let (id, stage_id, version) = (m.deal_id, m.stage_id, m.version);
    let moved = state
        .db
        .write({
            let p = viewer.principal.clone();
            let now = state.clock.now_ms();
            move |tx| {
                let input = MoveDeal {
                    stage_id: Some(stage_id),
                    stage: None,
                    lost_reason: None,
                };
                deals::move_to(tx, &p, &id, input, Some(version), now)
            }
        })
        .await;
    match (moved, scripted) {
        (Ok(deal), true) => json(
            StatusCode::OK,
            serde_json::json!({ "version": deal.version }),
        ),
        (Ok(_), false) => {
            let back = match &m.pipeline {
                Some(p) => format!("/board?pipeline={}", urlencode(p)),
                None => "/board".into(),
            };
            see_other(&back)
        }
        (Err(e), true) => json(
            status_of(&e),
            serde_json::json!({ "error": message_of(&e) }),
        ),
        (Err(e @ DomainError::Internal(_)), false) => failure(&e),
        (Err(e), false) => {
            render(
                &state,
                &viewer,
                m.pipeline,
                status_of(&e),
                Some(&message_of(&e)),
            )
            .await
        }
    }
}

/// A short JSON answer for the board's script.
fn json(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}
