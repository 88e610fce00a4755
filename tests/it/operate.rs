//! Running Clozup as a service: HTTPS with a certificate reloaded on SIGHUP, readiness told to
//! systemd, all through the real binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::rustls;

use crate::common::binary::{serve, serve_with_env, sigterm, wait_exit, BIN};
use crate::common::TempDir;

/// A new self-signed certificate for `localhost`, written to `cert.pem` and `key.pem` in `dir`;
/// returns its DER form.
fn new_certificate(dir: &Path) -> Vec<u8> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    made.cert.der().to_vec()
}

/// GET `path` over HTTPS, trusting only `trusted`; the certificate the server showed and the
/// answer's first line.
fn https_get(addr: &str, path: &str, trusted: &[&[u8]]) -> Result<(Vec<u8>, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in trusted {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
            .unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // A server closing without close_notify is fine here: what arrived is what counts.
    let _ = tls.read_to_end(&mut answer);
    let shown = tls.conn.peer_certificates().ok_or("no certificate shown")?[0].to_vec();
    let text = String::from_utf8_lossy(&answer);
    Ok((shown, text.lines().next().unwrap_or_default().to_string()))
}

/// Sends SIGHUP, as `systemctl reload` does.
fn hangup(child: &std::process::Child) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits (30 s at most) for the server to log a line containing `what`; returns it.
fn said(s: &crate::common::binary::Served, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = s
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the server never said `{what}`"));
        if line.contains(what) {
            return line;
        }
    }
}

