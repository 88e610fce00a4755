//! Safe retries (docs/api.md §5): Idempotency-Key replays, and version/ETag/If-Match.

use crate::common;
use crate::common::TestServer;
use serde_json::json;

fn post_with_key(s: &TestServer, key: &str, idem: &str, body: &str) -> common::Resp {
    s.call(
        "POST",
        "/users",
        Some(key),
        Some(body.as_bytes()),
        &[("idempotency-key", idem)],
    )
}

#[test]
fn a_replay_returns_the_first_response_byte_for_byte() {
    let s = TestServer::start();
    let body = r#"{"email": "grace@example.com", "name": "Grace"}"#;
    let first = post_with_key(&s, &s.admin_key, "create-grace-1", body);
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post_with_key(&s, &s.admin_key, "create-grace-1", body);
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("content-type"), first.header("content-type"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM users WHERE email = 'grace@example.com'"),
        1
    );
}

#[test]
fn the_same_key_with_another_body_is_422() {
    let s = TestServer::start();
    post_with_key(
        &s,
        &s.admin_key,
        "k",
        r#"{"email": "a@example.com", "name": "A"}"#,
    )
    .data(201);
    let r = post_with_key(
        &s,
        &s.admin_key,
        "k",
        r#"{"email": "b@example.com", "name": "B"}"#,
    );
    let e = r.error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "Idempotency-Key");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM users WHERE email = 'b@example.com'"),
        0
    );
}

