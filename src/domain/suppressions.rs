//! The suppression list: addresses the organization never writes to again. Every send checks it
//! ([`check_recipients`]), whoever sends and however, so an unsubscribe or a bounce is honoured
//! by people, agents and campaigns alike.

use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::auth::Principal;
use super::enrollments::{self, StopReason};
use super::error::{DomainError, DomainResult, FieldIssue, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::nullable::Nullable;
use super::{changes, validate};
use crate::clock::Millis;
use crate::db::{CachedRow, Tx};
use crate::domain::validate::EmailAddress;
use crate::ids::new_id;
use crate::shape::Shaped;
use crate::timefmt::{format_ms, Timestamp};

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// Added by a person or an agent.
    Manual,
    /// The recipient unsubscribed.
    Unsubscribed,
    /// Mail to it bounced for good.
    Bounced,
    /// The recipient reported mail as spam.
    Complained,
}

impl SuppressionReason {
    /// The reason's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "unsubscribed" => Self::Unsubscribed,
            "bounced" => Self::Bounced,
            "complained" => Self::Complained,
            _ => Self::Manual,
        }
    }
}

/// The reasons, as filters take them.
pub const REASONS: &[&str] = &["manual", "unsubscribed", "bounced", "complained"];

/// An address the organization does not write to.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Suppression {
    /// `sup_...`
    pub id: String,
    /// The address (matched without regard to case).
    pub email: String,
    /// Why it is suppressed.
    pub reason: SuppressionReason,
    /// A note on why.
    pub note: Nullable<String>,
    /// The user who added it (none when the server did, on an unsubscribe or a bounce).
    pub created_by: Nullable<String>,
    /// When it was added.
    pub created_at: Timestamp,
}

/// An address to suppress.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewSuppression {
    /// An email address.
    pub email: Shaped<EmailAddress>,
    /// Why (default `manual`).
    #[oai(nullable)]
    pub reason: Option<SuppressionReason>,
    /// Up to 500 characters.
    #[oai(nullable, validator(max_length = 500))]
    pub note: Option<String>,
}

const COLUMNS: &str = "id, email, reason, note, created_by, created_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "suppressions",
    id: "id",
    count_from: None,
};
const RECORD: Record = Record::new("suppressions", COLUMNS, "sup", "suppression");

fn from_row(r: &Row<'_>) -> rusqlite::Result<Suppression> {
    let reason: String = r.get(2)?;
    Ok(Suppression {
        id: r.get(0)?,
        email: r.get(1)?,
        reason: SuppressionReason::parse(&reason),
        note: r.get(3)?,
        created_by: r.get(4)?,
        created_at: Timestamp(r.get(5)?),
    })
}

/// The suppression `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Suppression> {
    RECORD.get(conn, org_id, id, from_row)
}

/// The suppression of `email` in `org_id`, if it is suppressed.
pub fn find(conn: &Connection, org_id: &str, email: &str) -> DomainResult<Option<Suppression>> {
    Ok(conn
        .cached_row(
            &format!(
                "SELECT {COLUMNS} FROM suppressions WHERE org_id = ?1 AND email = ?2 COLLATE NOCASE"
            ),
            params![org_id, email.trim()],
            from_row,
        )
        .optional()?)
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "created_at"),
    ("email", "email COLLATE NOCASE"),
];

