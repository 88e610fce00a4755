//! Analytics and performance figures match sums computed independently from a seeded data set.

use crate::common::{TestServer, START_MS};
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

struct Seeded {
    s: TestServer,
    rep_key: String,
    rep_id: String,
    owner_id: String,
}

/// Owner and rep; deals: owner wins 10,000 (cycle 10 days) and 5,000 (cycle 20 days), loses
/// 2,000; rep wins 30,000 (cycle 4 days); open: 1,000 in Lead In (owner), 4,000 in Qualified
/// (rep), 20,000 in Negotiation (rep, closing 2026-12-15), 8,000 in Proposal Sent (owner,
/// closing 2027-01-10). Activities: owner 2 calls, 1 meeting, 3 emails; rep 1 meeting, 1 email
/// and a reply on the rep's deal.
fn seed() -> Seeded {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let owner_id = s.get("/me", &k).data(200)["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let owner = s.owner_session();
    let (rep_id, rep_key) = s.user_with_session(&owner, "rep@example.com", "member");
    let deal = |key: &str, title: &str, value: f64, extra: Value| {
        let mut body = json!({"title": title, "value": value});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        id(&s.post("/deals", key, body).data(201))
    };
    let move_at = |key: &str, deal: &str, day: i64, stage: &str| {
        s.clock.set(START_MS + day * DAY);
        s.post(&format!("/deals/{deal}/move"), key, json!({"stage": stage}))
            .data(200);
    };
    s.clock.set(START_MS);
    let w1 = deal(&k, "Won 1", 10_000.0, json!({}));
    let w2 = deal(&k, "Won 2", 5_000.0, json!({}));
    let l1 = deal(&k, "Lost 1", 2_000.0, json!({}));
    let w3 = deal(&rep_key, "Won 3", 30_000.0, json!({}));
    deal(&k, "Open 1", 1_000.0, json!({}));
    let o2 = deal(&rep_key, "Open 2", 4_000.0, json!({}));
    let o3 = deal(
        &rep_key,
        "Open 3",
        20_000.0,
        json!({"expected_close_date": "2026-12-15"}),
    );
    let o4 = deal(
        &k,
        "Open 4",
        8_000.0,
        json!({"expected_close_date": "2027-01-10"}),
    );
    move_at(&k, &w1, 2, "Qualified");
    move_at(&rep_key, &o2, 2, "Qualified");
    move_at(&rep_key, &w3, 4, "Closed Won");
    move_at(&k, &l1, 5, "Closed Lost");
    move_at(&k, &w1, 10, "Closed Won");
    move_at(&rep_key, &o3, 10, "Negotiation");
    move_at(&k, &o4, 12, "Proposal Sent");
    move_at(&k, &w2, 20, "Closed Won");
    s.clock.set(START_MS + 21 * DAY);
    for t in ["call", "call", "meeting", "email", "email", "email"] {
        s.post("/activities", &k, json!({"type": t, "deal_id": o4}))
            .data(201);
    }
    for t in ["meeting", "email"] {
        s.post("/activities", &rep_key, json!({"type": t, "deal_id": o3}))
            .data(201);
    }
    s.record_system_activity(&o3, "email_received", Some("Re: terms"));
    Seeded {
        s,
        rep_key,
        rep_id,
        owner_id,
    }
}

#[test]
fn overview_matches_independent_sums() {
    let Seeded { s, .. } = seed();
    let o = s.get("/analytics/overview", &s.admin_key).data(200);
    assert_eq!(o["currency"], "USD");
    assert_eq!(
        (o["total_deals"].as_i64(), o["open_deals"].as_i64()),
        (Some(8), Some(4))
    );
    assert_eq!(
        (o["won_deals"].as_i64(), o["lost_deals"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(o["won_value"], 45_000.0);
    assert_eq!(o["win_rate"], 0.75);
    assert_eq!(o["average_deal_size"], 15_000.0);
    // Cycles: 10, 20 and 4 days.
    assert_eq!(o["average_sales_cycle_days"], 11.33);
    assert_eq!(o["pipeline_value"], 33_000.0);
    // 1,000×10% + 4,000×20% + 20,000×80% + 8,000×60%
    assert_eq!(
        o["weighted_pipeline_value"],
        100.0 + 800.0 + 16_000.0 + 4_800.0
    );
    let stages: Vec<(String, i64)> = o["by_stage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                x["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("Lead In".into(), 1),
            ("Qualified".into(), 1),
            ("Demo Scheduled".into(), 0),
            ("Proposal Sent".into(), 1),
            ("Negotiation".into(), 1)
        ]
    );
    let leads: i64 = o["leads_by_status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["count"].as_i64().unwrap())
        .sum();
    assert_eq!(leads, 0);
    // A window: only what was won in the first week.
    let from = clozup::timefmt::format_ms(START_MS);
    let to = clozup::timefmt::format_ms(START_MS + 7 * DAY);
    let week = s
        .get(
            &format!("/analytics/overview?from={from}&to={to}"),
            &s.admin_key,
        )
        .data(200);
    assert_eq!(
        (
            week["won_deals"].as_i64(),
            week["lost_deals"].as_i64(),
            week["won_value"].as_f64()
        ),
        (Some(1), Some(1), Some(30_000.0))
    );
    assert_eq!(week["win_rate"], 0.5);
    // An inverted window is empty: nothing was created in it.
    let empty = s
        .get(
            &format!("/analytics/overview?from={to}&to={from}"),
            &s.admin_key,
        )
        .data(200);
    assert_eq!(empty["total_deals"], 0);
    assert_eq!(empty["won_value"], 0.0);
    assert_eq!(empty["from"], empty["to"]);
}

#[test]
fn funnel_and_forecast() {
    let Seeded { s, .. } = seed();
    let f = s.get("/analytics/funnel", &s.admin_key).data(200);
    let row = |name: &str| {
        f.as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()
            .clone()
    };
    // All 8 deals entered Lead In; 4 of them later went further along the board (Won 1, Open 2,
    // Open 3, Open 4, Won 3 and Won 2 skip ahead: 6), Lost 1 fell to the last column as well.
    assert_eq!(row("Lead In")["entered"], 8);
    assert_eq!(
        row("Lead In")["conversion_to_next"],
        0.88,
        "7 of 8 left Lead In for a later column"
    );
    assert_eq!(row("Qualified")["entered"], 2);
    assert_eq!(row("Qualified")["conversion_to_next"], 0.5);
    assert_eq!(
        row("Qualified")["average_days_in_stage"],
        8.0,
        "Won 1 spent days 2→10 there"
    );
    assert_eq!(row("Qualified")["current"], 1);
    assert_eq!(row("Closed Won")["entered"], 3);
    assert!(row("Closed Won")["conversion_to_next"].is_null());

    let fc = s.get("/analytics/forecast", &s.admin_key).data(200);
    let months: Vec<(String, i64, f64, f64)> = fc
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().into(),
                m["deals"].as_i64().unwrap(),
                m["value"].as_f64().unwrap(),
                m["weighted_value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        months,
        [
            ("2026-12".into(), 1, 20_000.0, 16_000.0),
            ("2027-01".into(), 1, 8_000.0, 4_800.0),
            ("unscheduled".into(), 2, 5_000.0, 900.0)
        ]
    );
}

#[test]
fn leaderboard_ranks_by_the_chosen_metric() {
    let Seeded {
        s,
        rep_id,
        owner_id,
        ..
    } = seed();
    let from = clozup::timefmt::format_ms(START_MS - DAY);
    let to = clozup::timefmt::format_ms(START_MS + 30 * DAY);
    let board = s
        .get(
            &format!("/performance/leaderboard?from={from}&to={to}"),
            &s.admin_key,
        )
        .data(200);
    let rep = board
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == rep_id.as_str())
        .unwrap()
        .clone();
    let owner = board
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == owner_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (rep["rank"].as_i64(), owner["rank"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        (
            rep["revenue_closed"].as_f64(),
            owner["revenue_closed"].as_f64()
        ),
        (Some(30_000.0), Some(15_000.0))
    );
    assert_eq!(
        (rep["deals_won"].as_i64(), owner["deals_won"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        (
            rep["pipeline_generated"].as_f64(),
            owner["pipeline_generated"].as_f64()
        ),
        (Some(54_000.0), Some(26_000.0))
    );
    assert_eq!(
        (
            owner["calls_made"].as_i64(),
            owner["meetings_booked"].as_i64(),
            owner["emails_sent"].as_i64()
        ),
        (Some(2), Some(1), Some(3))
    );
    assert_eq!(rep["reply_rate"], 1.0);
    assert_eq!(owner["reply_rate"], 0.0);
    let by_calls = s
        .get(
            &format!("/performance/leaderboard?from={from}&to={to}&metric=calls_made"),
            &s.admin_key,
        )
        .data(200);
    assert_eq!(by_calls[0]["user_id"], owner_id.as_str());
    // A period narrowed by from/to: the week from a moment after every activity is empty.
    let narrowed = s
        .get(
            "/performance/leaderboard?period=week&from=2027-01-01T00:00:00Z",
            &s.admin_key,
        )
        .data(200);
    assert!(narrowed
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["activities"] == 0 && p["revenue_closed"] == 0.0));
    s.get("/performance/leaderboard?metric=vibes", &s.admin_key)
        .error(422, "validation_error");
}

#[test]
fn quotas_report_attainment_and_pace() {
    let Seeded {
        s,
        rep_key,
        rep_id,
        owner_id,
    } = seed();
    // The clock is on 2026-12-19 at noon (day 21): December is 18.5/31 elapsed.
    let set = s.call(
        "PUT",
        "/performance/quotas",
        Some(&s.admin_key),
        Some(
            json!({"period": "month", "quotas": [
                {"user_id": owner_id, "revenue": 10000, "meetings": 10},
                {"user_id": rep_id, "deals": 1}
            ]})
            .to_string()
            .as_bytes(),
        ),
        &[],
    );
    let q = set.data(200);
    assert_eq!(q.as_array().unwrap().len(), 2);
    let by_user = |u: &str| {
        q.as_array()
            .unwrap()
            .iter()
            .find(|x| x["user_id"] == u)
            .unwrap()
            .clone()
    };
    let owner = by_user(&owner_id);
    assert_eq!(owner["period_start"], "2026-12-01");
    // In December (from day 3) the owner won 15,000 (Won 1 on Dec 8, Won 2 on Dec 18) and had
    // 1 meeting: revenue is ahead, meetings far behind the 60% pace.
    assert_eq!(
        owner["revenue"],
        json!({"target": 10000.0, "actual": 15000.0, "attainment": 1.5})
    );
    assert_eq!(owner["meetings"]["attainment"], 0.1);
    assert_eq!(owner["status"], "behind");
    let rep = by_user(&rep_id);
    assert_eq!(rep["deals"]["actual"], 1.0, "Won 3 on Dec 2");
    assert_eq!(rep["status"], "on_track");
    assert_eq!(rep["period_elapsed"], 0.6, "Dec 19, noon: 18.5 of 31 days");
    let november = s
        .get(
            "/performance/quotas?period=month&date=2026-11-15",
            &s.admin_key,
        )
        .data(200);
    assert!(november.as_array().unwrap().is_empty());
    let reread = s.get("/performance/quotas", &rep_key).data(200);
    assert_eq!(reread.as_array().unwrap().len(), 2);
    s.call(
        "PUT",
        "/performance/quotas",
        Some(&rep_key),
        Some(br#"{"period": "month", "quotas": []}"#),
        &[],
    )
    .error(403, "forbidden");
    s.call(
        "PUT",
        "/performance/quotas",
        Some(&s.admin_key),
        Some(br#"{"period": "week", "quotas": []}"#),
        &[],
    )
    .error(422, "validation_error");
}

/// Issue 21 point 7: an activity logged with `user_id` is credited to that teammate (an agent or
/// a dialer sync logs the call for the rep who made it) and the leaderboard counts it for them.
/// Admin and owner credentials may name anyone active; a member only themself.
#[test]
fn activities_are_credited_to_the_teammate_named() {
    let Seeded {
        s,
        rep_key,
        rep_id,
        owner_id,
    } = seed();
    let deal = id(&s
        .post("/deals", &s.admin_key, json!({"title": "Dialer"}))
        .data(201));
    let calls = |user: &str| -> i64 {
        let board = s.get("/performance/leaderboard", &s.admin_key).data(200);
        board
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["user_id"] == user)
            .unwrap()["calls_made"]
            .as_i64()
            .unwrap()
    };
    let (rep_before, owner_before) = (calls(&rep_id), calls(&owner_id));
    // The admin key (the owner's) logs a call the rep made.
    let a = s
        .post(
            "/activities",
            &s.admin_key,
            json!({"type": "call", "deal_id": deal, "user_id": rep_id, "outcome": "connected"}),
        )
        .data(201);
    assert_eq!(a["user_id"], rep_id.as_str());
    assert_eq!(calls(&rep_id), rep_before + 1);
    assert_eq!(calls(&owner_id), owner_before, "not the key's creator");
    // The event says who logged it: the key, acting for its owner.
    let log = s
        .get(
            "/events/log?types=activity.created&per_page=100",
            &s.admin_key,
        )
        .data(200);
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["data"]["object"]["id"], a["id"]);
    assert_eq!(last["data"]["object"]["user_id"], rep_id.as_str());
    assert_eq!(last["actor"]["type"], "api_key", "{last}");
    // A member may credit themself, not a teammate.
    s.post(
        "/activities",
        &rep_key,
        json!({"type": "call", "deal_id": deal, "user_id": rep_id}),
    )
    .data(201);
    let e = s
        .post(
            "/activities",
            &rep_key,
            json!({"type": "call", "deal_id": deal, "user_id": owner_id}),
        )
        .error(403, "forbidden");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("admin's or owner's"),
        "{e}"
    );
    // Someone who is not an active member of the organization is refused on the field.
    let e = s
        .post(
            "/activities",
            &s.admin_key,
            json!({"type": "call", "deal_id": deal, "user_id": "usr_01M8H6J8V5EZ2NYY830B06ZRR9"}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "user_id");
    assert_eq!(calls(&rep_id), rep_before + 2);
    assert_eq!(calls(&owner_id), owner_before);
}

/// Issue 21 point 12: the organization's time zone is a real one, and every named period is cut
/// in it. On 29 March 2026 Berlin's clocks jump from 02:00 to 03:00 (01:00 UTC): that day runs
/// 23:00 UTC on the 28th to 22:00 UTC on the 29th, which is what `period=day` counts, and a
/// month's quota starts on Berlin's first day of the month.
#[test]
fn periods_are_cut_in_the_organizations_time_zone_across_dst() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let at = |t: &str| clozup::timefmt::parse_rfc3339(t).unwrap();
    let e = s
        .patch("/org", &k, json!({"timezone": "Mars/Olympus"}))
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "timezone");
    assert!(e["message"].as_str().unwrap().contains("IANA"), "{e}");
    assert_eq!(s.get("/org", &k).data(200)["timezone"], "UTC");

    let deal = id(&s
        .post("/deals", &k, json!({"title": "Across DST"}))
        .data(201));
    for (kind, when) in [
        ("meeting", "2026-03-28T22:30:00Z"), // 23:30 on the 28th in Berlin: the day before
        ("call", "2026-03-28T23:30:00Z"),    // 00:30 on the 29th in Berlin
        ("call", "2026-03-29T21:30:00Z"),    // 23:30 CEST on the 29th
        ("meeting", "2026-03-29T22:30:00Z"), // 00:30 on the 30th in Berlin
    ] {
        s.post(
            "/activities",
            &k,
            json!({"type": kind, "deal_id": deal, "occurred_at": when}),
        )
        .data(201);
    }
    s.clock.set(at("2026-03-29T20:00:00Z")); // 22:00 CEST
    let today = |s: &TestServer| -> (i64, i64) {
        let board = s
            .get("/performance/leaderboard?period=day", &s.admin_key)
            .data(200);
        (
            board[0]["calls_made"].as_i64().unwrap(),
            board[0]["meetings_booked"].as_i64().unwrap(),
        )
    };
    assert_eq!(
        today(&s),
        (1, 1),
        "in UTC the 29th holds the last call and the last meeting"
    );
    let org = s
        .patch("/org", &k, json!({"timezone": "Europe/Berlin"}))
        .data(200);
    assert_eq!(org["timezone"], "Europe/Berlin");
    assert_eq!(
        today(&s),
        (2, 0),
        "Berlin's 29th holds both calls and no meeting"
    );

    // A month's quota, set at 23:30 UTC on 31 October: in Berlin it is already November.
    s.clock.set(at("2026-10-31T23:30:00Z"));
    let owner = s.get("/me", &k).data(200)["user"]["id"].clone();
    let q = s
        .call(
            "PUT",
            "/performance/quotas",
            Some(&k),
            Some(
                json!({"period": "month", "quotas": [{"user_id": owner, "activities": 10}]})
                    .to_string()
                    .as_bytes(),
            ),
            &[],
        )
        .data(200);
    assert_eq!(q[0]["period_start"], "2026-11-01");
    assert_eq!(q[0]["period_elapsed"], 0.0);
}

/// The overview is remembered until the next commit (src/db/memo.rs): a change the server did
/// not commit (made here behind its back, so no commit number moves) is not seen until a
/// request asks for it afresh with `Cache-Control: no-cache`, until anything is committed, or
/// until the remembered answer is a minute of the clock old. Nothing the server commits is ever
/// answered from before it.
#[test]
fn the_overview_is_remembered_until_a_commit_a_minute_or_no_cache() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let org = s.get("/org", &k).data(200);
    let (org_id, currency) = (
        org["id"].as_str().unwrap().to_string(),
        org["currency"].as_str().unwrap().to_string(),
    );
    let other = if currency == "EUR" { "USD" } else { "EUR" };
    let deal = id(&s
        .post("/deals", &k, json!({"title": "Abroad", "value": 500.0}))
        .data(201));
    // The key's first use is marked by a write of its own, after the answer: wait for it, so
    // that no commit lands between the reads below but those the test makes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.count("SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the key's use was never marked"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let other_currency = |headers: &[(&str, &str)]| {
        s.call("GET", "/analytics/overview", Some(&k), None, headers)
            .data(200)["other_currency_deals"]
            .as_i64()
            .unwrap()
    };
    let behind_the_back = |currency: &str| {
        rusqlite::Connection::open(s.state.db.path())
            .unwrap()
            .execute(
                "UPDATE deals SET currency = ?1 WHERE id = ?2",
                (currency, &deal),
            )
            .unwrap();
    };
    assert_eq!(other_currency(&[]), 0);
    behind_the_back(other);
    assert_eq!(other_currency(&[]), 0, "remembered: nothing was committed");
    assert_eq!(other_currency(&[("Cache-Control", "no-cache")]), 1);
    behind_the_back(&currency);
    assert_eq!(
        other_currency(&[]),
        1,
        "what no-cache computed is remembered"
    );
    s.post(
        "/notes",
        &k,
        json!({"deal_id": deal, "content": "any commit"}),
    )
    .data(201);
    assert_eq!(
        other_currency(&[]),
        0,
        "a commit is never answered from before it"
    );

    // Its at-risk count ages with the clock, so the overview is remembered for a minute at most
    // (read here in-process, at chosen times, with no request to mark a key's use).
    let at = |now: i64| {
        let org_id = org_id.clone();
        s.state
            .db
            .blocking()
            .read(move |c| {
                clozup::domain::analytics::overview(
                    c,
                    &org_id,
                    clozup::domain::analytics::Window::ALL,
                    now,
                )
            })
            .unwrap()
            .other_currency_deals
    };
    let now = s.clock_now();
    assert_eq!(at(now), 0);
    behind_the_back(other);
    assert_eq!(at(now + 59_000), 0, "remembered within the minute");
    assert_eq!(at(now + 60_000), 1, "computed again a minute on");
}

/// The per-month totals the forecast sums (kept by triggers, migration 19) stay what a count of
/// the open deals gives, through deals opened, edited, moved, closed, reopened and deleted.
#[test]
fn the_forecast_totals_follow_every_change_to_a_deal() {
    let Seeded { s, .. } = seed();
    let k = s.admin_key.clone();
    let db = rusqlite::Connection::open(s.state.db.path()).unwrap();
    let rows = |sql: &str| -> Vec<(String, String, String, i64, i64)> {
        let mut stmt = db.prepare(sql).unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let agree = |when: &str| {
        assert_eq!(
            rows(
                "SELECT stage_id, currency, month, deals, value FROM forecast_totals
                 WHERE deals <> 0 OR value <> 0 ORDER BY 1, 2, 3"
            ),
            rows(
                "SELECT stage_id, currency,
                        coalesce(substr(expected_close_date, 1, 7), 'unscheduled') AS m,
                        COUNT(*), sum(value)
                 FROM deals WHERE status = 'open' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ),
            "{when}"
        );
    };
    agree("after the seed's deals were opened and moved");
    let deal = id(&s
        .post(
            "/deals",
            &k,
            json!({"title": "F", "value": 700.0, "expected_close_date": "2027-03-02"}),
        )
        .data(201));
    s.patch(
        &format!("/deals/{deal}"),
        &k,
        json!({"value": 900.0, "currency": "EUR", "expected_close_date": "2027-04-01"}),
    )
    .data(200);
    s.patch(
        &format!("/deals/{deal}"),
        &k,
        json!({"expected_close_date": null}),
    )
    .data(200);
    agree("after a deal's value, currency and close date changed");
    for stage in ["Qualified", "Closed Lost", "Lead In", "Closed Won"] {
        s.post(&format!("/deals/{deal}/move"), &k, json!({"stage": stage}))
            .data(200);
        agree(&format!("after a move to {stage}"));
    }
    s.post(
        &format!("/deals/{deal}/move"),
        &k,
        json!({"stage": "Lead In"}),
    )
    .data(200);
    s.delete(&format!("/deals/{deal}"), &k).data(200);
    agree("after a reopened deal was deleted");
}

/// The funnel counts every deal's path once and then, between commits, counts each commit's
/// new stage changes in and out for their deals alone: after moves, new deals, a deleted deal
/// and a new stage it agrees with a funnel counted afresh (`Cache-Control: no-cache`).
#[test]
fn the_funnel_held_between_commits_agrees_with_one_counted_afresh() {
    let Seeded { s, .. } = seed();
    let k = s.admin_key.clone();
    let funnel = |headers: &[(&str, &str)]| {
        s.call("GET", "/analytics/funnel", Some(&k), None, headers)
            .data(200)
    };
    let agree = |when: &str| {
        let held = funnel(&[]);
        assert_eq!(held, funnel(&[("Cache-Control", "no-cache")]), "{when}");
        held
    };
    let start = agree("after the seed");
    let deal = |title: &str| {
        id(&s
            .post("/deals", &k, json!({"title": title, "value": 100.0}))
            .data(201))
    };
    let (a, b) = (deal("A"), deal("B"));
    agree("after two new deals");
    let step = |deal: &str, day: i64, stage: &str| {
        s.clock.set(START_MS + day * DAY);
        s.post(&format!("/deals/{deal}/move"), &k, json!({"stage": stage}))
            .data(200);
    };
    step(&a, 30, "Qualified");
    agree("after a move forward");
    step(&a, 31, "Lead In");
    step(&b, 32, "Proposal Sent");
    agree("after a move back and a skip ahead");
    step(&a, 35, "Closed Won");
    step(&b, 36, "Closed Lost");
    step(&b, 40, "Qualified");
    let after = agree("after a win, a loss and a deal reopened");
    assert_ne!(after, start, "the moves changed the funnel");
    s.delete(&format!("/deals/{a}"), &k).data(200);
    agree("after a deal was deleted");
    let pipeline = s.get("/pipelines", &k).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        &format!("/pipelines/{pipeline}/stages"),
        &k,
        json!({"name": "Demo"}),
    )
    .data(201);
    step(&b, 40, "Demo");
    agree("after a new stage and a move into it");

    // White-box: a stage change written behind the server's back (no commit number) is not
    // counted by the held funnel when the next commit moves another deal (only that deal's
    // path is counted again), but is by a funnel counted afresh.
    let c = deal("C");
    agree("before the change behind the back");
    rusqlite::Connection::open(s.state.db.path())
        .unwrap()
        .execute(
            "INSERT INTO deal_stage_history (id, org_id, deal_id, from_stage_id, from_stage_name,
                to_stage_id, to_stage_name, changed_at, actor_type, actor_id)
             SELECT 'hist_behind', org_id, deal_id, to_stage_id, to_stage_name,
                (SELECT id FROM stages WHERE name = 'Negotiation' AND org_id = h.org_id),
                'Negotiation', changed_at + 1, actor_type, actor_id
             FROM deal_stage_history h WHERE deal_id = ?1",
            [&c],
        )
        .unwrap();
    step(&b, 41, "Proposal Sent");
    assert_ne!(
        funnel(&[]),
        funnel(&[("Cache-Control", "no-cache")]),
        "only the moved deal's path was counted again"
    );
}
