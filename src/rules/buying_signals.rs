//! Buying signals: moments that call for action, each with a score (how strongly it calls)
//! and the evidence behind it.
//!
//! | type | score | cause | resolves when |
//! |---|---|---|---|
//! | `email_replied` | 90 | a reply arrives on a deal | we act on the deal afterwards |
//! | `high_engagement` | 85 | 3+ opens and replies on a deal within 7 days | the 7-day count drops below 3 |
//! | `close_date_passed` | 80 | an open deal's expected close date has passed | the date moves or the deal closes |
//! | `overdue_followup` | 75 | an open task on an open deal or lead is past due | the task is done, moved or gone |
//! | `stage_stalled` | 70 | an open deal has sat in its stage for its rotting days | it moves or closes |
//! | `activity_gap` | 65 | no activity on an open deal for 14 days | an activity is logged or it closes |
//! | `email_opened` | 60 | an email on a deal is opened | we act on the deal afterwards |
//!
//! Every signal has a cause key; at most one signal per cause is open (or dismissed) at a time,
//! so a sweep that finds the same cause again changes nothing.

use poem_openapi::Enum;

use super::deal_risk::DealFacts;
use crate::clock::{Millis, DAY_MS};

/// Days without activity on an open deal that raise `activity_gap`.
pub const ACTIVITY_GAP_SIGNAL_DAYS: i64 = 14;
/// Opens and replies within [`HIGH_ENGAGEMENT_WINDOW_DAYS`] that raise `high_engagement`.
pub const HIGH_ENGAGEMENT_COUNT: i64 = 3;
/// The window for `high_engagement`, in days.
pub const HIGH_ENGAGEMENT_WINDOW_DAYS: i64 = 7;

/// The kinds of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SignalType {
    /// An email on the deal was opened.
    EmailOpened,
    /// The buyer replied.
    EmailReplied,
    /// No activity for a long time.
    ActivityGap,
    /// A follow-up task is past due.
    OverdueFollowup,
    /// The deal has sat in its stage too long.
    StageStalled,
    /// The expected close date has passed.
    CloseDatePassed,
    /// Many opens and replies in a short time.
    HighEngagement,
}

impl SignalType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailOpened => "email_opened",
            Self::EmailReplied => "email_replied",
            Self::ActivityGap => "activity_gap",
            Self::OverdueFollowup => "overdue_followup",
            Self::StageStalled => "stage_stalled",
            Self::CloseDatePassed => "close_date_passed",
            Self::HighEngagement => "high_engagement",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// How strongly this kind of signal calls for action, 0–100.
    pub fn score(self) -> i64 {
        match self {
            Self::EmailReplied => 90,
            Self::HighEngagement => 85,
            Self::CloseDatePassed => 80,
            Self::OverdueFollowup => 75,
            Self::StageStalled => 70,
            Self::ActivityGap => 65,
            Self::EmailOpened => 60,
        }
    }

    /// Whether a sweep over time decides this signal (rather than a write).
    pub fn is_time_based(self) -> bool {
        !matches!(self, Self::EmailOpened | Self::EmailReplied)
    }
}

/// Every signal type.
pub const ALL: [SignalType; 7] = [
    SignalType::EmailOpened,
    SignalType::EmailReplied,
    SignalType::ActivityGap,
    SignalType::OverdueFollowup,
    SignalType::StageStalled,
    SignalType::CloseDatePassed,
    SignalType::HighEngagement,
];

/// A reason for a signal to exist now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The kind.
    pub signal_type: SignalType,
    /// Identifies the cause; one signal per key.
    pub key: String,
    /// A sentence for people.
    pub title: String,
    /// Ids of the records behind it.
    pub evidence: Vec<String>,
}

