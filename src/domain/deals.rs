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
use super::companies::{self, time_filters, Company};
use super::error::{unknown, DomainError, DomainResult, FieldIssue, Issues};
use super::events::{self, Actor};
use super::intelligence::{self, deal_facts};
use super::leads::{self, Lead, LeadStatus};
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Sort};
use super::pipelines::{self, Stage, StageKind};
use super::tasks::{self, Task};
use super::terms::{Currency, Term};
use super::{notes, orgs, validate};
use crate::clock::Millis;
use crate::ids::{self, new_id};
use crate::intelligence::risk::RiskLevel;
use crate::timefmt::{self, Timestamp};

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
    #[oai(nullable)]
    pub owner_id: Nullable<String>,
    /// The lead it came from.
    #[oai(nullable)]
    pub lead_id: Nullable<String>,
    /// The company it is with.
    #[oai(nullable)]
    pub company_id: Nullable<String>,
    /// Expected close, `YYYY-MM-DD`.
    #[oai(nullable)]
    pub expected_close_date: Nullable<String>,
    /// Why it was lost.
    #[oai(nullable)]
    pub lost_reason: Nullable<String>,
    /// When it was won or lost.
    #[oai(nullable)]
    pub closed_at: Nullable<Timestamp>,
    /// When it entered its current stage.
    pub stage_entered_at: Timestamp,
    /// When the last activity on it happened.
    #[oai(nullable)]
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
    #[oai(validator(min_length = 1, max_length = 200))]
    pub title: String,
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
    #[oai(validator(max_length = 10))]
    #[oai(nullable)]
    pub expected_close_date: Option<String>,
    /// At most 50 tags.
    #[oai(validator(max_items = 50))]
    #[oai(nullable)]
    pub tags: Option<Vec<String>>,
}

/// Changes to a deal; absent fields stay, `null` clears. The stage changes only through
/// `POST /deals/{id}/move`, so that every move has its history and events.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct DealPatch {
    /// 1–200 characters.
    #[oai(validator(min_length = 1, max_length = 200))]
    #[oai(nullable)]
    pub title: Option<String>,
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
    #[oai(validator(max_length = 10))]
    #[oai(nullable)]
    pub expected_close_date: MaybeUndefined<String>,
    /// Why it was lost (lost deals).
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub lost_reason: MaybeUndefined<String>,
    /// Replaces the tags.
    #[oai(validator(max_items = 50))]
    #[oai(nullable)]
    pub tags: Option<Vec<String>>,
}

/// Where to move a deal: `stage_id`, or `stage` by name, within the deal's pipeline.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct MoveDeal {
    /// A stage of the deal's pipeline.
    #[oai(nullable)]
    pub stage_id: Option<String>,
    /// Or the stage's name (case-insensitive), e.g. `Negotiation`.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub stage: Option<String>,
    /// Why it was lost, when moving into a lost stage.
    #[oai(validator(max_length = 500))]
    #[oai(nullable)]
    pub lost_reason: Option<String>,
}

/// One stage change of a deal.
#[derive(Debug, Clone, Object)]
pub struct StageChange {
    /// The stage it left (null for the stage it was created in).
    #[oai(nullable)]
    pub from_stage_id: Nullable<String>,
    /// That stage's name.
    #[oai(nullable)]
    pub from_stage_name: Nullable<String>,
    /// The stage it entered (null if that stage was deleted since).
    #[oai(nullable)]
    pub to_stage_id: Nullable<String>,
    /// That stage's name.
    pub to_stage_name: String,
    /// When.
    pub changed_at: Timestamp,
    /// Who moved it.
    pub actor: events::Actor,
    /// The reason given for a loss.
    #[oai(nullable)]
    pub lost_reason: Nullable<String>,
    /// How long it had been in the stage it left, in seconds.
    #[oai(nullable)]
    pub seconds_in_previous_stage: Nullable<i64>,
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
    if !ids::is_valid(id, "deal") {
        return Ok(None);
    }
    Ok(conn
        .cached_row(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE d.org_id = ?1 AND d.id = ?2"),
            params![org_id, id],
            from_row,
        )
        .optional()?)
}

