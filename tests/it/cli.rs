//! The `clozup` binary itself: first run, key commands, refusal of newer databases, shutdown.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::binary::{get, key_in, serve, sigterm, wait_exit, BIN};
use crate::common::TempDir;

#[test]
fn version_flag() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("clozup {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn first_run_prints_an_admin_key_once_and_writes_it_privately() {
    let dir = TempDir::new();
    let db = dir.path().join("x.sqlite");
    let key_file = dir.path().join("admin.key");
    let mut s = serve(&db, &["--admin-key-file", key_file.to_str().unwrap()]);
    let key = key_in(&s.stderr).expect("the key is printed on first run");
    let (status, body) = get(&s.addr, "/api/v1/me", &key);
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["data"]["organization"]["name"], "My Organization");
    assert_eq!(me["data"]["user"]["role"], "owner");
    let (status, body) = get(&s.addr, "/api/v1/me", "nope");
    assert_eq!(status, 401);
    assert!(body.contains("\"code\":\"unauthorized\""));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The start-up work announces its end (bench/suite.py waits for it to measure idle memory).
    let mut rest: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rest.iter().any(|l| l.contains("start-up sweep finished")) {
        assert!(
            Instant::now() < deadline,
            "no end of the start-up work: {rest:?}"
        );
        rest.extend(s.lines.recv_timeout(Duration::from_millis(100)).ok());
    }
    sigterm(&s.child);
    wait_exit(&mut s.child, Duration::from_secs(20));
    rest.extend(s.lines.try_iter());
    assert!(key_in(&rest).is_none(), "the key appears once");

    // The second start finds the organization and prints no key.
    let mut again = serve(&db, &[]);
    assert!(key_in(&again.stderr).is_none(), "{:?}", again.stderr);
    assert_eq!(get(&again.addr, "/api/v1/me", &key).0, 200);
    sigterm(&again.child);
    wait_exit(&mut again.child, Duration::from_secs(20));
}

#[test]
fn sigterm_exits_promptly_with_requests_stuck_open() {
    let dir = TempDir::new();
    let mut s = serve(&dir.path().join("x.sqlite"), &["--shutdown-grace", "300ms"]);
    let key = key_in(&s.stderr).unwrap();
    // An upload that never finishes: the request stays in flight.
    let mut stuck = TcpStream::connect(&s.addr).unwrap();
    write!(
        stuck,
        "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"email\""
    )
    .unwrap();
    // A live event stream, which never ends by itself.
    let mut events = TcpStream::connect(&s.addr).unwrap();
    write!(
        events,
        "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    .unwrap();
    let mut events_reader = BufReader::new(events.try_clone().unwrap());
    let mut status = String::new();
    events_reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // An idle keep-alive connection.
    let mut idle = TcpStream::connect(&s.addr).unwrap();
    write!(idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = String::new();
    BufReader::new(idle.try_clone().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    sigterm(&s.child);
    // Generous deadline for a loaded machine; without the grace period this would hang forever.
    let took = wait_exit(&mut s.child, Duration::from_secs(20));
    eprintln!("clozup exited {took:?} after SIGTERM with an upload, an event stream and an idle connection open");
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // The stream was ended, not abandoned: reading reaches its end.
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut events_reader, &mut rest);
}

#[test]
fn a_database_from_a_newer_clozup_is_refused() {
    let dir = TempDir::new();
    let db = dir.path().join("new.sqlite");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let out = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 999") && err.contains("newer than this clozup"),
        "{err}"
    );
}

/// The secret (stdout) and id (in the stderr note) printed by a successful `keys create`.
fn created_key(ok: bool, out: &str, err: &str) -> (String, String) {
    assert!(ok, "{err}");
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .unwrap();
    (out.trim().to_string(), id.to_string())
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn keys_and_orgs_commands() {
    let dir = TempDir::new();
    let db = dir.path().join("k.sqlite");
    let db = db.to_str().unwrap();
    let (ok, _, err) = run(&["keys", "list", "--db", db]);
    assert!(!ok && err.contains("no organization"), "{err}");

    let (ok, out, _) = run(&["orgs", "create", "--db", db, "--name", "Acme"]);
    assert!(ok);
    let admin = out.trim().to_string();
    assert!(admin.starts_with("clz_") && admin.len() == 36, "{admin}");

    let (ok, out, err) = run(&[
        "keys",
        "create",
        "--db",
        db,
        "--name",
        "ci",
        "--scopes",
        "read",
        "--expires-in",
        "90d",
    ]);
    let (read_key, id) = created_key(ok, &out, &err);

    let (ok, out, _) = run(&["keys", "list", "--db", db]);
    assert!(ok);
    assert!(
        out.contains(&id) && out.contains("read") && out.contains("active"),
        "{out}"
    );
    assert!(!out.contains(&read_key), "list never shows secrets");

    let (ok, _, err) = run(&["keys", "create", "--db", db, "--scopes", "root"]);
    assert!(!ok && err.contains("unknown scope"), "{err}");

    let (ok, out, _) = run(&["keys", "revoke", "--db", db, &id]);
    assert!(ok && out.contains("Revoked"), "{out}");
    let (_, out, _) = run(&["keys", "list", "--db", db]);
    assert!(
        out.lines()
            .any(|l| l.contains(&id) && l.contains("revoked")),
        "{out}"
    );

    // The server on this database honours all of it.
    let mut s = serve(std::path::Path::new(db), &[]);
    assert!(
        key_in(&s.stderr).is_none(),
        "an existing organization gets no new key"
    );
    assert_eq!(get(&s.addr, "/api/v1/me", &admin).0, 200);
    assert_eq!(get(&s.addr, "/api/v1/me", &read_key).0, 401);
    sigterm(&s.child);
    wait_exit(&mut s.child, Duration::from_secs(20));
}

#[test]
fn a_key_revoked_by_the_cli_stops_working_on_the_running_server() {
    let dir = TempDir::new();
    let db = dir.path().join("x.sqlite");
    let mut s = serve(&db, &[]);
    let admin = key_in(&s.stderr).unwrap();
    let db = db.to_str().unwrap();
    let (ok, out, err) = run(&["keys", "create", "--db", db, "--name", "agent"]);
    let (key, id) = created_key(ok, &out, &err);
    // Used, so the server has resolved it (and remembers it for a moment).
    for _ in 0..3 {
        assert_eq!(get(&s.addr, "/api/v1/me", &key).0, 200);
    }

    let (ok, out, _) = run(&["keys", "revoke", "--db", db, &id]);
    assert!(ok && out.contains("Revoked"), "{out}");
    // The server learns of another process's write within a second; the deadline is generous
    // for a loaded machine, and a key that kept working would run into it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&s.addr, "/api/v1/me", &key).0 != 401 {
        assert!(Instant::now() < deadline, "the revoked key still works");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&s.addr, "/api/v1/me", &admin).0, 200);
    sigterm(&s.child);
    wait_exit(&mut s.child, Duration::from_secs(20));
}

