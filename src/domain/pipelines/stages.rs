//! A pipeline's stages: reading them, adding, changing, reordering and deleting them (moving
//! their deals out first).

use super::*;
use crate::domain::listing::Record;

/// A stage to add.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewStage {
    /// 1–100 characters, unique in the pipeline.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// 0–100; defaults to 100 for won, 0 for lost, 50 for open stages.
    #[oai(validator(minimum(value = "0"), maximum(value = "100")))]
    #[oai(nullable)]
    pub probability: Option<i64>,
    /// Defaults to open.
    #[oai(nullable)]
    pub kind: Option<StageKind>,
    /// 1–3650 days.
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    #[oai(nullable)]
    pub rotting_days: Option<i64>,
    /// Where to insert it (0-based); defaults to the end. Later stages shift right.
    #[oai(validator(minimum(value = "0")))]
    #[oai(nullable)]
    pub position: Option<i64>,
}

/// Changes to a stage.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct StagePatch {
    /// New name, unique in the pipeline.
    #[oai(validator(min_length = 1, max_length = 100))]
    #[oai(nullable)]
    pub name: Option<String>,
    /// 0–100.
    #[oai(validator(minimum(value = "0"), maximum(value = "100")))]
    #[oai(nullable)]
    pub probability: Option<i64>,
    /// Only for a stage without deals.
    #[oai(nullable)]
    pub kind: Option<StageKind>,
    /// 1–3650 days, or null for never.
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    #[oai(nullable)]
    pub rotting_days: MaybeUndefined<i64>,
    /// Moves the stage to this place (0-based); the others close up.
    #[oai(validator(minimum(value = "0")))]
    #[oai(nullable)]
    pub position: Option<i64>,
}

pub(super) const STAGE_COLUMNS: &str =
    "id, pipeline_id, name, position, probability, kind, rotting_days, \
                             version, created_at, updated_at";

pub(super) fn stage_from_row(r: &Row<'_>) -> rusqlite::Result<Stage> {
    Ok(Stage {
        id: r.get(0)?,
        pipeline_id: r.get(1)?,
        name: r.get(2)?,
        position: r.get(3)?,
        probability: r.get(4)?,
        kind: StageKind::parse(&r.get::<_, String>(5)?),
        rotting_days: r.get(6)?,
        version: r.get(7)?,
        created_at: Timestamp(r.get(8)?),
        updated_at: Timestamp(r.get(9)?),
    })
}

/// The stages of a pipeline, by position.
pub fn stages_of(conn: &Connection, org_id: &str, pipeline_id: &str) -> DomainResult<Vec<Stage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {STAGE_COLUMNS} FROM stages WHERE org_id = ?1 AND pipeline_id = ?2 ORDER BY position"
    ))?;
    let stages = stmt
        .query_map(params![org_id, pipeline_id], stage_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(stages)
}

const STAGE_RECORD: Record = Record::new("stages", STAGE_COLUMNS, "stg", "stage");

