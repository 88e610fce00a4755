//! Whole-organization data held in memory between commits and brought up to date by reading
//! again only the rows the commits since wrote ([`super::touched`]).
//!
//! Some answers read every deal, or every deal's path through the stages, of an organization:
//! tens of milliseconds on 100,000 deals. [`super::memo`] remembers such an answer until the
//! next commit, but a busy organization commits all the time. What those answers are computed
//! from is held here instead, with the commit it is as of: a snapshot at a later commit asks the
//! holder to apply the rows written since, and reads everything again only when those are not
//! known (another process wrote the file, or too many were written) or the holder says it cannot
//! apply them. A request sent with `Cache-Control: no-cache` reads from the database and leaves
//! what is held alone.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::lock;
use super::memo::afresh_asked;
use super::totals::commit_of;
use super::touched::{self, Touch};
use crate::error::DomainResult;

/// Things held at a time; past this they are all forgotten.
const HELD: usize = 64;

type Slot = Arc<Mutex<Option<(i64, Box<dyn Any + Send>)>>>;

/// (database file, key) -> (commit, what is held).
static SLOTS: Mutex<Option<HashMap<String, Slot>>> = Mutex::new(None);

/// Runs `answer` over what is held under `key`, as this snapshot sees it: held already, brought
/// up to date by `apply` (given the rows written since; it answers `false` when it cannot use
/// them), or read whole by `read`. `None` (and nothing is run) when it should be read from the
/// database instead: an in-memory database, a request that asked for answers afresh, or a
/// snapshot older than what is held (another reader is ahead of it).
pub fn with_held<T: Send + 'static, R>(
    conn: &Connection,
    key: &str,
    read: impl FnOnce() -> DomainResult<T>,
    apply: impl FnOnce(&mut T, &[Touch]) -> DomainResult<bool>,
    answer: impl FnOnce(&T) -> R,
) -> DomainResult<Option<R>> {
    let Some(file) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if afresh_asked() {
        return Ok(None);
    }
    let commit = commit_of(conn)?;
    let slot = {
        let mut slots = lock(&SLOTS);
        let slots = slots.get_or_insert_with(HashMap::new);
        let key = format!("{file}\0{key}");
        if !slots.contains_key(&key) && slots.len() >= HELD {
            slots.clear();
        }
        slots.entry(key).or_default().clone()
    };
    let mut slot = lock(&slot);
    // Taken out first: a read or an update that fails half-way leaves nothing half-done held.
    let mut held = match slot.take() {
        Some((at, held)) if at > commit => {
            *slot = Some((at, held));
            return Ok(None);
        }
        Some((at, held)) => held.downcast::<T>().ok().map(|held| (at, held)),
        None => None,
    };
    let mut stale = false;
    if let Some((at, value)) = &mut held {
        if *at != commit {
            // More than touched::MOST_ROWS comes back as `None`: reading everything is cheaper.
            let written = touched::since(conn, *at, commit);
            stale = match written {
                Some(written) => !apply(value, &written)?,
                None => true,
            };
        }
    }
    if stale {
        held = None;
    }
    let value = match held {
        Some((_, value)) => value,
        None => Box::new(read()?),
    };
    let result = answer(&value);
    *slot = Some((commit, value));
    Ok(Some(result))
}
