//! Backups: `POST /admin/backup` and `clozup backup` take a consistent snapshot while writes
//! go on, the snapshot passes SQLite's own checks, and a server started on it serves its data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::binary::{get, key_in, post, serve, sigterm, wait_exit, BIN};
use crate::common::TestServer;
use serde_json::{json, Value};

/// Company ids in a database file, straight from SQLite, after its integrity checks.
fn checked_companies(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let fk_problems: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk_problems, 0);
    let mut stmt = conn
        .prepare("SELECT id FROM companies ORDER BY id")
        .unwrap();
    let ids = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<String>>>()
        .unwrap();
    ids
}

#[test]
fn a_backup_taken_while_writes_continue_is_consistent_and_serves_the_same_data() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    for i in 0..20 {
        s.post("/companies", &k, json!({"name": format!("Before {i}")}))
            .data(201);
    }
    // A writer keeps creating companies during the backups.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        let (base, key) = (s.base.clone(), k.clone());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut r = agent
                    .post(format!("{base}/api/v1/companies"))
                    .header("authorization", format!("Bearer {key}"))
                    .send_json(json!({"name": format!("During {i}")}))
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let v: Value = r.body_mut().read_json().unwrap();
                acknowledged
                    .lock()
                    .unwrap()
                    .push(v["data"]["id"].as_str().unwrap().to_string());
                i += 1;
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 5 {
        std::thread::sleep(Duration::from_millis(5));
    }

    // Through the API.
    let b = s.post("/admin/backup", &k, json!({})).data(201);
    assert_eq!(b["integrity"], "ok");
    let api_file = std::path::PathBuf::from(b["file"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&api_file).unwrap().len(),
        b["bytes"].as_u64().unwrap()
    );
    // Through the CLI, on the same live database.
    let cli_file = s.dir.path().join("cli-backup.sqlite");
    let backup_cli = || {
        std::process::Command::new(BIN)
            .args(["backup", "--db"])
            .arg(s.dir.path().join("crm.sqlite"))
            .arg("--out")
            .arg(&cli_file)
            .output()
            .unwrap()
    };
    let out = backup_cli();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second run never overwrites a backup.
    let again = backup_cli();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let live = checked_companies(&s.dir.path().join("crm.sqlite"));
    for file in [&api_file, &cli_file] {
        let snap = checked_companies(file);
        // The 20 from before, plus some of the writes that raced it — each one complete.
        assert!(snap.len() >= 25, "{} rows", snap.len());
        assert!(snap.iter().all(|id| live.contains(id)));
    }

    // A server started on the snapshot serves the same data, to the same key.
    let restored = serve(&cli_file, &[]);
    let snap = checked_companies(&cli_file);
    let (status, body) = get(
        &restored.addr,
        "/api/v1/companies?per_page=1&sort=created_at",
        &k,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["meta"]["total"].as_u64().unwrap() as usize, snap.len());
    assert_eq!(v["data"][0]["name"], "Before 0");

    // Backups are for admins.
    let writer_key = s.key_with(&["read", "write"]);
    s.post("/admin/backup", &writer_key, json!({}))
        .error(403, "forbidden");
}

/// `clozup restore` with its arguments; (succeeded, stderr).
fn restore(snapshot: &std::path::Path, db: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .arg("restore")
        .arg(snapshot)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_snapshot_taken_under_write_load_is_restored_in_place_and_served() {
    let dir = crate::common::TempDir::new();
    let db = dir.path().join("crm.sqlite");
    let s = serve(&db, &["--rate-limit", "off"]);
    let key = key_in(&s.stderr).expect("first-run key");
    for i in 0..10 {
        let (status, _) = post(
            &s.addr,
            "/companies",
            &key,
            json!({"name": format!("Kept {i}")}),
        );
        assert_eq!(status, 201);
    }
    // Writers go on while the snapshot is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, addr, key) = (stop.clone(), s.addr.clone(), key.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = post(
                    &addr,
                    "/companies",
                    &key,
                    json!({"name": format!("Raced {i}")}),
                );
                assert_eq!(status, 201);
                i += 1;
            }
            i
        })
    };
    let snapshot = dir.path().join("snap.sqlite");
    let out = std::process::Command::new(BIN)
        .args(["backup", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&snapshot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let in_snapshot = checked_companies(&snapshot);

    // Never under a running server.
    let (ok, why) = restore(&snapshot, &db);
    assert!(!ok);
    assert!(why.contains("is using") && why.contains("stop it"), "{why}");
    stop.store(true, Ordering::Relaxed);
    let raced = writer.join().unwrap();
    // Written after the snapshot: restoring goes back before them.
    let (status, _) = post(
        &s.addr,
        "/companies",
        &key,
        json!({"name": "After the snapshot"}),
    );
    assert_eq!(status, 201);
    let before_restore = checked_companies(&db);
    assert!(
        before_restore.len() > in_snapshot.len(),
        "{raced} raced writes"
    );
    sigterm(&s.child);
    let mut s = s;
    wait_exit(&mut s.child, Duration::from_secs(20));

    // Not a database, or a damaged one: refused, and the database is untouched.
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, b"this is not a database").unwrap();
    let (ok, why) = restore(&junk, &db);
    assert!(!ok && why.contains("junk.sqlite"), "{why}");
    assert_eq!(checked_companies(&db), before_restore);

    let (ok, said) = restore(&snapshot, &db);
    assert!(ok, "{said}");
    assert!(said.contains("integrity ok"), "{said}");
    // The database it replaced is kept whole, with every write it had acknowledged.
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("Z") && p.to_string_lossy().contains(".replaced-"))
        .expect("the replaced database is kept");
    assert!(said.contains(&aside.display().to_string()), "{said}");
    assert_eq!(checked_companies(&aside), before_restore);

    // A server started on the restored file serves the snapshot's data, to the same key.
    let restored = serve(&db, &[]);
    let (status, body) = get(
        &restored.addr,
        "/api/v1/companies?per_page=100&sort=created_at",
        &key,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["meta"]["total"].as_u64().unwrap() as usize,
        in_snapshot.len()
    );
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&names[..2], ["Kept 0", "Kept 1"]);
    assert!(!names.contains(&"After the snapshot"));
}

#[test]
fn scheduled_backups_are_taken_checked_and_pruned() {
    let dir = crate::common::TempDir::new();
    let db = dir.path().join("crm.sqlite");
    let backups = dir.path().join("backups");
    // A file of someone else's in the folder is never pruned.
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(backups.join("README"), "mine").unwrap();
    let s = serve(
        &db,
        &[
            "--backup-every",
            "1s",
            "--backup-keep",
            "2",
            "--backup-dir",
            backups.to_str().unwrap(),
        ],
    );
    let key = key_in(&s.stderr).expect("first-run key");
    let (status, _) = post(
        &s.addr,
        "/companies",
        &key,
        json!({"name": "In every snapshot"}),
    );
    assert_eq!(status, 201);
    // Wait (a generous deadline, no timing assumed) until four have been written.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut written = 0;
    let mut log = Vec::new();
    while written < 4 {
        let line = s
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|_| panic!("only {written} scheduled backups: {log:?}"));
        if line.contains("scheduled backup written and checked") {
            written += 1;
        }
        assert!(!line.contains("scheduled backup failed"), "{line}");
        log.push(line);
    }
    let kept = clozup::db::snapshots(&backups);
    assert!(kept.len() <= 3, "kept {kept:?}");
    assert!(backups.join("README").exists());
    let newest = backups.join(&kept[0].0);
    assert!(checked_companies(&newest).len() == 1);
    assert!(clozup::db::check_snapshot(&newest).is_ok());
}
