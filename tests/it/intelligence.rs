//! Deal risk, at-risk, lead scores, agent memory and buying signals, through the real API with a
//! clock the tests move.

use crate::common::{TestServer, START_MS};
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The reference scenario: 12 days in Demo Scheduled (rotting 10), 8 days since the last
/// activity, a deal worth far more than the average open deal, no next step.
fn reference_deal(s: &TestServer) -> (String, String) {
    let k = &s.admin_key;
    let lead = s
        .post(
            "/leads",
            k,
            json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}),
        )
        .data(201);
    let big = s
        .post("/deals", k, json!({"title": "Big", "value": 50000, "stage": "Demo Scheduled", "lead_id": id(&lead)}))
        .data(201);
    for i in 0..3 {
        let small = s
            .post(
                "/deals",
                k,
                json!({"title": format!("Small {i}"), "value": 1000}),
            )
            .data(201);
        s.post(
            "/tasks",
            k,
            json!({"title": "next", "deal_id": id(&small), "due_at": "2027-06-01T00:00:00Z"}),
        )
        .data(201);
        s.post(
            "/activities",
            k,
            json!({"type": "call", "deal_id": id(&small)}),
        )
        .data(201);
    }
    s.clock.set(START_MS + 4 * DAY);
    s.post(
        "/activities",
        k,
        json!({"type": "meeting", "deal_id": id(&big), "subject": "Demo"}),
    )
    .data(201);
    s.clock.set(START_MS + 12 * DAY);
    (id(&big), id(&lead))
}

#[test]
fn the_reference_scenario_has_exactly_the_documented_factors() {
    let s = TestServer::start();
    let (big, _) = reference_deal(&s);
    let intel = s
        .get(&format!("/deals/{big}/intelligence"), &s.admin_key)
        .data(200);
    assert_eq!(intel["risk_score"], 65);
    assert_eq!(intel["risk_level"], "medium", "the reference's own pairing");
    assert_eq!(intel["days_in_stage"], 12);
    assert_eq!(intel["days_since_activity"], 8);
    assert_eq!(
        intel["risk_factors"],
        json!([
            "No activity in 8 days",
            "12 days in Demo Scheduled (limit 10)",
            "High value deal stalling",
            "No next step scheduled"
        ])
    );
    let factors: Vec<(String, i64)> = intel["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["points"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        factors,
        [
            ("activity_gap".to_string(), 20),
            ("stage_rotting".into(), 20),
            ("high_value_stalling".into(), 15),
            ("no_next_step".into(), 10)
        ]
    );
    assert_eq!(
        intel["suggested_action"],
        "Schedule a follow-up call with Ada Lovelace (no activity in 8 days)"
    );
    assert_eq!(
        intel["computed_at"],
        clozup::timefmt::format_ms(START_MS + 12 * DAY)
    );

    // The deal views carry the same score.
    assert_eq!(
        s.get(&format!("/deals/{big}"), &s.admin_key).data(200)["risk_score"],
        65
    );
    let listed = s
        .get("/deals?sort=-value&per_page=1", &s.admin_key)
        .data(200);
    assert_eq!(
        (
            listed[0]["risk_score"].as_i64(),
            listed[0]["risk_level"].as_str()
        ),
        (Some(65), Some("medium"))
    );

    // At-risk lists `high` and `critical` by default: 65 is `medium`, so none.
    let default = s.get("/deals/at-risk", &s.admin_key).json();
    assert_eq!(default["meta"]["total"], 0);
    // From 60 it lists only it (the small deals have a next step, so they score 20).
    let at_risk = s.get("/deals/at-risk?score_min=60", &s.admin_key).json();
    assert_eq!(at_risk["meta"]["total"], 1);
    assert_eq!(at_risk["data"][0]["deal_id"], big.as_str());
    assert_eq!(at_risk["data"][0]["risk_score"], 65);
    // Each item carries the deal in brief: no other call is needed to act on it.
    let brief = &at_risk["data"][0]["deal"];
    assert_eq!(
        (
            &brief["title"],
            &brief["value"],
            &brief["stage_name"],
            &brief["lead_name"]
        ),
        (
            &json!("Big"),
            &json!(50000.0),
            &json!("Demo Scheduled"),
            &json!("Ada Lovelace")
        )
    );
    assert!(
        brief["currency"].is_string() && brief["stage_id"].is_string(),
        "{brief}"
    );
    assert!(
        brief["owner_id"].is_string() && brief["company_name"].is_null(),
        "{brief}"
    );
    let all = s.get("/deals/at-risk?score_min=0", &s.admin_key).json();
    assert_eq!(all["meta"]["total"], 4);
    let scores: Vec<i64> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["risk_score"].as_i64().unwrap())
        .collect();
    assert_eq!(scores, [65, 20, 20, 20]);

    // An overdue task takes over the suggestion; winning removes all risk.
    s.post(
        "/tasks",
        &s.admin_key,
        json!({"title": "Send proposal", "deal_id": big,
        "due_at": clozup::timefmt::format_ms(START_MS + 9 * DAY)}),
    )
    .data(201);
    let intel = s
        .get(&format!("/deals/{big}/intelligence"), &s.admin_key)
        .data(200);
    assert_eq!(
        intel["suggested_action"],
        "Complete the overdue task 'Send proposal' (3 days overdue)"
    );
    assert_eq!(
        intel["risk_score"], 70,
        "65 - 10 (a next step now exists) + 15 (overdue)"
    );
    s.post(
        &format!("/deals/{big}/move"),
        &s.admin_key,
        json!({"stage": "Closed Won"}),
    )
    .data(200);
    let won = s
        .get(&format!("/deals/{big}/intelligence"), &s.admin_key)
        .data(200);
    assert_eq!(
        (won["risk_score"].as_i64(), won["risk_level"].as_str()),
        (Some(0), Some("none"))
    );
    assert_eq!(
        s.get("/deals/at-risk?score_min=60", &s.admin_key).json()["meta"]["total"],
        0
    );
    s.get(
        "/deals/deal_01M8H6J8V5EZ2NYY830B06ZRR9/intelligence",
        &s.admin_key,
    )
    .error(404, "not_found");
}

