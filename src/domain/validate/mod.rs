//! Field rules shared by every resource: text lengths, emails, currencies, time zones.

use crate::db::CachedRow;
use std::sync::OnceLock;

use regex::Regex;

use super::error::Issues;

/// Trims `value` and checks it has between `min` and `max` characters; returns the trimmed text.
pub fn text(issues: &mut Issues, field: &str, value: &str, min: usize, max: usize) -> String {
    let trimmed = value.trim();
    if trimmed.chars().count() < min {
        if min == 1 {
            issues.add(field, "must not be empty");
        } else {
            issues.add(field, format!("must be at least {min} characters"));
        }
    } else if value.chars().count() > max {
        // Counted as sent, as the document's maxLength counts.
        issues.add(field, format!("must be at most {max} characters"));
    }
    trimmed.to_string()
}

/// An email address as the API accepts it (the document publishes this same pattern, so
/// the two cannot disagree): ASCII `local@domain.tld`, a local part of at most 64 characters
/// with at most three dots (none leading, trailing or doubled), DNS labels for the domain.
/// Deliberately narrower than RFC 5322 (no quoted local parts, no IP literals): a CRM wants
/// addresses that mail servers will actually accept.
pub const EMAIL_PATTERN: &str = concat!("^", email_core!(), "$");

/// The body of [`EMAIL_PATTERN`], unanchored, for the document's variants of it.
#[macro_export]
macro_rules! email_core {
    () => {
        concat!(
            r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}",
            r"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,16}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,15}){1,3})",
            r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
        )
    };
}
pub use email_core;

pub(crate) use crate::shape::white_space;
pub use crate::shape::NOT_BLANK_PATTERN;

/// An email field as sent: surrounding whitespace is trimmed before [`EMAIL_PATTERN`] applies.
pub const EMAIL_FIELD_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*",
    email_core!(),
    "[",
    white_space!(),
    "]*$"
);

/// An optional email field as sent: blank means none.
pub const EMAIL_OR_BLANK_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*(",
    email_core!(),
    ")?[",
    white_space!(),
    "]*$"
);

/// Longest email address accepted.
pub const EMAIL_MAX: usize = 254;

/// Whether `value` matches `pattern`, compiled once into `compiled`.
pub fn matches(compiled: &'static OnceLock<Regex>, pattern: &str, value: &str) -> bool {
    compiled
        .get_or_init(|| Regex::new(pattern).expect("a valid pattern"))
        .is_match(value)
}

/// Whether `email` matches [`EMAIL_PATTERN`] within [`EMAIL_MAX`] characters.
pub fn is_email(email: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    email.len() <= EMAIL_MAX && matches(&RE, EMAIL_PATTERN, email)
}

/// Checks an email field and returns it trimmed.
pub fn email(issues: &mut Issues, field: &str, value: &str) -> String {
    let trimmed = value.trim();
    if !is_email(trimmed) {
        issues.add(field, "must be a valid email address");
    }
    trimmed.to_string()
}

/// ISO 4217 currency codes in use, with the number of digits after the decimal point.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWL", 2),
];

/// Every code accepted, for the document's enum.
pub fn currency_codes() -> impl Iterator<Item = &'static str> {
    CURRENCIES.iter().map(|(code, _)| *code)
}

/// The number of minor-unit digits of an ISO 4217 code, or `None` for an unknown code.
pub fn currency_exponent(code: &str) -> Option<u32> {
    CURRENCIES
        .binary_search_by(|(c, _)| c.cmp(&code))
        .ok()
        .map(|i| CURRENCIES[i].1)
}

/// Converts a decimal amount in major units to whole minor units of `currency`, rounding
/// what is finer than the currency's minor unit (12.345 USD is 12.35, 1.5 JPY is 2 yen): money
/// is stored exactly in minor units, and which precision a currency has is not something a
/// schema can say. Rejects negative amounts and amounts beyond what fits exactly.
pub fn money_to_minor(issues: &mut Issues, field: &str, amount: f64, currency: &str) -> i64 {
    let exponent = currency_exponent(currency).unwrap_or(2);
    let minor = (amount * 10f64.powi(exponent as i32)).round();
    if !amount.is_finite() || amount < 0.0 {
        issues.add(field, "must be a non-negative number");
        return 0;
    }
    if minor > 9.0e15 {
        issues.add(field, "is too large");
        return 0;
    }
    minor as i64
}

