//! Deals: opportunities moving through a pipeline's stages to won or lost.

use crate::domain::nullable::Nullable;
use std::sync::Arc;

use crate::db::CachedRow;
use crate::db::Tx;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::activities::{self, Activity};
use super::auth::Principal;
use super::companies::{self, Company};
use super::error::{unknown, DomainError, DomainResult, FieldIssue, Issues};
use super::events::{self, Actor};
use super::intelligence::{self, deal_facts};
use super::leads::{self, Lead, LeadStatus};
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::pipelines::{self, Stage, StageKind};
use super::tasks::{self, Task};
use super::terms::Term;
use super::validate::Currency;
use super::{notes, orgs, validate};
use crate::clock::Millis;
use crate::domain::validate::{Name, Tags};
use crate::ids::new_id;
use crate::rules::deal_risk::RiskLevel;
use crate::shape::{CalendarDate, Shaped};
use crate::timefmt::{self, Timestamp};

mod board;
mod context;
mod convert;
mod stages;
mod writes;
pub use board::{board, Board, Column};
pub use context::{context, summarize_lead, CompanySummary, DealContext, LeadSummary};
pub use convert::{convert_lead, Conversion, ConvertLead, TITLE_MAX};
pub use stages::{empty_stage, history, move_to, MoveDeal, StageChange};
use stages::{record_history, resolve_stage};
pub use writes::{create, create_as, delete, update};

/// Where a deal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    /// In an open stage.
    Open,
    /// In a won stage.
    Won,
    /// In a lost stage.
    Lost,
}

impl From<StageKind> for DealStatus {
    fn from(k: StageKind) -> Self {
        match k {
            StageKind::Open => Self::Open,
            StageKind::Won => Self::Won,
            StageKind::Lost => Self::Lost,
        }
    }
}

impl DealStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }
}

/// A deal. (Serialized with serde too, for the envelopes' direct path: the same JSON.)
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Deal {
    /// `deal_...`
    pub id: String,
    /// What is being sold.
    pub title: String,
    /// Amount in major units of `currency` (stored exactly in minor units).
    pub value: f64,
    /// ISO 4217.
    pub currency: Term<Currency>,
    /// Its pipeline.
    pub pipeline_id: String,
    /// Its stage (change it with `POST /deals/{id}/move`).
    pub stage_id: String,
    /// The stage's name.
    pub stage_name: String,
    /// The stage's win probability, 0–100.
    pub probability: i64,
    /// open, won or lost: follows the stage's kind.
    pub status: DealStatus,
    /// The user who owns it.
    pub owner_id: Nullable<String>,
    /// The lead it came from.
    pub lead_id: Nullable<String>,
    /// The company it is with.
    pub company_id: Nullable<String>,
    /// Expected close, `YYYY-MM-DD`.
    pub expected_close_date: Nullable<String>,
    /// Why it was lost.
    pub lost_reason: Nullable<String>,
    /// When it was won or lost.
    pub closed_at: Nullable<Timestamp>,
    /// When it entered its current stage.
    pub stage_entered_at: Timestamp,
    /// When the last activity on it happened.
    pub last_activity_at: Nullable<Timestamp>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Risk 0–100 right now (see `GET /deals/{id}/intelligence` for why). Computed on read,
    /// so it is absent from event payloads.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_score: Option<i64>,
    /// The risk's level.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<RiskLevel>,
}

/// Fills in `risk_score` and `risk_level` of `deals` as of `now`.
pub fn annotate_risk(
    conn: &Connection,
    org_id: &str,
    deals: &mut [Deal],
    now: Millis,
) -> DomainResult<()> {
    let ids: Vec<String> = deals.iter().map(|d| d.id.clone()).collect();
    let risks = intelligence::risk_of(conn, org_id, &ids, now)?;
    for d in deals {
        if let Some((score, level)) = risks.get(&d.id) {
            d.risk_score = Some(*score);
            d.risk_level = Some(*level);
        }
    }
    Ok(())
}

/// A deal to create.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct NewDeal {
    /// 1–200 characters.
    pub title: Shaped<Name>,
    /// Major units, 0 or more; rounded to the currency's minor unit (cents, whole yen). Default 0.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    #[oai(nullable)]
    pub value: Option<f64>,
    /// ISO 4217; defaults to the organization's currency.
    #[oai(nullable)]
    pub currency: Option<Term<Currency>>,
    /// Defaults to the default pipeline (or the stage's pipeline).
    #[oai(nullable)]
    pub pipeline_id: Option<String>,
    /// A stage of the pipeline; defaults to its first stage.
    #[oai(nullable)]
    pub stage_id: Option<String>,
    /// Or the stage by name.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub stage: Option<String>,
    /// An active user; defaults to the caller.
    #[oai(nullable)]
    pub owner_id: Option<String>,
    /// A lead of this organization.
    #[oai(nullable)]
    pub lead_id: Option<String>,
    /// A company of this organization; defaults to the lead's.
    #[oai(nullable)]
    pub company_id: Option<String>,
    /// `YYYY-MM-DD`.
    #[oai(nullable)]
    pub expected_close_date: Option<Shaped<CalendarDate>>,
    /// At most 50 tags.
    #[oai(nullable)]
    pub tags: Option<Tags>,
}

