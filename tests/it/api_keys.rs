//! API keys (docs/api.md §2): created once, stored hashed, scoped, expiring, revocable.

use crate::common;
use crate::common::TestServer;
use serde_json::json;

#[test]
fn a_key_is_shown_once_and_only_its_hash_is_stored() {
    let s = TestServer::start();
    let created = s.post(
        "/api-keys",
        &s.admin_key,
        json!({"name": "agent", "scopes": ["read"]}),
    );
    let data = created.data(201);
    let secret = data["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("clz_") && secret.len() == 36, "{secret}");
    assert!(secret[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(data["prefix"].as_str().unwrap(), &secret[..12]);
    assert_eq!(data["scopes"], json!(["read"]));
    let id = data["id"].as_str().unwrap();
    assert!(id.starts_with("key_"));

    let shown = s.get(&format!("/api-keys/{id}"), &s.admin_key);
    assert!(!shown.body.contains(&secret));
    assert!(shown.data(200).get("key").is_none());
    let listed = s.get("/api-keys", &s.admin_key);
    assert!(!listed.body.contains(&secret));
    assert_eq!(listed.json()["meta"]["total"], 2);

    // Nothing in the database holds the plaintext.
    let raw = std::fs::read(s.state.db.path()).unwrap();
    let wal = std::fs::read(s.state.db.path().with_extension("sqlite-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // And the key works, with exactly its scopes.
    let me = s.get("/me", &secret).data(200);
    assert_eq!(me["credential"]["scopes"], json!(["read"]));
    assert_eq!(me["credential"]["id"], id);
}

#[test]
fn revoked_and_expired_keys_stop_working_at_once() {
    let s = TestServer::start();
    let k = s
        .post(
            "/api-keys",
            &s.admin_key,
            json!({"name": "short", "expires_in_seconds": 3600}),
        )
        .data(201);
    assert_eq!(
        k["expires_at"],
        clozup::timefmt::format_ms(common::START_MS + 3_600_000)
    );
    let secret = k["key"].as_str().unwrap().to_string();
    s.get("/me", &secret).data(200);
    s.clock.advance(3_600_000);
    s.get("/me", &secret).error(401, "unauthorized");
    let listed = s.get("/api-keys?status=expired", &s.admin_key).data(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["status"], "expired");

    let other = s.key_with(&["read", "write"]);
    s.get("/me", &other).data(200);
    let id = s.get("/me", &other).data(200)["credential"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = s.delete(&format!("/api-keys/{id}"), &s.admin_key).data(200);
    assert_eq!(revoked["status"], "revoked");
    s.get("/me", &other).error(401, "unauthorized");
    // Revoking again is harmless.
    assert_eq!(
        s.delete(&format!("/api-keys/{id}"), &s.admin_key).data(200)["status"],
        "revoked"
    );
}

#[test]
fn expiry_must_be_in_the_future_and_scopes_cannot_exceed_the_creator() {
    let s = TestServer::start();
    let e = s
        .post(
            "/api-keys",
            &s.admin_key,
            json!({"name": "x", "expires_in_seconds": 0}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "expires_in_seconds");
    s.post(
        "/api-keys",
        &s.admin_key,
        json!({"name": "x", "scopes": []}),
    )
    .error(422, "validation_error");

    // A member's session can't manage keys; an admin user can't be out-granted by a key.
    let member_key = s.key_with(&["read", "write"]);
    s.post("/api-keys", &member_key, json!({"name": "x"}))
        .error(403, "forbidden");
}

#[test]
fn last_used_is_recorded_at_most_once_a_minute() {
    let s = TestServer::start();
    let key = s.key_with(&["read"]);
    let id = s.get("/me", &key).data(200)["credential"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let last_used = |s: &TestServer| -> Option<i64> {
        let id = id.clone();
        s.state
            .db
            .blocking()
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT last_used_at FROM api_keys WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )?)
            })
            .unwrap()
    };
    // The write happens off the request path: wait for it with a generous deadline.
    let wait_for = |want: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while last_used(&s) != Some(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "last_used_at never became {want}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for(common::START_MS);
    s.clock.advance(30_000);
    s.get("/me", &key).data(200);
    s.clock.advance(31_000);
    s.get("/me", &key).data(200);
    wait_for(common::START_MS + 61_000);
    let shown = s.get(&format!("/api-keys/{id}"), &s.admin_key).data(200);
    assert_eq!(
        shown["last_used_at"],
        clozup::timefmt::format_ms(common::START_MS + 61_000)
    );
}

#[test]
fn the_cli_admin_key_can_do_everything_and_lists_paginate() {
    let s = TestServer::start();
    for i in 0..5 {
        s.post("/api-keys", &s.admin_key, json!({"name": format!("k{i}")}))
            .data(201);
    }
    let page = s.get("/api-keys?per_page=2&page=2&sort=name", &s.admin_key);
    let v = page.json();
    assert_eq!(v["meta"], json!({"page": 2, "per_page": 2, "total": 6}));
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["k1", "k2"]);
    s.get("/api-keys?sort=secret", &s.admin_key)
        .error(422, "validation_error");
    s.get("/api-keys?status=lost", &s.admin_key)
        .error(422, "validation_error");
}
