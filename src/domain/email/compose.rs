//! Sending and replying: messages queued in the deal's thread, with threading headers.

use super::*;
use crate::domain::changes;
use crate::domain::templates;

/// Validates a list of addresses (each trimmed, lowercased domain kept as given).
pub(super) fn addresses(
    issues: &mut Issues,
    field: &str,
    list: impl Into<Vec<String>>,
) -> Vec<String> {
    list.into()
        .into_iter()
        .enumerate()
        .map(|(i, a)| validate::email(issues, &format!("{field}[{i}]"), &a))
        .collect()
}

/// What a queued message needs besides its recipients.
pub(super) struct Outgoing {
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    subject: String,
    text: String,
    html: Option<String>,
    track_opens: bool,
    /// Whether to give it a one-click unsubscribe link (for its one recipient).
    unsubscribe: bool,
    thread_id: Option<String>,
    in_reply_to: Option<String>,
    references: Vec<String>,
}

/// Where a message is sent from and on whose behalf.
pub(super) struct Origin<'a> {
    org_id: &'a str,
    /// Who queued it (for the `email_sent` activity).
    user_id: Option<&'a str>,
    actor: Actor,
    deal_id: Option<&'a str>,
    lead_id: Option<&'a str>,
    enrollment_id: Option<&'a str>,
    /// The inbox: its id, address and display name.
    inbox: (String, String, Option<String>),
}

/// A message of the deal, sent by `p` from the deal's inbox (created if needed).
fn from_deal<'a>(
    tx: &Tx<'_>,
    p: &'a Principal,
    deal_id: &'a str,
    domain: &str,
    now: Millis,
) -> DomainResult<Origin<'a>> {
    let (inbox, _) = ensure_inbox(tx, &p.org_id, deal_id, NewInbox::default(), domain, now)?;
    Ok(Origin {
        org_id: &p.org_id,
        user_id: Some(&p.user_id),
        actor: Actor::from(p),
        deal_id: Some(deal_id),
        lead_id: None,
        enrollment_id: None,
        inbox: (inbox.id, inbox.address, inbox.display_name.0),
    })
}

/// Queues `out` from `origin`'s inbox, with its `email.queued` event, in the caller's
/// transaction: the sender picks it up once this commits.
fn queue(
    tx: &Tx<'_>,
    origin: Origin<'_>,
    out: Outgoing,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    let org_id = origin.org_id;
    crate::domain::suppressions::check_recipients(
        tx,
        org_id,
        &[("to", &out.to), ("cc", &out.cc), ("bcc", &out.bcc)],
    )?;
    let (inbox_id, address, display_name) = &origin.inbox;
    let id = new_id("eml");
    let message_id = format!("{}@{domain}", id.to_ascii_lowercase());
    let track = out.track_opens && out.html.is_some();
    let token = track.then(|| crate::secrets::new_token("o"));
    let unsubscribe = out.unsubscribe.then(|| crate::secrets::new_token("u"));
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO emails (id, org_id, deal_id, inbox_id, direction, status, message_id, thread_id,
                             in_reply_to, refs, from_address, from_name, to_addresses, cc_addresses,
                             bcc_addresses, subject, text_body, html_body, track_opens, open_token,
                             user_id, next_attempt_at, created_at, updated_at, unsubscribe_token,
                             lead_id, enrollment_id)
         VALUES (?1, ?2, ?3, ?4, 'outbound', 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 ?15, ?16, ?17, ?18, ?19, ?20, ?20, ?20, ?21, ?22, ?23)",
        params![
            id,
            org_id,
            origin.deal_id,
            inbox_id,
            message_id,
            out.thread_id.unwrap_or_else(|| new_id("thr")),
            out.in_reply_to,
            json(&out.references),
            address,
            display_name,
            json(&out.to),
            json(&out.cc),
            json(&out.bcc),
            out.subject,
            out.text,
            out.html,
            track,
            token,
            origin.user_id,
            now,
            unsubscribe,
            origin.lead_id,
            origin.enrollment_id
        ],
    )?;
    tx.queue_work();
    let email = get_by_id(tx, org_id, &id)?;
    changes::append(tx, org_id, &origin.actor, "email.queued", &email, None, now)?;
    Ok(email)
}

