//! Deal risk: how likely an open deal is to slip, why, and what to do about it.
//!
//! The score is the sum of the factors below, capped to 0..=100. Every factor says how many
//! points it adds (or, for engagement, takes away), so the factors always add up to the score
//! (a `cap` factor records any trimming at 100 or 0).
//!
//! | code | points | when |
//! |---|---|---|
//! | `stage_rotting` | 20, or 30 at twice the limit | days in stage ≥ the stage's `rotting_days` |
//! | `activity_gap` | 20 (≥ 7 days), 30 (≥ 14), 40 (≥ 30) | days since the last activity |
//! | `overdue_tasks` | 15 for one, +5 each more, at most 25 | open tasks past due |
//! | `no_next_step` | 10 | no open task |
//! | `close_date_passed` | 15 | expected close date before today |
//! | `high_value_stalling` | 15 | value ≥ 2× the average open deal and stalling (rotting or a 7-day gap) |
//! | `recent_reply` | −15 | a reply received in the last 7 days |
//! | `recent_open` | −5 | an email opened in the last 7 days |
//!
//! Levels: low < 30 ≤ medium < 70 ≤ high < 85 ≤ critical (see [`HIGH_FROM`]). Won and lost deals have no risk.

use poem_openapi::Enum;

use super::{factor, Factor as RiskFactor, FactorCode};

use crate::clock::Millis;

/// Points when a deal has sat in its stage for at least the stage's `rotting_days`.
pub const STAGE_ROTTING_POINTS: i64 = 20;
/// Points instead when it has sat there twice as long.
pub const STAGE_ROTTING_DOUBLE_POINTS: i64 = 30;
/// Days without activity that start to count, and their points.
pub const ACTIVITY_GAP_STEPS: &[(i64, i64)] = &[(30, 40), (14, 30), (7, 20)];
/// Points for the first overdue task.
pub const OVERDUE_FIRST_POINTS: i64 = 15;
/// Points for each further overdue task.
pub const OVERDUE_EACH_MORE_POINTS: i64 = 5;
/// Most points overdue tasks can add.
pub const OVERDUE_MAX_POINTS: i64 = 25;
/// Points when no open task (next step) exists.
pub const NO_NEXT_STEP_POINTS: i64 = 10;
/// Points when the expected close date has passed.
pub const CLOSE_DATE_PASSED_POINTS: i64 = 15;
/// A deal is high value at this multiple of the organization's average open deal value.
pub const HIGH_VALUE_MULTIPLE: f64 = 2.0;
/// Points for a high-value deal that is stalling.
pub const HIGH_VALUE_STALLING_POINTS: i64 = 15;
/// Days without activity that count as stalling for the high-value rule.
pub const STALLING_GAP_DAYS: i64 = 7;
/// How far back engagement counts, in days.
pub const ENGAGEMENT_WINDOW_DAYS: i64 = 7;
/// Points (negative) for a reply in the engagement window.
pub const RECENT_REPLY_POINTS: i64 = -15;
/// Points (negative) for an email opened in the engagement window.
pub const RECENT_OPEN_POINTS: i64 = -5;

/// What the rules need to know about a deal, gathered by the domain layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DealFacts {
    /// `open`, `won` or `lost`.
    pub status: &'static str,
    /// Value in minor units.
    pub value: i64,
    /// The current stage's name.
    pub stage_name: std::sync::Arc<str>,
    /// The current stage's rotting days.
    pub rotting_days: Option<i64>,
    /// When the deal entered its stage.
    pub stage_entered_at: Millis,
    /// The last activity, or the deal's creation when there was none.
    pub last_touch_at: Millis,
    /// Open tasks past due: (title, due time), most overdue first.
    pub overdue_tasks: Vec<(String, Millis)>,
    /// How many tasks are open.
    pub open_tasks: i64,
    /// The expected close date as Unix milliseconds at its start (UTC), if set.
    pub expected_close_at: Option<Millis>,
    /// The average value of the organization's open deals, in minor units.
    pub average_open_value: f64,
    /// The last reply received, if any.
    pub last_reply_at: Option<Millis>,
    /// The last email opened, if any.
    pub last_open_at: Option<Millis>,
    /// Who to talk to, for the suggested action.
    pub contact_name: Option<String>,
}

/// Where `medium` begins.
pub const MEDIUM_FROM: i64 = 30;
/// Where `high` begins, and so `GET /deals/at-risk`'s default threshold. The reference pairs
/// 65 ("No activity in 8 days", "High value deal stalling") with `medium`, so `high` starts
/// above it.
pub const HIGH_FROM: i64 = 70;
/// Where `critical` begins.
pub const CRITICAL_FROM: i64 = 85;

