//! Backups: `POST /admin/backup` and `clozup backup` take a consistent snapshot while writes
//! go on, the snapshot passes SQLite's own checks, and a server started on it serves its data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::binary::{get, serve, BIN};
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
