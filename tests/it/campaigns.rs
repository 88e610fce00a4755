//! Campaigns end to end, on the injected clock, over real SMTP (a sink the test starts) and
//! real inbound MIME: a three-step campaign over a week of simulated time (the sending window,
//! business days, the daily cap, a follow-up in the same thread), and every way an enrollment
//! stops (a reply, a bounce, a one-click unsubscribe, a deal, by hand), with pause and resume,
//! an edit of a running campaign, and the metrics that count it all.

use std::time::{Duration, Instant};

use crate::common::smtp::{Mail, SmtpSink};
use crate::common::{TestServer, START_MS};
use crate::email::{body_of, bounce, inbound, server_with, INBOUND_TOKEN};
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Waits (in real time, the clock standing still) until `check` gives something.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn enrollment(s: &TestServer, campaign: &str, lead: &str) -> Value {
    s.get(
        &format!("/enrollments?campaign_id={campaign}&lead_id={lead}"),
        &s.admin_key,
    )
    .data(200)[0]
        .clone()
}

/// The next `n` messages the sink receives, by recipient.
fn mails(sink: &SmtpSink, n: usize) -> Vec<Mail> {
    let mut out: Vec<Mail> = (0..n).map(|_| sink.next()).collect();
    out.sort_by(|a, b| a.rcpt_to.cmp(&b.rcpt_to));
    out
}

fn server(sink: &SmtpSink) -> TestServer {
    server_with(sink, |_| {})
}

/// Creates what `path` takes from `body` with the admin key; its id.
fn create(s: &TestServer, path: &str, body: Value) -> String {
    id(&s.post(path, &s.admin_key, body).data(201))
}

fn lead(s: &TestServer, first: &str, email: &str) -> String {
    id(&s
        .post(
            "/leads",
            &s.admin_key,
            json!({"first_name": first, "email": email, "tags": ["q4"]}),
        )
        .data(201))
}