/// How risky a deal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Closed deals.
    None,
    /// Under 30.
    Low,
    /// 30 to 69.
    Medium,
    /// 70 to 84.
    High,
    /// 85 and over.
    Critical,
}

impl RiskLevel {
    /// The level of a score.
    pub fn of(score: i64) -> Self {
        match score {
            s if s >= CRITICAL_FROM => Self::Critical,
            s if s >= HIGH_FROM => Self::High,
            s if s >= MEDIUM_FROM => Self::Medium,
            _ => Self::Low,
        }
    }
}

/// The assessment of a deal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// 0–100.
    pub risk_score: i64,
    /// The score's level.
    pub risk_level: RiskLevel,
    /// Whole days in the current stage.
    pub days_in_stage: i64,
    /// Whole days since the last activity (or creation).
    pub days_since_activity: i64,
    /// The factors, largest first; their points add up to the score.
    pub factors: Vec<RiskFactor>,
    /// The one thing to do next.
    pub suggested_action: String,
}

/// Applies every rule to `f`, handing each factor that applies to `emit` with its code,
/// points and a way to describe it. Descriptions are built only when asked for, so scoring
/// many deals to rank them costs no string formatting.
fn apply_rules(
    f: &DealFacts,
    now: Millis,
    days_in_stage: i64,
    days_since_activity: i64,
    emit: &mut impl FnMut(FactorCode, i64, &dyn Fn() -> String),
) -> Option<i64> {
    let rotting = f.rotting_days.filter(|r| *r > 0 && days_in_stage >= *r);
    if let Some(limit) = rotting {
        let points = if days_in_stage >= 2 * limit {
            STAGE_ROTTING_DOUBLE_POINTS
        } else {
            STAGE_ROTTING_POINTS
        };
        emit(FactorCode::StageRotting, points, &|| {
            format!("{days_in_stage} days in {} (limit {limit})", f.stage_name)
        });
    }
    if let Some((_, points)) = ACTIVITY_GAP_STEPS
        .iter()
        .find(|(d, _)| days_since_activity >= *d)
    {
        emit(FactorCode::ActivityGap, *points, &|| {
            format!("No activity in {days_since_activity} days")
        });
    }
    if !f.overdue_tasks.is_empty() {
        let n = f.overdue_tasks.len() as i64;
        let points =
            (OVERDUE_FIRST_POINTS + OVERDUE_EACH_MORE_POINTS * (n - 1)).min(OVERDUE_MAX_POINTS);
        emit(FactorCode::OverdueTasks, points, &|| {
            if n == 1 {
                "1 overdue task".to_string()
            } else {
                format!("{n} overdue tasks")
            }
        });
    }
    if f.open_tasks == 0 {
        emit(FactorCode::NoNextStep, NO_NEXT_STEP_POINTS, &|| {
            "No next step scheduled".into()
        });
    }
    let close_overdue_days = f
        .expected_close_at
        .filter(|close| *close + crate::clock::DAY_MS <= now)
        .map(|close| super::days_between(close, now));
    if let Some(days) = close_overdue_days {
        emit(
            FactorCode::CloseDatePassed,
            CLOSE_DATE_PASSED_POINTS,
            &|| format!("Expected close date passed {days} days ago"),
        );
    }
    let stalling = rotting.is_some() || days_since_activity >= STALLING_GAP_DAYS;
    if f.average_open_value > 0.0
        && f.value as f64 >= HIGH_VALUE_MULTIPLE * f.average_open_value
        && stalling
    {
        emit(
            FactorCode::HighValueStalling,
            HIGH_VALUE_STALLING_POINTS,
            &|| "High value deal stalling".into(),
        );
    }
    let window_start = now - ENGAGEMENT_WINDOW_DAYS * crate::clock::DAY_MS;
    if let Some(at) = f.last_reply_at.filter(|t| *t >= window_start) {
        emit(FactorCode::RecentReply, RECENT_REPLY_POINTS, &|| {
            format!("Replied {} days ago", super::days_between(at, now))
        });
    }
    if let Some(at) = f.last_open_at.filter(|t| *t >= window_start) {
        emit(FactorCode::RecentOpen, RECENT_OPEN_POINTS, &|| {
            format!("Opened an email {} days ago", super::days_between(at, now))
        });
    }
    close_overdue_days
}

