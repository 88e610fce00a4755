//! Every operation of the OpenAPI document, probed with no key, a malformed key, an unknown
//! key, a revoked key and an expired key (one identical 401 each time), and with keys that lack
//! its scope (403 before anything else is looked at, the body included).

mod common;

use common::TestServer;
use serde_json::{json, Value};

/// The scope an operation needs (API.md §4): `admin` for keys, webhooks, backups and changes to
/// users and the organization (and quotas); `write` for every other change; `read` for the rest.
fn scope_of(method: &str, path: &str) -> &'static str {
    let admin_resource = ["/api-keys", "/webhooks", "/admin"]
        .iter()
        .any(|p| path.starts_with(p));
    let admin_change = ["/users", "/org", "/performance/quotas"]
        .iter()
        .any(|p| path.starts_with(p));
    if path.starts_with("/auth/") || (method == "patch" && path == "/users/{id}") {
        // Logging out needs only the session itself; users may edit their own profile.
        "read"
    } else if admin_resource || (method != "get" && admin_change) {
        "admin"
    } else if method == "get" {
        "read"
    } else {
        "write"
    }
}

#[test]
fn every_operation_is_401_without_a_valid_key_and_403_without_its_scope() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let revoked = s.key_with(&["read", "write", "admin"]);
    let revoked_id = s.get("/api-keys?sort=-created_at", &k).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.delete(&format!("/api-keys/{revoked_id}"), &k).data(200);
    let expired = s
        .post(
            "/api-keys",
            &k,
            json!({"name": "short-lived", "expires_in_seconds": 3600}),
        )
        .data(201)["key"]
        .as_str()
        .unwrap()
        .to_string();
    s.clock.advance(2 * 3_600_000);
    let reader = s.key_with(&["read"]);
    let writer = s.key_with(&["read", "write"]);
    let bad_keys = [
        None,
        Some("nope".to_string()),
        Some(format!("clz_{}", "A".repeat(32))),
        Some(revoked),
        Some(expired),
    ];

    let doc = s.call("GET", "/api/v1/public/docs", None, None, &[]).json();
    let (mut probed, mut scoped) = (0, 0);
    let mut first_401: Option<Value> = None;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let op_id = op["operationId"].as_str().unwrap();
            let schemes: Vec<&str> = op["security"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if !schemes.contains(&"bearer") {
                continue; // login, and inbound mail (its own token, tested with email)
            }
            let url = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "x_01M8HKRFSCJHEXTMRWQ2SJBB61"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let content_type = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned());
            let call = |key: Option<&str>| {
                let mut headers = Vec::new();
                if let Some(ct) = &content_type {
                    headers.push(("content-type", ct.as_str()));
                }
                s.call(
                    &method.to_uppercase(),
                    &url,
                    key,
                    content_type.as_ref().map(|_| b"{}".as_slice()),
                    &headers,
                )
            };
            for key in &bad_keys {
                let r = call(key.as_deref());
                let mut e = r.error(401, "unauthorized");
                e["request_id"] = Value::Null;
                match &first_401 {
                    None => first_401 = Some(e),
                    Some(first) => assert_eq!(&e, first, "{op_id}: a different 401"),
                }
                probed += 1;
            }
            let lacking: &[&str] = match scope_of(method, path) {
                "admin" => &[&reader, &writer],
                "write" => &[&reader],
                _ => &[],
            };
            for key in lacking {
                let r = call(Some(key));
                assert_eq!(r.status, 403, "{method} {path} ({op_id}): {}", r.body);
                r.error(403, "forbidden");
                scoped += 1;
            }
        }
    }
    eprintln!("auth matrix: {probed} probes without a valid key, {scoped} without the scope");
    assert!(probed >= 400 && scoped >= 60, "{probed} / {scoped}");
}
