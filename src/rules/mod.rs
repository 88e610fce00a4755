//! Agent intelligence: deterministic rules, as pure functions over plain structs.
//!
//! Nothing here does I/O or reads a clock: the domain layer gathers the facts (and "now") and
//! these functions turn them into scores, each with the factors that made it, so a reader can
//! check any score by hand against the constants documented beside each rule.

pub mod buying_signals;
pub mod deal_risk;
pub mod lead_score;

/// Whole days between two instants in Unix milliseconds (never negative).
pub fn days_between(from_ms: i64, to_ms: i64) -> i64 {
    ((to_ms - from_ms).max(0)) / crate::clock::DAY_MS
}

/// Which rule a factor comes from. Variants are in alphabetical order, so factors with equal
/// points sort by their code's name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, poem_openapi::Enum, serde::Serialize,
)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum FactorCode {
    /// Risk: days without activity.
    ActivityGap,
    /// Keeps a score within 0..100.
    Cap,
    /// Risk: the expected close date has passed.
    CloseDatePassed,
    /// Lead completeness: has a company.
    Company,
    /// Lead completeness: has a country.
    Country,
    /// Lead completeness: has an email address.
    Email,
    /// Lead completeness: has a first and last name.
    FullName,
    /// Risk: a deal worth well above the average is stalling.
    HighValueStalling,
    /// Lead fit: company size in the profile's range.
    IcpCompanySize,
    /// Lead fit: country in the profile.
    IcpCountry,
    /// Lead fit: industry in the profile.
    IcpIndustry,
    /// Lead fit: title matches the profile.
    IcpTitle,
    /// Lead fit: the organization has no profile yet.
    NoIcp,
    /// Risk: no open task.
    NoNextStep,
    /// Risk: overdue tasks.
    OverdueTasks,
    /// Lead completeness: has a phone number.
    Phone,
    /// Lead engagement: recent activities.
    RecentActivity,
    /// Risk (lowers it): an email opened recently.
    RecentOpen,
    /// A reply recently (lowers a deal's risk, raises a lead's engagement).
    RecentReply,
    /// Risk: longer in the stage than its limit.
    StageRotting,
    /// Lead completeness: has a job title.
    Title,
}

/// One rule's contribution to a score.
#[derive(Debug, Clone, PartialEq, Eq, poem_openapi::Object, serde::Serialize)]
pub struct Factor {
    /// Which rule.
    pub code: FactorCode,
    /// Points it adds (negative: takes away).
    pub points: i64,
    /// What it saw, as a sentence.
    pub detail: String,
}

/// A factor.
pub fn factor(code: FactorCode, points: i64, detail: String) -> Factor {
    Factor {
        code,
        points,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::registry::Registry;
    use poem_openapi::types::Type;

    use super::FactorCode;

    /// Ties sort by the code's name only while the variants stay in alphabetical order.
    #[test]
    fn factor_codes_are_declared_in_alphabetical_order() {
        let mut registry = Registry::new();
        FactorCode::register(&mut registry);
        let names: Vec<String> = registry.schemas["FactorCode"]
            .enum_items
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names.len(), 21);
        assert_eq!(names, sorted);
    }
}
