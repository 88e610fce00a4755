//! The database from a thread that may block: the command line, the workers, the sweep.

use rusqlite::{Connection, TransactionBehavior};

use super::readers::{in_snapshot, send_read};
use super::touched;
use super::writer::before_commit;
use super::{gone, Db, Tx};
use crate::error::DomainResult;

/// The database from a thread that may block (the command line, the workers, the sweep):
/// the same reads and writes as [`Db`]'s, waited for on this thread. Never from an async
/// worker, where a wait would hold up every request on it.
pub struct Blocking<'a>(&'a Db);

impl Db {
    /// This database, for a thread that may block.
    pub fn blocking(&self) -> Blocking<'_> {
        Blocking(self)
    }
}

impl Blocking<'_> {
    /// [`Db::read`] for callers that are already on a blocking thread (the CLI, workers), on
    /// the connection kept for them; they wait for each other, never for a request.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> DomainResult<T>) -> DomainResult<T> {
        in_snapshot(
            &self.0.background.lock().unwrap_or_else(|e| e.into_inner()),
            f,
        )
    }

    /// [`Db::scan`] on this thread.
    pub fn scan<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> DomainResult<T> + Send + 'static,
    {
        send_read(&self.0.bulk_reads, f)?
            .blocking_recv()
            .unwrap_or_else(|_| Err(gone("read")))
    }

    /// [`Db::write`] for callers that are already on a blocking thread (the CLI, workers).
    ///
    /// Like a group, a transaction that changed no row commits nothing: no sync, no commit
    /// number, no wake-up. The periodic workers often find nothing to do, and an idle server
    /// used to write and sync twice a second. (So `f` must change rows; schema changes belong
    /// to the migrations.)
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> DomainResult<T>) -> DomainResult<T> {
        // A panic inside `f` poisons the lock, but its transaction was rolled back on unwind,
        // so the connection is clean and safe to keep using.
        let mut conn = self.0.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        touched::begin();
        let changes = tx.total_changes();
        let work = Tx::new(&tx);
        let value = f(&work)?;
        if tx.total_changes() == changes {
            tx.rollback()?;
            return Ok(value);
        }
        let queued_work = work.queued_work.get();
        let commit = before_commit(&tx)?;
        tx.commit()?;
        touched::committed(&conn, commit);
        // Wake whoever follows the event log (the SSE fan-out) without waiting on them.
        self.0.commits.send_modify(|n| *n += 1);
        if queued_work {
            self.0.work.ring();
        }
        Ok(value)
    }

    /// [`Db::write`] for a blocking thread whose writes must take their turn with the server's
    /// (the periodic sweep), not jump the queue: [`Blocking::write`] takes the writer's lock,
    /// and a thread that takes it again at once can hold the writer thread off for several
    /// transactions in a row. Never from an async worker.
    pub fn write_in_turn<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> DomainResult<T> + Send + 'static,
    {
        let answer = self.0.send_write(f)?;
        answer
            .blocking_recv()
            .unwrap_or_else(|_| Err(gone("write")))
    }

    /// [`Blocking::write`], or, for a dry run (`rehearsal`), the same transaction rolled
    /// back once `f` has answered.
    pub fn write_or_rehearse<T>(
        &self,
        rehearsal: bool,
        f: impl FnOnce(&Tx<'_>) -> DomainResult<T>,
    ) -> DomainResult<T> {
        if !rehearsal {
            return self.write(f);
        }
        let mut conn = self.0.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&Tx::new(&tx))?;
        tx.rollback()?;
        Ok(value)
    }
}
