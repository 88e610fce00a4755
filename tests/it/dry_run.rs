//! Dry runs (`dry_run=true`) on every write operation of the OpenAPI document: the answer is
//! the one the real request then gets (status and shape), marked `Dry-Run: true`, and nothing
//! is left behind: no row, no event, no idempotency record. Unknown query parameters are
//! refused, naming the closest known one.

use std::collections::BTreeMap;

use crate::common::{TestServer, USER_PASSWORD};
use rusqlite::types::ValueRef;
use serde_json::{json, Value};

/// What is stored, table by table: every row of the tables only requests change, and the row
/// count of those the background workers also touch (delivery attempts, email status, key and
/// session use, signal sweeps, commit numbers).
fn stored(s: &TestServer) -> BTreeMap<String, String> {
    const COUNTED_ONLY: &[&str] = &[
        "webhook_deliveries",
        "emails",
        "api_keys",
        "sessions",
        "signals",
        "event_log_state",
    ];
    s.state
        .db
        .blocking()
        .read(|c| {
            let tables: Vec<String> = c
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'search_%'
                     AND name <> 'commit_seq'",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = BTreeMap::new();
            for t in tables {
                let text = if COUNTED_ONLY.contains(&t.as_str()) {
                    c.query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| {
                        r.get::<_, i64>(0)
                    })?
                    .to_string()
                } else {
                    let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))?;
                    let columns = stmt.column_count();
                    let mut rows = stmt.query([])?;
                    let mut text = String::new();
                    while let Some(row) = rows.next()? {
                        for i in 0..columns {
                            match row.get_ref(i)? {
                                ValueRef::Text(t) => text.push_str(&String::from_utf8_lossy(t)),
                                other => text.push_str(&format!("{other:?}")),
                            }
                            text.push('|');
                        }
                        text.push('\n');
                    }
                    text
                };
                out.insert(t, text);
            }
            Ok(out)
        })
        .unwrap()
}

/// What is stored once the background workers are done with the last request (a sent
/// email logs its activity when the sender gets to it).
fn settled(s: &TestServer) -> BTreeMap<String, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = stored(s);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = stored(s);
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// A write request: how to call it and whether it needs the owner's session.
struct Write {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    content_type: &'static str,
    session: bool,
}

fn json_write(method: &'static str, path: String, body: Value) -> Write {
    Write {
        method,
        path,
        body: Some(body.to_string().into_bytes()),
        content_type: "application/json",
        session: false,
    }
}

fn bare(method: &'static str, path: String) -> Write {
    Write {
        method,
        path,
        body: None,
        content_type: "application/json",
        session: false,
    }
}

/// The keys of a JSON value's objects, recursively: the answer's shape without its values
/// (new ids and times differ between a rehearsal and the real thing).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        _ => Value::Null,
    }
}

