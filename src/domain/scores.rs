//! Keeps every lead's `score` current and explains it (the rules are in
//! `crate::rules::lead_score`). A score is derived data: refreshing it bumps no version
//! and emits no event.

use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension};

use super::error::{DomainError, DomainResult};
use crate::clock::{Millis, DAY_MS};
use crate::db::CachedRow;
use crate::rules::lead_score::{self, Icp, LeadFacts, LeadScore, ENGAGEMENT_WINDOW_DAYS};
use crate::timefmt::Timestamp;

/// A lead's score with its breakdown.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct LeadScoreView {
    /// The lead.
    pub lead_id: String,
    /// The score and its three parts, each with its factors.
    #[oai(flatten)]
    #[serde(flatten)]
    pub breakdown: LeadScore,
    /// When this was computed.
    pub computed_at: Timestamp,
}

/// The organization's ideal customer profile. Read here rather than through `orgs`, which sits
/// above: changing the profile rescores the organization's leads.
fn icp(conn: &Connection, org_id: &str) -> DomainResult<Icp> {
    let json: String = conn
        .cached_row(
            "SELECT icp FROM organizations WHERE id = ?1",
            params![org_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(DomainError::NotFound("organization"))?;
    Ok(serde_json::from_str(&json).unwrap_or_default())
}

fn facts(
    conn: &Connection,
    org_id: &str,
    lead_id: &str,
    now: Millis,
) -> DomainResult<Option<LeadFacts>> {
    let row = conn
        .prepare_cached(
            "SELECT l.first_name IS NOT NULL, l.last_name IS NOT NULL, l.email IS NOT NULL,
                    l.phone IS NOT NULL, l.title, l.company_id IS NOT NULL OR l.company_name IS NOT NULL,
                    l.country, c.industry, c.size
             FROM leads l LEFT JOIN companies c ON c.id = l.company_id
             WHERE l.org_id = ?1 AND l.id = ?2",
        )?
        .query_row(params![org_id, lead_id], |r| {
            Ok(LeadFacts {
                first_name: r.get(0)?,
                last_name: r.get(1)?,
                email: r.get(2)?,
                phone: r.get(3)?,
                title: r.get(4)?,
                company: r.get(5)?,
                country: r.get(6)?,
                industry: r.get(7)?,
                company_size: r.get(8)?,
                ..LeadFacts::default()
            })
        })
        .optional()?;
    let Some(mut f) = row else {
        return Ok(None);
    };
    let since = now - ENGAGEMENT_WINDOW_DAYS * DAY_MS;
    let mut stmt = conn.prepare_cached(
        "SELECT type, occurred_at FROM activities
         WHERE lead_id = ?1 AND occurred_at >= ?2 AND type <> 'stage_changed'",
    )?;
    let mut rows = stmt.query(params![lead_id, since])?;
    while let Some(r) = rows.next()? {
        let kind: String = r.get(0)?;
        let at: i64 = r.get(1)?;
        if kind == "email_received" {
            f.last_reply_at = Some(f.last_reply_at.map_or(at, |t: i64| t.max(at)));
        }
        f.activity_times.push(at);
    }
    Ok(Some(f))
}

/// The score of lead `id` with its breakdown, as of `now`.
pub fn breakdown(
    conn: &Connection,
    org_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<LeadScoreView> {
    let f = facts(conn, org_id, id, now)?.ok_or(DomainError::NotFound("lead"))?;
    let icp = icp(conn, org_id)?;
    Ok(LeadScoreView {
        lead_id: id.to_string(),
        breakdown: lead_score::score(&f, &icp, now),
        computed_at: Timestamp(now),
    })
}

/// The score a new lead starts with, before it is stored: what [`refresh`] would give it right
/// after (a new lead has no activities yet), without the read-back and the extra row update
/// (creating a lead is the hottest write). `facts` are the lead's own; the company's industry
/// and size are read here from `company_id`.
pub fn of_new_lead(
    conn: &Connection,
    org_id: &str,
    mut facts: LeadFacts,
    company_id: Option<&str>,
    now: Millis,
) -> DomainResult<i64> {
    if let Some(company_id) = company_id {
        (facts.industry, facts.company_size) = conn
            .prepare_cached("SELECT industry, size FROM companies WHERE id = ?1")?
            .query_row(params![company_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or_default();
    }
    let icp = icp(conn, org_id)?;
    Ok(lead_score::score(&facts, &icp, now).score)
}

/// Recomputes and stores the score of lead `id`.
pub fn refresh(conn: &Connection, org_id: &str, id: &str, now: Millis) -> DomainResult<()> {
    let view = breakdown(conn, org_id, id, now)?;
    conn.prepare_cached("UPDATE leads SET score = ?2 WHERE id = ?1")?
        .execute(params![id, view.breakdown.score])?;
    Ok(())
}

/// Recomputes the scores of the organization's leads matching `filter` (a condition on the
/// `leads` table with one `?` for `value`), e.g. after the profile or a company changed.
pub fn refresh_where(
    conn: &Connection,
    org_id: &str,
    filter: &str,
    value: &str,
    now: Millis,
) -> DomainResult<usize> {
    let ids: Vec<String> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT id FROM leads WHERE org_id = ?1 AND {filter}"
        ))?;
        let rows = stmt.query_map(params![org_id, value], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in &ids {
        refresh(conn, org_id, id, now)?;
    }
    Ok(ids.len())
}
