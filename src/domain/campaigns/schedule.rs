//! When a campaign's steps come due: delays in calendar or business time, and the sending
//! window, all in the campaign's time zone (daylight saving time included). Pure functions of
//! the instants they are given, so the tests drive them with any clock.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use crate::clock::Millis;

/// How a step's delay is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DelayUnit {
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Calendar days (the same local time that many days later).
    Days,
    /// Days Monday to Friday: from Friday, one business day is Monday.
    BusinessDays,
    /// Hours Monday to Friday: hours that fall on a weekend do not count.
    BusinessHours,
}

impl DelayUnit {
    /// The unit's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minutes => "minutes",
            Self::Hours => "hours",
            Self::Days => "days",
            Self::BusinessDays => "business_days",
            Self::BusinessHours => "business_hours",
        }
    }

    /// The unit named `s` (days for anything else).
    pub fn parse(s: &str) -> Self {
        match s {
            "minutes" => Self::Minutes,
            "hours" => Self::Hours,
            "business_days" => Self::BusinessDays,
            "business_hours" => Self::BusinessHours,
            _ => Self::Days,
        }
    }
}

/// When mail may go out: on `days` (Monday first), from minute `from` to minute `to` of the
/// local day. A `to` at or before `from` runs past midnight into the next day (an overnight
/// window); equal, it is the whole day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday to Sunday.
    pub days: [bool; 7],
    /// Minutes after midnight, inclusive.
    pub from: i64,
    /// Minutes after midnight, exclusive.
    pub to: i64,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// The time zone named `name` (stored names were checked when saved; UTC if the system's
/// database has lost one since).
pub(crate) fn zone(name: &str) -> TimeZone {
    jiff::tz::db().get(name).unwrap_or(TimeZone::UTC)
}

/// `t` on the clocks of `tz`.
pub(crate) fn zoned(t: Millis, tz: &TimeZone) -> jiff::ZonedDateTime {
    Timestamp::from_millisecond(t)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
}

fn millis(z: &jiff::ZonedDateTime) -> Millis {
    z.timestamp().as_millisecond()
}

