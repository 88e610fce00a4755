//! Per-deal email over real SMTP (a sink started by the test) and real inbound MIME: sending,
//! replies and threading, inbound samples, open tracking, retries, and a restart with mail
//! still queued.

use crate::common;
use std::time::Duration;

use crate::common::smtp::{Mail, SmtpSink};
use crate::common::TestServer;
use clozup::config::ServeConfig;
use serde_json::{json, Value};

pub(crate) const INBOUND_TOKEN: &str = "inbound-test-secret";

fn server(sink: &SmtpSink) -> TestServer {
    server_with(sink, |_| {})
}

/// [`server`] with some settings changed.
pub(crate) fn server_with(sink: &SmtpSink, adjust: impl FnOnce(&mut ServeConfig)) -> TestServer {
    let url = sink.url.clone();
    TestServer::start_with(move |c| {
        c.smtp_url = Some(url);
        c.inbound_token = Some(INBOUND_TOKEN.into());
        c.public_url = Some("http://crm.test".into());
        c.email_poll = Duration::from_millis(10);
        c.email_retry_schedule = vec![Duration::from_millis(20); 3];
        adjust(c);
    })
}

fn fixture(name: &str, inbox: &str, reply_to: &str) -> Vec<u8> {
    let raw = std::fs::read(format!("tests/fixtures/email/{name}")).unwrap();
    // The Outlook sample is windows-1252: substitute on bytes, not on a UTF-8 string.
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw.as_slice();
    let subs: [(&[u8], &[u8]); 3] = [
        (b"{INBOX}", inbox.as_bytes()),
        (b"{IN_REPLY_TO}", reply_to.as_bytes()),
        (b"{REFERENCES}", reply_to.as_bytes()),
    ];
    'outer: while !rest.is_empty() {
        for (from, to) in subs {
            if rest.starts_with(from) {
                out.extend_from_slice(to);
                rest = &rest[from.len()..];
                continue 'outer;
            }
        }
        out.push(rest[0]);
        rest = &rest[1..];
    }
    out
}

pub(crate) fn inbound(s: &TestServer, raw: &[u8], token: &str) -> common::Resp {
    s.call(
        "POST",
        "/inbound/email",
        Some(token),
        Some(raw),
        &[("content-type", "message/rfc822")],
    )
}

/// Waits until the email reaches `status`.
fn wait_status(s: &TestServer, deal: &str, email: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e = s
            .get(&format!("/deals/{deal}/emails/{email}"), &s.admin_key)
            .data(200);
        if e["status"] == status {
            return e;
        }
        assert!(std::time::Instant::now() < deadline, "email stuck at {e}");
        std::thread::sleep(Duration::from_millis(20));
        s.clock.advance(1000);
    }
}

/// Queues a message from the deal's inbox, as the admin: the queued email.
fn send(s: &TestServer, deal: &str, message: Value) -> Value {
    s.post(&format!("/deals/{deal}/emails/send"), &s.admin_key, message)
        .data(202)
}

fn deal(s: &TestServer, title: &str) -> String {
    s.post("/deals", &s.admin_key, json!({"title": title}))
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) fn body_of(mail: &Mail) -> String {
    // Quoted-printable soft breaks and escapes, enough to search the text.
    mail.data.replace("=\r\n", "").replace("=3D", "=")
}

