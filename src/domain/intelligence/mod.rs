//! Gathers the facts the intelligence rules need, straight from the database, and serves the
//! deal intelligence and at-risk views. The rules themselves live in `crate::rules`.

use std::collections::HashMap;
use std::sync::Arc;

use poem_openapi::Object;
use rusqlite::{params, Connection, Row};

use super::error::{DomainError, DomainResult};
use super::listing::{ListPage, Paging};
use super::nullable::Nullable;
use super::terms::Term;
use super::validate::Currency;
use crate::clock::Millis;
use crate::db::memo;
use crate::rules::deal_risk::{self, DealFacts, RiskLevel};
use crate::rules::Factor;
use crate::timefmt::{self, Timestamp};

mod gather;
mod open_deals;
pub use gather::gather;
use gather::{add_contacts, gather_with, stage_refs, Depth};

/// Activity types that mean the buyer engaged.
pub const ENGAGEMENT_TYPES: [&str; 2] = ["email_opened", "email_received"];

/// A deal's risk, in the reference shape plus its factors.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct DealIntelligence {
    /// The deal.
    pub deal_id: String,
    /// 0–100: the sum of `factors`.
    pub risk_score: i64,
    /// none (closed), low < 30 ≤ medium < 70 ≤ high < 85 ≤ critical.
    pub risk_level: RiskLevel,
    /// Whole days in the current stage.
    pub days_in_stage: i64,
    /// Whole days since the last activity (or since creation, with none).
    pub days_since_activity: i64,
    /// The factors as sentences, largest first.
    pub risk_factors: Vec<String>,
    /// The one concrete thing to do next.
    pub suggested_action: String,
    /// Each rule's contribution; the points add up to `risk_score`.
    pub factors: Vec<Factor>,
    /// When this was computed.
    pub computed_at: Timestamp,
}

/// A deal at risk: its risk, and enough of the deal to act on it without another call.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct AtRiskDeal {
    /// The risk, as `GET /deals/{id}/intelligence` gives it.
    #[oai(flatten)]
    #[serde(flatten)]
    pub intelligence: DealIntelligence,
    /// The deal in brief.
    pub deal: DealBrief,
}

/// A deal in brief.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct DealBrief {
    /// What is being sold.
    pub title: String,
    /// Amount in major units of `currency`.
    pub value: f64,
    /// ISO 4217.
    pub currency: Term<Currency>,
    /// Its stage.
    pub stage_id: String,
    /// The stage's name.
    pub stage_name: String,
    /// The user who owns it.
    pub owner_id: Nullable<String>,
    /// The lead it came from.
    pub lead_id: Nullable<String>,
    /// The lead's name (or email, without one).
    pub lead_name: Nullable<String>,
    /// The company it is with.
    pub company_name: Nullable<String>,
}

