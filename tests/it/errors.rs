//! The error envelope (docs/api.md §3): every failure, the framework's own included, has one shape.

use std::io::{Read, Write};

use crate::common::TestServer;
use serde_json::{json, Value};

#[test]
fn malformed_json_is_400() {
    let s = TestServer::start();
    let r = s.call(
        "POST",
        "/users",
        Some(&s.admin_key),
        Some(b"{\"email\": "),
        &[],
    );
    let e = r.error(400, "bad_request");
    assert!(
        e["message"].as_str().unwrap().contains("malformed JSON"),
        "{e}"
    );
}

#[test]
fn a_bad_query_value_is_400_and_an_out_of_range_one_is_422() {
    let s = TestServer::start();
    let e = s
        .get("/users?per_page=ten", &s.admin_key)
        .error(400, "bad_request");
    assert_eq!(
        e["message"],
        "invalid parameter `per_page`: `ten` is not a whole number"
    );
    let e = s
        .get("/users?per_page=1000", &s.admin_key)
        .error(422, "validation_error");
    assert_eq!(
        e["details"],
        json!([{"field": "per_page", "issue": "must be at most 100"}])
    );
    let e = s
        .get("/users?page=0", &s.admin_key)
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "page");
    // Both out of range: both named at once.
    let e = s
        .get("/tasks?page=0&per_page=0", &s.admin_key)
        .error(422, "validation_error");
    assert_eq!(
        e["details"],
        json!([
            {"field": "page", "issue": "must be at least 1"},
            {"field": "per_page", "issue": "must be at least 1"}
        ])
    );
}

/// Every parameter type of the server's own says why it refused a value, and the status
/// follows the kind of refusal (not the framework's wording): 400 for a value not of the
/// documented type or form, 422 for one outside a documented range or set.
#[test]
fn each_kind_of_refused_parameter_gets_its_status_and_a_precise_message() {
    let s = TestServer::start();
    let key = &s.admin_key;
    let e = s
        .get("/leads?score_min=high", key)
        .error(400, "bad_request");
    assert_eq!(
        e["message"],
        "invalid parameter `score_min`: `high` is not a whole number"
    );
    assert_eq!(
        e["details"],
        json!([{"field": "score_min", "issue": "is not of the documented type"}])
    );
    let e = s
        .get("/leads?score_max=101", key)
        .error(422, "validation_error");
    assert_eq!(e["message"], "score_max must be at most 100");
    let e = s
        .get("/deals?value_min=-1", key)
        .error(422, "validation_error");
    assert_eq!(
        e["details"],
        json!([{"field": "value_min", "issue": "must be at least 0"}])
    );
    let e = s.get("/deals?value_max=NaN", key).error(400, "bad_request");
    assert_eq!(
        e["message"],
        "invalid parameter `value_max`: `NaN` is not a number"
    );
    let e = s
        .get("/events?after=-5", key)
        .error(422, "validation_error");
    assert_eq!(e["message"], "after must be at least 0");
    let e = s.get("/search?q=", key).error(422, "validation_error");
    assert_eq!(e["message"], "q must be at least 1 character");
    let long = "a".repeat(201);
    let e = s
        .get(&format!("/search?q={long}"), key)
        .error(422, "validation_error");
    assert_eq!(e["message"], "q must be at most 200 characters");
    let e = s
        .get("/performance/leaderboard?period=fortnight", key)
        .error(422, "validation_error");
    assert_eq!(
        e["message"],
        "period must be one of day, week, month, quarter, year"
    );
    let e = s
        .get("/leads?sort=shoe_size", key)
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "sort");
    let e = s
        .get("/leads?created_after=yesterday", key)
        .error(400, "bad_request");
    assert_eq!(
        e["message"],
        "invalid parameter `created_after`: must be an RFC 3339 timestamp"
    );
    // A type the framework parses itself (a boolean) is a 400 naming the parameter too.
    let e = s.get("/tasks?overdue=maybe", key).error(400, "bad_request");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter `overdue`: "),
        "{e}"
    );
    assert_eq!(e["details"][0]["issue"], "is not of the documented type");
    // Values inside the ranges pass.
    s.get("/leads?score_min=10&score_max=90", key).data(200);
    s.get("/deals?value_min=0.5&value_max=1000000000000", key)
        .data(200);
}

