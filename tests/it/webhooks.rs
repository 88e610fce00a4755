//! Webhooks against a real receiver on a real socket: signed deliveries, filters, retries,
//! 410 Gone, secret rotation, redelivery, and the SSRF guard.

use crate::common;
use std::net::TcpListener;
use std::time::Duration;

use crate::common::receiver::{Received, Receiver};
use crate::common::TestServer;
use serde_json::{json, Value};

fn fast_retries(allow_loopback: bool) -> TestServer {
    TestServer::start_with(|c| {
        c.webhook_retry_schedule = vec![Duration::from_millis(20); 3];
        c.webhook_poll = Duration::from_millis(10);
        if allow_loopback {
            c.webhook_allow_cidr = vec!["127.0.0.0/8".parse().unwrap()];
        }
    })
}

fn verify(r: &Received, secret: &str) -> bool {
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    let expected = clozup::webhook_worker::signature(secret, r.header("webhook-id"), ts, &r.body);
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// Waits (on the real clock only) until the endpoint's deliveries satisfy `done`.
fn wait_all(s: &TestServer, webhook: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ds = s
            .get(&format!("/webhooks/{webhook}/deliveries"), &s.admin_key)
            .data(200);
        let ds = ds.as_array().unwrap().clone();
        if done(&ds) {
            return ds;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries stuck: {ds:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the endpoint's latest delivery reaches `status`.
fn wait_delivery(s: &TestServer, webhook: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = s
            .get(&format!("/webhooks/{webhook}/deliveries"), &s.admin_key)
            .data(200)[0]
            .clone();
        if d["status"] == status {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery stuck at {d}"
        );
        std::thread::sleep(Duration::from_millis(20));
        s.clock.advance(1000);
    }
}

/// The workers wait on the commits that queue deliveries, not on their poll: with a poll of an
/// hour, a delivery still goes out at once.
#[test]
fn a_delivery_goes_out_without_waiting_for_the_poll() {
    let s = TestServer::start_with(|c| {
        c.webhook_poll = Duration::from_secs(3600);
        c.webhook_allow_cidr = vec!["127.0.0.0/8".parse().unwrap()];
    });
    let rx = Receiver::start(vec![200]);
    s.post(
        "/webhooks",
        &s.admin_key,
        json!({"url": rx.url, "event_types": ["deal.created"]}),
    )
    .data(201);
    s.post("/deals", &s.admin_key, json!({"title": "At once"}))
        .data(201);
    let got: Value = serde_json::from_str(&rx.wait().body).unwrap();
    assert_eq!(got["type"], "deal.created");
    assert_eq!(got["data"]["object"]["title"], "At once");
}

#[test]
fn signed_deliveries_follow_the_filters() {
    let s = fast_retries(true);
    let rx = Receiver::start(vec![200]);
    let created = s
        .post(
            "/webhooks",
            &s.admin_key,
            json!({"url": rx.url, "event_types": ["deal.*"]}),
        )
        .data(201);
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let wh = created["id"].as_str().unwrap().to_string();
    assert!(
        !s.get(&format!("/webhooks/{wh}"), &s.admin_key)
            .body
            .contains(&secret),
        "the secret is shown once"
    );
    s.post(
        "/companies",
        &s.admin_key,
        json!({"name": "Not for this hook"}),
    )
    .data(201);
    let deal = s
        .post("/deals", &s.admin_key, json!({"title": "Hooked"}))
        .data(201);
    let got = rx.next(&s);
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["type"], "deal.created");
    assert_eq!(body["data"]["object"]["id"], deal["id"]);
    // The payload is the documented `Event`: it parses as one, type and actor included.
    let event =
        <clozup::domain::events::Event as poem_openapi::types::ParseFromJSON>::parse_from_json(
            Some(body.clone()),
        )
        .expect("a webhook payload is an Event");
    assert_eq!(event.data.object["title"], "Hooked");
    assert!(event.data.previous.is_none());
    assert_eq!(got.header("webhook-id"), body["id"].as_str().unwrap());
    assert_eq!(got.header("content-type"), "application/json");
    assert!(
        verify(&got, &secret),
        "the signature verifies with the secret"
    );
    assert!(!verify(&got, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    let d = wait_delivery(&s, &wh, "succeeded");
    assert_eq!(
        (d["attempts"].as_i64(), d["last_status_code"].as_i64()),
        (Some(1), Some(200))
    );
    assert_eq!(d["response_excerpt"], "ok");
    assert!(
        rx.nothing_within(Duration::from_millis(300)),
        "the company event was filtered out"
    );
}

#[test]
fn failures_retry_with_the_same_id_and_410_disables() {
    let s = fast_retries(true);
    let rx = Receiver::start(vec![500, 503, 200]);
    let wh = s
        .post("/webhooks", &s.admin_key, json!({"url": rx.url}))
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("/companies", &s.admin_key, json!({"name": "Retry me"}))
        .data(201);
    let ids: Vec<String> = (0..3)
        .map(|_| rx.next(&s).header("webhook-id").to_string())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "webhook-id is stable across retries: {ids:?}"
    );
    let d = wait_delivery(&s, &wh, "succeeded");
    assert_eq!(d["attempts"], 3);
    assert!(s.get(&format!("/webhooks/{wh}"), &s.admin_key).data(200)["failing_since"].is_null());

    let gone = Receiver::start(vec![410]);
    let wh2 = s
        .post(
            "/webhooks",
            &s.admin_key,
            json!({"url": gone.url, "event_types": ["lead.created"]}),
        )
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("/leads", &s.admin_key, json!({"email": "gone@example.com"}))
        .data(201);
    gone.next(&s);
    let d = wait_delivery(&s, &wh2, "failed");
    assert_eq!(d["last_status_code"], 410);
    let hook = s.get(&format!("/webhooks/{wh2}"), &s.admin_key).data(200);
    assert_eq!(
        (hook["active"].as_bool(), hook["disabled_reason"].as_str()),
        (Some(false), Some("the endpoint answered 410 Gone"))
    );
    let disabled = s
        .get("/events/log?types=webhook.disabled", &s.admin_key)
        .data(200);
    assert_eq!(disabled[0]["data"]["object"]["id"], wh2.as_str());
    // Disabled endpoints get nothing new.
    s.post(
        "/leads",
        &s.admin_key,
        json!({"email": "later@example.com"}),
    )
    .data(201);
    assert!(gone.nothing_within(Duration::from_millis(300)));
}

/// Points a stored endpoint at `url` behind the API's back: an endpoint saved before its range was
/// refused (the operator has since dropped a `--webhook-allow-cidr`), which the API itself no
/// longer accepts.
fn store_url(s: &TestServer, webhook: &str, url: &str) {
    let (webhook, url) = (webhook.to_string(), url.to_string());
    s.state
        .db
        .blocking()
        .write(move |tx| {
            tx.execute(
                "UPDATE webhooks SET url = ?2 WHERE id = ?1",
                rusqlite::params![webhook, url],
            )?;
            Ok(())
        })
        .unwrap();
}

/// Issue 21 point 10: an address in a refused range is a 422 when the endpoint is saved (create
/// and PATCH), naming the range and the flag that allows it; a stored host that resolves into
/// one fails its delivery at once, with the reason, and is not retried.
#[test]
fn private_targets_are_refused_unless_the_operator_allows_them() {
    let s = fast_retries(false);
    let rx = Receiver::start(vec![200]);
    let e = s
        .post("/webhooks", &s.admin_key, json!({"url": rx.url}))
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "url");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "url names the address 127.0.0.1, which is in the loopback range 127.0.0.0/8"
        ) && message.ends_with("--webhook-allow-cidr 127.0.0.0/8"),
        "{message}"
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM webhooks"), 0);
    let wh = s
        .post(
            "/webhooks",
            &s.admin_key,
            json!({"url": "https://hooks.example.com/clozup"}),
        )
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = s
        .patch(
            &format!("/webhooks/{wh}"),
            &s.admin_key,
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
        )
        .error(422, "validation_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("link-local range 169.254.0.0/16"),
        "{e}"
    );
    assert_eq!(
        s.get(&format!("/webhooks/{wh}"), &s.admin_key).data(200)["url"],
        "https://hooks.example.com/clozup"
    );

    // A host name that resolves into a refused range fails at delivery, once.
    let port = rx.url.trim_start_matches("http://127.0.0.1:");
    store_url(&s, &wh, &format!("http://localhost:{port}"));
    s.post("/companies", &s.admin_key, json!({"name": "SSRF probe"}))
        .data(201);
    let d = wait_delivery(&s, &wh, "failed");
    let err = d["last_error"].as_str().unwrap();
    assert!(
        err.contains("which is in the loopback range") && err.contains("--webhook-allow-cidr"),
        "{d}"
    );
    assert_eq!(d["attempts"], 1, "refused for good, not retried: {d}");
    assert!(d["next_attempt_at"].is_null(), "{d}");
    assert!(
        rx.nothing_within(Duration::from_millis(200)),
        "nothing reached the loopback receiver"
    );
    s.post(
        "/webhooks",
        &s.admin_key,
        json!({"url": "ftp://example.com/x"}),
    )
    .error(422, "validation_error");
    s.post(
        "/webhooks",
        &s.admin_key,
        json!({"url": "https://hooks.example.com/x", "event_types": ["deal.exploded"]}),
    )
    .error(422, "validation_error");
}

#[test]
fn rotation_signs_with_both_secrets_and_tests_and_redeliveries_go_out() {
    let s = fast_retries(true);
    let rx = Receiver::start(vec![200]);
    let created = s
        .post(
            "/webhooks",
            &s.admin_key,
            json!({"url": rx.url, "event_types": ["note.created"]}),
        )
        .data(201);
    let old = created["secret"].as_str().unwrap().to_string();
    let wh = created["id"].as_str().unwrap().to_string();
    let rotated = s
        .post(
            &format!("/webhooks/{wh}/rotate-secret"),
            &s.admin_key,
            json!({}),
        )
        .data(200);
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    let test = s
        .post(&format!("/webhooks/{wh}/test"), &s.admin_key, json!({}))
        .data(201);
    let got = rx.next(&s);
    let ping =
        <clozup::domain::events::Event as poem_openapi::types::ParseFromJSON>::parse_from_json(
            serde_json::from_str(&got.body).ok(),
        )
        .expect("the test ping is an Event too");
    assert_eq!(ping.event_type.as_str(), "webhook.test");
    assert_eq!(ping.data.object["webhook_id"], wh.as_str());
    assert!(
        verify(&got, &new) && verify(&got, &old),
        "both secrets sign during the grace period"
    );
    assert_eq!(got.header("webhook-signature").split(' ').count(), 2);
    let d = wait_delivery(&s, &wh, "succeeded");
    assert_eq!(d["id"], test["id"]);
    // After 24 hours only the new secret signs.
    s.clock.advance(24 * 3_600_000 + 1);
    let again = s
        .post(
            &format!(
                "/webhooks/{wh}/deliveries/{}/redeliver",
                test["id"].as_str().unwrap()
            ),
            &s.admin_key,
            json!({}),
        )
        .data(200);
    assert_eq!(again["status"], "pending");
    let got = rx.next(&s);
    assert!(verify(&got, &new) && !verify(&got, &old));
    assert_eq!(got.header("webhook-id"), test["event_id"].as_str().unwrap());
}

#[test]
fn five_days_of_failures_disable_an_endpoint() {
    let s = TestServer::start_with(|c| {
        c.webhook_retry_schedule = vec![Duration::from_secs(60); 10];
        c.webhook_poll = Duration::from_millis(10);
        c.webhook_allow_cidr = vec!["127.0.0.0/8".parse().unwrap()];
    });
    let rx = Receiver::start(vec![500]);
    let wh = s
        .post("/webhooks", &s.admin_key, json!({"url": rx.url}))
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        "/companies",
        &s.admin_key,
        json!({"name": "Always failing"}),
    )
    .data(201);
    rx.next(&s);
    // The failure is recorded just after the receiver answers: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !s.get(&format!("/webhooks/{wh}"), &s.admin_key).data(200)["failing_since"].is_string() {
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was never recorded"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    s.clock.advance(5 * 86_400_000);
    rx.next(&s);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.get(&format!("/webhooks/{wh}"), &s.admin_key).data(200)["active"] == true {
        assert!(std::time::Instant::now() < deadline, "never disabled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let hook = s.get(&format!("/webhooks/{wh}"), &s.admin_key).data(200);
    assert_eq!(hook["disabled_reason"], "deliveries failed for five days");
    // Re-enabling restarts the failure clock.
    let back = s
        .patch(
            &format!("/webhooks/{wh}"),
            &s.admin_key,
            json!({"active": true}),
        )
        .data(200);
    assert!(back["active"].as_bool().unwrap() && back["failing_since"].is_null());
}

#[test]
fn the_ssrf_table_never_connects_without_the_allow_flag() {
    let s = fast_retries(false);
    let rx = Receiver::start(vec![302]);
    let port = rx
        .url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let targets = [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "[fd00::1]",
        "[fe80::1]",
        "0.0.0.0",
        "localhost.",
        "localhost",
    ];
    let mut hooks = Vec::new();
    for t in targets {
        let url = format!("http://{t}:{port}/hook");
        // Refused when saved: every spelling is an address (or localhost) in a refused range.
        let e = s
            .post(
                "/webhooks",
                &s.admin_key,
                json!({"url": url, "event_types": ["company.created"]}),
            )
            .error(422, "validation_error");
        assert!(
            e["message"].as_str().unwrap().contains(" range "),
            "{t}: {e}"
        );
        // And refused at delivery, should such a URL be stored all the same.
        let wh = s
            .post(
                "/webhooks",
                &s.admin_key,
                json!({"url": "https://hooks.example.com/x", "event_types": ["company.created"]}),
            )
            .data(201)["id"]
            .as_str()
            .unwrap()
            .to_string();
        store_url(&s, &wh, &url);
        hooks.push((t, wh));
    }
    s.post("/companies", &s.admin_key, json!({"name": "probe"}))
        .data(201);
    for (target, wh) in &hooks {
        let d = wait_delivery(&s, wh, "failed");
        let err = d["last_error"].as_str().unwrap_or_default();
        assert!(d["last_status_code"].is_null(), "{target} connected: {d}");
        // Whatever the resolver makes of the spelling, it either lands in a refused range (one
        // attempt) or resolves to nothing.
        assert!(
            (err.contains("which is in the") && d["attempts"] == 1)
                || err.contains("lookup")
                || err.contains("resolve")
                || err.contains("not found"),
            "{target}: {d}"
        );
    }
    assert!(
        rx.nothing_within(Duration::from_millis(200)),
        "nothing reached the loopback receiver"
    );
}

#[test]
fn redirects_are_not_followed() {
    let s = fast_retries(true);
    // The receiver answers 302 (to anywhere): a failure to retry, never a hop elsewhere.
    let rx = Receiver::start(vec![302]);
    let wh = s
        .post("/webhooks", &s.admin_key, json!({"url": rx.url}))
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("/companies", &s.admin_key, json!({"name": "redirect me"}))
        .data(201);
    let d = wait_delivery(&s, &wh, "failed");
    assert_eq!(d["last_status_code"], 302);
}

#[test]
fn a_receiver_that_was_down_gets_every_event_once_it_is_back() {
    let s = fast_retries(true);
    // A port with nothing listening on it yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let created = s
        .post(
            "/webhooks",
            &s.admin_key,
            json!({"url": format!("http://127.0.0.1:{port}/hook")}),
        )
        .data(201);
    let (wh, secret) = (
        created["id"].as_str().unwrap().to_string(),
        created["secret"].as_str().unwrap().to_string(),
    );
    let mut events: Vec<String> = (0..3)
        .map(|i| {
            s.post("/companies", &s.admin_key, json!({"name": format!("C{i}")}))
                .data(201);
            s.get("/events/log", &s.admin_key).data(200)[i]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // Each attempt is refused and recorded; the clock stands still, so no retry comes due yet.
    let ds = wait_all(&s, &wh, |ds| {
        ds.len() == 3 && ds.iter().all(|d| d["attempts"] == 1)
    });
    assert!(ds.iter().all(|d| d["status"] == "pending"
        && d["last_status_code"].is_null()
        && !d["last_error"].as_str().unwrap_or("").is_empty()));
    // The receiver comes up on that port; the retries find it.
    let rx = Receiver::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), vec![200]);
    let mut got: Vec<String> = (0..3)
        .map(|_| {
            let r = rx.next(&s);
            assert!(verify(&r, &secret));
            r.header("webhook-id").to_string()
        })
        .collect();
    got.sort();
    events.sort();
    assert_eq!(got, events, "every event, under its own id");
    let ds = wait_all(&s, &wh, |ds| ds.iter().all(|d| d["status"] == "succeeded"));
    assert!(ds.iter().all(|d| d["attempts"] == 2), "{ds:?}");
}

#[test]
fn deliveries_resume_after_the_server_is_killed_mid_schedule() {
    use common::binary::{get, serve};
    let dir = common::TempDir::new();
    let db = dir.path().join("kill.sqlite");
    let key_file = dir.path().join("admin.key");
    let args = [
        "--admin-key-file",
        key_file.to_str().unwrap(),
        "--webhook-allow-cidr",
        "127.0.0.0/8",
        "--webhook-retry-schedule",
        "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms",
        "--webhook-poll",
        "50ms",
    ];
    let rx = Receiver::start(vec![500]);
    let first = serve(&db, &args);
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let post = |addr: &str, path: &str, body: Value| -> Value {
        let (status, data) = common::binary::post(addr, path, &key, body);
        assert_eq!(status, 201);
        data
    };
    let secret = post(&first.addr, "/webhooks", json!({"url": rx.url}))["secret"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..5 {
        post(&first.addr, "/companies", json!({"name": format!("C{i}")}));
    }
    let (status, log) = get(&first.addr, "/api/v1/events/log", &key);
    assert_eq!(status, 200);
    let log: Value = serde_json::from_str(&log).unwrap();
    let mut events: Vec<String> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "company.created")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events.len(), 5);
    // Mid-schedule: every event has failed at least once, none has succeeded.
    let mut failed = std::collections::HashSet::new();
    while failed.len() < 5 {
        failed.insert(rx.wait().header("webhook-id").to_string());
    }
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL: no shutdown, no flush beyond what was committed
    first.child.wait().unwrap();
    while !rx.nothing_within(Duration::from_millis(10)) {}
    rx.answer(200);

    let second = serve(&db, &args);
    let mut delivered = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while delivered.len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "delivered only {delivered:?}"
        );
        let r = rx.wait();
        assert!(
            verify(&r, &secret),
            "signed by the same secret after the restart"
        );
        let id = r.header("webhook-id").to_string();
        assert!(events.contains(&id), "an unknown webhook-id {id}");
        delivered.insert(id);
    }
    let mut delivered: Vec<String> = delivered.into_iter().collect();
    delivered.sort();
    events.sort();
    assert_eq!(
        delivered, events,
        "every event arrived, each under its event's id"
    );
    drop(second);
}