fn sweep(s: &TestServer) -> (usize, usize) {
    let o = clozup::domain::signals::sweep_all(&s.state.db, s.clock_now()).unwrap();
    (o.detected, o.resolved)
}

fn open_signals(s: &TestServer) -> Vec<(String, String)> {
    s.get("/signals?per_page=100&sort=detected_at", &s.admin_key)
        .data(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["type"].as_str().unwrap().to_string(),
                x["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn time_based_signals_appear_once_and_resolve_with_their_cause() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let lead = s
        .post("/leads", &k, json!({"email": "buyer@example.com"}))
        .data(201);
    let deal = s
        .post("/deals", &k, json!({"title": "D", "stage": "Qualified", "lead_id": id(&lead), "expected_close_date": "2026-12-05"}))
        .data(201);
    let deal_id = id(&deal);
    let task = s
        .post(
            "/tasks",
            &k,
            json!({"title": "Call back", "deal_id": deal_id, "due_at": "2026-12-01T09:00:00Z"}),
        )
        .data(201);
    assert_eq!(sweep(&s), (0, 0));
    assert!(open_signals(&s).is_empty());

    // Day 4: the follow-up is overdue.
    s.clock.set(START_MS + 4 * DAY);
    assert_eq!(sweep(&s), (1, 0));
    assert_eq!(
        sweep(&s),
        (0, 0),
        "the same cause never raises a second signal"
    );
    // Day 15: 15 idle days, 15 days in Qualified (limit 14), close date passed.
    s.clock.set(START_MS + 15 * DAY);
    assert_eq!(sweep(&s), (3, 0));
    assert_eq!(sweep(&s), (0, 0));
    let types: Vec<String> = open_signals(&s).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            "overdue_followup",
            "activity_gap",
            "stage_stalled",
            "close_date_passed"
        ]
    );
    let overdue = s.get("/signals?type=overdue_followup", &k).data(200)[0].clone();
    assert_eq!(overdue["score"], 75);
    assert_eq!(overdue["evidence"], json!([id(&task), deal_id.as_str()]));
    assert_eq!(overdue["lead_id"], lead["id"]);
    // Each was announced once.
    assert_eq!(
        s.count("SELECT COUNT(*) FROM events WHERE type = 'signal.detected'"),
        4
    );
    // The lead 360 lists them.
    let view = s.get(&format!("/leads/{}/360", id(&lead)), &k).data(200);
    assert_eq!(view["signals"].as_array().unwrap().len(), 4);
    assert_eq!(
        s.get("/signals?score_min=76", &k).json()["meta"]["total"],
        1,
        "only close_date_passed (80)"
    );

    // Resolving causes resolves their signals.
    s.post(&format!("/tasks/{}/complete", id(&task)), &k, json!({}))
        .data(200);
    s.post(
        "/activities",
        &k,
        json!({"type": "call", "deal_id": deal_id}),
    )
    .data(201);
    s.post(
        &format!("/deals/{deal_id}/move"),
        &k,
        json!({"stage": "Negotiation"}),
    )
    .data(200);
    s.patch(
        &format!("/deals/{deal_id}"),
        &k,
        json!({"expected_close_date": "2027-01-31"}),
    )
    .data(200);
    assert_eq!(sweep(&s), (0, 4));
    assert!(open_signals(&s).is_empty());
    let resolved = s.count(
        "SELECT COUNT(*) FROM signals WHERE status = 'resolved' AND resolved_at IS NOT NULL",
    );
    assert_eq!(resolved, 4);

    // A dismissed signal stays dismissed while its cause lasts.
    s.clock.set(START_MS + 40 * DAY);
    sweep(&s);
    let gap = s.get("/signals?type=activity_gap", &k).data(200)[0].clone();
    let dismissed = s
        .post(&format!("/signals/{}/dismiss", id(&gap)), &k, json!({}))
        .data(200);
    assert_eq!(dismissed["status"], "dismissed");
    assert_eq!(sweep(&s).0, 0);
    assert_eq!(
        s.get("/signals?type=activity_gap", &k).json()["meta"]["total"],
        0
    );
    assert_eq!(
        s.get("/signals?type=activity_gap&include_dismissed=true", &k)
            .json()["meta"]["total"],
        1
    );
    s.get("/signals?type=vibes", &k)
        .error(422, "validation_error");
}