#[test]
fn every_401_is_identical_and_names_the_scheme() {
    let s = TestServer::start();
    let revoked = s.key_with(&["read"]);
    let id = s.get("/api-keys?sort=-created_at", &s.admin_key).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.delete(&format!("/api-keys/{id}"), &s.admin_key).data(200);

    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        (
            "not bearer",
            vec![("authorization", format!("Basic {}", s.admin_key))],
        ),
        (
            "malformed",
            vec![("authorization", "Bearer clz_short".into())],
        ),
        (
            "unknown",
            vec![("authorization", format!("Bearer clz_{}", "A".repeat(32)))],
        ),
        (
            "unknown session",
            vec![("authorization", format!("Bearer clzs_{}", "b".repeat(32)))],
        ),
        (
            "revoked",
            vec![("authorization", format!("Bearer {revoked}"))],
        ),
    ];
    let mut bodies = Vec::new();
    for (name, headers) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = s.call("GET", "/me", None, None, &h);
        let mut e = r.error(401, "unauthorized");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"clozup\""),
            "{name}"
        );
        e["request_id"] = json!(null);
        bodies.push(e);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[test]
fn missing_scope_is_403() {
    let s = TestServer::start();
    let reader = s.key_with(&["read"]);
    let e = s
        .post("/api-keys", &reader, json!({"name": "x"}))
        .error(403, "forbidden");
    assert!(e["message"].as_str().unwrap().contains("admin"), "{e}");
    s.get("/api-keys", &reader).error(403, "forbidden");
    // Reading the team is a `read` operation.
    s.get("/users", &reader).data(200);
}

#[test]
fn unknown_routes_wrong_prefixes_and_malformed_ids_are_404() {
    let s = TestServer::start();
    s.get("/no-such-thing", &s.admin_key)
        .error(404, "not_found");
    s.call("GET", "/nowhere", None, None, &[])
        .error(404, "not_found");
    s.get("/users/key_01M8H6J8V5EZ2NYY830B06ZRR1", &s.admin_key)
        .error(404, "not_found");
    s.get("/users/usr_nope", &s.admin_key)
        .error(404, "not_found");
    s.get("/users/usr_01M8H6J8V5EZ2NYY830B06ZRR9", &s.admin_key)
        .error(404, "not_found");
}

#[test]
fn conflicts_are_409_with_the_existing_id() {
    let s = TestServer::start();
    let first = s.post(
        "/users",
        &s.admin_key,
        json!({"email": "ada@example.com", "name": "Ada"}),
    );
    let id = first.data(201)["id"].as_str().unwrap().to_string();
    let e = s
        .post(
            "/users",
            &s.admin_key,
            json!({"email": "ADA@example.com", "name": "Ada 2"}),
        )
        .error(409, "conflict");
    assert_eq!(e["details"][0]["field"], "email");
    assert!(
        e["details"][0]["issue"].as_str().unwrap().contains(&id),
        "{e}"
    );
}

#[test]
fn stale_if_match_is_412_and_changes_nothing() {
    let s = TestServer::start();
    let r = s.call(
        "PATCH",
        "/org",
        Some(&s.admin_key),
        Some(br#"{"name": "Renamed"}"#),
        &[("if-match", "\"9\"")],
    );
    r.error(412, "precondition_failed");
    assert_eq!(
        s.get("/org", &s.admin_key).data(200)["name"],
        "My Organization"
    );
    let bad = s.call(
        "PATCH",
        "/org",
        Some(&s.admin_key),
        Some(b"{}"),
        &[("if-match", "yesterday")],
    );
    let e = bad.error(400, "bad_request");
    assert_eq!(
        e["message"],
        "If-Match must be an ETag this API gave out, such as \"3\""
    );
    assert_eq!(e["details"][0]["field"], "If-Match");
}

#[test]
fn bodies_over_the_limit_are_413_declared_or_chunked() {
    let s = TestServer::start_with(|c| c.body_limit = 1024);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2000));
    s.call(
        "POST",
        "/api-keys",
        Some(&s.admin_key),
        Some(big.as_bytes()),
        &[],
    )
    .error(413, "payload_too_large");

    // Chunked, with no Content-Length: the gate still counts the bytes.
    let addr = s.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let chunk = "y".repeat(1500);
    write!(
        stream,
        "POST /api/v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{}\r\n0\r\n\r\n",
        s.admin_key,
        chunk.len(),
        chunk
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("\"code\":\"payload_too_large\""), "{out}");
}

