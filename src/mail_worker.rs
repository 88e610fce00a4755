//! Mail in and out: the sender that works through queued messages after their transaction has
//! committed (SMTP through lettre, or the `log` transport), MIME building for outbound mail
//! with the tracking pixel, and MIME parsing of inbound mail (mail-parser).

use crate::domain::nullable::Nullable;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Message, Transport as _};
use mail_parser::{MessageParser, MimeHeaders};

use crate::domain::email::{self, Attachment, Attempt, Bounce, Failure, Outbound, Parsed};
use crate::state::AppState;

/// Messages claimed per round.
const BATCH: usize = 16;
/// Longest attachment file name kept, in characters.
const MAX_FILENAME: usize = 255;

pub use crate::config::Transport;

/// The HTML with the open-tracking pixel added before `</body>` (or at the end).
fn with_pixel(html: &str, pixel_url: &str) -> String {
    let img = format!(
        "<img src=\"{pixel_url}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">"
    );
    before_body_end(html, &img)
}

/// The HTML with `addition` before `</body>` (or at the end).
fn before_body_end(html: &str, addition: &str) -> String {
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{addition}{}", &html[..at], &html[at..]),
        None => format!("{html}{addition}"),
    }
}

/// Builds the RFC 5322 message for a queued row.
pub fn build(job: &Outbound, public_url: &str) -> Result<Message, String> {
    let e = &job.email;
    let mailbox = |address: &str, name: Option<&String>| -> Result<Mailbox, String> {
        let addr = address
            .parse()
            .map_err(|err| format!("bad address {address}: {err}"))?;
        Ok(Mailbox::new(name.cloned(), addr))
    };
    let mut b = Message::builder()
        .from(mailbox(&e.from, e.from_name.as_ref())?)
        .subject(e.subject.clone())
        .message_id(Some(format!("<{}>", e.message_id)))
        .date(SystemTime::UNIX_EPOCH + Duration::from_millis(e.created_at.0.max(0) as u64));
    for to in &e.to {
        b = b.to(mailbox(to, None)?);
    }
    for cc in &e.cc {
        b = b.cc(mailbox(cc, None)?);
    }
    for bcc in &e.bcc {
        b = b.bcc(mailbox(bcc, None)?);
    }
    if let Nullable(Some(parent)) = &e.in_reply_to {
        b = b.in_reply_to(format!("<{parent}>"));
    }
    if !e.references.is_empty() {
        let chain: Vec<String> = e.references.iter().map(|r| format!("<{r}>")).collect();
        b = b.references(chain.join(" "));
    }
    let mut text = e.text.0.clone().unwrap_or_default();
    let mut html = e.html.0.clone();
    if let Some(token) = &job.unsubscribe_token {
        // RFC 8058: the link, and the one-click POST that mail clients send to it.
        let url = format!("{public_url}/u/{token}");
        b = b
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
        text.push_str(&format!("\n\n--\nUnsubscribe: {url}\n"));
        html = html.map(|h| {
            let line = format!(
                "<p style=\"font-size:12px;color:#777\"><a href=\"{url}\">Unsubscribe</a></p>"
            );
            before_body_end(&h, &line)
        });
    }
    let built = match &html {
        Some(html) => {
            let html = match &job.open_token {
                Some(token) => with_pixel(html, &format!("{public_url}/t/{token}")),
                None => html.clone(),
            };
            b.multipart(MultiPart::alternative_plain_html(text, html))
        }
        None => b.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text),
        ),
    };
    built.map_err(|err| format!("cannot build the message: {err}"))
}

/// One attempt at sending `job`, and what to record about it.
fn attempt(
    transport: &Transport,
    job: &Outbound,
    public_url: &str,
    schedule: &[Duration],
) -> Attempt {
    let message = match build(job, public_url) {
        Ok(m) => m,
        Err(e) => return Attempt::Failed(e),
    };
    let result = match transport {
        Transport::Log => {
            tracing::info!(
                email = %job.email.id,
                to = %job.email.to.join(", "),
                subject = %job.email.subject,
                bytes = message.formatted().len(),
                "email (log transport: not sent anywhere)"
            );
            return Attempt::Sent;
        }
        Transport::Smtp(smtp) => smtp.send(&message),
    };
    match result {
        Ok(_) => Attempt::Sent,
        Err(e) => {
            let error = e.to_string();
            // `attempts` already counts this one; retries run out with the schedule.
            let retry = schedule.get((job.email.attempts - 1).max(0) as usize);
            match retry {
                Some(delay) if !e.is_permanent() => Attempt::Retry(error, *delay),
                _ => Attempt::Failed(error),
            }
        }
    }
}

