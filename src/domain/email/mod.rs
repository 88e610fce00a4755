//! Per-deal email: inboxes, outbound messages queued for the sender, replies threaded on the
//! original, inbound mail routed by recipient, and open tracking.
//!
//! Everything here runs inside the caller's transaction. Sending happens later, in
//! [`crate::mail_worker`], from the queued rows: a request never waits on an SMTP server.

use crate::domain::nullable::Nullable;
use std::collections::BTreeMap;

use crate::db::{CachedRow, Tx};
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::activities;
use super::auth::Principal;
use super::error::{DomainError, DomainResult, Issues};
use super::events::Actor;
use super::listing::{ListPage, Paging};
use super::terms::Term;
use super::validate;
use crate::clock::Millis;
use crate::domain::validate::EmailAddress;
use crate::ids::new_id;
use crate::shape::{List, Shaped};
use crate::timefmt::Timestamp;
pub use inbox::Username;

mod compose;
mod inbound;
mod inbox;
mod outbox;
pub use compose::{reply, send, send_template};
pub use compose::{send_for_campaign, CampaignMail};
pub use inbound::{
    receive, record_open, unsubscribe, unsubscribe_target, Bounce, Failure, Parsed, Received,
};
pub use inbox::{
    campaign_sender, ensure_inbox, get_inbox, inbox_of, open_campaign_inbox, rename_sender, Sender,
    USERNAME_PATTERN,
};
pub use outbox::{any_due, backlog, claim, record_attempt, requeue_interrupted, Attempt, Outbound};

/// Most addresses in each of to, cc and bcc.
pub const MAX_RECIPIENTS: usize = 50;
/// Longest text or html body accepted from the API, in characters: mail clients clip longer
/// messages (Gmail at about 102 KB), and a text and an html body this long still fit the
/// default 1 MiB request limit, so a schema-valid send is never a 413.
pub const MAX_BODY_CHARS: usize = 100_000;

/// Up to [`MAX_RECIPIENTS`] addresses.
pub type Recipients = List<EmailAddress, 0, MAX_RECIPIENTS>;

crate::text_shape!(
    /// A subject: one line of up to 998 characters (RFC 5322's line length).
    SubjectLine,
    0,
    998,
    Some("^[^\\r\\n]*$")
);

crate::text_shape!(
    /// A plain-text body: something besides whitespace, up to [`MAX_BODY_CHARS`] characters.
    BodyText,
    0,
    MAX_BODY_CHARS,
    Some(validate::NOT_BLANK_PATTERN)
);

/// A deal's inbox.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Inbox {
    /// `inb_...`
    pub id: String,
    /// The deal it belongs to.
    pub deal_id: String,
    /// `<username or deal slug>@<email domain>`: mail to it lands on the deal.
    pub address: String,
    /// The name outbound mail is sent under.
    pub display_name: Nullable<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Options for a new inbox.
#[derive(Debug, Clone, Default, Object)]
pub struct NewInbox {
    /// The address's local part (letters, digits, `.`, `_`, `-`; up to 64); defaults to a slug
    /// of the deal's title.
    #[oai(nullable)]
    pub username: Option<Shaped<Username>>,
    /// The name outbound mail is sent under (up to 200 characters).
    #[oai(validator(max_length = 200))]
    #[oai(nullable)]
    pub display_name: Option<String>,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent from the deal's inbox.
    Outbound,
    /// Received by the deal's inbox.
    Inbound,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Waiting for the sender (also between retries).
    Queued,
    /// Being handed to the SMTP server.
    Sending,
    /// Accepted by the SMTP server (or logged, with the `log` transport).
    Sent,
    /// Refused for good, or still refused after every retry; see `last_error`.
    Failed,
    /// An inbound message.
    Received,
}

/// An attachment's metadata (the content is not kept).
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The file name, if the message gave one.
    pub filename: Nullable<String>,
    /// Its MIME type.
    pub content_type: String,
    /// Its decoded size in bytes.
    pub size: i64,
}

