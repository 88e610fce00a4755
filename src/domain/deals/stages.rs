//! A deal's way through its pipeline: resolving a stage by id or name, moves (with their
//! history and events), emptying a stage into another, and the history as the API shows it.

use super::*;
use crate::domain::changes;

/// Where to move a deal: `stage_id`, or `stage` by name, within the deal's pipeline.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct MoveDeal {
    /// A stage of the deal's pipeline.
    #[oai(nullable)]
    pub stage_id: Option<String>,
    /// Or the stage's name (case-insensitive), e.g. `Negotiation`.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub stage: Option<String>,
    /// Why it was lost, when moving into a lost stage.
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub lost_reason: Option<String>,
}

/// One stage change of a deal.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct StageChange {
    /// The stage it left (null for the stage it was created in).
    pub from_stage_id: Nullable<String>,
    /// That stage's name.
    pub from_stage_name: Nullable<String>,
    /// The stage it entered (null if that stage was deleted since).
    pub to_stage_id: Nullable<String>,
    /// That stage's name.
    pub to_stage_name: String,
    /// When.
    pub changed_at: Timestamp,
    /// Who moved it.
    pub actor: events::Actor,
    /// The reason given for a loss.
    pub lost_reason: Nullable<String>,
    /// How long it had been in the stage it left, in seconds.
    pub seconds_in_previous_stage: Nullable<i64>,
}