/// A sweep reads in a snapshot of its own and takes the write lock only for what changes: with
/// nothing to change, it completes while another write holds the lock. (It used to run in one
/// write transaction, which held every write for 2.6 s a minute at 100k open deals.)
#[test]
fn a_sweep_with_nothing_to_change_never_waits_for_the_writer() {
    use std::sync::mpsc;
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let deal = s.post("/deals", &k, json!({"title": "D"})).data(201);
    s.post(
        "/tasks",
        &k,
        json!({"title": "Call back", "deal_id": id(&deal), "due_at": "2026-12-01T09:00:00Z"}),
    )
    .data(201);
    s.clock.set(START_MS + 4 * DAY);
    assert_eq!(sweep(&s), (1, 0), "the overdue task's signal");

    let (held, holding) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let db = s.state.db.clone();
    let holder = std::thread::spawn(move || {
        db.blocking().write(|_| {
            held.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        })
    });
    holding.recv().unwrap();
    let (done, finished) = mpsc::channel();
    let (db, now) = (s.state.db.clone(), s.clock_now());
    std::thread::spawn(move || {
        let o = clozup::domain::signals::sweep_all(&db, now).unwrap();
        done.send((o.detected, o.resolved)).unwrap();
    });
    let outcome = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the sweep waited for the write lock");
    release.send(()).unwrap();
    holder.join().unwrap().unwrap();
    assert_eq!(outcome, (0, 0));
}