#[test]
fn https_is_served_and_a_renewed_certificate_is_picked_up_on_sighup() {
    let dir = TempDir::new();
    let first = new_certificate(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let mut s = serve(
        &dir.path().join("crm.sqlite"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        s.stderr.last().unwrap().contains("\"tls\":true"),
        "{:?}",
        s.stderr
    );
    let (shown, status) = https_get(&s.addr, "/health", &[&first]).unwrap();
    assert_eq!(shown, first);
    assert_eq!(status, "HTTP/1.1 200 OK");
    // Plain HTTP on the HTTPS port gets no answer.
    let mut plain = TcpStream::connect(&s.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(plain, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));

    // The certificate is renewed on disk, and the server told.
    let second = new_certificate(dir.path());
    hangup(&s.child);
    said(&s, "TLS certificate reloaded");
    let (shown, status) = https_get(&s.addr, "/health", &[&first, &second]).unwrap();
    assert_eq!(shown, second, "new connections get the renewed certificate");
    assert_eq!(status, "HTTP/1.1 200 OK");

    // A broken renewal keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    hangup(&s.child);
    let line = said(&s, "not reloaded");
    assert!(line.contains("cert.pem"), "{line}");
    let (shown, _) = https_get(&s.addr, "/health", &[&second]).unwrap();
    assert_eq!(shown, second);
    sigterm(&s.child);
    wait_exit(&mut s.child, Duration::from_secs(20));

    // Files that do not load stop the start, saying which, before anything is written.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("other.sqlite"))
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("cert.pem") && why.contains("not a PEM certificate")
            || why.contains("no certificate"),
        "{why}"
    );
    assert!(!dir.path().join("other.sqlite").exists());
    // One of the pair alone is refused by the command line.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--tls-cert", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[test]
fn systemd_is_told_when_the_server_is_ready_and_when_it_stops() {
    let dir = TempDir::new();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut s = serve_with_env(
        &dir.path().join("crm.sqlite"),
        &[],
        &[("NOTIFY_SOCKET", socket_path.as_os_str())],
    );
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving.
    let (status, _) = crate::common::binary::get(&s.addr, "/health", "");
    assert_eq!(status, 200);
    // `systemctl reload` on a server without TLS: said, and harmless.
    hangup(&s.child);
    said(&s, "nothing to reload");
    assert_eq!(crate::common::binary::get(&s.addr, "/health", "").0, 200);
    sigterm(&s.child);
    let n = socket.recv(&mut buf).expect("STOPPING=1 within 30 s");
    assert_eq!(&buf[..n], b"STOPPING=1");
    wait_exit(&mut s.child, Duration::from_secs(20));
}

/// The value of the series `name{labels}` exactly as written in an exposition, if present.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn metrics_are_served_apart_from_the_api_and_count_what_happens() {
    let dir = TempDir::new();
    let receiver_closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hook", receiver_closed.local_addr().unwrap());
    drop(receiver_closed);
    let s = serve(
        &dir.path().join("crm.sqlite"),
        &[
            "--metrics-bind",
            "127.0.0.1:0",
            "--webhook-allow-cidr",
            "127.0.0.0/8",
            "--webhook-retry-schedule",
            "1h",
        ],
    );
    let listening: serde_json::Value = serde_json::from_str(s.stderr.last().unwrap()).unwrap();
    let metrics_addr = listening["metrics"]
        .as_str()
        .expect("the metrics address")
        .to_string();
    assert_ne!(metrics_addr, s.addr);
    let key = crate::common::binary::key_in(&s.stderr).unwrap();
    // Traffic: a write, reads, a 404, and a webhook whose endpoint is down.
    let (status, _) = crate::common::binary::post(
        &s.addr,
        "/webhooks",
        &key,
        serde_json::json!({"url": hook_url}),
    );
    assert_eq!(status, 201);
    let (status, _) = crate::common::binary::post(
        &s.addr,
        "/companies",
        &key,
        serde_json::json!({"name": "Counted"}),
    );
    assert_eq!(status, 201);
    for _ in 0..3 {
        assert_eq!(
            crate::common::binary::get(&s.addr, "/api/v1/companies", &key).0,
            200
        );
    }
    assert_eq!(
        crate::common::binary::get(&s.addr, "/api/v1/companies/co_nope", &key).0,
        404
    );

    let scrape = || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .get(format!("http://{metrics_addr}/metrics"))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let kind = r
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        r.body_mut().read_to_string().unwrap()
    };
    // The webhook's one attempt fails (nobody listens) and waits an hour for its retry.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape();
        if series(&text, "clozup_webhook_attempts_total{of=\"retry\"}").is_some() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no webhook attempt counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let at = |series_name: &str| {
        series(&text, series_name).unwrap_or_else(|| panic!("{series_name} missing:\n{text}"))
    };
    assert_eq!(
        at("clozup_http_requests_total{method=\"GET\",route=\"list_companies\",status=\"200\"}"),
        3.0
    );
    assert_eq!(
        at("clozup_http_requests_total{method=\"POST\",route=\"create_company\",status=\"201\"}"),
        1.0
    );
    assert_eq!(
        at("clozup_http_requests_total{method=\"GET\",route=\"get_company\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        at("clozup_http_request_duration_seconds_count{method=\"GET\",route=\"list_companies\"}"),
        3.0
    );
    assert_eq!(at("clozup_http_request_duration_seconds_bucket{method=\"GET\",route=\"list_companies\",le=\"+Inf\"}"), 3.0);
    // The first run and the two writes committed; each commit was timed.
    assert!(at("clozup_db_commit_duration_seconds_count") >= 2.0);
    assert!(at("clozup_db_read_wait_seconds_count") >= 1.0);
    assert_eq!(at("clozup_db_write_queue_depth"), 0.0);
    // Events of the two writes: the company's is pending its retry, counted from the database.
    assert!(at("clozup_webhook_backlog{of=\"pending\"}") >= 1.0);
    assert_eq!(at("clozup_email_backlog{of=\"queued\"}"), 0.0);
    assert_eq!(at("clozup_sse_streams_open"), 0.0);
    assert!(at("process_resident_memory_bytes") > 1e6);
    assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    // Paths with ids never become series of their own.
    assert!(!text.contains("co_nope"));
    // The API's address does not serve metrics, and the metrics address serves nothing else.
    assert_eq!(crate::common::binary::get(&s.addr, "/metrics", "").0, 404);
    assert_eq!(
        crate::common::binary::get(&metrics_addr, "/api/v1/companies", &key).0,
        404
    );
}

/// `clozup doctor` with `args`; (exit code, stdout).
fn doctor(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .arg("doctor")
        .args(args)
        .env_remove("CLOZUP_RATE_LIMIT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The report's line about `subject` that contains `words`.
fn finding<'a>(report: &'a str, level: &str, words: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(level) && l.contains(words))
        .unwrap_or_else(|| panic!("no `{level}` line with `{words}` in:\n{report}"))
}

#[test]
fn doctor_checks_the_file_the_settings_and_the_outbound_paths() {
    let dir = TempDir::new();
    let db = dir.path().join("crm.sqlite");
    let db_arg = db.to_str().unwrap();
    let s = serve(
        &db,
        &[
            "--webhook-allow-cidr",
            "127.0.0.0/8",
            "--webhook-retry-schedule",
            "1h",
        ],
    );
    let key = crate::common::binary::key_in(&s.stderr).unwrap();
    // A webhook whose endpoint is down, and a delivery to it attempted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/down", closed.local_addr().unwrap());
    drop(closed);
    let (status, hook) =
        crate::common::binary::post(&s.addr, "/webhooks", &key, serde_json::json!({"url": url}));
    assert_eq!(status, 201);
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let (status, _) = crate::common::binary::post(
        &s.addr,
        "/companies",
        &key,
        serde_json::json!({"name": "X"}),
    );
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    let sink = crate::common::smtp::SmtpSink::start();
    let report = loop {
        let (code, report) = doctor(&["--db", db_arg, "--smtp-url", &sink.url]);
        if report.contains("failing since") {
            // Healthy but for the webhook: warnings only, exit 0.
            assert_eq!(code, 0, "{report}");
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the failing webhook never showed:\n{report}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    finding(&report, "note", "a server is using it now");
    finding(&report, "ok", "integrity check passed");
    let version = format!("version {}, this clozup's", clozup::db::LATEST_VERSION);
    finding(&report, "ok", &version);
    finding(&report, "ok", "the SMTP server answers");
    let line = finding(&report, "warn", &hook_id);
    assert!(
        line.contains(&url) && line.contains("last delivery pending"),
        "{line}"
    );
    finding(&report, "warn", "none scheduled: set --backup-every");
    drop(s);

    // What would break a server: an SMTP server nobody answers at, TLS files that do not
    // load, plain HTTP beyond loopback; each named, and the exit code says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp = format!("smtp://{}", closed.local_addr().unwrap());
    drop(closed);
    let missing = dir.path().join("missing.pem");
    let (code, report) = doctor(&[
        "--db",
        db_arg,
        "--smtp-url",
        &smtp,
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{report}");
    finding(&report, "note", "no server is using it now");
    finding(&report, "PROBLEM", "cannot reach the SMTP server");
    finding(&report, "PROBLEM", "missing.pem");
    let (_, report) = doctor(&["--db", db_arg, "--bind", "0.0.0.0:8080"]);
    finding(&report, "warn", "plain HTTP on 0.0.0.0:8080");

    // A damaged file, and one from a newer Clozup: problems, and neither is touched.
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let (code, report) = doctor(&["--db", junk.to_str().unwrap()]);
    assert_eq!(code, 1, "{report}");
    finding(&report, "PROBLEM", "junk.sqlite");
    assert_eq!(std::fs::read(&junk).unwrap(), vec![7u8; 8192]);
    let newer = dir.path().join("newer.sqlite");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", clozup::db::LATEST_VERSION + 1)
        .unwrap();
    let (code, report) = doctor(&["--db", newer.to_str().unwrap()]);
    assert_eq!(code, 1, "{report}");
    finding(&report, "PROBLEM", "newer than this clozup");
}

#[test]
fn the_service_unit_is_hardened_and_its_command_line_serves_and_reports_ready() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/clozup.service"),
    )
    .unwrap();
    let directives: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let value = |key: &str| {
        directives
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("the unit has no {key}="))
    };
    for (key, expected) in [
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "clozup"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(value(key), expected, "{key}");
    }
    // Its command line, as systemd would run it (the state directory made, the bind address
    // from the environment file), starts a server that tells systemd it is ready.
    let dir = TempDir::new();
    let exec = value("ExecStart").replace("${STATE_DIRECTORY}", dir.path().to_str().unwrap());
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/clozup"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args[0], "serve");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(&args)
        .env("CLOZUP_BIND", "127.0.0.1:0")
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(dir.path().join("crm.sqlite").exists());
    sigterm(&child);
    let n = socket.recv(&mut buf).expect("STOPPING=1 within 30 s");
    assert_eq!(&buf[..n], b"STOPPING=1");
    wait_exit(&mut child, Duration::from_secs(20));
}
