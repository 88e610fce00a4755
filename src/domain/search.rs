//! `GET /search`: ranked full-text search over leads, companies, deals and notes (SQLite FTS5,
//! kept in step with the data by triggers in `schema.sql` and [`crate::db::search_queue::flush_search_queue`], in the same
//! transaction as the change).

use crate::db::CachedRow;
use poem_openapi::Object;
use rusqlite::{params_from_iter, Connection};

use super::error::DomainResult;
use super::listing::{any_of, ListPage, Paging};
use super::terms::Term;
use super::validate;

/// The kinds of object search covers.
pub const KINDS: &[&str] = &["lead", "company", "deal", "note"];

/// One search hit.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct SearchHit {
    /// lead, company, deal or note.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: Term<SearchKind>,
    /// The object's id.
    pub id: String,
    /// Its name or title (empty for notes).
    pub title: String,
    /// The matching text with the matched words in `**bold**`.
    pub snippet: String,
    /// Relevance (higher is better), for ordering across kinds.
    pub score: f64,
}

/// Turns what a person types into an FTS5 query: every word must match, each as a prefix, and
/// nothing the user types can be FTS5 syntax.
fn to_match_query(q: &str) -> Option<String> {
    let terms: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(16)
        .map(|t| format!("\"{}\"*", t.to_lowercase()))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// Searches the organization's data for `q`; `types` limits the kinds (any of).
pub fn search(
    conn: &Connection,
    org_id: &str,
    q: &str,
    types: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<SearchHit>> {
    let kinds = any_of(types);
    validate::one_of("types", &kinds, KINDS)?;
    // Only letters and digits are searched: a query of punctuation alone finds nothing.
    let Some(match_query) = to_match_query(q) else {
        return Ok(ListPage {
            items: Vec::new(),
            paging,
            total: 0,
        });
    };
    let mut where_sql = "search_index MATCH ? AND org_id = ?".to_string();
    let mut values: Vec<rusqlite::types::Value> =
        vec![match_query.into(), org_id.to_string().into()];
    if !kinds.is_empty() {
        where_sql.push_str(&format!(
            " AND kind IN ({})",
            vec!["?"; kinds.len()].join(", ")
        ));
        values.extend(kinds.iter().map(|k| k.clone().into()));
    }
    let total: i64 = conn.cached_row(
        &format!("SELECT COUNT(*) FROM search_index WHERE {where_sql}"),
        params_from_iter(values.iter()),
        |r| r.get(0),
    )?;
    let sql = format!(
        "SELECT kind, object_id, title,
                CASE WHEN body <> '' THEN snippet(search_index, 1, '**', '**', '…', 12)
                     ELSE snippet(search_index, 0, '**', '**', '…', 12) END,
                -bm25(search_index, 5.0, 1.0)
         FROM search_index WHERE {where_sql}
         ORDER BY bm25(search_index, 5.0, 1.0), object_id LIMIT ? OFFSET ?"
    );
    values.push(paging.limit().into());
    values.push(paging.offset().into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let items = stmt
        .query_map(params_from_iter(values.iter()), |r| {
            Ok(SearchHit {
                kind: r.get(0)?,
                id: r.get(1)?,
                title: r.get(2)?,
                snippet: r.get(3)?,
                score: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ListPage {
        items,
        paging,
        total,
    })
}

crate::domain::terms::vocabularies! {
    /// What a search hit is.
    SearchKind = "SearchKind",
        "What a search hit is.",
        KINDS.iter().copied();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_never_becomes_fts_syntax() {
        assert_eq!(
            to_match_query("Ada Love"),
            Some("\"ada\"* AND \"love\"*".into())
        );
        assert_eq!(
            to_match_query("NEAR(\"x\" OR y)*"),
            Some("\"near\"* AND \"x\"* AND \"or\"* AND \"y\"*".into())
        );
        assert_eq!(to_match_query("  --  "), None);
    }
}
