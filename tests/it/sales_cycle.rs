//! An independent client walks a whole sales cycle, then reads the event log it left.

use crate::common::TestServer;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn company_to_closed_won_with_its_event_log() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let admin = s.admin_key.clone();
    let rep = s
        .post(
            "/users",
            &admin,
            json!({"email": "rep@example.com", "name": "Rep", "role": "member"}),
        )
        .data(201);

    let company = s
        .post(
            "/companies",
            &k,
            json!({"name": "Acme Corp", "domain": "ACME.com", "industry": "SaaS", "size": 120}),
        )
        .data(201);
    assert_eq!(company["domain"], "acme.com");
    let lead = s
        .post(
            "/leads",
            &k,
            json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.com",
                   "title": "VP Sales", "company_id": id(&company), "tags": ["hot", "hot", "q4"]}),
        )
        .data(201);
    assert_eq!(lead["company_name"], "Acme Corp");
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["tags"], json!(["hot", "q4"]));
    let lead_id = id(&lead);

    let dup = s
        .post("/leads", &k, json!({"email": "ADA@acme.com"}))
        .error(409, "conflict");
    assert!(dup["details"][0]["issue"]
        .as_str()
        .unwrap()
        .contains(&lead_id));

    let view = s.get(&format!("/leads/{lead_id}/360"), &k).data(200);
    assert_eq!(view["lead"]["id"], lead_id.as_str());
    assert_eq!(view["company"]["id"], company["id"]);
    for list in ["deals", "activities", "calls", "notes", "tasks", "signals"] {
        assert_eq!(view[list], json!([]), "{list}");
    }

    s.post(
        &format!("/leads/{lead_id}/assign"),
        &k,
        json!({"user_id": "usr_01M8H6J8V5EZ2NYY830B06ZRR9"}),
    )
    .error(422, "validation_error");
    let assigned = s
        .post(
            &format!("/leads/{lead_id}/assign"),
            &k,
            json!({"user_id": id(&rep)}),
        )
        .data(200);
    assert_eq!(assigned["owner_id"], rep["id"]);

    s.patch(
        &format!("/leads/{lead_id}"),
        &k,
        json!({"status": "qualified"}),
    )
    .data(200);
    let conv = s
        .post(
            &format!("/leads/{lead_id}/convert"),
            &k,
            json!({"value": 25000.5, "expected_close_date": "2026-12-31"}),
        )
        .data(201);
    assert_eq!(conv["lead"]["status"], "converted");
    let deal = conv["deal"].clone();
    let deal_id = id(&deal);
    assert_eq!(conv["lead"]["converted_deal_id"], deal_id.as_str());
    assert_eq!(deal["stage_name"], "Lead In");
    assert_eq!(deal["status"], "open");
    assert_eq!(deal["value"], 25000.5);
    assert_eq!(deal["currency"], "USD");
    assert_eq!(deal["company_id"], company["id"]);
    assert_eq!(
        deal["owner_id"], rep["id"],
        "the lead's owner owns the deal"
    );
    s.post(&format!("/leads/{lead_id}/convert"), &k, json!({}))
        .error(409, "conflict");

    let task = s
        .post(
            "/tasks",
            &k,
            json!({"title": "Send proposal", "deal_id": deal_id, "priority": "high",
                                   "due_at": "2026-11-30T09:00:00Z"}),
        )
        .data(201);
    s.post("/activities", &k, json!({"type": "call", "deal_id": deal_id, "lead_id": lead_id,
                                     "duration_seconds": 420, "outcome": "connected", "subject": "Discovery"}))
        .data(201);
    s.post(
        "/notes",
        &k,
        json!({"content": "Budget approved for Q1", "deal_id": deal_id}),
    )
    .data(201);
    s.post("/notes", &k, json!({"content": "nowhere"}))
        .error(422, "validation_error");

    let ctx = s.get(&format!("/deals/{deal_id}"), &k).data(200);
    assert_eq!(ctx["next_task"]["id"], task["id"]);
    assert_eq!(ctx["last_activity"]["type"], "call");
    assert_eq!(ctx["open_tasks_count"], 1);
    assert_eq!(ctx["notes_count"], 1);
    assert_eq!(ctx["lead"]["name"], "Ada Lovelace");
    assert_eq!(ctx["company"]["name"], "Acme Corp");
    assert_eq!(ctx["stage"]["name"], "Lead In");
    assert_eq!(ctx["last_activity_at"], "2026-11-28T12:00:00Z");

    s.post(&format!("/tasks/{}/complete", id(&task)), &k, json!({}))
        .data(200);
    for stage in [
        "Qualified",
        "Demo Scheduled",
        "Proposal Sent",
        "Negotiation",
    ] {
        s.clock.advance(86_400_000);
        let moved = s
            .post(
                &format!("/deals/{deal_id}/move"),
                &k,
                json!({"stage": stage}),
            )
            .data(200);
        assert_eq!(moved["stage_name"], stage);
        assert_eq!(moved["status"], "open");
    }
    let won_stage = s.get("/deals/stages", &k).data(200)[5].clone();
    assert_eq!(won_stage["name"], "Closed Won");
    let won = s
        .post(
            &format!("/deals/{deal_id}/move"),
            &k,
            json!({"stage_id": id(&won_stage)}),
        )
        .data(200);
    assert_eq!(won["status"], "won");
    assert!(won["closed_at"].is_string());

    let history = s.get(&format!("/deals/{deal_id}/history"), &k).data(200);
    let names: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to_stage_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Lead In",
            "Qualified",
            "Demo Scheduled",
            "Proposal Sent",
            "Negotiation",
            "Closed Won"
        ]
    );
    assert_eq!(history[1]["seconds_in_previous_stage"], 86_400);

    // The event log tells the same story, in order, with the previous values of each change.
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = s
            .get(&format!("/events/log?after={after}&per_page=100"), &k)
            .json();
        let batch = page["data"].as_array().unwrap().clone();
        if batch.is_empty() {
            break;
        }
        after = batch.last().unwrap()["seq"].as_i64().unwrap();
        events.extend(batch);
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let expected_prefix = [
        "company.created",
        "lead.created",
        "lead.assigned",
        "lead.updated",
        "deal.created",
        "lead.converted",
        "task.created",
        "activity.created",
        "note.created",
        "task.updated",
        "task.completed",
    ];
    assert_eq!(
        &types[..expected_prefix.len()],
        expected_prefix,
        "{types:?}"
    );
    let moves: Vec<&str> = types[expected_prefix.len()..].to_vec();
    let one_move = ["activity.created", "deal.updated", "deal.stage_changed"];
    for i in 0..4 {
        assert_eq!(&moves[i * 3..i * 3 + 3], one_move, "{moves:?}");
    }
    assert_eq!(
        &moves[12..],
        [
            "activity.created",
            "deal.updated",
            "deal.stage_changed",
            "deal.won"
        ]
    );
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let assigned_evt = &events[2];
    assert_eq!(assigned_evt["data"]["previous"], json!({"owner_id": null}));
    assert_eq!(assigned_evt["data"]["object"]["owner_id"], rep["id"]);
    let status_evt = &events[3];
    assert_eq!(status_evt["data"]["previous"]["status"], "new");
    let won_evt = events.iter().find(|e| e["type"] == "deal.won").unwrap();
    assert_eq!(won_evt["data"]["previous"]["stage_name"], "Negotiation");
    assert_eq!(won_evt["data"]["previous"]["status"], "open");
    assert_eq!(won_evt["actor"]["type"], "api_key");
    assert!(won_evt["id"].as_str().unwrap().starts_with("evt_"));

    let only_deals = s.get("/events/log?types=deal.won,lead.*", &k).data(200);
    let t: Vec<&str> = only_deals
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        t,
        [
            "lead.created",
            "lead.assigned",
            "lead.updated",
            "lead.converted",
            "deal.won"
        ]
    );
    s.get("/events/log?types=deal.exploded", &k)
        .error(422, "validation_error");
}

