//! Companies: the accounts leads work at and deals are sold to.

use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::Object;
use rusqlite::{params, Connection, Row};

use super::auth::Principal;
use super::error::{DomainResult, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::validate;
use crate::clock::Millis;
use crate::domain::changes;
use crate::domain::validate::{Name, Tags};
use crate::ids::new_id;
use crate::shape::Shaped;
use crate::timefmt::Timestamp;

/// A company.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Company {
    /// `co_...`
    pub id: String,
    /// Its name.
    pub name: String,
    /// Web domain, e.g. `acme.com`.
    pub domain: Nullable<String>,
    /// Industry, matched against the organization's ideal customer profile.
    pub industry: Nullable<String>,
    /// Employees.
    pub size: Nullable<i64>,
    /// Country (ISO code or name).
    pub country: Nullable<String>,
    /// Main phone number.
    pub phone: Nullable<String>,
    /// Website URL.
    pub website: Nullable<String>,
    /// The user who owns the account.
    pub owner_id: Nullable<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A company to create.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewCompany {
    /// 1–200 characters.
    pub name: Shaped<Name>,
    /// Web domain.
    #[oai(validator(max_length = 253))]
    #[oai(nullable)]
    pub domain: Option<String>,
    /// Industry.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub industry: Option<String>,
    /// Employees, 0 or more.
    #[oai(validator(minimum(value = "0"), maximum(value = "10000000")))]
    #[oai(nullable)]
    pub size: Option<i64>,
    /// Country.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub country: Option<String>,
    /// Phone.
    #[oai(validator(max_length = 50))]
    #[oai(nullable)]
    pub phone: Option<String>,
    /// Website URL.
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub website: Option<String>,
    /// An active user of the organization.
    #[oai(nullable)]
    pub owner_id: Option<String>,
    /// At most 50 tags of 1–50 characters.
    #[oai(nullable)]
    pub tags: Option<Tags>,
}

/// Changes to a company; absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct CompanyPatch {
    /// 1–200 characters.
    #[oai(nullable)]
    pub name: Option<Shaped<Name>>,
    /// Web domain.
    #[oai(validator(max_length = 253))]
    #[oai(nullable)]
    pub domain: MaybeUndefined<String>,
    /// Industry.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub industry: MaybeUndefined<String>,
    /// Employees.
    #[oai(validator(minimum(value = "0"), maximum(value = "10000000")))]
    #[oai(nullable)]
    pub size: MaybeUndefined<i64>,
    /// Country.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub country: MaybeUndefined<String>,
    /// Phone.
    #[oai(validator(max_length = 50))]
    #[oai(nullable)]
    pub phone: MaybeUndefined<String>,
    /// Website URL.
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub website: MaybeUndefined<String>,
    /// An active user, or null.
    #[oai(nullable)]
    pub owner_id: MaybeUndefined<String>,
    /// Replaces the tags.
    #[oai(nullable)]
    pub tags: Option<Tags>,
}

pub const COLUMNS: &str =
    "id, name, domain, industry, size, country, phone, website, owner_id, tags, \
                       version, created_at, updated_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "companies",
    id: "id",
    count_from: None,
};

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Company> {
    Ok(Company {
        id: r.get(0)?,
        name: r.get(1)?,
        domain: r.get(2)?,
        industry: r.get(3)?,
        size: r.get(4)?,
        country: r.get(5)?,
        phone: r.get(6)?,
        website: r.get(7)?,
        owner_id: r.get(8)?,
        tags: validate::tags_from_db(&r.get::<_, String>(9)?),
        version: r.get(10)?,
        created_at: Timestamp(r.get(11)?),
        updated_at: Timestamp(r.get(12)?),
    })
}

/// The company `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Company> {
    RECORD.get(conn, org_id, id, from_row)
}

/// The company `id` of `org_id`, if there is one.
pub fn find(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Option<Company>> {
    RECORD.find(conn, org_id, id, from_row)
}

const RECORD: Record = Record::new("companies", COLUMNS, "co", "company");

/// Filters of the company list.
#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    /// Any of these industries (case-insensitive).
    pub industry: Option<String>,
    /// Any of these countries.
    pub country: Option<String>,
    /// Owned by any of these users.
    pub owner_id: Option<String>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Employees at least.
    pub size_min: Option<i64>,
    /// Employees at most.
    pub size_max: Option<i64>,
    /// Created at or after.
    pub created_after: Option<Millis>,
    /// Created before.
    pub created_before: Option<Millis>,
    /// Changed at or after.
    pub updated_since: Option<Millis>,
    /// Text in the name or domain.
    pub q: Option<String>,
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("name", "name COLLATE NOCASE"),
    ("size", "size"),
];

/// One page of companies.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &CompanyFilter,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Company>> {
    let (filters, sort) = filters_for(org_id, f, sort)?;
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// The list's filters and order, shared by the list and the CSV export.
pub fn filters_for(
    org_id: &str,
    f: &CompanyFilter,
    sort: Option<&str>,
) -> DomainResult<(Filters, Sort)> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    let industries: Vec<String> = any_of(f.industry.as_deref())
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    filters.any_of("lower(industry)", &industries);
    filters.any_of("country", &any_of(f.country.as_deref()));
    filters.any_of("owner_id", &any_of(f.owner_id.as_deref()));
    if let Some(tag) = &f.tag {
        filters.push(
            "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ? COLLATE NOCASE)",
            vec![tag.clone().into()],
        );
    }
    if let Some(v) = f.size_min {
        filters.push("size >= ?", vec![v.into()]);
    }
    if let Some(v) = f.size_max {
        filters.push("size <= ?", vec![v.into()]);
    }
    filters.time_window("", f.created_after, f.created_before, f.updated_since);
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let p = validate::like_pattern(q);
        filters.push(
            "(name LIKE ? ESCAPE '\\' OR domain LIKE ? ESCAPE '\\')",
            vec![p.clone().into(), p.into()],
        );
    }
    Ok((filters, sort))
}