#[test]
fn replies_and_opens_raise_signals_at_once_and_resolve_when_acted_on() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let deal = s.post("/deals", &k, json!({"title": "D"})).data(201);
    let deal_id = id(&deal);
    let record =
        |kind: &str, subject: &str| s.record_system_activity(&deal_id, kind, Some(subject));
    let reply = record("email_received", "Re: pricing");
    let signal = s.get("/signals", &k).data(200)[0].clone();
    assert_eq!(
        (signal["type"].as_str(), signal["score"].as_i64()),
        (Some("email_replied"), Some(90))
    );
    assert_eq!(signal["evidence"], json!([reply.id]));
    assert_eq!(signal["title"], "The buyer replied: Re: pricing");
    record("email_opened", "Proposal");
    record("email_opened", "Proposal");
    // Two opens make one open signal; with the reply, three engagements in a week make high
    // engagement at once, and the sweep finds nothing new to raise.
    let mut kinds: Vec<String> = open_signals(&s).into_iter().map(|(t, _)| t).collect();
    kinds.sort();
    assert_eq!(kinds, ["email_opened", "email_replied", "high_engagement"]);
    assert_eq!(sweep(&s), (0, 0));
    // The buyer's risk drops with the reply (−15) and opens (−5).
    let intel = s
        .get(&format!("/deals/{deal_id}/intelligence"), &k)
        .data(200);
    let codes: Vec<&str> = intel["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"recent_reply") && codes.contains(&"recent_open"),
        "{codes:?}"
    );
    // Acting on the deal resolves the reply and open signals.
    s.clock.advance(3_600_000);
    s.post(
        "/activities",
        &k,
        json!({"type": "call", "deal_id": deal_id}),
    )
    .data(201);
    let (_, resolved) = sweep(&s);
    assert_eq!(resolved, 2);
    let left: Vec<String> = open_signals(&s).into_iter().map(|(t, _)| t).collect();
    assert_eq!(left, ["high_engagement"]);
}

#[test]
fn lead_scores_follow_profile_engagement_and_the_icp() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let co = s
        .post(
            "/companies",
            &k,
            json!({"name": "Acme", "industry": "SaaS", "size": 120}),
        )
        .data(201);
    let lead = s
        .post(
            "/leads",
            &k,
            json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                                   "title": "VP Sales", "company_id": id(&co), "country": "DE"}),
        )
        .data(201);
    // email 8 + title 5 + company 5 + full name 4 + country 3 = 25; no profile yet.
    assert_eq!(lead["score"], 25);
    let lead_id = id(&lead);
    let b = s.get(&format!("/leads/{lead_id}/score"), &k).data(200);
    assert_eq!(
        (
            b["completeness"]["score"].as_i64(),
            b["engagement"]["score"].as_i64(),
            b["fit"]["score"].as_i64()
        ),
        (Some(25), Some(0), Some(0))
    );
    assert_eq!(b["fit"]["factors"][0]["code"], "no_icp");

    s.patch("/org", &k, json!({"icp": {"industries": ["saas"], "titles": ["VP"], "countries": ["DE"], "company_size_min": 50}}))
        .data(200);
    assert_eq!(
        s.get(&format!("/leads/{lead_id}"), &k).data(200)["score"],
        65,
        "25 + 40 full fit"
    );
    s.post(
        "/activities",
        &k,
        json!({"type": "call", "lead_id": lead_id}),
    )
    .data(201);
    s.post(
        "/activities",
        &k,
        json!({"type": "meeting", "lead_id": lead_id}),
    )
    .data(201);
    let b = s.get(&format!("/leads/{lead_id}/score"), &k).data(200);
    assert_eq!(b["score"], 75);
    let parts: i64 = ["completeness", "engagement", "fit"]
        .iter()
        .map(|p| b[p]["score"].as_i64().unwrap())
        .sum();
    assert_eq!(parts, 75, "the parts add up to the score");
    assert_eq!(
        s.get(&format!("/leads/{lead_id}"), &k).data(200)["score"],
        75
    );
    // A company that shrinks out of the profile lowers its leads' scores.
    s.patch(&format!("/companies/{}", id(&co)), &k, json!({"size": 10}))
        .data(200);
    assert_eq!(
        s.get(&format!("/leads/{lead_id}"), &k).data(200)["score"],
        67
    );
    s.post("/leads", &k, json!({"email": "nobody@example.com"}))
        .data(201);
    let top = s.get("/leads?score_min=50&sort=-score", &k).json();
    assert_eq!(top["meta"]["total"], 1);
    assert_eq!(top["data"][0]["id"], lead_id.as_str());
    assert_eq!(
        s.get("/leads?sort=score", &k).data(200)[0]["email"],
        "nobody@example.com"
    );
}

