//! The OpenAPI document and the docs page (no auth, offline), and /health.

use crate::common::TestServer;
use serde_json::Value;

/// Every operation, by operation id: adding one means adding it here, deliberately.
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("post", "/auth/login", "login"),
    ("post", "/auth/password-reset", "complete_password_reset"),
    ("post", "/auth/logout", "logout"),
    ("get", "/me", "get_me"),
    ("get", "/org", "get_org"),
    ("patch", "/org", "update_org"),
    ("get", "/users", "list_users"),
    ("post", "/users", "create_user"),
    ("get", "/users/{id}", "get_user"),
    ("patch", "/users/{id}", "update_user"),
    ("delete", "/users/{id}", "deactivate_user"),
    ("post", "/users/{id}/password-reset", "reset_user_password"),
    ("get", "/api-keys", "list_api_keys"),
    ("post", "/api-keys", "create_api_key"),
    ("get", "/api-keys/{id}", "get_api_key"),
    ("delete", "/api-keys/{id}", "revoke_api_key"),
    ("get", "/companies", "list_companies"),
    ("post", "/companies", "create_company"),
    ("get", "/companies/{id}", "get_company"),
    ("patch", "/companies/{id}", "update_company"),
    ("delete", "/companies/{id}", "delete_company"),
    ("get", "/leads", "list_leads"),
    ("post", "/leads", "create_lead"),
    ("get", "/companies/export", "export_companies"),
    ("post", "/companies/import", "import_companies"),
    ("get", "/leads/export", "export_leads"),
    ("post", "/leads/import", "import_leads"),
    ("get", "/leads/{id}", "get_lead"),
    ("patch", "/leads/{id}", "update_lead"),
    ("delete", "/leads/{id}", "delete_lead"),
    ("get", "/leads/{id}/score", "get_lead_score"),
    ("get", "/leads/{id}/360", "get_lead_360"),
    ("post", "/leads/{id}/assign", "assign_lead"),
    ("post", "/leads/{id}/convert", "convert_lead"),
    ("get", "/pipelines", "list_pipelines"),
    ("post", "/pipelines", "create_pipeline"),
    ("get", "/pipelines/{id}", "get_pipeline"),
    ("patch", "/pipelines/{id}", "update_pipeline"),
    ("delete", "/pipelines/{id}", "delete_pipeline"),
    ("post", "/pipelines/{id}/stages", "create_stage"),
    ("patch", "/stages/{id}", "update_stage"),
    ("delete", "/stages/{id}", "delete_stage"),
    ("get", "/deals", "list_deals"),
    ("post", "/deals", "create_deal"),
    ("get", "/deals/export", "export_deals"),
    ("post", "/deals/import", "import_deals"),
    ("get", "/deals/stages", "list_deal_stages"),
    ("get", "/deals/{id}", "get_deal"),
    ("patch", "/deals/{id}", "update_deal"),
    ("delete", "/deals/{id}", "delete_deal"),
    ("post", "/deals/{id}/move", "move_deal"),
    ("get", "/deals/{id}/history", "get_deal_history"),
    ("get", "/agenda", "get_agenda"),
    ("get", "/deals/at-risk", "list_at_risk_deals"),
    ("get", "/deals/{id}/intelligence", "get_deal_intelligence"),
    ("get", "/deals/{id}/memory", "list_deal_memory"),
    ("post", "/deals/{id}/memory", "create_deal_memory"),
    (
        "delete",
        "/deals/{id}/memory/{memory_id}",
        "delete_deal_memory",
    ),
    ("get", "/signals", "list_signals"),
    ("get", "/signals/{id}", "get_signal"),
    ("post", "/signals/{id}/dismiss", "dismiss_signal"),
    ("get", "/tasks", "list_tasks"),
    ("post", "/tasks", "create_task"),
    ("get", "/tasks/{id}", "get_task"),
    ("patch", "/tasks/{id}", "update_task"),
    ("delete", "/tasks/{id}", "delete_task"),
    ("post", "/tasks/{id}/complete", "complete_task"),
    ("post", "/tasks/{id}/reopen", "reopen_task"),
    ("get", "/activities", "list_activities"),
    ("post", "/activities", "create_activity"),
    ("get", "/activities/{id}", "get_activity"),
    ("delete", "/activities/{id}", "delete_activity"),
    ("get", "/notes", "list_notes"),
    ("post", "/notes", "create_note"),
    ("get", "/notes/{id}", "get_note"),
    ("patch", "/notes/{id}", "update_note"),
    ("delete", "/notes/{id}", "delete_note"),
    ("get", "/search", "search"),
    ("get", "/events", "stream_events"),
    ("get", "/events/log", "list_events"),
    ("get", "/analytics/overview", "get_analytics_overview"),
    ("get", "/analytics/funnel", "get_analytics_funnel"),
    ("get", "/analytics/forecast", "get_analytics_forecast"),
    ("get", "/performance/leaderboard", "get_leaderboard"),
    ("get", "/performance/quotas", "get_quotas"),
    ("put", "/performance/quotas", "set_quotas"),
    ("get", "/webhooks", "list_webhooks"),
    ("post", "/webhooks", "create_webhook"),
    ("get", "/webhooks/{id}", "get_webhook"),
    ("patch", "/webhooks/{id}", "update_webhook"),
    ("delete", "/webhooks/{id}", "delete_webhook"),
    ("post", "/webhooks/{id}/test", "test_webhook"),
    (
        "get",
        "/webhooks/{id}/deliveries",
        "list_webhook_deliveries",
    ),
    (
        "post",
        "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        "redeliver_webhook",
    ),
    (
        "post",
        "/webhooks/{id}/rotate-secret",
        "rotate_webhook_secret",
    ),
    ("post", "/deals/{id}/email-inbox", "create_email_inbox"),
    ("get", "/deals/{id}/email-inbox", "get_email_inbox"),
    ("get", "/deals/{id}/emails", "list_emails"),
    ("get", "/deals/{id}/emails/{message_id}", "get_email"),
    ("post", "/deals/{id}/emails/send", "send_email"),
    (
        "post",
        "/deals/{id}/emails/send-template",
        "send_email_from_template",
    ),
    (
        "post",
        "/deals/{id}/emails/reply/{message_id}",
        "reply_to_email",
    ),
    ("post", "/inbound/email", "receive_email"),
    ("get", "/email-templates", "list_email_templates"),
    ("post", "/email-templates", "create_email_template"),
    ("get", "/email-templates/{id}", "get_email_template"),
    ("patch", "/email-templates/{id}", "update_email_template"),
    ("delete", "/email-templates/{id}", "delete_email_template"),
    (
        "post",
        "/email-templates/{id}/preview",
        "preview_email_template",
    ),
    ("get", "/suppressions", "list_suppressions"),
    ("post", "/suppressions", "create_suppression"),
    ("get", "/suppressions/{id}", "get_suppression"),
    ("delete", "/suppressions/{id}", "delete_suppression"),
    ("get", "/campaigns", "list_campaigns"),
    ("post", "/campaigns", "create_campaign"),
    ("get", "/campaigns/{id}", "get_campaign"),
    ("patch", "/campaigns/{id}", "update_campaign"),
    ("delete", "/campaigns/{id}", "delete_campaign"),
    ("post", "/campaigns/{id}/activate", "activate_campaign"),
    ("post", "/campaigns/{id}/pause", "pause_campaign"),
    ("post", "/campaigns/{id}/complete", "complete_campaign"),
    ("post", "/campaigns/{id}/archive", "archive_campaign"),
    ("get", "/campaigns/{id}/metrics", "get_campaign_metrics"),
    ("get", "/campaigns/{id}/steps", "list_campaign_steps"),
    ("post", "/campaigns/{id}/steps", "create_campaign_step"),
    (
        "patch",
        "/campaigns/{id}/steps/{step_id}",
        "update_campaign_step",
    ),
    (
        "delete",
        "/campaigns/{id}/steps/{step_id}",
        "delete_campaign_step",
    ),
    ("post", "/campaigns/{id}/enrollments", "enroll_leads"),
    ("get", "/enrollments", "list_enrollments"),
    ("get", "/enrollments/{id}", "get_enrollment"),
    ("post", "/enrollments/{id}/pause", "pause_enrollment"),
    ("post", "/enrollments/{id}/resume", "resume_enrollment"),
    ("post", "/enrollments/{id}/stop", "stop_enrollment"),
    ("post", "/admin/backup", "create_backup"),
];

