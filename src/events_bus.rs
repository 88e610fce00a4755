//! The live side of the event log: after every commit, one task reads the new events once and
//! broadcasts them to every SSE subscriber (docs/api.md §9).
//!
//! Subscribers are bounded: a subscriber that falls more than [`BUS_CAPACITY`] events behind is
//! told it lagged and disconnected; it resumes from its last id, so nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::db::Db;
use crate::domain::events::{self, Published};
use crate::domain::listing::Paging;
use crate::shutdown::Shutdown;

/// Streams open per credential and in all: past these, a new stream is a 429.
#[derive(Debug, Default)]
pub struct StreamSlots {
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// A held stream slot, given back when dropped.
pub struct Slot {
    slots: Arc<StreamSlots>,
    credential: String,
}

impl StreamSlots {
    /// Takes a slot for `credential`, or `None` when it (or the server) has too many streams.
    pub fn acquire(
        self: &Arc<Self>,
        credential: &str,
        per_credential: usize,
        total: usize,
    ) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let all: usize = open.values().sum();
        let mine = open.get(credential).copied().unwrap_or(0);
        if mine >= per_credential || all >= total {
            return None;
        }
        open.insert(credential.to_string(), mine + 1);
        Some(Slot {
            slots: self.clone(),
            credential: credential.to_string(),
        })
    }

    /// Streams open in all.
    pub fn open_count(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.values().sum()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.credential) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.credential);
            }
        }
    }
}

/// Events a subscriber may fall behind before it is disconnected.
pub const BUS_CAPACITY: usize = 4096;
/// How often the log is also checked without a commit notification (writes by another process,
/// such as the CLI).
const POLL: Duration = Duration::from_secs(1);

/// The broadcast of committed events.
pub struct EventBus {
    tx: broadcast::Sender<Arc<Published>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }

    /// Subscribes to events committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Follows the log until shutdown: after each commit (or [`POLL`]), reads the events past
    /// the last one published and broadcasts them in order.
    pub async fn run(&self, db: Db, shutdown: &Shutdown) {
        let mut commits = db.commits();
        let mut last = {
            let db = db.clone();
            crate::db::run_blocking(move || events::last_seq(&db))
                .await
                .unwrap_or(0)
        };
        loop {
            tokio::select! {
                _ = commits.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait() => return,
            }
            if self.tx.receiver_count() == 0 {
                // Nobody listens: move past what the log holds without reading and decoding
                // it (that was 5% of the server's CPU under a stream of creates). The end is
                // read before the count is checked, so a stream that subscribes after the
                // check starts at or past that end (it reads the log's end once subscribed).
                let end = {
                    let db = db.clone();
                    crate::db::run_blocking(move || events::last_seq(&db)).await
                };
                if self.tx.receiver_count() == 0 {
                    if let Ok(end) = end {
                        last = last.max(end);
                    }
                    continue;
                }
            }
            loop {
                let db = db.clone();
                let batch = crate::db::run_blocking(move || {
                    db.blocking().read(|c| {
                        events::all_after(
                            c,
                            last,
                            Paging {
                                page: 1,
                                per_page: 1000,
                            },
                        )
                    })
                })
                .await;
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("event fan-out could not read the log: {e}");
                        break;
                    }
                };
                let full = batch.len() == 1000;
                for p in batch {
                    last = p.event.seq;
                    // No subscribers is fine: nobody is listening.
                    let _ = self.tx.send(Arc::new(p));
                }
                if !full {
                    break;
                }
            }
        }
    }
}