#[test]
fn the_openapi_command_prints_the_document() {
    let (ok, out, _) = run(&["openapi"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["info"]["title"], "Clozup API");
}

#[test]
fn seed_is_deterministic_and_demo_serves_a_realistic_organization() {
    let dir = TempDir::new();
    let seeded = |name: &str| {
        let db = dir.path().join(name);
        let (ok, _, err) = run(&[
            "seed",
            "--db",
            db.to_str().unwrap(),
            "--users",
            "3",
            "--companies",
            "50",
            "--leads",
            "300",
            "--deals",
            "200",
            "--activities",
            "2000",
            "--seed",
            "7",
            "--as-of",
            "2026-11-28T12:00:00Z",
            "--quiet",
        ]);
        assert!(ok, "{err}");
        assert!(err.contains("300 leads, 200 deals"), "{err}");
        rusqlite::Connection::open(db).unwrap()
    };
    let rows = |c: &rusqlite::Connection, sql: &str| -> Vec<String> {
        let mut st = c.prepare(sql).unwrap();
        let r = st
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        r
    };
    let (a, b) = (seeded("a.sqlite"), seeded("b.sqlite"));
    for sql in [
        "SELECT id || email || score || status FROM leads ORDER BY id",
        // Campaign history is made by the engine itself, with ids of its own making.
        "SELECT id || type || occurred_at || coalesce(deal_id, lead_id) FROM activities
         WHERE type NOT LIKE 'email_%' ORDER BY id",
        "SELECT id || name || coalesce(industry, '') FROM companies ORDER BY id",
        "SELECT id || title || value || status || stage_entered_at FROM deals ORDER BY id",
    ] {
        let (ra, rb) = (rows(&a, sql), rows(&b, sql));
        assert!(!ra.is_empty());
        assert_eq!(ra, rb, "same seed, same rows: {sql}");
    }
    // Something for the intelligence to find: overdue tasks, won and lost deals.
    let count = |sql: &str| -> i64 { a.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert!(
        count("SELECT COUNT(*) FROM tasks WHERE status = 'open' AND due_at < 1795867200000") > 0
    );
    assert!(count("SELECT COUNT(*) FROM deals WHERE status = 'won'") > 0);
    // Campaigns with a history: sent, opened and answered mail, and enrollments it stopped.
    assert_eq!(
        count("SELECT COUNT(*) FROM campaigns WHERE status = 'active'"),
        3
    );
    assert!(
        count("SELECT COUNT(*) FROM emails WHERE enrollment_id IS NOT NULL AND status = 'sent'")
            > 100
    );
    assert!(count("SELECT COUNT(*) FROM emails WHERE first_opened_at IS NOT NULL") > 0);
    assert!(count("SELECT COUNT(*) FROM enrollments WHERE stop_reason = 'replied'") > 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM emails WHERE status IN ('queued', 'sending')"),
        0,
        "the seed leaves nothing half-sent"
    );
    assert!(count("SELECT COUNT(*) FROM deals WHERE status = 'lost'") > 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM deals WHERE status = 'open' AND last_activity_at IS NULL"),
        count("SELECT COUNT(*) FROM deals d WHERE status = 'open' AND NOT EXISTS (SELECT 1 FROM activities WHERE deal_id = d.id)")
    );

    let key_file = dir.path().join("demo.key");
    let s = serve(
        &dir.path().join("demo.sqlite"),
        &[
            "--demo",
            "--admin-key-file",
            key_file.to_str().unwrap(),
            "--rate-limit",
            "off",
        ],
    );
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let total = |path: &str| -> i64 {
        let (status, body) = get(&s.addr, path, &key);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["meta"]["total"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(total("/api/v1/deals?per_page=1"), 1200);
    assert_eq!(total("/api/v1/leads?per_page=1"), 2000);
    assert!(total("/api/v1/deals/at-risk?per_page=1") > 0);
    // Issue 21 point 11: the seed writes no signals; the sweep the server runs as it starts
    // raises the time-based ones (stalled stages, silent deals) without waiting a period.
    // The sweep's period is a minute: half of it is a generous deadline for a sweep of 1,200
    // deals, and short of the first periodic one.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while total("/api/v1/signals?per_page=1") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no signal 30 s after start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The owner of a new organization gets a password from the operator, piped in, and signs in
/// with it; an unknown email changes nothing.
#[test]
fn the_operator_sets_the_owners_password_and_the_owner_signs_in() {
    let dir = TempDir::new();
    let db = dir.path().join("x.sqlite");
    let set_password = |email: &str, input: &str| {
        let mut child = Command::new(BIN)
            .args(["users", "set-password", "--email", email, "--db"])
            .arg(&db)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let mut s = serve(&db, &[]);
    assert!(
        s.stderr.iter().any(|l| l.contains("users set-password")),
        "first run says how the owner signs in: {:?}",
        s.stderr
    );
    let (ok, err) = set_password("nobody@example.com", "a long passphrase\n");
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, err) = set_password("owner@example.com", "short\n");
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, err) = set_password("OWNER@example.com", "a long passphrase\n");
    assert!(ok, "{err}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let login = |password: &str| {
        agent
            .post(format!("http://{}/api/v1/auth/login", s.addr))
            .send_json(serde_json::json!({"email": "owner@example.com", "password": password}))
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(login("a long passphrase"), 200);
    assert_eq!(login("short"), 401);
    sigterm(&s.child);
    wait_exit(&mut s.child, Duration::from_secs(20));
}

/// One raw HTTP/1.1 exchange's outcome: the status and body, or what went wrong on the wire.
fn exchange(stream: &mut TcpStream) -> Result<(u16, String, String), String> {
    let mut raw = Vec::new();
    std::io::Read::read_to_end(stream, &mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete answer: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    Ok((status, head.to_ascii_lowercase(), body.to_string()))
}

/// SIGTERM while 200 writes are in flight: every request already sent gets an answer, either
/// its 201 (and the lead is stored) or 503 with Retry-After (and it is not); none is reset.
#[test]
fn sigterm_answers_every_request_already_sent() {
    let dir = TempDir::new();
    let db = dir.path().join("x.sqlite");
    let mut s = serve(&db, &["--rate-limit", "off"]);
    let key = key_in(&s.stderr).unwrap();
    const N: usize = 200;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..N)
        .map(|i| {
            let (addr, key) = (s.addr.clone(), key.clone());
            let (sent, answered) = (sent.clone(), answered.clone());
            std::thread::spawn(move || {
                let body = format!(r#"{{"email": "lead{i}@shutdown.example"}}"#);
                let mut stream = TcpStream::connect(&addr).map_err(|e| format!("connect: {e}"))?;
                write!(
                    stream,
                    "POST /api/v1/leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
                .map_err(|e| format!("write: {e}"))?;
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let outcome = exchange(&mut stream);
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                outcome
            })
        })
        .collect();
    // Mid-way: every request sent, some answered, most not yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.load(std::sync::atomic::Ordering::SeqCst) < N
        || answered.load(std::sync::atomic::Ordering::SeqCst) < 10
    {
        assert!(Instant::now() < deadline, "the clients never got going");
        std::thread::sleep(Duration::from_millis(1));
    }
    let answered_before = answered.load(std::sync::atomic::Ordering::SeqCst);
    sigterm(&s.child);
    let (mut created, mut refused) = (Vec::new(), Vec::new());
    for (i, client) in clients.into_iter().enumerate() {
        let (status, head, body) = client
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("request {i} got no answer: {e}"));
        let email = format!("lead{i}@shutdown.example");
        match status {
            201 => created.push(email),
            503 => {
                assert!(head.contains("\r\nretry-after: "), "{head}");
                assert!(head.contains("\r\nx-request-id: "), "{head}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["error"]["code"], "unavailable", "{body}");
                refused.push(email);
            }
            other => panic!("request {i}: {other} {body}"),
        }
    }
    let took = wait_exit(&mut s.child, Duration::from_secs(30));
    assert!(s.child.wait().unwrap().success());
    eprintln!(
        "SIGTERM after {answered_before} of {N} answers: {} created, {} refused with 503; exited {took:?} after the signal",
        created.len(),
        refused.len()
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored = |email: &str| -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM leads WHERE email = ?1",
            [email],
            |r| r.get(0),
        )
        .unwrap()
    };
    for email in &created {
        assert_eq!(
            stored(email),
            1,
            "{email} was acknowledged but is not stored"
        );
    }
    for email in &refused {
        assert_eq!(stored(email), 0, "{email} was refused but is stored");
    }
}

#[test]
fn import_command_fills_the_file_a_running_server_serves() {
    let dir = TempDir::new();
    let db = dir.path().join("x.sqlite");
    let mut s = serve(&db, &[]);
    let admin = key_in(&s.stderr).unwrap();
    let file = dir.path().join("people.csv");
    let mut csv = String::from("Full Name;E-mail;Company;Lead Owner\r\n");
    for i in 0..2500 {
        csv.push_str(&format!(
            "Person {i};p{i}@example.com;Co {};nobody@else.test\r\n",
            i % 7
        ));
    }
    csv.push_str("Broken;not-an-email;;\r\n");
    std::fs::write(&file, &csv).unwrap();
    let (db, file) = (db.to_str().unwrap(), file.to_str().unwrap());

    let (ok, out, _) = run(&["import", "leads", file, "--db", db, "--dry-run", "--quiet"]);
    assert!(ok, "{out}");
    assert_eq!(
        get(&s.addr, "/api/v1/leads?per_page=1", &admin)
            .1
            .matches("\"id\"")
            .count(),
        0
    );

    let (ok, out, err) = run(&["import", "leads", file, "--db", db]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            report["rows"].as_i64(),
            report["created"].as_i64(),
            report["failed"].as_i64()
        ),
        (Some(2501), Some(2500), Some(1)),
        "{report}"
    );
    assert_eq!(
        (
            report["delimiter"].as_str(),
            report["errors"][0]["line"].as_i64()
        ),
        (Some("semicolon"), Some(2502))
    );
    // Not a terminal: the progress is a line per tenth, ending at the whole file.
    assert!(
        err.lines().count() >= 2 && err.trim_end().ends_with("2501/2501 rows"),
        "{err}"
    );
    // The server serves what the other process wrote, and its event log has every lead.
    let (status, body) = get(&s.addr, "/api/v1/leads?q=p2499%40example.com", &admin);
    assert!(status == 200 && body.contains("Person"), "{status} {body}");
    let (_, events) = get(
        &s.addr,
        "/api/v1/events/log?types=lead.created&per_page=1",
        &admin,
    );
    assert!(events.contains("\"total\":2500"), "{events}");
    // A member who is not there is refused before anything is read.
    let (ok, _, err) = run(&[
        "import",
        "leads",
        file,
        "--db",
        db,
        "--as",
        "ghost@nowhere.test",
    ]);
    assert!(!ok && err.contains("ghost@nowhere.test"), "{err}");
    sigterm(&s.child);
    wait_exit(&mut s.child, Duration::from_secs(20));
}