/// Resolves the stage a deal goes to from `stage_id` or `stage` (by name) within a pipeline.
pub(super) fn resolve_stage(
    conn: &Connection,
    org_id: &str,
    pipeline_id: &str,
    stage_id: Option<&str>,
    stage_name: Option<&str>,
) -> DomainResult<Stage> {
    match (stage_id, stage_name) {
        (Some(_), Some(_)) => Err(DomainError::invalid(
            "stage",
            "cannot be given with stage_id; name the stage one way",
        )),
        (Some(id), None) => {
            let stage = pipelines::get_stage(conn, org_id, id)
                .map_err(|_| DomainError::invalid("stage_id", unknown("stage", id)))?;
            // Both exist but do not go together: a conflict between the two, not a bad value.
            if stage.pipeline_id != pipeline_id {
                return Err(DomainError::Conflict {
                    message: format!(
                        "stage {id} belongs to pipeline {}, not {pipeline_id}",
                        stage.pipeline_id
                    ),
                    details: vec![FieldIssue::new("stage_id", "belongs to another pipeline")],
                });
            }
            Ok(stage)
        }
        (None, Some(name)) => pipelines::stage_by_name(conn, org_id, pipeline_id, name)?
            .ok_or_else(|| {
                DomainError::invalid(
                    "stage",
                    format!("names no stage of pipeline {pipeline_id}: `{name}`"),
                )
            }),
        (None, None) => Err(DomainError::invalid("stage_id", "or stage is required")),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn record_history(
    tx: &Tx<'_>,
    org_id: &str,
    deal_id: &str,
    from: Option<&Stage>,
    to: &Stage,
    actor: &Actor,
    lost_reason: Option<&str>,
    now: Millis,
) -> DomainResult<()> {
    tx.execute(
        "INSERT INTO deal_stage_history (id, org_id, deal_id, from_stage_id, from_stage_name,
                                         to_stage_id, to_stage_name, changed_at, actor_type,
                                         actor_id, lost_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            new_id("hist"),
            org_id,
            deal_id,
            from.map(|s| &s.id),
            from.map(|s| &s.name),
            to.id,
            to.name,
            now,
            actor.kind,
            actor.id,
            lost_reason
        ],
    )?;
    Ok(())
}

/// Moves a deal to another stage of its pipeline. Entering a won or lost stage closes it
/// (`closed_at`, and `lost_reason` for a loss); leaving one reopens it. Every move writes a
/// history row, a `stage_changed` activity and the events `deal.updated`, `deal.stage_changed`
/// and `deal.won` or `deal.lost`. Moving to the stage it is in changes nothing. With
/// `expected_version` (`If-Match`), a deal changed since that version is not moved: a board that
/// shows an old card must not undo someone else's move.
pub fn move_to(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    input: MoveDeal,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Deal> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let target = resolve_stage(
        tx,
        &p.org_id,
        &before.pipeline_id,
        input.stage_id.as_deref(),
        input.stage.as_deref(),
    )?;
    move_deal(
        tx,
        &p.org_id,
        &Actor::from(p),
        Some(&p.user_id),
        before,
        &target,
        input.lost_reason,
        now,
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn move_deal(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    user_id: Option<&str>,
    before: Deal,
    target: &Stage,
    lost_reason: Option<String>,
    now: Millis,
) -> DomainResult<Deal> {
    let mut issues = Issues::new();
    let lost_reason = validate::optional_text(&mut issues, "lost_reason", lost_reason, 500);
    issues.finish()?;
    if target.id == before.stage_id {
        return Ok(before);
    }
    let from = pipelines::get_stage(tx, org_id, &before.stage_id)?;
    let status = DealStatus::from(target.kind);
    let closed_at = match status {
        DealStatus::Open => None,
        _ => Some(now),
    };
    let lost_reason = match status {
        DealStatus::Lost => lost_reason.or(before.lost_reason.0.clone()),
        _ => None,
    };
    tx.execute(
        "UPDATE deals SET stage_id = ?3, status = ?4, closed_at = ?5, lost_reason = ?6,
                stage_entered_at = ?7, version = version + 1, updated_at = ?7
         WHERE org_id = ?1 AND id = ?2",
        params![
            org_id,
            before.id,
            target.id,
            status.as_str(),
            closed_at,
            lost_reason,
            now
        ],
    )?;
    record_history(
        tx,
        org_id,
        &before.id,
        Some(&from),
        target,
        actor,
        lost_reason.as_deref(),
        now,
    )?;
    activities::record(
        tx,
        org_id,
        actor,
        user_id,
        Term::known("stage_changed"),
        activities::Details {
            subject: Some(format!("{} → {}", from.name, target.name)),
            body: lost_reason.clone(),
            deal_id: Some(before.id.clone()),
            occurred_at: Some(Timestamp(now)),
            ..Default::default()
        },
        now,
    )?;
    let after = get(tx, org_id, &before.id)?;
    let previous = changes::record_update(tx, org_id, actor, "deal.updated", &before, &after, now)?;
    changes::append(
        tx,
        org_id,
        actor,
        "deal.stage_changed",
        &after,
        Some(previous.clone()),
        now,
    )?;
    match status {
        DealStatus::Won if before.status != DealStatus::Won => {
            changes::append(tx, org_id, actor, "deal.won", &after, Some(previous), now)?;
        }
        DealStatus::Lost if before.status != DealStatus::Lost => {
            changes::append(tx, org_id, actor, "deal.lost", &after, Some(previous), now)?;
        }
        _ => {}
    }
    Ok(after)
}

/// Moves every deal out of `stage_id` into `move_to` (another stage of the same pipeline),
/// each as a normal move, so a stage can be deleted.
pub fn empty_stage(
    tx: &Tx<'_>,
    p: &Principal,
    stage_id: &str,
    move_to: &str,
    now: Millis,
) -> DomainResult<()> {
    let stage = pipelines::get_stage(tx, &p.org_id, stage_id)?;
    let target = pipelines::get_stage(tx, &p.org_id, move_to)
        .map_err(|_| DomainError::invalid("move_to", unknown("stage", move_to)))?;
    // Both stages exist but do not go together: a conflict between the two.
    if target.pipeline_id != stage.pipeline_id || target.id == stage.id {
        return Err(DomainError::Conflict {
            message: format!("{move_to} is not another stage of {stage_id}'s pipeline"),
            details: vec![FieldIssue::new(
                "move_to",
                "must be another stage of the same pipeline",
            )],
        });
    }
    let ids: Vec<String> = {
        let mut stmt = tx.prepare("SELECT id FROM deals WHERE org_id = ?1 AND stage_id = ?2")?;
        let rows = stmt.query_map(params![p.org_id, stage_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let actor = Actor::from(p);
    for id in ids {
        let deal = get(tx, &p.org_id, &id)?;
        move_deal(
            tx,
            &p.org_id,
            &actor,
            Some(&p.user_id),
            deal,
            &target,
            None,
            now,
        )?;
    }
    Ok(())
}

/// The deal's stage changes, oldest first.
pub fn history(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Vec<StageChange>> {
    get(conn, org_id, id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT from_stage_id, from_stage_name, to_stage_id, to_stage_name, changed_at, actor_type,
                actor_id, lost_reason,
                changed_at - lag(changed_at) OVER (ORDER BY changed_at, rowid)
         FROM deal_stage_history WHERE org_id = ?1 AND deal_id = ?2 ORDER BY changed_at, rowid",
    )?;
    let rows = stmt.query_map(params![org_id, id], |r| {
        Ok(StageChange {
            from_stage_id: r.get(0)?,
            from_stage_name: r.get(1)?,
            to_stage_id: r.get(2)?,
            to_stage_name: r.get(3)?,
            changed_at: Timestamp(r.get(4)?),
            actor: Actor {
                kind: r.get(5)?,
                id: r.get(6)?,
            },
            lost_reason: r.get(7)?,
            seconds_in_previous_stage: Nullable(r.get::<_, Option<i64>>(8)?.map(|ms| ms / 1000)),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
