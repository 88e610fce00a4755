//! Records in and out as spreadsheets: CSV import and export of leads, companies and deals.
//!
//! An import runs in one transaction: every good row is stored, every bad one is reported with
//! its row, line and field and changes nothing, and a request that fails stores nothing at all.
//! Each resource says which fields it has, the header names people give them, how a row
//! becomes a record and what makes two records the same ([`Importer`]); reading the file
//! ([`read`]), matching headers and counting rows are shared here.

pub mod companies;
pub mod deals;
pub mod leads;
pub mod read;

use std::collections::HashMap;
use std::io::Write;

use poem_openapi::{Enum, Object};
use rusqlite::{Connection, OptionalExtension};

use crate::clock::Millis;
use crate::db::{Db, Tx};
use crate::domain::auth::Principal;
use crate::domain::events::Actor;
use crate::domain::nullable::Nullable;
use crate::domain::{DomainError, DomainResult};
pub use read::{formula_safe, Delimiter, ReadOptions, HEADER_PATTERN};

/// What a row whose record already exists does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// Leave the existing record alone and count the row as skipped.
    #[default]
    Skip,
    /// Fill the existing record with the row's non-empty cells.
    Update,
    /// Report the row as an error.
    Error,
}

/// A row, or the header (row 0), that was not imported as given.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct RowIssue {
    /// 1-based number of the data row (the header row not counted); 0 for the header itself.
    pub row: i64,
    /// 1-based line of the file where the row starts (the header is line 1).
    pub line: i64,
    /// The field concerned, by its API name, when there is one.
    pub field: Nullable<String>,
    /// What was wrong, or what was done instead.
    pub message: String,
    /// The existing record, for duplicates; the record stored, for a warning on a stored row.
    pub id: Nullable<String>,
}

/// The outcome of an import. Every data row is counted once: `rows` = `created` + `updated` +
/// `skipped` + `failed`.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ImportResult {
    /// Data rows read (rows whose cells are all empty are not rows).
    pub rows: i64,
    /// Records created.
    pub created: i64,
    /// Existing records updated (`on_duplicate=update`).
    pub updated: i64,
    /// Rows skipped as duplicates (`on_duplicate=skip`).
    pub skipped: i64,
    /// Rows rejected; each is in `errors`.
    pub failed: i64,
    /// Rows rejected, with the reason.
    pub errors: Vec<RowIssue>,
    /// Rows that matched an existing record (skipped or updated).
    pub duplicates: Vec<RowIssue>,
    /// What was imported other than as written (an owner who is not a member left unassigned),
    /// and header columns that look meant but map to nothing (row 0).
    pub warnings: Vec<RowIssue>,
    /// Header columns that were not understood and were ignored.
    pub unknown_columns: Vec<String>,
    /// The encoding the file was read in (`UTF-8`, `UTF-16LE`, `UTF-16BE`, `windows-1252`, …).
    pub encoding: String,
    /// The separator the file was read with.
    pub delimiter: Delimiter,
}

/// A field a file may hold: its name in the API and the other header names people give it,
/// written as [`read::header_key`] reduces them (letters and digits, lower case).
pub struct Column {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
}

/// A data row as cells by field: what an [`Importer`] reads a record from.
pub struct Cells<'a> {
    index: &'a [Option<usize>],
    cells: &'a [String],
}

impl Cells<'_> {
    /// The cell of the `n`th of the importer's [`Importer::COLUMNS`], if the file has that
    /// column and the cell is not empty.
    pub fn get(&self, n: usize) -> Option<String> {
        self.index[n]
            .and_then(|i| self.cells.get(i))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// Whether the file has the `n`th column at all (an empty cell of a column that is there
    /// clears; a column that is not there leaves the default).
    pub fn has(&self, n: usize) -> bool {
        self.index[n].is_some()
    }
}

