//! Pipelines and their stages. A new organization gets the default pipeline of API.md §6.

use rusqlite::{params, Transaction};

use super::error::DomainResult;
use crate::clock::Millis;
use crate::ids::new_id;

/// The default pipeline's stages: (name, probability %, kind, rotting days).
///
/// Rotting days are how long a deal may sit in a stage before it counts as stalling; closed
/// stages have none.
pub const DEFAULT_STAGES: &[(&str, i64, &str, Option<i64>)] = &[
    ("Lead In", 10, "open", Some(14)),
    ("Qualified", 20, "open", Some(14)),
    ("Demo Scheduled", 40, "open", Some(10)),
    ("Proposal Sent", 60, "open", Some(14)),
    ("Negotiation", 80, "open", Some(10)),
    ("Closed Won", 100, "won", None),
    ("Closed Lost", 0, "lost", None),
];

/// Creates the organization's default "Sales" pipeline with [`DEFAULT_STAGES`]; returns its id.
pub fn create_default(tx: &Transaction<'_>, org_id: &str, now: Millis) -> DomainResult<String> {
    let pipeline_id = new_id("pip");
    tx.execute(
        "INSERT INTO pipelines (id, org_id, name, is_default, created_at, updated_at)
         VALUES (?1, ?2, 'Sales', 1, ?3, ?3)",
        params![pipeline_id, org_id, now],
    )?;
    for (position, (name, probability, kind, rotting)) in DEFAULT_STAGES.iter().enumerate() {
        tx.execute(
            "INSERT INTO stages (id, org_id, pipeline_id, name, position, probability, kind,
                                 rotting_days, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
            params![
                new_id("stg"),
                org_id,
                pipeline_id,
                name,
                position as i64,
                probability,
                kind,
                rotting,
                now
            ],
        )?;
    }
    Ok(pipeline_id)
}
