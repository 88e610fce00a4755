//! Leads in and out as CSV, the way spreadsheets write it: a header row, quoted fields with
//! commas and line breaks, an optional UTF-8 byte-order mark.

use crate::domain::nullable::Nullable;
use std::io::Write;

use crate::db::Tx;
use poem_openapi::{Enum, Object};
use rusqlite::Connection;

use super::auth::Principal;
use super::error::{DomainError, DomainResult};
use super::events::Actor;
use super::leads::{self, Lead, LeadFields, LeadFilter, LeadStatus};
use super::listing::Sort;
use crate::clock::Millis;
use crate::db::Db;
use crate::timefmt::format_ms;

/// Columns the import understands (after lower-casing and turning spaces into underscores).
pub const IMPORT_COLUMNS: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "email",
    "phone",
    "title",
    "company",
    "company_name",
    "country",
    "status",
    "source",
    "tags",
    "owner_id",
];

/// Rows written per transaction, so a long import never holds the writer for long.
const ROWS_PER_TRANSACTION: usize = 1000;

/// What to do with a row whose email belongs to an existing lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
#[oai(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// Leave the existing lead alone and count the row as skipped.
    #[default]
    Skip,
    /// Fill the existing lead with the row's non-empty values.
    Update,
}

/// A row that was not imported as given.
#[derive(Debug, Clone, Object)]
pub struct RowIssue {
    /// 1-based number of the data row (the header row not counted).
    pub row: i64,
    /// 1-based line of the file where the row starts (the header is line 1).
    pub line: i64,
    /// What was wrong.
    pub message: String,
    /// The existing lead, for duplicates.
    pub lead_id: Nullable<String>,
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, Object)]
pub struct ImportResult {
    /// Leads created.
    pub created: i64,
    /// Existing leads updated (`on_duplicate=update`).
    pub updated: i64,
    /// Rows skipped as duplicates (`on_duplicate=skip`).
    pub skipped: i64,
    /// Rows rejected, with the reason.
    pub errors: Vec<RowIssue>,
    /// Rows whose email matched an existing lead (skipped or updated).
    pub duplicates: Vec<RowIssue>,
    /// Header columns that were not understood and were ignored.
    pub unknown_columns: Vec<String>,
}

struct ParsedRow {
    row: i64,
    line: i64,
    fields: Result<LeadFields, String>,
}

fn normalize_header(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .replace([' ', '-'], "_")
}

/// The import's first rule, as the document states it: a header row (after an optional BOM)
/// with a cell that is, give or take case, blanks and quotes around it, one of `email`,
/// `name`, `first_name` or `last_name` (a space or hyphen may stand for the underscore).
/// Cells before it are quoted (`"…"`, `""` for a quote) or free of quotes and line breaks; a
/// quoted cell starts with its quote (after a blank, the quote is just a character).
pub const HEADER_PATTERN: &str = concat!(
    r#"^\uFEFF?(("([^"]|"")*"|[^\n\r,"]*),)*"#,
    r#"("[ \t]*"#,
    name_cell!(),
    r#"[ \t]*"|[ \t]*"#,
    name_cell!(),
    r#"[ \t]*)(,|\r|\n|$)"#
);

/// The header names a lead can be known by, case-insensitively.
macro_rules! name_cell {
    () => {
        concat!(
            "([Ee][Mm][Aa][Ii][Ll]|[Nn][Aa][Mm][Ee]",
            "|[Ff][Ii][Rr][Ss][Tt][ _-][Nn][Aa][Mm][Ee]|[Ll][Aa][Ss][Tt][ _-][Nn][Aa][Mm][Ee])"
        )
    };
}
use name_cell;

