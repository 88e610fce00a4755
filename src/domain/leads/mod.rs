//! Leads: people who may buy, before (and after) they become deals.

use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::auth::Principal;
use super::companies;
use super::error::{DomainError, DomainResult, FieldIssue, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::validate;
use crate::clock::Millis;
use crate::domain::validate::{EmailOrBlank, Tags};
use crate::ids::new_id;
use crate::shape::Shaped;
use crate::timefmt::Timestamp;

mod writes;
pub use writes::{assign, check, create, delete, fields_of, insert, store, update, LeadFields};

/// Where a lead stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    /// Not contacted yet.
    New,
    /// Reached out to.
    Contacted,
    /// Confirmed as a fit.
    Qualified,
    /// Became a deal (only through `POST /leads/{id}/convert`).
    Converted,
    /// Not going anywhere.
    Lost,
}

/// A status a caller may give a lead: `converted` comes only from converting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SettableLeadStatus {
    /// Not contacted yet.
    New,
    /// Reached out to.
    Contacted,
    /// Confirmed as a fit.
    Qualified,
    /// Not going anywhere.
    Lost,
}

impl From<SettableLeadStatus> for LeadStatus {
    fn from(status: SettableLeadStatus) -> Self {
        match status {
            SettableLeadStatus::New => Self::New,
            SettableLeadStatus::Contacted => Self::Contacted,
            SettableLeadStatus::Qualified => Self::Qualified,
            SettableLeadStatus::Lost => Self::Lost,
        }
    }
}

impl LeadStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Contacted => "contacted",
            Self::Qualified => "qualified",
            Self::Converted => "converted",
            Self::Lost => "lost",
        }
    }

    /// Parses a stored or client-given name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "new" => Some(Self::New),
            "contacted" => Some(Self::Contacted),
            "qualified" => Some(Self::Qualified),
            "converted" => Some(Self::Converted),
            "lost" => Some(Self::Lost),
            _ => None,
        }
    }
}

