//! How a campaign is doing, as a whole and step by step, counted from its enrollments, the
//! steps they ran and the emails those steps sent.

use super::*;

/// Counts and rates of a campaign or of one of its steps.
#[derive(Debug, Clone, Default, Object, serde::Serialize)]
pub struct Funnel {
    /// Leads enrolled (for a step: enrollments that ran it).
    pub enrolled: i64,
    /// Enrollments still running (campaign only; 0 for a step).
    pub active: i64,
    /// Emails accepted by the mail server (or logged).
    pub sent: i64,
    /// Emails opened at least once.
    pub opened: i64,
    /// Enrollments stopped by a reply (for a step: after it was their last).
    pub replied: i64,
    /// Enrollments stopped by a bounce.
    pub bounced: i64,
    /// Enrollments stopped by an unsubscribe.
    pub unsubscribed: i64,
    /// Enrollments stopped by a deal or a conversion.
    pub converted: i64,
    /// opened / sent (0 when nothing was sent).
    pub open_rate: f64,
    /// replied / sent.
    pub reply_rate: f64,
    /// bounced / sent.
    pub bounce_rate: f64,
    /// unsubscribed / sent.
    pub unsubscribe_rate: f64,
    /// converted / enrolled.
    pub conversion_rate: f64,
}

impl Funnel {
    fn with_rates(mut self) -> Self {
        let rate = |n: i64, of: i64| {
            if of == 0 {
                0.0
            } else {
                (n as f64 / of as f64 * 10_000.0).round() / 10_000.0
            }
        };
        self.open_rate = rate(self.opened, self.sent);
        self.reply_rate = rate(self.replied, self.sent);
        self.bounce_rate = rate(self.bounced, self.sent);
        self.unsubscribe_rate = rate(self.unsubscribed, self.sent);
        self.conversion_rate = rate(self.converted, self.enrolled);
        self
    }
}

/// One step's counts.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct StepMetrics {
    /// The step.
    pub step_id: String,
    /// Its position.
    pub position: i64,
    /// Its kind.
    pub kind: steps::StepKind,
    /// Its counts.
    pub metrics: Funnel,
}

/// A campaign's counts, whole and per step.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct CampaignMetrics {
    /// The campaign.
    pub campaign_id: String,
    /// The whole campaign.
    pub total: Funnel,
    /// Each step, in order.
    pub steps: Vec<StepMetrics>,
}

/// Counts of stop reasons among the campaign's enrollments, or those whose last step was at
/// `position`.
fn stops(
    conn: &Connection,
    campaign_id: &str,
    position: Option<i64>,
) -> DomainResult<(i64, i64, i64, i64)> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(stop_reason = 'replied'), 0),
                    COALESCE(SUM(stop_reason = 'bounced'), 0),
                    COALESCE(SUM(stop_reason = 'unsubscribed'), 0),
                    COALESCE(SUM(stop_reason = 'converted'), 0)
             FROM enrollments WHERE campaign_id = ?1 AND (?2 IS NULL OR done_position = ?2)",
        params![campaign_id, position],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?)
}

/// Sent and opened emails among those `condition` picks over `enrollment_steps r` joined with
/// `emails m`.
fn mail(conn: &Connection, condition: &str, a: &str) -> DomainResult<(i64, i64)> {
    Ok(conn.query_row(
        &format!(
            "SELECT COALESCE(SUM(m.status = 'sent'), 0),
                    COALESCE(SUM(m.first_opened_at IS NOT NULL), 0)
             FROM enrollment_steps r JOIN emails m ON m.id = r.email_id WHERE {condition}"
        ),
        params![a],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Campaign `id`'s metrics.
pub fn of(conn: &Connection, org_id: &str, id: &str) -> DomainResult<CampaignMetrics> {
    let campaign = super::get(conn, org_id, id)?;
    let (enrolled, active): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(status IN ('active', 'paused')), 0)
         FROM enrollments WHERE campaign_id = ?1",
        params![campaign.id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (sent, opened) = mail(conn, "r.campaign_id = ?1", &campaign.id)?;
    let (replied, bounced, unsubscribed, converted) = stops(conn, &campaign.id, None)?;
    let total = Funnel {
        enrolled,
        active,
        sent,
        opened,
        replied,
        bounced,
        unsubscribed,
        converted,
        ..Funnel::default()
    }
    .with_rates();
    let mut per_step = Vec::new();
    for step in steps::list(conn, org_id, id)? {
        let ran: i64 = conn.query_row(
            "SELECT COUNT(*) FROM enrollment_steps WHERE step_id = ?1",
            params![step.id],
            |r| r.get(0),
        )?;
        let (sent, opened) = mail(conn, "r.step_id = ?1", &step.id)?;
        let (replied, bounced, unsubscribed, converted) =
            stops(conn, &campaign.id, Some(step.position))?;
        per_step.push(StepMetrics {
            step_id: step.id,
            position: step.position,
            kind: step.kind,
            metrics: Funnel {
                enrolled: ran,
                sent,
                opened,
                replied,
                bounced,
                unsubscribed,
                converted,
                ..Funnel::default()
            }
            .with_rates(),
        });
    }
    Ok(CampaignMetrics {
        campaign_id: campaign.id,
        total,
        steps: per_step,
    })
}
