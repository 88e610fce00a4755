//! The OpenAPI document and the docs page (no auth, offline), and /health.

mod common;

use common::TestServer;
use serde_json::Value;

/// Every operation of the Foundation issue, by operation id.
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("post", "/auth/login", "login"),
    ("post", "/auth/logout", "logout"),
    ("get", "/me", "get_me"),
    ("get", "/org", "get_org"),
    ("patch", "/org", "update_org"),
    ("get", "/users", "list_users"),
    ("post", "/users", "create_user"),
    ("get", "/users/{id}", "get_user"),
    ("patch", "/users/{id}", "update_user"),
    ("delete", "/users/{id}", "deactivate_user"),
    ("get", "/api-keys", "list_api_keys"),
    ("post", "/api-keys", "create_api_key"),
    ("get", "/api-keys/{id}", "get_api_key"),
    ("delete", "/api-keys/{id}", "revoke_api_key"),
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
        assert_eq!(secured, *op_id != "login", "{op_id} security");
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
    assert!(
        r.body.contains("SwaggerUIBundle"),
        "the UI script is inline"
    );
    assert!(
        r.body.contains("\"operationId\": \"create_api_key\"") || r.body.contains("create_api_key")
    );
    for external in [
        "<script src=\"http",
        "<link href=\"http",
        "<link rel=\"stylesheet\" href=\"http",
    ] {
        assert!(!r.body.contains(external), "loads {external}");
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
