//! Pipelines and their stages. A new organization gets the default pipeline of API.md §6.
//!
//! Stage positions are kept contiguous (0, 1, 2, ...) within a pipeline, so "move to position
//! 2" always means the third column of the board.

use crate::db::CachedRow;
use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::error::{DomainError, DomainResult, FieldIssue, Issues};
use super::listing::{ListPage, Paging};
use super::validate;
use crate::clock::Millis;
use crate::ids::{self, new_id};
use crate::timefmt::Timestamp;

/// What reaching a stage means for a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum StageKind {
    /// Still being worked.
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

impl StageKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "won" => Self::Won,
            "lost" => Self::Lost,
            _ => Self::Open,
        }
    }
}

/// The default pipeline's stages: (name, probability %, kind, rotting days).
///
/// Rotting days are how long a deal may sit in a stage before it counts as stalling; closed
/// stages have none.
pub const DEFAULT_STAGES: &[(&str, i64, StageKind, Option<i64>)] = &[
    ("Lead In", 10, StageKind::Open, Some(14)),
    ("Qualified", 20, StageKind::Open, Some(14)),
    ("Demo Scheduled", 40, StageKind::Open, Some(10)),
    ("Proposal Sent", 60, StageKind::Open, Some(14)),
    ("Negotiation", 80, StageKind::Open, Some(10)),
    ("Closed Won", 100, StageKind::Won, None),
    ("Closed Lost", 0, StageKind::Lost, None),
];

/// A column of a pipeline.
#[derive(Debug, Clone, Object)]
pub struct Stage {
    /// `stg_...`
    pub id: String,
    /// The pipeline it belongs to.
    pub pipeline_id: String,
    /// Unique within the pipeline.
    pub name: String,
    /// 0-based place on the board.
    pub position: i64,
    /// Chance (0–100) that a deal here closes won; weights the forecast.
    pub probability: i64,
    /// open, won or lost: moving a deal into a won or lost stage closes it.
    pub kind: StageKind,
    /// Days a deal may stay here before it counts as stalling (open stages).
    #[oai(nullable)]
    pub rotting_days: Nullable<i64>,
    /// Bumped on every change.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A pipeline with its stages in board order.
#[derive(Debug, Clone, Object)]
pub struct Pipeline {
    /// `pip_...`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether new deals and converted leads land here by default. Exactly one is.
    pub is_default: bool,
    /// Its stages, by position.
    pub stages: Vec<Stage>,
    /// Bumped on every change.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

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

/// A pipeline to create.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewPipeline {
    /// 1–100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// Its stages in order; defaults to the standard sales stages.
    #[oai(validator(min_items = 1, max_items = 50))]
    #[oai(nullable)]
    pub stages: Option<Vec<NewStage>>,
    /// Makes it the default pipeline.
    #[oai(nullable)]
    pub is_default: Option<bool>,
}

/// Changes to a pipeline.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct PipelinePatch {
    /// 1–100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    #[oai(nullable)]
    pub name: Option<String>,
    /// `true` makes it the default (the previous default stops being one). There is always
    /// exactly one default, so `false` is refused: make another pipeline the default instead.
    #[oai(nullable)]
    pub is_default: Option<bool>,
}

const STAGE_COLUMNS: &str = "id, pipeline_id, name, position, probability, kind, rotting_days, \
                             version, created_at, updated_at";