#[test]
fn wrong_or_missing_content_type_is_415() {
    let s = TestServer::start();
    let r = s.call(
        "POST",
        "/api-keys",
        Some(&s.admin_key),
        Some(b"{\"name\": \"x\"}"),
        &[("content-type", "text/plain")],
    );
    r.error(415, "unsupported_media_type");
    let url = s.url("/api-keys");
    let mut stream = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "POST {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        s.admin_key
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 415"), "{out}");
    // With charset, JSON is accepted.
    let ok = s.call(
        "POST",
        "/api-keys",
        Some(&s.admin_key),
        Some(b"{\"name\": \"x\"}"),
        &[("content-type", "application/json; charset=utf-8")],
    );
    ok.data(201);
}

#[test]
fn schema_violations_are_422_naming_every_field() {
    let s = TestServer::start();
    let users_before = s.count("SELECT COUNT(*) FROM users");
    let r = s.post(
        "/users",
        &s.admin_key,
        json!({"name": "", "role": "emperor", "nickname": "x", "password": "short"}),
    );
    let e = r.error(422, "validation_error");
    let fields: Vec<&str> = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for f in ["email", "name", "role", "nickname", "password"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    // Rules the schema cannot express are 422 too, and a failed request changes nothing.
    let e = s
        .post(
            "/users",
            &s.admin_key,
            json!({"email": "not-an-email", "name": "X"}),
        )
        .error(422, "validation_error");
    assert_eq!(
        e["details"][0],
        json!({"field": "email", "issue": "must be a valid email address"})
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM users"), users_before);
}

#[test]
fn rate_limit_31st_request_is_429_and_headers_are_everywhere() {
    // A period of an hour: no token comes back during the test, however slow the machine.
    let s = TestServer::start_with(|c| {
        c.rate_limit = clozup::config::parse_rate_limit("30/1h").unwrap()
    });
    for i in 0..30 {
        let r = s.get("/me", &s.admin_key);
        assert_eq!(r.status, 200, "request {}", i + 1);
        assert_eq!(r.header("ratelimit-limit"), Some("30"));
        assert_eq!(
            r.header("ratelimit-remaining"),
            Some((29 - i).to_string().as_str())
        );
        assert!(r.header("ratelimit-reset").is_some());
    }
    let r = s.get("/me", &s.admin_key);
    r.error(429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("3600"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    // Other credentials have their own bucket; before authentication the bucket is the IP's.
    let other = s.key_with(&["read"]);
    assert_eq!(s.get("/me", &other).status, 200);
    let anon = s.call("GET", "/me", None, None, &[]);
    assert_eq!(anon.status, 401);
    assert_eq!(anon.header("ratelimit-limit"), Some("30"));
}

#[test]
fn every_response_has_a_request_id_and_a_good_one_is_echoed() {
    let s = TestServer::start();
    let r = s.call(
        "GET",
        "/me",
        Some(&s.admin_key),
        None,
        &[("x-request-id", "trace-42")],
    );
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    let r = s.call(
        "GET",
        "/me",
        Some(&s.admin_key),
        None,
        &[("x-request-id", "bad id!")],
    );
    assert!(r.header("x-request-id").unwrap().starts_with("req_"));
    assert!(s
        .call("GET", "/health", None, None, &[])
        .header("x-request-id")
        .is_some());
    s.call("GET", "/nope", None, None, &[])
        .error(404, "not_found");
}

#[test]
fn keys_in_the_query_string_are_refused() {
    let s = TestServer::start();
    let r = s.call(
        "GET",
        &format!("/me?api_key={}", s.admin_key),
        None,
        None,
        &[],
    );
    let e = r.error(400, "bad_request");
    assert!(!r.body.contains(&s.admin_key), "the key must not be echoed");
    assert_eq!(e["details"][0]["field"], "api_key");
}

#[test]
fn wrong_method_is_405_in_the_envelope() {
    let s = TestServer::start();
    let r = s.call("PUT", "/users", Some(&s.admin_key), Some(b"{}"), &[]);
    r.error(405, "method_not_allowed");
    // RFC 9110: a 405 lists what the route does accept.
    assert_eq!(r.header("allow"), Some("GET, POST, HEAD"));
    let r = s.call("TRACE", "/deals/at-risk", Some(&s.admin_key), None, &[]);
    r.error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn bodies_are_held_to_the_document_exactly() {
    let s = TestServer::start();
    let k = &s.admin_key;
    // poem-openapi alone would take `false` or `7` for a string; the document says string.
    let e = s
        .post("/companies", k, json!({"name": false}))
        .error(422, "validation_error");
    assert_eq!(
        e["details"],
        json!([{"field": "name", "issue": "must be a string, not a boolean"}])
    );
    let e = s
        .post("/tasks", k, json!({"title": "Call", "description": 7}))
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "description");
    // An unknown field is a typo to point out, never silently dropped; the document says so.
    let e = s
        .post("/tasks", k, json!({"title": "Call", "priorty": "high"}))
        .error(422, "validation_error");
    assert_eq!(
        e["details"],
        json!([{"field": "priorty", "issue": "is not a known field"}])
    );
    let doc = s.get("/public/docs", k).json();
    assert_eq!(
        doc["components"]["schemas"]["NewTask"]["additionalProperties"],
        false
    );
    // An optional field may be null, and the document says that too.
    let c = s
        .post(
            "/companies",
            k,
            json!({"name": "Acme", "domain": null, "size": null}),
        )
        .data(201);
    assert_eq!(c["domain"], serde_json::Value::Null);
    assert_eq!(
        doc["components"]["schemas"]["Company"]["properties"]["domain"]["nullable"],
        true
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM tasks"), 0);
}

#[test]
fn floods_of_random_keys_do_not_grow_the_limiter() {
    let s = TestServer::start();
    for i in 0..500 {
        let fake = format!("clz_{:0>32}", i);
        s.call("GET", "/me", Some(&fake), None, &[])
            .error(401, "unauthorized");
    }
    // Unknown keys are all charged to the client's IP: one bucket, however many keys.
    assert_eq!(s.state.limiter.tracked(), 1);
}

/// Sends `request` as raw bytes on a new connection and reads the whole answer.
fn raw_exchange(
    s: &TestServer,
    request: &[u8],
) -> (
    u16,
    std::collections::HashMap<String, String>,
    serde_json::Value,
) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    (
        status,
        headers,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// What the HTTP parser refuses before any handler runs is still answered in the envelope,
/// with an `X-Request-Id` and the fault named; two Authorization headers are refused too.
#[test]
fn requests_the_http_parser_refuses_get_the_envelope_too() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            format!("GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {k}\x0b\r\n\r\n").into_bytes(),
            400,
            "the authorization header holds a control character (0x0b)",
        ),
        (
            format!("GET /api/v1/me HTTP/1.1\r\nHost: x\r\nIf-Match: \"1\"\x01\r\nAuthorization: Bearer {k}\r\n\r\n").into_bytes(),
            400,
            "the if-match header holds a control character (0x01)",
        ),
        (
            format!("GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {k}\r\nAuthorization: Bearer {k}\r\nConnection: close\r\n\r\n").into_bytes(),
            400,
            "send one Authorization header",
        ),
        (
            b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n".to_vec(),
            400,
            "the header name `BadName` holds the character 0x20",
        ),
        (b"GET /api/v1/me HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), 400, "HTTP/9.9 is not supported"),
        (
            format!("GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(500_000)).into_bytes(),
            431,
            "headers are larger than the server accepts",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            414,
            "URI is too long",
        ),
    ];
    for (request, status, message) in cases {
        let (got, headers, body) = raw_exchange(&s, &request);
        assert_eq!(got, status, "{message}: {body}");
        let err = &body["error"];
        assert_eq!(err["code"], "bad_request", "{body}");
        assert!(
            err["message"].as_str().unwrap().contains(message),
            "{message}: {body}"
        );
        assert_eq!(
            headers.get("x-request-id").map(String::as_str),
            err["request_id"].as_str(),
            "{body}"
        );
        assert!(err["request_id"].as_str().unwrap().starts_with("req_"));
    }
    // The connection after a good request still works as before.
    let (status, _, body) = raw_exchange(
        &s,
        format!("GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {k}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
}

/// Issue 21 point 8: a body field naming nothing (an unknown stage name, user, company, lead,
/// pipeline) is a 422 with that field in `details`, and every message reads as a sentence that
/// starts with the field and says what to fix. Nothing is stored.
#[test]
fn unknown_body_references_are_422_sentences_naming_the_field() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let deal = s.post("/deals", &k, json!({"title": "Sentence"})).data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lead = s
        .post("/leads", &k, json!({"email": "s@example.com"}))
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ghost_co = "co_01M8H6J8V5EZ2NYY830B06ZRR9";
    let ghost_usr = "usr_01M8H6J8V5EZ2NYY830B06ZRR9";
    let ghost_stg = "stg_01M8H6J8V5EZ2NYY830B06ZRR9";
    let ghost_pip = "pip_01M8H6J8V5EZ2NYY830B06ZRR9";
    let cases: Vec<(&str, String, Value, &str, String)> = vec![
        (
            "POST",
            "/leads".into(),
            json!({"email": "x@example.com", "company_id": ghost_co}),
            "company_id",
            format!("company_id names no company of this organization: `{ghost_co}`"),
        ),
        (
            "POST",
            "/deals".into(),
            json!({"title": "x", "owner_id": ghost_usr}),
            "owner_id",
            format!("owner_id names no user of this organization: `{ghost_usr}`"),
        ),
        (
            "POST",
            "/deals".into(),
            json!({"title": "x", "pipeline_id": ghost_pip}),
            "pipeline_id",
            format!("pipeline_id names no pipeline of this organization: `{ghost_pip}`"),
        ),
        (
            "POST",
            format!("/deals/{deal}/move"),
            json!({"stage_id": ghost_stg}),
            "stage_id",
            format!("stage_id names no stage of this organization: `{ghost_stg}`"),
        ),
        (
            "POST",
            format!("/deals/{deal}/move"),
            json!({"stage": "Nowhere"}),
            "stage",
            "stage names no stage of pipeline".into(),
        ),
        (
            "POST",
            format!("/deals/{deal}/move"),
            json!({"stage": "Won", "stage_id": ghost_stg}),
            "stage",
            "stage cannot be given with stage_id; name the stage one way".into(),
        ),
        (
            "POST",
            format!("/leads/{lead}/assign"),
            json!({"user_id": ghost_usr}),
            "user_id",
            format!("user_id names no user of this organization: `{ghost_usr}`"),
        ),
        (
            "POST",
            "/activities".into(),
            json!({"type": "call"}),
            "deal_id",
            "deal_id or lead_id is required: an activity is logged on a deal or a lead".into(),
        ),
    ];
    let before = s.count("SELECT (SELECT COUNT(*) FROM leads) + (SELECT COUNT(*) FROM deals) + (SELECT COUNT(*) FROM activities) + (SELECT COUNT(*) FROM deal_stage_history)");
    for (method, path, body, field, message) in cases {
        let e = s
            .call(
                method,
                &path,
                Some(&k),
                Some(body.to_string().as_bytes()),
                &[],
            )
            .error(422, "validation_error");
        assert_eq!(e["details"][0]["field"], field, "{path}: {e}");
        let got = e["message"].as_str().unwrap();
        assert!(got.starts_with(&message), "{path}: {got}");
        assert!(!got.contains(" a co ") && !got.contains(" give "), "{got}");
    }
    let after = s.count("SELECT (SELECT COUNT(*) FROM leads) + (SELECT COUNT(*) FROM deals) + (SELECT COUNT(*) FROM activities) + (SELECT COUNT(*) FROM deal_stage_history)");
    assert_eq!(before, after, "a refused request stores nothing");
    // An unknown id in the path is still a 404.
    s.post(
        "/deals/deal_01M8H6J8V5EZ2NYY830B06ZRR9/move",
        &k,
        json!({"stage": "Won"}),
    )
    .error(404, "not_found");
}
