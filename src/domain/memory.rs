//! Agent memory: what agents (and people) learned about a deal, kept with the deal so the next
//! agent run starts from it.

use crate::db::CachedRow;
use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::auth::Principal;
use super::deals;
use super::error::{DomainError, DomainResult, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Sort};
use super::validate;
use crate::clock::Millis;
use crate::domain::changes;
use crate::domain::validate::Tags;
use crate::ids::{self, new_id};
use crate::timefmt::Timestamp;

/// The values of the `kind` filter.
pub const KINDS: &[&str] = &[
    "fact",
    "preference",
    "objection",
    "next_step",
    "summary",
    "other",
];

/// Longest entry accepted.
pub const MAX_CONTENT: usize = 10_000;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// Something true about the deal or buyer.
    Fact,
    /// How the buyer likes things done.
    Preference,
    /// A reason not to buy, raised by the buyer.
    Objection,
    /// What should happen next.
    NextStep,
    /// A summary of the story so far.
    Summary,
    /// Anything else.
    Other,
}

impl MemoryKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fact => "fact",
            Self::Preference => "preference",
            Self::Objection => "objection",
            Self::NextStep => "next_step",
            Self::Summary => "summary",
            Self::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Fact,
            Self::Preference,
            Self::Objection,
            Self::NextStep,
            Self::Summary,
            Self::Other,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One memory entry.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct MemoryEntry {
    /// `mem_...`
    pub id: String,
    /// The deal it belongs to.
    pub deal_id: String,
    /// What was learned.
    pub content: String,
    /// Labels to find it by.
    pub tags: Vec<String>,
    /// fact, preference, objection, next_step, summary or other.
    pub kind: MemoryKind,
    /// Where it came from (a call, an email id, an agent's name).
    pub source: Nullable<String>,
    /// How sure the writer was, 0–1.
    pub confidence: Nullable<f64>,
    /// The credential that wrote it.
    pub created_by: Actor,
    /// When it was written.
    pub created_at: Timestamp,
}

/// An entry to write.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewMemory {
    /// 1–10,000 characters.
    #[oai(validator(min_length = 1, max_length = 10000))]
    pub content: String,
    /// At most 50 tags.
    #[oai(nullable)]
    pub tags: Option<Tags>,
    /// Defaults to `fact`.
    #[oai(nullable)]
    pub kind: Option<MemoryKind>,
    /// Up to 200 characters.
    #[oai(validator(max_length = 200))]
    #[oai(nullable)]
    pub source: Option<String>,
    /// 0–1.
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    #[oai(nullable)]
    pub confidence: Option<f64>,
}

const COLUMNS: &str =
    "id, deal_id, content, tags, kind, source, confidence, created_by_type, created_by, created_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "deal_memory",
    id: "id",
    count_from: None,
};

fn from_row(r: &Row<'_>) -> rusqlite::Result<MemoryEntry> {
    Ok(MemoryEntry {
        id: r.get(0)?,
        deal_id: r.get(1)?,
        content: r.get(2)?,
        tags: validate::tags_from_db(&r.get::<_, String>(3)?),
        kind: MemoryKind::parse(&r.get::<_, String>(4)?).unwrap_or(MemoryKind::Other),
        source: r.get(5)?,
        confidence: r.get(6)?,
        created_by: Actor {
            kind: r.get(7)?,
            id: r.get(8)?,
        },
        created_at: Timestamp(r.get(9)?),
    })
}

/// Filters of the memory list.
#[derive(Debug, Clone, Default)]
pub struct MemoryFilter {
    /// Any of these tags.
    pub tag: Option<String>,
    /// Any of these kinds.
    pub kind: Option<String>,
    /// Text in the content.
    pub q: Option<String>,
}

/// The deal's memory, newest first.
pub fn list(
    conn: &Connection,
    org_id: &str,
    deal_id: &str,
    f: &MemoryFilter,
    paging: Paging,
) -> DomainResult<ListPage<MemoryEntry>> {
    deals::get(conn, org_id, deal_id)?;
    let mut filters = Filters::for_org("org_id", org_id);
    filters.push("deal_id = ?", vec![deal_id.to_string().into()]);
    let kinds = any_of(f.kind.as_deref());
    validate::one_of("kind", &kinds, KINDS)?;
    filters.any_of("kind", &kinds);
    let tags = any_of(f.tag.as_deref());
    if !tags.is_empty() {
        let marks = vec!["?"; tags.len()].join(", ");
        filters.push(
            format!(
                "EXISTS (SELECT 1 FROM json_each(tags) WHERE value COLLATE NOCASE IN ({marks}))"
            ),
            tags.iter().map(|t| t.clone().into()).collect(),
        );
    }
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        filters.push(
            "content LIKE ? ESCAPE '\\'",
            vec![validate::like_pattern(q).into()],
        );
    }
    let sort = Sort {
        column: "created_at",
        descending: true,
        plain: false,
    };
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// Writes an entry on a deal; records `memory.created`.
pub fn create(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    input: NewMemory,
    now: Millis,
) -> DomainResult<MemoryEntry> {
    deals::get(tx, &p.org_id, deal_id)?;
    let mut issues = Issues::new();
    let content = validate::text(&mut issues, "content", &input.content, 1, MAX_CONTENT);
    let tags = validate::tags(
        &mut issues,
        "tags",
        input.tags.map(Vec::from).unwrap_or_default(),
    );
    let source = validate::optional_text(&mut issues, "source", input.source, 200);
    if input
        .confidence
        .is_some_and(|c| !(0.0..=1.0).contains(&c) || c.is_nan())
    {
        issues.add("confidence", "must be between 0 and 1");
    }
    issues.finish()?;
    let actor = Actor::from(p);
    let id = new_id("mem");
    tx.execute(
        "INSERT INTO deal_memory (id, org_id, deal_id, content, tags, kind, source, confidence,
                                  created_by_type, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id,
            p.org_id,
            deal_id,
            content,
            validate::tags_to_db(&tags),
            input.kind.unwrap_or(MemoryKind::Fact).as_str(),
            source,
            input.confidence,
            actor.kind,
            actor.id,
            now
        ],
    )?;
    let entry = get(tx, &p.org_id, deal_id, &id)?;
    changes::append(tx, &p.org_id, &actor, "memory.created", &entry, None, now)?;
    Ok(entry)
}

/// The entry `id` on deal `deal_id`.
pub fn get(conn: &Connection, org_id: &str, deal_id: &str, id: &str) -> DomainResult<MemoryEntry> {
    if !ids::is_valid(id, "mem") {
        return Err(DomainError::NotFound("memory entry"));
    }
    conn.cached_row(
        &format!(
            "SELECT {COLUMNS} FROM deal_memory WHERE org_id = ?1 AND deal_id = ?2 AND id = ?3"
        ),
        params![org_id, deal_id, id],
        from_row,
    )
    .optional()?
    .ok_or(DomainError::NotFound("memory entry"))
}

/// Deletes an entry; records `memory.deleted`.
pub fn delete(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<MemoryEntry> {
    deals::get(tx, &p.org_id, deal_id)?;
    let entry = get(tx, &p.org_id, deal_id, id)?;
    tx.execute("DELETE FROM deal_memory WHERE id = ?1", params![id])?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "memory.deleted",
        &entry,
        None,
        now,
    )?;
    Ok(entry)
}
