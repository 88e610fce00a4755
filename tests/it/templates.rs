//! Email templates (checked when saved, rendered per lead) and the suppression list (honoured
//! by every send).

use crate::common::TestServer;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// A lead at a company with an owner, and a deal on it.
fn people(s: &TestServer) -> (String, String) {
    let k = &s.admin_key;
    let owner = s
        .post(
            "/users",
            k,
            json!({"email": "grace@seller.test", "name": "Grace Hopper"}),
        )
        .data(201);
    let company = s
        .post(
            "/companies",
            k,
            json!({"name": "Babbage & Sons <Ltd>", "industry": "Engines"}),
        )
        .data(201);
    let lead = s
        .post(
            "/leads",
            k,
            json!({"first_name": "Ada", "email": "ada@engines.test", "company_id": id(&company),
                   "owner_id": id(&owner)}),
        )
        .data(201);
    let deal = s
        .post(
            "/deals",
            k,
            json!({"title": "Analytical Engine", "value": 12000, "lead_id": id(&lead)}),
        )
        .data(201);
    (id(&lead), id(&deal))
}

#[test]
fn a_template_is_checked_when_saved_and_rendered_per_lead_with_html_escaped() {
    let s = TestServer::start();
    let k = &s.admin_key;
    let (lead, deal) = people(&s);
    let r = s.post(
        "/email-templates",
        k,
        json!({
            "name": "Intro",
            "subject": "{{ company.name }}: {{ deal.title | default('a quick question') }}",
            "html_body": "<p>Hi {{ lead.first_name | default('there') }},</p><p>{{ company.name }}</p><p>{{ owner.first_name }}</p>",
            "text_body": "Hi {{ lead.first_name | default('there') }}, from {{ company.name }}. {{ owner.name }}"
        }),
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    let t = r.data(201);
    assert_eq!(
        t["variables"],
        json!([
            "company.name",
            "deal.title",
            "lead.first_name",
            "owner.first_name",
            "owner.name"
        ])
    );
    let tpl = id(&t);

    let out = s
        .post(
            &format!("/email-templates/{tpl}/preview"),
            k,
            json!({"lead_id": lead, "deal_id": deal}),
        )
        .data(200);
    assert_eq!(out["subject"], "Babbage & Sons <Ltd>: Analytical Engine");
    assert_eq!(
        out["html_body"],
        "<p>Hi Ada,</p><p>Babbage &amp; Sons &lt;Ltd&gt;</p><p>Grace</p>"
    );
    assert_eq!(
        out["text_body"],
        "Hi Ada, from Babbage & Sons <Ltd>. Grace Hopper"
    );
    assert_eq!(out["lead_id"], lead.as_str());
    // A deal alone brings its lead; without a deal the subject falls back.
    let by_deal = s
        .post(
            &format!("/email-templates/{tpl}/preview"),
            k,
            json!({"deal_id": deal}),
        )
        .data(200);
    assert_eq!(by_deal["lead_id"], lead.as_str());
    let no_deal = s
        .post(
            &format!("/email-templates/{tpl}/preview"),
            k,
            json!({"lead_id": lead}),
        )
        .data(200);
    assert_eq!(no_deal["subject"], "Babbage & Sons <Ltd>: a quick question");

    // A field with no value for this lead, and no fallback: 422 naming the part and the field.
    let bare = id(&s
        .post("/leads", k, json!({"email": "nobody@engines.test"}))
        .data(201));
    let strict = id(&s
        .post(
            "/email-templates",
            k,
            json!({"name": "Strict", "subject": "Hi {{ lead.first_name }}", "text_body": "x"}),
        )
        .data(201));
    let e = s
        .post(
            &format!("/email-templates/{strict}/preview"),
            k,
            json!({"lead_id": bare}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "subject");
    assert!(
        e["details"][0]["issue"]
            .as_str()
            .unwrap()
            .contains("`lead.first_name` is undefined"),
        "{e}"
    );
    let e = s
        .post(
            &format!("/email-templates/{tpl}/preview"),
            k,
            json!({"lead_id": "lead_00000000000000000000000000"}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "lead_id");
}

#[test]
fn bad_templates_are_refused_naming_the_field_and_nothing_is_stored() {
    let s = TestServer::start();
    let k = &s.admin_key;
    let refused = |body: Value| {
        let before = s.count("SELECT COUNT(*) FROM email_templates");
        let e = s
            .post("/email-templates", k, body)
            .error(422, "validation_error");
        assert_eq!(s.count("SELECT COUNT(*) FROM email_templates"), before);
        e
    };
    let e =
        refused(json!({"name": "Typo", "subject": "Hi", "text_body": "Hi {{ lead.frist_name }}"}));
    assert_eq!(e["details"][0]["field"], "text_body");
    assert!(
        e["details"][0]["issue"]
            .as_str()
            .unwrap()
            .starts_with("uses `lead.frist_name`, which is not a variable"),
        "{e}"
    );
    let e =
        refused(json!({"name": "Broken", "subject": "{% if lead.email %}Hi", "text_body": "x"}));
    assert_eq!(e["details"][0]["field"], "subject");
    assert!(
        e["details"][0]["issue"]
            .as_str()
            .unwrap()
            .starts_with("is not a valid template (line 1)"),
        "{e}"
    );
    let e = refused(json!({"name": "Empty", "subject": "Hi"}));
    assert_eq!(e["details"][0]["field"], "text_body");
    let e = refused(json!({"name": "Two lines", "subject": "Hi\nthere", "text_body": "x"}));
    assert_eq!(e["details"][0]["field"], "subject");

    // Names are unique without regard to case.
    let first = id(&s
        .post(
            "/email-templates",
            k,
            json!({"name": "Intro", "subject": "Hi", "text_body": "x"}),
        )
        .data(201));
    let e = s
        .post(
            "/email-templates",
            k,
            json!({"name": "INTRO", "subject": "Hi", "text_body": "y"}),
        )
        .error(409, "conflict");
    assert_eq!(
        e["details"][0]["issue"],
        format!("is already used by {first}")
    );
}

#[test]
fn templates_change_with_their_events_and_keep_a_body() {
    let s = TestServer::start();
    let k = &s.admin_key;
    let t = id(&s
        .post(
            "/email-templates",
            k,
            json!({"name": "Intro", "subject": "Hi", "html_body": "<p>Hi</p>", "text_body": "Hi"}),
        )
        .data(201));
    let path = format!("/email-templates/{t}");
    let changed = s
        .patch(
            &path,
            k,
            json!({"subject": "Hi {{ lead.email }}", "html_body": null}),
        )
        .data(200);
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["html_body"], Value::Null);
    assert_eq!(changed["variables"], json!(["lead.email"]));
    let events = s
        .get("/events/log?types=email_template.updated", k)
        .data(200);
    assert_eq!(events[0]["data"]["previous"]["subject"], "Hi");
    // The last body cannot go; a stale If-Match is a 412; a PATCH changing nothing is no version.
    let e = s
        .patch(&path, k, json!({"text_body": null}))
        .error(422, "validation_error");
    assert_eq!(
        e["details"],
        json!([{"field": "text_body",
                "issue": "would leave the template without a body: keep html_body or text_body"}])
    );
    let stale = s.call(
        "PATCH",
        &format!("/api/v1{path}"),
        Some(k),
        Some(br#"{"name": "Other"}"#),
        &[("content-type", "application/json"), ("if-match", "\"1\"")],
    );
    assert_eq!(stale.status, 412, "{}", stale.body);
    let same = s
        .patch(&path, k, json!({"subject": "Hi {{ lead.email }}"}))
        .data(200);
    assert_eq!(same["version"], 2);
    assert_eq!(
        s.get("/email-templates?q=intr", k).data(200)[0]["id"],
        t.as_str()
    );
    s.delete(&path, k).data(200);
    s.get(&path, k).error(404, "not_found");
    let types: Vec<String> = s
        .get("/events/log?types=email_template.*", k)
        .data(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "email_template.created",
            "email_template.updated",
            "email_template.deleted"
        ]
    );
}

#[test]
fn no_email_goes_to_a_suppressed_address_until_it_is_lifted() {
    let s = TestServer::start();
    let k = &s.admin_key;
    let (_, deal) = people(&s);
    let send = |to: &str| {
        s.post(
            &format!("/deals/{deal}/emails/send"),
            k,
            json!({"to": ["bob@engines.test"], "cc": [to], "subject": "Hello", "text": "Hi"}),
        )
    };
    let first = id(&send("carol@engines.test").data(202));
    let entry = s
        .post(
            "/suppressions",
            k,
            json!({"email": "Ada@Engines.test", "reason": "unsubscribed", "note": "asked by phone"}),
        )
        .data(201);
    assert_eq!(entry["reason"], "unsubscribed");
    let sup = id(&entry);

    // Refused whatever the case, in any recipient list; nothing is queued.
    let before = s.count("SELECT COUNT(*) FROM emails");
    let e = send("ADA@engines.test").error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "cc[0]");
    let issue = e["details"][0]["issue"].as_str().unwrap();
    assert!(
        issue.starts_with("is suppressed: ADA@engines.test (unsubscribed since "),
        "{issue}"
    );
    assert!(issue.contains(&sup), "{issue}");
    assert_eq!(s.count("SELECT COUNT(*) FROM emails"), before);
    // A reply goes to the same people: refused too when one of them is now suppressed.
    s.post(
        "/suppressions",
        k,
        json!({"email": "bob@engines.test", "reason": "bounced"}),
    )
    .data(201);
    let e = s
        .post(
            &format!("/deals/{deal}/emails/reply/{first}"),
            k,
            json!({"text": "Following up"}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "to[0]");

    // Once only, listed and filtered, then lifted.
    let e = s
        .post("/suppressions", k, json!({"email": "ada@engines.test"}))
        .error(409, "conflict");
    assert_eq!(
        e["details"][0]["issue"],
        format!("is already suppressed by {sup}")
    );
    let found = s.get("/suppressions?email=ADA@ENGINES.TEST", k).data(200);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], sup.as_str());
    let bounced = s.get("/suppressions?reason=bounced", k).data(200);
    assert_eq!(bounced[0]["email"], "bob@engines.test");
    assert_eq!(
        s.get("/suppressions", k)
            .data(200)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    s.delete(&format!("/suppressions/{sup}"), k).data(200);
    s.post(
        &format!("/deals/{deal}/emails/send"),
        k,
        json!({"to": ["ada@engines.test"], "subject": "Hello again", "text": "Hi"}),
    )
    .data(202);
    let types: Vec<String> = s
        .get("/events/log?types=suppression.*", k)
        .data(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "suppression.created",
            "suppression.created",
            "suppression.deleted"
        ]
    );
}