/// The deal `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Deal> {
    find(conn, org_id, id)?.ok_or(DomainError::NotFound("deal"))
}

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
    let sort = Sort::parse(sort, SORTS)?;
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
    time_filters(
        &mut filters,
        "d.",
        f.created_after,
        f.created_before,
        f.updated_since,
    );
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        filters.push(
            "d.title LIKE ? ESCAPE '\\'",
            vec![validate::like_pattern(q).into()],
        );
    }
    // Every deal has its stage (a required foreign key), so unless the stage's name is filtered
    // on, the total need not walk the join.
    let source = ListSource {
        count_from: names.is_empty().then_some("deals d"),
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

fn check_date(issues: &mut Issues, field: &str, date: Option<String>) -> Option<String> {
    let date = date?;
    if timefmt::parse_date(&date).is_none() {
        issues.add(field, "must be a date YYYY-MM-DD");
    }
    Some(date)
}

/// Resolves the stage a deal goes to from `stage_id` or `stage` (by name) within a pipeline.
fn resolve_stage(
    conn: &Connection,
    org_id: &str,
    pipeline_id: &str,
    stage_id: Option<&str>,
    stage_name: Option<&str>,
) -> DomainResult<Stage> {
    match (stage_id, stage_name) {
        (Some(_), Some(_)) => Err(DomainError::invalid(
            "stage",
            "cannot be given with stage_id; name the stage one way",
        )),
        (Some(id), None) => {
            let stage = pipelines::get_stage(conn, org_id, id)
                .map_err(|_| DomainError::invalid("stage_id", unknown("stage", id)))?;
            // Both exist but do not go together: a conflict between the two, not a bad value.
            if stage.pipeline_id != pipeline_id {
                return Err(DomainError::Conflict {
                    message: format!(
                        "stage {id} belongs to pipeline {}, not {pipeline_id}",
                        stage.pipeline_id
                    ),
                    details: vec![FieldIssue::new("stage_id", "belongs to another pipeline")],
                });
            }
            Ok(stage)
        }
        (None, Some(name)) => pipelines::stage_by_name(conn, org_id, pipeline_id, name)?
            .ok_or_else(|| {
                DomainError::invalid(
                    "stage",
                    format!("names no stage of pipeline {pipeline_id}: `{name}`"),
                )
            }),
        (None, None) => Err(DomainError::invalid("stage_id", "or stage is required")),
    }
}

#[allow(clippy::too_many_arguments)]
fn record_history(
    tx: &Tx<'_>,
    org_id: &str,
    deal_id: &str,
    from: Option<&Stage>,
    to: &Stage,
    actor: &Actor,
    lost_reason: Option<&str>,
    now: Millis,
) -> DomainResult<()> {
    tx.execute(
        "INSERT INTO deal_stage_history (id, org_id, deal_id, from_stage_id, from_stage_name,
                                         to_stage_id, to_stage_name, changed_at, actor_type,
                                         actor_id, lost_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            new_id("hist"),
            org_id,
            deal_id,
            from.map(|s| &s.id),
            from.map(|s| &s.name),
            to.id,
            to.name,
            now,
            actor.kind,
            actor.id,
            lost_reason
        ],
    )?;
    Ok(())
}

