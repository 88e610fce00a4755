//! Group commit: many concurrent writes share transactions, yet each is its own all-or-nothing
//! unit, answered only once committed.

use std::collections::BTreeSet;

use crate::common::TempDir;
use clozup::db::{Db, DbOptions, Tx};
use clozup::domain::error::DomainError;
use rusqlite::params;

/// What write number `i` does after inserting its own row: most keep it; some fail in code,
/// some break a constraint, some panic. Whatever fails must leave nothing behind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Keep,
    Refuse,
    Conflict,
    Panic,
}

fn fate(i: i64) -> Fate {
    match i % 10 {
        3 => Fate::Refuse,
        5 => Fate::Conflict,
        7 if i % 20 == 7 => Fate::Panic,
        _ => Fate::Keep,
    }
}

/// Runs `write(tx, i)` for every `i` of `items` as concurrent writes, so they share group
/// commits; their answers, in the order of `items`.
fn write_concurrently<T: Send + 'static>(
    db: &Db,
    items: impl IntoIterator<Item = i64>,
    write: fn(&Tx<'_>, i64) -> Result<T, DomainError>,
) -> Vec<Result<T, DomainError>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = items
            .into_iter()
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.write(move |tx| write(tx, i)).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    })
}

/// Runs `sql` in one write transaction of its own.
fn execute(db: &Db, sql: &'static str) {
    db.blocking()
        .write(|tx| Ok(tx.execute_batch(sql)?))
        .unwrap();
}