#[test]
fn stage_of_another_pipeline_is_409_and_moves_reopen_closed_deals() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let other = s
        .post("/pipelines", &k, json!({"name": "Renewals", "stages": [{"name": "Due"}, {"name": "Renewed", "kind": "won"}]}))
        .data(201);
    assert_eq!(other["stages"][1]["probability"], 100);
    let deal = s
        .post("/deals", &k, json!({"title": "Big one", "value": 1000}))
        .data(201);
    let deal_id = id(&deal);
    let foreign_stage = id(&other["stages"][0]);
    let e = s
        .post(
            &format!("/deals/{deal_id}/move"),
            &k,
            json!({"stage_id": foreign_stage}),
        )
        .error(409, "conflict");
    assert_eq!(e["details"][0]["field"], "stage_id");
    s.post(
        &format!("/deals/{deal_id}/move"),
        &k,
        json!({"stage": "No Such Stage"}),
    )
    .error(422, "validation_error");
    s.post(&format!("/deals/{deal_id}/move"), &k, json!({}))
        .error(422, "validation_error");

    let lost = s
        .post(
            &format!("/deals/{deal_id}/move"),
            &k,
            json!({"stage": "closed lost", "lost_reason": "Budget"}),
        )
        .data(200);
    assert_eq!(
        (lost["status"].as_str(), lost["lost_reason"].as_str()),
        (Some("lost"), Some("Budget"))
    );
    let reopened = s
        .post(
            &format!("/deals/{deal_id}/move"),
            &k,
            json!({"stage": "Negotiation"}),
        )
        .data(200);
    assert_eq!(reopened["status"], "open");
    assert!(reopened["closed_at"].is_null() && reopened["lost_reason"].is_null());
    // A deal created straight into a renewals stage lives in that pipeline.
    let d2 = s
        .post(
            "/deals",
            &k,
            json!({"title": "Renewal", "stage_id": foreign_stage}),
        )
        .data(201);
    assert_eq!(d2["pipeline_id"], other["id"]);
}

