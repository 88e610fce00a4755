//! Buying signals: stored, swept and resolved (the rules are in `crate::rules::buying_signals`).

use crate::db::CachedRow;
use crate::domain::nullable::Nullable;
use std::collections::{HashMap, HashSet};

use crate::db::Tx;
use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::error::{DomainError, DomainResult};
use super::events::Actor;
use super::intelligence::{gather, Scope};
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use crate::clock::{Millis, DAY_MS};
use crate::db::Db;
use crate::domain::changes;
use crate::ids::new_id;
use crate::rules::buying_signals::{self as rules, Cause, SignalType};
use crate::timefmt::Timestamp;

use super::terms::Term;

/// A buying signal.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Signal {
    /// `sig_...`
    pub id: String,
    /// What kind of moment it is.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub signal_type: SignalType,
    /// How strongly it calls for action, 0–100.
    pub score: i64,
    /// What happened, as a sentence.
    pub title: String,
    /// The deal it is about.
    pub deal_id: Nullable<String>,
    /// The lead it is about.
    pub lead_id: Nullable<String>,
    /// Ids of the records behind it (activities, tasks, the deal).
    pub evidence: Vec<String>,
    /// open, dismissed or resolved.
    pub status: Term<SignalStatus>,
    /// When it was raised.
    pub detected_at: Timestamp,
    /// When its cause went away.
    pub resolved_at: Nullable<Timestamp>,
    /// When someone dismissed it.
    pub dismissed_at: Nullable<Timestamp>,
}

/// A signal's states.
pub const STATUSES: &[&str] = &["open", "dismissed", "resolved"];

pub(crate) const COLUMNS: &str = "id, type, score, title, deal_id, lead_id, evidence, status, detected_at, resolved_at, dismissed_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "signals",
    id: "id",
    count_from: None,
};

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Signal> {
    Ok(Signal {
        id: r.get(0)?,
        signal_type: SignalType::parse(&r.get::<_, String>(1)?).unwrap_or(SignalType::ActivityGap),
        score: r.get(2)?,
        title: r.get(3)?,
        deal_id: r.get(4)?,
        lead_id: r.get(5)?,
        evidence: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
        status: r.get(7)?,
        detected_at: Timestamp(r.get(8)?),
        resolved_at: Nullable(r.get::<_, Option<i64>>(9)?.map(Timestamp)),
        dismissed_at: Nullable(r.get::<_, Option<i64>>(10)?.map(Timestamp)),
    })
}

const RECORD: Record = Record::new("signals", COLUMNS, "sig", "signal");

/// The signal `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Signal> {
    RECORD.get(conn, org_id, id, from_row)
}