#[test]
fn a_key_still_in_flight_is_409() {
    let s = TestServer::start();
    let body = r#"{"email": "c@example.com", "name": "C"}"#;
    // The first request under this key has started and not finished.
    post_with_key(&s, &s.admin_key, "busy", body).data(201);
    s.state
        .db
        .blocking()
        .write(|tx| {
            tx.execute(
                "UPDATE idempotency_keys SET status = NULL, body = NULL WHERE key = 'busy'",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    post_with_key(&s, &s.admin_key, "busy", body).error(409, "conflict");
    // Left by a process that crashed: the outcome is unknown, so it is not re-run.
    s.state
        .db
        .blocking()
        .write(|tx| {
            tx.execute(
                "UPDATE idempotency_keys SET instance = 'inst_gone' WHERE key = 'busy'",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    let e = post_with_key(&s, &s.admin_key, "busy", body).error(409, "conflict");
    assert!(e["message"].as_str().unwrap().contains("restart"), "{e}");
}

#[test]
fn keys_are_scoped_to_the_credential_and_expire_after_a_day() {
    let s = TestServer::start();
    let other = s.key_with(&["admin"]);
    let body = r#"{"name": "scoped"}"#;
    let a = s.call(
        "POST",
        "/api-keys",
        Some(&s.admin_key),
        Some(body.as_bytes()),
        &[("idempotency-key", "same")],
    );
    let b = s.call(
        "POST",
        "/api-keys",
        Some(&other),
        Some(body.as_bytes()),
        &[("idempotency-key", "same")],
    );
    assert_eq!((a.status, b.status), (201, 201));
    assert_ne!(a.json()["data"]["id"], b.json()["data"]["id"]);
    assert_eq!(b.header("idempotent-replayed"), None);
    // After 24 hours the key is forgotten and the request runs again.
    s.clock.advance(24 * 3_600_000 + 1);
    let c = s.call(
        "POST",
        "/api-keys",
        Some(&s.admin_key),
        Some(body.as_bytes()),
        &[("idempotency-key", "same")],
    );
    assert_eq!(c.status, 201);
    assert_ne!(c.json()["data"]["id"], a.json()["data"]["id"]);
}

#[test]
fn failed_requests_are_replayed_too_but_bad_keys_are_400() {
    let s = TestServer::start();
    let bad = r#"{"email": "nope", "name": "X"}"#;
    let first = post_with_key(&s, &s.admin_key, "v", bad);
    first.error(422, "validation_error");
    let again = post_with_key(&s, &s.admin_key, "v", bad);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let long = "k".repeat(256);
    post_with_key(&s, &s.admin_key, &long, bad).error(400, "bad_request");
}

#[test]
fn versions_travel_as_etags_and_if_match_guards_updates() {
    let s = TestServer::start();
    let created = s.post(
        "/users",
        &s.admin_key,
        json!({"email": "v@example.com", "name": "V"}),
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    let id = created.json()["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/users/{id}");
    let ok = s.call(
        "PATCH",
        &path,
        Some(&s.admin_key),
        Some(br#"{"name": "V2"}"#),
        &[("if-match", "\"1\"")],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    assert_eq!(ok.json()["data"]["version"], 2);
    let stale = s.call(
        "PATCH",
        &path,
        Some(&s.admin_key),
        Some(br#"{"name": "V3"}"#),
        &[("if-match", "\"1\"")],
    );
    stale.error(412, "precondition_failed");
    let now = s.get(&path, &s.admin_key);
    assert_eq!(now.header("etag"), Some("\"2\""));
    assert_eq!(now.json()["data"]["name"], "V2");
    // Without If-Match the last write wins.
    s.patch(&path, &s.admin_key, json!({"name": "V4"}))
        .data(200);
}

#[test]
fn if_match_guards_a_deal_move_too() {
    let s = TestServer::start();
    let deal = s
        .post(
            "/deals",
            &s.admin_key,
            json!({"title": "Board card", "value": 10}),
        )
        .data(201);
    let id = deal["id"].as_str().unwrap().to_string();
    let path = format!("/deals/{id}/move");
    let moved = s.call(
        "POST",
        &path,
        Some(&s.admin_key),
        Some(br#"{"stage": "Qualified"}"#),
        &[("if-match", "\"1\"")],
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.header("etag"), Some("\"2\""));
    // A board still showing version 1 must not move it back.
    let stale = s.call(
        "POST",
        &path,
        Some(&s.admin_key),
        Some(br#"{"stage": "Lead In"}"#),
        &[("if-match", "\"1\"")],
    );
    stale.error(412, "precondition_failed");
    let now = s.get(&format!("/deals/{id}"), &s.admin_key).data(200);
    assert_eq!(now["stage_name"], "Qualified");
    assert_eq!(now["version"], 2);
    let history = s.get(&format!("/deals/{id}/history"), &s.admin_key);
    assert_eq!(history.json()["data"].as_array().unwrap().len(), 2);
}

#[test]
fn a_patch_that_changes_nothing_is_not_a_new_version() {
    let s = TestServer::start();
    let lead = s
        .post(
            "/leads",
            &s.admin_key,
            json!({"email": "same@example.com", "title": "CTO"}),
        )
        .data(201);
    let path = format!("/leads/{}", lead["id"].as_str().unwrap());
    let events_before = s.count("SELECT COUNT(*) FROM events");
    let again = s
        .patch(&path, &s.admin_key, json!({"title": "CTO"}))
        .data(200);
    assert_eq!(again["version"], 1);
    assert_eq!(again["updated_at"], lead["updated_at"]);
    assert_eq!(s.count("SELECT COUNT(*) FROM events"), events_before);
    let changed = s
        .patch(&path, &s.admin_key, json!({"title": "CEO"}))
        .data(200);
    assert_eq!(changed["version"], 2);
    assert_eq!(s.count("SELECT COUNT(*) FROM events"), events_before + 1);
    let deal = s
        .post("/deals", &s.admin_key, json!({"title": "D", "value": 10}))
        .data(201);
    let dpath = format!("/deals/{}", deal["id"].as_str().unwrap());
    assert_eq!(
        s.patch(&dpath, &s.admin_key, json!({"value": 10.0, "title": "D"}))
            .data(200)["version"],
        1
    );
    // Every resource an update writes through the same path: the same again is no new version
    // and no event; one field more is.
    for (collection, body, same, changed) in [
        (
            "/companies",
            json!({"name": "Acme"}),
            json!({"name": "Acme"}),
            json!({"country": "DE"}),
        ),
        (
            "/tasks",
            json!({"title": "Call"}),
            json!({"title": "Call", "priority": "medium"}),
            json!({"priority": "high"}),
        ),
        (
            "/notes",
            json!({"content": "Hi", "lead_id": lead["id"]}),
            json!({"content": "Hi"}),
            json!({"content": "Hello"}),
        ),
    ] {
        let created = s.post(collection, &s.admin_key, body).data(201);
        let path = format!("{collection}/{}", created["id"].as_str().unwrap());
        let events = s.count("SELECT COUNT(*) FROM events");
        let again = s.patch(&path, &s.admin_key, same).data(200);
        assert_eq!(
            (&again["version"], &again["updated_at"]),
            (&created["version"], &created["updated_at"]),
            "{collection}"
        );
        assert_eq!(
            s.count("SELECT COUNT(*) FROM events"),
            events,
            "{collection}"
        );
        let next = s.patch(&path, &s.admin_key, changed).data(200);
        assert_eq!(next["version"], 2, "{collection}");
        assert_eq!(
            s.count("SELECT COUNT(*) FROM events"),
            events + 1,
            "{collection}"
        );
    }
    // Pipelines, which record no events, keep their version too.
    let pipeline = s
        .post("/pipelines", &s.admin_key, json!({"name": "Partners"}))
        .data(201);
    let path = format!("/pipelines/{}", pipeline["id"].as_str().unwrap());
    let same = s
        .patch(&path, &s.admin_key, json!({"name": "Partners"}))
        .data(200);
    assert_eq!(same["version"], pipeline["version"]);
    let renamed = s
        .patch(&path, &s.admin_key, json!({"name": "Channel"}))
        .data(200);
    assert_eq!(
        renamed["version"],
        pipeline["version"].as_i64().unwrap() + 1
    );
}

/// A stored answer can hold a secret (here a new API key): it is kept sealed to the caller's
/// credential, so the database file never holds it, yet the caller's retry gets it back.
#[test]
fn a_stored_answer_holding_a_secret_is_sealed_to_the_caller() {
    let s = TestServer::start();
    let create = |key: &str| {
        s.call(
            "POST",
            "/api-keys",
            Some(key),
            Some(br#"{"name": "sales agent"}"#),
            &[("idempotency-key", "create-agent-key-1")],
        )
    };
    let first = create(&s.admin_key);
    let secret = first.data(201)["key"].as_str().unwrap().to_string();
    let again = create(&s.admin_key);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    let stored: Vec<Vec<u8>> = s
        .state
        .db
        .blocking()
        .read(|c| {
            let mut stmt = c.prepare("SELECT body FROM idempotency_keys")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .unwrap();
    assert_eq!(stored.len(), 1);
    let needle = &secret.as_bytes()[4..];
    assert!(
        !stored[0].windows(needle.len()).any(|w| w == needle),
        "the new key is stored in the clear"
    );
    assert!(!stored[0].windows(11).any(|w| w == b"sales agent"));
}
