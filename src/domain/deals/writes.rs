//! Creating, changing and deleting deals.

use super::*;
use crate::domain::changes;

pub(super) fn check_date(issues: &mut Issues, field: &str, date: Option<String>) -> Option<String> {
    let date = date?;
    if timefmt::parse_date(&date).is_none() {
        issues.add(field, "must be a date YYYY-MM-DD");
    }
    Some(date)
}

/// Creates a deal with `actor` as the author; records `deal.created`.
pub fn create_as(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    default_owner: Option<&str>,
    input: NewDeal,
    now: Millis,
) -> DomainResult<Deal> {
    let org = orgs::get(tx, org_id)?;
    let mut issues = Issues::new();
    let title = validate::name(&mut issues, "title", &input.title);
    let currency = input
        .currency
        .clone()
        .unwrap_or_else(|| org.currency.clone());
    let value =
        validate::money_to_minor(&mut issues, "value", input.value.unwrap_or(0.0), &currency);
    let owner_id = input
        .owner_id
        .clone()
        .or_else(|| default_owner.map(str::to_string));
    validate::active_user(tx, &mut issues, "owner_id", org_id, owner_id.as_deref())?;
    let lead = match input.lead_id.as_deref() {
        Some(id) => {
            let lead = leads::find(tx, org_id, id)?;
            if lead.is_none() {
                issues.add_unknown("lead_id", "lead", id);
            }
            lead
        }
        None => None,
    };
    let company_id = input
        .company_id
        .clone()
        .or_else(|| lead.as_ref().and_then(|l| l.company_id.0.clone()));
    validate::reference(
        tx,
        &mut issues,
        "company_id",
        "companies",
        "co",
        org_id,
        company_id.as_deref(),
    )?;
    let close = check_date(
        &mut issues,
        "expected_close_date",
        input.expected_close_date.map(String::from),
    );
    let tags = validate::tags(
        &mut issues,
        "tags",
        input.tags.map(Vec::from).unwrap_or_default(),
    );
    issues.finish()?;
    let pipeline_id = match (&input.pipeline_id, &input.stage_id) {
        (Some(p), _) => {
            pipelines::get(tx, org_id, p)
                .map_err(|_| DomainError::invalid("pipeline_id", unknown("pipeline", p)))?
                .id
        }
        (None, Some(stage_id)) => {
            pipelines::get_stage(tx, org_id, stage_id)
                .map_err(|_| DomainError::invalid("stage_id", unknown("stage", stage_id)))?
                .pipeline_id
        }
        (None, None) => pipelines::default_id(tx, org_id)?,
    };
    let stage = if input.stage_id.is_none() && input.stage.is_none() {
        pipelines::stages_of(tx, org_id, &pipeline_id)?
            .into_iter()
            .next()
            .ok_or_else(|| DomainError::Internal(format!("pipeline {pipeline_id} has no stages")))?
    } else {
        resolve_stage(
            tx,
            org_id,
            &pipeline_id,
            input.stage_id.as_deref(),
            input.stage.as_deref(),
        )?
    };
    let status = DealStatus::from(stage.kind);
    let closed_at = (status != DealStatus::Open).then_some(now);
    let id = new_id("deal");
    tx.execute(
        "INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status,
                            owner_id, lead_id, company_id, expected_close_date, closed_at,
                            stage_entered_at, tags, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?14, ?14)",
        params![
            id,
            org_id,
            title,
            value,
            currency,
            pipeline_id,
            stage.id,
            status.as_str(),
            owner_id,
            input.lead_id,
            company_id,
            close,
            closed_at,
            now,
            validate::tags_to_db(&tags)
        ],
    )?;
    record_history(tx, org_id, &id, None, &stage, actor, None, now)?;
    let deal = get(tx, org_id, &id)?;
    changes::append(tx, org_id, actor, "deal.created", &deal, None, now)?;
    // A deal for the lead (a conversion opens one too) ends its outreach.
    if let Some(lead) = &deal.lead_id.0 {
        crate::domain::enrollments::stop_for_lead(
            tx,
            org_id,
            lead,
            crate::domain::enrollments::StopReason::Converted,
            now,
        )?;
    }
    Ok(deal)
}

