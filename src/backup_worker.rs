//! Scheduled backups (`--backup-every`, `--backup-keep`): a checked snapshot into the backup
//! folder each period, then the oldest beyond the number to keep are removed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::state::AppState;

/// How long until the next snapshot is due: a period after the newest one in `dir` (a
/// snapshot written by hand or through the API counts), at once when there is none or it is
/// older than that.
pub fn due_in(dir: &Path, every: Duration, now: SystemTime) -> Duration {
    crate::db::newest_snapshot(dir).map_or(Duration::ZERO, |(_, _, taken)| {
        let age = now.duration_since(taken).unwrap_or_default();
        every.saturating_sub(age)
    })
}

/// Starts the schedule when `--backup-every` is set; it ends with the server.
pub fn spawn(state: Arc<AppState>) {
    let Some(every) = state.config.backup_every else {
        return;
    };
    let dir = state.config.backup_dir();
    let keep = state.config.backup_keep as usize;
    tracing::info!(every_s = every.as_secs(), keep, dir = %dir.display(), "scheduled backups on");
    tokio::spawn(async move {
        loop {
            let wait = due_in(&dir, every, SystemTime::now());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = state.shutdown.wait() => return,
            }
            let (db, folder, now) = (state.config.db.clone(), dir.clone(), state.clock.now_ms());
            let taken = tokio::task::spawn_blocking(move || {
                let taken = crate::db::backup_into(&db, &folder, now, false)?;
                Ok::<_, String>((taken, crate::db::prune(&folder, keep)))
            })
            .await
            .unwrap_or_else(|e| Err(format!("the backup task failed: {e}")));
            match taken {
                Ok(((file, bytes), removed)) => tracing::info!(
                    file = %file.display(),
                    bytes,
                    removed = removed.len(),
                    "scheduled backup written and checked"
                ),
                Err(e) => {
                    tracing::error!("scheduled backup failed: {e}");
                    // Not at once again: a full disk or a bad folder stays so for a while.
                    tokio::select! {
                        _ = tokio::time::sleep(every.min(Duration::from_secs(300))) => {}
                        _ = state.shutdown.wait() => return,
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_snapshot_is_due_a_period_after_the_newest() {
        let dir = std::env::temp_dir().join(crate::ids::new_id("due"));
        std::fs::create_dir_all(&dir).unwrap();
        let hour = Duration::from_secs(3600);
        let now = SystemTime::now();
        assert_eq!(due_in(&dir, hour, now), Duration::ZERO, "none yet: now");
        // Files that are not snapshots do not count.
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        assert_eq!(due_in(&dir, hour, now), Duration::ZERO);
        std::fs::write(dir.join("clozup-20261203T100000000Z-bak_a.sqlite"), "x").unwrap();
        let left = due_in(&dir, hour, now + Duration::from_secs(600));
        assert!(
            left > Duration::from_secs(2900) && left < Duration::from_secs(3100),
            "{left:?}"
        );
        assert_eq!(
            due_in(&dir, hour, now + 2 * hour),
            Duration::ZERO,
            "overdue: now"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