/// The briefs of `ids`' deals, by id, read in the caller's snapshot. `lead_name` holds the
/// lead's email here; the caller puts the name [`add_contacts`] read in front of it.
fn briefs(
    conn: &Connection,
    org_id: &str,
    ids: &[String],
) -> DomainResult<HashMap<String, DealBrief>> {
    // `+d.org_id`: the page's ids are looked up by primary key. Left free to use the
    // organization index, SQLite walks every deal of the organization to find 25.
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.title, d.value, d.currency, d.stage_id, s.name, d.owner_id, d.lead_id,
                l.email, c.name
         FROM deals d JOIN stages s ON s.id = d.stage_id
         LEFT JOIN leads l ON l.id = d.lead_id
         LEFT JOIN companies c ON c.id = d.company_id
         WHERE d.id IN (SELECT value FROM json_each(?2)) AND +d.org_id = ?1",
    )?;
    let ids = serde_json::to_string(ids).map_err(|e| DomainError::Internal(e.to_string()))?;
    let rows = stmt.query_map(params![org_id, ids], |r| {
        let currency: String = r.get(3)?;
        Ok((
            r.get::<_, String>(0)?,
            DealBrief {
                title: r.get(1)?,
                value: super::validate::minor_to_money(r.get(2)?, &currency),
                currency: Term::known(currency),
                stage_id: r.get(4)?,
                stage_name: r.get(5)?,
                owner_id: r.get(6)?,
                lead_id: r.get(7)?,
                lead_name: r.get(8)?,
                company_name: r.get(9)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Everything gathered about one deal.
#[derive(Debug, Clone)]
pub struct GatheredDeal {
    /// The deal's id.
    pub id: String,
    /// Its stage.
    pub stage_id: Arc<str>,
    /// Its lead.
    pub lead_id: Option<String>,
    /// The rules' input.
    pub facts: DealFacts,
    /// Ids of its overdue tasks, in the order of `facts.overdue_tasks`.
    pub overdue_task_ids: Vec<String>,
    /// Ids of opens and replies in the high-engagement window.
    pub recent_engagement: Vec<String>,
}

/// A stage as the rules see it: id, name, rotting days (shared, not copied, per deal).
pub(super) type StageRef = (Arc<str>, Arc<str>, Option<i64>);

/// The columns of a deal that its facts come from, in the order [`gather_with`] reads them.
macro_rules! deal_facts {
    () => {
        "d.id, d.status, d.value, d.stage_id, d.stage_entered_at, \
         coalesce(d.last_activity_at, d.created_at), d.expected_close_date, d.lead_id, \
         d.open_tasks, d.first_due_at, d.second_due_at, d.third_due_at, d.last_reply_at, \
         d.last_open_at"
    };
}

/// Every open deal's facts in id order, from one covering index (`deals_org_status_facts`):
/// the scan that ranking by risk is built on (benchmarks time it bare, as its floor).
pub const OPEN_DEAL_FACTS: &str = concat!(
    "SELECT ",
    deal_facts!(),
    " FROM deals d WHERE d.org_id = ?1 AND d.status = 'open' ORDER BY d.id"
);

/// [`OPEN_DEAL_FACTS`] of the deals one user (`?2`) owns.
const OPEN_DEAL_FACTS_OF_OWNER: &str = concat!(
    "SELECT ",
    deal_facts!(),
    " FROM deals d WHERE d.org_id = ?1 AND d.status = 'open' AND d.owner_id = ?2 ORDER BY d.id"
);

pub(crate) use deal_facts;

/// A deal's facts from the columns of [`deal_facts!`] that start at column `first` of `r`,
/// with its stage's name and rotting days and the organization's average open value. With
/// `kept`, the counts the deal keeps (migration 8) are taken as of `now`, which is all a score
/// needs; without, they are left empty for the caller to count from the tasks and activities.
pub(crate) fn facts_from_row(
    r: &Row<'_>,
    first: usize,
    stage: (Arc<str>, Option<i64>),
    average: f64,
    now: Millis,
    kept: bool,
) -> rusqlite::Result<DealFacts> {
    Ok(RawFacts::read(r, first, kept)?.facts(stage, average, now))
}

/// What a deal's own row says of its facts (the columns of [`deal_facts!`] but its id and stage),
/// before its stage, the organization's average and the clock are applied: plain numbers, so a
/// scan reads them without allocating and [`open_deals`] keeps them.
#[derive(Clone, Copy)]
pub(crate) struct RawFacts {
    status: &'static str,
    value: i64,
    stage_entered_at: Millis,
    last_touch_at: Millis,
    expected_close_at: Option<Millis>,
    open_tasks: i64,
    due: [Option<Millis>; 3],
    last_reply_at: Option<Millis>,
    last_open_at: Option<Millis>,
}

impl RawFacts {
    /// Reads the columns of [`deal_facts!`] that start at column `first` of `r`; without
    /// `kept`, the counts the deal keeps are left empty.
    fn read(r: &Row<'_>, first: usize, kept: bool) -> rusqlite::Result<Self> {
        let status = match r.get_ref(first + 1)?.as_str()? {
            "won" => "won",
            "lost" => "lost",
            _ => "open",
        };
        let mut facts = RawFacts {
            status,
            value: r.get(first + 2)?,
            stage_entered_at: r.get(first + 4)?,
            last_touch_at: r.get(first + 5)?,
            expected_close_at: r
                .get_ref(first + 6)?
                .as_str_or_null()?
                .and_then(timefmt::date_to_ms),
            open_tasks: 0,
            due: [None; 3],
            last_reply_at: None,
            last_open_at: None,
        };
        if kept {
            facts.open_tasks = r.get(first + 8)?;
            for (i, due) in facts.due.iter_mut().enumerate() {
                *due = r.get(first + 9 + i)?;
            }
            facts.last_reply_at = r.get(first + 12)?;
            facts.last_open_at = r.get(first + 13)?;
        }
        Ok(facts)
    }

    /// The deal's facts in `stage` (its name and rotting days), against `average`, at `now`.
    fn facts(
        &self,
        (stage_name, rotting_days): (Arc<str>, Option<i64>),
        average: f64,
        now: Millis,
    ) -> DealFacts {
        DealFacts {
            status: self.status,
            value: self.value,
            stage_name,
            rotting_days,
            stage_entered_at: self.stage_entered_at,
            last_touch_at: self.last_touch_at,
            expected_close_at: self.expected_close_at,
            average_open_value: average,
            // Spelled out rather than `..Default::default()`, which would build (and drop) a
            // default stage name for every deal scanned.
            overdue_tasks: self
                .due
                .iter()
                .flatten()
                .filter(|d| **d < now)
                .map(|d| (String::new(), *d))
                .collect(),
            open_tasks: self.open_tasks,
            last_reply_at: self.last_reply_at,
            last_open_at: self.last_open_at,
            contact_name: None,
        }
    }
}

/// A deal's risk score and level from its facts: closed deals have level `none`.
pub fn risk_level(facts: &DealFacts, now: Millis) -> (i64, RiskLevel) {
    let score = deal_risk::score(facts, now);
    let level = if facts.status == "open" {
        RiskLevel::of(score)
    } else {
        RiskLevel::None
    };
    (score, level)
}

/// Which deals to gather.
pub enum Scope<'a> {
    /// These deals (any status).
    Ids(&'a [String]),
    /// Every open deal of the organization.
    AllOpen,
}

/// The average value of the organization's open deals (minor units; 0 with none), from the
/// totals that triggers keep (migration 5), so looking at one deal never scans them all.
pub fn average_open_value(conn: &Connection, org_id: &str) -> DomainResult<f64> {
    Ok(rusqlite::OptionalExtension::optional(
        conn.prepare_cached(
            "SELECT CAST(value AS REAL) / deals FROM open_deal_totals WHERE org_id = ?1 AND deals > 0",
        )?
        .query_row(params![org_id], |r| r.get(0)),
    )?
    .unwrap_or(0.0))
}

/// The intelligence of one gathered deal.
pub fn intelligence_of(d: &GatheredDeal, now: Millis) -> DealIntelligence {
    let a = deal_risk::assess(&d.facts, now);
    DealIntelligence {
        deal_id: d.id.clone(),
        risk_score: a.risk_score,
        risk_level: a.risk_level,
        days_in_stage: a.days_in_stage,
        days_since_activity: a.days_since_activity,
        risk_factors: a
            .factors
            .iter()
            .filter(|f| f.points > 0)
            .map(|f| f.detail.clone())
            .collect(),
        suggested_action: a.suggested_action,
        factors: a.factors,
        computed_at: Timestamp(now),
    }
}

/// The intelligence of the deal `id`.
pub fn for_deal(
    conn: &Connection,
    org_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<DealIntelligence> {
    let ids = [id.to_string()];
    let mut gathered = gather(conn, org_id, Scope::Ids(&ids), now)?;
    add_contacts(conn, &mut gathered)?;
    gathered
        .first()
        .map(|d| intelligence_of(d, now))
        .ok_or(DomainError::NotFound("deal"))
}

/// Risk score and level of each deal in `ids` (for lists).
pub fn risk_of(
    conn: &Connection,
    org_id: &str,
    ids: &[String],
    now: Millis,
) -> DomainResult<HashMap<String, (i64, RiskLevel)>> {
    Ok(
        gather_with(conn, org_id, Scope::Ids(ids), now, Depth::Score)?
            .iter()
            .map(|d| (d.id.clone(), risk_level(&d.facts, now)))
            .collect(),
    )
}

/// How many of the riskiest deals a remembered ranking keeps: every page of every list an agent
/// or a person reads in practice (a deeper page is ranked again, not remembered).
const RANKING_KEPT: usize = 1_000;

/// The deals at risk enough, riskiest first: the first `kept` of them (score, time entered the
/// stage, id), and how many there are in all.
struct Ranking {
    top: Vec<(i64, Millis, String)>,
    total: i64,
}

/// Scores every open deal (of `owner_id`, when given) at `now` against `average`, keeping those
/// at `min_score` or more, and ranks the first `kept`.
fn ranking(
    conn: &Connection,
    org_id: &str,
    owner_id: Option<&str>,
    min_score: i64,
    average: f64,
    kept: usize,
    now: Millis,
) -> DomainResult<Ranking> {
    let (stages, unknown_stage) = stage_refs(conn, org_id)?;
    let stage_of = |id: &str| {
        let (_, name, rotting_days) = stages.get(id).unwrap_or(&unknown_stage);
        (name.clone(), *rotting_days)
    };
    // The whole organization's open deals are held in memory between commits: scored from
    // there, with the deals changed since read again.
    if owner_id.is_none() {
        let held = open_deals::with_open_deals(conn, org_id, |held| {
            held.iter()
                .filter_map(|(stage_id, d)| {
                    let facts = d.raw.facts(stage_of(stage_id), average, now);
                    let score = deal_risk::score(&facts, now);
                    (score >= min_score).then(|| (score, facts.stage_entered_at, d.id.to_string()))
                })
                .collect()
        })?;
        if let Some(scored) = held {
            return Ok(rank(scored, kept));
        }
    }
    // Every open deal is scored as it is read and only those at risk enough are kept: a ranking
    // holds no deal's facts, and names only the deals it keeps (storing every deal's facts and
    // ids was a sixth of the ranking's time). The scores compare values against the average
    // the deal triggers keep, which is what a scan would sum, in the same snapshot.
    let mut scored: Vec<(i64, Millis, String)> = Vec::new();
    let mut stmt;
    let mut rows = match owner_id {
        None => {
            stmt = conn.prepare_cached(OPEN_DEAL_FACTS)?;
            stmt.query(params![org_id])?
        }
        Some(owner) => {
            stmt = conn.prepare_cached(OPEN_DEAL_FACTS_OF_OWNER)?;
            stmt.query(params![org_id, owner])?
        }
    };
    while let Some(r) = rows.next()? {
        let facts = facts_from_row(r, 0, stage_of(r.get_ref(3)?.as_str()?), average, now, true)?;
        let score = deal_risk::score(&facts, now);
        if score >= min_score {
            scored.push((score, facts.stage_entered_at, r.get(0)?));
        }
    }
    Ok(rank(scored, kept))
}

/// The first `kept` of the deals `scored` (score, time entered the stage, id), riskiest first
/// (ties: oldest in stage first, then by id), and how many there are.
fn rank(mut scored: Vec<(i64, Millis, String)>, kept: usize) -> Ranking {
    let total = scored.len() as i64;
    // Only the kept part needs ordering: partition the rest away first.
    let order = |a: &(i64, Millis, String), b: &(i64, Millis, String)| {
        b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    if kept > 0 && kept < scored.len() {
        scored.select_nth_unstable_by(kept - 1, order);
    }
    scored.truncate(kept);
    scored.sort_by(order);
    Ranking { top: scored, total }
}

/// Open deals (of `owner_id`, when given) with risk at least `min_score`, riskiest first (ties:
/// oldest in stage first).
///
/// The ranking scans every open deal, so it is remembered until the next commit and for at most
/// a minute of the clock ([`crate::db::memo`]): the agenda, the at-risk list, the overview and
/// the Today page share one scan. The deals of the page are then read whole at `now`.
pub fn at_risk(
    conn: &Connection,
    org_id: &str,
    owner_id: Option<&str>,
    min_score: i64,
    paging: Paging,
    now: Millis,
) -> DomainResult<ListPage<AtRiskDeal>> {
    let average = average_open_value(conn, org_id)?;
    let wanted = paging.offset().saturating_add(paging.limit()) as usize;
    let ranked = if wanted <= RANKING_KEPT {
        let key = format!("at_risk\0{org_id}\0{owner_id:?}\0{min_score}");
        memo::remember(conn, &key, Some(now), || {
            ranking(
                conn,
                org_id,
                owner_id,
                min_score,
                average,
                RANKING_KEPT,
                now,
            )
            .map(Arc::new)
        })?
    } else {
        Arc::new(ranking(
            conn, org_id, owner_id, min_score, average, wanted, now,
        )?)
    };
    let total = ranked.total;
    let ids: Vec<String> = ranked
        .top
        .iter()
        .skip(paging.offset() as usize)
        .take(paging.limit() as usize)
        .map(|(_, _, id)| id.clone())
        .collect();
    // The page is re-read in full (task ids and titles for the suggested actions), in the same
    // snapshot, then put back in ranked order.
    let mut page = gather_with(
        conn,
        org_id,
        Scope::Ids(&ids),
        now,
        Depth::FullWithAverage(average),
    )?;
    page.sort_by_key(|d| ids.iter().position(|id| *id == d.id));
    add_contacts(conn, &mut page)?;
    Ok(ListPage {
        items: {
            let mut briefs = briefs(conn, org_id, &ids)?;
            page.iter()
                .filter_map(|d| {
                    let mut deal = briefs.remove(&d.id)?;
                    if let Some(name) = &d.facts.contact_name {
                        deal.lead_name = Nullable(Some(name.clone()));
                    }
                    Some(AtRiskDeal {
                        deal,
                        intelligence: intelligence_of(d, now),
                    })
                })
                .collect()
        },
        paging,
        total,
    })
}
