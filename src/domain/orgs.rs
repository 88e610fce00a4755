//! Organizations: the tenant boundary. Every other row belongs to exactly one.

use crate::db::CachedRow;
use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::auth::Role;
use super::error::{DomainError, DomainResult, Issues};
use super::terms::Term;
use super::validate;
use super::validate::Currency;
use super::{api_keys, pipelines, users};
use crate::clock::Millis;
use crate::domain::validate::{Name, TimeZoneName};
use crate::ids::new_id;
pub use crate::rules::lead_score::{Icp, ICP_ENTRY_MAX};
use crate::shape::Shaped;
use crate::timefmt::Timestamp;

/// An organization and its settings.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Organization {
    /// `org_...`
    pub id: String,
    /// Display name.
    pub name: String,
    /// ISO 4217 code; the default currency of deals.
    pub currency: Term<Currency>,
    /// IANA time zone in which analytics and the leaderboard cut their days, weeks, months,
    /// quarters and years (with daylight saving time), and quotas their periods.
    pub timezone: String,
    /// Month (1–12) in which the fiscal year starts: quarters and years follow it.
    pub fiscal_year_start_month: i64,
    /// Monthly revenue goal in major units of `currency`, or null.
    pub monthly_revenue_target: Nullable<f64>,
    /// Ideal customer profile for lead scoring.
    pub icp: Icp,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// Changes to an organization; absent fields stay as they are.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct OrganizationPatch {
    /// Display name, 1–200 characters.
    #[oai(nullable)]
    pub name: Option<Shaped<Name>>,
    /// ISO 4217 code.
    #[oai(nullable)]
    pub currency: Option<Term<Currency>>,
    /// A zone of the IANA time zone database, e.g. `Europe/Berlin` (a name the database does
    /// not know is refused).
    #[oai(nullable)]
    pub timezone: Option<Shaped<TimeZoneName>>,
    /// 1–12.
    #[oai(validator(minimum(value = "1"), maximum(value = "12")))]
    #[oai(nullable)]
    pub fiscal_year_start_month: Option<i64>,
    /// Major units of the currency; null clears it.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    #[oai(nullable)]
    pub monthly_revenue_target: MaybeUndefined<f64>,
    /// Replaces the whole ideal customer profile.
    #[oai(nullable)]
    pub icp: Option<Icp>,
}

const COLUMNS: &str = "id, name, currency, timezone, fiscal_year_start_month, \
                       monthly_revenue_target, icp, version, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Organization> {
    let currency: String = r.get(2)?;
    let target: Option<i64> = r.get(5)?;
    let icp: String = r.get(6)?;
    Ok(Organization {
        id: r.get(0)?,
        name: r.get(1)?,
        monthly_revenue_target: Nullable(target.map(|t| validate::minor_to_money(t, &currency))),
        currency: Term::known(currency),
        timezone: r.get(3)?,
        fiscal_year_start_month: r.get(4)?,
        icp: serde_json::from_str(&icp).unwrap_or_default(),
        version: r.get(7)?,
        created_at: Timestamp(r.get(8)?),
        updated_at: Timestamp(r.get(9)?),
    })
}

/// The organization with `id`.
pub fn get(conn: &Connection, id: &str) -> DomainResult<Organization> {
    conn.cached_row(
        &format!("SELECT {COLUMNS} FROM organizations WHERE id = ?1"),
        params![id],
        from_row,
    )
    .optional()?
    .ok_or(DomainError::NotFound("organization"))
}

/// Everything a new organization starts with.
#[derive(Debug, Clone)]
pub struct Founded {
    /// The organization.
    pub org: Organization,
    /// Its owner.
    pub owner: users::User,
    /// Its default pipeline's id.
    pub pipeline_id: String,
}