/// Reads the CSV into rows of lead fields (or the reason a row cannot be one).
fn parse(bytes: &[u8], result: &mut ImportResult) -> DomainResult<Vec<ParsedRow>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| {
            DomainError::invalid("body", format!("has a header row that cannot be read: {e}"))
        })?
        .iter()
        .map(normalize_header)
        .collect();
    if headers.iter().all(|h| h.is_empty()) {
        return Err(DomainError::invalid(
            "body",
            "needs a header row naming its columns",
        ));
    }
    result.unknown_columns = headers
        .iter()
        .filter(|h| !h.is_empty() && !IMPORT_COLUMNS.contains(&h.as_str()))
        .cloned()
        .collect();
    if !headers
        .iter()
        .any(|h| ["email", "first_name", "last_name", "name"].contains(&h.as_str()))
    {
        return Err(DomainError::invalid(
            "body",
            "needs a header row naming at least one of email, first_name, last_name, name",
        ));
    }
    // With CRLF line ends the csv crate places a record at the `\n` before it (and counts its
    // lines from there), so the line a person sees in an editor is counted here: skip the line
    // break the position may point at, then count the breaks before it, carrying the count
    // forward from the previous record so the whole file is scanned once.
    let mut counted = (0usize, 1i64);
    let mut line_at = |byte: u64| {
        let mut at = (byte as usize).min(bytes.len());
        while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
            at += 1;
        }
        let (from, line) = counted;
        let from = from.min(at);
        let line = line + bytes[from..at].iter().filter(|b| **b == b'\n').count() as i64;
        counted = (at, line);
        line
    };
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as i64 + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                rows.push(ParsedRow {
                    row,
                    line,
                    fields: Err(format!("unreadable row: {e}")),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > headers.len() {
            rows.push(ParsedRow {
                row,
                line,
                fields: Err(format!(
                    "has {} fields but the header has {}",
                    record.len(),
                    headers.len()
                )),
            });
            continue;
        }
        let get = |name: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (mut first, mut last) = (get("first_name"), get("last_name"));
        if first.is_none() && last.is_none() {
            if let Some(full) = get("name") {
                let mut parts = full.splitn(2, ' ');
                first = parts.next().map(str::to_string);
                last = parts
                    .next()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
            }
        }
        let status = match get("status") {
            None => Ok(LeadStatus::New),
            Some(s) => match LeadStatus::parse(&s) {
                Some(LeadStatus::Converted) => {
                    Err("status `converted` comes only from converting".to_string())
                }
                Some(st) => Ok(st),
                None => Err(format!(
                    "status `{s}` is not one of new, contacted, qualified, lost"
                )),
            },
        };
        let fields = status.map(|status| LeadFields {
            first_name: first,
            last_name: last,
            email: get("email"),
            phone: get("phone"),
            title: get("title"),
            company_id: None,
            company_name: get("company").or_else(|| get("company_name")),
            country: get("country"),
            status,
            source: get("source").or_else(|| Some("import".into())),
            tags: get("tags")
                .map(|t| {
                    t.split([';', ',', '|'])
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            owner_id: get("owner_id"),
        });
        rows.push(ParsedRow { row, line, fields });
    }
    Ok(rows)
}

fn describe(err: &DomainError) -> String {
    err.to_string()
}

/// Applies one row in the open transaction.
fn import_row(
    tx: &Tx<'_>,
    p: &Principal,
    actor: &Actor,
    fields: LeadFields,
    on_duplicate: OnDuplicate,
    now: Millis,
) -> Result<(&'static str, Option<String>), DomainError> {
    let existing = match &fields.email {
        Some(email) => leads::find_by_email(tx, &p.org_id, email)?,
        None => None,
    };
    match existing {
        None => {
            let checked = leads::check(tx, &p.org_id, fields, None)?;
            leads::insert(tx, &p.org_id, actor, &checked, now)?;
            Ok(("created", None))
        }
        Some(lead) if on_duplicate == OnDuplicate::Skip => Ok(("skipped", Some(lead.id))),
        Some(lead) => {
            let merged = fill(&lead, fields);
            let checked = leads::check(tx, &p.org_id, merged, Some(&lead.id))?;
            leads::store(tx, &p.org_id, actor, &lead, &checked, "lead.updated", now)?;
            Ok(("updated", Some(lead.id)))
        }
    }
}

/// The existing lead's fields, with the row's non-empty values laid over them.
fn fill(lead: &Lead, row: LeadFields) -> LeadFields {
    let current = leads::fields_of(lead);
    LeadFields {
        first_name: row.first_name.or(current.first_name),
        last_name: row.last_name.or(current.last_name),
        email: current.email,
        phone: row.phone.or(current.phone),
        title: row.title.or(current.title),
        company_id: current.company_id,
        company_name: row.company_name.or(current.company_name),
        country: row.country.or(current.country),
        status: if lead.status == LeadStatus::Converted {
            lead.status
        } else {
            row.status
        },
        source: current.source.or(row.source),
        tags: if row.tags.is_empty() {
            current.tags
        } else {
            row.tags
        },
        owner_id: row.owner_id.or(current.owner_id),
    }
}

/// Imports leads from CSV bytes. Every good row is imported; every bad one is reported with
/// its row and line, and changes nothing. Runs on the calling (blocking) thread, writing in
/// transactions of [`ROWS_PER_TRANSACTION`] rows; a `rehearsal` (dry run) rolls each back
/// once it has answered.
pub fn import(
    db: &Db,
    p: &Principal,
    bytes: &[u8],
    on_duplicate: OnDuplicate,
    rehearsal: bool,
    now: Millis,
) -> DomainResult<ImportResult> {
    let mut result = ImportResult::default();
    let rows = parse(bytes, &mut result)?;
    let actor = Actor::from(p);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<ParsedRow> = rows.by_ref().take(ROWS_PER_TRANSACTION).collect();
        let outcome = db.blocking().write_or_rehearse(rehearsal, |tx| {
            let mut out = ImportResult::default();
            for parsed in chunk {
                let issue = |message: String, lead_id: Option<String>| RowIssue {
                    row: parsed.row,
                    line: parsed.line,
                    message,
                    lead_id: Nullable(lead_id),
                };
                let fields = match parsed.fields {
                    Ok(f) => f,
                    Err(message) => {
                        out.errors.push(issue(message, None));
                        continue;
                    }
                };
                // Each row is checked before anything is written, so a rejected row leaves
                // nothing behind.
                match import_row(tx, p, &actor, fields, on_duplicate, now) {
                    Ok((kind, lead_id)) => match kind {
                        "created" => out.created += 1,
                        "updated" => {
                            out.updated += 1;
                            out.duplicates.push(issue(
                                "duplicate email: existing lead updated".into(),
                                lead_id,
                            ));
                        }
                        _ => {
                            out.skipped += 1;
                            out.duplicates
                                .push(issue("duplicate email: skipped".into(), lead_id));
                        }
                    },
                    Err(e @ (DomainError::Validation(_) | DomainError::Conflict { .. })) => {
                        out.errors.push(issue(describe(&e), None));
                    }
                    Err(other) => return Err(other),
                }
            }
            Ok(out)
        })?;
        result.created += outcome.created;
        result.updated += outcome.updated;
        result.skipped += outcome.skipped;
        result.errors.extend(outcome.errors);
        result.duplicates.extend(outcome.duplicates);
    }
    Ok(result)
}

/// The export's columns, in order.
pub const EXPORT_COLUMNS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "title",
    "company",
    "company_id",
    "country",
    "status",
    "source",
    "tags",
    "owner_id",
    "last_activity_at",
    "created_at",
    "updated_at",
];