/// The risk score alone (the sum of the factors, capped to 0..=100), for ranking many deals.
pub fn score(f: &DealFacts, now: Millis) -> i64 {
    if f.status != "open" {
        return 0;
    }
    let days_in_stage = super::days_between(f.stage_entered_at, now);
    let days_since_activity = super::days_between(f.last_touch_at, now);
    let mut raw = 0;
    apply_rules(
        f,
        now,
        days_in_stage,
        days_since_activity,
        &mut |_, points, _| raw += points,
    );
    raw.clamp(0, 100)
}

/// Assesses a deal at `now`: score, level, factors and the suggested action.
pub fn assess(f: &DealFacts, now: Millis) -> Assessment {
    let days_in_stage = super::days_between(f.stage_entered_at, now);
    let days_since_activity = super::days_between(f.last_touch_at, now);
    if f.status != "open" {
        return Assessment {
            risk_score: 0,
            risk_level: RiskLevel::None,
            days_in_stage,
            days_since_activity,
            factors: Vec::new(),
            suggested_action: format!("No action needed: the deal is {}", f.status),
        };
    }
    let mut factors = Vec::new();
    let close_overdue_days = apply_rules(
        f,
        now,
        days_in_stage,
        days_since_activity,
        &mut |code, points, detail| factors.push(factor(code, points, detail())),
    );
    let raw: i64 = factors.iter().map(|x| x.points).sum();
    let score = raw.clamp(0, 100);
    if score != raw {
        factors.push(factor(
            FactorCode::Cap,
            score - raw,
            format!("Score kept within 0..100 (was {raw})"),
        ));
    }
    factors.sort_by(|a, b| b.points.cmp(&a.points).then(a.code.cmp(&b.code)));
    Assessment {
        risk_score: score,
        risk_level: RiskLevel::of(score),
        days_in_stage,
        days_since_activity,
        suggested_action: suggest(
            f,
            now,
            &factors,
            days_since_activity,
            days_in_stage,
            close_overdue_days,
        ),
        factors,
    }
}

