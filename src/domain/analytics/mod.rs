//! Analytics and team performance: sums over the CRM, computed on read.
//!
//! Money is in major units of the organization's currency; deals in other currencies are left
//! out of sums (and counted in `other_currency_deals`). Named periods (today, this week, month,
//! quarter, fiscal year) are cut in the organization's time zone: see [`Calendar`].

use crate::db::CachedRow;
use crate::domain::nullable::Nullable;
use std::collections::HashMap;

use crate::db::{memo, Tx};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Span;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection};

use super::error::{DomainError, DomainResult, Issues};
use super::intelligence;
use super::leads::LeadStatus;
use super::listing::Paging;
use super::pipelines::StageKind;
use super::terms::Term;
use super::validate::Currency;
use super::{orgs, pipelines, validate};
use crate::clock::{Millis, DAY_MS};
use crate::timefmt::Timestamp;

mod calendar;
mod performance;
mod pipeline;
pub use calendar::{window, Calendar, Period, QuotaPeriod, Window};
pub use performance::{
    leaderboard, quotas, set_quotas, Attainment, Metric, Pace, Performance, QuotaStatus,
    QuotaTargets, SetQuotas,
};
pub use pipeline::{
    forecast, funnel, overview, ForecastMonth, FunnelStep, Overview, StageTotals, StatusCount,
};

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(cal: &Calendar, period: Period, at: &str) -> (String, String) {
        let w = cal.period(period, crate::timefmt::parse_rfc3339(at).unwrap());
        (
            crate::timefmt::format_ms(w.from),
            crate::timefmt::format_ms(w.to),
        )
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn periods_are_calendar_periods() {
        let utc = Calendar::utc();
        let at = "2026-11-28T12:00:00Z"; // a Saturday
        assert_eq!(
            cut(&utc, Period::Day, at),
            pair("2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Week, at),
            pair("2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Month, at),
            pair("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Quarter, at),
            pair("2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Year, at),
            pair("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
        );
        assert_eq!(
            cut(&utc, Period::Month, "2026-12-31T23:00:00Z").1,
            "2027-01-01T00:00:00Z"
        );
    }

    /// Periods cut in the organization's zone: Berlin's day and month start at its midnight,
    /// and the days and weeks that hold a DST change are 23 or 25 hours longer or shorter.
    #[test]
    fn periods_follow_the_zone_across_dst() {
        let berlin = Calendar::new("Europe/Berlin", 1).unwrap();
        // 2026-03-29 02:00 CET → 03:00 CEST: a 23-hour day.
        assert_eq!(
            cut(&berlin, Period::Day, "2026-03-29T12:00:00Z"),
            pair("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")
        );
        // 2026-10-25 03:00 CEST → 02:00 CET: a 25-hour day.
        assert_eq!(
            cut(&berlin, Period::Day, "2026-10-25T12:00:00Z"),
            pair("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")
        );
        // 23:30 UTC on 31 October is already 1 November in Berlin.
        assert_eq!(
            cut(&berlin, Period::Month, "2026-10-31T23:30:00Z"),
            pair("2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z")
        );
        // The week holding the spring change is 167 hours.
        let (from, to) = cut(&berlin, Period::Week, "2026-03-27T12:00:00Z");
        let hours = (crate::timefmt::parse_rfc3339(&to).unwrap()
            - crate::timefmt::parse_rfc3339(&from).unwrap())
            / 3_600_000;
        assert_eq!((from.as_str(), hours), ("2026-03-22T23:00:00Z", 167));
        // New York's first quarter ends at its midnight, in EDT.
        let ny = Calendar::new("America/New_York", 1).unwrap();
        assert_eq!(
            cut(&ny, Period::Quarter, "2026-02-10T12:00:00Z"),
            pair("2026-01-01T05:00:00Z", "2026-04-01T04:00:00Z")
        );
        // A zone whose clocks skip midnight itself (Havana, 2026-03-08 00:00 → 01:00): the day
        // starts at 01:00 local.
        let havana = Calendar::new("America/Havana", 1).unwrap();
        assert_eq!(
            cut(&havana, Period::Day, "2026-03-08T12:00:00Z").0,
            "2026-03-08T05:00:00Z"
        );
        assert!(Calendar::new("Mars/Olympus", 1).is_none());
        assert!(Calendar::new("Europe/Berlin", 13).is_none());
    }

    /// Quarters and years follow the fiscal year.
    #[test]
    fn fiscal_quarters_and_years() {
        let april = Calendar::new("UTC", 4).unwrap();
        assert_eq!(
            cut(&april, Period::Year, "2027-02-15T00:00:00Z"),
            pair("2026-04-01T00:00:00Z", "2027-04-01T00:00:00Z")
        );
        assert_eq!(
            cut(&april, Period::Quarter, "2027-02-15T00:00:00Z"),
            pair("2027-01-01T00:00:00Z", "2027-04-01T00:00:00Z")
        );
        assert_eq!(
            cut(&april, Period::Quarter, "2026-05-15T00:00:00Z"),
            pair("2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z")
        );
        let november = Calendar::new("UTC", 11).unwrap();
        assert_eq!(
            cut(&november, Period::Quarter, "2026-12-02T00:00:00Z"),
            pair("2026-11-01T00:00:00Z", "2027-02-01T00:00:00Z")
        );
    }
}
