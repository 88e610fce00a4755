//! Upgrades keep data: every database file committed under `tests/fixtures/schema/` (one per
//! schema version, written by `tests/fixtures/schema/make.py` when the version was the latest)
//! is opened by today's binary, migrated, and read back, record by record and through the API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use serde_json::json;

use crate::common::binary::{get, serve};
use crate::common::TempDir;

/// Every row of every table (but SQLite's own and the search index's shadow tables), by table:
/// each row as its (column, value) pairs, sorted.
fn every_row(db: &Path) -> BTreeMap<String, Vec<Vec<(String, Value)>>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'search_index_%'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
            let mut rows: Vec<Vec<(String, Value)>> = stmt
                .query_map([], |r| {
                    (0..columns.len())
                        .map(|i| Ok((columns[i].clone(), r.get::<_, Value>(i)?)))
                        .collect()
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            (table, rows)
        })
        .collect()
}

fn fixtures() -> Vec<(i64, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema");
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name
                .strip_prefix('v')?
                .strip_suffix(".sqlite")?
                .parse()
                .ok()?;
            Some((version, e.path()))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn the_latest_schema_has_its_fixture() {
    let latest = clozup::db::LATEST_VERSION;
    assert!(
        fixtures().iter().any(|(v, _)| *v == latest),
        "schema version {latest} has no fixture: run `cargo build && tests/fixtures/schema/make.py` \
         and commit tests/fixtures/schema/v{latest}.sqlite and .key"
    );
}

#[test]
fn every_fixture_is_migrated_and_read_back_record_by_record_and_through_the_api() {
    for (version, fixture) in fixtures() {
        let dir = TempDir::new();
        let db = dir.path().join("crm.sqlite");
        std::fs::copy(&fixture, &db).unwrap();
        let before = every_row(&db);
        let key = std::fs::read_to_string(fixture.with_extension("key")).unwrap();
        let key = key.trim();

        // Today's binary opens it: migrated to the latest version, and every record of before
        // still there with every value it had, in each table and column the schema still has.
        let opened =
            clozup::db::Db::open(&db, &clozup::config::ServeConfig::with_db(&db).db_options())
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        drop(opened);
        let version_now: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version_now, clozup::db::LATEST_VERSION);
        let after = every_row(&db);
        for (table, rows) in &before {
            let kept = after
                .get(table)
                .unwrap_or_else(|| panic!("v{version}: table {table} is gone"));
            for row in rows {
                let found = kept.iter().any(|now| {
                    row.iter().all(|(column, value)| {
                        now.iter()
                            .find(|(c, _)| c == column)
                            .is_none_or(|(_, v)| v == value)
                    })
                });
                assert!(found, "v{version}: {table} lost or changed {row:?}");
            }
        }

        // And serves it: the same key, the same records, the owner's password.
        let s = serve(&db, &[]);
        let leads = before["leads"].len();
        let (status, body) = get(&s.addr, "/api/v1/leads?per_page=1", key);
        assert_eq!(status, 200, "v{version}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["meta"]["total"], json!(leads), "v{version}");
        for (table, path) in [
            ("deals", "/api/v1/deals"),
            ("companies", "/api/v1/companies"),
            ("notes", "/api/v1/notes"),
        ] {
            for row in &before[table] {
                let id = match &row.iter().find(|(c, _)| c == "id").unwrap().1 {
                    Value::Text(id) => id.clone(),
                    other => panic!("{other:?}"),
                };
                let (status, body) = get(&s.addr, &format!("{path}/{id}"), key);
                assert_eq!(status, 200, "v{version} {table} {id}: {body}");
            }
        }
        let (status, _) = crate::common::binary::post(
            &s.addr,
            "/auth/login",
            "",
            json!({"email": "owner@fixture.example", "password": "fixture-password-1"}),
        );
        assert_eq!(
            status, 200,
            "v{version}: the owner's password still signs in"
        );
    }
}