/// Creates a deal with `actor` as the author; records `deal.created`.
pub fn create_as(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    default_owner: &str,
    input: NewDeal,
    now: Millis,
) -> DomainResult<Deal> {
    let org = orgs::get(tx, org_id)?;
    let mut issues = Issues::new();
    let title = validate::text(&mut issues, "title", &input.title, 1, TITLE_MAX);
    let currency = input
        .currency
        .clone()
        .unwrap_or_else(|| org.currency.clone());
    let value =
        validate::money_to_minor(&mut issues, "value", input.value.unwrap_or(0.0), &currency);
    let owner_id = input
        .owner_id
        .clone()
        .or_else(|| Some(default_owner.to_string()));
    validate::active_user(tx, &mut issues, "owner_id", org_id, owner_id.as_deref())?;
    let lead = match input.lead_id.as_deref() {
        Some(id) => {
            let lead = leads::find(tx, org_id, id)?;
            if lead.is_none() {
                issues.add_unknown("lead_id", "lead", id);
            }
            lead
        }
        None => None,
    };
    let company_id = input
        .company_id
        .clone()
        .or_else(|| lead.as_ref().and_then(|l| l.company_id.0.clone()));
    validate::reference(
        tx,
        &mut issues,
        "company_id",
        "companies",
        "co",
        org_id,
        company_id.as_deref(),
    )?;
    let close = check_date(
        &mut issues,
        "expected_close_date",
        input.expected_close_date,
    );
    let tags = validate::tags(&mut issues, "tags", input.tags.unwrap_or_default());
    issues.finish()?;
    let pipeline_id = match (&input.pipeline_id, &input.stage_id) {
        (Some(p), _) => {
            pipelines::get(tx, org_id, p)
                .map_err(|_| DomainError::invalid("pipeline_id", unknown("pipeline", p)))?
                .id
        }
        (None, Some(stage_id)) => {
            pipelines::get_stage(tx, org_id, stage_id)
                .map_err(|_| DomainError::invalid("stage_id", unknown("stage", stage_id)))?
                .pipeline_id
        }
        (None, None) => pipelines::default_id(tx, org_id)?,
    };
    let stage = if input.stage_id.is_none() && input.stage.is_none() {
        pipelines::stages_of(tx, org_id, &pipeline_id)?
            .into_iter()
            .next()
            .ok_or_else(|| DomainError::Internal(format!("pipeline {pipeline_id} has no stages")))?
    } else {
        resolve_stage(
            tx,
            org_id,
            &pipeline_id,
            input.stage_id.as_deref(),
            input.stage.as_deref(),
        )?
    };
    let status = DealStatus::from(stage.kind);
    let closed_at = (status != DealStatus::Open).then_some(now);
    let id = new_id("deal");
    tx.execute(
        "INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status,
                            owner_id, lead_id, company_id, expected_close_date, closed_at,
                            stage_entered_at, tags, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?14, ?14)",
        params![
            id,
            org_id,
            title,
            value,
            currency,
            pipeline_id,
            stage.id,
            status.as_str(),
            owner_id,
            input.lead_id,
            company_id,
            close,
            closed_at,
            now,
            validate::tags_to_db(&tags)
        ],
    )?;
    record_history(tx, org_id, &id, None, &stage, actor, None, now)?;
    let deal = get(tx, org_id, &id)?;
    events::append(tx, org_id, actor, "deal.created", &deal, None, now)?;
    Ok(deal)
}

/// Creates a deal (owned by the caller unless said otherwise).
pub fn create(tx: &Tx<'_>, p: &Principal, input: NewDeal, now: Millis) -> DomainResult<Deal> {
    create_as(tx, &p.org_id, &Actor::from(p), &p.user_id, input, now)
}

/// Changes a deal (`If-Match` checked); records `deal.updated` with the old values.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: DealPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Deal> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let mut issues = Issues::new();
    let title = match &patch.title {
        Some(t) => validate::text(&mut issues, "title", t, 1, TITLE_MAX),
        None => before.title.clone(),
    };
    let currency = patch
        .currency
        .clone()
        .unwrap_or_else(|| before.currency.clone());
    let value = validate::money_to_minor(
        &mut issues,
        "value",
        patch.value.unwrap_or(before.value),
        &currency,
    );
    let owner_id = validate::merge(patch.owner_id, before.owner_id.0.clone());
    let lead_id = validate::merge(patch.lead_id, before.lead_id.0.clone());
    let company_id = validate::merge(patch.company_id, before.company_id.0.clone());
    validate::active_user(tx, &mut issues, "owner_id", &p.org_id, owner_id.as_deref())?;
    validate::reference(
        tx,
        &mut issues,
        "lead_id",
        "leads",
        "lead",
        &p.org_id,
        lead_id.as_deref(),
    )?;
    validate::reference(
        tx,
        &mut issues,
        "company_id",
        "companies",
        "co",
        &p.org_id,
        company_id.as_deref(),
    )?;
    let close = check_date(
        &mut issues,
        "expected_close_date",
        validate::merge(
            patch.expected_close_date,
            before.expected_close_date.0.clone(),
        ),
    );
    let lost_reason = validate::optional_text(
        &mut issues,
        "lost_reason",
        validate::merge(patch.lost_reason, before.lost_reason.0.clone()),
        500,
    );
    let tags = validate::tags(
        &mut issues,
        "tags",
        patch.tags.unwrap_or(before.tags.clone()),
    );
    issues.finish()?;
    tx.execute(
        "UPDATE deals SET title = ?3, value = ?4, currency = ?5, owner_id = ?6, lead_id = ?7,
                company_id = ?8, expected_close_date = ?9, lost_reason = ?10, tags = ?11,
                version = version + 1, updated_at = ?12
         WHERE org_id = ?1 AND id = ?2",
        params![
            p.org_id,
            id,
            title,
            value,
            currency,
            owner_id,
            lead_id,
            company_id,
            close,
            lost_reason,
            validate::tags_to_db(&tags),
            now
        ],
    )?;
    let after = get(tx, &p.org_id, id)?;
    let previous = events::previous_values(&before, &after);
    if validate::unchanged(&previous) {
        validate::restore_version(tx, "deals", id, before.version, before.updated_at)?;
        return Ok(before);
    }
    events::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "deal.updated",
        &after,
        Some(previous),
        now,
    )?;
    Ok(after)
}

