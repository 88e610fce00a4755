//! Agent intelligence: deterministic rules, as pure functions over plain structs.
//!
//! Nothing here does I/O or reads a clock: the domain layer gathers the facts (and "now") and
//! these functions turn them into scores, each with the factors that made it, so a reader can
//! check any score by hand against the constants documented beside each rule.

pub mod lead_score;
pub mod risk;
pub mod signals;

/// Whole days between two instants in Unix milliseconds (never negative).
pub fn days_between(from_ms: i64, to_ms: i64) -> i64 {
    ((to_ms - from_ms).max(0)) / crate::clock::DAY_MS
}

/// One rule's contribution to a score.
#[derive(Debug, Clone, PartialEq, Eq, poem_openapi::Object)]
pub struct Factor {
    /// Which rule (`stage_rotting`, `activity_gap`, `icp_industry`, ...).
    pub code: String,
    /// Points it adds (negative: takes away).
    pub points: i64,
    /// What it saw, as a sentence.
    pub detail: String,
}

/// A factor.
pub fn factor(code: &str, points: i64, detail: String) -> Factor {
    Factor {
        code: code.into(),
        points,
        detail,
    }
}
