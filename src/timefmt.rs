//! RFC 3339 timestamps and `YYYY-MM-DD` dates, as the API writes and reads them (docs/api.md §1).

use time::format_description::well_known::Rfc3339;
use time::{macros::format_description, Date, OffsetDateTime, UtcOffset};

use crate::clock::Millis;

/// Formats Unix milliseconds as `2026-11-28T12:00:00Z` (whole seconds, UTC).
pub fn format_ms(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.format(&format).unwrap_or_default()
}

/// Parses any RFC 3339 timestamp (any offset, optional fraction) into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let dt = dt.to_offset(UtcOffset::UTC);
    Some((dt.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds() {
        let ms = 1_795_852_800_000; // 2026-11-28T08:00:00Z
        assert_eq!(format_ms(ms), "2026-11-28T08:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-28T08:00:00Z"), Some(ms));
        assert_eq!(
            parse_rfc3339("2026-11-28T09:00:00.250+01:00"),
            Some(ms + 250)
        );
        assert_eq!(parse_rfc3339("2026-11-28"), None);
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_date("2026-02-28").is_some());
        assert_eq!(date_to_ms("2026-11-28"), Some(ms - 8 * 3_600_000));
        assert_eq!(date_to_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(date_to_ms("1970-01-01"), Some(0));
        assert_eq!(date_to_ms("2026-02-29"), None);
        assert_eq!(date_to_ms("2026-1-01"), None);
    }
}

/// Unix milliseconds of the start (UTC) of a `YYYY-MM-DD` date, parsed by hand: it runs once
/// per deal when scoring a whole pipeline.
pub fn date_to_ms(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in_month {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

/// A point in time, stored as Unix milliseconds and shown in the API as an RFC 3339 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub Millis);

/// The same string as its OpenAPI `ToJSON`, for types serialized with serde directly.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ms(self.0))
    }
}

mod openapi_impl {
    use std::borrow::Cow;

    use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
    use poem_openapi::types::{
        ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
    };
    use serde_json::Value;

    use super::{format_ms, parse_rfc3339, Timestamp};

    impl Type for Timestamp {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn name() -> Cow<'static, str> {
            "string_date-time".into()
        }

        fn schema_ref() -> MetaSchemaRef {
            let mut schema = MetaSchema::new_with_format("string", "date-time");
            schema.example = Some(Value::String("2026-11-28T12:00:00Z".into()));
            MetaSchemaRef::Inline(Box::new(schema))
        }

        crate::scalar_raw_values!();
    }

    fn parse(s: &str) -> ParseResult<Timestamp> {
        parse_rfc3339(s)
            .map(Timestamp)
            .ok_or_else(|| ParseError::custom("must be an RFC 3339 timestamp"))
    }

    impl ParseFromJSON for Timestamp {
        fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
            match value.unwrap_or_default() {
                Value::String(s) => parse(&s),
                other => Err(ParseError::expected_type(other)),
            }
        }
    }

    impl ParseFromParameter for Timestamp {
        fn parse_from_parameter(value: &str) -> ParseResult<Self> {
            parse(value)
        }
    }

    impl ToJSON for Timestamp {
        fn to_json(&self) -> Option<Value> {
            Some(Value::String(format_ms(self.0)))
        }
    }
}