fn is_weekend(d: Date) -> bool {
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The instant at minute `minute` of local day `d` (a time in a DST gap moves past it;
/// minute 1440, `24:00`, is the next day's midnight).
fn at_minute(d: Date, minute: i64, tz: &TimeZone) -> Millis {
    if minute >= 1440 {
        let next = d.checked_add(Span::new().days(1)).unwrap_or(d);
        return at_minute(next, minute - 1440, tz);
    }
    let start = d
        .to_zoned_datetime(tz.clone())
        .and_then(|z| z.start_of_day())
        .map_or(0, |z| millis(&z));
    let wall = d
        .at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
        .to_zoned_datetime(tz.clone())
        .map_or(start + minute * MINUTE, |z| millis(&z));
    wall.max(start)
}

/// The local day of `t`, as `[start, end)`.
pub fn day_of(t: Millis, tz: &TimeZone) -> (Millis, Millis) {
    let d = zoned(t, tz).date();
    let next = d.checked_add(Span::new().days(1)).unwrap_or(d);
    (at_minute(d, 0, tz), at_minute(next, 0, tz))
}

/// `t` plus `amount` of `unit`.
pub fn after(t: Millis, amount: i64, unit: DelayUnit, tz: &TimeZone) -> Millis {
    match unit {
        DelayUnit::Minutes => t + amount * MINUTE,
        DelayUnit::Hours => t + amount * HOUR,
        DelayUnit::Days => zoned(t, tz)
            .checked_add(Span::new().days(amount))
            .map_or(t + amount * 24 * HOUR, |z| millis(&z)),
        DelayUnit::BusinessDays => {
            let mut z = zoned(t, tz);
            let mut left = amount;
            while left > 0 {
                z = match z.checked_add(Span::new().days(1)) {
                    Ok(next) => next,
                    Err(_) => break,
                };
                if !is_weekend(z.date()) {
                    left -= 1;
                }
            }
            millis(&z)
        }
        DelayUnit::BusinessHours => {
            let mut at = t;
            let mut left = amount;
            while left > 0 {
                let d = zoned(at, tz).date();
                if is_weekend(d) {
                    // Skip to the next Monday's midnight; weekend hours do not count.
                    let mut next = d;
                    while is_weekend(next) {
                        next = next.checked_add(Span::new().days(1)).unwrap_or(next);
                    }
                    at = at_minute(next, 0, tz);
                    continue;
                }
                at += HOUR;
                left -= 1;
            }
            at
        }
    }
}

/// The first instant at or after `t` inside the window (`t` itself when it is inside). A
/// window with no day never opens: `None`.
pub fn open_at(t: Millis, w: &Window, tz: &TimeZone) -> Option<Millis> {
    let today = zoned(t, tz).date();
    let to = if w.to > w.from { w.to } else { w.to + 1440 };
    // From yesterday: last night's overnight window may still be open.
    for n in -1..8 {
        let d = today.checked_add(Span::new().days(n)).ok()?;
        if !w.days[d.weekday().to_monday_zero_offset() as usize] {
            continue;
        }
        let (start, end) = (at_minute(d, w.from, tz), at_minute(d, to, tz));
        let candidate = t.max(start);
        if candidate < end {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27 is a Friday.
    fn paris(date: &str, time: &str) -> Millis {
        let z: jiff::ZonedDateTime = format!("{date}T{time}[Europe/Paris]").parse().unwrap();
        millis(&z)
    }

    fn tz() -> TimeZone {
        jiff::tz::db().get("Europe/Paris").unwrap()
    }

    fn office() -> Window {
        Window {
            days: [true, true, true, true, true, false, false],
            from: 9 * 60,
            to: 17 * 60,
        }
    }

    #[test]
    fn delays_count_calendar_and_business_time() {
        let friday = paris("2026-11-27", "10:00");
        assert_eq!(
            after(friday, 2, DelayUnit::Days, &tz()),
            paris("2026-11-29", "10:00")
        );
        assert_eq!(
            after(friday, 1, DelayUnit::BusinessDays, &tz()),
            paris("2026-11-30", "10:00"),
            "Friday plus one business day is Monday"
        );
        assert_eq!(
            after(friday, 3, DelayUnit::BusinessDays, &tz()),
            paris("2026-12-02", "10:00")
        );
        assert_eq!(
            after(
                paris("2026-11-27", "22:00"),
                4,
                DelayUnit::BusinessHours,
                &tz()
            ),
            paris("2026-11-30", "02:00"),
            "two hours on Friday, the weekend skipped, two on Monday"
        );
        assert_eq!(
            after(friday, 90, DelayUnit::Minutes, &tz()),
            paris("2026-11-27", "11:30")
        );
        // Across the end of summer time a calendar day is 25 hours.
        let before = paris("2026-10-24", "10:00");
        let next = after(before, 1, DelayUnit::Days, &tz());
        assert_eq!(next, paris("2026-10-25", "10:00"));
        assert_eq!(next - before, 25 * HOUR);
    }

    #[test]
    fn the_window_opens_on_its_days_and_hours() {
        let w = office();
        let inside = paris("2026-11-27", "10:00");
        assert_eq!(open_at(inside, &w, &tz()), Some(inside));
        assert_eq!(
            open_at(paris("2026-11-27", "07:30"), &w, &tz()),
            Some(paris("2026-11-27", "09:00"))
        );
        assert_eq!(
            open_at(paris("2026-11-27", "17:00"), &w, &tz()),
            Some(paris("2026-11-30", "09:00")),
            "after Friday's close: Monday morning"
        );
        assert_eq!(
            open_at(paris("2026-11-28", "12:00"), &w, &tz()),
            Some(paris("2026-11-30", "09:00"))
        );
        let always = Window {
            days: [true; 7],
            from: 0,
            to: 1440,
        };
        assert_eq!(
            open_at(paris("2026-11-28", "23:59"), &always, &tz()),
            Some(paris("2026-11-28", "23:59")),
            "24:00 closes at midnight"
        );
        let night = Window {
            days: [true, true, true, true, true, false, false],
            from: 22 * 60,
            to: 6 * 60,
        };
        assert_eq!(
            open_at(paris("2026-11-28", "03:00"), &night, &tz()),
            Some(paris("2026-11-28", "03:00")),
            "Friday night runs into Saturday morning"
        );
        assert_eq!(
            open_at(paris("2026-11-28", "07:00"), &night, &tz()),
            Some(paris("2026-11-30", "22:00"))
        );
        let never = Window {
            days: [false; 7],
            ..office()
        };
        assert_eq!(open_at(inside, &never, &tz()), None);
        let (start, end) = day_of(inside, &tz());
        assert_eq!(
            (start, end),
            (paris("2026-11-27", "00:00"), paris("2026-11-28", "00:00"))
        );
    }
}
