//! `clozup seed` and `serve --demo`: a realistic, deterministic data set for demos and
//! benchmarks: a team, companies, leads, deals spread over the pipeline (some won, some lost,
//! some stalled), open tasks (some overdue) and a history of activities.
//!
//! The same `--seed` and `--as-of` give the same rows, ids included. Rows are written in large
//! transactions with prepared statements, straight to the tables (no events: seeding is not a
//! change anyone subscribed to), then lead scores are computed by the same code as the API's.

use crate::db::CachedRow;
use std::io::Write;

use crate::db::Tx;
use rusqlite::params;

use crate::clock::{Millis, DAY_MS};
use crate::db::Db;
use crate::ids::id_at;

mod campaigns;
mod words;
use words::{
    ACTIVITIES, COMPANY_A, COMPANY_B, COUNTRIES, FIRST, INDUSTRIES, LAST, PRODUCTS, SOURCES, TASKS,
    TITLES,
};

/// How much to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Team members besides the owner.
    pub users: usize,
    /// Companies.
    pub companies: usize,
    /// Leads.
    pub leads: usize,
    /// Deals.
    pub deals: usize,
    /// Activities.
    pub activities: usize,
    /// Campaigns with a history (at most 3).
    pub campaigns: usize,
}

impl Sizes {
    /// What `serve --demo` starts with: a busy small team.
    pub const DEMO: Sizes = Sizes {
        users: 8,
        companies: 400,
        leads: 2_000,
        deals: 1_200,
        activities: 20_000,
        campaigns: 3,
    };
}

/// What was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Users.
    pub users: usize,
    /// Companies.
    pub companies: usize,
    /// Leads.
    pub leads: usize,
    /// Deals.
    pub deals: usize,
    /// Open tasks.
    pub tasks: usize,
    /// Activities.
    pub activities: usize,
    /// Campaigns.
    pub campaigns: usize,
}

/// SplitMix64: small, fast and good enough for made-up data; seeded, so runs repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// A time up to `days` before `as_of`.
    fn within(&mut self, as_of: Millis, days: i64) -> Millis {
        as_of - (self.next() % (days.max(1) * DAY_MS) as u64) as i64
    }

    fn id(&mut self, prefix: &str, at: Millis) -> String {
        let random = (u128::from(self.next()) << 64) | u128::from(self.next());
        id_at(prefix, at, random)
    }
}