#[test]
fn send_reply_and_inbound_form_one_thread_on_the_deal() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let d = deal(&s, "Acme Renewal 2027");
    let inbox = s
        .post(
            &format!("/deals/{d}/email-inbox"),
            &k,
            json!({"display_name": "Acme Team"}),
        )
        .data(201);
    assert_eq!(inbox["address"], "acme-renewal-2027@inbox.clozup.localhost");
    let again = s.post(&format!("/deals/{d}/email-inbox"), &k, json!({}));
    assert_eq!(again.data(200)["id"], inbox["id"], "idempotent");
    let address = inbox["address"].as_str().unwrap().to_string();

    let queued = s
        .post(
            &format!("/deals/{d}/emails/send"),
            &k,
            json!({"to": ["buyer@example.com"], "cc": ["cfo@example.com"], "bcc": ["boss@acme.test"],
                   "subject": "Pricing for Acme", "text": "Here is our pricing.",
                   "html": "<html><body><p>Here is our <b>pricing</b>.</p></body></html>"}),
        )
        .data(202);
    assert_eq!(queued["status"], "queued");
    let first = sink.next();
    assert_eq!(first.mail_from, address);
    let mut rcpt = first.rcpt_to.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        vec!["boss@acme.test", "buyer@example.com", "cfo@example.com"]
    );
    assert_eq!(
        first.header("From").unwrap(),
        format!("\"Acme Team\" <{address}>")
    );
    assert_eq!(first.header("To").unwrap(), "buyer@example.com");
    assert_eq!(first.header("Cc").unwrap(), "cfo@example.com");
    assert!(
        first.header("Bcc").is_none(),
        "Bcc never goes in the headers"
    );
    assert_eq!(first.header("Subject").unwrap(), "Pricing for Acme");
    let message_id = queued["message_id"].as_str().unwrap().to_string();
    assert_eq!(
        first.header("Message-ID").unwrap(),
        format!("<{message_id}>")
    );
    assert!(first.header("Date").is_some());
    assert!(first
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    let body = body_of(&first);
    assert!(body.contains("Content-Type: text/plain") && body.contains("Content-Type: text/html"));
    let pixel = body
        .split("src=\"http://crm.test/t/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the html carries the tracking pixel")
        .to_string();
    let sent = wait_status(&s, &d, queued["id"].as_str().unwrap(), "sent");
    assert_eq!(sent["attempts"], 1);
    assert!(sent["sent_at"].is_string());

    // The buyer answers (a Gmail-style reply quoting the original).
    let raw = fixture("gmail_reply.eml", &address, &message_id);
    let received = inbound(&s, &raw, INBOUND_TOKEN).data(201);
    assert_eq!(received["direction"], "inbound");
    assert_eq!(
        received["thread_id"], queued["thread_id"],
        "threaded on the original"
    );
    assert_eq!(received["in_reply_to"], message_id.as_str());
    assert_eq!(received["from"], "buyer@example.com");
    assert_eq!(received["from_name"], "Bea Buyer");
    assert!(received["text"]
        .as_str()
        .unwrap()
        .starts_with("Thanks — the annual plan works for us."));
    assert!(received["html"].as_str().unwrap().contains("gmail_quote"));
    // The same message again is stored once.
    let dup = inbound(&s, &raw, INBOUND_TOKEN).data(200);
    assert_eq!(dup["id"], received["id"]);

    // We answer the answer.
    let reply = s
        .post(
            &format!(
                "/deals/{d}/emails/reply/{}",
                received["id"].as_str().unwrap()
            ),
            &k,
            json!({"text": "Yes, the 1st works."}),
        )
        .data(202);
    assert_eq!(reply["subject"], "Re: Pricing for Acme");
    assert_eq!(reply["to"], json!(["buyer@example.com"]));
    assert_eq!(reply["thread_id"], queued["thread_id"]);
    let second = sink.next();
    assert_eq!(second.header("Subject").unwrap(), "Re: Pricing for Acme");
    assert_eq!(second.rcpt_to, vec!["buyer@example.com"]);
    assert_eq!(
        second.header("In-Reply-To").unwrap(),
        "<CAHx5Kq=9yJ0w@mail.gmail.com>"
    );
    assert_eq!(
        second.header("References").unwrap(),
        format!("<{message_id}> <CAHx5Kq=9yJ0w@mail.gmail.com>")
    );
    assert!(second
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    wait_status(&s, &d, reply["id"].as_str().unwrap(), "sent");

    // One thread in the list, in the activities, the signals and the event log.
    let thread = s
        .get(
            &format!(
                "/deals/{d}/emails?thread_id={}",
                queued["thread_id"].as_str().unwrap()
            ),
            &k,
        )
        .data(200);
    assert_eq!(thread.as_array().unwrap().len(), 3);
    let inbound_only = s
        .get(&format!("/deals/{d}/emails?direction=inbound"), &k)
        .data(200);
    assert_eq!(inbound_only.as_array().unwrap().len(), 1);
    let acts = s.get(&format!("/activities?deal_id={d}"), &k).data(200);
    let mut types: Vec<&str> = acts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, vec!["email_received", "email_sent", "email_sent"]);
    let signals = s.get(&format!("/signals?deal_id={d}"), &k).data(200);
    assert!(signals
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["type"] == "email_replied"));
    let log = s.get("/events/log?types=email.*", &k).data(200);
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "email.queued",
            "email.sent",
            "email.received",
            "email.queued",
            "email.sent"
        ]
    );

    // The pixel: an open is recorded; an unknown token gets the same answer.
    let open = s.call("GET", &format!("/t/{pixel}"), None, None, &[]);
    assert_eq!(open.status, 200);
    assert_eq!(open.header("content-type"), Some("image/gif"));
    let unknown = s.call(
        "GET",
        "/t/o00000000000000000000000000000000",
        None,
        None,
        &[],
    );
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.header("content-type"), Some("image/gif"));
    assert_eq!(
        unknown.header("content-length"),
        open.header("content-length")
    );
    s.call("GET", &format!("/t/{pixel}"), None, None, &[]);
    let opened = s
        .get(
            &format!("/deals/{d}/emails/{}", queued["id"].as_str().unwrap()),
            &k,
        )
        .data(200);
    assert_eq!(opened["open_count"], 2);
    assert!(opened["first_opened_at"].is_string());
    let signals = s.get(&format!("/signals?deal_id={d}"), &k).data(200);
    assert!(signals
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["type"] == "email_opened"));
    // A reply and two opens within the week: high engagement, at once.
    assert!(signals
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["type"] == "high_engagement"));
    let log = s.get("/events/log?types=email.opened", &k).data(200);
    assert_eq!(log.as_array().unwrap().len(), 2);
}

