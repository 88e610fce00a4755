//! Organizations never see each other's data: a matrix over every operation of the OpenAPI
//! document that takes an id, plus lists, search and the event log.

use std::collections::BTreeMap;

use crate::common::TestServer;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// One object of every kind in organization A, by the path segment that names its kind.
fn seed(s: &TestServer) -> BTreeMap<&'static str, String> {
    let k = &s.admin_key;
    let co = s
        .post("/companies", k, json!({"name": "Acme Secret"}))
        .data(201);
    let lead = s
        .post(
            "/leads",
            k,
            json!({"email": "secret@acme.example", "company_id": id(&co)}),
        )
        .data(201);
    let pipeline = s.post("/pipelines", k, json!({"name": "Hidden"})).data(201);
    let deal = s
        .post(
            "/deals",
            k,
            json!({"title": "Acme Secret Deal", "lead_id": id(&lead)}),
        )
        .data(201);
    let task = s
        .post("/tasks", k, json!({"title": "t", "deal_id": id(&deal)}))
        .data(201);
    let act = s
        .post(
            "/activities",
            k,
            json!({"type": "call", "deal_id": id(&deal)}),
        )
        .data(201);
    let note = s
        .post(
            "/notes",
            k,
            json!({"content": "Acme secret note", "deal_id": id(&deal)}),
        )
        .data(201);
    let user = s
        .post("/users", k, json!({"email": "u@acme.example", "name": "U"}))
        .data(201);
    let template = s
        .post(
            "/email-templates",
            k,
            json!({"name": "Acme secret pitch", "subject": "Acme", "text_body": "Acme {{ lead.email }}"}),
        )
        .data(201);
    let suppression = s
        .post(
            "/suppressions",
            k,
            json!({"email": "secret-optout@acme.example", "note": "Acme secret"}),
        )
        .data(201);
    let key = s.post("/api-keys", k, json!({"name": "a key"})).data(201);
    let campaign = s
        .post("/campaigns", k, json!({"name": "Acme secret outreach"}))
        .data(201);
    let step = s
        .post(
            &format!("/campaigns/{}/steps", id(&campaign)),
            k,
            json!({"kind": "email", "template_id": id(&template)}),
        )
        .data(201);
    let prospect = s
        .post("/leads", k, json!({"email": "prospect@acme.example"}))
        .data(201);
    s.post(
        &format!("/campaigns/{}/enrollments", id(&campaign)),
        k,
        json!({"lead_ids": [id(&prospect)]}),
    )
    .data(200);
    let enrollment = s.get("/enrollments", k).data(200)[0].clone();
    let memory = s
        .post(
            &format!("/deals/{}/memory", id(&deal)),
            k,
            json!({"content": "Acme secret memory"}),
        )
        .data(201);
    s.post(
        "/tasks",
        k,
        json!({"title": "overdue", "deal_id": id(&deal), "due_at": "2026-01-01T00:00:00Z"}),
    )
    .data(201);
    clozup::domain::signals::sweep_all(&s.state.db, s.clock_now()).unwrap();
    let signal = s.get("/signals", k).data(200)[0].clone();
    let webhook = s
        .post("/webhooks", k, json!({"url": "https://acme.example/hook"}))
        .data(201);
    // Paused, so the background worker leaves it (and the snapshot) alone.
    s.patch(
        &format!("/webhooks/{}", id(&webhook)),
        k,
        json!({"active": false}),
    )
    .data(200);
    let delivery = s
        .post(&format!("/webhooks/{}/test", id(&webhook)), k, json!({}))
        .data(201);
    let email = s
        .post(
            &format!("/deals/{}/emails/send", id(&deal)),
            k,
            json!({"to": ["buyer@acme.example"], "subject": "Acme secret", "text": "secret"}),
        )
        .data(202);
    // Sent (by the log transport) before the snapshot, so the sender cannot change it later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s
        .get(&format!("/deals/{}/emails/{}", id(&deal), id(&email)), k)
        .data(200)["status"]
        != "sent"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the email was never sent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    BTreeMap::from([
        ("email", id(&email)),
        ("companies", id(&co)),
        ("leads", id(&lead)),
        ("pipelines", id(&pipeline)),
        ("stages", id(&pipeline["stages"][1])),
        ("deals", id(&deal)),
        ("tasks", id(&task)),
        ("activities", id(&act)),
        ("notes", id(&note)),
        ("users", id(&user)),
        ("api-keys", id(&key)),
        ("signals", id(&signal)),
        ("memory", id(&memory)),
        ("webhooks", id(&webhook)),
        ("delivery", id(&delivery)),
        ("email-templates", id(&template)),
        ("suppressions", id(&suppression)),
        ("campaigns", id(&campaign)),
        ("step", id(&step)),
        ("enrollments", id(&enrollment)),
    ])
}