/// One message in a deal's inbox.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Email {
    /// `eml_...`
    pub id: String,
    /// The deal whose inbox it is in (none for a campaign's message).
    pub deal_id: Nullable<String>,
    /// The lead it was sent to or came from, when known.
    pub lead_id: Nullable<String>,
    /// The campaign enrollment that sent it, or that its sender's reply stopped.
    pub enrollment_id: Nullable<String>,
    /// outbound or inbound.
    pub direction: Direction,
    /// queued, sending, sent, failed (outbound) or received (inbound).
    pub status: EmailStatus,
    /// The RFC 5322 `Message-ID`, without angle brackets.
    pub message_id: String,
    /// The conversation: replies share their original's thread.
    pub thread_id: String,
    /// The `Message-ID` this one answers.
    pub in_reply_to: Nullable<String>,
    /// The `References` chain, oldest first.
    pub references: Vec<String>,
    /// The sender's address.
    pub from: String,
    /// The sender's display name.
    pub from_name: Nullable<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Copied recipients.
    pub cc: Vec<String>,
    /// Blind-copied recipients (outbound only; never in the sent headers).
    pub bcc: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub text: Nullable<String>,
    /// The HTML body.
    pub html: Nullable<String>,
    /// Headers of interest (inbound): Date, Reply-To, List-Id, Auto-Submitted and the like.
    pub headers: BTreeMap<String, String>,
    /// Attachments' metadata.
    pub attachments: Vec<Attachment>,
    /// Whether opens are tracked (HTML messages only).
    pub track_opens: bool,
    /// How often it was opened.
    pub open_count: i64,
    /// First open.
    pub first_opened_at: Nullable<Timestamp>,
    /// Latest open.
    pub last_opened_at: Nullable<Timestamp>,
    /// Delivery attempts so far (outbound).
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Nullable<String>,
    /// When the SMTP server accepted it.
    pub sent_at: Nullable<Timestamp>,
    /// When it was queued or received.
    pub created_at: Timestamp,
    /// Whether it carries a one-click unsubscribe link (outbound).
    pub unsubscribe_link: bool,
}

/// A new outbound message.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct SendEmail {
    /// Recipients (at least one).
    pub to: List<EmailAddress, 1, MAX_RECIPIENTS>,
    /// Copied recipients.
    #[oai(default)]
    pub cc: Recipients,
    /// Blind-copied recipients.
    #[oai(default)]
    pub bcc: Recipients,
    /// Up to 998 characters.
    pub subject: Shaped<SubjectLine>,
    /// The plain-text body (up to 100,000 characters).
    pub text: Shaped<BodyText>,
    /// An HTML alternative; the message is then multipart/alternative.
    #[oai(validator(max_length = 100000))]
    #[oai(nullable)]
    pub html: Option<String>,
    /// Add an open-tracking pixel to the HTML (default true; no HTML, no tracking).
    #[oai(nullable)]
    pub track_opens: Option<bool>,
    /// Add a one-click unsubscribe link (default false): RFC 8058 `List-Unsubscribe` and
    /// `List-Unsubscribe-Post` headers, and a line at the end of the text and the HTML. Using
    /// it suppresses the recipient (reason `unsubscribed`), so a message with the link goes to
    /// exactly one recipient: one `to`, no `cc` or `bcc`.
    #[oai(nullable)]
    pub unsubscribe_link: Option<bool>,
}

/// A message written by a template, rendered for the deal (its lead, company and owner).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct SendTemplate {
    /// The template (`tpl_...`).
    pub template_id: String,
    /// Recipients (default: the deal's lead, at the lead's email).
    #[oai(default)]
    pub to: Recipients,
    /// Copied recipients.
    #[oai(default)]
    pub cc: Recipients,
    /// Blind-copied recipients.
    #[oai(default)]
    pub bcc: Recipients,
    /// Add an open-tracking pixel to the HTML (default true).
    #[oai(nullable)]
    pub track_opens: Option<bool>,
    /// Add a one-click unsubscribe link (default false; one recipient only), as in a send.
    #[oai(nullable)]
    pub unsubscribe_link: Option<bool>,
}

/// A reply: recipients, subject and threading come from the original.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ReplyEmail {
    /// The plain-text body (up to 100,000 characters).
    pub text: Shaped<BodyText>,
    /// An HTML alternative.
    #[oai(validator(max_length = 100000))]
    #[oai(nullable)]
    pub html: Option<String>,
    /// Extra copied recipients.
    #[oai(default)]
    pub cc: Recipients,
    /// Add an open-tracking pixel to the HTML (default true).
    #[oai(nullable)]
    pub track_opens: Option<bool>,
}

/// Filters of the message list.
#[derive(Debug, Clone, Default)]
pub struct EmailFilter {
    /// One conversation.
    pub thread_id: Option<String>,
    /// outbound or inbound.
    pub direction: Option<Direction>,
}

pub(crate) const COLUMNS: &str =
    "id, deal_id, direction, status, message_id, thread_id, in_reply_to, refs, \
    from_address, from_name, to_addresses, cc_addresses, bcc_addresses, subject, text_body, \
    html_body, headers, attachments, track_opens, open_count, first_opened_at, last_opened_at, \
    attempts, last_error, sent_at, created_at, unsubscribe_token IS NOT NULL, lead_id, \
    enrollment_id";

