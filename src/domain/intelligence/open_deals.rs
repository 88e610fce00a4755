//! Every open deal's risk facts, held in memory per organization between commits
//! ([`crate::db::held`]) and brought up to date by reading again only the deals written since.
//!
//! A risk ranking scores every open deal at the request's `now`. The ranking is remembered until
//! the next commit ([`crate::db::memo`]), but a busy organization commits all the time, and
//! reading 60,000 open deals back from their covering index is most of a ranking's time. With
//! their facts held, a ranking after a commit reads the few deals written since and scores the
//! rest from memory.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use super::{deal_facts, RawFacts};
use crate::db::held;
use crate::db::touched::{Table, Touch};
use crate::domain::error::DomainResult;

/// One open deal, as a ranking needs it.
pub(super) struct OpenDeal {
    pub id: Box<str>,
    pub stage_id: Box<str>,
    pub raw: RawFacts,
}

/// An organization's open deals, by rowid.
pub(super) struct OpenDeals {
    pub deals: HashMap<i64, OpenDeal>,
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
    fn read(conn: &Connection, org_id: &str) -> DomainResult<Self> {
        let mut stmt = conn.prepare_cached(EVERY_OPEN_DEAL)?;
        let deals = stmt
            .query_map(params![org_id], read_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(OpenDeals { deals })
    }

    /// Reads again the deals written: those still open in `org_id` are put back, the others
    /// dropped.
    fn apply(&mut self, conn: &Connection, org_id: &str, written: &[Touch]) -> DomainResult<bool> {
        let mut rowids: Vec<i64> = written
            .iter()
            .filter(|t| t.table == Table::Deals)
            .map(|t| t.rowid)
            .collect();
        rowids.sort_unstable();
        rowids.dedup();
        let mut stmt = conn.prepare_cached(ONE_OPEN_DEAL)?;
        for rowid in &rowids {
            self.deals.remove(rowid);
            let mut rows = stmt.query(params![rowid, org_id])?;
            if let Some(r) = rows.next()? {
                let (rowid, deal) = read_row(r)?;
                self.deals.insert(rowid, deal);
            }
        }
        Ok(true)
    }
}

/// Runs `f` over `org_id`'s open deals as this snapshot sees them, or gives `None` when they
/// should be read from the database instead (see [`held::with_held`]).
pub(super) fn with_open_deals<T>(
    conn: &Connection,
    org_id: &str,
    f: impl FnOnce(&OpenDeals) -> T,
) -> DomainResult<Option<T>> {
    held::with_held(
        conn,
        &format!("open deals\0{org_id}"),
        || OpenDeals::read(conn, org_id),
        |held: &mut OpenDeals, written| held.apply(conn, org_id, written),
        f,
    )
}