#[test]
fn the_document_lists_every_operation_fully_described() {
    let s = TestServer::start();
    let r = s.call("GET", "/api/v1/public/docs", None, None, &[]);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut seen = Vec::new();
    for (method, path, op_id) in OPERATIONS {
        let op = &doc["paths"][path][method];
        assert_eq!(op["operationId"], *op_id, "{method} {path}");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{op_id} summary"
        );
        assert!(
            op["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{op_id} description"
        );
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{op_id} tag"
        );
        for status in ["400", "401", "403", "404", "422", "429", "500"] {
            let resp = &op["responses"][status];
            assert!(resp.is_object(), "{op_id} documents {status}");
        }
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        // Logging in and redeeming a reset token are how a caller gets a credential.
        let public = ["login", "complete_password_reset"].contains(op_id);
        assert_eq!(secured, !public, "{op_id} security");
        seen.push(*op_id);
    }
    // No undocumented extras, and every operation has an id.
    let mut all = Vec::new();
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            all.push(op["operationId"].as_str().expect("operationId").to_string());
        }
    }
    assert_eq!(all.len(), OPERATIONS.len(), "{all:?}");
    // The error envelope schema is the documented one.
    let err = &doc["components"]["schemas"]["ErrorBody"]["properties"];
    for field in ["code", "message", "details", "request_id"] {
        assert!(err[field].is_object(), "ErrorBody.{field}");
    }
}