fn json_list(raw: String) -> Vec<String> {
    serde_json::from_str(&raw).unwrap_or_default()
}

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Email> {
    let direction = match r.get_ref(2)?.as_str()? {
        "inbound" => Direction::Inbound,
        _ => Direction::Outbound,
    };
    let status = match r.get_ref(3)?.as_str()? {
        "sending" => EmailStatus::Sending,
        "sent" => EmailStatus::Sent,
        "failed" => EmailStatus::Failed,
        "received" => EmailStatus::Received,
        _ => EmailStatus::Queued,
    };
    Ok(Email {
        id: r.get(0)?,
        deal_id: r.get(1)?,
        direction,
        status,
        message_id: r.get(4)?,
        thread_id: r.get(5)?,
        in_reply_to: r.get(6)?,
        references: json_list(r.get(7)?),
        from: r.get(8)?,
        from_name: r.get(9)?,
        to: json_list(r.get(10)?),
        cc: json_list(r.get(11)?),
        bcc: json_list(r.get(12)?),
        subject: r.get(13)?,
        text: r.get(14)?,
        html: r.get(15)?,
        headers: serde_json::from_str(&r.get::<_, String>(16)?).unwrap_or_default(),
        attachments: serde_json::from_str(&r.get::<_, String>(17)?).unwrap_or_default(),
        track_opens: r.get(18)?,
        open_count: r.get(19)?,
        first_opened_at: Nullable(r.get::<_, Option<i64>>(20)?.map(Timestamp)),
        last_opened_at: Nullable(r.get::<_, Option<i64>>(21)?.map(Timestamp)),
        attempts: r.get(22)?,
        last_error: r.get(23)?,
        sent_at: Nullable(r.get::<_, Option<i64>>(24)?.map(Timestamp)),
        created_at: Timestamp(r.get(25)?),
        unsubscribe_link: r.get(26)?,
        lead_id: r.get(27)?,
        enrollment_id: r.get(28)?,
    })
}

/// Message `id` of `org_id`.
pub fn get_by_id(conn: &Connection, org_id: &str, id: &str) -> DomainResult<Email> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM emails WHERE org_id = ?1 AND id = ?2"
    ))?
    .query_row(params![org_id, id], from_row)
    .optional()?
    .ok_or(DomainError::NotFound("email"))
}

/// A message of the deal, by its `eml_` id or its `Message-ID` (with or without brackets).
pub fn get(conn: &Connection, org_id: &str, deal_id: &str, message: &str) -> DomainResult<Email> {
    super::deals::get(conn, org_id, deal_id)?;
    let rfc = message.trim().trim_start_matches('<').trim_end_matches('>');
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM emails WHERE org_id = ?1 AND deal_id = ?2 AND (id = ?3 OR message_id = ?4)"
    ))?
    .query_row(params![org_id, deal_id, message, rfc], from_row)
    .optional()?
    .ok_or(DomainError::NotFound("email"))
}

/// The deal's messages, newest first.
pub fn list(
    conn: &Connection,
    org_id: &str,
    deal_id: &str,
    f: &EmailFilter,
    paging: Paging,
) -> DomainResult<ListPage<Email>> {
    super::deals::get(conn, org_id, deal_id)?;
    let direction = f.direction.map(|d| match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    });
    let filter = "org_id = ?1 AND deal_id = ?2 AND (?3 IS NULL OR thread_id = ?3)
                  AND (?4 IS NULL OR direction = ?4)";
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM emails WHERE {filter}"))?
        .query_row(params![org_id, deal_id, f.thread_id, direction], |r| {
            r.get(0)
        })?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM emails WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT ?5 OFFSET ?6"
    ))?;
    let items = stmt
        .query_map(
            params![
                org_id,
                deal_id,
                f.thread_id,
                direction,
                paging.limit(),
                paging.offset()
            ],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ListPage {
        items,
        paging,
        total,
    })
}

/// Logs the server's activity `kind` about a message on its deal and the deal's lead, if any:
/// the buyer's mail, our mail to them and their opens are activity with the lead as much as on
/// the deal, so both `last_activity_at`s move (and the lead's score), and opens and replies
/// raise their signals.
#[allow(clippy::too_many_arguments)] // the activity's fields, each distinct
fn log_activity(
    tx: &Tx<'_>,
    org_id: &str,
    user_id: Option<&str>,
    kind: &str,
    subject: &str,
    body: String,
    (deal_id, lead_id): (Option<&str>, Option<&str>),
    now: Millis,
) -> DomainResult<()> {
    let subject: String = subject.chars().take(500).collect();
    let lead_id: Option<String> = match (lead_id, deal_id) {
        (Some(lead), _) => Some(lead.to_string()),
        (None, Some(deal)) => tx
            .cached_row(
                "SELECT lead_id FROM deals WHERE org_id = ?1 AND id = ?2",
                params![org_id, deal],
                |r| r.get(0),
            )
            .optional()?
            .flatten(),
        (None, None) => None,
    };
    activities::record(
        tx,
        org_id,
        &Actor::system(),
        user_id,
        Term::known(kind),
        activities::Details {
            subject: Some(subject).filter(|s| !s.is_empty()),
            body: Some(body),
            deal_id: deal_id.map(String::from),
            lead_id,
            ..Default::default()
        },
        now,
    )?;
    Ok(())
}