/// Moves a deal to another stage of its pipeline. Entering a won or lost stage closes it
/// (`closed_at`, and `lost_reason` for a loss); leaving one reopens it. Every move writes a
/// history row, a `stage_changed` activity and the events `deal.updated`, `deal.stage_changed`
/// and `deal.won` or `deal.lost`. Moving to the stage it is in changes nothing.
pub fn move_to(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    input: MoveDeal,
    now: Millis,
) -> DomainResult<Deal> {
    let before = get(tx, &p.org_id, id)?;
    let target = resolve_stage(
        tx,
        &p.org_id,
        &before.pipeline_id,
        input.stage_id.as_deref(),
        input.stage.as_deref(),
    )?;
    move_deal(
        tx,
        &p.org_id,
        &Actor::from(p),
        Some(&p.user_id),
        before,
        &target,
        input.lost_reason,
        now,
    )
}

#[allow(clippy::too_many_arguments)]
fn move_deal(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    user_id: Option<&str>,
    before: Deal,
    target: &Stage,
    lost_reason: Option<String>,
    now: Millis,
) -> DomainResult<Deal> {
    let mut issues = Issues::new();
    let lost_reason = validate::optional_text(&mut issues, "lost_reason", lost_reason, 500);
    issues.finish()?;
    if target.id == before.stage_id {
        return Ok(before);
    }
    let from = pipelines::get_stage(tx, org_id, &before.stage_id)?;
    let status = DealStatus::from(target.kind);
    let closed_at = match status {
        DealStatus::Open => None,
        _ => Some(now),
    };
    let lost_reason = match status {
        DealStatus::Lost => lost_reason.or(before.lost_reason.0.clone()),
        _ => None,
    };
    tx.execute(
        "UPDATE deals SET stage_id = ?3, status = ?4, closed_at = ?5, lost_reason = ?6,
                stage_entered_at = ?7, version = version + 1, updated_at = ?7
         WHERE org_id = ?1 AND id = ?2",
        params![
            org_id,
            before.id,
            target.id,
            status.as_str(),
            closed_at,
            lost_reason,
            now
        ],
    )?;
    record_history(
        tx,
        org_id,
        &before.id,
        Some(&from),
        target,
        actor,
        lost_reason.as_deref(),
        now,
    )?;
    activities::record(
        tx,
        org_id,
        actor,
        user_id,
        Term::known("stage_changed"),
        activities::Details {
            subject: Some(format!("{} → {}", from.name, target.name)),
            body: lost_reason.clone(),
            deal_id: Some(before.id.clone()),
            occurred_at: Some(Timestamp(now)),
            ..Default::default()
        },
        now,
    )?;
    let after = get(tx, org_id, &before.id)?;
    let previous = events::previous_values(&before, &after);
    events::append(
        tx,
        org_id,
        actor,
        "deal.updated",
        &after,
        Some(previous.clone()),
        now,
    )?;
    events::append(
        tx,
        org_id,
        actor,
        "deal.stage_changed",
        &after,
        Some(previous.clone()),
        now,
    )?;
    match status {
        DealStatus::Won if before.status != DealStatus::Won => {
            events::append(tx, org_id, actor, "deal.won", &after, Some(previous), now)?;
        }
        DealStatus::Lost if before.status != DealStatus::Lost => {
            events::append(tx, org_id, actor, "deal.lost", &after, Some(previous), now)?;
        }
        _ => {}
    }
    Ok(after)
}