/// The largest number of employees a company may have (the document's maximum).
const SIZE_MAX: i64 = 10_000_000;

struct Fields {
    name: String,
    domain: Option<String>,
    industry: Option<String>,
    size: Option<i64>,
    country: Option<String>,
    phone: Option<String>,
    website: Option<String>,
    owner_id: Option<String>,
    tags: Vec<String>,
}

fn check(conn: &Connection, org_id: &str, f: Fields) -> DomainResult<Fields> {
    let mut issues = Issues::new();
    let out = Fields {
        name: validate::name(&mut issues, "name", &f.name),
        domain: validate::optional_text(&mut issues, "domain", f.domain, 253)
            .map(|d| d.to_lowercase()),
        industry: validate::optional_text(&mut issues, "industry", f.industry, 100),
        size: f.size,
        country: validate::optional_text(&mut issues, "country", f.country, 100),
        phone: validate::optional_text(&mut issues, "phone", f.phone, 50),
        website: validate::optional_text(&mut issues, "website", f.website, 500),
        owner_id: f.owner_id,
        tags: validate::tags(&mut issues, "tags", f.tags),
    };
    match out.size {
        Some(s) if s < 0 => issues.add("size", "must be at least 0"),
        Some(s) if s > SIZE_MAX => issues.add("size", format!("must be at most {SIZE_MAX}")),
        _ => {}
    }
    validate::active_user(
        conn,
        &mut issues,
        "owner_id",
        org_id,
        out.owner_id.as_deref(),
    )?;
    issues.finish()?;
    Ok(out)
}

/// Creates a company and its `company.created` event.
pub fn create(tx: &Tx<'_>, p: &Principal, input: NewCompany, now: Millis) -> DomainResult<Company> {
    let f = check(
        tx,
        &p.org_id,
        Fields {
            name: input.name.into(),
            domain: input.domain,
            industry: input.industry,
            size: input.size,
            country: input.country,
            phone: input.phone,
            website: input.website,
            owner_id: input.owner_id,
            tags: input.tags.map(Vec::from).unwrap_or_default(),
        },
    )?;
    let id = new_id("co");
    tx.execute(
        "INSERT INTO companies (id, org_id, name, domain, industry, size, country, phone, website,
                                owner_id, tags, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
        params![
            id,
            p.org_id,
            f.name,
            f.domain,
            f.industry,
            f.size,
            f.country,
            f.phone,
            f.website,
            f.owner_id,
            validate::tags_to_db(&f.tags),
            now
        ],
    )?;
    let company = get(tx, &p.org_id, &id)?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "company.created",
        &company,
        None,
        now,
    )?;
    Ok(company)
}

/// Changes a company (`If-Match` checked) and records `company.updated` with the old values.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: CompanyPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Company> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let b = before.clone();
    let f = check(
        tx,
        &p.org_id,
        Fields {
            name: patch.name.map_or(b.name, String::from),
            domain: validate::merge(patch.domain, b.domain.0),
            industry: validate::merge(patch.industry, b.industry.0),
            size: validate::merge(patch.size, b.size.0),
            country: validate::merge(patch.country, b.country.0),
            phone: validate::merge(patch.phone, b.phone.0),
            website: validate::merge(patch.website, b.website.0),
            owner_id: validate::merge(patch.owner_id, b.owner_id.0),
            tags: patch.tags.map(Vec::from).unwrap_or(b.tags),
        },
    )?;
    let written = changes::update(
        tx,
        "companies",
        &p.org_id,
        id,
        &[
            ("name", &f.name),
            ("domain", &f.domain),
            ("industry", &f.industry),
            ("size", &f.size),
            ("country", &f.country),
            ("phone", &f.phone),
            ("website", &f.website),
            ("owner_id", &f.owner_id),
            ("tags", &validate::tags_to_db(&f.tags)),
        ],
        now,
    )?;
    if !written {
        return Ok(before);
    }
    // Industry and size are part of the scores of the company's leads.
    super::scores::refresh_where(tx, &p.org_id, "company_id = ?2", id, now)?;
    let after = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    changes::record_update(
        tx,
        &p.org_id,
        &actor,
        "company.updated",
        &before,
        &after,
        now,
    )?;
    Ok(after)
}

/// Deletes a company. Its leads and deals stay, with `company_id` cleared (and `company_name`
/// kept on leads), so nothing points at a missing row.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Company> {
    let company = get(tx, &p.org_id, id)?;
    tx.execute(
        "UPDATE leads SET company_id = NULL, company_name = coalesce(company_name, ?3)
         WHERE org_id = ?1 AND company_id = ?2",
        params![p.org_id, id, company.name],
    )?;
    tx.execute(
        "UPDATE deals SET company_id = NULL WHERE org_id = ?1 AND company_id = ?2",
        params![p.org_id, id],
    )?;
    tx.execute(
        "DELETE FROM companies WHERE org_id = ?1 AND id = ?2",
        params![p.org_id, id],
    )?;
    super::scores::refresh_where(tx, &p.org_id, "company_name = ?2", &company.name, now)?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "company.deleted",
        &company,
        None,
        now,
    )?;
    Ok(company)
}
