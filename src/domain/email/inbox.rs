//! A deal's inbox: its address (a username or the deal title's slug at the email domain).

use super::*;

pub(super) const INBOX_COLUMNS: &str = "id, deal_id, address, display_name, created_at";

pub(super) fn inbox_from_row(r: &Row<'_>) -> rusqlite::Result<Inbox> {
    Ok(Inbox {
        id: r.get(0)?,
        deal_id: r.get(1)?,
        address: r.get(2)?,
        display_name: r.get(3)?,
        created_at: Timestamp(r.get(4)?),
    })
}

/// Whether `s` is a usable local part for an inbox address.
pub(super) fn is_username(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
}

/// An inbox username as the document states it (surrounding blanks are trimmed, and it is
/// lowercased): letters, digits, `.`, `_`, `-`, dots only between other characters.
pub const USERNAME_PATTERN: &str = concat!(
    "^[",
    crate::domain::validate::white_space!(),
    r"]*[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*[",
    crate::domain::validate::white_space!(),
    "]*$"
);

crate::text_shape!(
    /// An inbox username as sent (up to 64 characters).
    Username,
    0,
    64,
    Some(USERNAME_PATTERN)
);

/// A lowercase slug of `title` for an address: letters and digits, words joined by `-`.
pub(super) fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "deal".into()
    } else {
        out
    }
}

/// The deal's inbox, if it has one.
pub fn inbox_of(conn: &Connection, org_id: &str, deal_id: &str) -> DomainResult<Option<Inbox>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {INBOX_COLUMNS} FROM email_inboxes WHERE org_id = ?1 AND deal_id = ?2"
        ))?
        .query_row(params![org_id, deal_id], inbox_from_row)
        .optional()?)
}

/// The deal's inbox (404 when the deal has none).
pub fn get_inbox(conn: &Connection, org_id: &str, deal_id: &str) -> DomainResult<Inbox> {
    crate::domain::deals::get(conn, org_id, deal_id)?;
    inbox_of(conn, org_id, deal_id)?.ok_or(DomainError::NotFound("email inbox"))
}

/// A free address for a new inbox and its display name: `input.username` (409 when taken),
/// else `base`, `base-2`, ... on `domain`.
fn allocate(
    tx: &Tx<'_>,
    input: NewInbox,
    base: &str,
    domain: &str,
) -> DomainResult<(String, Option<String>)> {
    let mut issues = Issues::new();
    let display_name =
        validate::optional_text(&mut issues, "display_name", input.display_name, 200);
    let username = input.username.map(|u| u.trim().to_ascii_lowercase());
    if let Some(u) = &username {
        if !is_username(u) {
            issues.add(
                "username",
                "must be 1-64 letters, digits, `.`, `_` or `-`, not starting or ending with `.`",
            );
        }
    }
    issues.finish()?;
    let taken = |address: &str| -> DomainResult<bool> {
        Ok(tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM email_inboxes WHERE address = ?1)")?
            .query_row(params![address], |r| r.get(0))?)
    };
    let address = match username {
        Some(u) => {
            let address = format!("{u}@{domain}");
            if taken(&address)? {
                return Err(DomainError::Conflict {
                    message: format!("the address {address} is taken; choose another username"),
                    details: vec![crate::domain::FieldIssue::new("username", "is taken")],
                });
            }
            address
        }
        None => {
            let mut n = 1;
            loop {
                let address = if n == 1 {
                    format!("{base}@{domain}")
                } else {
                    format!("{base}-{n}@{domain}")
                };
                if !taken(&address)? {
                    break address;
                }
                n += 1;
            }
        }
    };
    Ok((address, display_name))
}

/// A campaign's sender: its inbox's id, address and display name.
pub type Sender = (String, String, Option<String>);

/// Opens campaign `campaign_id`'s inbox, its sender address (replies to it come back to the
/// campaign), named after `name` unless `input` gives a username.
pub fn open_campaign_inbox(
    tx: &Tx<'_>,
    org_id: &str,
    campaign_id: &str,
    name: &str,
    input: NewInbox,
    domain: &str,
    now: Millis,
) -> DomainResult<Sender> {
    let (address, display_name) = allocate(tx, input, &slug(name), domain)?;
    let id = new_id("inb");
    tx.execute(
        "INSERT INTO email_inboxes (id, org_id, campaign_id, address, display_name, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, org_id, campaign_id, address, display_name, now],
    )?;
    Ok((id, address, display_name))
}

/// Campaign `campaign_id`'s sender.
pub fn campaign_sender(conn: &Connection, campaign_id: &str) -> DomainResult<Sender> {
    Ok(conn.cached_row(
        "SELECT id, address, display_name FROM email_inboxes WHERE campaign_id = ?1",
        params![campaign_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}

/// Renames campaign `campaign_id`'s sender (its display name).
pub fn rename_sender(
    tx: &Tx<'_>,
    campaign_id: &str,
    display_name: Option<&str>,
) -> DomainResult<()> {
    tx.execute(
        "UPDATE email_inboxes SET display_name = ?2 WHERE campaign_id = ?1",
        params![campaign_id, display_name],
    )?;
    Ok(())
}

/// Creates the deal's inbox, or returns the one it has: `(inbox, created)`.
pub fn ensure_inbox(
    tx: &Tx<'_>,
    org_id: &str,
    deal_id: &str,
    input: NewInbox,
    domain: &str,
    now: Millis,
) -> DomainResult<(Inbox, bool)> {
    let deal = crate::domain::deals::get(tx, org_id, deal_id)?;
    if let Some(existing) = inbox_of(tx, org_id, deal_id)? {
        return Ok((existing, false));
    }
    let (address, display_name) = allocate(tx, input, &slug(&deal.title), domain)?;
    let inbox = Inbox {
        id: new_id("inb"),
        deal_id: deal.id,
        address,
        display_name: Nullable(display_name),
        created_at: Timestamp(now),
    };
    tx.execute(
        "INSERT INTO email_inboxes (id, org_id, deal_id, address, display_name, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            inbox.id,
            org_id,
            inbox.deal_id,
            inbox.address,
            inbox.display_name,
            now
        ],
    )?;
    Ok((inbox, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_usernames() {
        assert_eq!(slug("Acme Corp — Q3 renewal!"), "acme-corp-q3-renewal");
        assert_eq!(slug("  ***  "), "deal");
        assert!(slug(&"x".repeat(100)).len() <= 40);
        assert!(is_username("ann.lee_2-x"));
        assert!(!is_username(".ann") && !is_username("a..b") && !is_username("a b"));
    }
}