/// The sender waits on the commits that queue mail, not on its poll: with a poll of an hour, a
/// message still goes out at once.
#[test]
fn a_queued_message_goes_out_without_waiting_for_the_poll() {
    let sink = SmtpSink::start();
    let s = server_with(&sink, |c| c.email_poll = Duration::from_secs(3600));
    let d = deal(&s, "Bell");
    let queued = send(
        &s,
        &d,
        json!({"to": ["buyer@example.com"], "subject": "At once", "text": "Hello."}),
    );
    assert_eq!(queued["status"], "queued");
    assert_eq!(sink.next().header("Subject").unwrap(), "At once");
}

/// An idle server writes nothing: its workers look for work with reads, and only take the
/// write lock when there is some (the sender used to commit twice a second for nothing).
#[test]
fn an_idle_server_commits_nothing() {
    let sink = SmtpSink::start();
    let s = server_with(&sink, |c| {
        c.email_poll = Duration::from_millis(1);
        c.webhook_poll = Duration::from_millis(1);
    });
    let before = s.state.db.commit_count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.state.db.commit_count(), before);
}

#[test]
fn inbound_samples_are_parsed_and_bad_ones_refused() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let d = deal(&s, "Müller GmbH");
    let address = s
        .post(
            &format!("/deals/{d}/email-inbox"),
            &k,
            json!({"username": "Mueller"}),
        )
        .data(201)["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(address, "mueller@inbox.clozup.localhost");
    let other = deal(&s, "Other");
    let taken = s.post(
        &format!("/deals/{other}/email-inbox"),
        &k,
        json!({"username": "mueller"}),
    );
    taken.error(409, "conflict");

    // Outlook, windows-1252, quoted-printable, encoded-word headers.
    let e = inbound(
        &s,
        &fixture("outlook_1252.eml", &address, ""),
        INBOUND_TOKEN,
    )
    .data(201);
    assert_eq!(e["from_name"], "René Müller");
    assert_eq!(e["subject"], "Angebot – Preis in €");
    assert_eq!(
        e["text"].as_str().unwrap().trim_end(),
        "Grüße, der Preis von 5.000 € passt. Café am Montag?\r\n\r\nRené"
    );
    assert_eq!(e["headers"]["x-mailer"], "Microsoft Outlook 16.0");
    assert!(e["html"].is_null());

    // An attachment: metadata kept.
    let e = inbound(&s, &fixture("attachment.eml", &address, ""), INBOUND_TOKEN).data(201);
    assert_eq!(
        e["attachments"],
        json!([{"filename": "contract.pdf", "content_type": "application/pdf", "size": 1009}])
    );
    assert_eq!(e["text"].as_str().unwrap().trim(), "Contract attached.");

    // Refusals: nothing stored by any of them.
    let before = s.count("SELECT COUNT(*) FROM emails");
    inbound(&s, &fixture("malformed.eml", &address, ""), INBOUND_TOKEN)
        .error(422, "validation_error");
    let unknown = fixture("attachment.eml", "nobody@inbox.clozup.localhost", "");
    let unknown = String::from_utf8(unknown)
        .unwrap()
        .replace("contract-1@", "contract-2@");
    inbound(&s, unknown.as_bytes(), INBOUND_TOKEN).error(404, "not_found");
    inbound(&s, &fixture("attachment.eml", &address, ""), "wrong-token").error(401, "unauthorized");
    inbound(&s, &fixture("attachment.eml", &address, ""), &k).error(401, "unauthorized");
    // Garbage and a message to no one are malformed (422), not unroutable (404).
    let e = inbound(&s, b"\x00\x01garbage\xff bytes", INBOUND_TOKEN).error(422, "validation_error");
    assert!(
        e["message"].as_str().unwrap().contains("header field"),
        "{e}"
    );
    let e = inbound(
        &s,
        b"From: a@x.test\r\nSubject: hi\r\n\r\nhello",
        INBOUND_TOKEN,
    )
    .error(422, "validation_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("names no recipient"),
        "{e}"
    );
    // A body of another media type: the message names the one this route takes.
    let e = s
        .call(
            "POST",
            "/inbound/email",
            Some(INBOUND_TOKEN),
            Some(b"{}"),
            &[("content-type", "application/json")],
        )
        .error(415, "unsupported_media_type");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .ends_with("send message/rfc822"),
        "{e}"
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM emails"), before);
}