/// Creates an organization with its owner (no password yet) and its default pipeline.
pub fn found(
    tx: &Tx<'_>,
    name: &str,
    owner_email: &str,
    owner_name: &str,
    now: Millis,
) -> DomainResult<Founded> {
    let mut issues = Issues::new();
    let name = validate::name(&mut issues, "name", name);
    issues.finish()?;
    let id = new_id("org");
    tx.execute(
        "INSERT INTO organizations (id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
        params![id, name, now],
    )?;
    let owner = users::create(
        tx,
        &id,
        users::NewUser {
            email: owner_email.into(),
            name: owner_name.into(),
            role: Some(Role::Owner),
            password: None,
        },
        None,
        None,
        now,
    )?;
    let pipeline_id = pipelines::create_default(tx, &id, now)?;
    Ok(Founded {
        org: get(tx, &id)?,
        owner,
        pipeline_id,
    })
}

/// Founds an organization (see [`found`]) and gives its owner a first `admin` key, whose secret
/// is returned to be shown once.
pub fn found_with_admin_key(
    tx: &Tx<'_>,
    name: &str,
    owner_email: &str,
    now: Millis,
) -> DomainResult<(Founded, String)> {
    let founded = found(tx, name, owner_email, "Owner", now)?;
    let key = api_keys::create_as_owner(
        tx,
        &founded.org.id,
        api_keys::NewApiKey {
            name: "First admin key".into(),
            scopes: Some(vec![super::auth::Scope::Admin]),
            expires_in_seconds: None,
        },
        now,
    )?;
    Ok((founded, key.key))
}

/// The first organization created, if any (the one `clozup serve` made on first run).
pub fn first_id(conn: &Connection) -> DomainResult<Option<String>> {
    Ok(conn
        .cached_row(
            "SELECT id FROM organizations ORDER BY created_at, id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Applies `patch` to the organization, checking `If-Match` against its version.
pub fn update(
    tx: &Tx<'_>,
    id: &str,
    patch: OrganizationPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Organization> {
    let current = get(tx, id)?;
    validate::if_match(expected_version, current.version)?;
    let mut issues = Issues::new();
    let name = match &patch.name {
        Some(n) => validate::name(&mut issues, "name", n),
        None => current.name.clone(),
    };
    let currency = patch
        .currency
        .clone()
        .unwrap_or_else(|| current.currency.clone());
    let timezone = match &patch.timezone {
        Some(tz) => validate::time_zone(&mut issues, "timezone", tz),
        None => current.timezone.clone(),
    };
    let fiscal = patch
        .fiscal_year_start_month
        .unwrap_or(current.fiscal_year_start_month);
    if !(1..=12).contains(&fiscal) {
        issues.add("fiscal_year_start_month", "must be between 1 and 12");
    }
    let target = match patch.monthly_revenue_target {
        MaybeUndefined::Value(v) => Some(v),
        MaybeUndefined::Null => None,
        MaybeUndefined::Undefined => current.monthly_revenue_target.0,
    };
    let target_minor = target
        .map(|v| validate::money_to_minor(&mut issues, "monthly_revenue_target", v, &currency));
    let icp = patch.icp.unwrap_or_else(|| current.icp.clone());
    for (field, list) in [
        ("icp.industries", &icp.industries[..]),
        ("icp.titles", &icp.titles[..]),
        ("icp.countries", &icp.countries[..]),
    ] {
        if list
            .iter()
            .any(|v| v.trim().is_empty() || v.chars().count() > ICP_ENTRY_MAX)
        {
            issues.add(field, "must hold entries of 1 to 100 characters");
        }
    }
    issues.finish()?;
    let icp_json = serde_json::to_string(&icp).map_err(|e| DomainError::Internal(e.to_string()))?;
    tx.execute(
        "UPDATE organizations SET name = ?2, currency = ?3, timezone = ?4,
                fiscal_year_start_month = ?5, monthly_revenue_target = ?6, icp = ?7,
                version = version + 1, updated_at = ?8
         WHERE id = ?1",
        params![
            id,
            name,
            currency,
            timezone,
            fiscal,
            target_minor,
            icp_json,
            now
        ],
    )?;
    if icp != current.icp {
        // Fit to the profile is part of every lead's score.
        super::scores::refresh_where(tx, id, "?2 = ?2", "all", now)?;
    }
    get(tx, id)
}
