//! Pipelines and their stages. A new organization gets the default pipeline of docs/api.md §11.
//!
//! Stage positions are kept contiguous (0, 1, 2, ...) within a pipeline, so "move to position
//! 2" always means the third column of the board.

use crate::db::CachedRow;
use crate::db::Tx;
use crate::domain::changes;
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

mod stages;
pub use stages::{
    add_stage, delete_stage, get_stage, stage_by_name, stages_of, update_stage, NewStage,
    StagePatch,
};
use stages::{default_probability, insert_stage};

/// What reaching a stage means for a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Object, serde::Serialize)]
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
    pub rotting_days: Nullable<i64>,
    /// Bumped on every change.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A pipeline with its stages in board order.
#[derive(Debug, Clone, Object, serde::Serialize)]
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
    changes::update(tx, "pipelines", org_id, id, &[("name", &name)], now)?;
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