#[test]
fn a_message_to_two_deal_inboxes_lands_on_both() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let (a, b) = (deal(&s, "Alpha"), deal(&s, "Beta"));
    let address = |d: &str, name: &str| {
        s.post(
            &format!("/deals/{d}/email-inbox"),
            &k,
            json!({"username": name}),
        )
        .data(201)["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (alpha, beta) = (address(&a, "alpha"), address(&b, "beta"));
    let message = |delivered_to: &str, id: &str| {
        format!(
            "{delivered_to}From: Buyer <buyer@client.test>\r\nTo: {alpha}, {beta}\r\n\
             Subject: Both of you\r\nMessage-ID: <{id}@client.test>\r\n\r\nHello both.\r\n"
        )
    };
    let on = |d: &str| {
        s.get(&format!("/deals/{d}/emails?direction=inbound"), &k)
            .data(200)
            .as_array()
            .unwrap()
            .len()
    };
    // As Postfix delivers it: once per recipient, each copy naming its own in Delivered-To.
    inbound(
        &s,
        message(&format!("Delivered-To: {alpha}\r\n"), "one").as_bytes(),
        INBOUND_TOKEN,
    )
    .data(201);
    inbound(
        &s,
        message(&format!("Delivered-To: {beta}\r\n"), "one").as_bytes(),
        INBOUND_TOKEN,
    )
    .data(201);
    assert_eq!((on(&a), on(&b)), (1, 1));
    // Delivered again to the first: nothing new anywhere.
    inbound(
        &s,
        message(&format!("Delivered-To: {alpha}\r\n"), "one").as_bytes(),
        INBOUND_TOKEN,
    )
    .data(200);
    assert_eq!((on(&a), on(&b)), (1, 1));
    // One delivery without an envelope header: stored on every inbox it names, once.
    inbound(&s, message("", "two").as_bytes(), INBOUND_TOKEN).data(201);
    inbound(&s, message("", "two").as_bytes(), INBOUND_TOKEN).data(200);
    assert_eq!((on(&a), on(&b)), (2, 2));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM events WHERE type = 'email.received'"),
        4
    );
}

#[test]
fn temporary_refusals_are_retried_and_permanent_ones_fail() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let d = deal(&s, "Retry");
    sink.refuse(&["451 4.3.0 try again later", "421 4.7.0 busy"]);
    let e = send(
        &s,
        &d,
        json!({"to": ["a@example.com"], "subject": "Hi", "text": "Hello"}),
    );
    let id = e["id"].as_str().unwrap();
    // Retries come due on the server's clock: move it along while waiting.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mail = loop {
        if let Some(m) = sink.within(Duration::from_millis(20)) {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "never sent");
        s.clock.advance(1000);
    };
    assert_eq!(mail.header("Subject").unwrap(), "Hi");
    let sent = wait_status(&s, &d, id, "sent");
    assert_eq!(sent["attempts"], 3);
    assert!(sink.nothing_within(Duration::from_millis(200)), "sent once");

    sink.refuse(&["550 5.1.1 no such user"]);
    let e = send(
        &s,
        &d,
        json!({"to": ["gone@example.com"], "subject": "Hi", "text": "Hello"}),
    );
    let failed = wait_status(&s, &d, e["id"].as_str().unwrap(), "failed");
    assert_eq!(failed["attempts"], 1);
    assert!(failed["last_error"]
        .as_str()
        .unwrap()
        .contains("no such user"));
    let log = s.get("/events/log?types=email.failed", &k).data(200);
    assert_eq!(log.as_array().unwrap().len(), 1);

    // Bad requests are refused whole.
    s.post(
        &format!("/deals/{d}/emails/send"),
        &k,
        json!({"to": [], "subject": "x", "text": "y"}),
    )
    .error(422, "validation_error");
    s.post(
        &format!("/deals/{d}/emails/send"),
        &k,
        json!({"to": ["not-an-address"], "subject": "x", "text": "y"}),
    )
    .error(422, "validation_error");
    let read = s.key_with(&["read"]);
    s.post(
        &format!("/deals/{d}/emails/send"),
        &read,
        json!({"to": ["a@example.com"], "subject": "x", "text": "y"}),
    )
    .error(403, "forbidden");
}

#[test]
fn health_names_the_transport() {
    let s = TestServer::start();
    let h: Value = serde_json::from_str(&s.call("GET", "/health", None, None, &[]).body).unwrap();
    assert_eq!(h["email"]["transport"], "log");
    assert_eq!(h["email"]["inbound"], false);
    // With the log transport, a message is recorded as sent.
    let d = deal(&s, "Offline demo");
    let e = send(
        &s,
        &d,
        json!({"to": ["a@example.com"], "subject": "Hi", "text": "Hello"}),
    );
    wait_status(&s, &d, e["id"].as_str().unwrap(), "sent");
    // And without an inbound token, inbound mail is refused.
    inbound(&s, b"From: a@b.test\r\nTo: x@y.test\r\n\r\nhi", "anything").error(401, "unauthorized");
}

