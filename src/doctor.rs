//! `clozup doctor`: checks a database file, the settings a server would run with, and the
//! paths mail and webhooks leave by, and says what to fix. It opens the database read-only and
//! writes nothing but an empty probe file in the backup folder (removed at once): safe beside a
//! running server, and on a file a newer Clozup wrote.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags};

use crate::config::{ServeConfig, Transport};
use crate::db::LATEST_VERSION;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Worth knowing; nothing to fix.
    Note,
    /// Works, but should be fixed.
    Warn,
    /// Broken: the server will fail, or lose or refuse something.
    Problem,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Self::Ok => "ok     ",
            Self::Note => "note   ",
            Self::Warn => "warn   ",
            Self::Problem => "PROBLEM",
        }
    }
}

/// What the checks found, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// Each finding: its level, what it is about, and what it says (with the fix).
    pub findings: Vec<(Level, &'static str, String)>,
}

impl Report {
    fn say(&mut self, level: Level, subject: &'static str, text: impl Into<String>) {
        self.findings.push((level, subject, text.into()));
    }

    /// The worst level found.
    pub fn worst(&self) -> Level {
        self.findings
            .iter()
            .map(|(l, _, _)| *l)
            .max()
            .unwrap_or(Level::Ok)
    }

    /// The report as lines for a terminal, with a summary last.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (level, subject, text) in &self.findings {
            out.push_str(&format!("{} {subject:<10} {text}\n", level.tag()));
        }
        let count = |l| self.findings.iter().filter(|(x, _, _)| *x == l).count();
        out.push_str(&format!(
            "\n{} problem(s), {} warning(s).\n",
            count(Level::Problem),
            count(Level::Warn)
        ));
        out
    }
}

/// A write-ahead log bigger than this is worth a word: it is normally checkpointed back into
/// the database whenever the server is idle.
const WAL_WARN_BYTES: u64 = 64 << 20;

/// Runs every check for the server `config` describes.
pub fn run(config: &ServeConfig) -> Report {
    let mut report = Report::default();
    let conn = database(&mut report, &config.db);
    settings(&mut report, config);
    backups(&mut report, config);
    outbound(&mut report, config, conn.as_ref());
    report
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The file: there, whole, of a version we know, its log and free space. Returns a read-only
/// connection for the checks that read it.
fn database(report: &mut Report, db: &Path) -> Option<Connection> {
    let name = db.display();
    if !db.is_file() {
        report.say(
            Level::Problem,
            "database",
            format!("no database at {name}: `clozup serve --db {name}` creates one"),
        );
        return None;
    }
    // Before SQLite opens it: closing the probe's descriptor later would drop this process's
    // SQLite locks on the same file.
    match crate::db::in_use(db) {
        Ok(true) => report.say(Level::Note, "database", "a server is using it now"),
        Ok(false) => report.say(Level::Note, "database", "no server is using it now"),
        Err(e) => report.say(Level::Warn, "database", e),
    }
    let conn = match Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) => {
            report.say(
                Level::Problem,
                "database",
                format!("cannot open {name}: {e}"),
            );
            return None;
        }
    };
    let version: i64 = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
        Ok(v) => v,
        Err(e) => {
            report.say(
                Level::Problem,
                "database",
                format!("{name} is not a readable SQLite database ({e}): restore a snapshot (`clozup restore`)"),
            );
            return None;
        }
    };
    match version {
        0 => report.say(
            Level::Problem,
            "schema",
            format!("{name} has no Clozup schema: is it the right file?"),
        ),
        v if v > LATEST_VERSION => report.say(
            Level::Problem,
            "schema",
            format!("version {v}, newer than this clozup ({LATEST_VERSION}): run the newer clozup on it"),
        ),
        v if v < LATEST_VERSION => report.say(
            Level::Note,
            "schema",
            format!("version {v}: migrated to {LATEST_VERSION} when this clozup starts on it (take a backup first)"),
        ),
        v => report.say(Level::Ok, "schema", format!("version {v}, this clozup's")),
    }
    let integrity: Result<String, _> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
    match integrity {
        Ok(s) if s == "ok" => report.say(Level::Ok, "database", "integrity check passed"),
        Ok(s) => report.say(
            Level::Problem,
            "database",
            format!("integrity check failed ({s}): stop the server and restore the newest snapshot (`clozup restore`)"),
        ),
        Err(e) => report.say(Level::Problem, "database", format!("integrity check failed: {e}")),
    }
    let orphans: rusqlite::Result<i64> =
        conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        });
    match orphans {
        Ok(0) => report.say(Level::Ok, "database", "every reference points at a record"),
        Ok(n) => report.say(
            Level::Problem,
            "database",
            format!("{n} rows refer to records that do not exist: restore the newest snapshot"),
        ),
        Err(e) => report.say(
            Level::Warn,
            "database",
            format!("foreign key check failed: {e}"),
        ),
    }
    let wal = std::fs::metadata(crate::db::with_suffix(db, "-wal")).map_or(0, |m| m.len());
    if wal > WAL_WARN_BYTES {
        report.say(
            Level::Warn,
            "database",
            format!(
                "the write-ahead log is {}: it is copied back whenever the server is idle; if it stays \
                 this big, a long read (an export, a backup) is holding it: restart the server",
                mib(wal)
            ),
        );
    } else {
        report.say(
            Level::Ok,
            "database",
            format!("write-ahead log {}", mib(wal)),
        );
    }
    let pages = |pragma: &str| -> u64 {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
            .max(0) as u64
    };
    let (page_size, total, free) = (
        pages("page_size"),
        pages("page_count"),
        pages("freelist_count"),
    );
    let (size, free_bytes) = (page_size * total, page_size * free);
    if free * 4 > total && free_bytes > 8 << 20 {
        report.say(
            Level::Warn,
            "database",
            format!(
                "{} of its {} are free pages (deleted data): compact it with `clozup backup --out F` \
                 (snapshots are compacted), then stop the server and `clozup restore F`",
                mib(free_bytes),
                mib(size)
            ),
        );
    } else {
        report.say(
            Level::Ok,
            "database",
            format!("{}, of which {} free", mib(size), mib(free_bytes)),
        );
    }
    Some(conn)
}

