//! The shutdown signal and the drain of the requests it must still answer.

/// The shutdown: a one-way signal that any number of tasks can wait on, and the drain of the
/// requests it must still answer.
///
/// On SIGTERM the server keeps accepting connections for a while and answers every request
/// that arrives with `503 unavailable` and `Retry-After` (the gate asks [`Shutdown::admit`]),
/// while the requests admitted before finish. Only once none is in flight and nothing has
/// arrived for [`QUIET`], or the grace period is over, does it stop accepting. Stopping at once
/// would reset every connection still in the listen queue, and every keep-alive connection a
/// client had just written a request on: requests already sent, answered by a TCP reset
/// (issue 18 saw 1–76 of 200 that way).
pub struct Shutdown {
    started: tokio::sync::watch::Sender<bool>,
    /// Fires when the grace period is over: a request still sending its body gives up with 503.
    cut: tokio::sync::watch::Sender<bool>,
    /// Requests admitted and not yet answered.
    in_flight: std::sync::atomic::AtomicUsize,
    /// Requests turned away since the shutdown started: the drain is quiet when it stops
    /// moving (admitted ones are in `in_flight`).
    turned_away: std::sync::atomic::AtomicU64,
    /// Rung when an admitted request ends during the shutdown.
    ended: tokio::sync::Notify,
}

/// How long nothing must arrive, with nothing in flight, before the server stops accepting.
/// Clients that were told to retry wait `Retry-After`, far longer than this.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(200);

/// A request [`Shutdown::admit`] let in; while it lives, the shutdown waits for it.
pub struct Admitted<'s>(&'s Shutdown);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if self.0.is_triggered() {
            self.0.ended.notify_one();
        }
    }
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Self {
            started: tokio::sync::watch::channel(false).0,
            cut: tokio::sync::watch::channel(false).0,
            in_flight: Default::default(),
            turned_away: Default::default(),
            ended: tokio::sync::Notify::new(),
        }
    }

    /// Starts the shutdown; every waiter wakes.
    pub fn trigger(&self) {
        self.started.send_replace(true);
    }

    /// Whether the shutdown has started (for blocking threads that cannot await).
    pub fn is_triggered(&self) -> bool {
        *self.started.borrow()
    }

    /// Resolves once the shutdown has started (at once if it already has).
    pub async fn wait(&self) {
        Self::wait_for(&self.started).await;
    }

    /// Resolves once the grace period is over.
    pub async fn cut(&self) {
        Self::wait_for(&self.cut).await;
    }

    async fn wait_for(flag: &tokio::sync::watch::Sender<bool>) {
        let mut rx = flag.subscribe();
        // An error means the sender is gone, which only happens at the very end: done either way.
        let _ = rx.wait_for(|set| *set).await;
    }

    /// Counts a request in, unless the shutdown has started (then the caller answers 503).
    pub fn admit(&self) -> Option<Admitted<'_>> {
        use std::sync::atomic::Ordering::SeqCst;
        // Counted before the check, as `drained` reads the count after setting the flag: one of
        // the two sees the other, so no request slips in unseen.
        self.in_flight.fetch_add(1, SeqCst);
        let admitted = Admitted(self);
        if self.is_triggered() {
            self.turned_away.fetch_add(1, SeqCst);
            return None;
        }
        Some(admitted)
    }

    /// Resolves when the server may stop accepting: after the shutdown started, once nothing is
    /// in flight and nothing arrived for [`QUIET`], or when `grace` is over (then it also
    /// fires [`Shutdown::cut`]).
    pub async fn drained(&self, grace: std::time::Duration) {
        use std::sync::atomic::Ordering::SeqCst;
        self.wait().await;
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let seen = self.turned_away.load(SeqCst);
            if self.in_flight.load(SeqCst) == 0 {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = tokio::time::sleep(QUIET) => {}
                }
                if self.in_flight.load(SeqCst) == 0 && self.turned_away.load(SeqCst) == seen {
                    return;
                }
            } else {
                // A request that ends rings; the timeout only bounds a ring that came early.
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.ended.notified() => {}
                    _ = tokio::time::sleep(QUIET / 4) => {}
                }
            }
        }
        self.cut.send_replace(true);
    }
}