/// Runs the sender until shutdown on its own thread. Messages a stopped server left `sending`
/// are queued again first.
pub fn spawn(state: Arc<AppState>, transport: Transport) {
    std::thread::spawn(move || {
        if let Err(e) = state.db.blocking().write(email::requeue_interrupted) {
            tracing::warn!("could not requeue interrupted emails: {e}");
        }
        let public_url = state.config.public_url();
        loop {
            if state.shutdown.is_triggered() {
                return;
            }
            let now = state.clock.now_ms();
            let seen = state.db.work_queued();
            let jobs = state
                .db
                .blocking()
                .read(|c| email::any_due(c, now))
                .and_then(|due| {
                    if due {
                        state.db.blocking().write(|tx| email::claim(tx, BATCH, now))
                    } else {
                        Ok(Vec::new())
                    }
                })
                .unwrap_or_else(|e| {
                    tracing::warn!("email sender could not claim messages: {e}");
                    Vec::new()
                });
            if jobs.is_empty() {
                // Idle: until a commit queues a message, or the poll (retries coming due).
                state.db.wait_for_work(seen, state.config.email_poll);
                continue;
            }
            for job in jobs {
                let outcome = attempt(
                    &transport,
                    &job,
                    &public_url,
                    &state.config.email_retry_schedule,
                );
                let labels = crate::metrics::EmailLabels {
                    kind: if job.email.enrollment_id.is_some() {
                        "campaign"
                    } else {
                        "inbox"
                    },
                    outcome: match outcome {
                        email::Attempt::Sent => "sent",
                        email::Attempt::Retry(..) => "retry",
                        email::Attempt::Failed(_) => "failed",
                    },
                };
                crate::metrics::get()
                    .email_attempts
                    .get_or_create(&labels)
                    .inc();
                let now = state.clock.now_ms();
                if let Err(e) = state
                    .db
                    .blocking()
                    .write(|tx| email::record_attempt(tx, &job, outcome, now))
                {
                    tracing::warn!("could not record email {}: {e}", job.email.id);
                }
            }
        }
    });
}

/// What an inbound message must look like to be read at all, as the document states it: it
/// starts with a header field (`Name: value`). `parse_inbound` refuses what has no headers.
pub const INBOUND_PATTERN: &str = "^[!-9;-~]+:";

/// Why an inbound message was refused.
#[derive(Debug)]
pub struct Malformed(pub String);

