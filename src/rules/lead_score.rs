//! Lead score, 0–100: profile completeness (up to 30), engagement (up to 30) and fit to the
//! organization's ideal customer profile (up to 40).
//!
//! | part | code | points |
//! |---|---|---|
//! | completeness | `email`, `phone`, `title`, `company`, `full_name`, `country` | 8, 5, 5, 5, 4, 3 |
//! | engagement | `recent_activity` | 5 per activity in the last 30 days, at most 20 |
//! | engagement | `recent_reply` | 10 for a reply in the last 30 days |
//! | fit | `icp_industry`, `icp_title`, `icp_country`, `icp_company_size` | 40 shared by the profile's criteria in the ratio 12 : 12 : 8 : 8 |
//!
//! Fit only weighs the criteria the profile sets, so a profile naming only industries gives a
//! matching lead the full 40; with no profile at all, fit is 0.

use poem_openapi::Object;
use serde::{Deserialize, Serialize};

use super::{factor, Factor, FactorCode};
use crate::clock::{Millis, DAY_MS};
use crate::shape::List;

/// Longest industry, title or country in the ideal customer profile, in characters.
pub const ICP_ENTRY_MAX: usize = 100;

crate::text_shape!(
    /// An industry, title or country of the profile: not blank, up to [`ICP_ENTRY_MAX`]
    /// characters as sent.
    IcpEntry,
    0,
    ICP_ENTRY_MAX,
    Some(crate::shape::NOT_BLANK_PATTERN)
);

// The fit part's input, owned here with the rule that reads it; the organization stores it as
// one of its settings (domain::orgs).
/// The ideal customer profile that lead scoring measures fit against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Object)]
#[oai(deny_unknown_fields)]
pub struct Icp {
    /// Industries that buy (case-insensitive match on a company's industry).
    #[oai(default)]
    #[serde(default)]
    pub industries: List<IcpEntry, 0, 100>,
    /// Job titles (or words in them) of the people who decide, e.g. "VP Sales".
    #[oai(default)]
    #[serde(default)]
    pub titles: List<IcpEntry, 0, 100>,
    /// ISO 3166 country codes or names of the markets served.
    #[oai(default)]
    #[serde(default)]
    pub countries: List<IcpEntry, 0, 300>,
    /// Smallest fitting company, in employees.
    #[oai(validator(minimum(value = "0")))]
    #[serde(default)]
    #[oai(nullable)]
    pub company_size_min: Option<i64>,
    /// Largest fitting company, in employees (below `company_size_min`, no size fits).
    #[oai(validator(minimum(value = "0")))]
    #[serde(default)]
    #[oai(nullable)]
    pub company_size_max: Option<i64>,
}

/// Completeness points per field: (code, points, description).
pub const COMPLETENESS: &[(FactorCode, i64, &str)] = &[
    (FactorCode::Email, 8, "Has an email address"),
    (FactorCode::Phone, 5, "Has a phone number"),
    (FactorCode::Title, 5, "Has a job title"),
    (FactorCode::Company, 5, "Has a company"),
    (FactorCode::FullName, 4, "Has a first and last name"),
    (FactorCode::Country, 3, "Has a country"),
];
/// Most completeness points.
pub const COMPLETENESS_MAX: i64 = 30;
/// Points per activity in the engagement window.
pub const ACTIVITY_POINTS: i64 = 5;
/// Most points from activities.
pub const ACTIVITY_MAX_POINTS: i64 = 20;
/// Points for a reply in the engagement window.
pub const REPLY_POINTS: i64 = 10;
/// Most engagement points.
pub const ENGAGEMENT_MAX: i64 = 30;
/// How far back engagement counts, in days.
pub const ENGAGEMENT_WINDOW_DAYS: i64 = 30;
/// Most fit points.
pub const FIT_MAX: i64 = 40;
/// Relative weights of the profile's criteria.
pub const FIT_WEIGHTS: (i64, i64, i64, i64) = (12, 12, 8, 8);

