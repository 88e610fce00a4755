//! List totals counted once per commit.
//!
//! A list's `total` is a `COUNT(*)` over every matching row: for one owner's 3,000 open deals it
//! costs more than the page itself. Until the next commit the answer cannot change, so each
//! reader thread remembers the totals it counted with the commit they were counted at
//! (`commit_seq`, which every write transaction bumps, read inside the same snapshot) and gives
//! one again only to a snapshot of that same commit. The memory is per thread (no lock on the
//! read path) and bounded.

use std::cell::RefCell;
use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::CachedRow;

/// Most totals a thread remembers; past this it forgets them all and starts again.
const REMEMBERED: usize = 1024;

thread_local! {
    /// (database file, count statement, parameters) -> (commit, total).
    static TOTALS: RefCell<HashMap<String, (i64, i64)>> = RefCell::new(HashMap::new());
}

/// Bumps the commit counter and gives the new number; called inside every write transaction
/// just before it commits.
pub(super) fn mark_commit(conn: &Connection) -> rusqlite::Result<i64> {
    conn.cached_row("UPDATE commit_seq SET n = n + 1 RETURNING n", [], |r| {
        r.get(0)
    })
}

/// The commit this snapshot sees: what an answer remembered from it is keyed by.
pub fn commit_of(conn: &Connection) -> rusqlite::Result<i64> {
    conn.cached_row("SELECT n FROM commit_seq", [], |r| r.get(0))
}

/// `count_sql` (a `SELECT COUNT(*) ...`) with `params`, counted once per commit. Must run inside
/// a read snapshot (as every read of [`super::Db`] does), so the commit it reads is the one the
/// count sees. An in-memory database (no file to name it) is always counted.
pub fn count(conn: &Connection, count_sql: &str, params: &[Value]) -> rusqlite::Result<i64> {
    let count_now = || conn.cached_row(count_sql, rusqlite::params_from_iter(params), |r| r.get(0));
    let Some(file) = conn.path().filter(|p| !p.is_empty()) else {
        return count_now();
    };
    let commit = commit_of(conn)?;
    let key = format!("{file}\0{count_sql}\0{params:?}");
    if let Some(total) = TOTALS.with_borrow(|t| {
        t.get(&key)
            .filter(|(at, _)| *at == commit)
            .map(|(_, total)| *total)
    }) {
        return Ok(total);
    }
    let total = count_now()?;
    TOTALS.with_borrow_mut(|t| {
        if t.len() >= REMEMBERED {
            t.clear();
        }
        t.insert(key, (commit, total));
    });
    Ok(total)
}
