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
}
