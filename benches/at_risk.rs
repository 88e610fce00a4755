//! At-risk scoring over 100,000 open deals. Target (issue 4): under 60 ms of server time,
//! against a bare in-process scan of the same rows measured here too, without stalling other
//! requests.
//!
//! `cargo bench --bench at_risk` (`DEALS=` to change the size). Prints the figures.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clozup::clock::{Clock, SystemClock, DAY_MS};
use clozup::config::{parse_rate_limit, ServeConfig};
use clozup::db::{memo, Db};
use clozup::domain::{intelligence, listing::Paging, orgs};
use clozup::rules::deal_risk;
use clozup::server::{first_run, listen, run};
use clozup::AppState;
use rusqlite::params;

fn median(v: Vec<f64>) -> f64 {
    common::percentile(&v, 0.5)
}

fn p99(v: Vec<f64>) -> f64 {
    common::percentile(&v, 0.99)
}

fn main() {
    let n: i64 = std::env::var("DEALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(clozup::ids::new_id("clozup-bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = ServeConfig::with_db(dir.join("bench.sqlite"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.rate_limit = parse_rate_limit("off").unwrap();
    config.signal_sweep = Duration::from_secs(3600);
    let db = Db::open(&config.db, &config.db_options()).unwrap();
    let now = SystemClock.now_ms();
    let key = first_run(&db, &config, now).unwrap().unwrap();

    let seeded = Instant::now();
    let (org_id, first_deal) = db
        .blocking().write(|tx| {
            let org_id = orgs::first_id(tx)?.unwrap();
            let stages: Vec<(String, String)> = {
                let mut st = tx.prepare("SELECT id, pipeline_id FROM stages WHERE org_id = ?1 AND kind = 'open' ORDER BY position")?;
                let rows = st.query_map(params![org_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut deal = tx.prepare(
                "INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status, expected_close_date,
                                    stage_entered_at, last_activity_at, tags, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'USD', ?5, ?6, 'open', ?7, ?8, ?9, '[]', ?10, ?10)",
            )?;
            let mut task = tx.prepare(
                "INSERT INTO tasks (id, org_id, title, status, priority, due_at, deal_id, created_at, updated_at)
                 VALUES (?1, ?2, 'Follow up', 'open', 'medium', ?3, ?4, ?5, ?5)",
            )?;
            let mut first = String::new();
            for i in 0..n {
                let id = clozup::ids::new_id("deal");
                if i == 0 {
                    first = id.clone();
                }
                let (stage, pipeline) = &stages[(i % stages.len() as i64) as usize];
                let age = (i % 60) * DAY_MS;
                let close = if i % 7 == 0 { Some("2026-01-15") } else { None };
                deal.execute(params![
                    id, org_id, format!("Deal {i}"), 100_000 + (i % 97) * 10_000, pipeline, stage, close,
                    now - age, now - (i % 30) * DAY_MS, now - age - DAY_MS
                ])?;
                if i % 3 == 0 {
                    task.execute(params![clozup::ids::new_id("task"), org_id, now + ((i % 11) - 5) * DAY_MS, id, now])?;
                }
            }
            Ok((org_id, first))
        })
        .unwrap();
    println!(
        "seeded {n} open deals (and {} tasks) in {:.1} s",
        n / 3 + 1,
        seeded.elapsed().as_secs_f64()
    );

    // The bare scan: read the same deal columns and do nothing with them.
    let mut bare = Vec::new();
    let mut scored = Vec::new();
    let mut total = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let rows: i64 = db
            .blocking()
            .read(|c| Ok(common::bare_scan(c, &org_id)?))
            .unwrap();
        assert_eq!(rows, n);
        bare.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        total = db
            .blocking()
            .read(|c| {
                // The ranking itself, not one remembered from the last round.
                memo::afresh_here(|| {
                    intelligence::at_risk(
                        c,
                        &org_id,
                        None,
                        deal_risk::HIGH_FROM,
                        Paging::new(None, None)?,
                        now,
                    )
                })
            })
            .unwrap()
            .total;
        scored.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (bare_ms, scored_ms) = (median(bare), median(scored));
    println!("bare in-process scan of {n} open deals: {bare_ms:.1} ms (median of 7)");
    println!(
        "at-risk scoring in-process: {scored_ms:.1} ms (median of 7) = {:.2}x the bare scan; {total} deals at risk",
        scored_ms / bare_ms
    );

    // Over HTTP, and what it does to a concurrent get-by-id.
    let state = Arc::new(AppState::new(db, config, Arc::new(SystemClock)));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (acceptor, addr) = runtime.block_on(listen(state.config.bind)).unwrap();
    runtime.spawn(run(state.clone(), acceptor));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str| {
        let t = Instant::now();
        let mut r = agent
            .get(format!("http://{addr}/api/v1{path}"))
            .header("authorization", format!("Bearer {key}"))
            // Each ranking computed, not remembered from the last request (src/db/memo.rs).
            .header("cache-control", "no-cache")
            .call()
            .unwrap();
        let _ = r.body_mut().read_to_vec().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        t.elapsed().as_secs_f64() * 1000.0
    };
    let http: Vec<f64> = (0..7).map(|_| get("/deals/at-risk")).collect();
    println!(
        "GET /deals/at-risk over HTTP: {:.1} ms (median of 7)",
        median(http)
    );
    let list: Vec<f64> = (0..50).map(|_| get("/deals?per_page=25")).collect();
    println!(
        "GET /deals?per_page=25 (risk on every row): {:.2} ms (median of 50)",
        median(list)
    );
    let alone: Vec<f64> = (0..300)
        .map(|_| get(&format!("/deals/{first_deal}")))
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        let key = key.clone();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && runs < 200 {
                let mut r = agent
                    .get(format!("http://{addr}/api/v1/deals/at-risk"))
                    .header("authorization", format!("Bearer {key}"))
                    .header("cache-control", "no-cache")
                    .call()
                    .unwrap();
                let _ = r.body_mut().read_to_vec();
                runs += 1;
            }
        })
    };
    let during: Vec<f64> = (0..300)
        .map(|_| get(&format!("/deals/{first_deal}")))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.join().unwrap();
    println!(
        "GET /deals/{{id}}: p50 {:.2} ms, p99 {:.2} ms alone; p50 {:.2} ms, p99 {:.2} ms while at-risk runs in a loop",
        median(alone.clone()),
        p99(alone),
        median(during.clone()),
        p99(during)
    );
    state.shutdown.trigger();
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}
