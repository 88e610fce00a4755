//! Live events at scale, against the real release binary:
//! - one event fanned out to 1,000 SSE subscribers: latency from the write's response to each
//!   subscriber's frame (target p99 < 100 ms), and the server's memory per subscriber (target
//!   < 50 KiB);
//! - webhook throughput to a fast loopback receiver (target ≥ 1,000 deliveries/s, none lost);
//! - a campaign's first step for 10,000 leads enrolled in one call, every email handed to a
//!   loopback SMTP sink (target ≥ 500 emails/s), and W1's p99 while it sends (target ≤ 2× W1's
//!   p99 alone, both from the same probe in this program).
//!
//! `cargo bench --bench events` (`SUBSCRIBERS=`, `DELIVERIES=`, `CAMPAIGN_LEADS=` to change the
//! sizes; `BENCH_SERVER_CPU=0 taskset -c 1 …` to split the cores as the harness does) starts its
//! own server on an empty database. The harness (`bench/run`) instead points it at the server it
//! started on the seeded data set, with `CLOZUP_BENCH_ADDR`, `CLOZUP_BENCH_KEY` and
//! `CLOZUP_BENCH_PID`; that server must allow loopback webhooks and 1,000 streams per key, and
//! send its mail to `CLOZUP_BENCH_SMTP` (`--smtp-url smtp://<it>`), where this program listens.
//! Each figure is also printed as a `RESULT {json}` line for the harness.

