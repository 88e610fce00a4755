//! A campaign's sending window as the API shows it (days and `HH:MM` times), as it is stored
//! (ISO weekday numbers and minutes), and as the scheduler reads it.

use super::*;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

pub(super) const DAYS: [Day; 7] = [
    Day::Mon,
    Day::Tue,
    Day::Wed,
    Day::Thu,
    Day::Fri,
    Day::Sat,
    Day::Sun,
];

crate::text_shape!(
    /// A local time of day, `HH:MM` (24-hour clock; `24:00` is the end of the day).
    ClockTime,
    5,
    5,
    Some("^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
);

/// When a campaign's emails may go out, in its time zone.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(deny_unknown_fields)]
pub struct SendingWindow {
    /// The days (default Monday to Friday).
    #[oai(validator(min_items = 1, max_items = 7))]
    pub days: Vec<Day>,
    /// From this local time (`HH:MM`, default `09:00`).
    pub from: Shaped<ClockTime>,
    /// Until this local time, exclusive (`HH:MM`, default `17:00`). At or before `from`, the
    /// window runs past midnight (`22:00` to `06:00`); equal to it, all day.
    pub to: Shaped<ClockTime>,
}

impl Default for SendingWindow {
    fn default() -> Self {
        Self {
            days: DAYS[..5].to_vec(),
            from: "09:00".into(),
            to: "17:00".into(),
        }
    }
}

pub(super) fn minutes(text: &str) -> Option<i64> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 1440).then_some(h * 60 + m)
}

pub(super) fn clock(minutes: i64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The window's columns: days as ISO weekday numbers, and its minutes.
pub(super) fn window_columns(issues: &mut Issues, w: &SendingWindow) -> (String, i64, i64) {
    let mut days: Vec<usize> = w
        .days
        .iter()
        .filter_map(|d| DAYS.iter().position(|x| x == d).map(|i| i + 1))
        .collect();
    days.sort_unstable();
    days.dedup();
    if days.is_empty() {
        issues.add("window.days", "must name at least one day");
    }
    let from = minutes(&w.from);
    let to = minutes(&w.to);
    if from.is_none() {
        issues.add("window.from", "must be a time HH:MM");
    }
    if to.is_none() {
        issues.add("window.to", "must be a time HH:MM");
    }
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(0));
    (
        serde_json::to_string(&days).unwrap_or_else(|_| "[]".into()),
        from,
        to,
    )
}

/// The campaign's window and time zone, for the scheduler.
pub(crate) fn timing(
    conn: &Connection,
    c: &Campaign,
) -> DomainResult<(schedule::Window, jiff::tz::TimeZone)> {
    let zone = match &c.timezone.0 {
        Some(z) => z.clone(),
        None => conn.query_row(
            "SELECT o.timezone FROM organizations o JOIN campaigns c ON c.org_id = o.id WHERE c.id = ?1",
            params![c.id],
            |r| r.get::<_, String>(0),
        )?,
    };
    let tz = schedule::zone(&zone);
    let mut days = [false; 7];
    for d in &c.window.days {
        if let Some(i) = DAYS.iter().position(|x| x == d) {
            days[i] = true;
        }
    }
    let window = schedule::Window {
        days,
        from: minutes(&c.window.from).unwrap_or(0),
        to: minutes(&c.window.to).unwrap_or(1440),
    };
    Ok((window, tz))
}