/// What the rules need to know about a lead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadFacts {
    /// Has a first name.
    pub first_name: bool,
    /// Has a last name.
    pub last_name: bool,
    /// Has an email.
    pub email: bool,
    /// Has a phone.
    pub phone: bool,
    /// The job title.
    pub title: Option<String>,
    /// Has a company (record or name).
    pub company: bool,
    /// The country.
    pub country: Option<String>,
    /// The company record's industry.
    pub industry: Option<String>,
    /// The company record's size.
    pub company_size: Option<i64>,
    /// When each activity on the lead happened (any order).
    pub activity_times: Vec<Millis>,
    /// The last reply received from the lead.
    pub last_reply_at: Option<Millis>,
}

/// One part of the score.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct ScorePart {
    /// Points of this part.
    pub score: i64,
    /// The most this part can give.
    pub max: i64,
    /// What made them.
    pub factors: Vec<Factor>,
}

/// A lead's score and its breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct LeadScore {
    /// 0–100: the sum of the three parts.
    pub score: i64,
    /// How much of the profile is filled in.
    pub completeness: ScorePart,
    /// How engaged the lead has been in the last 30 days.
    pub engagement: ScorePart,
    /// How well the lead fits the ideal customer profile.
    pub fit: ScorePart,
}

fn part(max: i64, factors: Vec<Factor>) -> ScorePart {
    ScorePart {
        score: factors.iter().map(|f| f.points).sum::<i64>().min(max),
        max,
        factors,
    }
}

fn contains_ci(list: &[impl AsRef<str>], value: &str) -> bool {
    list.iter()
        .any(|v| v.as_ref().trim().eq_ignore_ascii_case(value.trim()))
}