fn weighted<'a>(rng: &mut Rng, table: &'a [(&'a str, usize)]) -> &'a str {
    let total: usize = table.iter().map(|(_, w)| w).sum();
    let mut n = rng.below(total);
    for (item, w) in table {
        if n < *w {
            return item;
        }
        n -= w;
    }
    table[0].0
}

/// Rows per transaction: big enough that syncs do not dominate, small enough to show progress.
const CHUNK: usize = 50_000;

/// A progress line on stderr: redrawn in place on a terminal, every tenth otherwise.
struct Progress {
    tty: bool,
    quiet: bool,
}

impl Progress {
    fn show(&self, what: &str, done: usize, total: usize) {
        if self.quiet || total == 0 {
            return;
        }
        let width = 30;
        let filled = done * width / total;
        let line = format!(
            "{what:<11} [{}{}] {done}/{total}",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}");
            if done == total {
                let _ = writeln!(err);
            }
        } else if done == total || (done * 10 / total) != ((done - 1) * 10 / total) {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// An activity drawn before it is written.
struct PlannedActivity {
    id: String,
    kind: &'static str,
    deal: Option<usize>,
    lead: Option<usize>,
    at: Millis,
    with: &'static str,
    user: usize,
    duration: Option<i64>,
}

/// Writes `count` rows in chunks, one transaction each, calling `row(tx, i)` for each.
fn chunked(
    db: &Db,
    what: &str,
    count: usize,
    progress: &Progress,
    mut row: impl FnMut(&Tx<'_>, usize) -> rusqlite::Result<()>,
) -> Result<(), String> {
    let mut done = 0;
    while done < count {
        let end = (done + CHUNK).min(count);
        db.blocking()
            .write(|tx| {
                for i in done..end {
                    row(tx, i)?;
                }
                Ok(())
            })
            .map_err(|e| format!("seeding {what}: {e}"))?;
        done = end;
        progress.show(what, done, count);
    }
    Ok(())
}

/// The writer's page cache while seeding, in KiB; only what the data set needs is allocated.
const SEED_CACHE_KIB: i64 = 512 * 1024;

/// Fills organization `org_id` with `sizes` of made-up data, as of `as_of`, from `seed`;
/// campaign mail is sent from addresses on `email_domain`.
pub fn seed(
    db: &Db,
    org_id: &str,
    sizes: Sizes,
    seed: u64,
    as_of: Millis,
    quiet: bool,
    email_domain: &str,
) -> Result<Report, String> {
    // A million activities put index entries all over the file: with the server's page cache
    // they spill and are read back (101 s for 100k/100k/1M, against 43 s with this cache).
    let _cache = db.bulk_cache(SEED_CACHE_KIB);
    let progress = Progress {
        tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        quiet,
    };
    let mut rng = Rng(seed);
    let err = |e: crate::domain::error::DomainError| e.to_string();
    let (pipeline, stages, owner): (String, Vec<(String, String, String)>, String) = db
        .blocking().read(|c| {
            let pipeline: String = c.cached_row(
                "SELECT id FROM pipelines WHERE org_id = ?1 ORDER BY is_default DESC, created_at LIMIT 1",
                params![org_id],
                |r| r.get(0),
            )?;
            let mut st = c.prepare(
                "SELECT id, name, kind FROM stages WHERE pipeline_id = ?1 ORDER BY position",
            )?;
            let stages = st
                .query_map(params![pipeline], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let owner: String = c.cached_row(
                "SELECT id FROM users WHERE org_id = ?1 AND role = 'owner' LIMIT 1",
                params![org_id],
                |r| r.get(0),
            )?;
            Ok((pipeline, stages, owner))
        })
        .map_err(err)?;
    let open: Vec<&(String, String, String)> = stages.iter().filter(|s| s.2 == "open").collect();
    let won = stages.iter().find(|s| s.2 == "won");
    let lost = stages.iter().find(|s| s.2 == "lost");
    if open.is_empty() {
        return Err("the default pipeline has no open stage to put deals in".into());
    }
    let currency: String = db
        .blocking()
        .read(|c| {
            Ok(c.cached_row(
                "SELECT currency FROM organizations WHERE id = ?1",
                params![org_id],
                |r| r.get(0),
            )?)
        })
        .map_err(err)?;
    let mut report = Report::default();

    let mut users = vec![owner];
    chunked(db, "users", sizes.users, &progress, |tx, i| {
        let at = rng.within(as_of, 730);
        let id = rng.id("usr", at);
        let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
        tx.prepare_cached(
            "INSERT INTO users (id, org_id, email, name, role, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'member', ?5, ?5)",
        )?
        .execute(params![
            id,
            org_id,
            format!("rep{i}@team.example"),
            name,
            at
        ])?;
        users.push(id);
        Ok(())
    })?;
    report.users = sizes.users;

    let mut companies: Vec<(String, String)> = Vec::with_capacity(sizes.companies);
    chunked(db, "companies", sizes.companies, &progress, |tx, i| {
        let at = rng.within(as_of, 730);
        let id = rng.id("co", at);
        let name = format!("{} {} {}", rng.pick(COMPANY_A), rng.pick(COMPANY_B), i + 1);
        let domain = format!("{}.example", name.to_ascii_lowercase().replace(' ', "-"));
        let size = [5, 20, 50, 200, 1_000, 5_000][rng.below(6)];
        tx.prepare_cached(
            "INSERT INTO companies (id, org_id, name, domain, industry, size, country, website,
                                    owner_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        )?
        .execute(params![
            id,
            org_id,
            name,
            domain,
            rng.pick(INDUSTRIES),
            size,
            rng.pick(COUNTRIES),
            format!("https://{domain}"),
            rng.pick(&users),
            at
        ])?;
        companies.push((id, domain));
        Ok(())
    })?;
    report.companies = sizes.companies;

    let mut leads: Vec<(String, Millis)> = Vec::with_capacity(sizes.leads);
    chunked(db, "leads", sizes.leads, &progress, |tx, i| {
        let at = rng.within(as_of, 540);
        let id = rng.id("lead", at);
        let (first, last) = (*rng.pick(FIRST), *rng.pick(LAST));
        let company = (!companies.is_empty() && rng.chance(85)).then(|| rng.pick(&companies));
        let domain = company.map_or("mail.example", |c| c.1.as_str());
        let email = format!(
            "{}.{}{i}@{domain}",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase().replace(' ', "")
        );
        let status = ["new", "new", "contacted", "contacted", "qualified", "lost"][rng.below(6)];
        tx.prepare_cached(
            "INSERT INTO leads (id, org_id, first_name, last_name, email, phone, title, company_id,
                                country, status, source, owner_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
        )?
        .execute(params![
            id,
            org_id,
            first,
            last,
            email,
            rng.chance(60).then(|| format!("+1 555 {:04}", i % 10_000)),
            rng.chance(80).then(|| *rng.pick(TITLES)),
            company.map(|c| c.0.clone()),
            rng.pick(COUNTRIES),
            status,
            rng.pick(SOURCES),
            rng.pick(&users),
            at
        ])?;
        leads.push((id, at));
        Ok(())
    })?;
    report.leads = sizes.leads;

    let mut deals: Vec<(String, Millis)> = Vec::with_capacity(sizes.deals);
    let mut tasks = 0;
    chunked(db, "deals", sizes.deals, &progress, |tx, i| {
        let at = rng.within(as_of, 365);
        let id = rng.id("deal", at);
        let lead = (!leads.is_empty()).then(|| rng.pick(&leads).0.clone());
        let company = (!companies.is_empty()).then(|| rng.pick(&companies).0.clone());
        let roll = rng.below(100);
        // Most deals are open, early stages busier than late ones; a fifth won, a sixth lost.
        let (stage, status) = match (roll, won, lost) {
            (0..=19, Some(w), _) => (w, "won"),
            (20..=35, _, Some(l)) => (l, "lost"),
            _ => {
                let s = rng.below(open.len()).min(rng.below(open.len()));
                (open[s], "open")
            }
        };
        let entered = at.max(rng.within(as_of, 60));
        let closed = (status != "open").then_some(entered);
        let close_date = crate::timefmt::format_ms(rng.within(as_of + 90 * DAY_MS, 120));
        let value = 1_000 * (1 + rng.below(50) as i64) * [1, 1, 2, 5, 10][rng.below(5)] * 100;
        let owner = rng.pick(&users).clone();
        tx.prepare_cached(
            "INSERT INTO deals (id, org_id, title, value, currency, pipeline_id, stage_id, status,
                                owner_id, lead_id, company_id, expected_close_date, lost_reason,
                                closed_at, stage_entered_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
        )?
        .execute(params![
            id,
            org_id,
            format!("{} {} {}", rng.pick(COMPANY_A), rng.pick(PRODUCTS), i + 1),
            value,
            currency,
            pipeline,
            stage.0,
            status,
            owner,
            lead,
            company,
            &close_date[..10],
            (status == "lost").then_some("Chose a competitor"),
            closed,
            entered,
            at
        ])?;
        tx.prepare_cached(
            "INSERT INTO deal_stage_history (id, org_id, deal_id, to_stage_id, to_stage_name,
                                             changed_at, actor_type, actor_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'system', 'seed')",
        )?
        .execute(params![
            rng.id("dsh", entered),
            org_id,
            id,
            stage.0,
            stage.1,
            entered
        ])?;
        if status == "open" && rng.chance(40) {
            // A next step, overdue one time in three.
            let due = as_of + (rng.below(21) as i64 - 7) * DAY_MS;
            tx.prepare_cached(
                "INSERT INTO tasks (id, org_id, title, status, priority, due_at, assignee_id, deal_id,
                                    created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![
                rng.id("task", entered),
                org_id,
                rng.pick(TASKS),
                ["low", "medium", "high", "urgent"][rng.below(4)],
                due,
                owner,
                id,
                entered
            ])?;
            tasks += 1;
        }
        deals.push((id, at));
        Ok(())
    })?;
    report.deals = sizes.deals;
    report.tasks = tasks;

    // Activities are planned first and written in time order: their time-ordered ids and their
    // time indexes then grow at the end instead of splitting pages all over the file (a
    // million took 37 s in random order). The same draws, in the same order, as row by row.
    let mut plan: Vec<PlannedActivity> = (0..sizes.activities)
        .map(|_| {
            let kind = weighted(&mut rng, ACTIVITIES);
            // Most activities are about deals, the rest about leads; none before its subject.
            let on_deal = !deals.is_empty() && (leads.is_empty() || rng.chance(70));
            let (deal, lead, since) = if on_deal {
                let d = rng.below(deals.len());
                (Some(d), None, deals[d].1)
            } else {
                let l = rng.below(leads.len());
                (None, Some(l), leads[l].1)
            };
            let span = ((as_of - since) / DAY_MS).max(1);
            let at = rng.within(as_of, span.min(180));
            PlannedActivity {
                id: rng.id("act", at),
                kind,
                deal,
                lead,
                at,
                with: LAST[rng.below(LAST.len())],
                user: rng.below(users.len()),
                duration: matches!(kind, "call" | "meeting")
                    .then(|| 60 * (5 + rng.below(55) as i64)),
            }
        })
        .collect();
    plan.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    chunked(db, "activities", plan.len(), &progress, |tx, i| {
        let a = &plan[i];
        tx.prepare_cached(
            "INSERT INTO activities (id, org_id, type, subject, deal_id, lead_id, user_id, occurred_at,
                                     duration_seconds, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8)",
        )?
        .execute(params![
            a.id,
            org_id,
            a.kind,
            format!("{} with {}", a.kind.replace('_', " "), a.with),
            a.deal.map(|d| &deals[d].0),
            a.lead.map(|l| &leads[l].0),
            users[a.user],
            a.at,
            a.duration
        ])?;
        Ok(())
    })?;
    report.activities = sizes.activities;

    // Derived columns, as the API keeps them: last activity on deals and leads, lead scores.
    if !quiet {
        eprintln!("finishing: last activity times and lead scores");
    }
    db.blocking()
        .write(|tx| {
            tx.execute(
                "UPDATE deals SET last_activity_at =
                 (SELECT max(occurred_at) FROM activities a WHERE a.deal_id = deals.id)
             WHERE org_id = ?1",
                params![org_id],
            )?;
            tx.execute(
                "UPDATE leads SET last_activity_at =
                 (SELECT max(occurred_at) FROM activities a WHERE a.lead_id = leads.id)
             WHERE org_id = ?1",
                params![org_id],
            )?;
            crate::domain::scores::refresh_where(tx, org_id, "org_id = ?", org_id, as_of)?;
            Ok(())
        })
        .map_err(err)?;
    if sizes.campaigns > 0 && !quiet {
        eprintln!("campaigns: played forward to the seed's time");
    }
    report.campaigns = campaigns::seed(
        db,
        org_id,
        &users[0],
        &leads,
        sizes.campaigns,
        &mut rng,
        as_of,
        email_domain,
    )
    .map_err(err)?;
    Ok(report)
}