/// Creates a deal (owned by the caller unless said otherwise).
pub fn create(tx: &Tx<'_>, p: &Principal, input: NewDeal, now: Millis) -> DomainResult<Deal> {
    create_as(tx, &p.org_id, &Actor::from(p), Some(&p.user_id), input, now)
}

/// Changes a deal (`If-Match` checked); records `deal.updated` with the old values.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: DealPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Deal> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let mut issues = Issues::new();
    let title = match &patch.title {
        Some(t) => validate::name(&mut issues, "title", t),
        None => before.title.clone(),
    };
    let currency = patch
        .currency
        .clone()
        .unwrap_or_else(|| before.currency.clone());
    let value = validate::money_to_minor(
        &mut issues,
        "value",
        patch.value.unwrap_or(before.value),
        &currency,
    );
    let owner_id = validate::merge(patch.owner_id, before.owner_id.0.clone());
    let lead_id = validate::merge(patch.lead_id, before.lead_id.0.clone());
    let company_id = validate::merge(patch.company_id, before.company_id.0.clone());
    validate::active_user(tx, &mut issues, "owner_id", &p.org_id, owner_id.as_deref())?;
    validate::reference(
        tx,
        &mut issues,
        "lead_id",
        "leads",
        "lead",
        &p.org_id,
        lead_id.as_deref(),
    )?;
    validate::reference(
        tx,
        &mut issues,
        "company_id",
        "companies",
        "co",
        &p.org_id,
        company_id.as_deref(),
    )?;
    let close = check_date(
        &mut issues,
        "expected_close_date",
        validate::merge(
            patch.expected_close_date.map_value(String::from),
            before.expected_close_date.0.clone(),
        ),
    );
    let lost_reason = validate::optional_text(
        &mut issues,
        "lost_reason",
        validate::merge(patch.lost_reason, before.lost_reason.0.clone()),
        500,
    );
    let tags = validate::tags(
        &mut issues,
        "tags",
        patch.tags.map(Vec::from).unwrap_or(before.tags.clone()),
    );
    issues.finish()?;
    let written = changes::update(
        tx,
        "deals",
        &p.org_id,
        id,
        &[
            ("title", &title),
            ("value", &value),
            ("currency", &currency),
            ("owner_id", &owner_id),
            ("lead_id", &lead_id),
            ("company_id", &company_id),
            ("expected_close_date", &close),
            ("lost_reason", &lost_reason),
            ("tags", &validate::tags_to_db(&tags)),
        ],
        now,
    )?;
    if !written {
        return Ok(before);
    }
    let after = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    changes::record_update(tx, &p.org_id, &actor, "deal.updated", &before, &after, now)?;
    Ok(after)
}

/// Deletes a deal with its tasks and notes (each with its `deleted` event), its activities and
/// its stage history. A lead converted into it keeps status `converted` with
/// `converted_deal_id` cleared.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Deal> {
    let deal = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    tasks::delete_where(tx, &p.org_id, &actor, "deal_id", id, now)?;
    notes::delete_where(tx, &p.org_id, &actor, "deal_id", id, now)?;
    tx.execute(
        "DELETE FROM activities WHERE org_id = ?1 AND deal_id = ?2",
        params![p.org_id, id],
    )?;
    tx.execute(
        "DELETE FROM deal_stage_history WHERE deal_id = ?1",
        params![id],
    )?;
    tx.execute(
        "UPDATE leads SET converted_deal_id = NULL WHERE org_id = ?1 AND converted_deal_id = ?2",
        params![p.org_id, id],
    )?;
    changes::remove(
        tx,
        "deals",
        &p.org_id,
        id,
        &actor,
        "deal.deleted",
        &deal,
        now,
    )?;
    Ok(deal)
}
