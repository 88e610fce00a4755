//! Numbered schema steps from `schema.sql`, tracked by `PRAGMA user_version`.

use rusqlite::Connection;

/// The whole schema file, compiled into the binary.
const SCHEMA: &str = include_str!("../../schema.sql");
const MARKER: &str = "-- migration: ";

/// The schema version this binary writes.
pub const LATEST_VERSION: i64 = steps_count();

const fn steps_count() -> i64 {
    // Counts the markers at compile time so the constant can never drift from the file.
    let bytes = SCHEMA.as_bytes();
    let marker = MARKER.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i + marker.len() <= bytes.len() {
        let mut j = 0;
        while j < marker.len() && bytes[i + j] == marker[j] {
            j += 1;
        }
        if j == marker.len() {
            count += 1;
        }
        i += 1;
    }
    count
}

/// Why a migration failed.
#[derive(Debug)]
pub enum MigrateError {
    /// The file was written by a newer Clozup.
    TooNew {
        /// The file's version.
        found: i64,
    },
    /// A step failed; the database is left at the step before it.
    Step {
        /// The failing step.
        version: i64,
        /// SQLite's complaint.
        source: rusqlite::Error,
    },
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooNew { found } => write!(
                f,
                "the database schema is version {found}, newer than this clozup understands \
                 ({LATEST_VERSION}); run a newer clozup on it (refusing to touch it)"
            ),
            Self::Step { version, source } => {
                write!(f, "database migration step {version} failed: {source}")
            }
        }
    }
}

impl std::error::Error for MigrateError {}

/// The step that put search entries in a queue written before each commit.
const SEARCH_QUEUE_STEP: i64 = 10;

/// The steps of `schema.sql`, as (version, sql).
fn steps() -> Vec<(i64, &'static str)> {
    SCHEMA
        .split(MARKER)
        .skip(1)
        .map(|chunk| {
            let (number, sql) = chunk.split_once('\n').unwrap_or((chunk, ""));
            (
                number
                    .trim()
                    .parse()
                    .expect("schema.sql: bad migration number"),
                sql,
            )
        })
        .collect()
}