mod common;
#[path = "../tests/it/common/smtp.rs"]
#[allow(dead_code)] // the tests' sink; the benchmark counts what it receives
mod smtp;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn main() {
    let subscribers: usize = std::env::var("SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let deliveries: usize = std::env::var("DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let campaign_leads: usize = std::env::var("CAMPAIGN_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sink = smtp::SmtpSink::start_on(
        &std::env::var("CLOZUP_BENCH_SMTP").unwrap_or_else(|_| "127.0.0.1:0".into()),
    );
    let external = std::env::var("CLOZUP_BENCH_ADDR").ok().map(|addr| {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
        let pid: u32 = var("CLOZUP_BENCH_PID").parse().expect("CLOZUP_BENCH_PID");
        (addr, var("CLOZUP_BENCH_KEY"), pid)
    });
    let (server, addr, key, pid) = match external {
        Some((addr, key, pid)) => (None, addr, key, pid),
        None => {
            let (child, dir, addr, key) = start_server(&sink.url);
            let pid = child.id();
            (Some((child, dir)), addr, key, pid)
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |path: &str, body: serde_json::Value| {
        let mut r = agent
            .post(format!("http://{addr}/api/v1{path}"))
            .header("authorization", format!("Bearer {key}"))
            .send_json(body)
            .unwrap();
        let v: serde_json::Value = r.body_mut().read_json().unwrap();
        v
    };
    sse_fan_out(&addr, &key, pid, subscribers, &post);
    webhooks(&addr, &key, deliveries, &agent, &post);
    campaign(&addr, &key, campaign_leads, &sink, &agent, &post);
    if let Some((mut child, dir)) = server {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Starts the release binary on a new database; its process, folder, address and admin key.
fn start_server(smtp_url: &str) -> (std::process::Child, std::path::PathBuf, String, String) {
    let dir = std::env::temp_dir().join(format!("clozup-bench-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // `BENCH_SERVER_CPU=0` pins the server to that core from its start, as `bench/run` does
    // (its runtime then sizes itself to the one core).
    let mut child = match std::env::var("BENCH_SERVER_CPU") {
        Ok(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu, env!("CARGO_BIN_EXE_clozup")]);
            c
        }
        Err(_) => Command::new(env!("CARGO_BIN_EXE_clozup")),
    };
    let mut child = child
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log",
            "warn,clozup::server=info",
            "--rate-limit",
            "off",
        ])
        .args([
            "--sse-max",
            "100000",
            "--sse-per-credential",
            "100000",
            "--webhook-allow-cidr",
            "127.0.0.0/8",
            "--smtp-url",
            smtp_url,
        ])
        .arg("--db")
        .arg(dir.join("bench.sqlite"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut key, mut addr) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(i) = line.find("clz_") {
            key = line[i..i + 36].to_string();
        }
        if line.contains("\"bind\"") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            addr = v["bind"].as_str().unwrap().to_string();
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, dir, addr, key)
}

/// W7: one event to `subscribers` SSE streams.
fn sse_fan_out(
    addr: &str,
    key: &str,
    pid: u32,
    subscribers: usize,
    post: &dyn Fn(&str, serde_json::Value) -> serde_json::Value,
) {
    let idle_rss = rss_kib(pid);
    let (tx, rx) = mpsc::channel::<Instant>();
    let mut streams = Vec::new();
    for _ in 0..subscribers {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET /api/v1/events?types=company.created HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n").unwrap();
        streams.push(s);
    }
    // Wait until every stream has its headers and retry hint, then read each on a thread.
    for s in &streams {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        while !line.starts_with("retry:") {
            line.clear();
            r.read_line(&mut line).unwrap();
        }
        let tx = tx.clone();
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line.starts_with("data: ") {
                        let _ = tx.send(Instant::now());
                        return;
                    }
                }
            })
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let with_streams = rss_kib(pid);
    let sent = Instant::now();
    post("/companies", serde_json::json!({"name": "Fan-out"}));
    let mut lat = Vec::new();
    for _ in 0..subscribers {
        let at = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a subscriber never got the event");
        lat.push(at.duration_since(sent).as_secs_f64() * 1000.0);
    }
    let per_subscriber = (with_streams.saturating_sub(idle_rss)) as f64 / subscribers as f64;
    println!(
        "SSE fan-out to {subscribers} subscribers: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms after the write; \
         server RSS {} KiB idle, {} KiB with the streams = {per_subscriber:.1} KiB per subscriber",
        common::percentile(&lat, 0.5),
        common::percentile(&lat, 0.99),
        common::percentile(&lat, 1.0),
        idle_rss,
        with_streams,
    );
    println!(
        "RESULT {}",
        serde_json::json!({"workload": "w7", "subscribers": subscribers,
            "p50_ms": common::percentile(&lat, 0.5), "p99_ms": common::percentile(&lat, 0.99), "max_ms": common::percentile(&lat, 1.0),
            "rss_kib": with_streams, "kib_per_subscriber": per_subscriber})
    );
    drop(streams);
}

/// Imports `csv` as leads (one request, one transaction).
fn import(agent: &ureq::Agent, addr: &str, key: &str, csv: &str) {
    let mut r = agent
        .post(format!("http://{addr}/api/v1/leads/import"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "text/csv")
        .send(csv.as_bytes())
        .unwrap();
    let _ = r.body_mut().read_to_string();
}

/// W8: webhook deliveries to a loopback receiver, from one import of `deliveries` leads.
fn webhooks(
    addr: &str,
    key: &str,
    deliveries: usize,
    agent: &ureq::Agent,
    post: &dyn Fn(&str, serde_json::Value) -> serde_json::Value,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (got_tx, got_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let got_tx = got_tx.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut len, mut id) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (n, v) = h.split_once(':').unwrap();
                        match n.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap(),
                            "webhook-id" => id = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .unwrap();
                    let _ = got_tx.send(id);
                }
            });
        }
    });
    let hook = post(
        "/webhooks",
        serde_json::json!({"url": url, "event_types": ["lead.created"]}),
    );
    // Unique per run, so a run against a long-lived data set imports new leads every time.
    let run = std::process::id();
    let mut csv = String::from("email\n");
    for i in 0..deliveries {
        csv.push_str(&format!("bench-hook-{run}-{i}@example.com\n"));
    }
    let started = Instant::now();
    import(agent, addr, key, &csv);
    let committed = started.elapsed();
    let mut seen = HashSet::new();
    while seen.len() < deliveries {
        let id = got_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("deliveries stopped arriving");
        seen.insert(id);
    }
    let total = started.elapsed();
    println!(
        "webhooks: {deliveries} events committed in {:.2} s, all {} delivered (unique webhook-ids) in {:.2} s = {:.0} deliveries/s",
        committed.as_secs_f64(),
        seen.len(),
        total.as_secs_f64(),
        deliveries as f64 / total.as_secs_f64()
    );
    println!(
        "RESULT {}",
        serde_json::json!({"workload": "w8", "requests": deliveries,
            "rps": deliveries as f64 / total.as_secs_f64(), "seconds": total.as_secs_f64()})
    );
    if let Some(id) = hook["data"]["id"].as_str() {
        let _ = agent
            .delete(format!("http://{addr}/api/v1/webhooks/{id}"))
            .header("authorization", format!("Bearer {key}"))
            .call();
    }
}