/// Writes the filtered leads as CSV to `out`, flushing as it goes (`out` streams to the client).
pub fn export(
    conn: &Connection,
    org_id: &str,
    filter: &LeadFilter,
    sort: Option<&str>,
    bom: bool,
    out: impl Write,
) -> DomainResult<()> {
    let sort = Sort::parse(sort, leads::SORTS)?;
    let filters = leads::filters_for(org_id, filter)?;
    let io = |e: std::io::Error| DomainError::Internal(format!("export write failed: {e}"));
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    if bom {
        out.write_all(b"\xEF\xBB\xBF").map_err(io)?;
    }
    let mut writer = csv::Writer::from_writer(out);
    writer
        .write_record(EXPORT_COLUMNS)
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    filters.for_each(
        conn,
        leads::COLUMNS,
        "leads",
        sort,
        "id",
        leads::from_row,
        |l: Lead| {
            writer
                .write_record([
                    l.id,
                    opt(l.first_name.0),
                    opt(l.last_name.0),
                    opt(l.email.0),
                    opt(l.phone.0),
                    opt(l.title.0),
                    opt(l.company_name.0),
                    opt(l.company_id.0),
                    opt(l.country.0),
                    l.status.as_str().to_string(),
                    opt(l.source.0),
                    l.tags.join(";"),
                    opt(l.owner_id.0),
                    l.last_activity_at
                        .map(|t| format_ms(t.0))
                        .unwrap_or_default(),
                    format_ms(l.created_at.0),
                    format_ms(l.updated_at.0),
                ])
                .map_err(|e| DomainError::Internal(format!("export write failed: {e}")))
        },
    )?;
    writer.flush().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSV cell: any text, quoted as a spreadsheet would when it needs to be.
    fn cell(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_parsed_or_refused_without_a_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let mut result = ImportResult::default();
            let _ = parse(&raw, &mut result);
        }

        #[test]
        fn every_record_is_a_lead_or_a_numbered_error(
            rows in proptest::collection::vec((".{0,40}", ".{0,40}", "[a-z]{1,8}@[a-z]{1,8}\\.test|.{0,20}"), 1..40)
        ) {
            let mut csv = String::from("first_name,last_name,email\r\n");
            for (first, last, email) in &rows {
                csv.push_str(&format!("{},{},{}\r\n", cell(first), cell(last), cell(email)));
            }
            let mut result = ImportResult::default();
            let parsed = parse(csv.as_bytes(), &mut result).unwrap();
            // Records whose cells are all blank (spreadsheets end with them) are not rows.
            let blank = |s: &str| s.bytes().all(|b| b.is_ascii_whitespace());
            let real = rows.iter().filter(|(f, l, e)| !(blank(f) && blank(l) && blank(e))).count();
            proptest::prop_assert_eq!(parsed.len() + result.errors.len(), real);
        }
    }
}