#[test]
fn every_write_operation_rehearses_without_a_trace() {
    let s = TestServer::start_with(|c| {
        c.inbound_token = Some("inbound-secret".into());
        c.backup_dir = None;
    });
    let k = s.admin_key.clone();
    let id = |v: Value| v["id"].as_str().unwrap().to_string();

    // What the writes act on.
    let company = id(s.post("/companies", &k, json!({"name": "Acme"})).data(201));
    let lead = id(s
        .post(
            "/leads",
            &k,
            json!({"email": "ada@acme.test", "company_id": company}),
        )
        .data(201));
    let deal = id(s
        .post("/deals", &k, json!({"title": "Big one", "lead_id": lead}))
        .data(201));
    // A deal idle for 30 days raises a signal.
    s.clock.advance(30 * 24 * 3_600_000);
    clozup::domain::signals::sweep_all(&s.state.db, s.clock_now()).unwrap();
    let signal = id(s.get("/signals", &k).data(200)[0].clone());
    let session = s.owner_session();
    let pipeline = id(s
        .post("/pipelines", &k, json!({"name": "Partners"}))
        .data(201));
    let stage = id(s
        .post(
            &format!("/pipelines/{pipeline}/stages"),
            &k,
            json!({"name": "Intro"}),
        )
        .data(201));
    let memory = id(s
        .post(
            &format!("/deals/{deal}/memory"),
            &k,
            json!({"content": "Likes golf"}),
        )
        .data(201));
    let task = id(s
        .post("/tasks", &k, json!({"title": "Call", "deal_id": deal}))
        .data(201));
    let activity = id(s
        .post("/activities", &k, json!({"type": "call", "deal_id": deal}))
        .data(201));
    let note = id(s
        .post(
            "/notes",
            &k,
            json!({"content": "Met at the fair", "deal_id": deal}),
        )
        .data(201));
    let webhook = id(s
        .post(
            "/webhooks",
            &k,
            json!({"url": "https://hooks.example.com/crm"}),
        )
        .data(201));
    let delivery = id(s
        .post(&format!("/webhooks/{webhook}/test"), &k, json!({}))
        .data(201));
    let inbox = s
        .post(&format!("/deals/{deal}/email-inbox"), &k, json!({}))
        .data(201);
    let sent = id(s
        .post(
            &format!("/deals/{deal}/emails/send"),
            &k,
            json!({"to": ["ada@acme.test"], "subject": "Hello", "text": "Hi Ada"}),
        )
        .data(202));
    let (member, _) = s.user_with_session(&session, "sam@acme.test", "member");
    let other = id(s.post("/api-keys", &k, json!({"name": "spare"})).data(201));
    let (pat, _) = s.user_with_session(&session, "pat@acme.test", "member");
    let (leaver, _) = s.user_with_session(&session, "quinn@acme.test", "member");
    let reset = s
        .post(&format!("/users/{pat}/password-reset"), &session, json!({}))
        .data(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = format!(
        "From: Ada <ada@acme.test>\r\nTo: {}\r\nSubject: Re: Hello\r\nMessage-ID: <r1@acme.test>\r\n\r\nSounds good",
        inbox["address"].as_str().unwrap()
    );
    let throwaway = |path: &str, body: Value| id(s.post(path, &k, body).data(201));

    let mut writes: BTreeMap<(String, String), Write> = BTreeMap::new();
    let mut add = |method: &'static str, template: &'static str, w: Write| {
        assert_eq!(w.method, method);
        writes.insert((method.to_string(), template.to_string()), w);
    };
    add(
        "POST",
        "/auth/login",
        json_write(
            "POST",
            "/auth/login".into(),
            json!({"email": "sam@acme.test", "password": USER_PASSWORD}),
        ),
    );
    add(
        "POST",
        "/auth/password-reset",
        json_write(
            "POST",
            "/auth/password-reset".into(),
            json!({"token": reset, "password": "a brand new passphrase"}),
        ),
    );
    add(
        "POST",
        "/auth/logout",
        Write {
            session: true,
            ..bare("POST", "/auth/logout".into())
        },
    );
    add(
        "PATCH",
        "/org",
        json_write("PATCH", "/org".into(), json!({"name": "Acme Sales"})),
    );
    add(
        "POST",
        "/users",
        json_write(
            "POST",
            "/users".into(),
            json!({"email": "new@acme.test", "name": "New"}),
        ),
    );
    add(
        "PATCH",
        "/users/{id}",
        json_write("PATCH", format!("/users/{member}"), json!({"name": "Sam"})),
    );
    add(
        "DELETE",
        "/users/{id}",
        bare("DELETE", format!("/users/{leaver}")),
    );
    add(
        "POST",
        "/users/{id}/password-reset",
        Write {
            session: true,
            ..bare("POST", format!("/users/{member}/password-reset"))
        },
    );
    add(
        "POST",
        "/api-keys",
        json_write("POST", "/api-keys".into(), json!({"name": "agent"})),
    );
    add(
        "DELETE",
        "/api-keys/{id}",
        bare("DELETE", format!("/api-keys/{other}")),
    );
    add(
        "POST",
        "/companies",
        json_write("POST", "/companies".into(), json!({"name": "Initech"})),
    );
    add(
        "PATCH",
        "/companies/{id}",
        json_write(
            "PATCH",
            format!("/companies/{company}"),
            json!({"industry": "Software"}),
        ),
    );
    add(
        "DELETE",
        "/companies/{id}",
        bare(
            "DELETE",
            format!(
                "/companies/{}",
                throwaway("/companies", json!({"name": "Gone"}))
            ),
        ),
    );
    add(
        "POST",
        "/companies/import",
        Write {
            method: "POST",
            path: "/companies/import".into(),
            body: Some(b"name,domain\nImported,imported.test\n".to_vec()),
            content_type: "text/csv",
            session: false,
        },
    );
    add(
        "POST",
        "/deals/import",
        Write {
            method: "POST",
            path: "/deals/import".into(),
            body: Some(b"title,value\nImported deal,1200\n".to_vec()),
            content_type: "text/csv",
            session: false,
        },
    );
    add(
        "POST",
        "/leads",
        json_write("POST", "/leads".into(), json!({"email": "bo@initech.test"})),
    );
    add(
        "POST",
        "/leads/import",
        Write {
            method: "POST",
            path: "/leads/import".into(),
            body: Some(b"email,first_name\nx1@import.test,X\nx2@import.test,Y\n".to_vec()),
            content_type: "text/csv",
            session: false,
        },
    );
    add(
        "PATCH",
        "/leads/{id}",
        json_write("PATCH", format!("/leads/{lead}"), json!({"title": "CTO"})),
    );
    add(
        "DELETE",
        "/leads/{id}",
        bare(
            "DELETE",
            format!(
                "/leads/{}",
                throwaway("/leads", json!({"email": "gone@x.test"}))
            ),
        ),
    );
    add(
        "POST",
        "/leads/{id}/assign",
        json_write(
            "POST",
            format!("/leads/{lead}/assign"),
            json!({"user_id": member}),
        ),
    );
    add(
        "POST",
        "/leads/{id}/convert",
        json_write(
            "POST",
            format!(
                "/leads/{}/convert",
                throwaway("/leads", json!({"email": "conv@x.test"}))
            ),
            json!({}),
        ),
    );
    add(
        "POST",
        "/pipelines",
        json_write("POST", "/pipelines".into(), json!({"name": "Renewals"})),
    );
    add(
        "PATCH",
        "/pipelines/{id}",
        json_write(
            "PATCH",
            format!("/pipelines/{pipeline}"),
            json!({"name": "Partner deals"}),
        ),
    );
    add(
        "DELETE",
        "/pipelines/{id}",
        bare(
            "DELETE",
            format!(
                "/pipelines/{}",
                throwaway("/pipelines", json!({"name": "Gone"}))
            ),
        ),
    );
    add(
        "POST",
        "/pipelines/{id}/stages",
        json_write(
            "POST",
            format!("/pipelines/{pipeline}/stages"),
            json!({"name": "Pilot"}),
        ),
    );
    add(
        "PATCH",
        "/stages/{id}",
        json_write(
            "PATCH",
            format!("/stages/{stage}"),
            json!({"rotting_days": 9}),
        ),
    );
    add(
        "DELETE",
        "/stages/{id}",
        bare("DELETE", format!("/stages/{stage}")),
    );
    add(
        "POST",
        "/deals",
        json_write("POST", "/deals".into(), json!({"title": "Small one"})),
    );
    add(
        "PATCH",
        "/deals/{id}",
        json_write("PATCH", format!("/deals/{deal}"), json!({"value": 5000})),
    );
    add(
        "DELETE",
        "/deals/{id}",
        bare(
            "DELETE",
            format!("/deals/{}", throwaway("/deals", json!({"title": "Gone"}))),
        ),
    );
    add(
        "POST",
        "/deals/{id}/move",
        json_write(
            "POST",
            format!("/deals/{deal}/move"),
            json!({"stage": "Negotiation"}),
        ),
    );
    add(
        "POST",
        "/deals/{id}/memory",
        json_write(
            "POST",
            format!("/deals/{deal}/memory"),
            json!({"content": "Budget in Q3"}),
        ),
    );
    add(
        "DELETE",
        "/deals/{id}/memory/{memory_id}",
        bare("DELETE", format!("/deals/{deal}/memory/{memory}")),
    );
    add(
        "POST",
        "/signals/{id}/dismiss",
        bare("POST", format!("/signals/{signal}/dismiss")),
    );
    add(
        "POST",
        "/tasks",
        json_write("POST", "/tasks".into(), json!({"title": "Email"})),
    );
    add(
        "PATCH",
        "/tasks/{id}",
        json_write(
            "PATCH",
            format!("/tasks/{task}"),
            json!({"priority": "high"}),
        ),
    );
    add(
        "DELETE",
        "/tasks/{id}",
        bare(
            "DELETE",
            format!("/tasks/{}", throwaway("/tasks", json!({"title": "Gone"}))),
        ),
    );
    add(
        "POST",
        "/tasks/{id}/complete",
        bare("POST", format!("/tasks/{task}/complete")),
    );
    add(
        "POST",
        "/tasks/{id}/reopen",
        bare(
            "POST",
            format!("/tasks/{}/reopen", {
                let t = throwaway("/tasks", json!({"title": "Done"}));
                s.post(&format!("/tasks/{t}/complete"), &k, json!({}))
                    .data(200);
                t
            }),
        ),
    );
    add(
        "POST",
        "/activities",
        json_write(
            "POST",
            "/activities".into(),
            json!({"type": "meeting", "deal_id": deal}),
        ),
    );
    add(
        "DELETE",
        "/activities/{id}",
        bare("DELETE", format!("/activities/{activity}")),
    );
    add(
        "POST",
        "/notes",
        json_write(
            "POST",
            "/notes".into(),
            json!({"content": "Call back", "lead_id": lead}),
        ),
    );
    add(
        "PATCH",
        "/notes/{id}",
        json_write(
            "PATCH",
            format!("/notes/{note}"),
            json!({"content": "Met twice"}),
        ),
    );
    add(
        "DELETE",
        "/notes/{id}",
        bare("DELETE", format!("/notes/{note}")),
    );
    add(
        "PUT",
        "/performance/quotas",
        json_write(
            "PUT",
            "/performance/quotas".into(),
            json!({"period": "month", "quotas": [{"user_id": member, "deals": 3}]}),
        ),
    );
    add(
        "POST",
        "/webhooks",
        json_write(
            "POST",
            "/webhooks".into(),
            json!({"url": "https://hooks.example.com/other"}),
        ),
    );
    add(
        "PATCH",
        "/webhooks/{id}",
        json_write(
            "PATCH",
            format!("/webhooks/{webhook}"),
            json!({"description": "CRM sync"}),
        ),
    );
    add(
        "DELETE",
        "/webhooks/{id}",
        bare(
            "DELETE",
            format!(
                "/webhooks/{}",
                throwaway("/webhooks", json!({"url": "https://hooks.example.com/x"}))
            ),
        ),
    );
    add(
        "POST",
        "/webhooks/{id}/test",
        bare("POST", format!("/webhooks/{webhook}/test")),
    );
    add(
        "POST",
        "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        bare(
            "POST",
            format!("/webhooks/{webhook}/deliveries/{delivery}/redeliver"),
        ),
    );
    add(
        "POST",
        "/webhooks/{id}/rotate-secret",
        bare("POST", format!("/webhooks/{webhook}/rotate-secret")),
    );
    add(
        "POST",
        "/deals/{id}/email-inbox",
        json_write(
            "POST",
            format!(
                "/deals/{}/email-inbox",
                throwaway("/deals", json!({"title": "Mailed"}))
            ),
            json!({}),
        ),
    );
    add(
        "POST",
        "/deals/{id}/emails/send",
        json_write(
            "POST",
            format!("/deals/{deal}/emails/send"),
            json!({"to": ["ada@acme.test"], "subject": "Again", "text": "Hi again"}),
        ),
    );
    add(
        "POST",
        "/deals/{id}/emails/reply/{message_id}",
        json_write(
            "POST",
            format!("/deals/{deal}/emails/reply/{sent}"),
            json!({"text": "One more thing"}),
        ),
    );
    add(
        "POST",
        "/inbound/email",
        Write {
            method: "POST",
            path: "/inbound/email".into(),
            body: Some(raw.into_bytes()),
            content_type: "message/rfc822",
            session: false,
        },
    );
    add(
        "POST",
        "/admin/backup",
        bare("POST", "/admin/backup".into()),
    );
    let template = throwaway(
        "/email-templates",
        json!({"name": "Intro", "subject": "Hi", "text_body": "Hi {{ lead.email }}"}),
    );
    add(
        "POST",
        "/email-templates",
        json_write(
            "POST",
            "/email-templates".into(),
            json!({"name": "Follow-up", "subject": "Again", "html_body": "<p>Hi</p>"}),
        ),
    );
    add(
        "PATCH",
        "/email-templates/{id}",
        json_write(
            "PATCH",
            format!("/email-templates/{template}"),
            json!({"subject": "Hello {{ lead.email }}"}),
        ),
    );
    add(
        "DELETE",
        "/email-templates/{id}",
        bare(
            "DELETE",
            format!(
                "/email-templates/{}",
                throwaway(
                    "/email-templates",
                    json!({"name": "Gone", "subject": "x", "text_body": "x"})
                )
            ),
        ),
    );
    add(
        "POST",
        "/email-templates/{id}/preview",
        json_write(
            "POST",
            format!("/email-templates/{template}/preview"),
            json!({"lead_id": lead}),
        ),
    );
    add(
        "POST",
        "/deals/{id}/emails/send-template",
        json_write(
            "POST",
            format!("/deals/{deal}/emails/send-template"),
            json!({"template_id": template}),
        ),
    );
    add(
        "POST",
        "/suppressions",
        json_write(
            "POST",
            "/suppressions".into(),
            json!({"email": "never@acme.test", "reason": "unsubscribed"}),
        ),
    );
    add(
        "DELETE",
        "/suppressions/{id}",
        bare(
            "DELETE",
            format!(
                "/suppressions/{}",
                throwaway("/suppressions", json!({"email": "lifted@acme.test"}))
            ),
        ),
    );

    // Campaigns: each transition on a campaign of its own, in the status it starts from;
    // enrollments in drafts, which the scheduler leaves alone.
    let campaign_with_step = |name: &str| {
        let c = throwaway("/campaigns", json!({ "name": name }));
        throwaway(
            &format!("/campaigns/{c}/steps"),
            json!({"kind": "email", "template_id": template}),
        );
        c
    };
    let active = |name: &str| {
        let c = campaign_with_step(name);
        s.post(&format!("/campaigns/{c}/activate"), &k, json!({}))
            .data(200);
        c
    };
    let enrolled = |name: &str, email: &str| {
        let c = campaign_with_step(name);
        let lead = throwaway("/leads", json!({ "email": email }));
        s.post(
            &format!("/campaigns/{c}/enrollments"),
            &k,
            json!({"lead_ids": [lead]}),
        )
        .data(200);
        id(s.get(&format!("/enrollments?campaign_id={c}"), &k)
            .data(200)[0]
            .clone())
    };
    let draft = campaign_with_step("Draft one");
    add(
        "POST",
        "/campaigns",
        json_write("POST", "/campaigns".into(), json!({"name": "Spring"})),
    );
    add(
        "PATCH",
        "/campaigns/{id}",
        json_write(
            "PATCH",
            format!("/campaigns/{draft}"),
            json!({"daily_cap": 50}),
        ),
    );
    add(
        "DELETE",
        "/campaigns/{id}",
        bare(
            "DELETE",
            format!("/campaigns/{}", campaign_with_step("Doomed")),
        ),
    );
    add(
        "POST",
        "/campaigns/{id}/activate",
        bare(
            "POST",
            format!("/campaigns/{}/activate", campaign_with_step("Go")),
        ),
    );
    add(
        "POST",
        "/campaigns/{id}/pause",
        bare("POST", format!("/campaigns/{}/pause", active("Hold"))),
    );
    add(
        "POST",
        "/campaigns/{id}/complete",
        bare("POST", format!("/campaigns/{}/complete", active("End"))),
    );
    add(
        "POST",
        "/campaigns/{id}/archive",
        bare(
            "POST",
            format!("/campaigns/{}/archive", campaign_with_step("Shelf")),
        ),
    );
    add(
        "POST",
        "/campaigns/{id}/steps",
        json_write(
            "POST",
            format!("/campaigns/{draft}/steps"),
            json!({"kind": "task", "title": "Follow up", "delay": 2, "delay_unit": "business_days"}),
        ),
    );
    let step = throwaway(
        &format!("/campaigns/{draft}/steps"),
        json!({"kind": "call"}),
    );
    add(
        "PATCH",
        "/campaigns/{id}/steps/{step_id}",
        json_write(
            "PATCH",
            format!("/campaigns/{draft}/steps/{step}"),
            json!({"delay": 3}),
        ),
    );
    let doomed_step = throwaway(
        &format!("/campaigns/{draft}/steps"),
        json!({"kind": "call"}),
    );
    add(
        "DELETE",
        "/campaigns/{id}/steps/{step_id}",
        bare("DELETE", format!("/campaigns/{draft}/steps/{doomed_step}")),
    );
    let newcomer = throwaway("/leads", json!({"email": "newcomer@acme.test"}));
    add(
        "POST",
        "/campaigns/{id}/enrollments",
        json_write(
            "POST",
            format!("/campaigns/{draft}/enrollments"),
            json!({"lead_ids": [newcomer]}),
        ),
    );
    add(
        "POST",
        "/enrollments/{id}/pause",
        bare(
            "POST",
            format!("/enrollments/{}/pause", enrolled("P", "p@acme.test")),
        ),
    );
    let held = enrolled("R", "r@acme.test");
    s.post(&format!("/enrollments/{held}/pause"), &k, json!({}))
        .data(200);
    add(
        "POST",
        "/enrollments/{id}/resume",
        bare("POST", format!("/enrollments/{held}/resume")),
    );
    add(
        "POST",
        "/enrollments/{id}/stop",
        bare(
            "POST",
            format!("/enrollments/{}/stop", enrolled("S", "s@acme.test")),
        ),
    );

    // The loop is over the document: a write operation without a request here fails the test.
    let doc: Value = serde_json::from_str(&clozup::api::spec_json()).unwrap();
    let mut covered = 0;
    for (template, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            if !matches!(method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE") {
                continue;
            }
            let declared = op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "dry_run"));
            assert!(declared, "{method} {template} does not declare dry_run");
            let w = writes
                .remove(&(method.clone(), template.clone()))
                .unwrap_or_else(|| panic!("no request for {method} {template}: add one"));
            let credential = match (template.as_str(), w.session) {
                ("/auth/login" | "/auth/password-reset", _) => None,
                ("/inbound/email", _) => Some("inbound-secret".to_string()),
                (_, true) => Some(s.owner_session()),
                (_, false) => Some(k.clone()),
            };
            // The real request below takes the same key: a dry run keeps no answer for it.
            let key = format!("rehearsal-{covered}");
            let headers = [
                ("content-type", w.content_type),
                ("idempotency-key", key.as_str()),
            ];
            let headers = if w.body.is_some() {
                &headers[..]
            } else {
                &headers[1..]
            };
            let before = settled(&s);
            let rehearsed = s.call(
                &method,
                &format!("{}?dry_run=true", w.path),
                credential.as_deref(),
                w.body.as_deref(),
                headers,
            );
            assert!(
                (200..300).contains(&rehearsed.status),
                "{method} {template} as a dry run: {} {}",
                rehearsed.status,
                rehearsed.body
            );
            assert_eq!(
                rehearsed.header("dry-run"),
                Some("true"),
                "{method} {template}"
            );
            assert!(rehearsed.header("idempotent-replayed").is_none());
            let after = stored(&s);
            for (table, rows) in &before {
                assert_eq!(rows, &after[table], "{method} {template} changed {table}");
            }
            // The same request for real: the same answer, and now something changed.
            let real = s.call(
                &method,
                &w.path,
                credential.as_deref(),
                w.body.as_deref(),
                headers,
            );
            assert_eq!(
                (real.status, shape(&real.json())),
                (rehearsed.status, shape(&rehearsed.json())),
                "{method} {template}: the dry run answered otherwise"
            );
            assert!(real.header("dry-run").is_none());
            assert!(real.header("idempotent-replayed").is_none());
            covered += 1;
        }
    }
    assert!(
        writes.is_empty(),
        "requests for operations the document lacks: {:?}",
        writes.keys()
    );
    assert!(covered >= 54, "{covered}");
}

#[test]
fn unknown_query_parameters_are_refused_naming_the_closest() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let e = s
        .get("/leads?stauts=new", &k)
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "stauts");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `status`?"),
        "{e}"
    );
    let e = s
        .get("/deals/at-risk?min_score=50", &k)
        .error(422, "validation_error");
    assert!(
        e["message"].as_str().unwrap().contains("`score_min`"),
        "{e}"
    );
    // An unknown parameter on a write changes nothing.
    let before = s.count("SELECT COUNT(*) FROM deals");
    s.post("/deals?dryrun=true", &k, json!({"title": "Not stored"}))
        .error(422, "validation_error");
    assert_eq!(s.count("SELECT COUNT(*) FROM deals"), before);
    // dry_run is a write's: a read does not take it, and it is true or false.
    s.get("/leads?dry_run=true", &k)
        .error(422, "validation_error");
    s.post("/deals?dry_run=yes", &k, json!({"title": "x"}))
        .error(422, "validation_error");
    // Without a credential the answer is 401, whatever the query says.
    s.call("GET", "/leads?stauts=new", None, None, &[])
        .error(401, "unauthorized");
}
