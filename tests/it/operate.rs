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
    let hangup = |child: &std::process::Child| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    hangup(&s.child);
    let said = |s: &crate::common::binary::Served, what: &str| {
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
    };
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

    // Files that do not load stop the start, saying which.
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
    sigterm(&s.child);
    let n = socket.recv(&mut buf).expect("STOPPING=1 within 30 s");
    assert_eq!(&buf[..n], b"STOPPING=1");
    wait_exit(&mut s.child, Duration::from_secs(20));
}