/// The stage `id` of `org_id`.
pub fn get_stage(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Stage> {
    STAGE_RECORD.get(conn, org_id, id, stage_from_row)
}

/// The stage of `pipeline_id` called `name` (case-insensitive).
pub fn stage_by_name(
    conn: &Connection,
    org_id: &str,
    pipeline_id: &str,
    name: &str,
) -> DomainResult<Option<Stage>> {
    Ok(conn
        .cached_row(
            &format!(
                "SELECT {STAGE_COLUMNS} FROM stages
                 WHERE org_id = ?1 AND pipeline_id = ?2 AND name = ?3 COLLATE NOCASE"
            ),
            params![org_id, pipeline_id, name.trim()],
            stage_from_row,
        )
        .optional()?)
}

pub(super) fn check_stage_name_free(
    conn: &Connection,
    org_id: &str,
    pipeline_id: &str,
    name: &str,
    except: Option<&str>,
) -> DomainResult<()> {
    if let Some(existing) = stage_by_name(conn, org_id, pipeline_id, name)? {
        if Some(existing.id.as_str()) != except {
            return Err(DomainError::Conflict {
                message: format!("the pipeline already has a stage called {name}"),
                details: vec![FieldIssue::new(
                    "name",
                    format!("is already used by {}", existing.id),
                )],
            });
        }
    }
    Ok(())
}

pub(super) fn default_probability(kind: StageKind) -> i64 {
    match kind {
        StageKind::Won => 100,
        StageKind::Lost => 0,
        StageKind::Open => 50,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn insert_stage(
    tx: &Tx<'_>,
    org_id: &str,
    pipeline_id: &str,
    name: &str,
    position: i64,
    probability: i64,
    kind: StageKind,
    rotting_days: Option<i64>,
    now: Millis,
) -> DomainResult<String> {
    let id = new_id("stg");
    tx.execute(
        "INSERT INTO stages (id, org_id, pipeline_id, name, position, probability, kind,
                             rotting_days, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            id,
            org_id,
            pipeline_id,
            name,
            position,
            probability,
            kind.as_str(),
            rotting_days,
            now
        ],
    )?;
    Ok(id)
}

/// Moves the stage at `from` to `to` within its pipeline, shifting those between.
pub(super) fn reposition(
    tx: &Tx<'_>,
    pipeline_id: &str,
    stage_id: &str,
    from: i64,
    to: i64,
) -> DomainResult<()> {
    if from == to {
        return Ok(());
    }
    // Park the stage out of the way, shift the others, then drop it into place.
    tx.execute(
        "UPDATE stages SET position = -1 WHERE id = ?1",
        params![stage_id],
    )?;
    if to < from {
        tx.execute(
            "UPDATE stages SET position = position + 1
             WHERE pipeline_id = ?1 AND position >= ?2 AND position < ?3",
            params![pipeline_id, to, from],
        )?;
    } else {
        tx.execute(
            "UPDATE stages SET position = position - 1
             WHERE pipeline_id = ?1 AND position > ?2 AND position <= ?3",
            params![pipeline_id, from, to],
        )?;
    }
    tx.execute(
        "UPDATE stages SET position = ?2 WHERE id = ?1",
        params![stage_id, to],
    )?;
    Ok(())
}

/// Adds a stage to a pipeline at `position` (default: the end).
pub fn add_stage(
    tx: &Tx<'_>,
    org_id: &str,
    pipeline_id: &str,
    input: NewStage,
    now: Millis,
) -> DomainResult<Stage> {
    let pipeline = get(tx, org_id, pipeline_id)?;
    let mut issues = Issues::new();
    let name = validate::text(&mut issues, "name", &input.name, 1, 100);
    issues.finish()?;
    check_stage_name_free(tx, org_id, pipeline_id, &name, None)?;
    let count = pipeline.stages.len() as i64;
    let kind = input.kind.unwrap_or(StageKind::Open);
    let id = insert_stage(
        tx,
        org_id,
        pipeline_id,
        &name,
        count,
        input.probability.unwrap_or(default_probability(kind)),
        kind,
        input.rotting_days,
        now,
    )?;
    if let Some(position) = input.position {
        reposition(tx, pipeline_id, &id, count, position.min(count))?;
    }
    get_stage(tx, org_id, &id)
}

/// Changes a stage; `position` reorders the board. A stage holding deals keeps its kind, since
/// the kind decides those deals' status.
pub fn update_stage(
    tx: &Tx<'_>,
    org_id: &str,
    id: &str,
    patch: StagePatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Stage> {
    let current = get_stage(tx, org_id, id)?;
    validate::if_match(expected_version, current.version)?;
    let mut issues = Issues::new();
    let name = match &patch.name {
        Some(n) => validate::text(&mut issues, "name", n, 1, 100),
        None => current.name.clone(),
    };
    issues.finish()?;
    check_stage_name_free(tx, org_id, &current.pipeline_id, &name, Some(id))?;
    let kind = patch.kind.unwrap_or(current.kind);
    if kind != current.kind && deals_in(tx, "stage_id", id)? > 0 {
        return Err(DomainError::conflict(
            "the stage holds deals, so its kind cannot change; move them out first",
        ));
    }
    changes::update(
        tx,
        "stages",
        org_id,
        id,
        &[
            ("name", &name),
            (
                "probability",
                &patch.probability.unwrap_or(current.probability),
            ),
            ("kind", &kind.as_str()),
            (
                "rotting_days",
                &validate::merge(patch.rotting_days, current.rotting_days.0),
            ),
        ],
        now,
    )?;
    if let Some(position) = patch.position {
        let last = stages_of(tx, org_id, &current.pipeline_id)?.len() as i64 - 1;
        reposition(
            tx,
            &current.pipeline_id,
            id,
            current.position,
            position.min(last),
        )?;
    }
    get_stage(tx, org_id, id)
}

/// Deletes a stage that holds no deals (409 otherwise: see `deals::empty_stage`, which moves
/// them out first). The last stage of a pipeline stays. Stage history that mentions the stage
/// keeps its rows, with the stage's id cleared and its name kept.
pub fn delete_stage(tx: &Tx<'_>, org_id: &str, id: &str) -> DomainResult<Stage> {
    let stage = get_stage(tx, org_id, id)?;
    if stages_of(tx, org_id, &stage.pipeline_id)?.len() <= 1 {
        return Err(DomainError::conflict("a pipeline keeps at least one stage"));
    }
    let deals = deals_in(tx, "stage_id", id)?;
    if deals > 0 {
        return Err(DomainError::Conflict {
            message: format!("the stage holds {deals} deals; pass move_to=<stage id> to move them"),
            details: vec![FieldIssue::new(
                "move_to",
                "is required while the stage holds deals",
            )],
        });
    }
    tx.execute(
        "UPDATE deal_stage_history SET from_stage_id = NULL WHERE from_stage_id = ?1",
        params![id],
    )?;
    tx.execute(
        "UPDATE deal_stage_history SET to_stage_id = NULL WHERE to_stage_id = ?1",
        params![id],
    )?;
    tx.execute("DELETE FROM stages WHERE id = ?1", params![id])?;
    tx.execute(
        "UPDATE stages SET position = position - 1 WHERE pipeline_id = ?1 AND position > ?2",
        params![stage.pipeline_id, stage.position],
    )?;
    Ok(stage)
}
