//! Every open deal's risk facts, kept in memory per organization and brought up to date after a
//! commit by reading again only the deals it changed ([`crate::db::touched`]).
//!
//! A risk ranking scores every open deal at the request's `now`. The ranking is remembered until
//! the next commit ([`crate::db::memo`]), but a busy organization commits all the time, and
//! reading 60,000 open deals back from their covering index is most of a ranking's time. With
//! their facts held here, a ranking after a commit reads the few deals the commits since changed
//! and scores the rest from memory. When the commits are not known (another process wrote the
//! file, or too many happened), every open deal is read again; a request sent with
//! `Cache-Control: no-cache` reads them from the database and leaves this memory alone.
//!
//! Memory: about 150 bytes per open deal (10 MB for 60,000), for at most [`ORGANIZATIONS`]
//! organizations at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection};

use super::{deal_facts, RawFacts};
use crate::db::totals::commit_of;
use crate::db::touched;
use crate::domain::error::DomainResult;

/// Organizations whose open deals are held at a time; past this they are all forgotten.
const ORGANIZATIONS: usize = 16;

/// Past this many changed deals, reading every open deal again is the cheaper way.
const REREAD_AT_MOST: usize = 2_000;

/// One open deal, as a ranking needs it.
pub(super) struct OpenDeal {
    pub id: Box<str>,
    pub stage_id: Box<str>,
    pub raw: RawFacts,
}

/// An organization's open deals as of a commit, by rowid.
pub(super) struct OpenDeals {
    commit: i64,
    pub deals: HashMap<i64, OpenDeal>,
}

type Slot = Arc<Mutex<Option<OpenDeals>>>;

/// (database file, organization) -> its open deals.
static HELD: Mutex<Option<HashMap<String, Slot>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const EVERY_OPEN_DEAL: &str = concat!(
    "SELECT d.rowid, ",
    deal_facts!(),
    " FROM deals d WHERE d.org_id = ?1 AND d.status = 'open'"
);

const ONE_OPEN_DEAL: &str = concat!(
    "SELECT d.rowid, ",
    deal_facts!(),
    " FROM deals d WHERE d.rowid = ?1 AND d.org_id = ?2 AND d.status = 'open'"
);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, OpenDeal)> {
    Ok((
        r.get(0)?,
        OpenDeal {
            id: r.get_ref(1)?.as_str()?.into(),
            stage_id: r.get_ref(4)?.as_str()?.into(),
            raw: RawFacts::read(r, 1, true)?,
        },
    ))
}

impl OpenDeals {
    fn read(conn: &Connection, org_id: &str, commit: i64) -> DomainResult<Self> {
        let mut stmt = conn.prepare_cached(EVERY_OPEN_DEAL)?;
        let deals = stmt
            .query_map(params![org_id], read_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(OpenDeals { commit, deals })
    }

    /// Reads again the deals with these rowids: those still open in `org_id` are put back,
    /// the others dropped.
    fn reread(&mut self, conn: &Connection, org_id: &str, rowids: &[i64]) -> DomainResult<()> {
        let mut stmt = conn.prepare_cached(ONE_OPEN_DEAL)?;
        for rowid in rowids {
            self.deals.remove(rowid);
            let mut rows = stmt.query(params![rowid, org_id])?;
            if let Some(r) = rows.next()? {
                let (rowid, deal) = read_row(r)?;
                self.deals.insert(rowid, deal);
            }
        }
        Ok(())
    }
}

/// Runs `f` over `org_id`'s open deals as this snapshot sees them, or gives `None` when they
/// should be read from the database instead: an in-memory database, a request that asked for
/// answers afresh, or a snapshot older than what is held (another reader is ahead of it).
pub(super) fn with_open_deals<T>(
    conn: &Connection,
    org_id: &str,
    f: impl FnOnce(&OpenDeals) -> T,
) -> DomainResult<Option<T>> {
    let Some(file) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if crate::db::memo::afresh_asked() {
        return Ok(None);
    }
    let commit = commit_of(conn)?;
    let slot = {
        let mut held = lock(&HELD);
        let held = held.get_or_insert_with(HashMap::new);
        let key = format!("{file}\0{org_id}");
        if !held.contains_key(&key) && held.len() >= ORGANIZATIONS {
            held.clear();
        }
        held.entry(key).or_default().clone()
    };
    let mut slot = lock(&slot);
    let held_at = slot.as_ref().map(|h| h.commit);
    match held_at {
        Some(at) if at == commit => {}
        Some(at) if at > commit => return Ok(None),
        _ => {
            let changed = held_at
                .and_then(|at| touched::since(conn, at, commit))
                .filter(|rowids| rowids.len() <= REREAD_AT_MOST);
            // Forgotten first: a read that fails half-way leaves nothing half-updated.
            let held = slot.take();
            *slot = Some(match (held, changed) {
                (Some(mut held), Some(mut rowids)) => {
                    rowids.sort_unstable();
                    rowids.dedup();
                    held.reread(conn, org_id, &rowids)?;
                    held.commit = commit;
                    held
                }
                _ => OpenDeals::read(conn, org_id, commit)?,
            });
        }
    }
    Ok(slot.as_ref().map(f))
}
