//! Notes: free text on a deal or a lead.

use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::Object;
use rusqlite::{params, Connection, Row};

use super::auth::Principal;
use super::error::{DomainResult, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::validate;
use crate::clock::Millis;
use crate::domain::changes;
use crate::ids::new_id;
use crate::timefmt::Timestamp;

/// Longest note accepted.
pub const MAX_CONTENT: usize = 50_000;

/// A note.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Note {
    /// `note_...`
    pub id: String,
    /// The text.
    pub content: String,
    /// The deal it is on.
    pub deal_id: Nullable<String>,
    /// The lead it is on.
    pub lead_id: Nullable<String>,
    /// Who wrote it.
    pub author_id: Nullable<String>,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When it was written.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A note to write: on a deal, a lead, or both (at least one).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewNote {
    /// 1–50,000 characters.
    #[oai(validator(min_length = 1, max_length = 50000))]
    pub content: String,
    /// A deal of this organization.
    #[oai(nullable)]
    pub deal_id: Option<String>,
    /// A lead of this organization.
    #[oai(nullable)]
    pub lead_id: Option<String>,
}

/// Changes to a note.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NotePatch {
    /// 1–50,000 characters.
    #[oai(validator(min_length = 1, max_length = 50000))]
    pub content: String,
}

pub(crate) const COLUMNS: &str =
    "id, content, deal_id, lead_id, author_id, version, created_at, updated_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "notes",
    id: "id",
    count_from: None,
};

/// Maps a row of [`COLUMNS`].
pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: r.get(0)?,
        content: r.get(1)?,
        deal_id: r.get(2)?,
        lead_id: r.get(3)?,
        author_id: r.get(4)?,
        version: r.get(5)?,
        created_at: Timestamp(r.get(6)?),
        updated_at: Timestamp(r.get(7)?),
    })
}

const RECORD: Record = Record::new("notes", COLUMNS, "note", "note");

/// The note `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Note> {
    RECORD.get(conn, org_id, id, from_row)
}

/// Filters of the note list.
#[derive(Debug, Clone, Default)]
pub struct NoteFilter {
    /// On any of these deals.
    pub deal_id: Option<String>,
    /// On any of these leads.
    pub lead_id: Option<String>,
    /// Written by any of these users.
    pub author_id: Option<String>,
    /// Created at or after.
    pub created_after: Option<Millis>,
    /// Created before.
    pub created_before: Option<Millis>,
    /// Changed at or after.
    pub updated_since: Option<Millis>,
    /// Text in the content.
    pub q: Option<String>,
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[("created_at", "created_at"), ("updated_at", "updated_at")];

/// One page of notes.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &NoteFilter,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Note>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    filters.any_of("deal_id", &any_of(f.deal_id.as_deref()));
    filters.any_of("lead_id", &any_of(f.lead_id.as_deref()));
    filters.any_of("author_id", &any_of(f.author_id.as_deref()));
    filters.time_window("", f.created_after, f.created_before, f.updated_since);
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        filters.push(
            "content LIKE ? ESCAPE '\\'",
            vec![validate::like_pattern(q).into()],
        );
    }
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// Writes a note; records `note.created`.
pub fn create(tx: &Tx<'_>, p: &Principal, input: NewNote, now: Millis) -> DomainResult<Note> {
    let mut issues = Issues::new();
    let content = validate::text(&mut issues, "content", &input.content, 1, MAX_CONTENT);
    if input.deal_id.is_none() && input.lead_id.is_none() {
        issues.add(
            "deal_id",
            "or lead_id is required: a note goes on a deal or a lead",
        );
    }
    validate::reference(
        tx,
        &mut issues,
        "deal_id",
        "deals",
        "deal",
        &p.org_id,
        input.deal_id.as_deref(),
    )?;
    validate::reference(
        tx,
        &mut issues,
        "lead_id",
        "leads",
        "lead",
        &p.org_id,
        input.lead_id.as_deref(),
    )?;
    issues.finish()?;
    let id = new_id("note");
    tx.execute(
        "INSERT INTO notes (id, org_id, content, deal_id, lead_id, author_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![id, p.org_id, content, input.deal_id, input.lead_id, p.user_id, now],
    )?;
    let note = get(tx, &p.org_id, &id)?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "note.created",
        &note,
        None,
        now,
    )?;
    Ok(note)
}

/// Rewrites a note (`If-Match` checked); records `note.updated`.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: NotePatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Note> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let mut issues = Issues::new();
    let content = validate::text(&mut issues, "content", &patch.content, 1, MAX_CONTENT);
    issues.finish()?;
    if !changes::update(tx, "notes", &p.org_id, id, &[("content", &content)], now)? {
        return Ok(before);
    }
    let after = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    changes::record_update(tx, &p.org_id, &actor, "note.updated", &before, &after, now)?;
    Ok(after)
}

/// Deletes a note; records `note.deleted`.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Note> {
    let note = get(tx, &p.org_id, id)?;
    changes::remove(
        tx,
        "notes",
        &p.org_id,
        id,
        &Actor::from(p),
        "note.deleted",
        &note,
        now,
    )?;
    Ok(note)
}

/// Deletes every note whose `column` (`deal_id` or `lead_id`) is `id`, each with its event.
pub fn delete_where(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    column: &str,
    id: &str,
    now: Millis,
) -> DomainResult<()> {
    let notes: Vec<Note> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM notes WHERE org_id = ?1 AND {column} = ?2"
        ))?;
        let rows = stmt.query_map(params![org_id, id], from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for note in notes {
        tx.execute("DELETE FROM notes WHERE id = ?1", params![note.id])?;
        changes::append(tx, org_id, actor, "note.deleted", &note, None, now)?;
    }
    Ok(())
}
