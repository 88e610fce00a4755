//! The agenda: a day's work in one read — signals, deals at risk, tasks overdue and due today,
//! unanswered inbound email — for the organization and for one owner, on the injected clock.

use serde_json::{json, Value};

use crate::common::smtp::SmtpSink;
use crate::common::{TestServer, START_MS};
use crate::email::{inbound, server_with, INBOUND_TOKEN};

const HOUR: i64 = 3_600_000;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(id).collect()
}

fn at(ms: i64) -> String {
    clozup::timefmt::format_ms(ms)
}

fn agenda(s: &TestServer, query: &str) -> Value {
    s.get(&format!("/agenda{query}"), &s.admin_key).data(200)
}

#[test]
fn the_agenda_gathers_a_days_work_for_the_organization_or_one_owner() {
    let sink = SmtpSink::start();
    let s = server_with(&sink, |_| {});
    let k = s.admin_key.clone();
    let me = id(&s.get("/me", &k).data(200)["user"]);
    let rep = id(&s
        .post(
            "/users",
            &k,
            json!({"email": "rep@acme.test", "name": "Rep", "role": "member"}),
        )
        .data(201));
    let deal = |title: &str, owner: &str| {
        id(&s
            .post("/deals", &k, json!({"title": title, "owner_id": owner}))
            .data(201))
    };
    let (mine, theirs) = (deal("Mine", &me), deal("Theirs", &rep));
    let task = |title: &str, owner: &str, deal: &str, due: i64| {
        id(&s
            .post(
                "/tasks",
                &k,
                json!({"title": title, "assignee_id": owner, "deal_id": deal, "due_at": at(due)}),
            )
            .data(201))
    };
    // The clock stands at 12:00 UTC, the organization's zone.
    let late = task("Late", &rep, &theirs, START_MS - 2 * HOUR);
    let soon = task("Soon", &rep, &theirs, START_MS + 3 * HOUR);
    task("Tomorrow", &rep, &theirs, START_MS + 14 * HOUR);
    let my_late = task("My late", &me, &mine, START_MS - HOUR);

    // A buyer writes to the rep's deal.
    let address = s
        .post(
            &format!("/deals/{theirs}/email-inbox"),
            &k,
            json!({"username": "theirs"}),
        )
        .data(201)["address"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = format!(
        "From: Buyer <buyer@client.test>\r\nTo: {address}\r\nSubject: Pricing\r\n\
         Message-ID: <q1@client.test>\r\n\r\nWhat would it cost for 40 seats?\r\n"
    );
    let question = id(&inbound(&s, raw.as_bytes(), INBOUND_TOKEN).data(201));

    let all = agenda(&s, "?score_min=0");
    assert_eq!(all["today"], "2026-11-28");
    assert!(all["owner_id"].is_null());
    assert_eq!(ids(&all["overdue_tasks"]), [late.clone(), my_late.clone()]);
    assert_eq!(ids(&all["due_today"]), std::slice::from_ref(&soon));
    assert_eq!(
        ids(&all["unanswered_emails"]),
        std::slice::from_ref(&question)
    );
    // The lists are the API's own, cut to 25.
    let signals = s.get("/signals?score_min=0", &k);
    assert_eq!(ids(&all["signals"]), ids(&signals.data(200)));
    assert_eq!(all["totals"]["signals"], signals.json()["meta"]["total"]);
    let risky = s.get("/deals/at-risk?score_min=0", &k).data(200);
    let ranked: Vec<String> = risky
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deal_id"].as_str().unwrap().to_string())
        .collect();
    let listed: Vec<String> = all["at_risk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deal_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ranked);
    assert_eq!(listed.len(), 2);
    assert_eq!(
        all["totals"],
        json!({"signals": all["signals"].as_array().unwrap().len(), "at_risk": 2,
               "overdue_tasks": 2, "due_today": 1, "unanswered_emails": 1})
    );

    // The rep's day: their deal, their tasks, the mail on their deal.
    let theirs_only = agenda(&s, &format!("?score_min=0&owner_id={rep}"));
    assert_eq!(theirs_only["owner_id"], rep);
    assert_eq!(ids(&theirs_only["overdue_tasks"]), [late]);
    assert_eq!(ids(&theirs_only["due_today"]), [soon]);
    assert_eq!(
        ids(&theirs_only["unanswered_emails"]),
        std::slice::from_ref(&question)
    );
    assert_eq!(theirs_only["at_risk"].as_array().unwrap().len(), 1);
    assert_eq!(theirs_only["at_risk"][0]["deal_id"], theirs);
    for signal in theirs_only["signals"].as_array().unwrap() {
        assert_eq!(signal["deal_id"], theirs, "{signal}");
    }
    let mine_only = agenda(&s, &format!("?score_min=0&owner_id={me}"));
    assert_eq!(ids(&mine_only["overdue_tasks"]), [my_late]);
    assert!(mine_only["unanswered_emails"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(mine_only["at_risk"][0]["deal_id"], mine);

    // Answered, the mail leaves the agenda; fresh deals are not at risk by default.
    s.clock.set(START_MS + 10 * 60_000);
    s.post(
        &format!("/deals/{theirs}/emails/reply/{question}"),
        &k,
        json!({"text": "About 4,000 a year."}),
    )
    .data(202);
    let after = agenda(&s, "");
    assert!(after["unanswered_emails"].as_array().unwrap().is_empty());
    assert_eq!(after["totals"]["unanswered_emails"], 0);
    assert_eq!(after["totals"]["at_risk"], 0);

    // An owner who is no user of this organization is named.
    let other = s.second_org();
    let stranger = id(&s.get("/me", &other).data(200)["user"]);
    s.get(&format!("/agenda?owner_id={stranger}"), &k)
        .error(422, "validation_error");
    s.get(&format!("/agenda?owner_id={me}"), &other)
        .error(422, "validation_error");
}
