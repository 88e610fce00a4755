//! Import throughput: 100,000 CSV rows of leads, then as many companies, then as many deals
//! (each naming its stage, its company by domain and its lead by email), through the real HTTP
//! API into a real SQLite file with `synchronous=FULL`, each file in one transaction. Target
//! (issues 3 and 22): 100,000 leads in under 10 s on the 2-core reference machine.
//!
//! `cargo bench --bench import` (set `ROWS=` to change the size). Prints the figures; asserts
//! nothing about time, since a shared machine's timings drift.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clozup::clock::{Clock, SystemClock};
use clozup::config::{parse_rate_limit, ServeConfig};
use clozup::db::Db;
use clozup::server::{first_run, listen, run};
use clozup::AppState;

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov",
    "Thompson", "Allen",
];
const COMPANIES: &[&str] = &[
    "Acme, Inc.",
    "Globex",
    "Initech",
    "Umbrella \"Bio\"",
    "Hooli",
    "Stark Industries",
];
const TITLES: &[&str] = &[
    "VP Sales",
    "CTO",
    "Head of Growth",
    "Engineer",
    "CEO",
    "Procurement Lead",
];

fn main() {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(clozup::ids::new_id("clozup-bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = ServeConfig::with_db(dir.join("bench.sqlite"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.rate_limit = parse_rate_limit("off").unwrap();
    let db = Db::open(&config.db, &config.db_options()).unwrap();
    let now = SystemClock.now_ms();
    let key = first_run(&db, &config, now).unwrap().unwrap();
    let state = Arc::new(AppState::new(db, config, Arc::new(SystemClock)));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (acceptor, addr) = runtime.block_on(listen(state.config.bind)).unwrap();
    runtime.spawn(run(state.clone(), acceptor));

    let mut csv = String::with_capacity(rows * 100);
    csv.push_str("first_name,last_name,email,phone,title,company,country,status,source,tags\n");
    for i in 0..rows {
        let _ = writeln!(
            csv,
            "{},{},{}.{}.{i}@example.com,+1 555 {:04},{},\"{}\",US,new,import,q4;bench",
            FIRST[i % FIRST.len()],
            LAST[i / 7 % LAST.len()],
            FIRST[i % FIRST.len()].to_lowercase(),
            LAST[i / 7 % LAST.len()].to_lowercase(),
            i % 10_000,
            TITLES[i % TITLES.len()],
            COMPANIES[i % COMPANIES.len()].replace('"', "\"\""),
        );
    }
    let mut companies = String::with_capacity(rows * 80);
    companies.push_str("Company Name,Company Domain Name,Industry,Number of Employees,Country\n");
    for i in 0..rows {
        let _ = writeln!(
            companies,
            "\"{} {i}\",c{i}.example.com,{},{},US",
            COMPANIES[i % COMPANIES.len()].replace('"', "\"\""),
            TITLES[i % TITLES.len()],
            10 + i % 5000,
        );
    }
    const STAGES: &[&str] = &["Lead In", "Qualified", "Demo Scheduled", "Proposal Sent"];
    let mut deals = String::with_capacity(rows * 100);
    deals.push_str("Deal Name,Amount,Deal Stage,Company Domain,Contact Email,Close Date\n");
    for i in 0..rows {
        let _ = writeln!(
            deals,
            "Deal {i},\"{},{:03}.00\",{},c{i}.example.com,{}.{}.{i}@example.com,2027-0{}-15",
            1 + i % 90,
            i % 1000,
            STAGES[i % STAGES.len()],
            FIRST[i % FIRST.len()].to_lowercase(),
            LAST[i / 7 % LAST.len()].to_lowercase(),
            1 + i % 9,
        );
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    for (resource, file) in [
        ("leads", &csv),
        ("companies", &companies),
        ("deals", &deals),
    ] {
        let started = Instant::now();
        let mut resp = agent
            .post(format!("http://{addr}/api/v1/{resource}/import"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "text/csv")
            .send(file.as_bytes())
            .unwrap();
        let elapsed = started.elapsed();
        let body: serde_json::Value = resp.body_mut().read_json().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{body}");
        let created = body["data"]["created"].as_i64().unwrap();
        assert_eq!(created, rows as i64, "{}", body["data"]["errors"]);
        println!(
            "import {resource}: {rows} rows ({:.1} MiB of CSV) in {:.2} s = {:.0} rows/s (created {created}, errors {})",
            file.len() as f64 / 1048576.0,
            elapsed.as_secs_f64(),
            rows as f64 / elapsed.as_secs_f64(),
            body["data"]["errors"].as_array().map_or(0, Vec::len)
        );
    }
    state.shutdown.trigger();
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}
