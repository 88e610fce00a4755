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
    rowid: i64,
    pub id: Box<str>,
    /// Its stage, as an index into [`OpenDeals::stages`].
    stage: u32,
    pub raw: RawFacts,
}

/// An organization's open deals: a dense list with an index by rowid (a map of the deals
/// themselves took twice the memory, most of it empty room), their stage ids kept once.
#[derive(Default)]
pub(super) struct OpenDeals {
    stages: Vec<Box<str>>,
    deals: Vec<OpenDeal>,
    at: HashMap<i64, usize>,
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

impl OpenDeals {
    /// Each deal with its stage's id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OpenDeal)> {
        self.deals
            .iter()
            .map(|d| (&*self.stages[d.stage as usize], d))
    }

    fn read(conn: &Connection, org_id: &str) -> DomainResult<Self> {
        let mut held = OpenDeals::default();
        let mut stmt = conn.prepare_cached(EVERY_OPEN_DEAL)?;
        let mut rows = stmt.query(params![org_id])?;
        while let Some(r) = rows.next()? {
            held.put(r)?;
        }
        held.deals.shrink_to_fit();
        Ok(held)
    }

    /// Holds the deal of row `r` (its rowid, then the columns of [`deal_facts!`]).
    fn put(&mut self, r: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        let stage_id = r.get_ref(4)?.as_str()?;
        let stage = match self.stages.iter().position(|s| **s == *stage_id) {
            Some(i) => i,
            None => {
                self.stages.push(stage_id.into());
                self.stages.len() - 1
            }
        };
        let deal = OpenDeal {
            rowid: r.get(0)?,
            id: r.get_ref(1)?.as_str()?.into(),
            stage: stage as u32,
            raw: RawFacts::read(r, 1, true)?,
        };
        match self.at.get(&deal.rowid) {
            Some(&i) => self.deals[i] = deal,
            None => {
                self.at.insert(deal.rowid, self.deals.len());
                self.deals.push(deal);
            }
        }
        Ok(())
    }

    fn remove(&mut self, rowid: i64) {
        if let Some(i) = self.at.remove(&rowid) {
            self.deals.swap_remove(i);
            if let Some(moved) = self.deals.get(i) {
                self.at.insert(moved.rowid, i);
            }
        }
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
        for rowid in rowids {
            let mut rows = stmt.query(params![rowid, org_id])?;
            match rows.next()? {
                Some(r) => self.put(r)?,
                None => self.remove(rowid),
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
