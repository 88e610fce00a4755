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
use std::sync::{Arc, Mutex};

use rusqlite::hooks::Action;
use rusqlite::Connection;

use super::lock;

/// Commits remembered per database file.
const KEPT_COMMITS: usize = 4096;

/// Most rows [`since`] gives; past this, reading everything again is the cheaper way for the
/// caller, so a commit that wrote more (an import) is filed as "too many", not row by row: a
/// few thousand such commits would otherwise keep gigabytes.
pub const MOST_ROWS: usize = 2_000;

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

/// One database file's log: (commit, rows it wrote, or `None` for more than [`MOST_ROWS`]),
/// oldest first, numbers consecutive.
type Log = VecDeque<(i64, Option<Vec<Touch>>)>;

thread_local! {
    /// Rows written by the write transaction under way on this thread.
    static PENDING: RefCell<Vec<Touch>> = const { RefCell::new(Vec::new()) };
}

/// Database file -> its log.
static LOGS: Mutex<Option<HashMap<String, Arc<Mutex<Log>>>>> = Mutex::new(None);

/// The log of `conn`'s file, if it has one (an in-memory database has none).
fn log_of(conn: &Connection) -> Option<Arc<Mutex<Log>>> {
    let file = conn.path().filter(|p| !p.is_empty())?;
    let mut logs = lock(&LOGS);
    let logs = logs.get_or_insert_with(HashMap::new);
    // Looked up before inserting: this runs at every commit, and the entry API would copy the
    // file name each time.
    if let Some(log) = logs.get(file) {
        return Some(log.clone());
    }
    Some(logs.entry(file.to_string()).or_default().clone())
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
    log.push_back((commit, (touches.len() <= MOST_ROWS).then_some(touches)));
}

/// The rows that commits `from + 1 ..= to` wrote (with repeats), in order, or `None` when this
/// process does not know them all or they are more than [`MOST_ROWS`].
pub fn since(conn: &Connection, from: i64, to: i64) -> Option<Vec<Touch>> {
    let log = log_of(conn)?;
    let log = lock(&log);
    let first = log.front()?.0;
    if from + 1 < first || to > log.back()?.0 || from > to {
        return None;
    }
    let start = usize::try_from(from + 1 - first).ok()?;
    let end = usize::try_from(to + 1 - first).ok()?;
    let mut rows = Vec::new();
    for (_, touches) in log.range(start..end) {
        rows.extend_from_slice(touches.as_deref()?);
        if rows.len() > MOST_ROWS {
            return None;
        }
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit numbered `number` of `rows` new deal rows on `conn`.
    fn commit(conn: &Connection, number: i64, rows: usize) {
        begin();
        conn.execute_batch("BEGIN").unwrap();
        for _ in 0..rows {
            conn.execute("INSERT INTO deals DEFAULT VALUES", [])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        committed(conn, number);
    }

    #[test]
    fn commits_are_known_while_they_chain_and_are_few_enough() {
        let dir = std::env::temp_dir().join(crate::ids::new_id("touched"));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("t.sqlite")).unwrap();
        conn.execute_batch("CREATE TABLE deals (x)").unwrap();
        watch(&conn).unwrap();
        commit(&conn, 1, 2);
        commit(&conn, 2, 1);
        let rows = since(&conn, 0, 2).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows
            .iter()
            .all(|t| t.table == Table::Deals && t.change == Change::Inserted));
        assert_eq!(since(&conn, 1, 2).unwrap().len(), 1, "commit 2 alone");
        assert_eq!(since(&conn, 2, 2).unwrap().len(), 0, "nothing since itself");
        assert!(since(&conn, 2, 3).is_none(), "commit 3 is not known yet");
        commit(&conn, 3, MOST_ROWS + 1);
        assert!(
            since(&conn, 2, 3).is_none(),
            "too many rows: read everything"
        );
        commit(&conn, 4, 1);
        assert_eq!(since(&conn, 3, 4).unwrap().len(), 1);
        commit(&conn, 6, 1);
        assert!(
            since(&conn, 4, 6).is_none(),
            "commit 5 was another process's"
        );
        assert_eq!(since(&conn, 5, 6).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
