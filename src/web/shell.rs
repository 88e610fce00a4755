//! The frame every page shares (head, navigation, the CSRF token) and the small formats the
//! pages use (money, dates, risk badges).

use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::Viewer;
use crate::clock::Millis;
use crate::rules::deal_risk::RiskLevel;

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Today,
    Board,
    Leads,
    Campaigns,
    Analytics,
    Settings,
}

const NAV: &[(Section, &str, &str)] = &[
    (Section::Today, "/today", "Today"),
    (Section::Board, "/board", "Pipeline"),
    (Section::Leads, "/leads", "Leads"),
    (Section::Campaigns, "/campaigns", "Campaigns"),
    (Section::Analytics, "/analytics", "Analytics"),
    (Section::Settings, "/settings", "Settings"),
];

/// A page of the app for a signed-in viewer.
pub fn page(viewer: &Viewer, section: Section, title: &str, body: Markup) -> Markup {
    let csrf = viewer.csrf();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, Some(&csrf)))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/today" { "Clozup" }
                    nav aria-label="Main" {
                        ul {
                            @for (s, href, label) in NAV {
                                li {
                                    @if *s == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/logout" {
                        (csrf_field(&csrf))
                        button type="submit" { "Sign out" }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// A page with no navigation (sign in, refusals).
pub fn bare(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None))
            body.bare {
                main #main {
                    h1 { (title) }
                    p { (message) }
                    p { a href="/" { "Back to Clozup" } }
                }
            }
        }
    }
}

/// The document head: the stylesheet and script (by content-hashed URL, so they are cached for
/// good and never stale) and, for a signed-in page, the CSRF token the script sends.
pub fn head(title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Clozup" }
            link rel="stylesheet" href=(assets::url("app.css"));
            @if let Some(token) = csrf {
                meta name="csrf-token" content=(token);
            }
            script src=(assets::url("sortable.min.js")) defer {}
            script src=(assets::url("app.js")) defer {}
        }
    }
}

/// The hidden field every form carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A message above a form: what went wrong, or what was done.
pub fn notice(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.notice.error role="alert" { (e) }
        }
    }
}

/// An amount in major units with its currency, grouped by thousands (`12,500 EUR`).
pub fn money(value: f64, currency: &str) -> String {
    let whole = value.trunc() as i64;
    let cents = ((value - value.trunc()).abs() * 100.0).round() as i64;
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if whole < 0 { "-" } else { "" };
    if cents == 0 {
        format!("{sign}{grouped} {currency}")
    } else {
        format!("{sign}{grouped}.{cents:02} {currency}")
    }
}

/// An enum's wire word as text (`at_risk` -> "at risk").
pub fn word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s.replace('_', " "),
        _ => String::new(),
    }
}

/// Whole days from `since` to `now`.
pub fn days_since(since: Millis, now: Millis) -> i64 {
    (now - since).max(0) / 86_400_000
}

/// A time as `2026-12-03 09:30 UTC`.
pub fn when(ms: Millis) -> String {
    let t = crate::timefmt::format_ms(ms);
    format!("{} {} UTC", &t[..10], &t[11..16])
}

/// The risk level as a word and the badge's class.
pub fn risk(level: Option<RiskLevel>) -> (&'static str, &'static str) {
    match level {
        Some(RiskLevel::Critical) => ("critical risk", "risk critical"),
        Some(RiskLevel::High) => ("high risk", "risk high"),
        Some(RiskLevel::Medium) => ("medium risk", "risk medium"),
        Some(RiskLevel::Low) => ("low risk", "risk low"),
        Some(RiskLevel::None) | None => ("closed", "risk none"),
    }
}

/// The risk badge.
pub fn risk_badge(level: Option<RiskLevel>, score: Option<i64>) -> Markup {
    let (word, class) = risk(level);
    html! {
        span class=(class) {
            (word)
            @if let Some(s) = score { " " (s) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands_and_keeps_cents() {
        assert_eq!(money(12500.0, "EUR"), "12,500 EUR");
        assert_eq!(money(1234567.5, "USD"), "1,234,567.50 USD");
        assert_eq!(money(999.0, "USD"), "999 USD");
        assert_eq!(money(-1000.0, "USD"), "-1,000 USD");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = bare("<b>", "a & <script>");
        let s = page.into_string();
        assert!(s.contains("&lt;b&gt;"));
        assert!(s.contains("a &amp; &lt;script&gt;"));
        assert!(!s.contains("<script>"));
    }
}