/// Filters of the signal list.
#[derive(Debug, Clone, Default)]
pub struct SignalFilter {
    /// Score at least.
    pub score_min: Option<i64>,
    /// Any of these types.
    pub signal_type: Option<String>,
    /// About any of these deals.
    pub deal_id: Option<String>,
    /// About any of these leads.
    pub lead_id: Option<String>,
    /// Include dismissed signals (open ones only otherwise).
    pub include_dismissed: bool,
    /// Only signals on deals or leads this user owns.
    pub owner_id: Option<String>,
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[("score", "score"), ("detected_at", "detected_at")];

/// Open (and optionally dismissed) signals, strongest first by default.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &SignalFilter,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<Signal>> {
    let sort = Sort::parse(Some(sort.unwrap_or("-score")), SORTS)?;
    // With a deal or a lead named, its own index finds its few signals; the organization's index
    // (which also gives the order) would walk every open signal, and without statistics SQLite
    // cannot know that: `+org_id` keeps the organization's index out of the choice (115 ms down
    // to under 1 on 100,000 open signals).
    let named = f.deal_id.is_some() || f.lead_id.is_some();
    let mut filters = Filters::for_org(if named { "+org_id" } else { "org_id" }, org_id);
    if f.include_dismissed {
        filters.push("status IN ('open', 'dismissed')", vec![]);
    } else {
        filters.push("status = 'open'", vec![]);
    }
    if let Some(v) = f.score_min {
        filters.push("score >= ?", vec![v.into()]);
    }
    let types = any_of(f.signal_type.as_deref());
    let known = crate::rules::buying_signals::ALL.map(|t| t.as_str());
    super::validate::one_of("type", &types, &known)?;
    filters.any_of("type", &types);
    filters.any_of("deal_id", &any_of(f.deal_id.as_deref()));
    filters.any_of("lead_id", &any_of(f.lead_id.as_deref()));
    if let Some(owner) = &f.owner_id {
        filters.owned_by(org_id, owner);
    }
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// Dismisses a signal: it leaves the open list and is not raised again while its cause lasts.
/// Dismissing twice changes nothing; a resolved signal cannot be dismissed (409).
pub fn dismiss(tx: &Tx<'_>, org_id: &str, id: &str, now: Millis) -> DomainResult<Signal> {
    let s = get(tx, org_id, id)?;
    match s.status.as_str() {
        "open" => {
            tx.execute(
                "UPDATE signals SET status = 'dismissed', dismissed_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            get(tx, org_id, id)
        }
        "dismissed" => Ok(s),
        _ => Err(DomainError::conflict("the signal is already resolved")),
    }
}

/// Raises the signal for `cause` unless one is already live; a live open one gathers the new
/// evidence. Emits `signal.detected` for a new signal.
fn raise(
    tx: &Tx<'_>,
    org_id: &str,
    cause: &Cause,
    deal_id: Option<&str>,
    lead_id: Option<&str>,
    now: Millis,
) -> DomainResult<bool> {
    let live: Option<(String, String, String)> = tx
        .prepare_cached("SELECT id, status, evidence FROM signals WHERE org_id = ?1 AND cause_key = ?2 AND status <> 'resolved'")?
        .query_row(params![org_id, cause.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((id, status, evidence)) = live {
        let mut known: Vec<String> = serde_json::from_str(&evidence).unwrap_or_default();
        let before = known.len();
        for e in &cause.evidence {
            if !known.contains(e) {
                known.push(e.clone());
            }
        }
        if status == "open" && known.len() != before {
            tx.execute(
                "UPDATE signals SET evidence = ?2, title = ?3 WHERE id = ?1",
                params![
                    id,
                    serde_json::to_string(&known).unwrap_or_default(),
                    cause.title
                ],
            )?;
        }
        return Ok(false);
    }
    let id = new_id("sig");
    tx.prepare_cached(
        "INSERT INTO signals (id, org_id, type, score, title, deal_id, lead_id, cause_key, evidence,
                              status, detected_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10)",
    )?
    .execute(params![
        id,
        org_id,
        cause.signal_type.as_str(),
        cause.signal_type.score(),
        cause.title,
        deal_id,
        lead_id,
        cause.key,
        serde_json::to_string(&cause.evidence).unwrap_or_default(),
        now
    ])?;
    let signal = get(tx, org_id, &id)?;
    changes::append(
        tx,
        org_id,
        &Actor::system(),
        "signal.detected",
        &signal,
        None,
        now,
    )?;
    Ok(true)
}

/// What [`on_activity`] reads of an activity just logged (its fields, not the activity type
/// itself: activities sit below signals and call it).
pub struct Touch<'a> {
    /// The activity's id, the cause's reference.
    pub activity_id: &'a str,
    /// Its type (`email_opened`, `email_received`, ...).
    pub activity_type: &'a str,
    /// Its subject, for the signal's text.
    pub subject: Option<&'a str>,
    /// The deal it is on.
    pub deal_id: Option<&'a str>,
    /// The lead it is on.
    pub lead_id: Option<&'a str>,
}

/// Raises the signal a recorded open or reply calls for (a write, so it appears at once).
pub fn on_activity(
    tx: &Tx<'_>,
    org_id: &str,
    activity: &Touch<'_>,
    now: Millis,
) -> DomainResult<()> {
    let signal_type = match activity.activity_type {
        "email_opened" => SignalType::EmailOpened,
        "email_received" => SignalType::EmailReplied,
        _ => return Ok(()),
    };
    let lead_id = match (activity.lead_id, activity.deal_id) {
        (Some(l), _) => Some(l.to_string()),
        (None, Some(d)) => tx
            .cached_row("SELECT lead_id FROM deals WHERE id = ?1", params![d], |r| {
                r.get(0)
            })
            .optional()?
            .flatten(),
        _ => None,
    };
    let Some(subject) = activity.deal_id.or(lead_id.as_deref()) else {
        return Ok(());
    };
    let cause =
        rules::engagement_cause(signal_type, subject, activity.activity_id, activity.subject);
    raise(
        tx,
        org_id,
        &cause,
        activity.deal_id,
        lead_id.as_deref(),
        now,
    )?;
    // Repeated opens and replies make `high_engagement` at once, not at the next sweep.
    if let Some(deal_id) = activity.deal_id {
        let since = now - rules::HIGH_ENGAGEMENT_WINDOW_DAYS * DAY_MS;
        let recent: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id FROM activities WHERE deal_id = ?1 AND occurred_at >= ?2
                   AND type IN ('email_opened', 'email_received') ORDER BY occurred_at",
            )?;
            let rows = stmt.query_map(params![deal_id, since], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if let Some(cause) = rules::high_engagement_cause(deal_id, &recent) {
            raise(tx, org_id, &cause, Some(deal_id), lead_id.as_deref(), now)?;
        }
    }
    Ok(())
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// New signals raised.
    pub detected: usize,
    /// Signals whose cause went away.
    pub resolved: usize,
}

/// What a sweep of one organization found to do, read in one snapshot.
#[derive(Debug, Default)]
struct SweepPlan {
    /// Causes with no live signal, or whose live open signal lacks some of their evidence, with
    /// the deal and lead they are about.
    raise: Vec<(Cause, String, Option<String>)>,
    /// Live signals whose cause went away, or (engagement) that the team has acted on since.
    resolve: Vec<String>,
}

/// A signal not yet resolved, as a sweep reads it.
struct LiveSignal {
    id: String,
    kind: String,
    key: String,
    deal_id: Option<String>,
    detected_at: i64,
    open: bool,
    evidence: Vec<String>,
}

/// Re-evaluates the time-based rules of one organization at `now`, reading only: which causes
/// call for a new signal (or add evidence to a live one), which live signals' causes went away,
/// and which engagement signals the team has acted on since (any non-engagement activity on
/// the deal after the signal). [`apply_sweep`] writes it.
fn plan_sweep(conn: &Connection, org_id: &str, now: Millis) -> DomainResult<SweepPlan> {
    let mut plan = SweepPlan::default();
    let live: Vec<LiveSignal> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, type, cause_key, deal_id, detected_at, status, evidence
             FROM signals WHERE org_id = ?1 AND status <> 'resolved'",
        )?;
        let rows = stmt.query_map(params![org_id], |r| {
            Ok(LiveSignal {
                id: r.get(0)?,
                kind: r.get(1)?,
                key: r.get(2)?,
                deal_id: r.get(3)?,
                detected_at: r.get(4)?,
                open: r.get::<_, String>(5)? == "open",
                evidence: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let known: HashMap<&str, &LiveSignal> = live.iter().map(|l| (l.key.as_str(), l)).collect();
    let mut live_keys: HashSet<String> = HashSet::new();
    for d in gather(conn, org_id, Scope::AllOpen, now)? {
        for cause in rules::deal_causes(
            &d.id,
            &d.stage_id,
            &d.facts,
            &d.overdue_task_ids,
            &d.recent_engagement,
            now,
        ) {
            live_keys.insert(cause.key.clone());
            let act = match known.get(cause.key.as_str()) {
                None => true,
                Some(l) => l.open && cause.evidence.iter().any(|e| !l.evidence.contains(e)),
            };
            if act {
                plan.raise.push((cause, d.id.clone(), d.lead_id.clone()));
            }
        }
    }
    for l in &live {
        let time_based = SignalType::parse(&l.kind).is_some_and(SignalType::is_time_based);
        let gone = if time_based {
            !live_keys.contains(&l.key)
        } else {
            match &l.deal_id {
                Some(deal_id) => conn.cached_row(
                    "SELECT EXISTS (SELECT 1 FROM activities WHERE deal_id = ?1 AND occurred_at > ?2
                            AND type NOT IN ('email_opened', 'email_received'))",
                    params![deal_id, l.detected_at],
                    |r| r.get(0),
                )?,
                None => false,
            }
        };
        if gone {
            plan.resolve.push(l.id.clone());
        }
    }
    Ok(plan)
}

/// Writes part of a [`SweepPlan`]. Each raise checks again for a live signal, as a write does,
/// and skips a deal closed since the plan was read; a resolve skips a signal resolved since.
/// A cause that went away between the plan and this write is resolved by the next sweep.
fn apply_sweep(
    tx: &Tx<'_>,
    org_id: &str,
    raise_these: &[(Cause, String, Option<String>)],
    resolve_these: &[String],
    now: Millis,
) -> DomainResult<SweepOutcome> {
    let mut outcome = SweepOutcome::default();
    for (cause, deal_id, lead_id) in raise_these {
        let open: bool = tx.cached_row(
            "SELECT EXISTS (SELECT 1 FROM deals WHERE id = ?1 AND org_id = ?2 AND status = 'open')",
            params![deal_id, org_id],
            |r| r.get(0),
        )?;
        if open && raise(tx, org_id, cause, Some(deal_id), lead_id.as_deref(), now)? {
            outcome.detected += 1;
        }
    }
    for id in resolve_these {
        outcome.resolved += tx.execute(
            "UPDATE signals SET status = 'resolved', resolved_at = ?2
             WHERE id = ?1 AND status <> 'resolved'",
            params![id, now],
        )?;
    }
    Ok(outcome)
}

/// Signals raised or resolved per write of a sweep, so that the server's writes queued behind
/// one wait a few milliseconds at most (the first sweep of the benchmark's data set raises
/// 28,500 signals).
const SWEEP_BATCH: usize = 100;

/// Sweeps every organization (called every minute by the server). Each is read in one snapshot
/// on a bulk reader, and only what changes is written, in short writes that take their turn
/// in the writer's queue: one write transaction over every open deal would hold every other
/// write for seconds, once a minute.
pub fn sweep_all(db: &Db, now: Millis) -> DomainResult<SweepOutcome> {
    let orgs: Vec<String> = db.blocking().read(|c| {
        let mut stmt = c.prepare("SELECT id FROM organizations")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })?;
    let mut total = SweepOutcome::default();
    for org in orgs {
        let plan = {
            let org = org.clone();
            db.blocking().scan(move |c| {
                let plan = plan_sweep(c, &org, now);
                crate::db::release_memory(c);
                plan
            })?
        };
        let raises = plan
            .raise
            .chunks(SWEEP_BATCH)
            .map(|r| (r.to_vec(), Vec::new()));
        let resolves = plan
            .resolve
            .chunks(SWEEP_BATCH)
            .map(|r| (Vec::new(), r.to_vec()));
        for (raise_these, resolve_these) in raises.chain(resolves) {
            let org = org.clone();
            let o = db.blocking().write_in_turn(move |tx| {
                apply_sweep(tx, &org, &raise_these, &resolve_these, now)
            })?;
            total.detected += o.detected;
            total.resolved += o.resolved;
        }
    }
    Ok(total)
}

crate::domain::terms::vocabularies! {
    /// A signal's state.
    SignalStatus = "SignalStatus",
        "open (to act on), dismissed, or resolved.",
        STATUSES.iter().copied();
}