#[test]
fn a_three_step_campaign_runs_over_a_week_in_its_window_under_its_cap() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let (ada, bob, cy) = (
        lead(&s, "Ada", "ada@buyer.test"),
        lead(&s, "Bob", "bob@buyer.test"),
        lead(&s, "Cy", "cy@buyer.test"),
    );
    let no_email = id(&s
        .post("/leads", &k, json!({"first_name": "Nemo", "tags": ["q4"]}))
        .data(201));
    let intro = create(
        &s,
        "/email-templates",
        json!({"name": "Intro", "subject": "A question for {{ lead.first_name }}",
                   "text_body": "Hi {{ lead.first_name }}, shall we talk?"}),
    );
    let nudge = create(
        &s,
        "/email-templates",
        json!({"name": "Nudge", "subject": "Following up",
                   "text_body": "Hi {{ lead.first_name }}, any thoughts?"}),
    );
    let c = s
        .post(
            "/campaigns",
            &k,
            json!({"name": "Q4 outreach", "sender_username": "q4", "sender_name": "Sam at Acme",
                   "timezone": "UTC", "daily_cap": 2,
                   "window": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00"}}),
        )
        .data(201);
    let campaign = id(&c);
    assert_eq!(c["sender"], "q4@inbox.clozup.localhost");
    assert_eq!(c["status"], "draft");
    let steps = format!("/campaigns/{campaign}/steps");
    s.post(&steps, &k, json!({"kind": "email", "template_id": intro}))
        .data(201);
    s.post(
        &steps,
        &k,
        json!({"kind": "call", "delay": 1, "delay_unit": "business_days"}),
    )
    .data(201);
    s.post(
        &steps,
        &k,
        json!({"kind": "email", "template_id": nudge, "in_thread": true, "delay": 2, "delay_unit": "days"}),
    )
    .data(201);

    // One call enrolls every lead the filter selects; the one without an address is skipped.
    let result = s
        .post(
            &format!("/campaigns/{campaign}/enrollments"),
            &k,
            json!({"filter": {"tag": "q4"}}),
        )
        .data(200);
    assert_eq!(result["enrolled"], 3);
    assert_eq!(result["skipped"], 1);
    assert_eq!(
        result["skipped_leads"],
        json!([{"lead_id": no_email, "reason": "no_email"}])
    );
    let again = s
        .post(
            &format!("/campaigns/{campaign}/enrollments"),
            &k,
            json!({"lead_ids": [ada]}),
        )
        .data(200);
    assert_eq!(again["skipped_leads"][0]["reason"], "already_enrolled");

    // Activated on a Saturday (the clock starts 2026-11-28T12:00Z): the first email waits for
    // Monday 09:00, and nothing goes out before.
    s.post(&format!("/campaigns/{campaign}/activate"), &k, json!({}))
        .data(200);
    let monday_nine = START_MS + 45 * HOUR;
    wait_for("the first step put off to Monday", || {
        let e = enrollment(&s, &campaign, &ada);
        (e["next_run_at"] == "2026-11-30T09:00:00Z").then_some(())
    });
    assert!(sink.nothing_within(Duration::from_millis(200)));

    // Monday 09:00: two emails (the daily cap), the third put off to Tuesday.
    s.clock.set(monday_nine);
    let first = mails(&sink, 2);
    assert!(
        sink.nothing_within(Duration::from_millis(200)),
        "over the cap"
    );
    let firsts: Vec<&str> = first.iter().map(|m| m.rcpt_to[0].as_str()).collect();
    let waiting = ["ada@buyer.test", "bob@buyer.test", "cy@buyer.test"]
        .into_iter()
        .find(|a| !firsts.contains(a))
        .unwrap();
    for m in &first {
        let to = &m.rcpt_to[0];
        let name = if to.starts_with("ada") {
            "Ada"
        } else if to.starts_with("bob") {
            "Bob"
        } else {
            "Cy"
        };
        assert_eq!(
            m.header("Subject").unwrap(),
            format!("A question for {name}")
        );
        assert!(m
            .header("From")
            .unwrap()
            .contains("q4@inbox.clozup.localhost"));
        assert!(body_of(m).contains(&format!("Hi {name}, shall we talk?")));
        assert!(m
            .header("List-Unsubscribe")
            .unwrap()
            .contains("http://crm.test/u/"));
        assert_eq!(
            m.header("List-Unsubscribe-Post").unwrap(),
            "List-Unsubscribe=One-Click"
        );
    }
    let late = [
        (ada.as_str(), "ada"),
        (bob.as_str(), "bob"),
        (cy.as_str(), "cy"),
    ]
    .into_iter()
    .find(|(_, who)| waiting.starts_with(who))
    .unwrap()
    .0
    .to_string();
    let e = enrollment(&s, &campaign, &late);
    assert_eq!(e["steps_run"], 0);
    assert_eq!(e["next_run_at"], "2026-12-01T09:00:00Z", "{e}");
    let early = [&ada, &bob, &cy]
        .into_iter()
        .find(|l| **l != late)
        .unwrap()
        .clone();
    let e = enrollment(&s, &campaign, &early);
    assert_eq!(e["steps_run"], 1);
    assert_eq!(e["last_position"], 1);
    assert_eq!(
        e["next_run_at"], "2026-12-01T09:00:00Z",
        "one business day later"
    );

    // Tuesday 09:00: the third lead's first email, and the call tasks of the other two.
    s.clock.set(monday_nine + 24 * HOUR);
    let tuesday = sink.next();
    assert_eq!(tuesday.rcpt_to, vec![waiting.to_string()]);
    wait_for("the call tasks", || {
        let tasks = s.get("/tasks?status=open", &k).data(200);
        let calls: Vec<&Value> = tasks
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["title"].as_str().unwrap_or("").starts_with("Call "))
            .collect();
        (calls.len() == 2).then(|| {
            for t in &calls {
                assert!(t["lead_id"].is_string());
            }
        })
    });
    // Thursday 09:00: the follow-ups, in the same thread as the first emails.
    s.clock.set(monday_nine + 3 * 24 * HOUR);
    let follow_ups = mails(&sink, 2);
    for m in &follow_ups {
        assert_eq!(m.header("Subject").unwrap().split(' ').next(), Some("Re:"));
        let original = first
            .iter()
            .find(|f| f.rcpt_to == m.rcpt_to)
            .expect("a first email to the same lead");
        assert_eq!(
            m.header("In-Reply-To").unwrap(),
            original.header("Message-ID").unwrap()
        );
        assert!(body_of(m).contains("any thoughts?"));
    }
    wait_for("the early enrollments to complete", || {
        let e = enrollment(&s, &campaign, &early);
        (e["status"] == "completed").then_some(())
    });
    let e = enrollment(&s, &campaign, &early);
    assert_eq!(e["steps_run"], 3);
    assert!(e["next_run_at"].is_null() && e["next_step_id"].is_null());

    // The sink has every message once the server has handed it over; the server records it
    // as sent just after, so the metrics are read once they count all five.
    let m = wait_for("the five emails to be recorded as sent", || {
        let m = s
            .get(&format!("/campaigns/{campaign}/metrics"), &k)
            .data(200);
        (m["total"]["sent"] == 5).then_some(m)
    });
    assert_eq!(m["total"]["enrolled"], 3);
    assert_eq!(m["steps"][0]["metrics"]["sent"], 3);
    assert_eq!(
        m["steps"][1]["metrics"]["enrolled"], 3,
        "the third lead's call came on Wednesday"
    );
    assert_eq!(m["steps"][2]["metrics"]["sent"], 2);
    // Nothing ran twice.
    assert_eq!(s.count("SELECT COUNT(*) FROM enrollment_steps"), 3 + 3 + 2);
    let sent = s.count(&format!(
        "SELECT COUNT(*) FROM emails e JOIN enrollments n ON n.id = e.enrollment_id
         WHERE n.campaign_id = '{campaign}' AND e.direction = 'outbound'"
    ));
    assert_eq!(sent, 5);

    // The analytics count campaign email, and the leaderboard credits it to the leads' owner.
    let week = "from=2026-11-28T00:00:00Z&to=2026-12-05T00:00:00Z";
    let overview = wait_for("the follow-ups recorded as sent", || {
        let o = s.get(&format!("/analytics/overview?{week}"), &k).data(200);
        (o["emails_sent"] == 5).then_some(o)
    });
    assert_eq!(
        (&overview["emails_sent"], &overview["campaign_emails_sent"]),
        (&json!(5), &json!(5)),
        "{overview}"
    );
    let board = s
        .get(
            &format!("/performance/leaderboard?{week}&metric=emails_sent"),
            &k,
        )
        .data(200);
    assert_eq!(board[0]["emails_sent"], 5, "{board}");
}