/// A body that passes the schema, so the answer can only come from the ownership check.
fn body_for(op: &str, b_user: &str) -> Option<Value> {
    match op {
        "assign_lead" => Some(json!({"user_id": b_user})),
        "create_stage" => Some(json!({"name": "Injected"})),
        "update_note" => Some(json!({"content": "overwritten"})),
        "move_deal" => Some(json!({"stage": "Qualified"})),
        "create_deal_memory" => Some(json!({"content": "injected"})),
        "send_email" => Some(json!({"to": ["x@example.com"], "subject": "s", "text": "injected"})),
        "reply_to_email" => Some(json!({"text": "injected"})),
        "update_email_template" => Some(json!({"subject": "injected"})),
        "send_email_from_template" => {
            Some(json!({"template_id": "tpl_00000000000000000000000000"}))
        }
        "create_campaign_step" => Some(json!({"kind": "call"})),
        "enroll_leads" => Some(json!({"lead_ids": ["lead_00000000000000000000000000"]})),
        _ => None,
    }
}

/// Everything organization A has, as A sees it.
fn snapshot(s: &TestServer, objects: &BTreeMap<&'static str, String>) -> Vec<String> {
    let mut out: Vec<String> = objects
        .iter()
        .filter(|(kind, _)| !["stages", "memory", "delivery", "email", "step"].contains(kind))
        .map(|(kind, id)| s.get(&format!("/{kind}/{id}"), &s.admin_key).body)
        .collect();
    out.push(s.count("SELECT COUNT(*) FROM events").to_string());
    out.push(s.count("SELECT COUNT(*) FROM stages").to_string());
    out.push(
        s.count("SELECT COUNT(*) FROM signals WHERE status = 'open'")
            .to_string(),
    );
    out.push(s.count("SELECT COUNT(*) FROM deal_memory").to_string());
    out.push(s.count("SELECT COUNT(*) FROM emails").to_string());
    out.push(s.count("SELECT COUNT(*) FROM email_inboxes").to_string());
    out.push(s.count("SELECT COUNT(*) FROM campaign_steps").to_string());
    out.push(s.count("SELECT COUNT(*) FROM enrollments").to_string());
    out
}

#[test]
fn organization_b_gets_404_on_every_id_of_organization_a() {
    let s = TestServer::start();
    let objects = seed(&s);
    let b = s.second_org();
    let b_user = s.get("/me", &b).data(200)["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot(&s, &objects);

    let doc = s.call("GET", "/api/v1/public/docs", None, None, &[]).json();
    let mut probed = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains("{id}") {
            continue;
        }
        let kind = path.trim_start_matches('/').split('/').next().unwrap();
        let object_id = objects
            .get(kind)
            .unwrap_or_else(|| panic!("no seeded object for {path}"));
        let url = path
            .replace("{id}", object_id)
            .replace("{memory_id}", &objects["memory"])
            .replace("{message_id}", &objects["email"])
            .replace("{step_id}", &objects["step"]);
        for (method, op) in item.as_object().unwrap() {
            let op_id = op["operationId"].as_str().unwrap();
            let has_body = op.get("requestBody").is_some();
            let body = body_for(op_id, &b_user).unwrap_or(json!({})).to_string();
            let r = s.call(
                &method.to_uppercase(),
                &url,
                Some(&b),
                has_body.then_some(body.as_bytes()),
                &[],
            );
            r.error(404, "not_found");
            assert!(!r.body.contains("Acme"), "{op_id} leaked: {}", r.body);
            probed += 1;
        }
    }
    eprintln!("isolation matrix: {probed} operations probed with another organization's ids");
    assert!(probed >= 30, "only {probed} operations with ids");
    assert_eq!(
        snapshot(&s, &objects),
        before,
        "organization B changed A's data"
    );
}

#[test]
fn lists_search_and_the_event_log_show_only_the_callers_organization() {
    let s = TestServer::start();
    seed(&s);
    let b = s.second_org();
    for list in [
        "/companies",
        "/leads",
        "/deals",
        "/tasks",
        "/activities",
        "/notes",
        "/events/log",
        "/api-keys",
    ] {
        let page = s.get(list, &b).json();
        let expected = if list == "/api-keys" { 1 } else { 0 };
        assert_eq!(page["meta"]["total"], expected, "{list}: {}", page);
    }
    assert_eq!(s.get("/users", &b).json()["meta"]["total"], 1);
    assert_eq!(s.get("/pipelines", &b).json()["meta"]["total"], 1);
    assert_eq!(s.get("/search?q=acme", &b).json()["meta"]["total"], 0);
    assert!(
        s.get("/search?q=acme", &s.admin_key).json()["meta"]["total"]
            .as_i64()
            .unwrap()
            >= 3
    );
    // A's ids used as filters find nothing either.
    let a_company = s.get("/companies", &s.admin_key).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.get(&format!("/leads?company_id={a_company}"), &b).json()["meta"]["total"],
        0
    );
    // And B cannot point its own records at A's: to B, A's ids name nothing (422 on the field).
    let e = s
        .post(
            "/leads",
            &b,
            json!({"email": "x@b.example", "company_id": a_company}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "company_id");
    assert!(!e["message"].as_str().unwrap().contains("Acme"), "{e}");
    let a_deal = s.get("/deals", &s.admin_key).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("/notes", &b, json!({"content": "x", "deal_id": a_deal}))
        .error(422, "validation_error");
    s.post("/tasks", &b, json!({"title": "x", "deal_id": a_deal}))
        .error(422, "validation_error");
}
