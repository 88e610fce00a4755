//! What the bench programs share: one way to read a percentile, and the bare scan that the
//! at-risk ranking is measured against.
#![allow(dead_code)] // each bench program uses a different part

use clozup::domain::intelligence::OPEN_DEAL_FACTS;
use rusqlite::{params, Connection};

/// The value below which the fraction `p` (0 to 1) of `samples` lies (the largest for 1).
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// The floor under ranking by risk: the ranking's own scan of every open deal's facts, each
/// column read and nothing done with it. Returns how many deals it read.
pub fn bare_scan(conn: &Connection, org_id: &str) -> rusqlite::Result<i64> {
    let mut st = conn.prepare_cached(OPEN_DEAL_FACTS)?;
    let columns = st.column_count();
    let mut rows = st.query(params![org_id])?;
    let mut count = 0;
    while let Some(r) = rows.next()? {
        for i in 0..columns {
            std::hint::black_box(r.get_ref(i)?);
        }
        count += 1;
    }
    Ok(count)
}