#[test]
fn replies_bounces_unsubscribes_deals_and_people_stop_enrollments() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let names = ["rea", "bea", "una", "con", "man"];
    let leads: Vec<String> = names
        .iter()
        .map(|n| lead(&s, n, &format!("{n}@buyer.test")))
        .collect();
    let template = create(
        &s,
        "/email-templates",
        json!({"name": "Intro", "subject": "Hello {{ lead.first_name }}", "text_body": "Hi"}),
    );
    let c = s
        .post(
            "/campaigns",
            &k,
            json!({"name": "Always on", "timezone": "UTC",
                   "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "00:00", "to": "24:00"}}),
        )
        .data(201);
    let campaign = id(&c);
    let sender = c["sender"].as_str().unwrap().to_string();
    let steps = format!("/campaigns/{campaign}/steps");
    s.post(
        &steps,
        &k,
        json!({"kind": "email", "template_id": template}),
    )
    .data(201);
    let second = id(&s
        .post(
            &steps,
            &k,
            json!({"kind": "email", "template_id": template, "delay": 1, "delay_unit": "days"}),
        )
        .data(201));
    s.post(
        &format!("/campaigns/{campaign}/enrollments"),
        &k,
        json!({"lead_ids": leads}),
    )
    .data(200);
    s.post(&format!("/campaigns/{campaign}/activate"), &k, json!({}))
        .data(200);
    let first = mails(&sink, 5);
    let mail_to = |who: &str| {
        first
            .iter()
            .find(|m| m.rcpt_to[0].starts_with(who))
            .unwrap()
            .clone()
    };
    let e_of = |i: usize| enrollment(&s, &campaign, &leads[i]);

    // An edit of the running campaign reaches the enrollments waiting for the step.
    let before = e_of(0);
    assert_eq!(before["next_run_at"], "2026-11-29T12:00:00Z");
    s.patch(
        &format!("{steps}/{second}"),
        &k,
        json!({"delay": 6, "delay_unit": "hours"}),
    )
    .data(200);
    assert_eq!(e_of(0)["next_run_at"], "2026-11-28T18:00:00Z");

    // A reply from the lead, threaded on our message: stopped, logged, signalled.
    let original = mail_to("rea").header("Message-ID").unwrap();
    let reply = format!(
        "From: Rea <rea@buyer.test>\r\nTo: {sender}\r\nSubject: Re: Hello rea\r\n\
         Message-ID: <reply-1@buyer.test>\r\nIn-Reply-To: {original}\r\n\r\nTell me more.\r\n"
    );
    let stored = inbound(&s, reply.as_bytes(), INBOUND_TOKEN).data(201);
    assert_eq!(stored["lead_id"], leads[0].as_str());
    assert!(stored["deal_id"].is_null());
    assert_eq!(stored["enrollment_id"], e_of(0)["id"]);
    let e = e_of(0);
    assert_eq!(
        (e["status"].as_str(), e["stop_reason"].as_str()),
        (Some("stopped"), Some("replied"))
    );
    let activities = s
        .get(&format!("/activities?lead_id={}", leads[0]), &k)
        .data(200);
    assert!(activities
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["type"] == "email_received"));

    // On the leaderboard the reply counts for the lead's owner, once the five are recorded sent.
    let board = wait_for("five emails recorded as sent", || {
        let board = s
            .get(
                "/performance/leaderboard?from=2026-11-28T00:00:00Z&to=2026-11-29T00:00:00Z",
                &k,
            )
            .data(200);
        (board[0]["emails_sent"] == 5).then_some(board)
    });
    assert_eq!(
        board[0]["reply_rate"], 0.2,
        "one reply to five emails: {board}"
    );

    // A bounce piped in: the address is suppressed and the enrollment stopped.
    let bounced = mail_to("bea").header("Message-ID").unwrap();
    let report = bounce(
        &sender,
        "bea@buyer.test",
        "failed",
        "5.1.1",
        bounced.trim_matches(['<', '>']),
    );
    inbound(&s, &report, INBOUND_TOKEN).data(201);
    assert_eq!(e_of(1)["stop_reason"], "bounced");

    // A one-click unsubscribe, as a mail client posts it.
    let link = mail_to("una").header("List-Unsubscribe").unwrap();
    let path = link
        .trim_matches(['<', '>'])
        .strip_prefix("http://crm.test")
        .unwrap()
        .to_string();
    let r = s.call(
        "POST",
        &path,
        None,
        Some(b"List-Unsubscribe=One-Click"),
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(e_of(2)["stop_reason"], "unsubscribed");
    let suppressed = s.get("/suppressions?email=una@buyer.test", &k).data(200);
    assert_eq!(suppressed[0]["reason"], "unsubscribed");

    // A deal for the lead (here by converting it).
    s.post(&format!("/leads/{}/convert", leads[3]), &k, json!({}))
        .data(201);
    assert_eq!(e_of(3)["stop_reason"], "converted");

    // By hand: paused, its step comes due and waits; resumed, it runs; stopped, it ends.
    let manual = id(&e_of(4));
    let paused = s
        .post(&format!("/enrollments/{manual}/pause"), &k, json!({}))
        .data(200);
    assert_eq!(paused["status"], "paused");
    s.clock.set(START_MS + 7 * HOUR);
    assert!(sink.nothing_within(Duration::from_millis(300)), "paused");
    s.post(&format!("/enrollments/{manual}/resume"), &k, json!({}))
        .data(200);
    let second_mail = sink.next();
    assert_eq!(second_mail.rcpt_to, vec!["man@buyer.test".to_string()]);
    wait_for("the last step to complete the enrollment", || {
        (e_of(4)["status"] == "completed").then_some(())
    });
    let e = s
        .post(&format!("/enrollments/{manual}/stop"), &k, json!({}))
        .error(409, "conflict");
    assert!(e["message"].as_str().unwrap().contains("completed"), "{e}");

    // Nothing more went to those who stopped.
    assert!(sink.nothing_within(Duration::from_millis(300)));
    let m = s
        .get(&format!("/campaigns/{campaign}/metrics"), &k)
        .data(200)["total"]
        .clone();
    assert_eq!(
        (
            &m["enrolled"],
            &m["replied"],
            &m["bounced"],
            &m["unsubscribed"],
            &m["converted"],
            &m["active"]
        ),
        (
            &json!(5),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(0)
        ),
        "{m}"
    );
    assert_eq!(m["conversion_rate"], 0.2);
    let stops = s
        .get("/events/log?types=enrollment.stopped&per_page=100", &k)
        .data(200);
    assert_eq!(stops.as_array().unwrap().len(), 4, "{stops}");
    assert!(stops[0]["data"]["previous"]["status"].is_string());

    // A completed campaign takes no more leads, and cannot be deleted.
    s.post(&format!("/campaigns/{campaign}/complete"), &k, json!({}))
        .data(200);
    s.post(
        &format!("/campaigns/{campaign}/enrollments"),
        &k,
        json!({"lead_ids": [leads[0]]}),
    )
    .error(409, "conflict");
    s.delete(&format!("/campaigns/{campaign}"), &k)
        .error(409, "conflict");
}

/// The real binary sends a campaign (an email step, then a task step) to many leads and is
/// SIGKILLed at pseudo-random moments while it does. After the restarts every enrollment ran
/// each step exactly once: one queued email and one task each, every email delivered. The one
/// repeat SMTP allows is a message the mail server accepted just before a kill, not yet
/// recorded as sent: it goes again with the same `Message-ID`, which the test checks of every
/// repeat and reports.
#[test]
#[ignore = "heavy (kills and restarts while a campaign sends): .ci/run runs it with --ignored"]
fn no_campaign_step_runs_twice_across_sigkills() {
    use crate::common::binary::{get, post, serve};
    use crate::common::TempDir;
    const LEADS: usize = 400;
    let sink = SmtpSink::start();
    let dir = TempDir::new();
    let db = dir.path().join("campaign.sqlite");
    let key_file = dir.path().join("admin.key");
    let args = [
        "--admin-key-file",
        key_file.to_str().unwrap(),
        "--rate-limit",
        "off",
        "--smtp-url",
        sink.url.as_str(),
    ];
    let mut s = serve(&db, &args);
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    for n in 0..LEADS {
        let (status, _) = post(
            &s.addr,
            "/leads",
            &key,
            json!({"first_name": format!("L{n}"), "email": format!("l{n}@buyer.test"), "tags": ["crash"]}),
        );
        assert_eq!(status, 201);
    }
    let (_, template) = post(
        &s.addr,
        "/email-templates",
        &key,
        json!({"name": "Intro", "subject": "Hi {{ lead.first_name }}", "text_body": "Hello"}),
    );
    let (_, campaign) = post(
        &s.addr,
        "/campaigns",
        &key,
        json!({"name": "Crash", "timezone": "UTC",
               "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "00:00", "to": "24:00"}}),
    );
    let c = id(&campaign);
    for step in [
        json!({"kind": "email", "template_id": id(&template)}),
        json!({"kind": "task", "title": "Follow up"}),
    ] {
        assert_eq!(
            post(&s.addr, &format!("/campaigns/{c}/steps"), &key, step).0,
            201
        );
    }
    let (status, enrolled) = post(
        &s.addr,
        &format!("/campaigns/{c}/enrollments"),
        &key,
        json!({"filter": {"tag": "crash"}}),
    );
    assert_eq!(
        (status, enrolled["enrolled"].as_u64()),
        (200, Some(LEADS as u64))
    );
    assert_eq!(
        post(
            &s.addr,
            &format!("/campaigns/{c}/activate"),
            &key,
            json!({})
        )
        .0,
        200
    );

    // Kill it five times while it works: each time after 50 more deliveries, then after a
    // pseudo-random further delay (fixed, so a failure can be replayed).
    let mut received: Vec<Mail> = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..5 {
        let wanted = received.len() + 50;
        let deadline = Instant::now() + Duration::from_secs(120);
        while received.len() < wanted.min(LEADS) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the campaign stalled"
            );
            if let Some(m) = sink.within(Duration::from_millis(50)) {
                received.push(m);
            }
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(x % 150));
        s.child.kill().unwrap(); // SIGKILL, mid-step
        s.child.wait().unwrap();
        s = serve(&db, &args);
    }
    // The last run finishes the campaign.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = get(
            &s.addr,
            &format!("/api/v1/enrollments?campaign_id={c}&status=completed&per_page=1"),
            &key,
        );
        let total = serde_json::from_str::<Value>(&body).unwrap()["meta"]["total"].clone();
        if total == LEADS {
            break;
        }
        assert!(Instant::now() < deadline, "not all completed: {total}");
        std::thread::sleep(Duration::from_millis(50));
    }
    while let Some(m) = sink.within(Duration::from_millis(500)) {
        received.push(m);
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM enrollment_steps"),
        2 * LEADS as i64
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM (SELECT enrollment_id FROM emails WHERE enrollment_id IS NOT NULL
             AND direction = 'outbound' GROUP BY enrollment_id HAVING COUNT(*) = 1)"
        ),
        LEADS as i64,
        "one queued email per enrollment"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM tasks WHERE title = 'Follow up'"),
        LEADS as i64,
        "one task per enrollment"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM emails WHERE enrollment_id IS NOT NULL AND status <> 'sent'"),
        0
    );
    let mut ids: Vec<String> = received
        .iter()
        .map(|m| m.header("Message-ID").expect("a Message-ID"))
        .collect();
    let deliveries = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        LEADS,
        "every email delivered, none under a new Message-ID"
    );
    eprintln!(
        "campaign crash safety: 5 SIGKILLs, {LEADS} enrollments, each step once; \
         {deliveries} SMTP deliveries of {LEADS} messages (repeats keep their Message-ID)"
    );
}