#[test]
fn agent_memory_is_kept_filtered_and_attributed() {
    let s = TestServer::start();
    let agent = s.key_with(&["read", "write"]);
    let deal = id(&s.post("/deals", &agent, json!({"title": "D"})).data(201));
    let path = format!("/deals/{deal}/memory");
    let m1 = s
        .post(&path, &agent, json!({"content": "Budget owner is the CFO", "tags": ["budget", "people"], "kind": "fact", "confidence": 0.9, "source": "call 2026-11-28"}))
        .data(201);
    s.clock.advance(1000);
    s.post(
        &path,
        &agent,
        json!({"content": "Worried about SSO support", "tags": ["security"], "kind": "objection"}),
    )
    .data(201);
    s.clock.advance(1000);
    s.post(
        &path,
        &agent,
        json!({"content": "Prefers email over calls", "kind": "preference"}),
    )
    .data(201);
    let all = s.get(&path, &agent).json();
    assert_eq!(all["meta"]["total"], 3);
    assert_eq!(
        all["data"][0]["content"], "Prefers email over calls",
        "newest first"
    );
    assert_eq!(all["data"][2]["created_by"]["type"], "api_key");
    assert_eq!(
        s.get(&format!("{path}?tag=security,budget"), &agent).json()["meta"]["total"],
        2
    );
    assert_eq!(
        s.get(&format!("{path}?kind=objection"), &agent).data(200)[0]["content"],
        "Worried about SSO support"
    );
    assert_eq!(
        s.get(&format!("{path}?q=cfo"), &agent).json()["meta"]["total"],
        1
    );
    s.post(&path, &agent, json!({"content": "x", "confidence": 1.5}))
        .error(422, "validation_error");
    s.post(&path, &agent, json!({"content": "x", "kind": "gossip"}))
        .error(422, "validation_error");
    s.post(&path, &agent, json!({"content": "x".repeat(10_001)}))
        .error(422, "validation_error");
    s.get(&format!("{path}?kind=gossip"), &agent)
        .error(422, "validation_error");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM events WHERE type = 'memory.created'"),
        3
    );
    s.delete(&format!("{path}/{}", id(&m1)), &agent).data(200);
    assert_eq!(s.get(&path, &agent).json()["meta"]["total"], 2);
    s.get("/deals/deal_01M8H6J8V5EZ2NYY830B06ZRR9/memory", &agent)
        .error(404, "not_found");
    // Ten thousand entries on one deal still page and filter.
    let org_id = s.get("/org", &agent).data(200)["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.state
        .db
        .blocking().write(|tx| {
            for i in 0..10_000 {
                tx.execute(
                    "INSERT INTO deal_memory (id, org_id, deal_id, content, tags, kind, created_by_type, created_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'fact', 'system', 'seed', ?6)",
                    rusqlite::params![clozup::ids::new_id("mem"), org_id, deal, format!("note {i}"),
                        if i % 100 == 0 { "[\"rare\"]" } else { "[\"common\"]" }, START_MS + i],
                )?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        s.get(&format!("{path}?tag=rare&per_page=100"), &agent)
            .json()["meta"]["total"],
        100
    );
    assert_eq!(
        s.get(&format!("{path}?per_page=5"), &agent).data(200)[0]["content"],
        "note 9999"
    );
}

/// The list, the deal, the at-risk ranking (scored from the facts a deal keeps) and the deal's
/// intelligence (counted from its tasks and activities) give every deal the same score, through
/// tasks added, completed, moved and deleted and engagement recorded over time.
#[test]
fn every_view_scores_every_deal_alike() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let deals: Vec<String> = (0..6)
        .map(|i| {
            id(&s
                .post(
                    "/deals",
                    &k,
                    json!({"title": format!("D{i}"), "value": 1000 * (i + 1)}),
                )
                .data(201))
        })
        .collect();
    let record = |deal: &str, kind: &str| {
        s.record_system_activity(deal, kind, None);
    };
    let due = |days: i64| clozup::timefmt::format_ms(START_MS + days * DAY);
    let mut tasks = Vec::new();
    // Deal i gets i tasks, due one day apart from day 2 on (so up to five overdue later).
    for (i, deal) in deals.iter().enumerate() {
        for t in 0..i as i64 {
            let task = s
                .post(
                    "/tasks",
                    &k,
                    json!({"title": format!("T{t}"), "deal_id": deal, "due_at": due(2 + t)}),
                )
                .data(201);
            tasks.push(id(&task));
        }
    }
    record(&deals[1], "email_received");
    record(&deals[2], "email_opened");
    let check = |when: &str| {
        let listed = s.get("/deals?per_page=100", &k).data(200);
        let ranked = s
            .get("/deals/at-risk?score_min=0&per_page=100", &k)
            .data(200);
        let ranked: Vec<(String, i64)> = ranked
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (id_of(d, "deal_id"), d["risk_score"].as_i64().unwrap()))
            .collect();
        for deal in &deals {
            let intel = s.get(&format!("/deals/{deal}/intelligence"), &k).data(200);
            let score = intel["risk_score"].as_i64().unwrap();
            let listed = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["id"] == deal.as_str())
                .unwrap();
            assert_eq!(listed["risk_score"].as_i64(), Some(score), "list, {when}");
            let one = s.get(&format!("/deals/{deal}"), &k).data(200);
            assert_eq!(one["risk_score"].as_i64(), Some(score), "get, {when}");
            let ranked = ranked.iter().find(|(d, _)| d == deal).map(|(_, s)| *s);
            assert_eq!(ranked, Some(score), "at-risk, {when}");
        }
    };
    check("at the start");
    s.clock.set(START_MS + 4 * DAY);
    check("with some tasks overdue and engagement in the window");
    s.patch(
        &format!("/tasks/{}", tasks[3]),
        &k,
        json!({"status": "completed"}),
    )
    .data(200);
    s.patch(
        &format!("/tasks/{}", tasks[6]),
        &k,
        json!({"due_at": due(30)}),
    )
    .data(200);
    s.patch(
        &format!("/tasks/{}", tasks[7]),
        &k,
        json!({"deal_id": deals[0]}),
    )
    .data(200);
    s.delete(&format!("/tasks/{}", tasks[12]), &k).data(200);
    check("after tasks were completed, moved and deleted");
    s.clock.set(START_MS + 9 * DAY);
    record(&deals[3], "email_opened");
    check("with the first engagement out of the window");
    s.clock.set(START_MS + 40 * DAY);
    check("with everything overdue and stale");
}