/// Scores a lead at `now` against `icp`.
pub fn score(f: &LeadFacts, icp: &Icp, now: Millis) -> LeadScore {
    let has = [
        f.email,
        f.phone,
        f.title.is_some(),
        f.company,
        f.first_name && f.last_name,
        f.country.is_some(),
    ];
    let completeness = part(
        COMPLETENESS_MAX,
        COMPLETENESS
            .iter()
            .zip(has)
            .filter(|(_, present)| *present)
            .map(|((code, points, what), _)| factor(*code, *points, what.to_string()))
            .collect(),
    );

    let since = now - ENGAGEMENT_WINDOW_DAYS * DAY_MS;
    let recent = f
        .activity_times
        .iter()
        .filter(|t| **t >= since && **t <= now)
        .count() as i64;
    let mut engagement = Vec::new();
    if recent > 0 {
        engagement.push(factor(
            FactorCode::RecentActivity,
            (recent * ACTIVITY_POINTS).min(ACTIVITY_MAX_POINTS),
            format!("{recent} activities in the last {ENGAGEMENT_WINDOW_DAYS} days"),
        ));
    }
    if f.last_reply_at.is_some_and(|t| t >= since) {
        engagement.push(factor(
            FactorCode::RecentReply,
            REPLY_POINTS,
            "Replied in the last 30 days".into(),
        ));
    }
    let engagement = part(ENGAGEMENT_MAX, engagement);

    let (wi, wt, wc, ws) = FIT_WEIGHTS;
    let size_set = icp.company_size_min.is_some() || icp.company_size_max.is_some();
    let criteria = [
        (!icp.industries.is_empty(), wi),
        (!icp.titles.is_empty(), wt),
        (!icp.countries.is_empty(), wc),
        (size_set, ws),
    ];
    let total_weight: i64 = criteria
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, w)| w)
        .sum();
    let share = |w: i64| (FIT_MAX * w + total_weight / 2) / total_weight.max(1);
    let mut fit = Vec::new();
    if total_weight == 0 {
        let fit = ScorePart {
            score: 0,
            max: FIT_MAX,
            factors: vec![factor(
                FactorCode::NoIcp,
                0,
                "The organization has no ideal customer profile yet".into(),
            )],
        };
        return LeadScore {
            score: completeness.score + engagement.score,
            completeness,
            engagement,
            fit,
        };
    }
    if let Some(industry) = f
        .industry
        .as_deref()
        .filter(|i| contains_ci(&icp.industries, i))
    {
        fit.push(factor(
            FactorCode::IcpIndustry,
            share(wi),
            format!("Industry {industry} is in the profile"),
        ));
    }
    if let Some(title) = &f.title {
        let lower = title.to_lowercase();
        if let Some(t) = icp
            .titles
            .iter()
            .find(|t| !t.trim().is_empty() && lower.contains(&t.trim().to_lowercase()))
        {
            fit.push(factor(
                FactorCode::IcpTitle,
                share(wt),
                format!("Title {title} matches {t}"),
            ));
        }
    }
    if let Some(country) = f
        .country
        .as_deref()
        .filter(|c| contains_ci(&icp.countries, c))
    {
        fit.push(factor(
            FactorCode::IcpCountry,
            share(wc),
            format!("Country {country} is in the profile"),
        ));
    }
    if let Some(size) = f.company_size.filter(|_| size_set) {
        let fits = icp.company_size_min.is_none_or(|m| size >= m)
            && icp.company_size_max.is_none_or(|m| size <= m);
        if fits {
            fit.push(factor(
                FactorCode::IcpCompanySize,
                share(ws),
                format!("Company size {size} is in range"),
            ));
        }
    }
    let fit = part(FIT_MAX, fit);
    LeadScore {
        score: (completeness.score + engagement.score + fit.score).min(100),
        completeness,
        engagement,
        fit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_867_200_000;

    fn full_icp() -> Icp {
        Icp {
            industries: vec!["SaaS"].into(),
            titles: vec!["VP Sales", "Head of"].into(),
            countries: vec!["DE"].into(),
            company_size_min: Some(50),
            company_size_max: Some(500),
        }
    }

    #[test]
    fn a_perfect_lead_scores_100() {
        let f = LeadFacts {
            first_name: true,
            last_name: true,
            email: true,
            phone: true,
            title: Some("VP Sales EMEA".into()),
            company: true,
            country: Some("de".into()),
            industry: Some("saas".into()),
            company_size: Some(120),
            activity_times: vec![NOW - DAY_MS; 5],
            last_reply_at: Some(NOW - 3 * DAY_MS),
        };
        let s = score(&f, &full_icp(), NOW);
        assert_eq!(
            (
                s.completeness.score,
                s.engagement.score,
                s.fit.score,
                s.score
            ),
            (30, 30, 40, 100)
        );
        let fit: Vec<(FactorCode, i64)> =
            s.fit.factors.iter().map(|f| (f.code, f.points)).collect();
        assert_eq!(
            fit,
            [
                (FactorCode::IcpIndustry, 12),
                (FactorCode::IcpTitle, 12),
                (FactorCode::IcpCountry, 8),
                (FactorCode::IcpCompanySize, 8)
            ]
        );
    }

    #[test]
    fn fit_weighs_only_the_criteria_the_profile_sets() {
        let icp = Icp {
            industries: vec!["SaaS"].into(),
            ..Icp::default()
        };
        let f = LeadFacts {
            email: true,
            industry: Some("SaaS".into()),
            ..LeadFacts::default()
        };
        let s = score(&f, &icp, NOW);
        assert_eq!((s.completeness.score, s.fit.score, s.score), (8, 40, 48));
        let none = score(&f, &Icp::default(), NOW);
        assert_eq!(
            (none.fit.score, none.fit.factors[0].code, none.score),
            (0, FactorCode::NoIcp, 8)
        );
    }

    #[test]
    fn engagement_counts_only_the_last_30_days_and_caps() {
        let f = LeadFacts {
            activity_times: vec![NOW - 31 * DAY_MS, NOW - 2 * DAY_MS, NOW - 3 * DAY_MS],
            last_reply_at: Some(NOW - 40 * DAY_MS),
            ..LeadFacts::default()
        };
        let s = score(&f, &full_icp(), NOW);
        assert_eq!(s.engagement.score, 10);
        assert_eq!(
            s.engagement.factors[0].detail,
            "2 activities in the last 30 days"
        );
        let busy = LeadFacts {
            activity_times: vec![NOW; 9],
            ..LeadFacts::default()
        };
        assert_eq!(score(&busy, &full_icp(), NOW).engagement.score, 20);
    }
}