/// Changes to a deal; absent fields stay, `null` clears. The stage changes only through
/// `POST /deals/{id}/move`, so that every move has its history and events.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct DealPatch {
    /// 1–200 characters.
    #[oai(nullable)]
    pub title: Option<Shaped<Name>>,
    /// Major units.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    #[oai(nullable)]
    pub value: Option<f64>,
    /// ISO 4217.
    #[oai(nullable)]
    pub currency: Option<Term<Currency>>,
    /// An active user, or null.
    #[oai(nullable)]
    pub owner_id: MaybeUndefined<String>,
    /// A lead, or null.
    #[oai(nullable)]
    pub lead_id: MaybeUndefined<String>,
    /// A company, or null.
    #[oai(nullable)]
    pub company_id: MaybeUndefined<String>,
    /// `YYYY-MM-DD`, or null.
    #[oai(nullable)]
    pub expected_close_date: MaybeUndefined<Shaped<CalendarDate>>,
    /// Why it was lost (lost deals).
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub lost_reason: MaybeUndefined<String>,
    /// Replaces the tags.
    #[oai(nullable)]
    pub tags: Option<Tags>,
}

/// A deal's columns ([`from_row`] reads the first 21), then its stage's rotting days and its
/// facts ([`FACTS_AT`]), so a list scores its page from the rows it read.
const COLUMNS: &str = concat!(
    "d.id, d.title, d.value, d.currency, d.pipeline_id, d.stage_id, s.name, \
    s.probability, d.status, d.owner_id, d.lead_id, d.company_id, d.expected_close_date, \
    d.lost_reason, d.closed_at, d.stage_entered_at, d.last_activity_at, d.tags, d.version, \
    d.created_at, d.updated_at, s.rotting_days, ",
    deal_facts!()
);
/// Where [`COLUMNS`]' facts start (the stage's rotting days just before).
const FACTS_AT: usize = 22;
const FROM: &str = "deals d JOIN stages s ON s.id = d.stage_id";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: FROM,
    id: "d.id",
    count_from: None,
};

fn from_row(r: &Row<'_>) -> rusqlite::Result<Deal> {
    let currency: String = r.get(3)?;
    Ok(Deal {
        id: r.get(0)?,
        title: r.get(1)?,
        value: validate::minor_to_money(r.get(2)?, &currency),
        currency: Term::known(currency),
        pipeline_id: r.get(4)?,
        stage_id: r.get(5)?,
        stage_name: r.get(6)?,
        probability: r.get(7)?,
        status: match r.get::<_, String>(8)?.as_str() {
            "won" => DealStatus::Won,
            "lost" => DealStatus::Lost,
            _ => DealStatus::Open,
        },
        owner_id: r.get(9)?,
        lead_id: r.get(10)?,
        company_id: r.get(11)?,
        expected_close_date: r.get(12)?,
        lost_reason: r.get(13)?,
        closed_at: Nullable(r.get::<_, Option<i64>>(14)?.map(Timestamp)),
        stage_entered_at: Timestamp(r.get(15)?),
        last_activity_at: Nullable(r.get::<_, Option<i64>>(16)?.map(Timestamp)),
        tags: validate::tags_from_db(&r.get::<_, String>(17)?),
        version: r.get(18)?,
        created_at: Timestamp(r.get(19)?),
        updated_at: Timestamp(r.get(20)?),
        risk_score: None,
        risk_level: None,
    })
}

/// The deal `id` of `org_id`, if there is one.
pub fn find(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Option<Deal>> {
    RECORD.find(conn, org_id, id, from_row)
}

/// The deal `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Deal> {
    RECORD.get(conn, org_id, id, from_row)
}

const RECORD: Record = Record::new(FROM, COLUMNS, "deal", "deal").aliased("d.");

/// Filters of the deal list.
#[derive(Debug, Clone, Default)]
pub struct DealFilter {
    /// In any of these stages.
    pub stage_id: Option<String>,
    /// In any of these stages, by name.
    pub stage: Option<String>,
    /// Any of open, won, lost.
    pub status: Option<String>,
    /// In any of these pipelines.
    pub pipeline_id: Option<String>,
    /// Owned by any of these users.
    pub owner_id: Option<String>,
    /// From any of these leads.
    pub lead_id: Option<String>,
    /// With any of these companies.
    pub company_id: Option<String>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Value at least (major units of the organization's currency).
    pub value_min: Option<f64>,
    /// Value at most.
    pub value_max: Option<f64>,
    /// Expected to close on or after (`YYYY-MM-DD`).
    pub expected_close_after: Option<String>,
    /// Expected to close before.
    pub expected_close_before: Option<String>,
    /// Created at or after.
    pub created_after: Option<Millis>,
    /// Created before.
    pub created_before: Option<Millis>,
    /// Changed at or after.
    pub updated_since: Option<Millis>,
    /// Text in the title.
    pub q: Option<String>,
}

/// The values of the `status` filter.
pub const STATUSES: &[&str] = &["open", "won", "lost"];

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "d.created_at"),
    ("updated_at", "d.updated_at"),
    ("value", "d.value"),
    ("title", "d.title COLLATE NOCASE"),
    ("expected_close_date", "d.expected_close_date"),
    ("stage_entered_at", "d.stage_entered_at"),
    ("last_activity_at", "d.last_activity_at"),
];

