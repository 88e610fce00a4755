//! Online backups: `VACUUM INTO` a new file while the server writes, checked before it counts.

use super::*;

/// Writes a consistent snapshot of the database at `db` to `out`, which must not exist yet,
/// while the server goes on writing: `VACUUM INTO` copies the database as of one commit inside
/// a single read transaction on a connection of its own, so writers are never blocked, and
/// the copy is compacted. The copy must pass `PRAGMA integrity_check` before this returns its
/// size in bytes.
pub fn backup(db: &Path, out: &Path) -> Result<u64, String> {
    if out.exists() {
        return Err(format!(
            "{} already exists; a backup never overwrites a file",
            out.display()
        ));
    }
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    let target = out
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", out.display()))?;
    source
        .execute("VACUUM INTO ?1", rusqlite::params![target])
        .map_err(|e| format!("backup to {} failed: {e}", out.display()))?;
    let check: String = Connection::open_with_flags(out, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.cached_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .map_err(|e| format!("cannot check the backup {}: {e}", out.display()))?;
    if check != "ok" {
        return Err(format!(
            "the backup {} failed its integrity check: {check}",
            out.display()
        ));
    }
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|e| format!("cannot read the backup {}: {e}", out.display()))
}
