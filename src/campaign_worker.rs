//! The campaign scheduler: a thread that runs due campaign steps from the database
//! ([`crate::domain::campaigns::run`]), woken by any commit that queues work and otherwise
//! polling, like the mail sender. Steps that are due while the server is down run after it
//! starts again; none runs twice.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::campaigns::run;
use crate::domain::{DomainError, DomainResult};
use crate::state::AppState;

/// Enrollments worked per transaction: few, because a transaction holds the core while it
/// renders and records them, and a request on a one-core server waits that long.
const BATCH: usize = 4;

/// Campaign emails the scheduler lets wait in the outbox before it runs more steps: enough to
/// keep the sender busy, few enough that the work is spread over the sending.
const AHEAD: usize = 64;

/// How often a scheduler held back by [`AHEAD`] looks again (sending rings no bell: a wake-up
/// per email would cost more than this poll).
const HELD_POLL: Duration = Duration::from_millis(20);

/// How long an enrollment whose step fails is put off before it is tried again.
const PUT_OFF: Duration = Duration::from_secs(3600);

/// `work`, with a panic turned into an error naming it.
fn guarded<T>(work: impl FnOnce() -> DomainResult<T>) -> DomainResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(DomainError::Internal(format!("panicked: {what}")))
    })
}

/// Runs the scheduler until shutdown on its own thread.
pub fn spawn(state: Arc<AppState>) {
    std::thread::spawn(move || {
        let domain = state.config.email_domain.clone();
        loop {
            if state.shutdown.is_triggered() {
                return;
            }
            let now = state.clock.now_ms();
            let seen = state.db.work_queued();
            let due = state
                .db
                .blocking()
                .read(|c| {
                    if run::mail_waiting(c, AHEAD)? >= AHEAD {
                        return Ok(None);
                    }
                    run::due(c, BATCH, now).map(Some)
                })
                .unwrap_or_else(|e| {
                    tracing::warn!("campaign scheduler could not read due steps: {e}");
                    Some(Vec::new())
                });
            let Some(due) = due else {
                std::thread::sleep(HELD_POLL);
                continue;
            };
            if due.is_empty() {
                state.db.wait_for_work(seen, state.config.email_poll);
                continue;
            }
            // One transaction for the batch; if a step fails (or panics: its transaction rolls
            // back on unwind), each alone, so one broken enrollment holds up no other and the
            // scheduler lives on.
            let all = guarded(|| {
                state.db.blocking().write(|tx| {
                    for d in &due {
                        run::run(tx, d, &domain, now)?;
                    }
                    Ok(())
                })
            });
            if all.is_ok() {
                continue;
            }
            for d in &due {
                let one = guarded(|| {
                    state
                        .db
                        .blocking()
                        .write(|tx| run::run(tx, d, &domain, now))
                });
                if let Err(e) = one {
                    tracing::warn!(enrollment = %d.0, "campaign step failed, retried later: {e}");
                    let later = now + PUT_OFF.as_millis() as i64;
                    if let Err(e) = state.db.blocking().write(|tx| run::put_off(tx, d, later)) {
                        tracing::warn!(enrollment = %d.0, "could not put off: {e}");
                    }
                }
            }
        }
    });
}