/// Converts exact minor units back to a decimal amount in major units.
pub fn minor_to_money(minor: i64, currency: &str) -> f64 {
    let exponent = currency_exponent(currency).unwrap_or(2);
    minor as f64 / 10f64.powi(exponent as i32)
}

/// What a time zone name looks like (`UTC`, `Europe/Berlin`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+5`); the document publishes this same pattern.
pub const TIME_ZONE_PATTERN: &str = r"^(UTC|[A-Z][A-Za-z0-9_+-]*(/[A-Z][A-Za-z0-9_+-]*)+)$";

/// Longest time zone name accepted.
pub const TIME_ZONE_MAX: usize = 64;

/// The zone the IANA time zone database (the system's, or the copy built in) calls `name`, as
/// the database spells it, recording an issue on `field` when it names none: a name that only
/// looks like one ("Mars/Olympus") is refused, since every period the organization's reports
/// cut is computed in it.
pub fn time_zone(issues: &mut Issues, field: &str, name: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let known = (name.len() <= TIME_ZONE_MAX && matches(&RE, TIME_ZONE_PATTERN, name))
        .then(|| jiff::tz::db().get(name).ok())
        .flatten();
    match known.as_ref().and_then(|tz| tz.iana_name()) {
        Some(canonical) => canonical.to_string(),
        None => {
            issues.add(
                field,
                format!(
                    "must be a time zone of the IANA database such as Europe/Berlin, America/New_York or UTC; `{name}` is not one"
                ),
            );
            name.to_string()
        }
    }
}

/// Enforces an `If-Match` precondition: `expected` (when given) must equal `current`.
pub fn if_match(expected: Option<i64>, current: i64) -> super::DomainResult<()> {
    match expected {
        Some(v) if v != current => Err(super::DomainError::VersionMismatch { current }),
        _ => Ok(()),
    }
}

/// Most tags an object may carry.
pub const MAX_TAGS: usize = 50;

/// Longest tag, in characters (as sent, before trimming, as the document counts).
pub const TAG_MAX: usize = 50;

/// Checks tags (up to 50 characters each as sent, not blank; at most 50 tags) and returns them
/// trimmed, without repeats.
pub fn tags(issues: &mut Issues, field: &str, tags: impl Into<Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags.into() {
        if t.chars().count() > TAG_MAX || t.trim().is_empty() {
            issues.add(field, "must hold tags of 1 to 50 characters, not all blank");
            continue;
        }
        let t = t.trim().to_string();
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&t)) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        issues.add(field, format!("must have at most {MAX_TAGS} tags"));
    }
    out
}

/// Checks an optional free-text field: trimmed, blank becomes none, at most `max` characters.
pub fn optional_text(
    issues: &mut Issues,
    field: &str,
    value: Option<String>,
    max: usize,
) -> Option<String> {
    let value = value?;
    // Counted as sent, as the document's maxLength counts.
    if value.chars().count() > max {
        issues.add(field, format!("must be at most {max} characters"));
    }
    let v = value.trim().to_string();
    (!v.is_empty()).then_some(v)
}

/// Applies a PATCH field that may be absent (keep), `null` (clear) or a value (set).
/// A shaped value (`Shaped<EmailOrBlank>`) merges into its plain current value.
pub fn merge<T, U: Into<T>>(
    patch: poem_openapi::types::MaybeUndefined<U>,
    current: Option<T>,
) -> Option<T> {
    match patch {
        poem_openapi::types::MaybeUndefined::Undefined => current,
        poem_openapi::types::MaybeUndefined::Null => None,
        poem_openapi::types::MaybeUndefined::Value(v) => Some(v.into()),
    }
}

