//! Parsers for the request headers the contract gives meaning to (docs/api.md §5).

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};

use super::error::{ApiError, Refusal};

/// `If-Match` as documented: `*`, or a version (from 1, at most 18 digits) as `"3"`, `W/"3"`
/// or a bare `3`. [`if_match`] accepts exactly these.
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?"[1-9][0-9]{0,17}"|[1-9][0-9]{0,17})$"#;

/// Parses `If-Match` (see [`IF_MATCH_PATTERN`]): a version, or `None` for `*` or no header.
pub fn if_match(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw == "*" {
        return Ok(None);
    }
    let weak = raw.strip_prefix("W/");
    let quoted = weak
        .unwrap_or(raw)
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'));
    let digits = match (quoted, weak) {
        (Some(inner), _) => Some(inner),
        (None, None) => Some(raw),
        (None, Some(_)) => None,
    };
    digits
        .filter(|d| (1..=18).contains(&d.len()) && !d.starts_with('0'))
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("If-Match must be an ETag this API gave out, such as \"3\"")
                .detail("If-Match", "is not a version ETag")
        })
}

/// A header whose value is a number in a documented form: its pattern (stated in the document)
/// and the parser that accepts exactly it.
pub trait NumberForm: Send + Sync + 'static {
    /// The documented pattern.
    const PATTERN: &'static str;
    /// The number, `None` where the form says "none" (`*`, empty), or the error to answer.
    fn parse(raw: &str) -> Result<Option<i64>, ApiError>;
}

/// A header of form `F` as a parameter, parsed once, before the handler runs (a malformed one
/// is refused there, in its parser's words).
pub struct NumberHeader<F>(Option<i64>, PhantomData<F>);

impl<F> NumberHeader<F> {
    /// The number the header carried, if it was sent and is not a "none".
    pub fn value(header: Option<Self>) -> Option<i64> {
        header.and_then(|h| h.0)
    }
}

impl<F: NumberForm> Type for NumberHeader<F> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.pattern = Some(F::PATTERN.to_string());
        MetaSchemaRef::Inline(Box::new(schema))
    }

    crate::scalar_raw_values!();
}

impl<F: NumberForm> ParseFromParameter for NumberHeader<F> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        F::parse(value)
            .map(|n| Self(n, PhantomData))
            .map_err(|e| Refusal::Form(e.message).raise())
    }
}

/// `If-Match`'s form: [`IF_MATCH_PATTERN`], parsed by [`if_match`].
pub struct IfMatchForm;

impl NumberForm for IfMatchForm {
    const PATTERN: &'static str = IF_MATCH_PATTERN;
    fn parse(raw: &str) -> Result<Option<i64>, ApiError> {
        if_match(Some(raw))
    }
}

/// `If-Match`: the version a change is based on (`None`: no header, or `*`).
pub type IfMatch = NumberHeader<IfMatchForm>;

/// Longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// Checks an `Idempotency-Key`: 1–255 printable ASCII characters.
pub fn idempotency_key(raw: &[u8]) -> Result<String, ApiError> {
    if raw.is_empty()
        || raw.len() > IDEMPOTENCY_KEY_MAX
        || !raw.iter().all(|b| (0x20..=0x7e).contains(b))
    {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )
        .detail(
            "Idempotency-Key",
            "must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// A well-formed incoming `X-Request-Id` (1–128 of `A-Z a-z 0-9 . _ -`) is echoed; others are
/// replaced, so logs never carry a client's arbitrary bytes.
pub fn request_id(raw: Option<&[u8]>) -> Option<String> {
    let raw = raw?;
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then(|| String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(None).unwrap(), None);
        assert_eq!(if_match(Some("\"3\"")).unwrap(), Some(3));
        assert_eq!(if_match(Some("W/\"4\"")).unwrap(), Some(4));
        assert_eq!(if_match(Some("5")).unwrap(), Some(5));
        assert_eq!(if_match(Some("*")).unwrap(), None);
        assert!(if_match(Some("\"abc\"")).is_err());
        assert!(if_match(Some("\"0\"")).is_err());
    }

    #[test]
    fn idempotency_keys() {
        assert!(idempotency_key(b"order-42").is_ok());
        assert!(idempotency_key(b"").is_err());
        assert!(idempotency_key(&[b'a'; 256]).is_err());
        assert!(idempotency_key("ключ".as_bytes()).is_err());
    }

    #[test]
    fn request_ids() {
        assert_eq!(request_id(Some(b"abc-123")), Some("abc-123".into()));
        assert_eq!(request_id(Some(b"bad id\n")), None);
        assert_eq!(request_id(None), None);
    }

    proptest::proptest! {
        #[test]
        fn if_match_never_panics_and_reads_every_version_form(raw in ".*", v in 1i64..1_000_000_000_000_000_000) {
            let _ = if_match(Some(&raw));
            proptest::prop_assert_eq!(if_match(Some(&format!("\"{v}\""))).unwrap(), Some(v));
            proptest::prop_assert_eq!(if_match(Some(&format!("W/\"{v}\""))).unwrap(), Some(v));
            let negative = format!("\"{}\"", -v);
            proptest::prop_assert!(if_match(Some(&negative)).is_err());
        }

        #[test]
        fn idempotency_keys_are_exactly_the_printable_ascii_ones(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let valid = !raw.is_empty() && raw.len() <= IDEMPOTENCY_KEY_MAX
                && raw.iter().all(|b| (0x20..=0x7e).contains(b));
            match idempotency_key(&raw) {
                Ok(key) => proptest::prop_assert!(valid && key.as_bytes() == raw.as_slice()),
                Err(_) => proptest::prop_assert!(!valid),
            }
        }

        #[test]
        fn request_ids_echo_only_safe_bytes(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Some(id) = request_id(Some(&raw)) {
                proptest::prop_assert!(id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b)));
            }
        }
    }
}