/// Parses a raw RFC 5322 message: headers, bodies in any charset and transfer encoding,
/// attachments' metadata. A message without a sender or any recipient is refused.
pub fn parse_inbound(raw: &[u8]) -> Result<Parsed, Malformed> {
    // INBOUND_PATTERN, without a regex: a field name of printable characters but `:`, then `:`.
    let name = raw
        .iter()
        .take_while(|b| (b'!'..=b'~').contains(*b) && **b != b':')
        .count();
    if name == 0 || raw.get(name) != Some(&b':') {
        return Err(Malformed(
            "is not an RFC 5322 message: it does not start with a header field (`Name: value`)"
                .into(),
        ));
    }
    let Some(m) = MessageParser::default().parse(raw) else {
        return Err(Malformed("is not an RFC 5322 message".into()));
    };
    if m.headers().is_empty() {
        return Err(Malformed(
            "is not an RFC 5322 message: it has no headers".into(),
        ));
    }
    // A message without a sender is well formed; `receive` refuses it once it is routed (a
    // 422; a message to no inbox of this server is a 404 first).
    let from = m
        .from()
        .and_then(|a| a.first())
        .filter(|a| a.address().is_some());
    let addresses = |list: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        list.map(|a| {
            a.iter()
                .filter_map(|x| x.address())
                .map(|x| x.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
    };
    let to = addresses(m.to());
    let cc = addresses(m.cc());
    // The address this copy was delivered to, which the mail server adds: a message to several
    // inboxes arrives once per recipient, each copy naming its own.
    let envelope: Vec<String> = ["Delivered-To", "X-Original-To"]
        .into_iter()
        .filter_map(|name| m.header_raw(name))
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
        .collect();
    let mut recipients: Vec<String> = to.iter().chain(&cc).cloned().collect();
    recipients.extend(addresses(m.bcc()));
    if envelope.is_empty() && recipients.is_empty() {
        return Err(Malformed(
            "names no recipient address (To, Cc, Bcc, Delivered-To or X-Original-To)".into(),
        ));
    }
    let ids = |v: &mail_parser::HeaderValue<'_>| -> Vec<String> {
        match v {
            mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let message_id = match m.message_id() {
        Some(id) if !id.trim().is_empty() => id.trim().to_string(),
        // No Message-ID: one derived from the content, so a retried post is still stored once.
        _ => format!(
            "{}@missing-message-id.invalid",
            &crate::secrets::sha256_hex(raw)[..32]
        ),
    };
    let mut headers = BTreeMap::new();
    if let Some(date) = m.date() {
        headers.insert("date".into(), date.to_rfc3339());
    }
    if let Some(r) = m
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
    {
        headers.insert("reply-to".into(), r.to_ascii_lowercase());
    }
    for name in [
        "List-Id",
        "Auto-Submitted",
        "Precedence",
        "X-Mailer",
        "User-Agent",
    ] {
        if let Some(v) = m.header_raw(name) {
            headers.insert(name.to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let attachments = m
        .attachments()
        .map(|a| Attachment {
            filename: Nullable(
                a.attachment_name()
                    .map(|n| n.chars().take(MAX_FILENAME).collect()),
            ),
            content_type: a
                .content_type()
                .map(|c| match c.subtype() {
                    Some(sub) => format!("{}/{}", c.ctype(), sub),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase(),
            size: a.contents().len() as i64,
        })
        .collect();
    Ok(Parsed {
        message_id,
        in_reply_to: ids(m.in_reply_to()).into_iter().next(),
        references: ids(m.references()),
        from: from
            .and_then(|f| f.address())
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
        from_name: from
            .and_then(|f| f.name())
            .map(str::to_string)
            .filter(|n| !n.is_empty()),
        envelope,
        recipients,
        to,
        cc,
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).map(|t| t.into_owned()),
        // Only a real text/html part: mail-parser would otherwise render the text as HTML.
        html: m
            .html_part(0)
            .filter(|p| p.is_content_type("text", "html"))
            .and_then(|p| p.text_contents())
            .map(str::to_string),
        headers,
        attachments,
        bounce: delivery_report(&m),
    })
}

/// What a delivery status notification (`multipart/report; report-type=delivery-status`,
/// RFC 3464) says, or `None` for any other message.
fn delivery_report(m: &mail_parser::Message<'_>) -> Option<Bounce> {
    let ct = m.content_type()?;
    let is_report = ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        && ct
            .attribute("report-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"));
    if !is_report {
        return None;
    }
    let mut bounce = Bounce::default();
    for part in &m.parts {
        let Some(pct) = part.content_type() else {
            continue;
        };
        let kind = (
            pct.ctype().to_ascii_lowercase(),
            pct.subtype().unwrap_or_default().to_ascii_lowercase(),
        );
        match (kind.0.as_str(), kind.1.as_str(), &part.body) {
            ("message", "delivery-status", _) => {
                bounce.failed = permanent_failures(&String::from_utf8_lossy(part.contents()));
            }
            // The returned message, whole or its headers only.
            (_, _, mail_parser::PartType::Message(returned)) => {
                bounce.original = returned.message_id().map(str::to_string);
            }
            ("text", "rfc822-headers", _) => {
                bounce.original = header_message_id(&String::from_utf8_lossy(part.contents()));
            }
            _ => {}
        }
    }
    Some(bounce)
}

/// The recipients a `message/delivery-status` body reports as failed for good: per-recipient
/// field groups (after the per-message group, blank-line separated, folded lines unfolded) with
/// `Action: failed` and a `5.x.x` `Status`.
fn permanent_failures(report: &str) -> Vec<Failure> {
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in report.lines() {
        let group = groups.last_mut().expect("one group at least");
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    groups
        .iter()
        .skip(1)
        .filter_map(|fields| {
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let failed = field("action").is_some_and(|a| a.eq_ignore_ascii_case("failed"));
            let status = field("status")?.split_whitespace().next()?.to_string();
            // `rfc822; ada@example.com`: the address after the type.
            let address = field("final-recipient")?
                .rsplit(';')
                .next()?
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_ascii_lowercase();
            (failed && status.starts_with('5') && address.contains('@')).then(|| Failure {
                address,
                status,
                diagnostic: field("diagnostic-code")
                    .map(|d| d.split_once(';').map_or(d, |(_, text)| text).trim())
                    .filter(|d| !d.is_empty())
                    .map(|d| d.chars().take(300).collect()),
            })
        })
        .collect()
}

/// The `Message-ID` in a block of returned headers, without angle brackets.
fn header_message_id(headers: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("message-id").then(|| {
            value
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// The 1×1 transparent GIF the tracking pixel answers with.
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pixel_goes_before_the_closing_body_tag() {
        assert_eq!(
            with_pixel("<html><BODY>Hi</BODY></html>", "http://x/t/o1"),
            "<html><BODY>Hi<img src=\"http://x/t/o1\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\"></BODY></html>"
        );
        assert!(with_pixel("<p>Hi</p>", "u").starts_with("<p>Hi</p><img src=\"u\""));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_parsed_or_refused_without_a_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..4000)) {
            if let Ok(m) = parse_inbound(&raw) {
                proptest::prop_assert!(!m.message_id.is_empty());
            }
        }

        #[test]
        fn headers_and_bodies_come_back_as_sent(
            subject in "[ -~]{0,60}",
            body in "[ -~]{1,200}",
            user in "[a-z]{1,10}",
        ) {
            let raw = format!(
                "From: {user}@example.com\r\nTo: deal@inbox.test\r\nSubject: {subject}\r\n\
                 Message-ID: <{user}@example.com>\r\n\r\n{body}\r\n"
            );
            let m = parse_inbound(raw.as_bytes()).unwrap();
            proptest::prop_assert_eq!(m.from, format!("{user}@example.com"));
            proptest::prop_assert_eq!(m.recipients, vec!["deal@inbox.test".to_string()]);
            proptest::prop_assert_eq!(m.subject.trim(), subject.trim());
            let text = m.text.unwrap_or_default();
            proptest::prop_assert_eq!(text.trim_end(), body.trim_end());
        }
    }

    proptest::proptest! {
        /// What the document calls a message (see INBOUND_PATTERN) is always read: refused, if
        /// at all, only for naming no recipient (a rule of its content, not of its form).
        #[test]
        fn whatever_starts_with_a_header_field_is_read(raw in "[!-9;-~]{1,30}:(.|\n){0,200}") {
            if let Err(Malformed(why)) = parse_inbound(raw.as_bytes()) {
                proptest::prop_assert!(why.starts_with("names no recipient"), "{raw:?}: {why}");
            }
        }
    }

    /// The bounce fixture with its placeholders filled in.
    fn report(action: &str, status: &str) -> Vec<u8> {
        std::fs::read_to_string("tests/fixtures/email/bounce_postfix.eml")
            .unwrap()
            .replace("{INBOX}", "deal@inbox.test")
            .replace("{BOUNCED}", "Ada@Engines.test")
            .replace("{ACTION}", action)
            .replace("{STATUS}", status)
            .replace("{IN_REPLY_TO}", "eml_1@inbox.test")
            .into_bytes()
    }

    #[test]
    fn a_delivery_report_names_its_permanent_failures_and_the_message_that_bounced() {
        let bounce = parse_inbound(&report("failed", "5.1.1"))
            .unwrap()
            .bounce
            .unwrap();
        assert_eq!(bounce.original.as_deref(), Some("eml_1@inbox.test"));
        assert_eq!(bounce.failed.len(), 1);
        let f = &bounce.failed[0];
        assert_eq!(
            (f.address.as_str(), f.status.as_str()),
            ("ada@engines.test", "5.1.1")
        );
        assert_eq!(
            f.diagnostic.as_deref(),
            Some(
                "550 5.1.1 <Ada@Engines.test>: Recipient address rejected: User unknown in \
                 virtual mailbox table"
            )
        );
        // A delay, or a temporary failure, suppresses no one.
        for (action, status) in [("delayed", "4.4.1"), ("failed", "4.2.2")] {
            let bounce = parse_inbound(&report(action, status))
                .unwrap()
                .bounce
                .unwrap();
            assert!(bounce.failed.is_empty(), "{action} {status}");
        }
        // Any other message is no report.
        let reply = b"From: a@b.test\r\nTo: deal@inbox.test\r\nSubject: Re\r\n\r\nFine\r\n";
        assert!(parse_inbound(reply).unwrap().bounce.is_none());
    }

    #[test]
    fn garbage_and_messages_to_no_one_are_refused_and_without_a_sender_are_read() {
        assert!(parse_inbound(b"").is_err());
        assert!(parse_inbound(b"this is not an email at all\njust some words\n").is_err());
        assert!(parse_inbound(b"\x00\xff\xfe: x\n").is_err());
        let no_from = parse_inbound(b"To: a@x.test\r\nSubject: hi\r\n\r\nbody").unwrap();
        assert_eq!(no_from.from, "");
        assert_eq!(no_from.recipients, vec!["a@x.test".to_string()]);
        let Err(Malformed(why)) = parse_inbound(b"From: a@x.test\r\nSubject: hi\r\n\r\nbody")
        else {
            panic!("a message to no one was read");
        };
        assert!(why.starts_with("names no recipient"), "{why}");
        let delivered =
            parse_inbound(b"Delivered-To: <B@x.test>\r\nFrom: a@x.test\r\n\r\nhi").unwrap();
        assert_eq!(delivered.envelope, vec!["b@x.test".to_string()]);
    }
}