/// What a row's record came to.
enum Applied {
    Created(String),
    Updated(String),
    Skipped(String),
    /// It matches this record by this field, and `on_duplicate=error`: nothing was written.
    Refused(String, &'static str),
}

/// A row-level note an importer makes while storing a row (the row itself is stored).
pub struct Note {
    pub field: &'static str,
    pub message: String,
}

/// One resource's import: its columns, how a row becomes a record, what makes two records the
/// same, and how one is created or updated. Row-level problems are errors of the kinds a
/// request gets (422, 404, 409), which the import reports against the row; notes are warnings.
pub trait Importer {
    /// A row read into the resource's fields, its references resolved.
    type Record;
    /// The record's name in messages (`lead`).
    const NOUN: &'static str;
    /// The columns, in the order [`Cells::get`] numbers them.
    const COLUMNS: &'static [Column];
    /// Header names of columns an export writes that an import leaves alone (`id`,
    /// `created_at`): known, so not reported as unknown.
    const READ_ONLY: &'static [&'static str];

    /// Reads a row.
    fn read(
        &self,
        tx: &Tx<'_>,
        row: &Cells<'_>,
        notes: &mut Vec<Note>,
    ) -> DomainResult<Self::Record>;
    /// The existing record this one is the same as, and the field that says so.
    fn existing(
        &self,
        tx: &Tx<'_>,
        record: &Self::Record,
    ) -> DomainResult<Option<(String, &'static str)>>;
    /// Creates the record; its id.
    fn create(&self, tx: &Tx<'_>, record: Self::Record) -> DomainResult<String>;
    /// Lays the record's non-empty fields over the existing record `id`.
    fn update(&self, tx: &Tx<'_>, id: &str, record: Self::Record) -> DomainResult<()>;
}

/// Stores one row: creates its record, or, when it matches an existing one, does what
/// `on_duplicate` says.
fn apply<I: Importer>(
    importer: &I,
    tx: &Tx<'_>,
    row: &Cells<'_>,
    on_duplicate: OnDuplicate,
    notes: &mut Vec<Note>,
) -> DomainResult<Applied> {
    let record = importer.read(tx, row, notes)?;
    Ok(match (importer.existing(tx, &record)?, on_duplicate) {
        (None, _) => Applied::Created(importer.create(tx, record)?),
        (Some((id, _)), OnDuplicate::Skip) => Applied::Skipped(id),
        (Some((id, field)), OnDuplicate::Error) => Applied::Refused(id, field),
        (Some((id, _)), OnDuplicate::Update) => {
            importer.update(tx, &id, record)?;
            Applied::Updated(id)
        }
    })
}

/// The caller and the time an import runs for, which every importer needs.
pub struct Run {
    pub p: Principal,
    pub actor: Actor,
    pub now: Millis,
}

impl Run {
    /// An import by `p` at `now`.
    pub fn new(p: Principal, now: Millis) -> Self {
        Self {
            actor: Actor::from(&p),
            p,
            now,
        }
    }
}

/// Maps each of the importer's columns to the header's column that holds it: the one named as
/// the API names the field, else the first alias in the column's order (so `owner_email` is
/// read before `owner_id` when a file has both). Lists the header's columns that no column
/// knows, neither as its name nor as an alias, nor as a column an export writes for reading
/// only.
fn map_headers<I: Importer>(headers: &[String]) -> (Vec<Option<usize>>, Vec<String>) {
    let keys: Vec<String> = headers.iter().map(|h| read::header_key(h)).collect();
    let find = |key: &str| keys.iter().position(|k| k == key);
    let index = I::COLUMNS
        .iter()
        .map(|column| {
            find(&read::header_key(column.name))
                .or_else(|| column.aliases.iter().find_map(|alias| find(alias)))
        })
        .collect();
    let known = |key: &String| {
        I::COLUMNS
            .iter()
            .any(|c| read::header_key(c.name) == *key || c.aliases.contains(&key.as_str()))
            || I::READ_ONLY.iter().any(|h| read::header_key(h) == *key)
    };
    let unknown = headers
        .iter()
        .zip(&keys)
        .filter(|(h, key)| !h.trim().is_empty() && !known(key))
        .map(|(h, _)| h.trim().to_string())
        .collect();
    (index, unknown)
}

/// Unknown columns whose cells are mostly email addresses: data the file meant to give that
/// would otherwise be dropped without a word.
fn email_like_columns(sheet: &read::Sheet, unknown: &[String]) -> Vec<RowIssue> {
    unknown
        .iter()
        .filter_map(|name| {
            let i = sheet.headers.iter().position(|h| h.trim() == name)?;
            let sample: Vec<&String> = sheet
                .rows
                .iter()
                .filter_map(|r| r.cells.as_ref().ok()?.get(i))
                .filter(|c| !c.is_empty())
                .take(100)
                .collect();
            let emails = sample
                .iter()
                .filter(|c| crate::domain::validate::is_email(c))
                .count();
            (!sample.is_empty() && emails * 2 > sample.len()).then(|| RowIssue {
                row: 0,
                line: 1,
                field: Nullable(None),
                message: format!(
                    "column `{name}` holds email addresses but maps to no field, so it was not \
                     imported; name it `email` (or an alias the documentation lists) to import it"
                ),
                id: Nullable(None),
            })
        })
        .collect()
}

/// How often an import reports its progress, in rows.
const PROGRESS_EVERY: usize = 1000;

/// Imports a CSV file with `importer` in one transaction (rolled back at the end for a
/// `rehearsal`). Runs on the calling blocking thread; holds the writer for the whole file.
/// `progress` hears (rows done, rows in the file) every thousand rows and at the end.
pub fn import<I: Importer>(
    db: &Db,
    importer: &I,
    bytes: &[u8],
    options: &ReadOptions,
    on_duplicate: OnDuplicate,
    rehearsal: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> DomainResult<ImportResult> {
    let sheet = read::read(bytes, options)?;
    let (index, unknown_columns) = map_headers::<I>(&sheet.headers);
    if index.iter().all(Option::is_none) {
        // Worded as a rule of content ("names no …"): the document's pattern can state that a
        // file has a header line, not which names it holds.
        let names: Vec<&str> = I::COLUMNS.iter().map(|c| c.name).collect();
        return Err(DomainError::invalid(
            "body",
            format!(
                "names no column a {} import reads in its header row (read with the {} as \
                 separator): the columns are {}, under the names docs/import.md lists",
                I::NOUN,
                sheet.delimiter.as_str(),
                names.join(", ")
            ),
        ));
    }
    let mut result = ImportResult {
        rows: sheet.rows.len() as i64,
        created: 0,
        updated: 0,
        skipped: 0,
        failed: 0,
        errors: Vec::new(),
        duplicates: Vec::new(),
        warnings: email_like_columns(&sheet, &unknown_columns),
        unknown_columns,
        encoding: sheet.encoding.to_string(),
        delimiter: sheet.delimiter,
    };
    let total = sheet.rows.len();
    db.blocking().write_or_rehearse(rehearsal, |tx| {
        for (done, r) in sheet.rows.iter().enumerate() {
            if done % PROGRESS_EVERY == 0 {
                progress(done, total);
            }
            let issue = |field: Option<String>, message: String, id: Option<String>| RowIssue {
                row: r.row,
                line: r.line,
                field: Nullable(field),
                message,
                id: Nullable(id),
            };
            let cells = match &r.cells {
                Ok(cells) => cells,
                Err(message) => {
                    result.failed += 1;
                    result.errors.push(issue(None, message.clone(), None));
                    continue;
                }
            };
            let cells = Cells {
                index: &index,
                cells,
            };
            let mut notes = Vec::new();
            tx.execute_batch("SAVEPOINT import_row")?;
            let applied = apply(importer, tx, &cells, on_duplicate, &mut notes);
            if applied.is_err() {
                tx.execute_batch("ROLLBACK TO import_row")?;
            }
            tx.execute_batch("RELEASE import_row")?;
            let id = match applied {
                Ok(Applied::Created(id)) => {
                    result.created += 1;
                    id
                }
                Ok(Applied::Updated(id)) => {
                    result.updated += 1;
                    result.duplicates.push(issue(
                        None,
                        format!("matches an existing {}, which was updated", I::NOUN),
                        Some(id.clone()),
                    ));
                    id
                }
                Ok(Applied::Skipped(id)) => {
                    result.skipped += 1;
                    result.duplicates.push(issue(
                        None,
                        format!("matches an existing {}; skipped", I::NOUN),
                        Some(id.clone()),
                    ));
                    id
                }
                Ok(Applied::Refused(id, field)) => {
                    result.failed += 1;
                    result.errors.push(issue(
                        Some(field.to_string()),
                        format!("matches an existing {} by its {field}: {id}", I::NOUN),
                        Some(id),
                    ));
                    continue;
                }
                Err(
                    e @ (DomainError::Validation(_)
                    | DomainError::Conflict { .. }
                    | DomainError::NotFound(_)),
                ) => {
                    result.failed += 1;
                    result.errors.extend(
                        row_errors(&e)
                            .into_iter()
                            .map(|(field, message)| issue(field, message, None)),
                    );
                    continue;
                }
                Err(other) => return Err(other),
            };
            result.warnings.extend(
                notes
                    .into_iter()
                    .map(|n| issue(Some(n.field.to_string()), n.message, Some(id.clone()))),
            );
        }
        Ok(())
    })?;
    progress(total, total);
    Ok(result)
}

/// A row's error as one issue per field it names (or one for the row): (field, message).
fn row_errors(e: &DomainError) -> Vec<(Option<String>, String)> {
    match e {
        DomainError::Validation(issues) => issues
            .iter()
            .map(|i| (Some(i.field.clone()), format!("{} {}", i.field, i.issue)))
            .collect(),
        DomainError::Conflict { message, details } => {
            vec![(details.first().map(|d| d.field.clone()), message.clone())]
        }
        other => vec![(None, other.to_string())],
    }
}

/// The id of the active member a cell names, by email or by id; `None`, with a note, for
/// anyone else (the record is stored unassigned rather than refused: a file from another
/// system names people who are not members here).
pub fn member(
    conn: &Connection,
    org_id: &str,
    cell: Option<String>,
    field: &'static str,
    notes: &mut Vec<Note>,
) -> DomainResult<Option<String>> {
    let Some(who) = cell else {
        return Ok(None);
    };
    let found: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM users WHERE org_id = ?1 AND active = 1
                 AND (id = ?2 OR email = ?2 COLLATE NOCASE)",
        )?
        .query_row(rusqlite::params![org_id, who], |r| r.get(0))
        .optional()?;
    if found.is_none() {
        notes.push(Note {
            field,
            message: format!(
                "`{who}` is not an active member of this organization; the record was stored \
                 unassigned"
            ),
        });
    }
    Ok(found)
}

/// Every member's email by id, for exports (owners are written by email, which another
/// organization can match; ids it cannot).
pub fn member_emails(conn: &Connection, org_id: &str) -> DomainResult<HashMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT id, email FROM users WHERE org_id = ?1")?;
    let rows = stmt.query_map([org_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The owner's email as exported: empty for no owner.
pub fn owner_email<'a>(emails: &'a HashMap<String, String>, owner_id: Option<&str>) -> &'a str {
    owner_id
        .and_then(|id| emails.get(id))
        .map_or("", String::as_str)
}

/// A tags cell as tags: separated by `;` (as exported), `,` or `|`.
pub fn tags(cell: Option<String>) -> Vec<String> {
    cell.map(|t| {
        t.split([';', ',', '|'])
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// An export being written: a header row, then records whose text cells are made
/// [`formula_safe`] and whose numbers and times are written as they are.
pub struct TextSink<W: Write> {
    writer: csv::Writer<std::io::BufWriter<W>>,
}

fn write_failed(e: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(format!("export write failed: {e}"))
}

impl<W: Write> TextSink<W> {
    /// Starts the file (with a UTF-8 byte-order mark when `bom`) with its header row.
    pub fn new(out: W, bom: bool, headers: &[&str]) -> DomainResult<Self> {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
        if bom {
            out.write_all(b"\xEF\xBB\xBF").map_err(write_failed)?;
        }
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(headers).map_err(write_failed)?;
        Ok(Self { writer })
    }

    /// One record: its text cells, then its numbers and times.
    pub fn write(&mut self, text: &[&str], plain: &[&str]) -> DomainResult<()> {
        for cell in text {
            self.writer
                .write_field(formula_safe(cell).as_bytes())
                .map_err(write_failed)?;
        }
        for cell in plain {
            self.writer.write_field(cell).map_err(write_failed)?;
        }
        self.writer
            .write_record(None::<&[u8]>)
            .map_err(write_failed)
    }

    /// Writes out what is buffered.
    pub fn finish(mut self) -> DomainResult<()> {
        self.writer.flush().map_err(write_failed)
    }
}