/// The settings: what listens where, and whether its files load.
fn settings(report: &mut Report, config: &ServeConfig) {
    let tls = config.tls_files();
    match &tls {
        Some(files) => match files.load() {
            Ok(_) => report.say(
                Level::Ok,
                "https",
                format!("certificate {} loads", files.cert.display()),
            ),
            Err(e) => report.say(
                Level::Problem,
                "https",
                format!("{e}: the server will not start"),
            ),
        },
        None if !config.bind.ip().is_loopback() => report.say(
            Level::Warn,
            "https",
            format!(
                "plain HTTP on {}, beyond this machine: passwords and keys cross the network \
                 readable; set --tls-cert and --tls-key, or put a TLS proxy in front",
                config.bind
            ),
        ),
        None => report.say(
            Level::Ok,
            "listen",
            format!("{} (this machine only)", config.bind),
        ),
    }
    if let Some(addr) = config.metrics_bind.filter(|a| !a.ip().is_loopback()) {
        report.say(
            Level::Warn,
            "metrics",
            format!("/metrics on {addr} asks no key: make sure only your monitoring reaches it"),
        );
    }
    if config.rate_limit.0.is_none() {
        report.say(
            Level::Warn,
            "limits",
            "--rate-limit off: one client can take the whole server",
        );
    }
    if config.inbound_token.is_none() {
        report.say(
            Level::Note,
            "mail",
            "inbound mail is off (no --inbound-token): replies do not reach the deals",
        );
    }
}

