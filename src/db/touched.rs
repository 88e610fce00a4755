//! Which deals and stage changes each commit wrote, as this process's writer saw them.
//!
//! Ranking every open deal by risk, or every deal's path through the stages, reads them all;
//! after a commit, an answer held from before it ([`super::held`]) can be brought up to date by
//! reading again only the rows the commits since then wrote. The writer's connection reports
//! every row it inserts, updates or deletes in `deals` and `deal_stage_history` (SQLite's update
//! hook, which also sees the rows that triggers and cascades change), and at commit they are
//! filed under the commit's number (`commit_seq`, see [`super::totals`]).
//!
//! A reader whose answer was computed at commit `a`, in a snapshot at commit `b`, asks for the
//! rows commits `a+1..=b` wrote ([`since`]). It gets them only if this process made every one
//! of those commits and still remembers them; otherwise (another process wrote the file, or
//! the commits are older than the last [`KEPT_COMMITS`]) it gets `None`, and reads everything.
//! A row reported by a write that was then rolled back only costs a needless read.
//!
//! The rows of the transaction under way are gathered on its thread (a write transaction runs
//! on one thread from `BEGIN` to `COMMIT`, whether the writer's or a blocking caller's), so two
//! handles on one file in one process cannot mix theirs.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::hooks::Action;
use rusqlite::Connection;

/// Commits remembered per database file.
const KEPT_COMMITS: usize = 4096;

/// A table whose writes are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Deals,
    StageHistory,
}

/// What was done to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Inserted,
    Updated,
    Deleted,
}

/// One row written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Touch {
    pub table: Table,
    pub change: Change,
    pub rowid: i64,
}

/// One database file's log: (commit, rows it wrote), oldest first, numbers consecutive.
type Log = VecDeque<(i64, Vec<Touch>)>;

thread_local! {
    /// Rows written by the write transaction under way on this thread.
    static PENDING: RefCell<Vec<Touch>> = const { RefCell::new(Vec::new()) };
}

/// Database file -> its log.
static LOGS: Mutex<Option<HashMap<String, Arc<Mutex<Log>>>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The log of `conn`'s file, if it has one (an in-memory database has none).
fn log_of(conn: &Connection) -> Option<Arc<Mutex<Log>>> {
    let file = conn.path().filter(|p| !p.is_empty())?;
    Some(
        lock(&LOGS)
            .get_or_insert_with(HashMap::new)
            .entry(file.to_string())
            .or_default()
            .clone(),
    )
}

/// Has the writer's connection report the rows it writes in the tables of [`Table`].
pub(super) fn watch(conn: &Connection) -> rusqlite::Result<()> {
    conn.update_hook(Some(|action: Action, db: &str, table: &str, rowid: i64| {
        let table = match table {
            "deals" => Table::Deals,
            "deal_stage_history" => Table::StageHistory,
            _ => return,
        };
        let change = match action {
            Action::SQLITE_INSERT => Change::Inserted,
            Action::SQLITE_DELETE => Change::Deleted,
            _ => Change::Updated,
        };
        if db == "main" {
            PENDING.with_borrow_mut(|p| {
                p.push(Touch {
                    table,
                    change,
                    rowid,
                })
            });
        }
    }))
}

/// Forgets what an earlier transaction on this thread reported without committing: called as a
/// write transaction begins.
pub(super) fn begin() {
    PENDING.with_borrow_mut(Vec::clear);
}

/// Files what the transaction just committed on `conn` changed under `commit`, its number.
pub(super) fn committed(conn: &Connection, commit: i64) {
    let touches = PENDING.with_borrow_mut(std::mem::take);
    let Some(log) = log_of(conn) else {
        return;
    };
    let mut log = lock(&log);
    if log.back().is_some_and(|(last, _)| *last + 1 != commit) {
        // A commit this process did not make came between: what came before no longer chains.
        log.clear();
    }
    if log.len() >= KEPT_COMMITS {
        log.pop_front();
    }
    log.push_back((commit, touches));
}

/// The rows that commits `from + 1 ..= to` wrote (with repeats), in order, or `None` when this
/// process does not know them all.
pub fn since(conn: &Connection, from: i64, to: i64) -> Option<Vec<Touch>> {
    let log = log_of(conn)?;
    let log = lock(&log);
    let first = log.front()?.0;
    if from + 1 < first || to > log.back()?.0 || from > to {
        return None;
    }
    let start = usize::try_from(from + 1 - first).ok()?;
    let end = usize::try_from(to + 1 - first).ok()?;
    Some(
        log.range(start..end)
            .flat_map(|(_, touches)| touches.iter().copied())
            .collect(),
    )
}
