//! Whole-organization answers remembered until the next commit.
//!
//! Some reads sum or rank a whole organization (the analytics, the at-risk ranking): hundreds
//! of milliseconds on 100,000 deals, for an answer that cannot change until something is
//! written. Such an answer is remembered with the commit it was computed at (`commit_seq`, read
//! in the same snapshot, see [`super::totals`]) and given again only to a snapshot of that same
//! commit, so it is never stale. An answer that also ages with the clock (a risk score grows
//! with the days a deal sits still) is given again for at most [`FRESH_MS`] after it was
//! computed. Unlike the per-thread totals, the memory is shared by every reader thread: these
//! answers are few and costly, and one computation should serve them all.
//!
//! A request sent with `Cache-Control: no-cache` is computed afresh ([`afresh`]), and what it
//! computes is remembered for those that follow.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::lock;
use super::totals::commit_of;
use crate::clock::Millis;
use crate::error::DomainResult;

/// How long an answer that ages with the clock is given again (when nothing was written).
pub const FRESH_MS: Millis = 60_000;

/// Most answers remembered; past this they are all forgotten and the memory starts again.
const REMEMBERED: usize = 256;

struct Entry {
    commit: i64,
    computed_at: Millis,
    value: Arc<dyn Any + Send + Sync>,
}

/// (database file, key) -> the answer.
static MEMORY: Mutex<Option<HashMap<String, Entry>>> = Mutex::new(None);

tokio::task_local! {
    /// Set on a request that asked for answers computed afresh.
    static AFRESH: ();
}

thread_local! {
    /// The same, on the reader thread running that request's read (a reader thread cannot see
    /// the request's task).
    static AFRESH_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `request` with every remembered answer computed afresh (and remembered again).
pub async fn afresh<F: std::future::Future>(request: F) -> F::Output {
    AFRESH.scope((), request).await
}

/// Whether the current task asked for answers computed afresh; a read handed to a reader thread
/// takes this with it, to [`carrying`].
pub(super) fn task_asked_afresh() -> bool {
    AFRESH.try_with(|()| ()).is_ok()
}

/// Whether the read running here asked for answers computed afresh (on a reader thread, or in
/// the request's task).
pub fn afresh_asked() -> bool {
    AFRESH_HERE.get() || task_asked_afresh()
}

/// Runs `read` on this thread with every remembered answer computed afresh: for the
/// benchmarks, which time the computation itself.
pub fn afresh_here<T>(read: impl FnOnce() -> T) -> T {
    carrying(true, read)
}

/// Runs `read` on this (reader) thread as a request that asked for answers afresh, or not.
pub(super) fn carrying<T>(afresh: bool, read: impl FnOnce() -> T) -> T {
    AFRESH_HERE.set(afresh);
    let answer = read();
    AFRESH_HERE.set(false);
    answer
}

/// The answer `compute` gives for `key` in this snapshot: remembered from an earlier call at the
/// same commit or computed now (and remembered; an error is not). `ages_at` is the clock an
/// answer that ages was computed for; `None` for one that only the data decides. Must run inside
/// a read snapshot, as every read of [`super::Db`] does. An in-memory database is always
/// computed.
pub fn remember<T>(
    conn: &Connection,
    key: &str,
    ages_at: Option<Millis>,
    compute: impl FnOnce() -> DomainResult<T>,
) -> DomainResult<T>
where
    T: Clone + Send + Sync + 'static,
{
    let Some(file) = conn.path().filter(|p| !p.is_empty()) else {
        return compute();
    };
    let commit = commit_of(conn)?;
    let key = format!("{file}\0{key}");
    let fresh = |e: &Entry| {
        e.commit == commit
            && ages_at.is_none_or(|now| (e.computed_at..e.computed_at + FRESH_MS).contains(&now))
    };
    let afresh = afresh_asked();
    let remembered = lock(&MEMORY)
        .as_ref()
        .and_then(|m| m.get(&key))
        .filter(|e| !afresh && fresh(e))
        .and_then(|e| e.value.clone().downcast::<T>().ok());
    if let Some(value) = remembered {
        return Ok(T::clone(&value));
    }
    let value = compute()?;
    let mut memory = lock(&MEMORY);
    let memory = memory.get_or_insert_with(HashMap::new);
    if memory.len() >= REMEMBERED {
        memory.clear();
    }
    memory.insert(
        key,
        Entry {
            commit,
            computed_at: ages_at.unwrap_or(0),
            value: Arc::new(value.clone()),
        },
    );
    Ok(value)
}