#[test]
fn the_docs_page_works_offline() {
    let s = TestServer::start();
    let r = s.call("GET", "/api/v1/public/docs/ui", None, None, &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // RapiDoc, on the document this server serves, from this server.
    assert!(r.body.contains("<rapi-doc"), "the UI element is there");
    assert!(r.body.contains(r#"spec-url="/api/v1/public/docs""#));
    assert!(
        r.body
            .contains(r#"<script src="/api/v1/public/docs/ui/rapidoc-min.js"></script>"#),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("googleapis"),
        "nothing is fetched from a third party"
    );
    for external in [
        "<script src=\"http",
        "<link href=\"http",
        "<link rel=\"stylesheet\" href=\"http",
    ] {
        assert!(!r.body.contains(external), "loads {external}");
    }
    // The script comes gzip-compressed (ureq asks for gzip and inflates it): the whole of
    // RapiDoc, which defines the element.
    let js = s.call(
        "GET",
        "/api/v1/public/docs/ui/rapidoc-min.js",
        None,
        None,
        &[],
    );
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(
        js.body.starts_with("/*! RapiDoc 9.3.4"),
        "{}",
        &js.body[..80]
    );
    assert!(
        js.body.len() > 600_000,
        "inflated in full: {}",
        js.body.len()
    );
    assert!(js.body.contains("customElements.define(\"rapi-doc\""));
    let with_encoding = |encoding: &str| {
        s.call(
            "GET",
            "/api/v1/public/docs/ui/rapidoc-min.js",
            None,
            None,
            &[("accept-encoding", encoding)],
        )
    };
    for taken in ["br, GZIP;q=0.5", "*", "x-gzip"] {
        assert_eq!(with_encoding(taken).status, 200, "{taken}");
    }
    // A client that takes no gzip is told so, in the envelope.
    for refusal in [
        "identity",
        "gzip;q=0, br",
        "deflate",
        "gzip;q=0, *",
        "*;q=0",
    ] {
        let r = with_encoding(refusal);
        r.error(400, "bad_request");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Accept-Encoding: gzip"));
    }
}

/// `/llms.txt`, without a credential: the guide for language models, its links on the public
/// address, every operation of the served document in it, and every step of the daily loop a
/// call that works with the organization's key.
#[test]
fn llms_txt_guides_a_model_through_the_api() {
    let s = TestServer::start_with(|c| c.public_url = Some("https://crm.example/".into()));
    let r = s.call("GET", "/llms.txt", None, None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    let guide = r.body;
    assert!(guide.starts_with("# Clozup API "), "{guide}");
    assert!(guide.contains("\n> Clozup is a self-hosted, agent-native sales CRM."));
    assert!(guide.contains("https://crm.example/api/v1/public/docs/ui"));
    let document = s.call("GET", "/api/v1/public/docs", None, None, &[]).json();
    let mut operations = 0;
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            let line = format!("- `{} {path}` ({id}): ", method.to_uppercase());
            assert!(guide.contains(&line), "{line} is missing");
            operations += 1;
        }
    }
    assert_eq!(guide.matches("\n- `").count(), operations);
    // The loop's reads, as the guide gives them, answer the organization's key.
    for line in guide.lines().filter(|l| l.contains(". `GET ")) {
        let path = line.split('`').nth(1).unwrap().trim_start_matches("GET ");
        if !path.contains('{') {
            s.get(path, &s.admin_key).data(200);
        }
    }
}

#[test]
fn health_reports_version_and_database() {
    let s = TestServer::start();
    let r = s.call("GET", "/health", None, None, &[]);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["database"]["status"], "ok");
    assert_eq!(v["database"]["schema_version"], clozup::db::LATEST_VERSION);
}

/// The documentation stands alone: every link in the README, SECURITY.md and docs/ names a file
/// of this repository (relative to the page) or the local server, never a page outside it.
#[test]
fn the_documentation_links_only_inside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md"), root.join("SECURITY.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>").unwrap();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for c in link.captures_iter(&text) {
            let target = c.get(1).or(c.get(2)).unwrap().as_str();
            if let Some(rest) = target.split_once("://").map(|(_, r)| r) {
                assert!(
                    rest.starts_with("127.0.0.1") || rest.starts_with("localhost"),
                    "{}: links outside the repository: {target}",
                    page.display()
                );
            } else {
                let file = target.split('#').next().unwrap();
                let path = page.parent().unwrap().join(file);
                assert!(
                    path.exists() && path.canonicalize().unwrap().starts_with(root),
                    "{}: broken or outside link {target}",
                    page.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} links found");
}
