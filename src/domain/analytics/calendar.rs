//! Time windows and the organization's calendar: named periods cut at local midnights in its
//! time zone, quarters and years from its fiscal year.

use super::*;

/// A time window `[from, to)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, inclusive.
    pub from: Millis,
    /// End, exclusive.
    pub to: Millis,
}

impl Window {
    /// Everything.
    pub const ALL: Window = Window {
        from: i64::MIN / 2,
        to: i64::MAX / 2,
    };
}

/// A named period, in the organization's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Today, midnight to midnight.
    Day,
    /// Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
    /// A quarter of the fiscal year (calendar quarters when it starts in January).
    Quarter,
    /// The fiscal year, from the organization's `fiscal_year_start_month`.
    Year,
}

/// A period quotas are set for (a week is too short for a quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// A calendar month.
    Month,
    /// A quarter of the fiscal year.
    Quarter,
    /// The fiscal year.
    Year,
}

impl From<QuotaPeriod> for Period {
    fn from(p: QuotaPeriod) -> Self {
        match p {
            QuotaPeriod::Month => Period::Month,
            QuotaPeriod::Quarter => Period::Quarter,
            QuotaPeriod::Year => Period::Year,
        }
    }
}

/// An organization's calendar: its time zone (from the IANA database, daylight saving time
/// included) and the month its fiscal year starts. Every named period is cut by it, so "this
/// month" for a team in Berlin starts at midnight in Berlin, and a day across a DST change is
/// 23 or 25 hours long.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    fiscal_start: i8,
}

impl Calendar {
    /// UTC, fiscal year from January.
    pub fn utc() -> Self {
        Self {
            tz: TimeZone::UTC,
            fiscal_start: 1,
        }
    }

    /// The calendar of a zone named in the IANA database, fiscal year from `fiscal_start`.
    pub fn new(zone: &str, fiscal_start: i64) -> Option<Self> {
        Some(Self {
            tz: jiff::tz::db().get(zone).ok()?,
            fiscal_start: i8::try_from(fiscal_start)
                .ok()
                .filter(|m| (1..=12).contains(m))?,
        })
    }

    /// The organization's calendar. A zone the database no longer knows (it was checked when
    /// saved) falls back to UTC rather than failing every report.
    pub fn of(conn: &Connection, org_id: &str) -> DomainResult<Self> {
        let org = orgs::get(conn, org_id)?;
        Ok(Self::new(&org.timezone, org.fiscal_year_start_month).unwrap_or_else(Self::utc))
    }

    /// The local date at `at`.
    pub fn date_at(&self, at: Millis) -> Date {
        jiff::Timestamp::from_millisecond(at)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned_datetime(self.tz.clone())
            .date()
    }

    /// When local day `d` begins (midnight, or the first instant after a DST gap at midnight).
    fn start_of(&self, d: Date) -> Millis {
        d.to_zoned_datetime(self.tz.clone())
            .and_then(|z| z.start_of_day())
            .map_or(0, |z| z.timestamp().as_millisecond())
    }

    /// The period of kind `period` that contains local day `day`.
    pub fn period_of(&self, period: Period, day: Date) -> Window {
        let months = |d: Date, n: i64| d.checked_add(Span::new().months(n)).unwrap_or(d);
        let (start, end) = match period {
            Period::Day => (day, day.checked_add(Span::new().days(1)).unwrap_or(day)),
            Period::Week => {
                let back = i64::from(day.weekday().to_monday_zero_offset());
                let start = day.checked_add(Span::new().days(-back)).unwrap_or(day);
                (
                    start,
                    start.checked_add(Span::new().days(7)).unwrap_or(start),
                )
            }
            Period::Month => {
                let start = day.first_of_month();
                (start, months(start, 1))
            }
            Period::Quarter | Period::Year => {
                let into_year = i64::from((day.month() - self.fiscal_start).rem_euclid(12));
                let year_start = months(day.first_of_month(), -into_year);
                if period == Period::Year {
                    (year_start, months(year_start, 12))
                } else {
                    let start = months(year_start, into_year / 3 * 3);
                    (start, months(start, 3))
                }
            }
        };
        Window {
            from: self.start_of(start),
            to: self.start_of(end),
        }
    }

    /// The period of kind `period` that contains the instant `at`.
    pub fn period(&self, period: Period, at: Millis) -> Window {
        self.period_of(period, self.date_at(at))
    }
}

/// The window `period` gives (or all time) narrowed by `from`/`to`. Every bound given applies,
/// like any filter: a `to` at or before the `from` is an empty window, whose figures are all
/// zero.
pub fn window(period: Option<Window>, from: Option<Millis>, to: Option<Millis>) -> Window {
    let base = period.unwrap_or(Window::ALL);
    let from = from.map_or(base.from, |f| f.max(base.from));
    let to = to.map_or(base.to, |t| t.min(base.to)).max(from);
    Window { from, to }
}