/// A draft campaign open every hour of the week whose first step is an email; its id.
fn open_all_week_with_an_email(s: &TestServer) -> String {
    let template = create(
        s,
        "/email-templates",
        json!({"name": "Intro", "subject": "Hello", "text_body": "Hi {{ lead.first_name }}"}),
    );
    let campaign = create(
        s,
        "/campaigns",
        json!({"name": "All week", "timezone": "UTC",
               "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "00:00", "to": "24:00"}}),
    );
    s.post(
        &format!("/campaigns/{campaign}/steps"),
        &s.admin_key,
        json!({"kind": "email", "template_id": template}),
    )
    .data(201);
    campaign
}

/// While the SMTP server turns mail away, a campaign does not render its whole audience into
/// the outbox: the scheduler stops 64 emails ahead of the sender (plus at most one batch), and
/// the rest go out once the mail does.
#[test]
fn a_campaign_stays_a_few_dozen_emails_ahead_of_its_sender() {
    let sink = SmtpSink::start();
    let s = server_with(&sink, |c| {
        c.email_retry_schedule = vec![Duration::from_secs(3600)];
    });
    let k = s.admin_key.clone();
    const LEADS: usize = 100;
    for i in 0..LEADS {
        lead(&s, &format!("Lead {i}"), &format!("lead{i}@buyer.test"));
    }
    let campaign = open_all_week_with_an_email(&s);
    // The first 64 are turned away (the mail of the last batch run may go through).
    sink.refuse(&["451 4.3.0 try again later"; 64]);
    let enrolled = s
        .post(
            &format!("/campaigns/{campaign}/enrollments"),
            &k,
            json!({"filter": {"tag": "q4"}}),
        )
        .data(200);
    assert_eq!(enrolled["enrolled"], LEADS);
    s.post(&format!("/campaigns/{campaign}/activate"), &k, json!({}))
        .data(200);

    let campaign_mail = "SELECT COUNT(*) FROM emails WHERE enrollment_id IS NOT NULL";
    let refused = "SELECT COUNT(*) FROM emails WHERE enrollment_id IS NOT NULL
                   AND status = 'queued' AND attempts = 1";
    wait_for("64 refused campaign emails waiting for their retry", || {
        (s.count(refused) == 64).then_some(())
    });
    // The scheduler looks again every 20 ms; give it many looks to overshoot.
    std::thread::sleep(Duration::from_millis(500));
    let queued = s.count(campaign_mail);
    assert!(
        (64..64 + 4).contains(&queued),
        "{queued} campaign emails written while the SMTP server refuses them"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM enrollments WHERE steps_run = 0") as usize,
        LEADS - queued as usize
    );

    // The retries come due: the mail goes out, and the rest of the audience follows it.
    s.clock.set(s.clock_now() + 2 * HOUR);
    let mut to: Vec<String> = (0..LEADS).map(|_| sink.next().rcpt_to[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), LEADS);
    wait_for("every enrollment completed", || {
        (s.count("SELECT COUNT(*) FROM enrollments WHERE status = 'completed'") == LEADS as i64)
            .then_some(())
    });
}

/// A campaign email waiting for a retry is not sent once its enrollment stops: it fails,
/// naming the stop, and the lead gets nothing more.
#[test]
fn a_stopped_enrollment_sends_none_of_its_waiting_mail() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let ada = lead(&s, "Ada", "ada@buyer.test");
    let campaign = open_all_week_with_an_email(&s);
    // A later step, so the enrollment is still live once the email is queued.
    s.post(
        &format!("/campaigns/{campaign}/steps"),
        &k,
        json!({"kind": "call", "delay": 1, "delay_unit": "days"}),
    )
    .data(201);
    sink.refuse(&["451 4.3.0 try again later"]);
    s.post(
        &format!("/campaigns/{campaign}/enrollments"),
        &k,
        json!({"lead_ids": [ada]}),
    )
    .data(200);
    s.post(&format!("/campaigns/{campaign}/activate"), &k, json!({}))
        .data(200);
    let waiting = "SELECT COUNT(*) FROM emails WHERE status = 'queued' AND attempts = 1";
    wait_for("the first attempt refused", || {
        (s.count(waiting) == 1).then_some(())
    });

    let e = enrollment(&s, &campaign, &ada);
    s.post(&format!("/enrollments/{}/stop", id(&e)), &k, json!({}))
        .data(200);
    // The retry comes due.
    s.clock.set(s.clock_now() + HOUR);
    wait_for("the waiting email failed", || {
        (s.count(
            "SELECT COUNT(*) FROM emails WHERE status = 'failed' AND last_error =
             'not sent: its campaign enrollment stopped (manual) before it went out'",
        ) == 1)
            .then_some(())
    });
    assert!(sink.nothing_within(Duration::from_millis(200)));
}