/// One page of deals.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &DealFilter,
    sort: Option<&str>,
    paging: Paging,
    now: Millis,
) -> DomainResult<ListPage<Deal>> {
    let (filters, sort) = filters_for(conn, org_id, f, sort)?;
    // Every deal has its stage (a required foreign key), so unless the stage's name is filtered
    // on, the total need not walk the join.
    let source = ListSource {
        count_from: any_of(f.stage.as_deref()).is_empty().then_some("deals d"),
        ..LIST
    };
    let page = filters.fetch_page(conn, &source, sort, paging, |r| {
        let stage = (Arc::from(r.get_ref(6)?.as_str()?), r.get(FACTS_AT - 1)?);
        let facts = intelligence::facts_from_row(r, FACTS_AT, stage, 0.0, now, true)?;
        Ok((from_row(r)?, facts))
    })?;
    // Scored from the rows just read: no deal, task or activity is read again.
    let average = intelligence::average_open_value(conn, org_id)?;
    Ok(ListPage {
        items: page
            .items
            .into_iter()
            .map(|(mut deal, mut facts)| {
                facts.average_open_value = average;
                let (score, level) = intelligence::risk_level(&facts, now);
                deal.risk_score = Some(score);
                deal.risk_level = Some(level);
                deal
            })
            .collect(),
        paging: page.paging,
        total: page.total,
    })
}

/// The list's filters and order over `deals d JOIN stages s`, shared by the list and the CSV
/// export.
pub fn filters_for(
    conn: &Connection,
    org_id: &str,
    f: &DealFilter,
    sort: Option<&str>,
) -> DomainResult<(Filters, Sort)> {
    let mut sort = Sort::parse(sort, SORTS)?;
    // One lead's or one company's deals are a few rows: found by their index, then sorted.
    sort.plain = f.lead_id.is_some() || f.company_id.is_some();
    let mut filters = Filters::for_org("d.org_id", org_id);
    filters.any_of("d.stage_id", &any_of(f.stage_id.as_deref()));
    let names: Vec<String> = any_of(f.stage.as_deref())
        .iter()
        .map(|n| n.to_lowercase())
        .collect();
    filters.any_of("lower(s.name)", &names);
    let statuses = any_of(f.status.as_deref());
    validate::one_of("status", &statuses, STATUSES)?;
    filters.any_of("d.status", &statuses);
    filters.any_of("d.pipeline_id", &any_of(f.pipeline_id.as_deref()));
    filters.any_of("d.owner_id", &any_of(f.owner_id.as_deref()));
    filters.any_of("d.lead_id", &any_of(f.lead_id.as_deref()));
    filters.any_of("d.company_id", &any_of(f.company_id.as_deref()));
    if let Some(tag) = &f.tag {
        filters.push(
            "EXISTS (SELECT 1 FROM json_each(d.tags) WHERE value = ? COLLATE NOCASE)",
            vec![tag.clone().into()],
        );
    }
    if f.value_min.is_some() || f.value_max.is_some() {
        // A bound finer than the currency's minor unit still has an exact meaning: values are
        // whole minor units, so `>= 12.345` is `>= 12.35` and `<= 12.345` is `<= 12.34`.
        let currency = orgs::get(conn, org_id)?.currency;
        let scale = 10f64.powi(validate::currency_exponent(&currency).unwrap_or(2) as i32);
        if let Some(v) = f.value_min {
            let minor = (v * scale - 1e-6).ceil() as i64;
            filters.push("d.value >= ?", vec![minor.into()]);
        }
        if let Some(v) = f.value_max {
            let minor = (v * scale + 1e-6).floor() as i64;
            filters.push("d.value <= ?", vec![minor.into()]);
        }
    }
    let mut issues = Issues::new();
    for (field, value, op) in [
        ("expected_close_after", &f.expected_close_after, ">="),
        ("expected_close_before", &f.expected_close_before, "<"),
    ] {
        if let Some(date) = value {
            if timefmt::parse_date(date).is_none() {
                issues.add(field, "must be a date YYYY-MM-DD");
            }
            filters.push(
                format!("d.expected_close_date {op} ?"),
                vec![date.clone().into()],
            );
        }
    }
    issues.finish()?;
    filters.time_window("d.", f.created_after, f.created_before, f.updated_since);
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        filters.push(
            "d.title LIKE ? ESCAPE '\\'",
            vec![validate::like_pattern(q).into()],
        );
    }
    Ok((filters, sort))
}