/// Queues a new message from the deal's inbox.
pub fn send(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    input: SendEmail,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    crate::domain::deals::get(tx, &p.org_id, deal_id)?;
    let mut issues = Issues::new();
    if input.to.is_empty() {
        issues.add("to", "must name at least one recipient");
    }
    let to = addresses(&mut issues, "to", input.to);
    let cc = addresses(&mut issues, "cc", input.cc);
    let bcc = addresses(&mut issues, "bcc", input.bcc);
    for (field, list) in [("to", &to), ("cc", &cc), ("bcc", &bcc)] {
        if list.len() > MAX_RECIPIENTS {
            issues.add(
                field,
                format!("must have at most {MAX_RECIPIENTS} addresses"),
            );
        }
    }
    let subject = input.subject.trim().to_string();
    if subject.contains(['\r', '\n']) {
        issues.add("subject", "must be one line");
    }
    if input.text.trim().is_empty() {
        issues.add("text", "must not be empty");
    }
    let unsubscribe = input.unsubscribe_link.unwrap_or(false);
    if unsubscribe && (to.len() != 1 || !cc.is_empty() || !bcc.is_empty()) {
        issues.add(
            "unsubscribe_link",
            "needs exactly one recipient (one `to`, no `cc` or `bcc`): the link unsubscribes \
             the person it was sent to",
        );
    }
    issues.finish()?;
    let origin = from_deal(tx, p, deal_id, domain, now)?;
    queue(
        tx,
        origin,
        Outgoing {
            to,
            cc,
            bcc,
            subject,
            text: input.text.into(),
            html: input.html,
            track_opens: input.track_opens.unwrap_or(true),
            unsubscribe,
            thread_id: None,
            in_reply_to: None,
            references: Vec::new(),
        },
        domain,
        now,
    )
}

/// Queues the message template `input.template_id` renders for the deal: its lead, company,
/// owner and the deal itself. `to` defaults to the deal's lead. A template HTML-only gets a
/// text part made from its HTML. Then as [`send`].
pub fn send_template(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    input: SendTemplate,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    let deal = crate::domain::deals::get(tx, &p.org_id, deal_id)?;
    let template = match templates::get(tx, &p.org_id, &input.template_id) {
        Err(DomainError::NotFound(_)) => {
            return Err(DomainError::invalid(
                "template_id",
                crate::error::unknown("email template", &input.template_id),
            ))
        }
        other => other?,
    };
    let context = templates::for_deal(tx, &p.org_id, deal)?;
    let rendered = templates::render_for(&template, &context)?;
    let mut to: Vec<String> = input.to.into();
    if to.is_empty() {
        match context.lead.and_then(|lead| lead.email.0) {
            Some(email) => to.push(email),
            None => {
                return Err(DomainError::invalid(
                    "to",
                    "is required: the deal has no lead with an email to default to",
                ))
            }
        }
    }
    let text = match (rendered.text_body.0, &rendered.html_body.0) {
        (Some(text), _) => text,
        (None, Some(html)) => templates::render::text_of(html),
        (None, None) => String::new(),
    };
    let message = SendEmail {
        to: to.into(),
        cc: input.cc,
        bcc: input.bcc,
        subject: rendered.subject.into(),
        text: text.into(),
        html: rendered.html_body.0,
        track_opens: input.track_opens,
        unsubscribe_link: input.unsubscribe_link,
    };
    send(tx, p, deal_id, message, domain, now)
}

/// A campaign step's message to one enrolled lead.
pub struct CampaignMail<'a> {
    /// The organization.
    pub org_id: &'a str,
    /// Whom the email counts for (the lead's owner, else the campaign's creator): its
    /// `email_sent` activity, and so the leaderboard.
    pub user_id: Option<&'a str>,
    /// The campaign's inbox: its id, address and display name.
    pub inbox: (String, String, Option<String>),
    /// The lead written to, at `to`.
    pub lead_id: &'a str,
    /// The enrollment sending it.
    pub enrollment_id: &'a str,
    /// The lead's address.
    pub to: String,
    /// The rendered message.
    pub subject: String,
    /// Its text part.
    pub text: String,
    /// Its HTML part.
    pub html: Option<String>,
    /// Add the open-tracking pixel.
    pub track_opens: bool,
    /// The message it follows up in the same thread, if the step says so.
    pub parent: Option<Email>,
}

