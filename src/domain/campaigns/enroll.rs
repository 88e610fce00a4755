//! Enrolling leads: by id, or every lead the lead list's filters select, in one call.

use super::*;
use crate::domain::leads::{self, LeadFilter};
use crate::domain::suppressions;
use crate::timefmt::Timestamp as Instant;

/// The leads to enroll: ids, or the filters `GET /leads` takes (all matching leads).
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct Enroll {
    /// Leads by id (`lead_...`), 1 to 1,000.
    #[oai(nullable, validator(min_items = 1, max_items = 1000))]
    pub lead_ids: Option<Vec<String>>,
    /// Every lead these filters select (as `GET /leads` reads them).
    #[oai(nullable)]
    pub filter: Option<LeadSelection>,
}

/// The lead list's filters, as a body.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct LeadSelection {
    /// Statuses, any of (comma separated).
    #[oai(nullable)]
    pub status: Option<Shaped<leads::LeadStatuses>>,
    /// Owners (`usr_...`), any of (comma separated).
    #[oai(nullable)]
    pub owner_id: Option<String>,
    /// Companies (`co_...`), any of (comma separated).
    #[oai(nullable)]
    pub company_id: Option<String>,
    /// Sources, any of (comma separated).
    #[oai(nullable)]
    pub source: Option<String>,
    /// Countries, any of (comma separated).
    #[oai(nullable)]
    pub country: Option<String>,
    /// A tag the lead carries.
    #[oai(nullable)]
    pub tag: Option<String>,
    /// Created at or after.
    #[oai(nullable)]
    pub created_after: Option<Instant>,
    /// Created before.
    #[oai(nullable)]
    pub created_before: Option<Instant>,
    /// Changed at or after.
    #[oai(nullable)]
    pub updated_since: Option<Instant>,
    /// Text in the name, email or company.
    #[oai(nullable, validator(max_length = 200))]
    pub q: Option<String>,
    /// Score at least (0 to 100).
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "100")))]
    pub score_min: Option<i64>,
    /// Score at most (0 to 100).
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "100")))]
    pub score_max: Option<i64>,
}

impl From<LeadSelection> for LeadFilter {
    fn from(s: LeadSelection) -> Self {
        LeadFilter {
            status: s.status.map(String::from),
            owner_id: s.owner_id,
            company_id: s.company_id,
            source: s.source,
            country: s.country,
            tag: s.tag,
            created_after: s.created_after.map(|t| t.0),
            created_before: s.created_before.map(|t| t.0),
            updated_since: s.updated_since.map(|t| t.0),
            q: s.q,
            score_min: s.score_min,
            score_max: s.score_max,
        }
    }
}

/// Why a lead was not enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No lead of the organization has that id.
    NotFound,
    /// The lead has no email address.
    NoEmail,
    /// The lead's address is on the suppression list.
    Suppressed,
    /// The lead is already running through the campaign.
    AlreadyEnrolled,
}

/// A lead left out.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Skipped {
    /// The lead.
    pub lead_id: String,
    /// Why.
    pub reason: SkipReason,
}

/// What an enrollment call did.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct EnrollResult {
    /// How many leads were enrolled.
    pub enrolled: i64,
    /// How many were left out.
    pub skipped: i64,
    /// The first 100 left out, with why.
    pub skipped_leads: Vec<Skipped>,
}

/// A lead found for enrolling: its id and address.
type Candidate = (String, Option<String>);

/// Most skipped leads an answer lists.
const LISTED: usize = 100;

/// Enrolls leads in campaign `campaign_id`: each lead once while it runs through it, only
/// leads with an address that is not suppressed. Records `enrollment.created` for each.
pub fn enroll(
    tx: &Tx<'_>,
    p: &Principal,
    campaign_id: &str,
    input: Enroll,
    now: Millis,
) -> DomainResult<EnrollResult> {
    let campaign = super::get(tx, &p.org_id, campaign_id)?;
    if matches!(
        campaign.status,
        CampaignStatus::Completed | CampaignStatus::Archived
    ) {
        return Err(DomainError::Conflict {
            message: format!(
                "campaign {campaign_id} is {}; it takes no more leads",
                campaign.status.as_str()
            ),
            details: Vec::new(),
        });
    }
    let candidates: Vec<(String, Option<Candidate>)> = match (input.lead_ids, input.filter) {
        (Some(ids), None) => ids
            .into_iter()
            .map(|id| {
                let found = leads::get(tx, &p.org_id, &id).ok();
                let email = found.map(|l| (l.id.clone(), l.email.0));
                (id, email)
            })
            .collect(),
        (None, Some(selection)) => {
            let mut rows = Vec::new();
            let sort = Sort::parse(None, leads::SORTS)?;
            leads::filters_for(&p.org_id, &selection.into())?.for_each(
                tx,
                "id, email",
                "leads",
                sort,
                "id",
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
                |(id, email)| {
                    rows.push((id.clone(), Some((id, email))));
                    Ok(())
                },
            )?;
            rows
        }
        _ => {
            return Err(DomainError::invalid(
                "body",
                "must give exactly one of `lead_ids` and `filter`",
            ))
        }
    };
    let (_, tz) = super::timing(tx, &campaign)?;
    let first = steps::after(tx, campaign_id, 0)?;
    let next_run = first
        .as_ref()
        .map_or(now, |s| schedule::after(now, s.delay, s.delay_unit, &tz));
    let actor = Actor::from(p);
    let mut enrolled = 0;
    let mut skipped = Vec::new();
    let mut skipped_count = 0;
    for (asked, found) in candidates {
        let reason = match &found {
            None => Some(SkipReason::NotFound),
            Some((_, None)) => Some(SkipReason::NoEmail),
            Some((_, Some(email))) if suppressions::find(tx, &p.org_id, email)?.is_some() => {
                Some(SkipReason::Suppressed)
            }
            Some((lead_id, Some(email))) => {
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, email, anchor_at,
                                                  next_run_at, enrolled_by, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?6, ?6)
                         ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![
                        new_id("enr"),
                        p.org_id,
                        campaign_id,
                        lead_id,
                        email,
                        now,
                        next_run,
                        p.user_id
                    ])?;
                if inserted == 0 {
                    Some(SkipReason::AlreadyEnrolled)
                } else {
                    let id: String = tx.query_row(
                        "SELECT id FROM enrollments WHERE rowid = last_insert_rowid()",
                        [],
                        |r| r.get(0),
                    )?;
                    let e = enrollments::get(tx, &p.org_id, &id)?;
                    changes::append(tx, &p.org_id, &actor, "enrollment.created", &e, None, now)?;
                    enrolled += 1;
                    None
                }
            }
        };
        if let Some(reason) = reason {
            skipped_count += 1;
            if skipped.len() < LISTED {
                skipped.push(Skipped {
                    lead_id: asked,
                    reason,
                });
            }
        }
    }
    tx.queue_work();
    Ok(EnrollResult {
        enrolled,
        skipped: skipped_count,
        skipped_leads: skipped,
    })
}