/// Checks that every value of a filter is one of `allowed`, naming the first that is not.
pub fn one_of(field: &str, values: &[String], allowed: &[&str]) -> super::DomainResult<()> {
    match values.iter().find(|v| !allowed.contains(&v.as_str())) {
        Some(bad) => Err(super::DomainError::invalid(
            field,
            format!("must be one of {}; `{bad}` is not", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Checks that `id` (when given) is a row of `table` in `org_id`, recording a 422 on `field`
/// otherwise: references never cross organizations.
pub fn reference(
    conn: &rusqlite::Connection,
    issues: &mut Issues,
    field: &str,
    table: &str,
    prefix: &str,
    org_id: &str,
    id: Option<&str>,
) -> super::DomainResult<()> {
    let Some(id) = id else {
        return Ok(());
    };
    let exists = crate::ids::is_valid(id, prefix)
        && conn
            .cached_row(
                &format!("SELECT 1 FROM {table} WHERE id = ?1 AND org_id = ?2"),
                rusqlite::params![id, org_id],
                |_| Ok(()),
            )
            .map(|_| true)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                e => Err(e),
            })?;
    if !exists {
        let kind = match prefix {
            "co" => "company",
            "usr" => "user",
            "pip" => "pipeline",
            "stg" => "stage",
            other => other,
        };
        issues.add_unknown(field, kind, id);
    }
    Ok(())
}

/// Checks that `id` (when given) is an active user of `org_id`.
pub fn active_user(
    conn: &rusqlite::Connection,
    issues: &mut Issues,
    field: &str,
    org_id: &str,
    id: Option<&str>,
) -> super::DomainResult<()> {
    let Some(id) = id else {
        return Ok(());
    };
    let active: Option<bool> = if crate::ids::is_valid(id, "usr") {
        rusqlite::OptionalExtension::optional(conn.cached_row(
            "SELECT active FROM users WHERE id = ?1 AND org_id = ?2",
            rusqlite::params![id, org_id],
            |r| r.get(0),
        ))?
    } else {
        None
    };
    match active {
        Some(true) => {}
        Some(false) => issues.add(
            field,
            format!("names a deactivated user: `{id}`; reactivate them or choose another"),
        ),
        None => issues.add_unknown(field, "user", id),
    }
    Ok(())
}

/// Tags as stored (a JSON array).
pub fn tags_to_db(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// Tags from their stored form.
pub fn tags_from_db(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

/// A `LIKE` pattern matching `q` anywhere, with `%`, `_` and `\` taken literally
/// (use with `ESCAPE '\'`).
pub fn like_pattern(q: &str) -> String {
    format!(
        "%{}%",
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// An ISO 4217 currency code in use.
pub struct Currency;

impl super::terms::Vocabulary for Currency {
    const NAME: &'static str = "Currency";
    const DESCRIPTION: &'static str = "An ISO 4217 currency code in use.";
    fn words() -> Vec<std::borrow::Cow<'static, str>> {
        currency_codes().map(std::borrow::Cow::from).collect()
    }
    fn knows(word: &str) -> bool {
        currency_exponent(word).is_some()
    }
}

crate::text_shape!(
    /// An email address (surrounding whitespace is trimmed before the address rule applies).
    EmailAddress,
    0,
    EMAIL_MAX,
    Some(EMAIL_FIELD_PATTERN)
);

crate::text_shape!(
    /// An email address, or blank for none.
    EmailOrBlank,
    0,
    EMAIL_MAX,
    Some(EMAIL_OR_BLANK_PATTERN)
);

crate::text_shape!(
    /// A tag: not blank, at most [`TAG_MAX`] characters as sent.
    Tag,
    0,
    TAG_MAX,
    Some(NOT_BLANK_PATTERN)
);

crate::text_shape!(
    /// An IANA time zone name such as `Europe/Paris`, or `UTC`.
    TimeZoneName,
    0,
    TIME_ZONE_MAX,
    Some(TIME_ZONE_PATTERN)
);

/// Longest name or title of a record (a company, a deal, a user, a template, an organization).
pub const NAME_MAX: usize = 200;

crate::text_shape!(
    /// A record's name or title: 1 to [`NAME_MAX`] characters as sent.
    Name,
    1,
    NAME_MAX,
    None
);

/// Checks a name or title ([`Name`]) and returns it trimmed.
pub fn name(issues: &mut Issues, field: &str, value: &str) -> String {
    text(issues, field, value, 1, NAME_MAX)
}

/// Tags on a record: at most [`MAX_TAGS`], each a [`Tag`].
pub type Tags = crate::shape::List<Tag, 0, MAX_TAGS>;

#[cfg(test)]
mod tests;
