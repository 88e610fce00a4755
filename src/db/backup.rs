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

/// `path` with `suffix` added to its file name (`crm.sqlite` + `-wal`), as SQLite names a
/// database's companion files.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The newest snapshot in `dir`: its file name, bytes and when it was written.
pub fn newest_snapshot(dir: &Path) -> Option<(String, u64, std::time::SystemTime)> {
    let (name, bytes) = snapshots(dir).into_iter().next()?;
    let taken = std::fs::metadata(dir.join(&name)).ok()?.modified().ok()?;
    Some((name, bytes, taken))
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

/// Keeps the `keep` newest snapshots in `dir` and removes the others; returns the removed
/// names. Only files [`backup_into`] names are considered, so nothing else in the folder is
/// touched.
pub fn prune(dir: &Path, keep: usize) -> Vec<String> {
    snapshots(dir)
        .into_iter()
        .skip(keep)
        .filter_map(|(name, _)| std::fs::remove_file(dir.join(&name)).ok().map(|()| name))
        .collect()
}

/// Marks the database at `db` as in use by this process for as long as the returned file stays
/// open (a server keeps it until it exits), so that [`restore`] never swaps the file out from
/// under it. The mark is a shared `flock(2)`, which SQLite's own `fcntl(2)` locks never see, and
/// the kernel drops it when the process ends, however it ends. The handle must not be closed
/// while the process has SQLite connections to the file (closing any descriptor of a file drops
/// the process's `fcntl` locks on it): keep it to the end.
pub fn hold(db: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    try_flock(&file, libc::LOCK_SH).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => format!(
            "{} is being restored; try again when it is done",
            db.display()
        ),
        _ => format!("cannot lock {}: {e}", db.display()),
    })?;
    Ok(file)
}

/// Whether a server (or `clozup mcp`) holds the database at `db` now (see [`hold`]). Call it
/// before opening the file with SQLite in this process: the probe's descriptor is closed on
/// return, which drops this process's SQLite locks on the file.
pub fn in_use(db: &Path) -> Result<bool, String> {
    let file = std::fs::File::open(db).map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    match try_flock(&file, libc::LOCK_EX) {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(format!("cannot probe {}'s lock: {e}", db.display())),
    }
}

/// `flock(2)` without waiting (`File::try_lock` needs a newer Rust than the one we support).
fn try_flock(file: &std::fs::File, how: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `file` is borrowed.
    match unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// Bytes copied into place.
    pub bytes: u64,
    /// The snapshot's schema version (an older one is migrated when the server next starts).
    pub schema_version: i64,
    /// Where the database it replaced was kept (none when there was none).
    pub replaced: Option<PathBuf>,
}

/// Checks that `snapshot` is a whole Clozup database this binary can serve: SQLite's integrity
/// and foreign-key checks pass and its schema is not newer than ours. Returns its version.
pub fn check_snapshot(snapshot: &Path) -> Result<i64, String> {
    let what =
        |e: rusqlite::Error| format!("{} is not a readable database: {e}", snapshot.display());
    if !snapshot.is_file() {
        return Err(format!("{} is not a file", snapshot.display()));
    }
    let conn =
        Connection::open_with_flags(snapshot, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(what)?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(what)?;
    if check != "ok" {
        return Err(format!(
            "{} failed its integrity check: {check}",
            snapshot.display()
        ));
    }
    let orphans: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .map_err(what)?;
    if orphans > 0 {
        return Err(format!(
            "{} has {orphans} rows whose references point at nothing (foreign key check)",
            snapshot.display()
        ));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(what)?;
    if version == 0 {
        return Err(format!(
            "{} is not a Clozup database (no schema version)",
            snapshot.display()
        ));
    }
    if version > LATEST_VERSION {
        return Err(MigrateError::TooNew { found: version }.to_string());
    }
    Ok(version)
}

/// Puts the checked `snapshot` in place of the database at `db`, which no server may be using
/// (refused otherwise: see [`hold`]). The database it replaces is not deleted: it is renamed,
/// with its write-ahead log, to `<db>.replaced-<time>`, where SQLite can still open it. The
/// snapshot is copied beside `db` first and renamed over it, so a crash midway leaves either
/// the old database or the new one, never half of one.
pub fn restore(snapshot: &Path, db: &Path, now: crate::clock::Millis) -> Result<Restored, String> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(snapshot, db) {
        return Err("the snapshot is the database itself; name a snapshot file".into());
    }
    let schema_version = check_snapshot(snapshot)?;
    let sibling = |suffix: &str| with_suffix(db, suffix);
    // Held until the end: no server starts on the old file while it is moved aside.
    let held = match std::fs::File::open(db) {
        Ok(file) => {
            try_flock(&file, libc::LOCK_EX).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock => format!(
                    "a clozup process (a server, or `clozup mcp`) is using {}; stop it, then restore",
                    db.display()
                ),
                _ => format!("cannot lock {}: {e}", db.display()),
            })?;
            Some(file)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot open {}: {e}", db.display())),
    };
    let incoming = sibling(".restoring");
    let _ = std::fs::remove_file(&incoming);
    let bytes = std::fs::copy(snapshot, &incoming)
        .and_then(|bytes| std::fs::File::open(&incoming)?.sync_all().map(|()| bytes))
        .map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                snapshot.display(),
                incoming.display()
            )
        })?;
    let replaced = if held.is_some() {
        let stamp: String = crate::timefmt::format_ms(now)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let aside = sibling(&format!(".replaced-{stamp}"));
        let moved = |from: PathBuf, to: PathBuf| match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
                "cannot move {} to {}: {e}",
                from.display(),
                to.display()
            )),
            _ => Ok(()),
        };
        // Its log copied into it first (a server that crashed leaves writes there), so the
        // file moved aside is whole by itself; the log moves with it all the same, in case
        // the copy could not be made (a damaged file is worth keeping as it is).
        if let Ok(conn) = Connection::open(db) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        moved(sibling("-wal"), with_suffix(&aside, "-wal"))?;
        moved(db.to_path_buf(), aside.clone())?;
        // The shared-memory index is rebuilt from the log by whoever opens it next.
        let _ = std::fs::remove_file(sibling("-shm"));
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&incoming, db).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            incoming.display(),
            db.display()
        )
    })?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The renames are durable once the folder is.
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", parent.display()))?;
    }
    Ok(Restored {
        bytes,
        schema_version,
        replaced,
    })
}
