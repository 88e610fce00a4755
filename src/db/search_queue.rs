//! The search index's queue: triggers queue index entries as rows change, and each write
//! transaction flushes them into the FTS5 index in one batch just before it commits.

use rusqlite::Connection;

/// Writes the search entries queued in this transaction (by the triggers of `schema.sql`,
/// migration 10) into the index, and empties the queue. Every write transaction calls it just
/// before it commits, outside any savepoint, so FTS5 gets one batch per commit instead of one
/// segment per write.
pub fn flush_search_queue(conn: &Connection) -> rusqlite::Result<()> {
    for sql in [
        // An entry replaces what the index held for that row, if anything.
        "DELETE FROM search_index WHERE rowid IN (SELECT entry FROM search_queue)",
        "INSERT INTO search_index (rowid, title, body, org_id, kind, object_id)
         SELECT entry, title, body, org_id, kind, object_id FROM search_queue
         WHERE object_id IS NOT NULL",
        "DELETE FROM search_queue",
    ] {
        conn.prepare_cached(sql)?.execute([])?;
    }
    Ok(())
}