fn id_of(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap().to_string()
}

#[test]
fn at_risk_orders_ties_by_time_in_stage_then_id_and_pages_without_gaps() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    // Three batches a few days apart: within a batch deals tie on score and time in stage.
    for batch in 0..3 {
        for n in 0..3 {
            s.post(
                "/deals",
                &k,
                json!({"title": format!("B{batch}-{n}"), "value": 1000 + 1000 * n}),
            )
            .data(201);
        }
        s.clock.advance(4 * DAY);
    }
    let ranked = s
        .get("/deals/at-risk?score_min=0&per_page=100", &k)
        .data(200);
    let ranked: Vec<(i64, i64, String)> = ranked
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["risk_score"].as_i64().unwrap(),
                d["days_in_stage"].as_i64().unwrap(),
                id_of(d, "deal_id"),
            )
        })
        .collect();
    assert_eq!(ranked.len(), 9);
    let mut expected = ranked.clone();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    assert_eq!(
        ranked, expected,
        "riskiest first, then longest in stage, then by id"
    );
    assert!(
        ranked.windows(2).any(|w| w[0].0 == w[1].0),
        "the scenario has ties to break: {ranked:?}"
    );

    let mut paged = Vec::new();
    for page in 1..=5 {
        let got = s.get(
            &format!("/deals/at-risk?score_min=0&per_page=2&page={page}"),
            &k,
        );
        let body = got.json();
        assert_eq!(body["meta"]["total"], 9);
        paged.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| id_of(d, "deal_id")),
        );
    }
    let ids: Vec<String> = ranked.into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(paged, ids);
}

