//! The reader threads: each holds a read-only connection and answers jobs in one snapshot; the
//! bulk ones run at low priority and yield to the writer.

use super::*;

/// Runs `f` inside one snapshot, so a count and its page (or a ranking and the page re-read in
/// full) agree even while writes commit in between. Dropping the snapshot rolls it back, which for
/// a read is the same as committing.
pub(super) fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> DomainResult<T>,
) -> DomainResult<T> {
    // BEGIN and ROLLBACK as cached statements: `execute_batch` would parse them every time.
    conn.prepare_cached("BEGIN")?.execute([])?;
    struct End<'c>(&'c Connection);
    impl Drop for End<'_> {
        fn drop(&mut self) {
            // Ends the snapshot even when `f` fails or panics; a read has nothing to lose.
            let ended = self
                .0
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
            if ended.is_err() && !self.0.is_autocommit() {
                let _ = self.0.execute_batch("ROLLBACK");
            }
        }
    }
    let _end = End(conn);
    f(conn)
}

/// Queues `f` for a reader thread; its answer comes on the returned channel.
pub(super) fn send_read<T, F>(
    queue: &mpsc::Sender<ReadJob>,
    f: F,
) -> DomainResult<tokio::sync::oneshot::Receiver<DomainResult<T>>>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> DomainResult<T> + Send + 'static,
{
    let (reply, answer) = tokio::sync::oneshot::channel();
    let queued = Instant::now();
    let afresh = super::memo::task_asked_afresh();
    let job: ReadJob = Box::new(move |conn| {
        crate::metrics::get()
            .read_wait_seconds
            .observe(queued.elapsed().as_secs_f64());
        // A panic drops `reply`, which the caller sees as an internal error.
        let _ = reply.send(super::memo::carrying(afresh, || in_snapshot(conn, f)));
    });
    queue.send(job).map_err(|_| gone("read"))?;
    Ok(answer)
}

/// How much lower the bulk readers' CPU priority is (a nice value; raising it back would need
/// privileges, lowering it never does).
pub(super) const BULK_NICE: i32 = 10;

/// How long a bulk reader runs before it offers the CPU to a waiting thread, and the time slice
/// it asks the scheduler for (the shortest Linux grants). A get by id waits at most about this
/// long for a ranking that holds the core.
pub(super) const BULK_TURN: Duration = Duration::from_micros(100);

/// How many SQLite VM instructions a bulk read runs between looks at the clock (about 20 µs of
/// a scan on this machine class).
pub(super) const BULK_CHECK_OPS: std::ffi::c_int = 2_000;

/// Lowers the calling thread's CPU priority to [`BULK_NICE`] and asks for a [`BULK_TURN`] time
/// slice (honoured from Linux 6.12; older kernels keep their default). On Linux a thread's
/// scheduling is its own. Elsewhere (a developer's Mac) it does nothing.
pub(super) fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `sched_attr` is plain data, passed by pointer with its own size; pid 0 names this
    // thread alone. `setpriority` only reads its integer arguments.
    unsafe {
        let attr = libc::sched_attr {
            size: std::mem::size_of::<libc::sched_attr>() as u32,
            sched_policy: libc::SCHED_OTHER as u32,
            sched_flags: 0,
            sched_nice: BULK_NICE,
            sched_priority: 0,
            sched_runtime: BULK_TURN.as_nanos() as u64,
            sched_deadline: 0,
            sched_period: 0,
        };
        if libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        ) != 0
        {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, BULK_NICE);
        }
    }
}

/// A bulk reader's progress handler: once the read has run for [`BULK_TURN`], it offers the CPU
/// to any thread waiting for it, then goes on. A lower nice value alone does not keep short
/// requests quick: the scheduler takes the CPU back from a running thread only at its next tick,
/// so every request in flight would wait up to a tick each time a scan got the core. A yield
/// with no one waiting costs one system call.
pub(super) fn yield_each_turn() -> impl FnMut() -> bool + Send + 'static {
    let mut turn_started = Instant::now();
    move || {
        if turn_started.elapsed() >= BULK_TURN {
            std::thread::yield_now();
            turn_started = Instant::now();
        }
        false
    }
}

/// A reader thread: takes the next read job, runs it on its own connection. It ends when every
/// handle on the database is dropped.
pub(super) fn reader_loop(conn: &Connection, queue: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panicking read answers nobody (its caller gets an internal error); the connection
        // is unharmed, since its snapshot was rolled back on unwind.
        let _ = catch_unwind(AssertUnwindSafe(|| job(conn)));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The bulk readers' scheduling is what keeps a get by id quick while a ranking runs; if the
    /// kernel refused it, the tail latency would quietly come back.
    #[test]
    fn a_bulk_reader_runs_at_lower_priority_in_short_turns() {
        let (nice, slice) = std::thread::spawn(|| {
            lower_this_threads_priority();
            // SAFETY: `sched_attr` is plain data; the kernel fills at most the size passed.
            unsafe {
                let mut attr: libc::sched_attr = std::mem::zeroed();
                let size = std::mem::size_of::<libc::sched_attr>() as u32;
                let rc = libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0);
                assert_eq!(rc, 0, "sched_getattr failed");
                (attr.sched_nice, attr.sched_runtime)
            }
        })
        .join()
        .unwrap();
        assert_eq!(nice, BULK_NICE);
        // Kernels before 6.12 report no slice for an ordinary thread; later ones the one granted.
        assert!(
            slice == 0 || slice == BULK_TURN.as_nanos() as u64,
            "slice {slice} ns"
        );
    }
}
