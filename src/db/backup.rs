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

/// Writes a checked snapshot of the database at `db` into the folder `dir` (made if missing),
/// named for the time and unique (`clozup-20261203T100000Z-bak_....sqlite`); returns its path
/// and size. With `rehearsal` (a dry run) the copy is written to the temporary folder, measured
/// and removed, and the path it would have had is returned.
pub fn backup_into(
    db: &Path,
    dir: &Path,
    now: crate::clock::Millis,
    rehearsal: bool,
) -> Result<(PathBuf, u64), String> {
    let stamp: String = crate::timefmt::format_ms(now)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let name = format!(
        "clozup-{stamp}-{}.sqlite",
        crate::ids::new_id("bak").to_ascii_lowercase()
    );
    let file = dir.join(&name);
    let (dir, out) = if rehearsal {
        let scratch = std::env::temp_dir();
        (scratch.clone(), scratch.join(&name))
    } else {
        (dir.to_path_buf(), file.clone())
    };
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
        .and_then(|()| backup(db, &out));
    if rehearsal {
        let _ = std::fs::remove_file(&out);
    }
    written.map(|bytes| (file, bytes))
}

/// The snapshots [`backup_into`] wrote in `dir`, newest first: (file name, bytes).
pub fn snapshots(dir: &Path) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let is_ours = name.starts_with("clozup-") && name.ends_with(".sqlite");
            is_ours.then(|| (name, e.metadata().map(|m| m.len()).unwrap_or(0)))
        })
        .collect();
    // The name starts with the time, so the newest sorts last.
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found
}