/// One page of the list: `email` exactly (without regard to case), `q` in the address,
/// `reason` any of.
#[allow(clippy::too_many_arguments)]
pub fn list(
    conn: &Connection,
    org_id: &str,
    email: Option<&str>,
    q: Option<&str>,
    reason: Option<&str>,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Suppression>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    filters.any_of("reason", &any_of(reason));
    if let Some(email) = email {
        filters.push(
            "email = ? COLLATE NOCASE",
            vec![email.trim().to_string().into()],
        );
    }
    if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
        filters.push(
            "email LIKE ? ESCAPE '\\'",
            vec![validate::like_pattern(q).into()],
        );
    }
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// Suppresses an address; records `suppression.created`. 409 naming the entry when the address
/// is already suppressed.
pub fn create(
    tx: &Tx<'_>,
    p: &Principal,
    input: NewSuppression,
    now: Millis,
) -> DomainResult<Suppression> {
    let mut issues = Issues::new();
    let email = validate::email(&mut issues, "email", &input.email);
    let note = validate::optional_text(&mut issues, "note", input.note, 500);
    issues.finish()?;
    if let Some(existing) = find(tx, &p.org_id, &email)? {
        return Err(DomainError::Conflict {
            message: format!("{email} is already suppressed"),
            details: vec![FieldIssue::new(
                "email",
                format!("is already suppressed by {}", existing.id),
            )],
        });
    }
    let reason = input.reason.unwrap_or(SuppressionReason::Manual);
    insert(
        tx,
        &p.org_id,
        &email,
        reason,
        note,
        Some(&p.user_id),
        &Actor::from(p),
        now,
    )
}

/// Suppresses `email` for `org_id` unless it already is (for the server's own causes: an
/// unsubscribe, a bounce); returns the entry either way.
pub fn suppress(
    tx: &Tx<'_>,
    org_id: &str,
    email: &str,
    reason: SuppressionReason,
    note: Option<String>,
    actor: &Actor,
    now: Millis,
) -> DomainResult<Suppression> {
    match find(tx, org_id, email)? {
        Some(existing) => Ok(existing),
        None => insert(tx, org_id, email.trim(), reason, note, None, actor, now),
    }
}

#[allow(clippy::too_many_arguments)]
fn insert(
    tx: &Tx<'_>,
    org_id: &str,
    email: &str,
    reason: SuppressionReason,
    note: Option<String>,
    created_by: Option<&str>,
    actor: &Actor,
    now: Millis,
) -> DomainResult<Suppression> {
    let id = new_id("sup");
    tx.execute(
        "INSERT INTO suppressions (id, org_id, email, reason, note, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, org_id, email, reason.as_str(), note, created_by, now],
    )?;
    let entry = get(tx, org_id, &id)?;
    changes::append(tx, org_id, actor, "suppression.created", &entry, None, now)?;
    // No campaign goes on writing to an address that must not be written to.
    let stop = match reason {
        SuppressionReason::Bounced => StopReason::Bounced,
        SuppressionReason::Unsubscribed | SuppressionReason::Complained => StopReason::Unsubscribed,
        SuppressionReason::Manual => StopReason::Suppressed,
    };
    enrollments::stop_for_address(tx, org_id, email, stop, now)?;
    Ok(entry)
}

/// Lifts a suppression; records `suppression.deleted`.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Suppression> {
    let entry = get(tx, &p.org_id, id)?;
    changes::remove(
        tx,
        "suppressions",
        &p.org_id,
        id,
        &Actor::from(p),
        "suppression.deleted",
        &entry,
        now,
    )?;
    Ok(entry)
}

/// The entry of the first suppressed address among `addresses`, if one is.
pub fn first_of<'a>(
    conn: &Connection,
    org_id: &str,
    addresses: impl IntoIterator<Item = &'a String>,
) -> DomainResult<Option<Suppression>> {
    for address in addresses {
        if let Some(entry) = find(conn, org_id, address)? {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// 422 naming every suppressed address among the recipients (`field` → addresses), so nothing
/// is sent to anyone when one of them must not be written to.
pub fn check_recipients(
    conn: &Connection,
    org_id: &str,
    lists: &[(&str, &[String])],
) -> DomainResult<()> {
    let mut issues = Issues::new();
    for (field, addresses) in lists {
        for (i, address) in addresses.iter().enumerate() {
            if let Some(s) = find(conn, org_id, address)? {
                issues.add(
                    format!("{field}[{i}]"),
                    format!(
                        "is suppressed: {address} ({} since {}, {}); lift the suppression to \
                         write to it again",
                        s.reason.as_str(),
                        format_ms(s.created_at.0),
                        s.id
                    ),
                );
            }
        }
    }
    issues.finish()
}