/// W1 as this program sees it: `GET /leads/{id}` over `ids` from 8 keep-alive connections for
/// `seconds` (or until `until` says stop); the p99 latency in ms and the requests made.
fn w1_probe(
    addr: &str,
    key: &str,
    ids: &[String],
    seconds: f64,
    until: &(dyn Fn() -> bool + Sync),
) -> (f64, usize) {
    let started = Instant::now();
    let samples: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut out = Vec::new();
                    let mut i = w;
                    while started.elapsed().as_secs_f64() < seconds && !until() {
                        let t = Instant::now();
                        let mut r = agent
                            .get(format!("http://{addr}/api/v1/leads/{}", ids[i % ids.len()]))
                            .header("authorization", format!("Bearer {key}"))
                            .call()
                            .unwrap();
                        let _ = r.body_mut().read_to_string();
                        out.push(t.elapsed().as_secs_f64() * 1000.0);
                        i += 8;
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    (common::percentile(&samples, 0.99), samples.len())
}

/// W9: a campaign's first email to `leads` leads enrolled in one call, to the SMTP sink.
fn campaign(
    addr: &str,
    key: &str,
    leads: usize,
    sink: &smtp::SmtpSink,
    agent: &ureq::Agent,
    post: &dyn Fn(&str, serde_json::Value) -> serde_json::Value,
) {
    let run = std::process::id();
    let source = format!("bench-campaign-{run}");
    let mut csv = String::from("email,first_name,source\n");
    for i in 0..leads {
        csv.push_str(&format!("c{run}-{i}@buyer.example,Lead {i},{source}\n"));
    }
    import(agent, addr, key, &csv);
    let page = |n: usize| {
        let mut r = agent
            .get(format!(
                "http://{addr}/api/v1/leads?source={source}&per_page=100&page={n}"
            ))
            .header("authorization", format!("Bearer {key}"))
            .call()
            .unwrap();
        let v: serde_json::Value = r.body_mut().read_json().unwrap();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let ids: Vec<String> = (1..=10).flat_map(page).collect();
    let template = post(
        "/email-templates",
        serde_json::json!({"name": format!("Bench {run}"), "subject": "Hello {{ lead.first_name }}",
                           "text_body": "Hi {{ lead.first_name }}, a word from us."}),
    );
    let campaign = post(
        "/campaigns",
        serde_json::json!({"name": format!("Bench {run}"), "timezone": "UTC", "track_opens": false,
            "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "00:00", "to": "24:00"}}),
    );
    let c = campaign["data"]["id"].as_str().unwrap().to_string();
    post(
        &format!("/campaigns/{c}/steps"),
        serde_json::json!({"kind": "email", "template_id": template["data"]["id"]}),
    );
    let started = Instant::now();
    let enrolled = post(
        &format!("/campaigns/{c}/enrollments"),
        serde_json::json!({"filter": {"source": source}}),
    );
    let enroll_s = started.elapsed().as_secs_f64();
    assert_eq!(enrolled["data"]["enrolled"], leads, "{enrolled}");
    let never = || false;
    let (alone_p99, _) = w1_probe(addr, key, &ids, 3.0, &never);
    let received = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    post(&format!("/campaigns/{c}/activate"), serde_json::json!({}));
    let (sending_p99, probes, total) = std::thread::scope(|scope| {
        let probe = scope.spawn(|| {
            let done = || received.load(std::sync::atomic::Ordering::Relaxed) >= leads;
            w1_probe(addr, key, &ids, 600.0, &done)
        });
        while received.load(std::sync::atomic::Ordering::Relaxed) < leads {
            sink.within(Duration::from_secs(120))
                .expect("campaign emails stopped arriving");
            received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let total = started.elapsed().as_secs_f64();
        let (p99, n) = probe.join().unwrap();
        (p99, n, total)
    });
    println!(
        "campaign: {leads} leads enrolled in one call in {enroll_s:.2} s; every first email at the \
         SMTP sink {total:.2} s after activation = {:.0} emails/s; W1 p99 {sending_p99:.2} ms \
         while sending ({probes} probes) against {alone_p99:.2} ms alone = {:.2}x",
        leads as f64 / total,
        sending_p99 / alone_p99
    );
    println!(
        "RESULT {}",
        serde_json::json!({"workload": "w9", "requests": leads, "rps": leads as f64 / total,
            "seconds": total, "enroll_s": enroll_s, "w1_p99_ms": sending_p99,
            "w1_alone_p99_ms": alone_p99})
    );
    post(&format!("/campaigns/{c}/complete"), serde_json::json!({}));
}