#[test]
fn deleting_things_leaves_nothing_dangling() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let co = s
        .post("/companies", &k, json!({"name": "Gone Inc"}))
        .data(201);
    let lead = s
        .post(
            "/leads",
            &k,
            json!({"email": "x@gone.example", "company_id": id(&co)}),
        )
        .data(201);
    let deal = s
        .post("/deals", &k, json!({"title": "D", "lead_id": id(&lead)}))
        .data(201);
    assert_eq!(
        deal["company_id"], co["id"],
        "the deal takes the lead's company"
    );
    let deal_id = id(&deal);
    s.post("/tasks", &k, json!({"title": "t", "deal_id": deal_id}))
        .data(201);
    s.post(
        "/notes",
        &k,
        json!({"content": "n", "deal_id": deal_id, "lead_id": id(&lead)}),
    )
    .data(201);
    s.post(
        "/activities",
        &k,
        json!({"type": "email", "deal_id": deal_id}),
    )
    .data(201);

    s.delete(&format!("/companies/{}", id(&co)), &k).data(200);
    let lead_after = s.get(&format!("/leads/{}", id(&lead)), &k).data(200);
    assert!(lead_after["company_id"].is_null());
    assert_eq!(lead_after["company_name"], "Gone Inc");
    assert!(s.get(&format!("/deals/{deal_id}"), &k).data(200)["company_id"].is_null());

    s.delete(&format!("/deals/{deal_id}"), &k).data(200);
    s.get(&format!("/deals/{deal_id}"), &k)
        .error(404, "not_found");
    for table in ["tasks", "notes", "activities", "deal_stage_history"] {
        assert_eq!(
            s.count(&format!(
                "SELECT COUNT(*) FROM {table} WHERE deal_id = '{deal_id}'"
            )),
            0,
            "{table}"
        );
    }
    s.delete(&format!("/leads/{}", id(&lead)), &k).data(200);
    assert_eq!(s.count("SELECT COUNT(*) FROM notes"), 0);
    let fk: i64 = s.count("SELECT COUNT(*) FROM pragma_foreign_key_check");
    assert_eq!(fk, 0);
    let deleted: Vec<String> = s.get("/events/log?types=company.deleted,task.deleted,note.deleted,deal.deleted,lead.deleted&per_page=100", &k).data(200)
        .as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        deleted,
        [
            "company.deleted",
            "task.deleted",
            "note.deleted",
            "deal.deleted",
            "lead.deleted"
        ]
    );
}

/// A lead of a company whose name fills its 200 characters converts without a title: the deal
/// is named after the company, cut to fit, not refused for a title the caller never sent.
#[test]
fn a_converted_lead_of_a_long_named_company_gets_a_title_that_fits() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let name = "Ä".repeat(200);
    let lead = s
        .post(
            "/leads",
            &k,
            json!({"email": "long@example.com", "company_name": name}),
        )
        .data(201);
    let conv = s
        .post(&format!("/leads/{}/convert", id(&lead)), &k, json!({}))
        .data(201);
    let title = conv["deal"]["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), 200, "{title}");
    assert!(title.ends_with("ÄÄ deal"), "{title}");
}
