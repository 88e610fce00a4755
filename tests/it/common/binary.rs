//! The real `clozup` binary as a child process, for tests that need a process to kill.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_clozup");

/// A `clozup serve` process with its stderr lines arriving on a channel; killed if a test
/// fails before stopping it.
pub struct Served {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub addr: String,
    pub stderr: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn serve(db: &std::path::Path, extra: &[&str]) -> Served {
    serve_with_env(db, extra, &[])
}

/// [`serve`] with environment variables set for the server.
pub fn serve_with_env(
    db: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Served {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--db",
        ])
        .arg(db)
        .args(extra)
        .env_remove("CLOZUP_RATE_LIMIT")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start clozup");
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server never said it was listening: {seen:?}");
        };
        if line.contains("listening") && line.contains("\"bind\"") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let addr = v["bind"].as_str().unwrap().to_string();
            seen.push(line);
            return Served {
                child,
                lines,
                addr,
                stderr: seen,
            };
        }
        seen.push(line);
    }
}

pub fn get(addr: &str, path: &str, key: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {key}"))
        .call()
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// POSTs JSON to `/api/v1{path}` with a bearer key; the status and the `data` of the answer.
pub fn post(
    addr: &str,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(format!("http://{addr}/api/v1{path}"))
        .header("authorization", format!("Bearer {key}"))
        .send_json(body)
        .unwrap();
    let status = r.status().as_u16();
    let v: serde_json::Value = r.body_mut().read_json().unwrap();
    (status, v["data"].clone())
}

/// Asks the process to stop as a service manager would.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit (killing it past `within`); how long it took.
pub fn wait_exit(child: &mut Child, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return start.elapsed();
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The first API key printed in `lines`.
pub fn key_in(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|l| {
        let start = l.find("clz_")?;
        Some(l[start..start + 36].to_string())
    })
}