/// A lead. (Serialized with serde too, for the envelopes' direct path: the same JSON.)
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Lead {
    /// `lead_...`
    pub id: String,
    /// Given name.
    pub first_name: Nullable<String>,
    /// Family name.
    pub last_name: Nullable<String>,
    /// Unique among the organization's leads (case-insensitive).
    pub email: Nullable<String>,
    /// Phone number.
    pub phone: Nullable<String>,
    /// Job title, matched against the ideal customer profile.
    pub title: Nullable<String>,
    /// The company record, when linked.
    pub company_id: Nullable<String>,
    /// The company's name as given (kept when no company record is linked).
    pub company_name: Nullable<String>,
    /// Country.
    pub country: Nullable<String>,
    /// new, contacted, qualified, converted or lost.
    pub status: LeadStatus,
    /// Where the lead came from (`website`, `referral`, `import`, ...).
    pub source: Nullable<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// The user working the lead.
    pub owner_id: Nullable<String>,
    /// When the last activity with this lead happened.
    pub last_activity_at: Nullable<Timestamp>,
    /// 0–100 from profile completeness, engagement and fit to the ideal customer profile;
    /// `GET /leads/{id}/score` explains it.
    pub score: i64,
    /// The deal it became.
    pub converted_deal_id: Nullable<String>,
    /// When it was converted.
    pub converted_at: Nullable<Timestamp>,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A lead to create. At least a name or an email is needed.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct NewLead {
    /// Given name.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub first_name: Option<String>,
    /// Family name.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub last_name: Option<String>,
    /// Unique among the organization's leads; a clash is 409 naming the existing lead.
    #[oai(nullable)]
    pub email: Option<Shaped<EmailOrBlank>>,
    /// Phone.
    #[oai(validator(max_length = 50))]
    #[oai(nullable)]
    pub phone: Option<String>,
    /// Job title.
    #[oai(validator(max_length = 200))]
    #[oai(nullable)]
    pub title: Option<String>,
    /// A company of this organization.
    #[oai(nullable)]
    pub company_id: Option<String>,
    /// The company's name; filled from `company_id` when absent.
    #[oai(validator(max_length = 200))]
    #[oai(nullable)]
    pub company_name: Option<String>,
    /// Country.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub country: Option<String>,
    /// Defaults to `new`; `converted` only comes from converting.
    #[oai(nullable)]
    pub status: Option<SettableLeadStatus>,
    /// Where it came from.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub source: Option<String>,
    /// At most 50 tags.
    #[oai(nullable)]
    pub tags: Option<Tags>,
    /// An active user; defaults to nobody.
    #[oai(nullable)]
    pub owner_id: Option<String>,
}

/// Changes to a lead; absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct LeadPatch {
    /// Given name.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub first_name: MaybeUndefined<String>,
    /// Family name.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub last_name: MaybeUndefined<String>,
    /// Email, unique among leads.
    #[oai(nullable)]
    pub email: MaybeUndefined<Shaped<EmailOrBlank>>,
    /// Phone.
    #[oai(validator(max_length = 50))]
    #[oai(nullable)]
    pub phone: MaybeUndefined<String>,
    /// Job title.
    #[oai(validator(max_length = 200))]
    #[oai(nullable)]
    pub title: MaybeUndefined<String>,
    /// A company of this organization.
    #[oai(nullable)]
    pub company_id: MaybeUndefined<String>,
    /// Company name.
    #[oai(validator(max_length = 200))]
    #[oai(nullable)]
    pub company_name: MaybeUndefined<String>,
    /// Country.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub country: MaybeUndefined<String>,
    /// new, contacted, qualified or lost (converting has its own endpoint).
    #[oai(nullable)]
    pub status: Option<SettableLeadStatus>,
    /// Where it came from.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub source: MaybeUndefined<String>,
    /// Replaces the tags.
    #[oai(nullable)]
    pub tags: Option<Tags>,
    /// An active user, or null (use `POST /leads/{id}/assign` to notify as an assignment).
    #[oai(nullable)]
    pub owner_id: MaybeUndefined<String>,
}

pub(crate) const COLUMNS: &str = "id, first_name, last_name, email, phone, title, company_id, \
    company_name, country, status, source, tags, owner_id, last_activity_at, converted_deal_id, \
    converted_at, version, created_at, updated_at, score";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "leads",
    id: "id",
    count_from: None,
};

/// Maps a row of [`COLUMNS`].
pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Lead> {
    Ok(Lead {
        id: r.get(0)?,
        first_name: r.get(1)?,
        last_name: r.get(2)?,
        email: r.get(3)?,
        phone: r.get(4)?,
        title: r.get(5)?,
        company_id: r.get(6)?,
        company_name: r.get(7)?,
        country: r.get(8)?,
        status: LeadStatus::parse(&r.get::<_, String>(9)?).unwrap_or(LeadStatus::New),
        source: r.get(10)?,
        tags: validate::tags_from_db(&r.get::<_, String>(11)?),
        owner_id: r.get(12)?,
        last_activity_at: Nullable(r.get::<_, Option<i64>>(13)?.map(Timestamp)),
        converted_deal_id: r.get(14)?,
        converted_at: Nullable(r.get::<_, Option<i64>>(15)?.map(Timestamp)),
        version: r.get(16)?,
        created_at: Timestamp(r.get(17)?),
        updated_at: Timestamp(r.get(18)?),
        score: r.get(19)?,
    })
}

/// The lead `id` of `org_id`, if there is one.
pub fn find(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Option<Lead>> {
    RECORD.find(conn, org_id, id, from_row)
}

/// The lead `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Lead> {
    RECORD.get(conn, org_id, id, from_row)
}

const RECORD: Record = Record::new("leads", COLUMNS, "lead", "lead");