fn stage_from_row(r: &Row<'_>) -> rusqlite::Result<Stage> {
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

/// The stage `id` of `org_id`.
pub fn get_stage(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Stage> {
    if !ids::is_valid(id, "stg") {
        return Err(DomainError::NotFound("stage"));
    }
    conn.cached_row(
        &format!("SELECT {STAGE_COLUMNS} FROM stages WHERE org_id = ?1 AND id = ?2"),
        params![org_id, id],
        stage_from_row,
    )
    .optional()?
    .ok_or(DomainError::NotFound("stage"))
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

fn pipeline_from_row(r: &Row<'_>) -> rusqlite::Result<Pipeline> {
    Ok(Pipeline {
        id: r.get(0)?,
        name: r.get(1)?,
        is_default: r.get(2)?,
        stages: Vec::new(),
        version: r.get(3)?,
        created_at: Timestamp(r.get(4)?),
        updated_at: Timestamp(r.get(5)?),
    })
}

/// The pipeline `id` of `org_id`, with its stages.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Pipeline> {
    if !ids::is_valid(id, "pip") {
        return Err(DomainError::NotFound("pipeline"));
    }
    let mut p = conn
        .cached_row(
            "SELECT id, name, is_default, version, created_at, updated_at FROM pipelines
             WHERE org_id = ?1 AND id = ?2",
            params![org_id, id],
            pipeline_from_row,
        )
        .optional()?
        .ok_or(DomainError::NotFound("pipeline"))?;
    p.stages = stages_of(conn, org_id, id)?;
    Ok(p)
}

/// The id of the organization's default pipeline.
pub fn default_id(conn: &Connection, org_id: &str) -> DomainResult<String> {
    conn.cached_row(
        "SELECT id FROM pipelines WHERE org_id = ?1 AND is_default = 1",
        params![org_id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(DomainError::Internal(format!(
        "organization {org_id} has no default pipeline"
    )))
}

/// Every pipeline of the organization (default first, then by creation), with stages.
pub fn list(conn: &Connection, org_id: &str, paging: Paging) -> DomainResult<ListPage<Pipeline>> {
    let total: i64 = conn.cached_row(
        "SELECT COUNT(*) FROM pipelines WHERE org_id = ?1",
        params![org_id],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, is_default, version, created_at, updated_at FROM pipelines
         WHERE org_id = ?1 ORDER BY is_default DESC, created_at, id LIMIT ?2 OFFSET ?3",
    )?;
    let mut items = stmt
        .query_map(
            params![org_id, paging.limit(), paging.offset()],
            pipeline_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for p in &mut items {
        p.stages = stages_of(conn, org_id, &p.id)?;
    }
    Ok(ListPage {
        items,
        paging,
        total,
    })
}

fn check_stage_name_free(
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

fn default_probability(kind: StageKind) -> i64 {
    match kind {
        StageKind::Won => 100,
        StageKind::Lost => 0,
        StageKind::Open => 50,
    }
}

#[allow(clippy::too_many_arguments)]
fn insert_stage(
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

fn insert_pipeline(tx: &Tx<'_>, org_id: &str, name: &str, now: Millis) -> DomainResult<String> {
    let id = new_id("pip");
    tx.execute(
        "INSERT INTO pipelines (id, org_id, name, is_default, created_at, updated_at)
         VALUES (?1, ?2, ?3, 0, ?4, ?4)",
        params![id, org_id, name, now],
    )?;
    Ok(id)
}

/// Makes `id` the organization's one default pipeline.
fn make_default(tx: &Tx<'_>, org_id: &str, id: &str, now: Millis) -> DomainResult<()> {
    tx.execute(
        "UPDATE pipelines SET is_default = 0, version = version + 1, updated_at = ?2
         WHERE org_id = ?1 AND is_default = 1",
        params![org_id, now],
    )?;
    tx.execute(
        "UPDATE pipelines SET is_default = 1, version = version + 1, updated_at = ?3
         WHERE org_id = ?1 AND id = ?2",
        params![org_id, id, now],
    )?;
    Ok(())
}

/// Creates the organization's default "Sales" pipeline with [`DEFAULT_STAGES`]; returns its id.
pub fn create_default(tx: &Tx<'_>, org_id: &str, now: Millis) -> DomainResult<String> {
    let pipeline_id = insert_pipeline(tx, org_id, "Sales", now)?;
    for (position, (name, probability, kind, rotting)) in DEFAULT_STAGES.iter().enumerate() {
        insert_stage(
            tx,
            org_id,
            &pipeline_id,
            name,
            position as i64,
            *probability,
            *kind,
            *rotting,
            now,
        )?;
    }
    make_default(tx, org_id, &pipeline_id, now)?;
    Ok(pipeline_id)
}

/// Creates a pipeline with its stages (the standard ones when none are given).
pub fn create(
    tx: &Tx<'_>,
    org_id: &str,
    input: NewPipeline,
    now: Millis,
) -> DomainResult<Pipeline> {
    let mut issues = Issues::new();
    let name = validate::text(&mut issues, "name", &input.name, 1, 100);
    let stages: Vec<(String, i64, StageKind, Option<i64>)> = match input.stages {
        Some(stages) => stages
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let kind = s.kind.unwrap_or(StageKind::Open);
                let stage_name =
                    validate::text(&mut issues, &format!("stages[{i}].name"), &s.name, 1, 100);
                (
                    stage_name,
                    s.probability.unwrap_or(default_probability(kind)),
                    kind,
                    s.rotting_days,
                )
            })
            .collect(),
        None => DEFAULT_STAGES
            .iter()
            .map(|(n, p, k, r)| (n.to_string(), *p, *k, *r))
            .collect(),
    };
    if stages.is_empty() {
        issues.add("stages", "must have at least one stage");
    }
    issues.finish()?;
    // Stage names are unique within a pipeline (case-insensitively): a clash is a 409.
    let repeats: Vec<FieldIssue> = stages
        .iter()
        .enumerate()
        .filter(|(i, (n, ..))| stages[..*i].iter().any(|(m, ..)| m.eq_ignore_ascii_case(n)))
        .map(|(i, _)| {
            FieldIssue::new(
                format!("stages[{i}].name"),
                "repeats an earlier stage's name",
            )
        })
        .collect();
    if !repeats.is_empty() {
        return Err(DomainError::Conflict {
            message: "stage names must be unique within a pipeline".into(),
            details: repeats,
        });
    }
    let id = insert_pipeline(tx, org_id, &name, now)?;
    for (position, (n, probability, kind, rotting)) in stages.into_iter().enumerate() {
        insert_stage(
            tx,
            org_id,
            &id,
            &n,
            position as i64,
            probability,
            kind,
            rotting,
            now,
        )?;
    }
    if input.is_default == Some(true) {
        make_default(tx, org_id, &id, now)?;
    }
    get(tx, org_id, &id)
}

/// Renames a pipeline or makes it the default.
pub fn update(
    tx: &Tx<'_>,
    org_id: &str,
    id: &str,
    patch: PipelinePatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Pipeline> {
    let current = get(tx, org_id, id)?;
    validate::if_match(expected_version, current.version)?;
    let mut issues = Issues::new();
    let name = match &patch.name {
        Some(n) => validate::text(&mut issues, "name", n, 1, 100),
        None => current.name.clone(),
    };
    issues.finish()?;
    // Whether this can be unset depends on what the pipeline is now: a conflict, not a bad value.
    if patch.is_default == Some(false) && current.is_default {
        return Err(DomainError::Conflict {
            message: "the default pipeline stays the default until another is made the default"
                .into(),
            details: vec![FieldIssue::new(
                "is_default",
                "cannot be unset: make another pipeline the default instead",
            )],
        });
    }
    tx.execute(
        "UPDATE pipelines SET name = ?3, version = version + 1, updated_at = ?4
         WHERE org_id = ?1 AND id = ?2",
        params![org_id, id, name, now],
    )?;
    if patch.is_default == Some(true) && !current.is_default {
        make_default(tx, org_id, id, now)?;
    }
    get(tx, org_id, id)
}

fn deals_in(conn: &Connection, column: &str, id: &str) -> DomainResult<i64> {
    Ok(conn.cached_row(
        &format!("SELECT COUNT(*) FROM deals WHERE {column} = ?1"),
        params![id],
        |r| r.get(0),
    )?)
}

/// Deletes a pipeline and its stages. The default pipeline, and one that still holds deals,
/// cannot be deleted (409): move or delete the deals first.
pub fn delete(tx: &Tx<'_>, org_id: &str, id: &str) -> DomainResult<Pipeline> {
    let p = get(tx, org_id, id)?;
    if p.is_default {
        return Err(DomainError::conflict(
            "the default pipeline cannot be deleted; make another pipeline the default first",
        ));
    }
    let deals = deals_in(tx, "pipeline_id", id)?;
    if deals > 0 {
        return Err(DomainError::conflict(format!(
            "the pipeline still holds {deals} deals; move or delete them first"
        )));
    }
    tx.execute("DELETE FROM stages WHERE pipeline_id = ?1", params![id])?;
    tx.execute("DELETE FROM pipelines WHERE id = ?1", params![id])?;
    Ok(p)
}

/// Moves the stage at `from` to `to` within its pipeline, shifting those between.
fn reposition(
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
    tx.execute(
        "UPDATE stages SET name = ?3, probability = ?4, kind = ?5, rotting_days = ?6,
                version = version + 1, updated_at = ?7
         WHERE org_id = ?1 AND id = ?2",
        params![
            org_id,
            id,
            name,
            patch.probability.unwrap_or(current.probability),
            kind.as_str(),
            validate::merge(patch.rotting_days, current.rotting_days.0),
            now
        ],
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