/// Moves every deal out of `stage_id` into `move_to` (another stage of the same pipeline),
/// each as a normal move, so a stage can be deleted.
pub fn empty_stage(
    tx: &Tx<'_>,
    p: &Principal,
    stage_id: &str,
    move_to: &str,
    now: Millis,
) -> DomainResult<()> {
    let stage = pipelines::get_stage(tx, &p.org_id, stage_id)?;
    let target = pipelines::get_stage(tx, &p.org_id, move_to)
        .map_err(|_| DomainError::invalid("move_to", unknown("stage", move_to)))?;
    // Both stages exist but do not go together: a conflict between the two.
    if target.pipeline_id != stage.pipeline_id || target.id == stage.id {
        return Err(DomainError::Conflict {
            message: format!("{move_to} is not another stage of {stage_id}'s pipeline"),
            details: vec![FieldIssue::new(
                "move_to",
                "must be another stage of the same pipeline",
            )],
        });
    }
    let ids: Vec<String> = {
        let mut stmt = tx.prepare("SELECT id FROM deals WHERE org_id = ?1 AND stage_id = ?2")?;
        let rows = stmt.query_map(params![p.org_id, stage_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let actor = Actor::from(p);
    for id in ids {
        let deal = get(tx, &p.org_id, &id)?;
        move_deal(
            tx,
            &p.org_id,
            &actor,
            Some(&p.user_id),
            deal,
            &target,
            None,
            now,
        )?;
    }
    Ok(())
}

/// Deletes a deal with its tasks and notes (each with its `deleted` event), its activities and
/// its stage history. A lead converted into it keeps status `converted` with
/// `converted_deal_id` cleared.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Deal> {
    let deal = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    tasks::delete_where(tx, &p.org_id, &actor, "deal_id", id, now)?;
    notes::delete_where(tx, &p.org_id, &actor, "deal_id", id, now)?;
    tx.execute(
        "DELETE FROM activities WHERE org_id = ?1 AND deal_id = ?2",
        params![p.org_id, id],
    )?;
    tx.execute(
        "DELETE FROM deal_stage_history WHERE deal_id = ?1",
        params![id],
    )?;
    tx.execute(
        "UPDATE leads SET converted_deal_id = NULL WHERE org_id = ?1 AND converted_deal_id = ?2",
        params![p.org_id, id],
    )?;
    tx.execute(
        "DELETE FROM deals WHERE org_id = ?1 AND id = ?2",
        params![p.org_id, id],
    )?;
    events::append(tx, &p.org_id, &actor, "deal.deleted", &deal, None, now)?;
    Ok(deal)
}

/// The deal's stage changes, oldest first.
pub fn history(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Vec<StageChange>> {
    get(conn, org_id, id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT from_stage_id, from_stage_name, to_stage_id, to_stage_name, changed_at, actor_type,
                actor_id, lost_reason,
                changed_at - lag(changed_at) OVER (ORDER BY changed_at, rowid)
         FROM deal_stage_history WHERE org_id = ?1 AND deal_id = ?2 ORDER BY changed_at, rowid",
    )?;
    let rows = stmt.query_map(params![org_id, id], |r| {
        Ok(StageChange {
            from_stage_id: r.get(0)?,
            from_stage_name: r.get(1)?,
            to_stage_id: r.get(2)?,
            to_stage_name: r.get(3)?,
            changed_at: Timestamp(r.get(4)?),
            actor: Actor {
                kind: r.get(5)?,
                id: r.get(6)?,
            },
            lost_reason: r.get(7)?,
            seconds_in_previous_stage: Nullable(r.get::<_, Option<i64>>(8)?.map(|ms| ms / 1000)),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Moves `last_activity_at` forward to `at` (bookkeeping: no version bump, no event).
pub fn touch_activity(tx: &Tx<'_>, org_id: &str, id: &str, at: Millis) -> DomainResult<()> {
    tx.execute(
        "UPDATE deals SET last_activity_at = max(coalesce(last_activity_at, 0), ?3)
         WHERE org_id = ?1 AND id = ?2",
        params![org_id, id, at],
    )?;
    Ok(())
}

/// A lead as the deal view shows it.
#[derive(Debug, Clone, Object)]
pub struct LeadSummary {
    /// `lead_...`
    pub id: String,
    /// Full name.
    pub name: String,
    /// Email.
    #[oai(nullable)]
    pub email: Nullable<String>,
    /// Job title.
    #[oai(nullable)]
    pub title: Nullable<String>,
    /// Status.
    pub status: LeadStatus,
}

/// A company as the deal view shows it.
#[derive(Debug, Clone, Object)]
pub struct CompanySummary {
    /// `co_...`
    pub id: String,
    /// Name.
    pub name: String,
    /// Domain.
    #[oai(nullable)]
    pub domain: Nullable<String>,
    /// Industry.
    #[oai(nullable)]
    pub industry: Nullable<String>,
}

/// A deal with everything an agent needs to act on it, in one response.
#[derive(Debug, Clone, Object)]
pub struct DealContext {
    /// The deal.
    #[oai(flatten)]
    pub deal: Deal,
    /// Its stage.
    pub stage: Stage,
    /// Its lead, summarized.
    #[oai(nullable)]
    pub lead: Nullable<LeadSummary>,
    /// Its company, summarized.
    #[oai(nullable)]
    pub company: Nullable<CompanySummary>,
    /// The open task due soonest (undated ones last).
    #[oai(nullable)]
    pub next_task: Nullable<Task>,
    /// The most recent activity.
    #[oai(nullable)]
    pub last_activity: Nullable<Activity>,
    /// How many tasks are open.
    pub open_tasks_count: i64,
    /// How many notes it has.
    pub notes_count: i64,
}

/// Builds a lead's one-line summary.
pub fn summarize_lead(l: &Lead) -> LeadSummary {
    let name = [l.first_name.as_deref(), l.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    LeadSummary {
        id: l.id.clone(),
        name: if name.is_empty() {
            l.email.0.clone().unwrap_or_default()
        } else {
            name
        },
        email: l.email.clone(),
        title: l.title.clone(),
        status: l.status,
    }
}

fn summarize_company(c: Company) -> CompanySummary {
    CompanySummary {
        id: c.id,
        name: c.name,
        domain: c.domain,
        industry: c.industry,
    }
}

/// The deal with its full context.
pub fn context(
    conn: &Connection,
    org_id: &str,
    id: &str,
    now: Millis,
) -> DomainResult<DealContext> {
    let mut deal = get(conn, org_id, id)?;
    annotate_risk(conn, org_id, std::slice::from_mut(&mut deal), now)?;
    let stage = pipelines::get_stage(conn, org_id, &deal.stage_id)?;
    let lead = match &deal.lead_id {
        Nullable(Some(l)) => leads::find(conn, org_id, l)?.map(|l| summarize_lead(&l)),
        Nullable(None) => None,
    };
    let company = match &deal.company_id {
        Nullable(Some(c)) => companies::find(conn, org_id, c)?.map(summarize_company),
        Nullable(None) => None,
    };
    let next_task = conn
        .cached_row(
            &format!(
                "SELECT {} FROM tasks WHERE deal_id = ?1 AND status = 'open'
                 ORDER BY due_at IS NULL, due_at, created_at LIMIT 1",
                tasks::COLUMNS
            ),
            params![id],
            tasks::mapper(now),
        )
        .optional()?;
    let last_activity = conn
        .cached_row(
            &format!(
                "SELECT {} FROM activities WHERE deal_id = ?1 ORDER BY occurred_at DESC, id DESC LIMIT 1",
                activities::COLUMNS
            ),
            params![id],
            activities::from_row,
        )
        .optional()?;
    let open_tasks_count = conn.cached_row(
        "SELECT COUNT(*) FROM tasks WHERE deal_id = ?1 AND status = 'open'",
        params![id],
        |r| r.get(0),
    )?;
    let notes_count = conn.cached_row(
        "SELECT COUNT(*) FROM notes WHERE deal_id = ?1",
        params![id],
        |r| r.get(0),
    )?;
    Ok(DealContext {
        deal,
        stage,
        lead: Nullable(lead),
        company: Nullable(company),
        next_task: Nullable(next_task),
        last_activity: Nullable(last_activity),
        open_tasks_count,
        notes_count,
    })
}

/// How to convert a lead; everything is optional.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct ConvertLead {
    /// The deal's title; defaults to "<company or name> deal".
    #[oai(validator(min_length = 1, max_length = 200))]
    #[oai(nullable)]
    pub title: Option<String>,
    /// Major units.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    #[oai(nullable)]
    pub value: Option<f64>,
    /// ISO 4217.
    #[oai(nullable)]
    pub currency: Option<Term<Currency>>,
    /// Defaults to the default pipeline.
    #[oai(nullable)]
    pub pipeline_id: Option<String>,
    /// Defaults to the pipeline's first stage.
    #[oai(nullable)]
    pub stage_id: Option<String>,
    /// Or the stage by name.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    pub stage: Option<String>,
    /// `YYYY-MM-DD`.
    #[oai(validator(max_length = 10))]
    #[oai(nullable)]
    pub expected_close_date: Option<String>,
}

/// The result of a conversion.
#[derive(Debug, Clone, Object)]
pub struct Conversion {
    /// The lead, now `converted`.
    pub lead: Lead,
    /// The deal it became.
    pub deal: Deal,
}

/// Longest deal title.
pub const TITLE_MAX: usize = 200;

/// A converted lead's deal title when the caller gives none: "<company or name> deal", the name
/// cut so the whole fits [`TITLE_MAX`]. A company name may be 200 characters itself, and a title
/// the caller never sent must not be refused (the contract fuzzer found one).
fn default_title(name: &str) -> String {
    const SUFFIX: &str = " deal";
    let name: String = name.chars().take(TITLE_MAX - SUFFIX.len()).collect();
    format!("{}{SUFFIX}", name.trim_end())
}

/// Converts a lead into a deal (in the default pipeline's first stage unless told otherwise),
/// with the lead's company and owner; the lead becomes `converted`. Records `lead.converted`
/// and `deal.created`. A lead already converted is 409 naming its deal.
pub fn convert_lead(
    tx: &Tx<'_>,
    p: &Principal,
    lead_id: &str,
    input: ConvertLead,
    now: Millis,
) -> DomainResult<Conversion> {
    let lead = leads::get(tx, &p.org_id, lead_id)?;
    if lead.status == LeadStatus::Converted {
        return Err(DomainError::Conflict {
            message: "the lead is already converted".into(),
            details: lead
                .converted_deal_id
                .iter()
                .map(|d| super::FieldIssue::new("converted_deal_id", d.clone()))
                .collect(),
        });
    }
    let summary = summarize_lead(&lead);
    let title = input
        .title
        .unwrap_or_else(|| default_title(lead.company_name.as_deref().unwrap_or(&summary.name)));
    let actor = Actor::from(p);
    let owner = lead.owner_id.0.clone().unwrap_or_else(|| p.user_id.clone());
    let deal = create_as(
        tx,
        &p.org_id,
        &actor,
        &owner,
        NewDeal {
            title,
            value: input.value,
            currency: input.currency,
            pipeline_id: input.pipeline_id,
            stage_id: input.stage_id,
            stage: input.stage,
            lead_id: Some(lead.id.clone()),
            expected_close_date: input.expected_close_date,
            ..NewDeal::default()
        },
        now,
    )?;
    tx.execute(
        "UPDATE leads SET status = 'converted', converted_deal_id = ?3, converted_at = ?4,
                version = version + 1, updated_at = ?4
         WHERE org_id = ?1 AND id = ?2",
        params![p.org_id, lead.id, deal.id, now],
    )?;
    let after = leads::get(tx, &p.org_id, &lead.id)?;
    let previous = events::previous_values(&lead, &after);
    events::append(
        tx,
        &p.org_id,
        &actor,
        "lead.converted",
        &after,
        Some(previous),
        now,
    )?;
    Ok(Conversion { lead: after, deal })
}
