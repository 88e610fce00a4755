//! The deal context: a deal with its lead, company, intelligence and what is due, in one read.

use super::*;

/// A lead as the deal view shows it.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct LeadSummary {
    /// `lead_...`
    pub id: String,
    /// Full name.
    pub name: String,
    /// Email.
    pub email: Nullable<String>,
    /// Job title.
    pub title: Nullable<String>,
    /// Status.
    pub status: LeadStatus,
}

/// A company as the deal view shows it.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct CompanySummary {
    /// `co_...`
    pub id: String,
    /// Name.
    pub name: String,
    /// Domain.
    pub domain: Nullable<String>,
    /// Industry.
    pub industry: Nullable<String>,
}

/// A deal with everything an agent needs to act on it, in one response.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct DealContext {
    /// The deal.
    #[oai(flatten)]
    #[serde(flatten)]
    pub deal: Deal,
    /// Its stage.
    pub stage: Stage,
    /// Its lead, summarized.
    pub lead: Nullable<LeadSummary>,
    /// Its company, summarized.
    pub company: Nullable<CompanySummary>,
    /// The open task due soonest (undated ones last).
    pub next_task: Nullable<Task>,
    /// The most recent activity.
    pub last_activity: Nullable<Activity>,
    /// How many tasks are open.
    pub open_tasks_count: i64,
    /// How many notes it has.
    pub notes_count: i64,
}

/// Builds a lead's one-line summary.
pub fn summarize_lead(l: &Lead) -> LeadSummary {
    let name = [l.first_name.as_deref(), l.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    LeadSummary {
        id: l.id.clone(),
        name: if name.is_empty() {
            l.email.0.clone().unwrap_or_default()
        } else {
            name
        },
        email: l.email.clone(),
        title: l.title.clone(),
        status: l.status,
    }
}

pub(super) fn summarize_company(c: Company) -> CompanySummary {
    CompanySummary {
        id: c.id,
        name: c.name,
        domain: c.domain,
        industry: c.industry,
    }
}

/// The deal with its full context.
pub fn context(
    conn: &Connection,
    org_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<DealContext> {
    let mut deal = get(conn, org_id, id)?;
    annotate_risk(conn, org_id, std::slice::from_mut(&mut deal), now)?;
    let stage = pipelines::get_stage(conn, org_id, &deal.stage_id)?;
    let lead = match &deal.lead_id {
        Nullable(Some(l)) => leads::find(conn, org_id, l)?.map(|l| summarize_lead(&l)),
        Nullable(None) => None,
    };
    let company = match &deal.company_id {
        Nullable(Some(c)) => companies::find(conn, org_id, c)?.map(summarize_company),
        Nullable(None) => None,
    };
    let next_task = conn
        .cached_row(
            &format!(
                "SELECT {} FROM tasks WHERE deal_id = ?1 AND status = 'open'
                 ORDER BY due_at IS NULL, due_at, created_at LIMIT 1",
                tasks::COLUMNS
            ),
            params![id],
            tasks::mapper(now),
        )
        .optional()?;
    let last_activity = conn
        .cached_row(
            &format!(
                "SELECT {} FROM activities WHERE deal_id = ?1 ORDER BY occurred_at DESC, id DESC LIMIT 1",
                activities::COLUMNS
            ),
            params![id],
            activities::from_row,
        )
        .optional()?;
    let open_tasks_count = conn.cached_row(
        "SELECT COUNT(*) FROM tasks WHERE deal_id = ?1 AND status = 'open'",
        params![id],
        |r| r.get(0),
    )?;
    let notes_count = conn.cached_row(
        "SELECT COUNT(*) FROM notes WHERE deal_id = ?1",
        params![id],
        |r| r.get(0),
    )?;
    Ok(DealContext {
        deal,
        stage,
        lead: Nullable(lead),
        company: Nullable(company),
        next_task: Nullable(next_task),
        last_activity: Nullable(last_activity),
        open_tasks_count,
        notes_count,
    })
}
