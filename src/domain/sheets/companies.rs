//! Companies in and out as CSV. A company is the same as another when their domains are, or,
//! for a row without a domain, when their names are (case aside).

use std::io::Write;

use poem_openapi::types::MaybeUndefined;
use rusqlite::{params, Connection, OptionalExtension};

use super::{member, Cells, Column, Importer, Note, Run, TextSink};
use crate::db::Tx;
use crate::domain::companies::{self, Company, CompanyFilter, CompanyPatch, NewCompany};
use crate::domain::{DomainError, DomainResult};
use crate::timefmt::format_ms;

const NAME: usize = 0;
const DOMAIN: usize = 1;
const INDUSTRY: usize = 2;
const SIZE: usize = 3;
const COUNTRY: usize = 4;
const PHONE: usize = 5;
const WEBSITE: usize = 6;
const TAGS: usize = 7;
const OWNER: usize = 8;

/// The columns a company import reads, with the header names other programs give them.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "name",
        aliases: &[
            "companyname",
            "company",
            "organization",
            "organisation",
            "organizationname",
            "account",
            "accountname",
        ],
    },
    Column {
        name: "domain",
        aliases: &["companydomain", "companydomainname", "domainname"],
    },
    Column {
        name: "industry",
        aliases: &["sector", "vertical"],
    },
    Column {
        name: "size",
        aliases: &[
            "employees",
            "numberofemployees",
            "employeecount",
            "companysize",
            "headcount",
        ],
    },
    Column {
        name: "country",
        aliases: &["countryregion", "countryname"],
    },
    Column {
        name: "phone",
        aliases: &["phonenumber", "telephone", "tel", "companyphone"],
    },
    Column {
        name: "website",
        aliases: &["url", "web", "homepage", "websiteurl", "companywebsite"],
    },
    Column {
        name: "tags",
        aliases: &["tag", "labels", "label"],
    },
    Column {
        name: "owner_email",
        aliases: &[
            "owner",
            "ownerid",
            "companyowner",
            "accountowner",
            "assignedto",
        ],
    },
];

/// The company import: creates companies, matched to existing ones by domain or name.
pub struct CompanyImport(pub Run);

/// A cell of employees as a number: `1200`, `1,200` or `1 200`; `None` with a note for
/// anything else (a range such as `51-200` is what some exports write).
fn size(cell: Option<String>, notes: &mut Vec<Note>) -> Option<i64> {
    let cell = cell?;
    let digits: String = cell
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '\u{a0}' | '.'))
        .collect();
    match digits.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            notes.push(Note {
                field: "size",
                message: format!("`{cell}` is not a whole number of employees; left empty"),
            });
            None
        }
    }
}

impl Importer for CompanyImport {
    const NOUN: &'static str = "company";
    const COLUMNS: &'static [Column] = COLUMNS;
    const READ_ONLY: &'static [&'static str] = &["id", "created_at", "updated_at"];

    type Record = NewCompany;

    fn read(
        &self,
        tx: &Tx<'_>,
        row: &Cells<'_>,
        notes: &mut Vec<Note>,
    ) -> DomainResult<NewCompany> {
        let Some(name) = row.get(NAME) else {
            return Err(DomainError::invalid("name", "is required"));
        };
        Ok(NewCompany {
            name: name.into(),
            domain: row.get(DOMAIN),
            industry: row.get(INDUSTRY),
            size: size(row.get(SIZE), notes),
            country: row.get(COUNTRY),
            phone: row.get(PHONE),
            website: row.get(WEBSITE),
            owner_id: member(tx, &self.0.p.org_id, row.get(OWNER), "owner_email", notes)?,
            tags: row.has(TAGS).then(|| super::tags(row.get(TAGS)).into()),
        })
    }

    fn existing(
        &self,
        tx: &Tx<'_>,
        c: &NewCompany,
    ) -> DomainResult<Option<(String, &'static str)>> {
        let field = if c.domain.is_some() { "domain" } else { "name" };
        Ok(find_same(tx, &self.0.p.org_id, c)?.map(|id| (id, field)))
    }

    fn create(&self, tx: &Tx<'_>, c: NewCompany) -> DomainResult<String> {
        Ok(companies::create(tx, &self.0.p, c, self.0.now)?.id)
    }

    fn update(&self, tx: &Tx<'_>, id: &str, c: NewCompany) -> DomainResult<()> {
        let set = |v: Option<String>| v.map_or(MaybeUndefined::Undefined, MaybeUndefined::Value);
        let patch = CompanyPatch {
            name: None,
            domain: set(c.domain),
            industry: set(c.industry),
            size: c
                .size
                .map_or(MaybeUndefined::Undefined, MaybeUndefined::Value),
            country: set(c.country),
            phone: set(c.phone),
            website: set(c.website),
            owner_id: set(c.owner_id),
            tags: c.tags.filter(|t| !t.is_empty()),
        };
        companies::update(tx, &self.0.p, id, patch, None, self.0.now)?;
        Ok(())
    }
}

/// The company a row is the same as: by domain when it has one, else by name.
fn find_same(conn: &Connection, org_id: &str, c: &NewCompany) -> DomainResult<Option<String>> {
    let (sql, key) = match &c.domain {
        Some(domain) => (
            "SELECT id FROM companies WHERE org_id = ?1 AND domain = ?2 COLLATE NOCASE
             ORDER BY rowid LIMIT 1",
            domain.trim(),
        ),
        None => (
            "SELECT id FROM companies WHERE org_id = ?1 AND name = ?2 COLLATE NOCASE
             ORDER BY rowid LIMIT 1",
            c.name.trim(),
        ),
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![org_id, key], |r| r.get(0))
        .optional()?)
}

/// The export's columns, in order: text first, then numbers and times.
pub const EXPORT_COLUMNS: &[&str] = &[
    "id",
    "name",
    "domain",
    "industry",
    "country",
    "phone",
    "website",
    "tags",
    "owner_email",
    "size",
    "created_at",
    "updated_at",
];

/// Writes the filtered companies as CSV to `out`.
pub fn export(
    conn: &Connection,
    org_id: &str,
    filter: &CompanyFilter,
    sort: Option<&str>,
    bom: bool,
    out: impl Write,
) -> DomainResult<()> {
    let (filters, sort) = companies::filters_for(org_id, filter, sort)?;
    let owners = super::member_emails(conn, org_id)?;
    let mut sink = TextSink::new(out, bom, EXPORT_COLUMNS)?;
    filters.for_each(
        conn,
        companies::COLUMNS,
        "companies",
        sort,
        "id",
        companies::from_row,
        |c: Company| {
            sink.write(
                &[
                    &c.id,
                    &c.name,
                    c.domain.as_deref().unwrap_or(""),
                    c.industry.as_deref().unwrap_or(""),
                    c.country.as_deref().unwrap_or(""),
                    c.phone.as_deref().unwrap_or(""),
                    c.website.as_deref().unwrap_or(""),
                    &c.tags.join(";"),
                    super::owner_email(&owners, c.owner_id.as_deref()),
                ],
                &[
                    &c.size.map(|s| s.to_string()).unwrap_or_default(),
                    &format_ms(c.created_at.0),
                    &format_ms(c.updated_at.0),
                ],
            )
        },
    )?;
    sink.finish()
}
