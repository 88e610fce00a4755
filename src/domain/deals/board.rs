//! The board: a pipeline's stages as columns, each with its newest deals and its totals, in one
//! snapshot (the web app's pipeline page).

use super::*;

/// One stage of the board.
#[derive(Debug, Clone)]
pub struct Column {
    /// The stage.
    pub stage: Stage,
    /// Its newest deals, at most the number asked for, with their risk.
    pub deals: Vec<Deal>,
    /// How many deals it has in all.
    pub count: i64,
    /// Their value in the organization's currency (deals in another currency are not added).
    pub value: f64,
}

/// A pipeline laid out as a board.
#[derive(Debug, Clone)]
pub struct Board {
    /// The pipeline shown.
    pub pipeline: pipelines::Pipeline,
    /// Every pipeline of the organization, to switch to.
    pub pipelines: Vec<pipelines::Pipeline>,
    /// The organization's currency, the totals' unit.
    pub currency: String,
    /// Its stages, in board order.
    pub columns: Vec<Column>,
}

/// The board of `pipeline_id` (the default pipeline when `None`), `per_column` deals a column.
pub fn board(
    conn: &Connection,
    org_id: &str,
    pipeline_id: Option<&str>,
    per_column: i64,
    now: Millis,
) -> DomainResult<Board> {
    let pipeline_id = match pipeline_id {
        Some(id) => id.to_string(),
        None => pipelines::default_id(conn, org_id)?,
    };
    let pipeline = pipelines::get(conn, org_id, &pipeline_id)?;
    let all = pipelines::list(
        conn,
        org_id,
        Paging {
            page: 1,
            per_page: 100,
        },
    )?
    .items;
    let currency = orgs::get(conn, org_id)?.currency.to_string();
    // Kept by triggers (migration 18): no scan of the pipeline's deals.
    let mut sums = std::collections::HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT t.stage_id, t.value FROM stage_totals t JOIN stages s ON s.id = t.stage_id
             WHERE s.org_id = ?1 AND s.pipeline_id = ?2 AND t.currency = ?3",
        )?;
        let mut rows = stmt.query(params![org_id, pipeline_id, currency])?;
        while let Some(r) = rows.next()? {
            sums.insert(r.get::<_, String>(0)?, r.get::<_, i64>(1)?);
        }
    }
    let mut columns = Vec::with_capacity(pipeline.stages.len());
    for stage in &pipeline.stages {
        let filter = DealFilter {
            stage_id: Some(stage.id.clone()),
            ..Default::default()
        };
        let paging = Paging {
            page: 1,
            per_page: per_column,
        };
        let page = list(conn, org_id, &filter, Some("-created_at"), paging, now)?;
        let minor = sums.get(&stage.id).copied().unwrap_or(0);
        columns.push(Column {
            stage: stage.clone(),
            deals: page.items,
            count: page.total,
            value: validate::minor_to_money(minor, &currency),
        });
    }
    Ok(Board {
        pipeline,
        pipelines: all,
        currency,
        columns,
    })
}