#[test]
fn concurrent_writes_are_each_all_or_nothing() {
    let dir = TempDir::new();
    let db = Db::open(&dir.path().join("g.sqlite"), &DbOptions::default()).unwrap();
    execute(
        &db,
        "CREATE TABLE t (x INTEGER PRIMARY KEY, note TEXT NOT NULL);
         CREATE TABLE side (x INTEGER NOT NULL);
         INSERT INTO t VALUES (-1, 'taken');",
    );

    const WRITES: i64 = 2_000;
    let answers = write_concurrently(&db, 0..WRITES, |tx, i| {
        // Two statements, so a failure after the first must undo it.
        tx.execute("INSERT INTO side (x) VALUES (?1)", params![i])?;
        tx.execute("INSERT INTO t VALUES (?1, 'w')", params![i])?;
        match fate(i) {
            Fate::Keep => Ok(i),
            Fate::Refuse => Err(DomainError::Internal(format!("refused {i}"))),
            Fate::Conflict => {
                tx.execute("INSERT INTO t VALUES (-1, 'dup')", [])?;
                Ok(i)
            }
            Fate::Panic => panic!("write {i} panics on purpose"),
        }
    });

    for (i, answer) in (0..WRITES).zip(&answers) {
        match fate(i) {
            Fate::Keep => assert_eq!(answer.as_ref().ok(), Some(&i), "write {i}"),
            Fate::Refuse => {
                assert!(
                    matches!(answer, Err(DomainError::Internal(m)) if m == &format!("refused {i}")),
                    "write {i}: {answer:?}"
                )
            }
            Fate::Conflict | Fate::Panic => assert!(answer.is_err(), "write {i}: {answer:?}"),
        }
    }
    let kept: Vec<i64> = (0..WRITES).filter(|&i| fate(i) == Fate::Keep).collect();
    let read = |sql: &'static str| {
        db.blocking()
            .read(move |c| {
                let mut s = c.prepare(sql)?;
                let rows = s.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .unwrap()
    };
    assert_eq!(read("SELECT x FROM t WHERE x >= 0 ORDER BY x"), kept);
    assert_eq!(read("SELECT x FROM side ORDER BY x"), kept);
    assert_eq!(read("SELECT x FROM t WHERE x < 0"), vec![-1]);

    // What was acknowledged is on disk: a fresh connection on the file sees it.
    drop(db);
    let conn = rusqlite::Connection::open(dir.path().join("g.sqlite")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t WHERE x >= 0", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, kept.len() as i64);
}

/// A list's total is counted once per commit: a snapshot of the same commit gets it again
/// (even when the file was changed behind clozup's back, which is how this test can tell), and
/// any commit of clozup's, from this handle, from another handle on the same file, or from a
/// group commit, makes it count again.
#[test]
fn totals_are_counted_once_per_commit() {
    let dir = TempDir::new();
    let path = dir.path().join("t.sqlite");
    let db = Db::open(&path, &DbOptions::default()).unwrap();
    execute(
        &db,
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);",
    );
    let total = |db: &Db| {
        db.blocking()
            .read(|c| {
                Ok(clozup::db::totals::count(
                    c,
                    "SELECT COUNT(*) FROM t WHERE x > ?",
                    &[0.into()],
                )?)
            })
            .unwrap()
    };
    assert_eq!(total(&db), 2);
    // A change that bypasses clozup bumps no commit number: the remembered total stands.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("INSERT INTO t VALUES (3)", []).unwrap();
    assert_eq!(
        total(&db),
        2,
        "counted again although no commit of clozup's happened"
    );
    // Other parameters are another total.
    let other = db
        .blocking()
        .read(|c| {
            Ok(clozup::db::totals::count(
                c,
                "SELECT COUNT(*) FROM t WHERE x > ?",
                &[1.into()],
            )?)
        })
        .unwrap();
    assert_eq!(other, 2);
    // A commit through this handle counts again.
    db.blocking()
        .write(|tx| Ok(tx.execute("INSERT INTO t VALUES (4)", [])?))
        .unwrap();
    assert_eq!(total(&db), 4);
    // So does one through another handle on the same file (another clozup process).
    let second = Db::open(&path, &DbOptions::default()).unwrap();
    second
        .blocking()
        .write(|tx| Ok(tx.execute("INSERT INTO t VALUES (5)", [])?))
        .unwrap();
    assert_eq!(total(&db), 5);
    // And a group commit from the writer thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(db.write(|tx| Ok(tx.execute("INSERT INTO t VALUES (6)", [])?)))
        .unwrap();
    assert_eq!(total(&db), 6);
    // A group whose every write was refused changed nothing and keeps the total.
    let refused: Result<(), _> = rt.block_on(db.write(|tx| {
        tx.execute("INSERT INTO t VALUES (7)", [])?;
        Err(DomainError::Internal("refused".into()))
    }));
    assert!(refused.is_err());
    assert_eq!(total(&db), 6);
}

/// What write `i` does to the company it creates, in the same write.
fn company_fate(i: i64) -> (&'static str, Option<String>) {
    match i % 5 {
        0 => ("renamed", Some(format!("Renamed{i} Ltd"))),
        1 => ("deleted", None),
        2 => ("refused", None),
        _ => ("kept", Some(format!("Fresh{i} Ltd"))),
    }
}

/// Search entries are queued by the triggers and written to the index once per commit (FTS5
/// writes a segment at every savepoint otherwise): within a group each write still counts on
/// its own (created, renamed, deleted in the same write, or refused and undone), a later group
/// changes what an earlier one indexed, and nothing stays queued.
#[test]
fn search_entries_follow_every_write_of_a_group() {
    let dir = TempDir::new();
    let db = Db::open(&dir.path().join("s.sqlite"), &DbOptions::default()).unwrap();
    execute(
        &db,
        "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ('o1', 'O', 0, 0)",
    );
    const WRITES: i64 = 400;
    let answers: Vec<bool> = write_concurrently(&db, 0..WRITES, |tx, i| {
        tx.execute(
            "INSERT INTO companies (id, org_id, name, created_at, updated_at)
             VALUES (?1, 'o1', ?2, 0, 0)",
            params![format!("c{i}"), format!("Fresh{i} Ltd")],
        )?;
        match company_fate(i).0 {
            "renamed" => {
                tx.execute(
                    "UPDATE companies SET name = ?2 WHERE id = ?1",
                    params![format!("c{i}"), format!("Renamed{i} Ltd")],
                )?;
            }
            "deleted" => {
                tx.execute("DELETE FROM companies WHERE id = ?1", [format!("c{i}")])?;
            }
            "refused" => return Err(DomainError::Internal("refused".into())),
            _ => {}
        }
        Ok(())
    })
    .iter()
    .map(Result::is_ok)
    .collect();
    for (i, ok) in (0..WRITES).zip(&answers) {
        assert_eq!(*ok, company_fate(i).0 != "refused", "write {i}");
    }
    let indexed = |db: &Db| {
        db.blocking()
            .read(|c| {
                let mut s = c.prepare("SELECT object_id, title FROM search_index")?;
                let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<BTreeSet<(String, String)>, _>>()?)
            })
            .unwrap()
    };
    let expected: BTreeSet<(String, String)> = (0..WRITES)
        .filter_map(|i| company_fate(i).1.map(|title| (format!("c{i}"), title)))
        .collect();
    assert_eq!(indexed(&db), expected);

    // A later group renames and deletes what earlier groups indexed.
    let kept = (0..WRITES).filter(|i| company_fate(*i).0 == "kept");
    for answer in write_concurrently(&db, kept, |tx, i| {
        if i % 2 == 0 {
            tx.execute("DELETE FROM companies WHERE id = ?1", [format!("c{i}")])?;
        } else {
            tx.execute(
                "UPDATE companies SET name = 'Later Inc' WHERE id = ?1",
                [format!("c{i}")],
            )?;
        }
        Ok(())
    }) {
        answer.unwrap();
    }
    let expected: BTreeSet<(String, String)> = (0..WRITES)
        .filter_map(|i| match company_fate(i) {
            ("kept", _) if i % 2 == 0 => None,
            ("kept", _) => Some((format!("c{i}"), "Later Inc".to_string())),
            (_, title) => title.map(|t| (format!("c{i}"), t)),
        })
        .collect();
    assert_eq!(indexed(&db), expected);
    let (queued, matched, later): (i64, i64, i64) = db
        .blocking()
        .read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT count(*) FROM search_queue),
                        (SELECT count(*) FROM search_index WHERE search_index MATCH 'renamed*'),
                        (SELECT count(*) FROM search_index WHERE search_index MATCH 'later')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap();
    assert_eq!(queued, 0, "entries left in the queue");
    assert_eq!(matched, WRITES / 5);
    assert_eq!(
        later,
        expected.iter().filter(|(_, t)| t == "Later Inc").count() as i64
    );
    execute(
        &db,
        "INSERT INTO search_index (search_index) VALUES ('integrity-check')",
    );
}