#[test]
fn mail_still_queued_when_the_server_is_killed_is_sent_after_restart_once_each() {
    use common::binary::serve;
    let sink = SmtpSink::start();
    let dir = common::TempDir::new();
    let db = dir.path().join("mail.sqlite");
    let key_file = dir.path().join("admin.key");
    let args = |smtp_url: &str| {
        vec![
            "--admin-key-file".to_string(),
            key_file.to_str().unwrap().to_string(),
            "--smtp-url".to_string(),
            smtp_url.to_string(),
            "--email-poll".to_string(),
            "20ms".to_string(),
        ]
    };
    // The first server's SMTP server takes the connection and never answers: its sender waits
    // on the first message (`sending`), and the others stay queued behind it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first_args = args(&format!("smtp://{}", silent.local_addr().unwrap()));
    let mut first = serve(
        &db,
        &first_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let post = |addr: &str, path: &str, body: Value| common::binary::post(addr, path, &key, body);
    let (status, d) = post(&first.addr, "/deals", json!({"title": "Queued"}));
    assert_eq!(status, 201);
    let d = d["id"].as_str().unwrap().to_string();
    let mut ids: Vec<String> = (0..3)
        .map(|i| {
            let (status, e) = post(
                &first.addr,
                &format!("/deals/{d}/emails/send"),
                json!({"to": ["a@example.com"], "subject": format!("Queued {i}"), "text": "Hello"}),
            );
            assert_eq!(status, 202);
            assert_eq!(e["status"], "queued");
            format!("<{}>", e["message_id"].as_str().unwrap())
        })
        .collect();
    assert!(sink.nothing_within(Duration::from_millis(300)));
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second_args = args(&sink.url);
    let _second = serve(
        &db,
        &second_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut got: Vec<String> = (0..3)
        .map(|_| sink.next().header("Message-ID").unwrap())
        .collect();
    assert!(
        sink.nothing_within(Duration::from_millis(500)),
        "each message went once"
    );
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
}

/// Issue 21 point 13: a reply's `References` is the parent's `References` (or, when the parent
/// has none, its `In-Reply-To`) followed by the parent's `Message-ID` (RFC 5322 3.6.4), so the
/// whole thread travels with every message, three replies deep.
#[test]
fn replies_carry_the_whole_thread_in_references() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let d = deal(&s, "Thread depth");
    let inbox = s
        .post(&format!("/deals/{d}/email-inbox"), &k, json!({}))
        .data(201);
    let address = inbox["address"].as_str().unwrap().to_string();
    let first = send(
        &s,
        &d,
        json!({"to": ["buyer@example.com"], "subject": "Terms", "text": "Our terms."}),
    );
    let first_id = first["message_id"].as_str().unwrap().to_string();
    sink.next();
    // The buyer's client sends In-Reply-To only, as Outlook on a phone does.
    let raw = format!(
        "From: Bea <buyer@example.com>\r\nTo: {address}\r\nSubject: Re: Terms\r\n\
         Message-ID: <answer-1@example.com>\r\nIn-Reply-To: <{first_id}>\r\n\
         Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nLooks fine.\r\n"
    );
    let answer = inbound(&s, raw.as_bytes(), INBOUND_TOKEN).data(201);
    assert_eq!(answer["references"], json!([]));
    let ours = s
        .post(
            &format!("/deals/{d}/emails/reply/{}", answer["id"].as_str().unwrap()),
            &k,
            json!({"text": "Great."}),
        )
        .data(202);
    assert_eq!(
        ours["references"],
        json!([first_id, "answer-1@example.com"]),
        "the parent's In-Reply-To stands in for its missing References"
    );
    let mail = sink.next();
    assert_eq!(
        mail.header("References").unwrap(),
        format!("<{first_id}> <answer-1@example.com>")
    );
    // A reply to our own reply keeps the chain and adds its parent.
    let again = s
        .post(
            &format!("/deals/{d}/emails/reply/{}", ours["id"].as_str().unwrap()),
            &k,
            json!({"text": "One more thing."}),
        )
        .data(202);
    let ours_id = ours["message_id"].as_str().unwrap();
    assert_eq!(
        again["references"],
        json!([first_id, "answer-1@example.com", ours_id])
    );
    assert_eq!(again["in_reply_to"], ours_id);
    assert_eq!(
        sink.next().header("References").unwrap(),
        format!("<{first_id}> <answer-1@example.com> <{ours_id}>")
    );
}

/// Issue 21 point 6: the lead 360 shows the whole relationship, everything recorded on the
/// lead's deals included (activities, notes, tasks, emails both ways), each with the deal it
/// belongs to, with totals and a `truncated` flag; the buyer's email moves the lead's
/// `last_activity_at`.
#[test]
fn the_lead_360_shows_what_happened_on_its_deals() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let lead = s
        .post(
            "/leads",
            &k,
            json!({"email": "buyer@example.com", "first_name": "Bea"}),
        )
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = s
        .post(
            "/deals",
            &k,
            json!({"title": "Bea's renewal", "lead_id": lead}),
        )
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = deal(&s, "Someone else's deal");
    let inbox = s
        .post(&format!("/deals/{d}/email-inbox"), &k, json!({}))
        .data(201);
    let address = inbox["address"].as_str().unwrap().to_string();
    let sent = send(
        &s,
        &d,
        json!({"to": ["buyer@example.com"], "subject": "Renewal", "text": "Shall we renew?"}),
    );
    sink.next();
    s.post(
        "/notes",
        &k,
        json!({"content": "On the deal", "deal_id": d}),
    )
    .data(201);
    s.post(
        "/notes",
        &k,
        json!({"content": "On the lead", "lead_id": lead}),
    )
    .data(201);
    s.post(
        "/notes",
        &k,
        json!({"content": "Elsewhere", "deal_id": other}),
    )
    .data(201);
    s.post(
        "/tasks",
        &k,
        json!({"title": "Send the order form", "deal_id": d}),
    )
    .data(201);
    s.post("/activities", &k, json!({"type": "call", "deal_id": d}))
        .data(201);
    s.post("/activities", &k, json!({"type": "call", "deal_id": other}))
        .data(201);

    // Two days later the buyer answers.
    s.clock.advance(2 * 86_400_000);
    let raw = format!(
        "From: Bea <buyer@example.com>\r\nTo: {address}\r\nSubject: Re: Renewal\r\n\
         Message-ID: <renew-1@example.com>\r\nIn-Reply-To: <{}>\r\n\
         Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nYes, let's renew.\r\n",
        sent["message_id"].as_str().unwrap()
    );
    let received = inbound(&s, raw.as_bytes(), INBOUND_TOKEN).data(201);
    let now = clozup::timefmt::format_ms(s.clock_now());

    let view = s.get(&format!("/leads/{lead}/360"), &k).data(200);
    assert_eq!(
        view["lead"]["last_activity_at"],
        now.as_str(),
        "the reply counts"
    );
    let deal_of = |list: &str| -> Vec<Value> {
        view[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["deal_id"].clone())
            .collect()
    };
    // Newest first: the reply, then our call, then the message we sent.
    let kinds: Vec<&str> = view["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "email_received", "{kinds:?}");
    assert!(
        kinds.contains(&"call") && kinds.contains(&"email_sent"),
        "{kinds:?}"
    );
    assert!(deal_of("activities").iter().all(|x| x == d.as_str()));
    assert_eq!(deal_of("calls"), vec![json!(d)]);
    let mut note_deals = deal_of("notes");
    note_deals.sort_by_key(|v| v.to_string());
    assert_eq!(
        note_deals,
        vec![json!(d), Value::Null],
        "not the other deal's"
    );
    assert_eq!(deal_of("tasks"), vec![json!(d)]);
    let emails = view["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[0]["id"], received["id"]);
    assert_eq!(emails[0]["direction"], "inbound");
    assert_eq!(emails[1]["id"], sent["id"]);
    assert_eq!(
        view["totals"],
        json!({"deals": 1, "activities": kinds.len(), "calls": 1, "notes": 2, "tasks": 1,
               "emails": 2, "signals": view["signals"].as_array().unwrap().len()})
    );
    assert_eq!(view["truncated"], false);

    // Past the cap, the list holds 100 and says so.
    for i in 0..100 {
        s.post(
            "/notes",
            &k,
            json!({"content": format!("note {i}"), "lead_id": lead}),
        )
        .data(201);
    }
    let view = s.get(&format!("/leads/{lead}/360"), &k).data(200);
    assert_eq!(view["notes"].as_array().unwrap().len(), 100);
    assert_eq!(view["totals"]["notes"], 102);
    assert_eq!(view["truncated"], true);
}

/// The bounce fixture (a Postfix delivery status notification) for `bounced` failing with
/// `action` and `status`, about message `original`, delivered to `inbox`.
pub(crate) fn bounce(
    inbox: &str,
    bounced: &str,
    action: &str,
    status: &str,
    original: &str,
) -> Vec<u8> {
    std::fs::read_to_string("tests/fixtures/email/bounce_postfix.eml")
        .unwrap()
        .replace("{INBOX}", inbox)
        .replace("{BOUNCED}", bounced)
        .replace("{ACTION}", action)
        .replace("{STATUS}", status)
        .replace("{IN_REPLY_TO}", original)
        .into_bytes()
}

#[test]
fn a_bounce_suppresses_the_address_and_fails_the_message_without_counting_as_a_reply() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let d = deal(&s, "Engines");
    let inbox = s
        .post(&format!("/deals/{d}/email-inbox"), &k, json!({}))
        .data(201);
    let address = inbox["address"].as_str().unwrap().to_string();
    let queued = send(
        &s,
        &d,
        json!({"to": ["ada@engines.test"], "subject": "Pricing", "text": "Hello"}),
    );
    let id = queued["id"].as_str().unwrap().to_string();
    wait_status(&s, &d, &id, "sent");
    let message_id = queued["message_id"].as_str().unwrap().to_string();
    let activities = "SELECT COUNT(*) FROM activities WHERE type = 'email_received'";

    // A delay suppresses no one and fails nothing.
    inbound(
        &s,
        &bounce(
            &address,
            "ada@engines.test",
            "delayed",
            "4.4.1",
            &message_id,
        ),
        INBOUND_TOKEN,
    )
    .data(201);
    assert_eq!(s.count("SELECT COUNT(*) FROM suppressions"), 0);

    // The recipient's server says the mailbox does not exist.
    // (A report of its own: another Message-ID than the delay's.)
    let raw = String::from_utf8(bounce(
        &address,
        "ada@engines.test",
        "failed",
        "5.1.1",
        &message_id,
    ))
    .unwrap()
    .replace("20261202101503.4F1A2B3C4D", "20261202101600.5A6B7C8D9E")
    .into_bytes();
    let report = inbound(&s, &raw, INBOUND_TOKEN).data(201);
    assert_eq!(
        report["thread_id"], queued["thread_id"],
        "the report joins the thread of the message it reports on"
    );
    let entry = &s.get("/suppressions?email=ada@engines.test", &k).data(200)[0];
    assert_eq!(entry["reason"], "bounced");
    assert!(entry["note"].as_str().unwrap().contains("5.1.1"), "{entry}");
    assert_eq!(entry["created_by"], Value::Null);
    let failed = s.get(&format!("/deals/{d}/emails/{id}"), &k).data(200);
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .starts_with("bounced by the recipient's server: 5.1.1 (550 5.1.1"),
        "{failed}"
    );
    let log = s.get("/events/log?types=email.failed", &k).data(200);
    assert_eq!(log[0]["data"]["object"]["id"], id.as_str());
    // A report is no word from the lead: no activity, no reply signal.
    assert_eq!(s.count(activities), 0);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM signals WHERE type = 'email_replied'"),
        0
    );
    // The same report again changes nothing; the address is not written to again.
    let events = s.count("SELECT COUNT(*) FROM events");
    inbound(&s, &raw, INBOUND_TOKEN).data(200);
    assert_eq!(s.count("SELECT COUNT(*) FROM events"), events);
    let e = s
        .post(
            &format!("/deals/{d}/emails/send"),
            &k,
            json!({"to": ["ada@engines.test"], "subject": "Again", "text": "Hello?"}),
        )
        .error(422, "validation_error");
    assert!(
        e["details"][0]["issue"]
            .as_str()
            .unwrap()
            .starts_with("is suppressed: ada@engines.test (bounced since "),
        "{e}"
    );
}