/// Snapshots: a folder that takes them, and a recent one.
fn backups(report: &mut Report, config: &ServeConfig) {
    let dir = config.backup_dir();
    if !dir.exists() {
        let when = if config.backup_every.is_some() {
            "when the server starts"
        } else {
            "by the first backup"
        };
        let level = if config.backup_every.is_some() {
            Level::Note
        } else {
            Level::Warn
        };
        let advice = if config.backup_every.is_some() {
            ""
        } else {
            "; none scheduled: set --backup-every 6h"
        };
        report.say(
            level,
            "backups",
            format!("no snapshot yet: {} is made {when}{advice}", dir.display()),
        );
        return;
    }
    let probe = dir.join(format!(".doctor-{}", crate::ids::new_id("probe")));
    let writable = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = writable {
        report.say(
            Level::Problem,
            "backups",
            format!("cannot write snapshots into {}: {e}", dir.display()),
        );
        return;
    }
    let newest = crate::db::newest_snapshot(&dir).map(|(name, bytes, taken)| {
        (
            name,
            bytes,
            SystemTime::now().duration_since(taken).unwrap_or_default(),
        )
    });
    let hours = |d: Duration| d.as_secs() / 3600;
    match (newest, config.backup_every) {
        (None, None) => report.say(
            Level::Warn,
            "backups",
            format!(
                "no snapshot in {} and none scheduled: set --backup-every 6h",
                dir.display()
            ),
        ),
        (None, Some(_)) => report.say(
            Level::Note,
            "backups",
            format!(
                "none yet in {}; the schedule takes the first when the server starts",
                dir.display()
            ),
        ),
        (Some((name, bytes, age)), every) => {
            let late = every.is_some_and(|e| age > 2 * e + Duration::from_secs(3600));
            let level = if late || (every.is_none() && age > Duration::from_secs(7 * 86_400)) {
                Level::Warn
            } else {
                Level::Ok
            };
            let advice = match (late, every) {
                (true, _) => ": the schedule is behind, see the server's log",
                (false, None) => " (none scheduled: --backup-every 6h)",
                _ => "",
            };
            report.say(
                level,
                "backups",
                format!(
                    "newest {name} ({}), {} h old{advice}",
                    mib(bytes),
                    hours(age)
                ),
            );
        }
    }
}

/// Where mail and webhooks go: the SMTP server answers, the endpoints' last deliveries.
fn outbound(report: &mut Report, config: &ServeConfig, conn: Option<&Connection>) {
    match Transport::from_config(config.smtp_url.as_deref()) {
        Err(e) => report.say(Level::Problem, "smtp", e),
        Ok(Transport::Log) => report.say(
            Level::Note,
            "smtp",
            "no --smtp-url: outbound mail is logged and recorded as sent, not delivered",
        ),
        Ok(Transport::Smtp(smtp)) => match smtp.test_connection() {
            Ok(true) => report.say(Level::Ok, "smtp", "the SMTP server answers"),
            Ok(false) => report.say(Level::Problem, "smtp", "the SMTP server did not answer"),
            Err(e) => report.say(
                Level::Problem,
                "smtp",
                format!("cannot reach the SMTP server: {e}; mail waits in the outbox meanwhile"),
            ),
        },
    }
    let Some(conn) = conn else { return };
    let endpoints = match crate::domain::webhooks::health(conn) {
        Ok(e) => e,
        Err(e) => {
            report.say(
                Level::Warn,
                "webhooks",
                format!("cannot read the webhooks: {e}"),
            );
            return;
        }
    };
    if endpoints.is_empty() {
        report.say(Level::Note, "webhooks", "none");
    }
    for w in endpoints {
        let last = match &w.last {
            None => "no delivery yet".to_string(),
            Some((status, code, error)) => {
                let code = code.map(|c| format!(" HTTP {c}")).unwrap_or_default();
                let error = error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                format!("last delivery {status}{code}{error}")
            }
        };
        let about = format!("{} {} of {}: {last}", w.id, w.url, w.org_id);
        match (&w.disabled_reason, w.failing_since) {
            (Some(why), _) => report.say(
                Level::Warn,
                "webhooks",
                format!("{about}; disabled ({why}): fix the endpoint, then PATCH it active"),
            ),
            (None, Some(since)) => report.say(
                Level::Warn,
                "webhooks",
                format!(
                    "{about}; failing since {}: deliveries are retried, then given up",
                    crate::timefmt::format_ms(since)
                ),
            ),
            (None, None) => report.say(Level::Ok, "webhooks", about),
        }
    }
}