/// The time-based causes on an open deal at `now`. `overdue_task_ids` are the ids of the
/// deal's overdue tasks, in the order of `facts.overdue_tasks`; `recent_engagement` the ids of
/// opens and replies in the high-engagement window.
pub fn deal_causes(
    deal_id: &str,
    stage_id: &str,
    facts: &DealFacts,
    overdue_task_ids: &[String],
    recent_engagement: &[String],
    now: Millis,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    if facts.status != "open" {
        return causes;
    }
    let idle = super::days_between(facts.last_touch_at, now);
    if idle >= ACTIVITY_GAP_SIGNAL_DAYS {
        causes.push(Cause {
            signal_type: SignalType::ActivityGap,
            key: format!("activity_gap:{deal_id}"),
            title: format!("No activity on the deal in {idle} days"),
            evidence: vec![deal_id.to_string()],
        });
    }
    for ((title, _), task_id) in facts.overdue_tasks.iter().zip(overdue_task_ids) {
        causes.push(Cause {
            signal_type: SignalType::OverdueFollowup,
            key: format!("overdue_followup:{task_id}"),
            title: format!("Follow-up '{title}' is overdue"),
            evidence: vec![task_id.clone(), deal_id.to_string()],
        });
    }
    let in_stage = super::days_between(facts.stage_entered_at, now);
    if let Some(limit) = facts.rotting_days.filter(|r| *r > 0 && in_stage >= *r) {
        causes.push(Cause {
            signal_type: SignalType::StageStalled,
            key: format!("stage_stalled:{deal_id}:{stage_id}"),
            title: format!("{in_stage} days in {} (limit {limit})", facts.stage_name),
            evidence: vec![deal_id.to_string(), stage_id.to_string()],
        });
    }
    if let Some(close) = facts.expected_close_at.filter(|c| *c + DAY_MS <= now) {
        causes.push(Cause {
            signal_type: SignalType::CloseDatePassed,
            key: format!("close_date_passed:{deal_id}:{close}"),
            title: format!(
                "Expected close date passed {} days ago",
                super::days_between(close, now)
            ),
            evidence: vec![deal_id.to_string()],
        });
    }
    causes.extend(high_engagement_cause(deal_id, recent_engagement));
    causes
}

/// `high_engagement` for a deal with enough opens and replies (their ids) in the window; the
/// sweep and a freshly recorded open or reply both ask, under the same key.
pub fn high_engagement_cause(deal_id: &str, recent_engagement: &[String]) -> Option<Cause> {
    (recent_engagement.len() as i64 >= HIGH_ENGAGEMENT_COUNT).then(|| Cause {
        signal_type: SignalType::HighEngagement,
        key: format!("high_engagement:{deal_id}"),
        title: format!(
            "{} opens and replies in {HIGH_ENGAGEMENT_WINDOW_DAYS} days",
            recent_engagement.len()
        ),
        evidence: recent_engagement.to_vec(),
    })
}

/// The cause a recorded open or reply raises on a deal or lead (one open signal per subject
/// and kind; further opens add their evidence to it).
pub fn engagement_cause(
    signal_type: SignalType,
    subject_id: &str,
    activity_id: &str,
    subject: Option<&str>,
) -> Cause {
    let what = match signal_type {
        SignalType::EmailReplied => "replied",
        _ => "opened an email",
    };
    Cause {
        signal_type,
        key: format!("{}:{subject_id}", signal_type.as_str()),
        title: match subject {
            Some(s) => format!("The buyer {what}: {s}"),
            None => format!("The buyer {what}"),
        },
        evidence: vec![activity_id.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_867_200_000;

    fn facts() -> DealFacts {
        DealFacts {
            status: "open",
            stage_name: "Qualified".into(),
            rotting_days: Some(14),
            stage_entered_at: NOW,
            last_touch_at: NOW,
            open_tasks: 1,
            ..DealFacts::default()
        }
    }

    #[test]
    fn a_healthy_deal_has_no_causes() {
        assert!(deal_causes("deal_1", "stg_1", &facts(), &[], &[], NOW).is_empty());
    }

    #[test]
    fn each_time_rule_names_its_cause() {
        let f = DealFacts {
            stage_entered_at: NOW - 20 * DAY_MS,
            last_touch_at: NOW - 15 * DAY_MS,
            overdue_tasks: vec![("Call back".into(), NOW - DAY_MS)],
            expected_close_at: Some(NOW - 3 * DAY_MS),
            ..facts()
        };
        let causes = deal_causes("deal_1", "stg_1", &f, &["task_9".into()], &[], NOW);
        let keys: Vec<&str> = causes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "activity_gap:deal_1",
                "overdue_followup:task_9",
                "stage_stalled:deal_1:stg_1",
                &format!("close_date_passed:deal_1:{}", NOW - 3 * DAY_MS)
            ]
        );
        assert_eq!(causes[1].title, "Follow-up 'Call back' is overdue");
        assert_eq!(causes[1].evidence, ["task_9", "deal_1"]);
        // 13 idle days is not yet a gap; closed deals raise nothing.
        let almost = DealFacts {
            last_touch_at: NOW - 13 * DAY_MS,
            ..facts()
        };
        assert!(deal_causes("d", "s", &almost, &[], &[], NOW).is_empty());
        let won = DealFacts { status: "won", ..f };
        assert!(deal_causes("d", "s", &won, &["t".into()], &[], NOW).is_empty());
    }

    #[test]
    fn three_engagements_in_a_week_are_high_engagement() {
        let ids: Vec<String> = vec!["act_1".into(), "act_2".into(), "act_3".into()];
        let causes = deal_causes("deal_1", "s", &facts(), &[], &ids, NOW);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].signal_type.score(), 85);
        assert_eq!(causes[0].evidence, ids);
        assert!(deal_causes("deal_1", "s", &facts(), &[], &ids[..2], NOW).is_empty());
    }
}