#[test]
fn a_message_waiting_for_a_retry_is_not_sent_to_an_address_suppressed_meanwhile() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let d = deal(&s, "Retry");
    sink.refuse(&["451 4.3.0 try again later"]);
    let e = send(
        &s,
        &d,
        json!({"to": ["ada@engines.test"], "subject": "Hi", "text": "Hello"}),
    );
    let id = e["id"].as_str().unwrap();
    // The first attempt is refused for now; the retry waits on the server's clock.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e = s.get(&format!("/deals/{d}/emails/{id}"), &k).data(200);
        if e["attempts"] == 1 && e["status"] == "queued" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no first attempt: {e}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    s.post(
        "/suppressions",
        &k,
        json!({"email": "ADA@engines.test", "reason": "unsubscribed"}),
    )
    .data(201);
    let failed = wait_status(&s, &d, id, "failed");
    assert_eq!(failed["attempts"], 1, "no second attempt");
    assert_eq!(
        failed["last_error"],
        "not sent: ADA@engines.test was suppressed (unsubscribed) before it went out"
    );
    assert!(
        sink.nothing_within(Duration::from_millis(200)),
        "never sent"
    );
}

#[test]
fn one_click_unsubscribe_suppresses_the_recipient_and_opening_the_link_does_not() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let d = deal(&s, "Newsletter");
    // The link unsubscribes one person, so a message with it goes to one.
    let e = s
        .post(
            &format!("/deals/{d}/emails/send"),
            &k,
            json!({"to": ["ada@engines.test"], "cc": ["bob@engines.test"], "subject": "News",
                   "text": "Hi", "unsubscribe_link": true}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "unsubscribe_link");
    let queued = send(
        &s,
        &d,
        json!({"to": ["ada@engines.test"], "subject": "News", "text": "Hi Ada",
               "html": "<html><body><p>Hi Ada</p></body></html>", "unsubscribe_link": true}),
    );
    assert_eq!(queued["unsubscribe_link"], true);
    let mail = sink.next();
    let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let url = header
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    assert!(url.starts_with("http://crm.test/u/u"), "{url}");
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let body = body_of(&mail);
    assert!(body.contains(&format!("Unsubscribe: {url}")), "text line");
    assert!(
        body.contains(&format!("<a href=\"{url}\">Unsubscribe</a></p>")),
        "html line"
    );
    let path = url.trim_start_matches("http://crm.test");

    // Opening the link (as a mail scanner does) shows a button and changes nothing.
    let opened = s.call("GET", path, None, None, &[]);
    assert_eq!(opened.status, 200);
    assert!(
        opened.body.contains("<b>ada@engines.test</b>"),
        "{}",
        opened.body
    );
    assert!(
        opened.body.contains("<form method=\"post\">"),
        "{}",
        opened.body
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM suppressions"), 0);

    // The mail client's one-click POST (RFC 8058), without any credential.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let done = s.call(
        "POST",
        path,
        None,
        Some(b"List-Unsubscribe=One-Click"),
        &form,
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let entry = &s.get("/suppressions?email=ada@engines.test", &k).data(200)[0];
    assert_eq!(entry["reason"], "unsubscribed");
    assert!(entry["note"].as_str().unwrap().starts_with(&format!(
        "one-click unsubscribe from {}",
        queued["id"].as_str().unwrap()
    )));
    // Again: the same answer, nothing new.
    let events = s.count("SELECT COUNT(*) FROM events");
    assert_eq!(
        s.call(
            "POST",
            path,
            None,
            Some(b"List-Unsubscribe=One-Click"),
            &form
        )
        .status,
        200
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM events"), events);
    // A link this server never sent.
    let unknown = s.call(
        "POST",
        "/u/u00000000000000000000000000000000",
        None,
        None,
        &[],
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(s.count("SELECT COUNT(*) FROM suppressions"), 1);
    send(
        &s,
        &d,
        json!({"to": ["bob@engines.test"], "subject": "Still fine", "text": "Hi Bob"}),
    );
    s.post(
        &format!("/deals/{d}/emails/send"),
        &k,
        json!({"to": ["ada@engines.test"], "subject": "News", "text": "Hi again"}),
    )
    .error(422, "validation_error");
}

#[test]
fn a_template_sends_to_the_deals_lead_rendered_for_them() {
    let sink = SmtpSink::start();
    let s = server(&sink);
    let k = s.admin_key.clone();
    let company = s
        .post("/companies", &k, json!({"name": "Babbage & Sons"}))
        .data(201);
    let lead = s
        .post(
            "/leads",
            &k,
            json!({"first_name": "Ada", "email": "ada@engines.test", "company_id": company["id"]}),
        )
        .data(201);
    let d = s
        .post(
            "/deals",
            &k,
            json!({"title": "Engine", "lead_id": lead["id"]}),
        )
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let html_only = s
        .post(
            "/email-templates",
            &k,
            json!({"name": "Intro", "subject": "{{ company.name }}: {{ deal.title }}",
                   "html_body": "<p>Hi {{ lead.first_name }},</p><p>about {{ company.name }}</p>"}),
        )
        .data(201);
    let sent = s
        .post(
            &format!("/deals/{d}/emails/send-template"),
            &k,
            json!({"template_id": html_only["id"]}),
        )
        .data(202);
    assert_eq!(sent["to"], json!(["ada@engines.test"]), "the deal's lead");
    assert_eq!(sent["subject"], "Babbage & Sons: Engine");
    assert_eq!(sent["text"], "Hi Ada,\n\nabout Babbage & Sons");
    let mail = sink.next();
    assert_eq!(mail.header("Subject").unwrap(), "Babbage & Sons: Engine");
    assert!(
        body_of(&mail).contains("<p>about Babbage &amp; Sons</p>"),
        "HTML escaped"
    );

    // A field with no value and no fallback: nothing is queued, the part and field are named.
    let strict = s
        .post(
            "/email-templates",
            &k,
            json!({"name": "Strict", "subject": "Hi", "text_body": "Call {{ lead.phone }}"}),
        )
        .data(201);
    let before = s.count("SELECT COUNT(*) FROM emails");
    let e = s
        .post(
            &format!("/deals/{d}/emails/send-template"),
            &k,
            json!({"template_id": strict["id"]}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "text_body");
    assert!(
        e["message"].as_str().unwrap().contains("`lead.phone`"),
        "{e}"
    );
    let e = s
        .post(
            &format!("/deals/{d}/emails/send-template"),
            &k,
            json!({"template_id": "tpl_00000000000000000000000000"}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "template_id");
    // A deal without a lead has no one to default to.
    let alone = deal(&s, "No lead");
    let e = s
        .post(
            &format!("/deals/{alone}/emails/send-template"),
            &k,
            json!({"template_id": strict["id"], "to": []}),
        )
        .error(422, "validation_error");
    assert_eq!(
        e["details"][0]["field"], "text_body",
        "rendered before the recipients"
    );
    let plain = s
        .post(
            "/email-templates",
            &k,
            json!({"name": "Plain", "subject": "Hello", "text_body": "Hello {{ lead.first_name | default('there') }}"}),
        )
        .data(201);
    let e = s
        .post(
            &format!("/deals/{alone}/emails/send-template"),
            &k,
            json!({"template_id": plain["id"]}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "to");
    // Its recipients are held to the same rules as a send's, by their type.
    let e = s
        .post(
            &format!("/deals/{alone}/emails/send-template"),
            &k,
            json!({"template_id": plain["id"], "to": ["bob@engines.test"], "cc": ["not an address"]}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "cc[0]", "{e}");
    assert_eq!(s.count("SELECT COUNT(*) FROM emails"), before);
    let to_bob = s
        .post(
            &format!("/deals/{alone}/emails/send-template"),
            &k,
            json!({"template_id": plain["id"], "to": ["bob@engines.test"]}),
        )
        .data(202);
    assert_eq!(to_bob["text"], "Hello there");
}