/// The one concrete thing to do, from the most pressing actionable factor.
fn suggest(
    f: &DealFacts,
    now: Millis,
    factors: &[RiskFactor],
    days_since_activity: i64,
    days_in_stage: i64,
    close_overdue_days: Option<i64>,
) -> String {
    let has = |code: FactorCode| factors.iter().any(|x| x.code == code);
    let with = f
        .contact_name
        .as_deref()
        .map(|n| format!(" with {n}"))
        .unwrap_or_default();
    if let Some((title, due)) = f.overdue_tasks.first() {
        let days = super::days_between(*due, now).max(1);
        let unit = if days == 1 { "day" } else { "days" };
        return format!("Complete the overdue task '{title}' ({days} {unit} overdue)");
    }
    if has(FactorCode::ActivityGap) {
        return format!(
            "Schedule a follow-up call{with} (no activity in {days_since_activity} days)"
        );
    }
    if has(FactorCode::StageRotting) {
        return format!(
            "Move the deal forward from {} or mark it lost ({days_in_stage} days in stage)",
            f.stage_name
        );
    }
    if let Some(days) = close_overdue_days {
        return format!(
            "Update the expected close date (passed {days} days ago) or re-qualify the deal"
        );
    }
    if has(FactorCode::NoNextStep) {
        return format!("Schedule the next step{with} as a task");
    }
    "Keep the momentum: confirm the next step with the buyer".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DAY_MS;

    const NOW: Millis = 1_795_867_200_000;

    fn open_deal() -> DealFacts {
        DealFacts {
            status: "open",
            value: 1_000_000,
            stage_name: "Demo Scheduled".into(),
            rotting_days: Some(10),
            stage_entered_at: NOW,
            last_touch_at: NOW,
            overdue_tasks: vec![],
            open_tasks: 1,
            expected_close_at: None,
            average_open_value: 1_000_000.0,
            last_reply_at: None,
            last_open_at: None,
            contact_name: Some("Ada Lovelace".into()),
        }
    }

    #[test]
    fn the_reference_scenario() {
        // 12 days in stage, 8 days since activity, high value, no next step.
        let f = DealFacts {
            value: 5_000_000,
            stage_entered_at: NOW - 12 * DAY_MS,
            last_touch_at: NOW - 8 * DAY_MS,
            open_tasks: 0,
            ..open_deal()
        };
        let a = assess(&f, NOW);
        assert_eq!(a.days_in_stage, 12);
        assert_eq!(a.days_since_activity, 8);
        let codes: Vec<(FactorCode, i64)> = a.factors.iter().map(|x| (x.code, x.points)).collect();
        assert_eq!(
            codes,
            [
                (FactorCode::ActivityGap, 20),
                (FactorCode::StageRotting, 20),
                (FactorCode::HighValueStalling, 15),
                (FactorCode::NoNextStep, 10)
            ]
        );
        // The reference's own example: 65, with these two factors, is `medium`.
        assert_eq!(a.risk_score, 65);
        assert_eq!(a.risk_level, RiskLevel::Medium);
        assert_eq!(a.factors[0].detail, "No activity in 8 days");
        assert_eq!(a.factors[1].detail, "12 days in Demo Scheduled (limit 10)");
        assert_eq!(a.factors[2].detail, "High value deal stalling");
        assert_eq!(
            a.suggested_action,
            "Schedule a follow-up call with Ada Lovelace (no activity in 8 days)"
        );
    }

    #[test]
    fn a_fresh_deal_with_a_next_step_is_low() {
        let a = assess(&open_deal(), NOW);
        assert_eq!((a.risk_score, a.risk_level), (0, RiskLevel::Low));
        assert!(a.factors.is_empty());
    }

    #[test]
    fn overdue_tasks_lead_the_suggestion_and_cap_at_25() {
        let f = DealFacts {
            overdue_tasks: vec![
                ("Send proposal".into(), NOW - 3 * DAY_MS),
                ("b".into(), NOW - DAY_MS),
                ("c".into(), NOW - DAY_MS),
                ("d".into(), NOW - DAY_MS),
            ],
            ..open_deal()
        };
        let a = assess(&f, NOW);
        assert_eq!(
            a.factors,
            vec![factor(
                FactorCode::OverdueTasks,
                25,
                "4 overdue tasks".into()
            )]
        );
        assert_eq!(
            a.suggested_action,
            "Complete the overdue task 'Send proposal' (3 days overdue)"
        );
    }

    #[test]
    fn everything_wrong_is_critical_and_capped_with_the_factors_still_adding_up() {
        let f = DealFacts {
            value: 9_000_000,
            stage_entered_at: NOW - 40 * DAY_MS,
            last_touch_at: NOW - 40 * DAY_MS,
            overdue_tasks: vec![("x".into(), NOW - 2 * DAY_MS)],
            open_tasks: 1,
            expected_close_at: Some(NOW - 5 * DAY_MS),
            ..open_deal()
        };
        let a = assess(&f, NOW);
        // 30 rotting + 40 gap + 15 overdue + 15 close + 15 high value = 115, capped.
        assert_eq!(a.risk_score, 100);
        assert_eq!(a.risk_level, RiskLevel::Critical);
        assert_eq!(a.factors.iter().map(|x| x.points).sum::<i64>(), 100);
        assert!(a
            .factors
            .iter()
            .any(|x| x.code == FactorCode::Cap && x.points == -15));
    }

    #[test]
    fn engagement_lowers_risk_and_never_below_zero() {
        let f = DealFacts {
            last_touch_at: NOW - 8 * DAY_MS,
            last_reply_at: Some(NOW - 2 * DAY_MS),
            last_open_at: Some(NOW - DAY_MS),
            ..open_deal()
        };
        let a = assess(&f, NOW);
        // 20 gap - 15 reply - 5 open = 0.
        assert_eq!(a.risk_score, 0);
        assert_eq!(a.factors.iter().map(|x| x.points).sum::<i64>(), 0);
        let old = DealFacts {
            last_reply_at: Some(NOW - 8 * DAY_MS),
            ..f
        };
        assert_eq!(
            assess(&old, NOW).risk_score,
            15,
            "a reply older than 7 days no longer counts"
        );
    }

    #[test]
    fn closed_deals_have_no_risk_and_levels_have_their_bounds() {
        let won = DealFacts {
            status: "won",
            last_touch_at: NOW - 90 * DAY_MS,
            ..open_deal()
        };
        let a = assess(&won, NOW);
        assert_eq!((a.risk_score, a.risk_level), (0, RiskLevel::None));
        assert_eq!(
            [29, 30, 69, 70, 84, 85].map(RiskLevel::of),
            [
                RiskLevel::Low,
                RiskLevel::Medium,
                RiskLevel::Medium,
                RiskLevel::High,
                RiskLevel::High,
                RiskLevel::Critical
            ]
        );
    }

    #[test]
    fn a_close_date_today_is_not_yet_passed() {
        let today = DealFacts {
            expected_close_at: Some(NOW - 10 * 3_600_000),
            ..open_deal()
        };
        assert_eq!(assess(&today, NOW).risk_score, 0);
        let yesterday = DealFacts {
            expected_close_at: Some(NOW - DAY_MS - 1),
            ..open_deal()
        };
        assert_eq!(
            assess(&yesterday, NOW).factors[0].code,
            FactorCode::CloseDatePassed
        );
    }
}
