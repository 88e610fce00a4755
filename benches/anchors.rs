//! In-process anchors for the benchmark harness (`bench/run`): what the API's workloads ask of
//! SQLite, run directly with rusqlite on the same database file, on one thread, with no HTTP,
//! so the harness can say how close the server comes to the database itself.
//!
//! - `w1`: a lead by a random id (the API's own query and row decoding, `leads::get`);
//! - `w2`: the open deals of a random owner, largest first, page of 25 with its total
//!   (`deals::list`, the API's query);
//! - `w3`: single-row inserts of a lead and its search entry, each its own transaction with
//!   `synchronous=FULL`;
//! - `w6-scan`: a bare scan of every open deal's scoring columns, and `w6`: the at-risk ranking
//!   itself (`intelligence::at_risk`).
//!
//! Run by `bench/suite.py` with `BENCH_DB` (the seeded file), `BENCH_DATA` (the id lists the
//! suite wrote) and `BENCH_SECONDS`; prints one `RESULT {json}` line per measure.

mod common;

use std::time::{Duration, Instant};

use clozup::clock::{Clock, SystemClock};
use clozup::db::memo;
use clozup::domain::deals::{self, DealFilter};
use clozup::domain::{intelligence, leads, listing::Paging, orgs};
use clozup::rules::deal_risk;
use rusqlite::{params, Connection, OpenFlags};

/// A small deterministic generator: the anchors pick ids the same way every run.
struct Rng(u64);

impl Rng {
    fn pick<'a>(&mut self, from: &'a [String]) -> &'a str {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        &from[(self.0 % from.len() as u64) as usize]
    }
}

fn ids(dir: &str, name: &str) -> Vec<String> {
    let path = format!("{dir}/clozup-{name}.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().map(str::to_string).collect()
}

/// Runs `op` over and over for `budget` (at least `min_runs` times) and prints its rate and
/// latency percentiles.
fn measure(name: &str, budget: Duration, min_runs: usize, mut op: impl FnMut()) {
    let mut took = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget || took.len() < min_runs {
        let t = Instant::now();
        op();
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = took.len();
    let at = |p: f64| common::percentile(&took, p);
    println!(
        "RESULT {}",
        serde_json::json!({
            "workload": name, "requests": n, "rps": n as f64 / seconds,
            "p50_ms": at(0.50), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1.0),
        })
    );
}

fn main() {
    let db = std::env::var("BENCH_DB").expect("BENCH_DB names the seeded database");
    let data = std::env::var("BENCH_DATA").expect("BENCH_DATA names the id lists' folder");
    let budget = Duration::from_secs_f64(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5.0),
    );
    let (leads_ids, owners) = (ids(&data, "leads"), ids(&data, "owners"));
    // The server's own read settings.
    let conn = Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    conn.set_prepared_statement_cache_capacity(256);
    conn.execute_batch("PRAGMA cache_size = -16000; PRAGMA temp_store = MEMORY;")
        .unwrap();
    let org = orgs::first_id(&conn)
        .unwrap()
        .expect("a seeded organization");
    let now = SystemClock.now_ms();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    measure("w1", budget, 100, || {
        leads::get(&conn, &org, rng.pick(&leads_ids)).unwrap();
    });
    measure("w2", budget, 100, || {
        let filter = DealFilter {
            status: Some("open".into()),
            owner_id: Some(rng.pick(&owners).to_string()),
            ..DealFilter::default()
        };
        let page = Paging::new(None, Some(25)).unwrap();
        deals::list(&conn, &org, &filter, Some("-value"), page, now).unwrap();
    });
    measure("w6-scan", budget, 7, || {
        common::bare_scan(&conn, &org).unwrap();
    });
    // Computed afresh each time, as W6 asks the server to (`Cache-Control: no-cache`).
    measure("w6", budget, 7, || {
        let page = Paging::new(None, None).unwrap();
        memo::afresh_here(|| {
            intelligence::at_risk(&conn, &org, None, deal_risk::HIGH_FROM, page, now).unwrap()
        });
    });

    // Single-row durable inserts on a writer connection like the server's, removed afterwards.
    let writer = Connection::open(&db).unwrap();
    writer
        .execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
        .unwrap();
    let mut n = 0;
    measure("w3", budget, 100, || {
        n += 1;
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        writer
            .execute(
                "INSERT INTO leads (id, org_id, first_name, last_name, email, status, source, tags,
                                    created_at, updated_at)
                 VALUES (?1, ?2, 'Anchor', ?3, ?4, 'new', 'bench', '[]', ?5, ?5)",
                params![
                    format!("lead_anchor{n:012}"),
                    org,
                    format!("Lead {n}"),
                    format!("anchor-{n}@example.com"),
                    now
                ],
            )
            .unwrap();
        // Its search entry, written before the commit as every server transaction does.
        clozup::db::search_queue::flush_search_queue(&writer).unwrap();
        writer.execute_batch("COMMIT").unwrap();
    });
    writer
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM leads WHERE id LIKE 'lead_anchor%';")
        .unwrap();
    clozup::db::search_queue::flush_search_queue(&writer).unwrap();
    writer.execute_batch("COMMIT").unwrap();
}
