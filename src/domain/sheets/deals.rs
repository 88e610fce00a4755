//! Deals in and out as CSV. A deal is the same as another only when the file names its `id`
//! (an export imported back into its own organization); deals have no other natural key.

use std::io::Write;

use poem_openapi::types::MaybeUndefined;
use rusqlite::{params, Connection, OptionalExtension};

use super::{member, Cells, Column, Importer, Note, Run, TextSink};
use crate::db::Tx;
use crate::domain::deals::{self, DealFilter, DealPatch, NewDeal};
use crate::domain::terms::Term;
use crate::domain::validate::{self, Currency};
use crate::domain::{DomainError, DomainResult};
use crate::timefmt::format_ms;

const ID: usize = 0;
const TITLE: usize = 1;
const VALUE: usize = 2;
const CURRENCY: usize = 3;
const PIPELINE: usize = 4;
const STAGE: usize = 5;
const LEAD: usize = 6;
const COMPANY: usize = 7;
const OWNER: usize = 8;
const CLOSE: usize = 9;
const LOST_REASON: usize = 10;
const TAGS: usize = 11;

/// The columns a deal import reads, with the header names other programs give them.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "id",
        aliases: &[],
    },
    Column {
        name: "title",
        aliases: &[
            "name",
            "dealname",
            "dealtitle",
            "opportunity",
            "opportunityname",
        ],
    },
    Column {
        name: "value",
        aliases: &["amount", "dealvalue", "dealamount", "opportunityvalue"],
    },
    Column {
        name: "currency",
        aliases: &["dealcurrency", "currencycode"],
    },
    Column {
        name: "pipeline",
        aliases: &["pipelinename", "pipelineid", "dealpipeline"],
    },
    Column {
        name: "stage",
        aliases: &["stagename", "stageid", "dealstage", "pipelinestage"],
    },
    Column {
        name: "lead_email",
        aliases: &[
            "lead",
            "leadid",
            "contactemail",
            "personemail",
            "email",
            "contact",
        ],
    },
    Column {
        name: "company",
        aliases: &[
            "companyname",
            "companydomain",
            "companyid",
            "organization",
            "organisation",
            "account",
            "accountname",
        ],
    },
    Column {
        name: "owner_email",
        aliases: &["owner", "ownerid", "dealowner", "assignedto", "salesrep"],
    },
    Column {
        name: "expected_close_date",
        aliases: &["closedate", "expectedclose", "closingdate", "dealclosedate"],
    },
    Column {
        name: "lost_reason",
        aliases: &["lostreason", "reasonlost"],
    },
    Column {
        name: "tags",
        aliases: &["tag", "labels", "label"],
    },
];

/// The deal import: creates deals in the stage (and pipeline) they name.
pub struct DealImport(pub Run);

/// An amount as spreadsheets write it: `12500`, `12,500.00`, `12.500,00`, `€ 12 500`.
fn amount(cell: &str) -> Result<f64, DomainError> {
    let kept: String = cell
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '.' | ','))
        .collect();
    // The last of `.` and `,` is the decimal mark when two or fewer digits follow it (a
    // thousands group has three); every other mark groups thousands.
    let decimal = kept
        .rfind(['.', ','])
        .filter(|at| (1..=2).contains(&(kept.len() - at - 1)));
    let digits: String = kept
        .char_indices()
        .filter_map(|(i, c)| match c {
            '.' | ',' if Some(i) == decimal => Some('.'),
            '.' | ',' => None,
            c => Some(c),
        })
        .collect();
    match digits.parse::<f64>() {
        Ok(v) if !kept.is_empty() && !cell.trim_start().starts_with('-') => Ok(v),
        _ => Err(DomainError::invalid(
            "value",
            format!("`{cell}` is not an amount of 0 or more"),
        )),
    }
}

/// The id of the row's pipeline, by name or id; `None` when the file names none.
fn pipeline(conn: &Connection, org_id: &str, cell: Option<String>) -> DomainResult<Option<String>> {
    let Some(named) = cell else {
        return Ok(None);
    };
    conn.prepare_cached(
        "SELECT id FROM pipelines WHERE org_id = ?1 AND (id = ?2 OR name = ?2 COLLATE NOCASE)
         ORDER BY id = ?2 DESC LIMIT 1",
    )?
    .query_row(params![org_id, named], |r| r.get(0))
    .optional()?
    .map(Some)
    .ok_or_else(|| {
        DomainError::invalid(
            "pipeline",
            format!("names no pipeline of this organization: `{named}`"),
        )
    })
}

