//! Converting a lead into a deal.

use super::*;
use crate::domain::changes;
use crate::domain::validate::Name;
use crate::shape::{CalendarDate, Shaped};

/// How to convert a lead; everything is optional.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct ConvertLead {
    /// The deal's title; defaults to "<company or name> deal".
    #[oai(nullable)]
    pub title: Option<Shaped<Name>>,
    /// Major units.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    #[oai(nullable)]
    pub value: Option<f64>,
    /// ISO 4217.
    #[oai(nullable)]
    pub currency: Option<Term<Currency>>,
    /// Defaults to the default pipeline.
    #[oai(nullable)]
    pub pipeline_id: Option<String>,
    /// Defaults to the pipeline's first stage.
    #[oai(nullable)]
    pub stage_id: Option<String>,
    /// Or the stage by name.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub stage: Option<String>,
    /// `YYYY-MM-DD`.
    #[oai(nullable)]
    pub expected_close_date: Option<Shaped<CalendarDate>>,
}

/// The result of a conversion.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Conversion {
    /// The lead, now `converted`.
    pub lead: Lead,
    /// The deal it became.
    pub deal: Deal,
}

/// Longest deal title.
pub const TITLE_MAX: usize = crate::domain::validate::NAME_MAX;

/// A converted lead's deal title when the caller gives none: "<company or name> deal", the name
/// cut so the whole fits [`TITLE_MAX`]. A company name may be 200 characters itself, and a title
/// the caller never sent must not be refused (the contract fuzzer found one).
pub(super) fn default_title(name: &str) -> String {
    const SUFFIX: &str = " deal";
    let name: String = name.chars().take(TITLE_MAX - SUFFIX.len()).collect();
    format!("{}{SUFFIX}", name.trim_end())
}

/// Converts a lead into a deal (in the default pipeline's first stage unless told otherwise),
/// with the lead's company and owner; the lead becomes `converted`. Records `lead.converted`
/// and `deal.created`. A lead already converted is 409 naming its deal.
pub fn convert_lead(
    tx: &Tx<'_>,
    p: &Principal,
    lead_id: &str,
    input: ConvertLead,
    now: Millis,
) -> DomainResult<Conversion> {
    let lead = leads::get(tx, &p.org_id, lead_id)?;
    if lead.status == LeadStatus::Converted {
        return Err(DomainError::Conflict {
            message: "the lead is already converted".into(),
            details: lead
                .converted_deal_id
                .iter()
                .map(|d| FieldIssue::new("converted_deal_id", d.clone()))
                .collect(),
        });
    }
    let summary = summarize_lead(&lead);
    let title = input.title.unwrap_or_else(|| {
        default_title(lead.company_name.as_deref().unwrap_or(&summary.name)).into()
    });
    let actor = Actor::from(p);
    let owner = lead.owner_id.0.clone().unwrap_or_else(|| p.user_id.clone());
    let deal = create_as(
        tx,
        &p.org_id,
        &actor,
        Some(&owner),
        NewDeal {
            title,
            value: input.value,
            currency: input.currency,
            pipeline_id: input.pipeline_id,
            stage_id: input.stage_id,
            stage: input.stage,
            lead_id: Some(lead.id.clone()),
            expected_close_date: input.expected_close_date,
            ..NewDeal::default()
        },
        now,
    )?;
    tx.execute(
        "UPDATE leads SET status = 'converted', converted_deal_id = ?3, converted_at = ?4,
                version = version + 1, updated_at = ?4
         WHERE org_id = ?1 AND id = ?2",
        params![p.org_id, lead.id, deal.id, now],
    )?;
    let after = leads::get(tx, &p.org_id, &lead.id)?;
    changes::record_update(tx, &p.org_id, &actor, "lead.converted", &lead, &after, now)?;
    Ok(Conversion { lead: after, deal })
}