/// The at-risk ranking scores the organization's open deals from memory between commits,
/// reading again only the deals each commit changed: after every kind of change it agrees with
/// a ranking read from the database (`Cache-Control: no-cache`), and a commit made by another
/// process (which this one cannot know the changes of) has everything read again.
#[test]
fn the_ranking_held_between_commits_agrees_with_one_read_afresh() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let deal = |title: &str, value: i64| {
        id(&s
            .post("/deals", &k, json!({"title": title, "value": value}))
            .data(201))
    };
    let deals: Vec<String> = (0..8)
        .map(|i| deal(&format!("D{i}"), 1000 * (i + 1)))
        .collect();
    let ranking = |headers: &[(&str, &str)]| {
        let body = s
            .call(
                "GET",
                "/deals/at-risk?score_min=0&per_page=100",
                Some(&k),
                None,
                headers,
            )
            .json();
        let ranked: Vec<(String, i64)> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (id_of(d, "deal_id"), d["risk_score"].as_i64().unwrap()))
            .collect();
        (ranked, body["meta"]["total"].as_i64().unwrap())
    };
    let agree = |when: &str| {
        let held = ranking(&[]);
        assert_eq!(held, ranking(&[("Cache-Control", "no-cache")]), "{when}");
        held
    };
    assert_eq!(agree("at the start").1, 8);
    s.clock.set(START_MS + 9 * DAY);
    agree("nine days on");
    s.patch(
        &format!("/deals/{}", deals[0]),
        &k,
        json!({"value": 90_000}),
    )
    .data(200);
    s.post(
        "/tasks",
        &k,
        json!({"title": "Call", "deal_id": deals[1],
               "due_at": clozup::timefmt::format_ms(START_MS + 2 * DAY)}),
    )
    .data(201);
    s.record_system_activity(&deals[2], "email_received", None);
    agree("after a value, an overdue task and a reply");
    s.post(
        &format!("/deals/{}/move", deals[3]),
        &k,
        json!({"stage": "Closed Won"}),
    )
    .data(200);
    s.delete(&format!("/deals/{}", deals[4]), &k).data(200);
    let (ranked, total) = agree("after a deal was won and one deleted");
    assert_eq!(total, 6);
    assert!(!ranked.iter().any(|(d, _)| *d == deals[3] || *d == deals[4]));
    let other = s.second_org();
    s.post("/deals", &other, json!({"title": "Elsewhere", "value": 5}))
        .data(201);
    let added = deal("D8", 500);
    let (ranked, total) = agree("after deals were opened here and in another organization");
    assert_eq!(total, 7);
    assert!(ranked.iter().any(|(d, _)| *d == added));

    // White-box: a change written behind the server's back without a commit number is not seen
    // by the held ranking when the next commit changes another deal (only that one is read
    // again), but is by a ranking read afresh: the deal keeps its place among the riskiest
    // (each listed deal's own score is always read whole, at the request's time)...
    let db = rusqlite::Connection::open(s.state.db.path()).unwrap();
    s.clock.set(START_MS + 30 * DAY);
    agree("a month on");
    let touched_now = format!(
        "UPDATE deals SET last_activity_at = {} WHERE id = ?1",
        START_MS + 30 * DAY
    );
    let behind = |sql: &str| assert_eq!(db.execute(sql, [&deals[5]]).unwrap(), 1);
    behind(&touched_now);
    s.patch(&format!("/deals/{}", deals[6]), &k, json!({"value": 1234}))
        .data(200);
    let place = |ranked: &[(String, i64)]| ranked.iter().position(|(d, _)| *d == deals[5]);
    let held = place(&ranking(&[]).0);
    let afresh = place(&ranking(&[("Cache-Control", "no-cache")]).0);
    assert!(
        held < afresh,
        "the activity moves the deal down: {held:?} {afresh:?}"
    );
    // ...and a commit made by another process has every open deal read again.
    behind("UPDATE deals SET last_activity_at = NULL WHERE id = ?1");
    db.execute("UPDATE commit_seq SET n = n + 1", []).unwrap();
    agree("after a commit by another process");
}
