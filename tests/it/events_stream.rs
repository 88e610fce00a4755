//! `GET /events`: Server-Sent Events over a real socket — replay, then live, with no gap and no
//! duplicate; filters; isolation; limits; and streams that end when their key is revoked.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::TestServer;
use serde_json::json;

/// An open stream whose lines arrive on a channel.
struct Stream {
    status: u16,
    lines: mpsc::Receiver<Option<String>>,
}

impl Stream {
    fn open(s: &TestServer, query: &str, key: &str, headers: &[(&str, &str)]) -> Stream {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent
            .get(s.url(&format!("/events{query}")))
            .header("authorization", format!("Bearer {key}"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let (tx, lines) = mpsc::channel();
        let reader = resp.into_body().into_reader();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Some(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        Stream { status, lines }
    }

    /// The next event frame as (id, event type, data), skipping retry hints and keep-alives.
    fn next_event(&self) -> Option<(i64, String, serde_json::Value)> {
        let (mut id, mut kind) = (None, None);
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the stream went quiet")?;
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                return Some((id.unwrap(), kind.unwrap(), serde_json::from_str(v).unwrap()));
            }
        }
    }

    /// Waits for the server to end the stream.
    fn ends(&self) {
        loop {
            match self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the stream did not end")
            {
                None => return,
                Some(_) => continue,
            }
        }
    }
}

#[test]
fn replays_from_last_event_id_then_goes_live_without_gaps_or_duplicates() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    for i in 0..3 {
        s.post("/companies", &k, json!({"name": format!("C{i}")}))
            .data(201);
    }
    let stream = Stream::open(&s, "", &k, &[("last-event-id", "1")]);
    assert_eq!(stream.status, 200);
    let (id, kind, data) = stream.next_event().unwrap();
    assert_eq!((id, kind.as_str()), (2, "company.created"));
    assert_eq!(data["seq"], 2);
    assert_eq!(data["data"]["object"]["name"], "C1");
    assert_eq!(stream.next_event().unwrap().0, 3);
    // Live from here on.
    s.post("/leads", &k, json!({"email": "live@example.com"}))
        .data(201);
    let (id, kind, data) = stream.next_event().unwrap();
    assert_eq!((id, kind.as_str()), (4, "lead.created"));
    assert_eq!(data["actor"]["type"], "api_key");
    s.post("/companies", &k, json!({"name": "C3"})).data(201);
    assert_eq!(stream.next_event().unwrap().0, 5);
}

#[test]
fn types_filter_and_organizations_are_kept_apart() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let b = s.second_org();
    let deals_only = Stream::open(&s, "?types=deal.*&after=0", &k, &[]);
    let other_org = Stream::open(&s, "?after=0", &b, &[]);
    s.post("/companies", &k, json!({"name": "Not a deal"}))
        .data(201);
    let deal = s.post("/deals", &k, json!({"title": "D"})).data(201);
    let (_, kind, data) = deals_only.next_event().unwrap();
    assert_eq!(kind, "deal.created");
    assert_eq!(data["data"]["object"]["id"], deal["id"]);
    // B sees its own change only.
    s.post("/companies", &b, json!({"name": "B's"})).data(201);
    let (_, kind, data) = other_org.next_event().unwrap();
    assert_eq!(
        (kind.as_str(), data["data"]["object"]["name"].as_str()),
        ("company.created", Some("B's"))
    );
    s.call("GET", "/events?types=deal.exploded", Some(&k), None, &[])
        .error(422, "validation_error");
    let e = s
        .call(
            "GET",
            "/events",
            Some(&k),
            None,
            &[("last-event-id", "yesterday")],
        )
        .error(400, "bad_request");
    assert_eq!(
        e["message"],
        "Last-Event-ID must be the id (seq) of an event this stream sent"
    );
    assert_eq!(e["details"][0]["field"], "Last-Event-ID");
}

#[test]
fn streams_end_when_their_key_is_revoked_and_are_capped_per_credential() {
    let s = TestServer::start_with(|c| {
        c.sse_keepalive = Duration::from_millis(50);
        c.sse_per_credential = 1;
    });
    let reader = s.key_with(&["read"]);
    let stream = Stream::open(&s, "", &reader, &[]);
    assert_eq!(stream.status, 200);
    let second = s.call("GET", "/events", Some(&reader), None, &[]);
    second.error(429, "rate_limited");
    assert_eq!(second.header("retry-after"), Some("1"));
    let id = s.get("/me", &reader).data(200)["credential"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.delete(&format!("/api-keys/{id}"), &s.admin_key).data(200);
    stream.ends();
    // Its slot is free again for a live key of the same limit.
    let other = s.key_with(&["read"]);
    assert_eq!(Stream::open(&s, "", &other, &[]).status, 200);
}

#[test]
fn keep_alives_flow_while_idle() {
    let s = TestServer::start_with(|c| c.sse_keepalive = Duration::from_millis(50));
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let resp = agent
        .get(s.url("/events"))
        .header("authorization", format!("Bearer {}", s.admin_key))
        .call()
        .unwrap();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut reader = resp.into_body().into_reader();
    let mut buf = [0u8; 64];
    let mut seen = String::new();
    while !seen.contains(":\n\n") {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("retry: 3000\n\n"), "{seen}");
}

#[test]
fn resuming_from_before_the_retention_gets_a_reset_then_everything_kept() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    for i in 0..3 {
        s.post("/companies", &k, json!({"name": format!("Old {i}")}))
            .data(201);
    }
    let day = 86_400_000;
    s.clock.advance(31 * day);
    for i in 0..2 {
        s.post("/companies", &k, json!({"name": format!("New {i}")}))
            .data(201);
    }
    // What the hourly housekeeping runs, with the default 30-day retention.
    let retention = s.state.config.event_retention.as_millis() as i64;
    let pruned = clozup::domain::events::prune(&s.state.db, s.clock_now() - retention).unwrap();
    assert_eq!(pruned, 3);
    assert_eq!(s.count("SELECT COUNT(*) FROM events"), 2);

    let stream = Stream::open(&s, "", &k, &[("last-event-id", "1")]);
    let (id, kind, data) = stream.next_event().unwrap();
    assert_eq!((id, kind.as_str()), (3, "reset"));
    assert_eq!(data["requested_after"], 1);
    assert_eq!(data["pruned_through"], 3);
    let (id, _, data) = stream.next_event().unwrap();
    assert_eq!(
        (id, data["data"]["object"]["name"].as_str()),
        (4, Some("New 0"))
    );
    assert_eq!(stream.next_event().unwrap().0, 5);
    // Live afterwards, and numbering carries on past what was pruned.
    s.post("/companies", &k, json!({"name": "Live"})).data(201);
    assert_eq!(stream.next_event().unwrap().0, 6);

    // Resuming from inside what was kept replays exactly, with no reset.
    let stream = Stream::open(&s, "?after=4", &k, &[]);
    let (id, kind, _) = stream.next_event().unwrap();
    assert_eq!((id, kind.as_str()), (5, "company.created"));
    assert_eq!(stream.next_event().unwrap().0, 6);

    // Pruning everything keeps the numbering too.
    s.clock.advance(31 * day);
    let all = clozup::domain::events::prune(&s.state.db, s.clock_now() - retention).unwrap();
    assert_eq!(all, 3);
    s.post("/companies", &k, json!({"name": "After"})).data(201);
    let log = s.get("/events/log", &k).data(200);
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["seq"], 7);
}
