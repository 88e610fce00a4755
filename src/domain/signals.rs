//! Buying signals: stored, swept and resolved (the rules are in `crate::intelligence::signals`).

use crate::db::CachedRow;
use std::collections::HashSet;

use crate::db::Tx;
use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::activities::Activity;
use super::error::{DomainError, DomainResult};
use super::events::{self, Actor};
use super::intelligence::{gather, Scope};
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Sort};
use crate::clock::{Millis, DAY_MS};
use crate::db::Db;
use crate::ids::{self, new_id};
use crate::intelligence::signals::{self as rules, Cause, SignalType};
use crate::timefmt::Timestamp;

/// A buying signal.
#[derive(Debug, Clone, Object)]
pub struct Signal {
    /// `sig_...`
    pub id: String,
    /// What kind of moment it is.
    #[oai(rename = "type")]
    pub signal_type: SignalType,
    /// How strongly it calls for action, 0–100.
    pub score: i64,
    /// What happened, as a sentence.
    pub title: String,
    /// The deal it is about.
    #[oai(nullable)]
    pub deal_id: Option<String>,
    /// The lead it is about.
    #[oai(nullable)]
    pub lead_id: Option<String>,
    /// Ids of the records behind it (activities, tasks, the deal).
    pub evidence: Vec<String>,
    /// open, dismissed or resolved.
    pub status: String,
    /// When it was raised.
    pub detected_at: Timestamp,
    /// When its cause went away.
    #[oai(nullable)]
    pub resolved_at: Option<Timestamp>,
    /// When someone dismissed it.
    #[oai(nullable)]
    pub dismissed_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, type, score, title, deal_id, lead_id, evidence, status, detected_at, resolved_at, dismissed_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "signals",
    id: "id",
    count_from: None,
};

fn from_row(r: &Row<'_>) -> rusqlite::Result<Signal> {
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
        resolved_at: r.get::<_, Option<i64>>(9)?.map(Timestamp),
        dismissed_at: r.get::<_, Option<i64>>(10)?.map(Timestamp),
    })
}

/// The signal `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Signal> {
    if !ids::is_valid(id, "sig") {
        return Err(DomainError::NotFound("signal"));
    }
    conn.cached_row(
        &format!("SELECT {COLUMNS} FROM signals WHERE org_id = ?1 AND id = ?2"),
        params![org_id, id],
        from_row,
    )
    .optional()?
    .ok_or(DomainError::NotFound("signal"))
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
    let mut filters = Filters::for_org("org_id", org_id);
    if f.include_dismissed {
        filters.push("status IN ('open', 'dismissed')", vec![]);
    } else {
        filters.push("status = 'open'", vec![]);
    }
    if let Some(v) = f.score_min {
        filters.push("score >= ?", vec![v.into()]);
    }
    let types = any_of(f.signal_type.as_deref());
    if let Some(bad) = types.iter().find(|t| SignalType::parse(t).is_none()) {
        return Err(DomainError::invalid(
            "type",
            format!("`{bad}` is not a signal type"),
        ));
    }
    filters.any_of("type", &types);
    filters.any_of("deal_id", &any_of(f.deal_id.as_deref()));
    filters.any_of("lead_id", &any_of(f.lead_id.as_deref()));
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// The open signals about a lead (its own and its deals'), strongest first.
pub fn open_for_lead(conn: &Connection, org_id: &str, lead_id: &str) -> DomainResult<Vec<Signal>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM signals WHERE org_id = ?1 AND lead_id = ?2 AND status = 'open'
         ORDER BY score DESC, detected_at DESC LIMIT 100"
    ))?;
    let rows = stmt.query_map(params![org_id, lead_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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
    events::append(
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

fn resolve(tx: &Tx<'_>, id: &str, now: Millis) -> DomainResult<()> {
    tx.execute(
        "UPDATE signals SET status = 'resolved', resolved_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Raises the signal a recorded open or reply calls for (a write, so it appears at once).
pub fn on_activity(
    tx: &Tx<'_>,
    org_id: &str,
    activity: &Activity,
    now: Millis,
) -> DomainResult<()> {
    let signal_type = match activity.activity_type.as_str() {
        "email_opened" => SignalType::EmailOpened,
        "email_received" => SignalType::EmailReplied,
        _ => return Ok(()),
    };
    let lead_id = match (&activity.lead_id, &activity.deal_id) {
        (Some(l), _) => Some(l.clone()),
        (None, Some(d)) => tx
            .cached_row("SELECT lead_id FROM deals WHERE id = ?1", params![d], |r| {
                r.get(0)
            })
            .optional()?
            .flatten(),
        _ => None,
    };
    let Some(subject) = activity.deal_id.as_deref().or(lead_id.as_deref()) else {
        return Ok(());
    };
    let cause = rules::engagement_cause(
        signal_type,
        subject,
        &activity.id,
        activity.subject.as_deref(),
    );
    raise(
        tx,
        org_id,
        &cause,
        activity.deal_id.as_deref(),
        lead_id.as_deref(),
        now,
    )?;
    // Repeated opens and replies make `high_engagement` at once, not at the next sweep.
    if let Some(deal_id) = activity.deal_id.as_deref() {
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

/// Re-evaluates the time-based rules of one organization at `now`: raises a signal for each
/// new cause, resolves those whose cause went away, and resolves engagement signals the team
/// has acted on since (any non-engagement activity on the deal after the signal).
pub fn sweep_org(tx: &Tx<'_>, org_id: &str, now: Millis) -> DomainResult<SweepOutcome> {
    let mut outcome = SweepOutcome::default();
    let deals = gather(tx, org_id, Scope::AllOpen, now)?;
    let mut live_keys: HashSet<String> = HashSet::new();
    for d in &deals {
        for cause in rules::deal_causes(
            &d.id,
            &d.stage_id,
            &d.facts,
            &d.overdue_task_ids,
            &d.recent_engagement,
            now,
        ) {
            live_keys.insert(cause.key.clone());
            if raise(tx, org_id, &cause, Some(&d.id), d.lead_id.as_deref(), now)? {
                outcome.detected += 1;
            }
        }
    }
    let live: Vec<(String, String, String, Option<String>, i64)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, type, cause_key, deal_id, detected_at FROM signals WHERE org_id = ?1 AND status <> 'resolved'",
        )?;
        let rows = stmt.query_map(params![org_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, kind, key, deal_id, detected_at) in live {
        let time_based = SignalType::parse(&kind).is_some_and(SignalType::is_time_based);
        let gone = if time_based {
            !live_keys.contains(&key)
        } else {
            match deal_id {
                Some(deal_id) => tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM activities WHERE deal_id = ?1 AND occurred_at > ?2
                                AND type NOT IN ('email_opened', 'email_received'))",
                    )?
                    .query_row(params![deal_id, detected_at], |r| r.get(0))?,
                None => false,
            }
        };
        if gone {
            resolve(tx, &id, now)?;
            outcome.resolved += 1;
        }
    }
    Ok(outcome)
}

/// Sweeps every organization, each in its own transaction (called every minute by the server).
pub fn sweep_all(db: &Db, now: Millis) -> DomainResult<SweepOutcome> {
    let orgs: Vec<String> = db.read_blocking(|c| {
        let mut stmt = c.prepare("SELECT id FROM organizations")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })?;
    let mut total = SweepOutcome::default();
    for org in orgs {
        let o = db.write_blocking(|tx| sweep_org(tx, &org, now))?;
        total.detected += o.detected;
        total.resolved += o.resolved;
    }
    Ok(total)
}