/// The id of the record a reference cell names: the first of `lookups` (each bound to the
/// organization and the cell, and each served by an index: one query with `OR` between
/// columns would scan the table for every row) that finds one; a row error naming `field`
/// when none does.
fn reference(
    conn: &Connection,
    org_id: &str,
    cell: Option<String>,
    (field, noun): (&str, &str),
    lookups: &[&str],
) -> DomainResult<Option<String>> {
    let Some(named) = cell else {
        return Ok(None);
    };
    for sql in lookups {
        let found: Option<String> = conn
            .prepare_cached(sql)?
            .query_row(params![org_id, named], |r| r.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Err(DomainError::invalid(
        field,
        format!("names no {noun} of this organization: `{named}` (import {noun}s first)"),
    ))
}

/// A deal row, read.
pub struct DealRow {
    /// The `id` cell: an existing deal of this organization, if it names one.
    id: Option<String>,
    input: NewDeal,
    lost_reason: Option<String>,
    /// Whether the file has an owner column: with one, an empty cell means no owner; without,
    /// the deals go to whoever imports, as `POST /deals` gives them.
    owner_column: bool,
}

impl Importer for DealImport {
    type Record = DealRow;
    const NOUN: &'static str = "deal";
    const COLUMNS: &'static [Column] = COLUMNS;
    const READ_ONLY: &'static [&'static str] =
        &["status", "probability", "created_at", "updated_at"];

    fn read(&self, tx: &Tx<'_>, row: &Cells<'_>, notes: &mut Vec<Note>) -> DomainResult<DealRow> {
        let org_id = &self.0.p.org_id;
        let value = row.get(VALUE).map(|v| amount(&v)).transpose()?;
        let currency = match row.get(CURRENCY) {
            Some(code) => Some(Term::<Currency>::parse(&code.to_uppercase()).map_err(|_| {
                DomainError::invalid(
                    "currency",
                    format!("`{code}` is not an ISO 4217 currency code"),
                )
            })?),
            None => None,
        };
        let lead_id = reference(
            tx,
            org_id,
            row.get(LEAD),
            ("lead_email", "lead"),
            &[
                "SELECT id FROM leads WHERE org_id = ?1 AND email = ?2 COLLATE NOCASE",
                "SELECT id FROM leads WHERE org_id = ?1 AND id = ?2",
            ],
        )?;
        let company_id = reference(
            tx,
            org_id,
            row.get(COMPANY),
            ("company", "company"),
            &[
                "SELECT id FROM companies WHERE org_id = ?1 AND domain = ?2 COLLATE NOCASE
                 ORDER BY rowid LIMIT 1",
                "SELECT id FROM companies WHERE org_id = ?1 AND name = ?2 COLLATE NOCASE
                 ORDER BY rowid LIMIT 1",
                "SELECT id FROM companies WHERE org_id = ?1 AND id = ?2",
            ],
        )?;
        let stage = row.get(STAGE);
        let stage_is_id = stage
            .as_deref()
            .is_some_and(|s| crate::ids::is_valid(s, "stg"));
        Ok(DealRow {
            id: row.get(ID),
            input: NewDeal {
                title: row.get(TITLE).unwrap_or_default().into(),
                value,
                currency,
                pipeline_id: pipeline(tx, org_id, row.get(PIPELINE))?,
                stage_id: stage.clone().filter(|_| stage_is_id),
                stage: stage.filter(|_| !stage_is_id),
                owner_id: member(tx, org_id, row.get(OWNER), "owner_email", notes)?,
                lead_id,
                company_id,
                expected_close_date: row.get(CLOSE).map(String::into),
                tags: row.has(TAGS).then(|| super::tags(row.get(TAGS)).into()),
            },
            lost_reason: row.get(LOST_REASON),
            owner_column: row.has(OWNER),
        })
    }

    fn existing(
        &self,
        tx: &Tx<'_>,
        deal: &DealRow,
    ) -> DomainResult<Option<(String, &'static str)>> {
        Ok(match &deal.id {
            Some(id) => deals::find(tx, &self.0.p.org_id, id)?.map(|d| (d.id, "id")),
            None => None,
        })
    }

    fn create(&self, tx: &Tx<'_>, deal: DealRow) -> DomainResult<String> {
        let Run { p, actor, now } = &self.0;
        let default_owner = (!deal.owner_column).then_some(p.user_id.as_str());
        let created = deals::create_as(tx, &p.org_id, actor, default_owner, deal.input, *now)?;
        if let Some(reason) = deal.lost_reason {
            let patch = DealPatch {
                lost_reason: MaybeUndefined::Value(reason),
                ..DealPatch::default()
            };
            deals::update(tx, p, &created.id, patch, None, *now)?;
        }
        Ok(created.id)
    }

    fn update(&self, tx: &Tx<'_>, id: &str, deal: DealRow) -> DomainResult<()> {
        let set = |v: Option<String>| v.map_or(MaybeUndefined::Undefined, MaybeUndefined::Value);
        let d = deal.input;
        let patch = DealPatch {
            title: Some(d.title).filter(|t| !t.is_empty()),
            value: d.value,
            currency: d.currency,
            owner_id: set(d.owner_id),
            lead_id: set(d.lead_id),
            company_id: set(d.company_id),
            expected_close_date: d
                .expected_close_date
                .map_or(MaybeUndefined::Undefined, MaybeUndefined::Value),
            lost_reason: set(deal.lost_reason),
            tags: d.tags.filter(|t| !t.is_empty()),
        };
        deals::update(tx, &self.0.p, id, patch, None, self.0.now)?;
        Ok(())
    }
}

/// The export's columns, in order: text first, then numbers and times.
pub const EXPORT_COLUMNS: &[&str] = &[
    "id",
    "title",
    "currency",
    "pipeline",
    "stage",
    "status",
    "lead_email",
    "company",
    "owner_email",
    "expected_close_date",
    "lost_reason",
    "tags",
    "value",
    "created_at",
    "updated_at",
];

/// What the export reads of a deal: its own columns and the names it is known by elsewhere.
const EXPORT_SELECT: &str = "d.id, d.title, d.currency, p.name, s.name, d.status, l.email, \
    coalesce(c.domain, c.name), u.email, d.expected_close_date, d.lost_reason, d.tags, d.value, \
    d.created_at, d.updated_at";
const EXPORT_FROM: &str = "deals d JOIN stages s ON s.id = d.stage_id \
    JOIN pipelines p ON p.id = d.pipeline_id LEFT JOIN leads l ON l.id = d.lead_id \
    LEFT JOIN companies c ON c.id = d.company_id LEFT JOIN users u ON u.id = d.owner_id";

/// Writes the filtered deals as CSV to `out`: pipeline and stage by name, lead by email,
/// company by domain (or name), owner by email, so that the file imports into another
/// organization that has them.
pub fn export(
    conn: &Connection,
    org_id: &str,
    filter: &DealFilter,
    sort: Option<&str>,
    bom: bool,
    out: impl Write,
) -> DomainResult<()> {
    let (filters, sort) = deals::filters_for(conn, org_id, filter, sort)?;
    let mut sink = TextSink::new(out, bom, EXPORT_COLUMNS)?;
    let text = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<String> {
        Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    filters.for_each(
        conn,
        EXPORT_SELECT,
        EXPORT_FROM,
        sort,
        "d.id",
        |r| {
            let cells: Vec<String> = (0..11)
                .map(|i| text(r, i))
                .collect::<rusqlite::Result<_>>()?;
            let currency: String = r.get(2)?;
            let value = validate::minor_to_money(r.get(12)?, &currency);
            let tags = validate::tags_from_db(&r.get::<_, String>(11)?).join(";");
            Ok((
                cells,
                tags,
                value,
                r.get::<_, i64>(13)?,
                r.get::<_, i64>(14)?,
            ))
        },
        |(cells, tags, value, created, updated)| {
            let mut text: Vec<&str> = cells.iter().map(String::as_str).collect();
            text.push(&tags);
            sink.write(
                &text,
                &[&value.to_string(), &format_ms(created), &format_ms(updated)],
            )
        },
    )?;
    sink.finish()
}