/// Queues a campaign's message to one lead: always with a one-click unsubscribe link, threaded
/// on `parent` when given (`Re:` its subject). Suppressed addresses are refused as for any send.
pub fn send_for_campaign(
    tx: &Tx<'_>,
    m: CampaignMail<'_>,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    let (subject, thread_id, in_reply_to, references) = match &m.parent {
        Some(parent) => (
            reply_subject(&parent.subject),
            Some(parent.thread_id.clone()),
            Some(parent.message_id.clone()),
            thread_references(parent),
        ),
        None => (m.subject, None, None, Vec::new()),
    };
    let origin = Origin {
        org_id: m.org_id,
        user_id: m.user_id,
        actor: Actor::system(),
        deal_id: None,
        lead_id: Some(m.lead_id),
        enrollment_id: Some(m.enrollment_id),
        inbox: m.inbox,
    };
    queue(
        tx,
        origin,
        Outgoing {
            to: vec![m.to],
            cc: Vec::new(),
            bcc: Vec::new(),
            subject,
            text: m.text,
            html: m.html,
            track_opens: m.track_opens,
            unsubscribe: true,
            thread_id,
            in_reply_to,
            references,
        },
        domain,
        now,
    )
}

/// `Re: <subject>`, without piling up prefixes.
pub(super) fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    if s.len() >= 3 && s[..3].eq_ignore_ascii_case("re:") {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

/// Queues a reply to message `message` of the deal: to its sender (or, for our own message, to
/// its recipients), `Re:` subject, `In-Reply-To` and `References`, same thread.
pub fn reply(
    tx: &Tx<'_>,
    p: &Principal,
    deal_id: &str,
    message: &str,
    input: ReplyEmail,
    domain: &str,
    now: Millis,
) -> DomainResult<Email> {
    let original = get(tx, &p.org_id, deal_id, message)?;
    let mut issues = Issues::new();
    let extra_cc = addresses(&mut issues, "cc", input.cc);
    if input.text.trim().is_empty() {
        issues.add("text", "must not be empty");
    }
    issues.finish()?;
    let (to, mut cc) = match original.direction {
        Direction::Inbound => {
            let reply_to = original
                .headers
                .get("reply-to")
                .filter(|r| validate::is_email(r))
                .cloned()
                .unwrap_or_else(|| original.from.clone());
            (vec![reply_to], Vec::new())
        }
        Direction::Outbound => (original.to.clone(), original.cc.clone()),
    };
    for a in extra_cc {
        if !cc.contains(&a) && !to.contains(&a) {
            cc.push(a);
        }
    }
    let references = thread_references(&original);
    let origin = from_deal(tx, p, deal_id, domain, now)?;
    queue(
        tx,
        origin,
        Outgoing {
            to,
            cc,
            bcc: Vec::new(),
            subject: reply_subject(&original.subject),
            text: input.text.into(),
            html: input.html,
            track_opens: input.track_opens.unwrap_or(true),
            unsubscribe: false,
            thread_id: Some(original.thread_id),
            in_reply_to: Some(original.message_id),
            references,
        },
        domain,
        now,
    )
}

/// The `References` of a reply to `parent` (RFC 5322 3.6.4): the parent's `References`, or,
/// when it has none but answers one message, its `In-Reply-To` (Outlook and some phones send only
/// that), followed by the parent's own `Message-ID`, so every client can rebuild the whole thread
/// from any one message.
pub(super) fn thread_references(parent: &Email) -> Vec<String> {
    let mut chain = if parent.references.is_empty() {
        parent.in_reply_to.iter().cloned().collect()
    } else {
        parent.references.clone()
    };
    if !chain.contains(&parent.message_id) {
        chain.push(parent.message_id.clone());
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subjects_do_not_pile_up() {
        assert_eq!(reply_subject("Pricing"), "Re: Pricing");
        assert_eq!(reply_subject("RE: Pricing"), "RE: Pricing");
    }
}
