//! The database: one SQLite file in WAL mode, read-only connections and one writer.
//!
//! rusqlite is blocking, so the API's database work goes through [`Db::read`] and [`Db::write`],
//! which run it on threads of the database's own and never on an async worker:
//!
//! - Reads go to a few dedicated reader threads, each owning one read-only connection. Handing a
//!   tiny read (a get by id) to a thread that is already waiting is about twice as fast as
//!   `spawn_blocking`, which has to find or start a thread and take a pooled connection.
//! - Writes go to one writer thread owning the single writer connection: SQLite admits one writer
//!   at a time anyway, and queueing in-process is far cheaper than the busy-wait between
//!   connections.
//!   The writer practises *group commit*: the writes that queued up while the last commit was
//!   syncing run in one `BEGIN IMMEDIATE` transaction, each inside a savepoint of its own, and
//!   share one `COMMIT` and one sync. A write that fails is rolled back to its savepoint alone,
//!   so each stays all-or-nothing, and none is acknowledged before the commit that holds it.
//!
//! - Reads of a few rows by key (a credential, an object by id) run where they are asked for, on
//!   read-only connections kept for that ([`Db::lookup`]).
//!
//! Callers already on a blocking thread (the CLI, the workers) use [`Blocking::read`] and
//! [`Blocking::write`] instead, which take a read-only connection kept for them or the
//! writer's lock directly.

mod backup;
mod blocking;
pub use backup::{
    backup, backup_into, check_snapshot, hold, in_use, newest_snapshot, prune, restore, snapshots,
    with_suffix, Restored,
};
pub use blocking::Blocking;

mod readers;
pub mod search_queue;
mod writer;
use readers::{
    in_snapshot, lower_this_threads_priority, reader_loop, send_read, yield_each_turn,
    BULK_CHECK_OPS,
};
use writer::{writer_loop, Pending};

pub mod held;
pub mod memo;
mod migrate;
pub mod totals;
pub mod touched;

use std::cell::Cell;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::error::{DomainError, DomainResult};

pub use crate::config::{DbOptions, Synchronous};
pub use migrate::{MigrateError, LATEST_VERSION};

/// Prepared statements kept per connection: enough for every hot query of the API, so none is
/// compiled twice.
const STATEMENT_CACHE: usize = 256;

/// Each connection's page cache, in KiB: the hot pages of a 100k-deal organization fit.
const CACHE_KIB: i64 = 16_000;

/// The page cache of each point-read connection, in KiB. Point reads (a record by id, the
/// credential of every request) land anywhere in the big tables; with the usual cache, a third
/// of a get-by-id's time on the 100k-lead set went to `pread`s of pages the cache had dropped.
/// The cache grows only as pages are read, so an idle server does not hold it.
const POINT_CACHE_KIB: i64 = 64_000;

/// Most writes one group commit takes: enough to share a sync among every request a loaded
/// server has in flight, few enough that the first of them does not wait long on the last.
const MAX_GROUP: usize = 128;

/// A write transaction in progress, as the domain's writing functions take it: they can only be
/// called inside one, and cannot commit, roll back or nest it themselves (the writer does).
pub struct Tx<'c> {
    conn: &'c Connection,
    queued_work: Cell<bool>,
}

impl<'c> Tx<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            queued_work: Cell::new(false),
        }
    }

    /// Says that this transaction queued work for the background workers (a webhook delivery
    /// or an email due now): once it commits, the workers waiting in [`Db::wait_for_work`] wake
    /// and take it, instead of at their next poll.
    pub fn queue_work(&self) {
        self.queued_work.set(true);
    }

    /// [`Connection::execute`], with the statement kept in the connection's statement cache:
    /// a write's statements run again with every request, and compiling one each time cost
    /// the mail sender a tenth of its CPU.
    pub fn execute<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    /// [`Connection::query_row`], cached the same way (see [`CachedRow`]).
    pub fn query_row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.conn.cached_row(sql, params, f)
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// Rung after each commit that queued work for the background workers, who wait on it between
/// polls. A new delivery or email goes out at once, and idle workers need not poll often
/// (frequent polling took CPU from the requests).
#[derive(Default)]
struct WorkBell {
    rings: Mutex<u64>,
    rung: Condvar,
}