/// The lead with this email, if any.
pub fn find_by_email(conn: &Connection, org_id: &str, email: &str) -> DomainResult<Option<Lead>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM leads WHERE org_id = ?1 AND email = ?2 COLLATE NOCASE"
        ))?
        .query_row(params![org_id, email.trim()], from_row)
        .optional()?)
}

/// `status` filters: a comma-separated list of [`STATUSES`].
pub struct LeadStatuses;

impl crate::shape::Shape for LeadStatuses {
    fn schema() -> poem_openapi::registry::MetaSchema {
        crate::shape::list_schema(&Self::values())
    }
    fn check(value: &str) -> Result<(), String> {
        crate::shape::check_list(&Self::values(), value)
    }
}

impl LeadStatuses {
    fn values() -> Vec<String> {
        STATUSES.iter().map(|s| s.to_string()).collect()
    }
}

/// Filters of the lead list (and of the CSV export).
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    /// Any of these statuses.
    pub status: Option<String>,
    /// Owned by any of these users.
    pub owner_id: Option<String>,
    /// At any of these companies.
    pub company_id: Option<String>,
    /// From any of these sources.
    pub source: Option<String>,
    /// In any of these countries.
    pub country: Option<String>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Created at or after.
    pub created_after: Option<Millis>,
    /// Created before.
    pub created_before: Option<Millis>,
    /// Changed at or after.
    pub updated_since: Option<Millis>,
    /// Text in the name, email or company name.
    pub q: Option<String>,
    /// Score at least.
    pub score_min: Option<i64>,
    /// Score at most.
    pub score_max: Option<i64>,
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("last_name", "last_name COLLATE NOCASE"),
    ("first_name", "first_name COLLATE NOCASE"),
    ("email", "email COLLATE NOCASE"),
    ("last_activity_at", "last_activity_at"),
    ("score", "score"),
];

/// The values of the `status` filter.
pub const STATUSES: &[&str] = &["new", "contacted", "qualified", "converted", "lost"];

/// The `WHERE` clause for `f`.
pub fn filters_for(org_id: &str, f: &LeadFilter) -> DomainResult<Filters> {
    let mut filters = Filters::for_org("org_id", org_id);
    let statuses = any_of(f.status.as_deref());
    validate::one_of("status", &statuses, STATUSES)?;
    let statuses: Vec<String> = statuses.iter().map(|s| s.to_ascii_lowercase()).collect();
    filters.any_of("status", &statuses);
    filters.any_of("owner_id", &any_of(f.owner_id.as_deref()));
    filters.any_of("company_id", &any_of(f.company_id.as_deref()));
    filters.any_of("source", &any_of(f.source.as_deref()));
    filters.any_of("country", &any_of(f.country.as_deref()));
    if let Some(tag) = &f.tag {
        filters.push(
            "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ? COLLATE NOCASE)",
            vec![tag.clone().into()],
        );
    }
    filters.time_window("", f.created_after, f.created_before, f.updated_since);
    if let Some(v) = f.score_min {
        filters.push("score >= ?", vec![v.into()]);
    }
    if let Some(v) = f.score_max {
        filters.push("score <= ?", vec![v.into()]);
    }
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let p = validate::like_pattern(q);
        filters.push(
            "(first_name LIKE ? ESCAPE '\\' OR last_name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\'
              OR company_name LIKE ? ESCAPE '\\'
              OR (coalesce(first_name, '') || ' ' || coalesce(last_name, '')) LIKE ? ESCAPE '\\')",
            vec![p.clone().into(), p.clone().into(), p.clone().into(), p.clone().into(), p.into()],
        );
    }
    Ok(filters)
}

/// One page of leads.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &LeadFilter,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Lead>> {
    let sort = Sort::parse(sort, SORTS)?;
    filters_for(org_id, f)?.fetch_page(conn, &LIST, sort, paging, from_row)
}