/// Applies every step above the database's `user_version`, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let step_err = |version| move |source| MigrateError::Step { version, source };
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(step_err(0))?;
    if current > LATEST_VERSION {
        return Err(MigrateError::TooNew { found: current });
    }
    for (version, sql) in steps() {
        if version <= current {
            continue;
        }
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(step_err(version))?;
        tx.execute_batch(sql).map_err(step_err(version))?;
        if version >= SEARCH_QUEUE_STEP {
            // Like every write transaction: what the step changed gets its search entries now.
            super::search_queue::flush_search_queue(&tx).map_err(step_err(version))?;
        }
        tx.pragma_update(None, "user_version", version)
            .map_err(step_err(version))?;
        tx.commit().map_err(step_err(version))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_one_to_latest() {
        let numbers: Vec<i64> = steps().iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, (1..=LATEST_VERSION).collect::<Vec<_>>());
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(err.to_string().contains("newer than this clozup"), "{err}");
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST_VERSION);
    }

    #[test]
    fn the_search_index_merges_at_16_segments_a_level() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let setting = |name: &str| -> i64 {
            conn.query_row(
                "SELECT v FROM search_index_config WHERE k = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!((setting("automerge"), setting("crisismerge")), (16, 64));
    }

    /// Organization `o1` with pipeline `p1` and its open stage `s1`, for deals to stand in.
    const ONE_PIPELINE: &str =
        "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ('o1', 'A', 0, 0);
         INSERT INTO pipelines (id, org_id, name, created_at, updated_at) VALUES ('p1', 'o1', 'P', 0, 0);
         INSERT INTO stages (id, org_id, pipeline_id, name, position, probability, kind, created_at, updated_at)
             VALUES ('s1', 'o1', 'p1', 'S', 1, 10, 'open', 0, 0);";

    /// An in-memory database migrated up to step `last` only, to fill before the later steps.
    fn database_at_step(last: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (version, sql) in steps().into_iter().filter(|(v, _)| *v <= last) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
        }
        conn
    }

    /// Per organization: open deals and their value.
    type Totals = Vec<(String, i64, i64)>;

    /// What `open_deal_totals` says against what a scan of the deals says.
    fn totals_and_scan(conn: &Connection) -> (Totals, Totals) {
        let rows = |sql: &str| {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
            rows.collect::<rusqlite::Result<Vec<_>>>().unwrap()
        };
        (
            rows(
                "SELECT org_id, deals, value FROM open_deal_totals WHERE deals > 0 ORDER BY org_id",
            ),
            rows(
                "SELECT org_id, COUNT(*), sum(value) FROM deals WHERE status = 'open'
                 GROUP BY org_id ORDER BY org_id",
            ),
        )
    }

    #[test]
    fn open_deal_totals_are_backfilled_and_kept_by_the_triggers() {
        let mut conn = database_at_step(4);
        conn.execute_batch(
            "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ('o1', 'A', 0, 0), ('o2', 'B', 0, 0);
             INSERT INTO pipelines (id, org_id, name, created_at, updated_at) VALUES ('p1', 'o1', 'P', 0, 0), ('p2', 'o2', 'P', 0, 0);
             INSERT INTO stages (id, org_id, pipeline_id, name, position, probability, kind, created_at, updated_at)
                 VALUES ('s1', 'o1', 'p1', 'S', 1, 10, 'open', 0, 0), ('s2', 'o2', 'p2', 'S', 1, 10, 'open', 0, 0);",
        )
        .unwrap();
        let deal = |conn: &Connection, id: &str, org: &str, value: i64, status: &str| {
            let stage = if org == "o1" { "s1" } else { "s2" };
            let pipeline = if org == "o1" { "p1" } else { "p2" };
            conn.execute(
                "INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status,
                                    stage_entered_at, created_at, updated_at)
                 VALUES (?1, ?2, 'D', ?3, 'USD', ?4, ?5, ?6, 0, 0, 0)",
                rusqlite::params![id, org, value, pipeline, stage, status],
            )
            .unwrap();
        };
        // Deals written before the totals existed are counted by the backfill.
        deal(&conn, "d1", "o1", 100, "open");
        deal(&conn, "d2", "o1", 300, "won");
        deal(&conn, "d3", "o2", 50, "open");
        migrate(&mut conn).unwrap();
        let (totals, scan) = totals_and_scan(&conn);
        assert_eq!(totals, vec![("o1".into(), 1, 100), ("o2".into(), 1, 50)]);
        assert_eq!(totals, scan);
        // Every kind of change afterwards keeps them equal to a scan.
        deal(&conn, "d4", "o1", 700, "open");
        deal(&conn, "d5", "o2", 20, "lost");
        for change in [
            "UPDATE deals SET value = 900 WHERE id = 'd4'",
            "UPDATE deals SET status = 'won' WHERE id = 'd1'",
            "UPDATE deals SET status = 'open' WHERE id = 'd2'",
            "UPDATE deals SET status = 'open', value = 25 WHERE id = 'd5'",
            "UPDATE deals SET title = 'renamed' WHERE id = 'd3'",
            "DELETE FROM deals WHERE id = 'd3'",
            "DELETE FROM deals WHERE id = 'd1'",
        ] {
            conn.execute_batch(change).unwrap();
            let (totals, scan) = totals_and_scan(&conn);
            assert_eq!(totals, scan, "after {change}");
        }
        let (totals, _) = totals_and_scan(&conn);
        assert_eq!(totals, vec![("o1".into(), 2, 1200), ("o2".into(), 1, 25)]);
    }

    /// Per stage and currency: deals and value, as `stage_totals` keeps them and as a scan
    /// counts them.
    fn stage_totals_and_scan(conn: &Connection) -> (Totals, Totals) {
        let rows = |sql: &str| {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
            rows.collect::<rusqlite::Result<Vec<_>>>().unwrap()
        };
        (
            rows(
                "SELECT stage_id || ' ' || currency, deals, value FROM stage_totals
                 WHERE deals > 0 ORDER BY 1",
            ),
            rows(
                "SELECT stage_id || ' ' || currency, COUNT(*), sum(value) FROM deals
                 GROUP BY stage_id, currency ORDER BY 1",
            ),
        )
    }

    #[test]
    fn stage_totals_are_backfilled_and_kept_by_the_triggers() {
        let mut conn = database_at_step(17);
        conn.execute_batch(
            "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ('o1', 'A', 0, 0);
             INSERT INTO pipelines (id, org_id, name, created_at, updated_at) VALUES ('p1', 'o1', 'P', 0, 0);
             INSERT INTO stages (id, org_id, pipeline_id, name, position, probability, kind, created_at, updated_at)
                 VALUES ('s1', 'o1', 'p1', 'S1', 1, 10, 'open', 0, 0), ('s2', 'o1', 'p1', 'S2', 2, 50, 'open', 0, 0);",
        )
        .unwrap();
        let deal = |conn: &Connection, id: &str, stage: &str, value: i64, currency: &str| {
            conn.execute(
                "INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status,
                                    stage_entered_at, created_at, updated_at)
                 VALUES (?1, 'o1', 'D', ?2, ?3, 'p1', ?4, 'open', 0, 0, 0)",
                rusqlite::params![id, value, currency, stage],
            )
            .unwrap();
        };
        deal(&conn, "d1", "s1", 100, "USD");
        deal(&conn, "d2", "s1", 300, "EUR");
        migrate(&mut conn).unwrap();
        let (totals, scan) = stage_totals_and_scan(&conn);
        assert_eq!(totals.len(), 2);
        assert_eq!(totals, scan);
        deal(&conn, "d3", "s2", 700, "USD");
        for change in [
            "UPDATE deals SET stage_id = 's2' WHERE id = 'd1'",
            "UPDATE deals SET value = 350 WHERE id = 'd2'",
            "UPDATE deals SET currency = 'USD' WHERE id = 'd2'",
            "UPDATE deals SET stage_id = 's1', value = 1 WHERE id = 'd3'",
            "UPDATE deals SET title = 'renamed' WHERE id = 'd3'",
            "DELETE FROM deals WHERE id = 'd1'",
        ] {
            conn.execute_batch(change).unwrap();
            let (totals, scan) = stage_totals_and_scan(&conn);
            assert_eq!(totals, scan, "after {change}");
        }
        conn.execute_batch(
            "DELETE FROM deals WHERE stage_id = 's2'; DELETE FROM stages WHERE id = 's2'",
        )
        .unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM stage_totals WHERE stage_id = 's2'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "a deleted stage leaves no totals behind");
    }

    /// Per deal, in id order: its six facts and its rowid.
    type Facts = Vec<Vec<Option<i64>>>;

    /// Every deal's kept facts (migration 8) against the same facts counted from its tasks and
    /// activities with a different query (window functions, not the triggers' LIMIT/OFFSET).
    fn facts_and_count(conn: &Connection) -> (Facts, Facts) {
        let rows = |sql: &str| {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([], |r| (0..7).map(|i| r.get(i)).collect())
                .unwrap();
            rows.collect::<rusqlite::Result<Facts>>().unwrap()
        };
        (
            rows(
                "SELECT open_tasks, first_due_at, second_due_at, third_due_at, last_reply_at,
                        last_open_at, rowid FROM deals ORDER BY id",
            ),
            rows(
                "WITH due AS (
                     SELECT deal_id, due_at,
                            row_number() OVER (PARTITION BY deal_id ORDER BY due_at) AS n
                     FROM tasks WHERE status = 'open' AND due_at IS NOT NULL)
                 SELECT (SELECT count(*) FROM tasks WHERE deal_id = d.id AND status = 'open'),
                        (SELECT due_at FROM due WHERE deal_id = d.id AND n = 1),
                        (SELECT due_at FROM due WHERE deal_id = d.id AND n = 2),
                        (SELECT due_at FROM due WHERE deal_id = d.id AND n = 3),
                        (SELECT max(occurred_at) FROM activities
                          WHERE deal_id = d.id AND type = 'email_received'),
                        (SELECT max(occurred_at) FROM activities
                          WHERE deal_id = d.id AND type = 'email_opened'),
                        d.rowid
                 FROM deals d ORDER BY d.id",
            ),
        )
    }

    #[test]
    fn deal_facts_are_backfilled_and_kept_by_the_triggers() {
        let mut conn = database_at_step(7);
        conn.execute_batch(ONE_PIPELINE).unwrap();
        conn.execute_batch(
            "INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status,
                                stage_entered_at, created_at, updated_at)
                 VALUES ('d1', 'o1', 'D', 1, 'USD', 'p1', 's1', 'open', 0, 0, 0),
                        ('d2', 'o1', 'D', 1, 'USD', 'p1', 's1', 'open', 0, 0, 0),
                        ('d3', 'o1', 'D', 1, 'USD', 'p1', 's1', 'won', 0, 0, 0);",
        )
        .unwrap();
        let task = |id: &str, deal: &str, due: Option<i64>, status: &str| {
            format!(
                "INSERT INTO tasks (id, org_id, title, status, priority, due_at, deal_id, created_at, updated_at)
                 VALUES ('{id}', 'o1', 'T', '{status}', 'medium', {}, '{deal}', 0, 0)",
                due.map_or("NULL".into(), |d| d.to_string())
            )
        };
        let activity = |id: &str, deal: &str, kind: &str, at: i64| {
            format!(
                "INSERT INTO activities (id, org_id, type, deal_id, occurred_at, created_at)
                 VALUES ('{id}', 'o1', '{kind}', '{deal}', {at}, 0)"
            )
        };
        // Written before the facts existed: counted by the backfill.
        for sql in [
            task("t1", "d1", Some(50), "open"),
            task("t2", "d1", Some(10), "open"),
            task("t3", "d1", None, "open"),
            task("t4", "d1", Some(5), "completed"),
            activity("a1", "d1", "email_received", 100),
            activity("a2", "d1", "email_opened", 90),
            activity("a3", "d2", "call", 300),
        ] {
            conn.execute_batch(&sql).unwrap();
        }
        migrate(&mut conn).unwrap();
        let (kept, counted) = facts_and_count(&conn);
        assert_eq!(
            kept[0][..6],
            [Some(3), Some(10), Some(50), None, Some(100), Some(90)]
        );
        assert_eq!(kept, counted);
        // Every kind of change afterwards keeps them equal to a count.
        for change in [
            task("t5", "d1", Some(30), "open"),
            task("t6", "d1", Some(70), "open"),
            task("t7", "d1", Some(1), "open"),
            task("t8", "d2", Some(20), "open"),
            task("t9", "d3", Some(20), "completed"),
            "UPDATE tasks SET status = 'completed' WHERE id = 't7'".into(),
            "UPDATE tasks SET due_at = 5 WHERE id = 't6'".into(),
            "UPDATE tasks SET due_at = NULL WHERE id = 't2'".into(),
            "UPDATE tasks SET status = 'open' WHERE id = 't4'".into(),
            "UPDATE tasks SET deal_id = 'd2' WHERE id = 't5'".into(),
            "UPDATE tasks SET title = 'renamed' WHERE id = 't1'".into(),
            "DELETE FROM tasks WHERE id = 't6'".into(),
            activity("a4", "d1", "email_received", 80),
            activity("a5", "d1", "email_received", 120),
            activity("a6", "d2", "email_opened", 400),
            "UPDATE activities SET occurred_at = 10 WHERE id = 'a5'".into(),
            "UPDATE activities SET type = 'email_opened' WHERE id = 'a3'".into(),
            "UPDATE activities SET deal_id = 'd1' WHERE id = 'a6'".into(),
            "DELETE FROM activities WHERE id = 'a1'".into(),
            "DELETE FROM deals WHERE id = 'd2'".into(),
        ] {
            conn.execute_batch(&change).unwrap();
            let (kept, counted) = facts_and_count(&conn);
            assert_eq!(kept, counted, "after {change}");
        }
        let (kept, _) = facts_and_count(&conn);
        assert_eq!(
            kept[0][..6],
            [Some(4), Some(5), Some(50), None, Some(80), Some(400)]
        );
    }

    /// A deal's and a lead's `last_activity_at` follow the activities logged on them: forward
    /// only, never past the moment the activity was logged.
    #[test]
    fn last_activity_follows_activities_forward_only() {
        let mut conn = database_at_step(12);
        conn.execute_batch(ONE_PIPELINE).unwrap();
        conn.execute_batch(
            "INSERT INTO leads (id, org_id, status, created_at, updated_at) VALUES ('l1', 'o1', 'new', 0, 0);
             INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status,
                                stage_entered_at, lead_id, created_at, updated_at)
                 VALUES ('d1', 'o1', 'D', 1, 'USD', 'p1', 's1', 'open', 0, 'l1', 0, 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let last = |conn: &Connection| -> (Option<i64>, Option<i64>) {
            conn.query_row(
                "SELECT (SELECT last_activity_at FROM deals WHERE id = 'd1'),
                        (SELECT last_activity_at FROM leads WHERE id = 'l1')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let log = |conn: &Connection, id: &str, deal: &str, lead: &str, at: i64, logged: i64| {
            conn.execute(
                "INSERT INTO activities (id, org_id, type, deal_id, lead_id, occurred_at, created_at)
                 VALUES (?1, 'o1', 'call', nullif(?2, ''), nullif(?3, ''), ?4, ?5)",
                rusqlite::params![id, deal, lead, at, logged],
            )
            .unwrap();
        };
        log(&conn, "a1", "d1", "", 100, 150);
        assert_eq!(last(&conn), (Some(100), None));
        log(&conn, "a2", "", "l1", 500, 200); // dated ahead: counts from when it was logged
        assert_eq!(last(&conn), (Some(100), Some(200)));
        log(&conn, "a3", "d1", "l1", 50, 300); // older than what is there: nothing moves back
        assert_eq!(last(&conn), (Some(100), Some(200)));
        log(&conn, "a4", "d1", "l1", 250, 300);
        assert_eq!(last(&conn), (Some(250), Some(250)));
    }

    /// Entries indexed by the old triggers (straight into search_index) stay findable after the
    /// queue's step, and later changes through the queue replace and remove them.
    #[test]
    fn search_entries_of_before_the_queue_are_replaced_and_removed_through_it() {
        let mut conn = database_at_step(SEARCH_QUEUE_STEP - 1);
        conn.execute_batch(
            "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ('o1', 'O', 0, 0);
             INSERT INTO companies (id, org_id, name, created_at, updated_at)
             VALUES ('c1', 'o1', 'Oldname', 0, 0), ('c2', 'o1', 'Doomed', 0, 0),
                    ('c3', 'o1', 'Steady', 0, 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let indexed = |conn: &Connection| {
            let mut s = conn
                .prepare("SELECT object_id, title FROM search_index ORDER BY object_id")
                .unwrap();
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            rows.collect::<Result<Vec<(String, String)>, _>>().unwrap()
        };
        let entry = |id: &str, title: &str| (id.to_string(), title.to_string());
        assert_eq!(
            indexed(&conn),
            [
                entry("c1", "Oldname"),
                entry("c2", "Doomed"),
                entry("c3", "Steady")
            ]
        );
        let tx = conn.transaction().unwrap();
        tx.execute_batch(
            "UPDATE companies SET name = 'Newname' WHERE id = 'c1';
             DELETE FROM companies WHERE id = 'c2';",
        )
        .unwrap();
        crate::db::search_queue::flush_search_queue(&tx).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            indexed(&conn),
            [entry("c1", "Newname"), entry("c3", "Steady")]
        );
        let old: i64 = conn
            .query_row(
                "SELECT count(*) FROM search_index WHERE search_index MATCH 'oldname OR doomed'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0);
    }
}