impl WorkBell {
    fn ring(&self) {
        *self.rings.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.rung.notify_all();
    }
}

/// `query_row` with the statement kept in the connection's statement cache. Parsing and planning
/// a statement costs more than running a lookup by key (it was a third of a get-by-id's SQLite
/// time), so every one-row query of the server goes through this.
pub trait CachedRow {
    /// Runs `sql` with `params` and maps its first row with `f` (`QueryReturnedNoRows` if none).
    fn cached_row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl CachedRow for Connection {
    fn cached_row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// The writer's raised page cache, from [`Db::bulk_cache`]; dropping it restores the usual one.
pub struct BulkCache<'d>(&'d Db);

impl Drop for BulkCache<'_> {
    fn drop(&mut self) {
        self.0.set_write_cache(CACHE_KIB);
    }
}

/// Hands back what a burst of work left behind on this thread: the connection's page cache
/// (`PRAGMA shrink_memory`) and the allocator's free pages (`mi_collect`), which an idle thread
/// would otherwise keep. Called after a whole-organization scan (the signal sweep reads every
/// open deal once a minute) and by the writer once it is idle and settled (the first sweep of a
/// freshly seeded 100k-deal file writes 100k signals): without both, that server at rest held
/// 87 MiB instead of 36.
pub fn release_memory(conn: &Connection) {
    let _ = conn.execute_batch("PRAGMA shrink_memory");
    // SAFETY: mi_collect only walks this thread's own heap; it takes no pointer.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// A piece of read work for a reader thread.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A handle on the database, cheap to clone. Four words say how to reach it: [`Db::read`] (a
/// request's query, in one snapshot), [`Db::lookup`] (a few rows by key, on this worker),
/// [`Db::scan`] (a whole organization, at low priority) and [`Db::write`]; [`Db::blocking`]
/// gives the same words to threads that may block.
#[derive(Clone)]
pub struct Db {
    /// Connections for [`Db::lookup`], one per async worker.
    points: Arc<[Mutex<Connection>]>,
    /// The connection of [`Blocking::read`]: the background workers' reads never take a
    /// point connection from the async workers (with one core there is one, and a worker that
    /// held it sent every request's lookup to a reader thread, waiting behind the workers).
    background: Arc<Mutex<Connection>>,
    reads: mpsc::Sender<ReadJob>,
    /// Reads that scan a whole organization, for the low-priority bulk readers.
    bulk_reads: mpsc::Sender<ReadJob>,
    writes: mpsc::Sender<Box<dyn WriteJob>>,
    writer: Arc<Mutex<Connection>>,
    path: PathBuf,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    work: Arc<WorkBell>,
}

/// Why the database could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// SQLite refused the file.
    Sqlite(rusqlite::Error),
    /// The schema could not be brought up to date.
    Migrate(MigrateError),
    /// A reader or writer thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "cannot open the database: {e}"),
            Self::Migrate(e) => write!(f, "{e}"),
            Self::Thread(e) => write!(f, "cannot start a database thread: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

fn pragmas(options: &DbOptions) -> String {
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    format!(
        "PRAGMA busy_timeout = {};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = {sync};
         PRAGMA cache_size = -{CACHE_KIB};
         PRAGMA temp_store = MEMORY;",
        options.busy_timeout.as_millis()
    )
}

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it to [`LATEST_VERSION`].
    ///
    /// A database whose schema is newer than this binary is refused rather than misread.
    pub fn open(path: &Path, options: &DbOptions) -> Result<Self, OpenError> {
        let pragmas = pragmas(options);
        let mut writer = Connection::open(path).map_err(OpenError::Sqlite)?;
        writer.execute_batch(&pragmas).map_err(OpenError::Sqlite)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(OpenError::Sqlite)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        migrate::migrate(&mut writer).map_err(OpenError::Migrate)?;
        touched::watch(&writer).map_err(OpenError::Sqlite)?;

        let open_reader = || -> Result<Connection, OpenError> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(OpenError::Sqlite)?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            conn.execute_batch(&pragmas).map_err(OpenError::Sqlite)?;
            Ok(conn)
        };
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let points = (0..workers)
            .map(|_| {
                let conn = open_reader()?;
                conn.execute_batch(&format!("PRAGMA cache_size = -{POINT_CACHE_KIB}"))
                    .map_err(OpenError::Sqlite)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>, _>>()?
            .into();
        let background = Arc::new(Mutex::new(open_reader()?));

        let (reads, read_queue) = mpsc::channel::<ReadJob>();
        let read_queue = Arc::new(Mutex::new(read_queue));
        for n in 0..options.read_pool_size.max(1) {
            let conn = open_reader()?;
            let queue = read_queue.clone();
            spawn_named(format!("clozup-read-{n}"), move || {
                reader_loop(&conn, &queue)
            })?;
        }
        let (bulk_reads, bulk_queue) = mpsc::channel::<ReadJob>();
        let bulk_queue = Arc::new(Mutex::new(bulk_queue));
        for n in 0..(options.read_pool_size / 2).max(1) {
            let conn = open_reader()?;
            let queue = bulk_queue.clone();
            conn.progress_handler(BULK_CHECK_OPS, Some(yield_each_turn()))
                .map_err(OpenError::Sqlite)?;
            spawn_named(format!("clozup-bulk-{n}"), move || {
                lower_this_threads_priority();
                reader_loop(&conn, &queue)
            })?;
        }

        let writer = Arc::new(Mutex::new(writer));
        let commits = Arc::new(tokio::sync::watch::channel(0).0);
        let (writes, write_queue) = mpsc::channel();
        let work = Arc::new(WorkBell::default());
        let (conn, notify, bell) = (writer.clone(), commits.clone(), work.clone());
        spawn_named("clozup-write".into(), move || {
            writer_loop(&conn, &write_queue, &notify, &bell)
        })?;
        Ok(Self {
            points,
            background,
            reads,
            bulk_reads,
            writes,
            writer,
            path: path.to_path_buf(),
            commits,
            work,
        })
    }

    /// A receiver that changes after every committed write transaction of this process.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// How many write transactions this process has committed. It moves before the writes of a
    /// commit are answered, so whoever reads it after seeing a write answered sees it moved.
    pub fn commit_count(&self) -> u64 {
        *self.commits.borrow()
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader thread's read-only connection, inside one snapshot.
    pub async fn read<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> DomainResult<T> + Send + 'static,
    {
        read_on(&self.reads, f).await
    }

    /// [`Db::read`] for a read that scans a whole organization (the at-risk ranking, analytics):
    /// it runs on bulk reader threads of lower CPU priority (nice +10) that give up the CPU every
    /// 100 µs, so on a busy server it takes longer, and the short requests around it keep their
    /// latency.
    pub async fn scan<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> DomainResult<T> + Send + 'static,
    {
        read_on(&self.bulk_reads, f).await
    }

    /// Runs `f`, a read of a few rows by key (a credential, a resource by id), right here on the
    /// calling async worker, on a connection kept for that; when they are all in use, it goes
    /// to a reader thread like [`Db::read`]. Such a read takes microseconds, less than handing
    /// it to another thread and back (four context switches on a one-core server). Never for
    /// anything that scans: it holds up every request on this worker while it runs.
    pub async fn lookup<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> DomainResult<T> + Send + 'static,
    {
        match self.read_here(f) {
            Ok(answer) => answer,
            Err(f) => self.read(f).await,
        }
    }

    /// [`Db::lookup`]'s synchronous part: `f`'s answer, or `f` back when no connection is
    /// free. (Apart, so no lock guard lives across the caller's await.)
    fn read_here<T, F>(&self, f: F) -> Result<DomainResult<T>, F>
    where
        F: FnOnce(&Connection) -> DomainResult<T>,
    {
        let free = self.points.iter().find_map(|slot| match slot.try_lock() {
            Ok(conn) => Some(conn),
            // A read that panicked rolled its snapshot back on unwind: the connection is clean.
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        });
        match free {
            Some(conn) => Ok(in_snapshot(&conn, f)),
            None => Err(f),
        }
    }

    /// Runs `f` as one all-or-nothing unit of a write transaction on the writer thread. It is
    /// kept when `f` returns `Ok` and the commit holding it succeeds, and only then answered;
    /// when `f` fails, everything it did is undone and its error returned.
    pub async fn write<T, F>(&self, f: F) -> DomainResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> DomainResult<T> + Send + 'static,
    {
        let answer = self.send_write(f)?;
        answer.await.unwrap_or_else(|_| Err(gone("write")))
    }

    /// Queues `f` for the writer thread; its answer comes on the returned channel.
    fn send_write<T, F>(
        &self,
        f: F,
    ) -> DomainResult<tokio::sync::oneshot::Receiver<DomainResult<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> DomainResult<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Pending {
            work: Some(f),
            result: None,
            reply,
            rehearsal: rehearsing(),
        };
        self.writes.send(Box::new(job)).map_err(|_| gone("write"))?;
        crate::metrics::get().write_queue.inc();
        Ok(answer)
    }

    /// Raises the writer's page cache to `cache_kib` until the returned guard is dropped (SQLite
    /// then frees the extra pages). Bulk inserts touch index pages all over the file; with the
    /// usual cache they spill to the WAL and are read back.
    pub fn bulk_cache(&self, cache_kib: i64) -> BulkCache<'_> {
        self.set_write_cache(cache_kib);
        BulkCache(self)
    }

    fn set_write_cache(&self, kib: i64) {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Only a wrong pragma name can fail here; the cache is an optimisation either way.
        let _ = conn.pragma_update(None, "cache_size", -kib);
    }

    /// How many commits have queued work for the background workers so far. A worker reads it
    /// before it looks for work, and passes it to [`Db::wait_for_work`] when it found none, so
    /// that work queued in between is not slept through.
    pub fn work_queued(&self) -> u64 {
        *self.work.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a commit after the `seen`th queues work ([`Tx::queue_work`]), or `timeout`
    /// passes: work that comes due with time (a retry after its backoff) rings no bell.
    pub fn wait_for_work(&self, seen: u64, timeout: Duration) {
        let rings = self.work.rings.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .work
            .rung
            .wait_timeout_while(rings, timeout, |rings| *rings == seen);
    }
}

/// Hands `f` to the reader threads behind `queue` and waits for its answer.
async fn read_on<T, F>(queue: &mpsc::Sender<ReadJob>, f: F) -> DomainResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> DomainResult<T> + Send + 'static,
{
    let answer = send_read(queue, f)?;
    answer.await.unwrap_or_else(|_| Err(gone("read")))
}

/// The error of a database call whose thread is gone (it panicked, or the database was closed).
/// `m`'s guard, even if a thread panicked while holding it: what these locks guard (memories of
/// answers, logs of commits) is rebuilt or read again, never left half-written in a way that
/// matters.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn gone(what: &str) -> DomainError {
    DomainError::Internal(format!("the database {what} did not complete"))
}

fn spawn_named(name: String, body: impl FnOnce() + Send + 'static) -> Result<(), OpenError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .map(drop)
        .map_err(OpenError::Thread)
}

/// A queued write, as the writer thread sees it.
trait WriteJob: Send {
    /// Runs the write inside its savepoint; `true` when it wants to be kept.
    fn run(&mut self, tx: &Tx<'_>) -> bool;
    /// Answers the caller once the group's fate is known: `Err` when it was not committed.
    fn finish(self: Box<Self>, group: Result<(), &str>);
}

tokio::task_local! {
    /// Set while a request with `dry_run=true` runs (see [`rehearse`]).
    static REHEARSAL: ();
}

/// Runs `request` as a dry run: every [`Db::write`] it makes is done in full inside its
/// savepoint (so it sees its own changes and fails as it would), answered, and rolled back.
/// Nothing is committed, so no event, webhook or email follows.
pub async fn rehearse<F: std::future::Future>(request: F) -> F::Output {
    REHEARSAL.scope((), request).await
}

/// Whether the current task is a dry run (for work it hands to a blocking thread, which
/// cannot see the task's flag: pass it to [`Blocking::write_or_rehearse`]).
pub fn rehearsing() -> bool {
    REHEARSAL.try_with(|()| ()).is_ok()
}

/// Runs blocking work (a database call, a password hash) on Tokio's blocking pool, never on an
/// async worker; a panic there becomes an internal error.
pub async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> DomainResult<T> + Send + 'static,
) -> DomainResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(DomainError::Internal(format!("database task failed: {e}"))))
}
