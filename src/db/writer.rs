//! The writer thread: jobs queued from any task, run in groups under one transaction and one
//! sync (group commit), each in its savepoint so one failing job undoes only itself.

use super::*;

/// A write from [`Db::write`] and where its answer goes.
pub(super) struct Pending<T, F> {
    pub(super) work: Option<F>,
    pub(super) result: Option<DomainResult<T>>,
    pub(super) reply: tokio::sync::oneshot::Sender<DomainResult<T>>,
    /// Part of a dry run: done and answered, then rolled back to its savepoint.
    pub(super) rehearsal: bool,
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Tx<'_>) -> DomainResult<T> + Send,
{
    fn run(&mut self, tx: &Tx<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(tx);
        let keep = result.is_ok() && !self.rehearsal;
        self.result = Some(result);
        keep
    }

    fn finish(self: Box<Self>, group: Result<(), &str>) {
        let rehearsal = self.rehearsal;
        let answer = match (self.result, group) {
            // Its own refusal stands whatever became of the others.
            (Some(Err(e)), _) => Err(e),
            // A rehearsal was never to be committed.
            (Some(Ok(value)), _) if rehearsal => Ok(value),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)) | None, Err(why)) => Err(DomainError::Internal(why.to_string())),
            // It panicked.
            (None, Ok(())) => Err(gone("write")),
        };
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: group commit over the queue. It ends when every handle is dropped.
pub(super) fn writer_loop(
    conn: &Mutex<Connection>,
    queue: &mpsc::Receiver<Box<dyn WriteJob>>,
    commits: &tokio::sync::watch::Sender<u64>,
    work: &WorkBell,
) {
    // Whether the WAL may hold frames not yet copied into the database file.
    let mut unsettled = false;
    loop {
        let first = match queue.recv_timeout(SETTLE_AFTER) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if unsettled {
                    let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                    unsettled = !settle(&conn);
                    if !unsettled {
                        // Idle and settled: what the burst cached here goes back.
                        super::release_memory(&conn);
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut group = vec![first];
        group.extend(queue.try_iter().take(MAX_GROUP - 1));
        crate::metrics::get().write_queue.dec_by(group.len() as i64);
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = run_group(&conn, &mut group);
        if outcome.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        drop(conn);
        if let Ok(Some(commit)) = &outcome {
            unsettled = true;
            // Counted before anyone is answered (see `Db::commit_count`); also wakes whoever
            // follows the event log (the SSE fan-out) without waiting on them.
            commits.send_modify(|n| *n += 1);
            if commit.queued_work {
                work.ring();
            }
        }
        let why = outcome.map_err(|e| format!("the write was not committed: {e}"));
        for job in group {
            job.finish(why.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// How long the writer waits with nothing to write before it settles the WAL.
pub(super) const SETTLE_AFTER: Duration = Duration::from_millis(500);

/// Copies what the WAL holds into the database file, without waiting on readers (a passive
/// checkpoint); `true` when all of it was copied. SQLite checkpoints after commits, but a
/// checkpoint cannot copy what a reader's snapshot still needs; under load that is often the
/// tail, and with no commit after it the WAL stays unsettled, so every read goes on looking
/// pages up in it (an at-risk ranking took twice as long after a burst of writes). Once
/// everything is copied, readers use the database file alone.
pub(super) fn settle(conn: &Connection) -> bool {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(r.get::<_, i64>(0)? == 0 && r.get::<_, i64>(1)? == r.get::<_, i64>(2)?)
    })
    .unwrap_or(false)
}

/// What every write transaction does last, outside any savepoint: writes the search entries
/// its changes queued, and takes a new commit number (given back, for [`touched::committed`]
/// once the commit is made).
pub(super) fn before_commit(conn: &Connection) -> rusqlite::Result<i64> {
    super::search_queue::flush_search_queue(conn)?;
    totals::mark_commit(conn)
}

/// A group's commit.
pub(super) struct Committed {
    /// A write it kept queued work for the background workers.
    queued_work: bool,
}

/// Runs one group in one transaction, each job inside its own savepoint, and commits it, unless
/// it changed nothing (`None`).
pub(super) fn run_group(
    conn: &Connection,
    group: &mut [Box<dyn WriteJob>],
) -> Result<Option<Committed>, String> {
    // Cached statements: these run for every write, and parsing them each time is not free.
    let sql = |statement: &str| {
        conn.prepare_cached(statement)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    sql("BEGIN IMMEDIATE")?;
    touched::begin();
    let changes = conn.total_changes();
    let (mut kept, mut queued_work) = (0, false);
    for job in group.iter_mut() {
        sql("SAVEPOINT job")?;
        let tx = Tx::new(conn);
        let keep = catch_unwind(AssertUnwindSafe(|| job.run(&tx))).unwrap_or(false);
        if conn.is_autocommit() {
            // Some errors (a full disk, an I/O error) make SQLite roll back the whole
            // transaction: nothing of this group is left to commit.
            return Err("the database rolled back the transaction".into());
        }
        if keep {
            kept += 1;
            queued_work |= tx.queued_work.get();
        } else {
            sql("ROLLBACK TO job")?;
        }
        sql("RELEASE job")?;
    }
    // A group that changed nothing (every write refused, or nothing to do, like a purge of
    // expired records that finds none) commits nothing: no sync, no new commit number.
    if kept == 0 || conn.total_changes() == changes {
        sql("ROLLBACK")?;
        return Ok(None);
    }
    let commit = before_commit(conn).map_err(|e| e.to_string())?;
    let committing = Instant::now();
    sql("COMMIT")?;
    touched::committed(conn, commit);
    crate::metrics::get()
        .commit_seconds
        .observe(committing.elapsed().as_secs_f64());
    Ok(Some(Committed { queued_work }))
}
