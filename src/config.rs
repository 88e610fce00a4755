//! Every setting of `clozup serve`: a flag, an environment variable and a default, in one struct.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings for `clozup serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// SQLite database file; created and migrated if missing.
    #[arg(long, env = "CLOZUP_DB", default_value = "./clozup.sqlite")]
    pub db: PathBuf,

    /// Address to listen on. Loopback by default: expose it deliberately.
    #[arg(long, env = "CLOZUP_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Serve HTTPS with this certificate (PEM: the certificate, then its intermediates);
    /// with --tls-key. Both files are read again on SIGHUP, so a renewed certificate is served
    /// without a restart.
    #[arg(long, env = "CLOZUP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM); with --tls-cert.
    #[arg(long, env = "CLOZUP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve Prometheus metrics at `/metrics` on this address (e.g. 127.0.0.1:9090), apart
    /// from the API: no key is asked there, so keep it on loopback or a private network.
    /// Off unless given.
    #[arg(long, env = "CLOZUP_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Base URL clients reach the server at (used in links such as tracking pixels).
    /// Defaults to http://<bind> (https:// with --tls-cert).
    #[arg(long, env = "CLOZUP_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The domain of the deal inboxes' addresses (`<deal-slug>@<domain>`); route its mail to
    /// `POST /api/v1/inbound/email`.
    #[arg(
        long,
        env = "CLOZUP_EMAIL_DOMAIN",
        default_value = "inbox.clozup.localhost"
    )]
    pub email_domain: String,

    /// Where outbound mail goes: `smtps://user:pass@host:465`, or
    /// `smtp://user:pass@host:587?tls=required` for STARTTLS. Without it, messages are logged and
    /// recorded as sent (the `log` transport), so demos work offline.
    #[arg(long, env = "CLOZUP_SMTP_URL", value_parser = parse_smtp_url)]
    pub smtp_url: Option<String>,

    /// The bearer token a mail server uses to post raw messages to `/api/v1/inbound/email`.
    /// Without it, inbound mail is refused.
    #[arg(long, env = "CLOZUP_INBOUND_TOKEN")]
    pub inbound_token: Option<String>,

    /// Largest raw inbound message accepted, attachments included.
    #[arg(long, env = "CLOZUP_INBOUND_LIMIT", default_value_t = 25 << 20)]
    pub inbound_limit: usize,

    /// Delays between retries of a message the SMTP server refused for now (4xx), comma
    /// separated; after the last, it is marked failed.
    #[arg(long, env = "CLOZUP_EMAIL_RETRIES", default_value = "30s,2m,10m,30m,1h,3h,6h",
          value_delimiter = ',', value_parser = parse_duration)]
    pub email_retry_schedule: Vec<Duration>,

    /// On a new database, fill the first organization with realistic demo data (a team,
    /// companies, leads, deals across the pipeline, tasks and activities) before serving.
    #[arg(long, env = "CLOZUP_DEMO")]
    pub demo: bool,

    /// Where `POST /admin/backup` writes snapshots; defaults to `backups/` beside the database.
    #[arg(long, env = "CLOZUP_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Take a checked snapshot into the backup folder this often (e.g. 6h, 1d); off unless
    /// given. The first is due one period after the newest snapshot already there (at start
    /// when there is none), so restarts neither skip nor repeat one.
    #[arg(long, env = "CLOZUP_BACKUP_EVERY", value_parser = parse_duration)]
    pub backup_every: Option<Duration>,

    /// How many snapshots the backup folder keeps: after each scheduled one, the oldest beyond
    /// this number are removed (snapshots taken through the API or `clozup backup` into the
    /// folder count too).
    #[arg(long, env = "CLOZUP_BACKUP_KEEP", default_value_t = 28,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub backup_keep: u32,

    /// How often the idle sender looks for retries coming due. A newly queued message wakes it
    /// at once.
    #[arg(long, env = "CLOZUP_EMAIL_POLL", default_value = "1s", value_parser = parse_duration)]
    pub email_poll: Duration,

    /// Rate limit per credential (per client IP before authentication): BURST/PERIOD,
    /// e.g. 30/500ms (30 at once, one more every 500 ms), or `off`.
    #[arg(long, env = "CLOZUP_RATE_LIMIT", default_value = "30/500ms", value_parser = parse_rate_limit)]
    pub rate_limit: RateLimitSetting,

    /// Largest request body accepted (bytes, or with a KiB/MiB suffix).
    #[arg(long, env = "CLOZUP_BODY_LIMIT", default_value = "1MiB", value_parser = parse_size)]
    pub body_limit: usize,

    /// Largest CSV the imports accept (`POST /leads/import`, `/companies/import` and
    /// `/deals/import`; bytes, or with a KiB/MiB suffix).
    #[arg(long, env = "CLOZUP_IMPORT_LIMIT", default_value = "64MiB", value_parser = parse_size)]
    pub import_limit: usize,

    /// Log format: text or json.
    #[arg(long, env = "CLOZUP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, tracing syntax (e.g. `info`, `clozup=debug`).
    #[arg(long, env = "CLOZUP_LOG", default_value = "info")]
    pub log: String,

    /// SQLite `synchronous`: full (every acknowledged write survives power loss) or normal.
    #[arg(long, env = "CLOZUP_SYNCHRONOUS", value_enum, default_value_t = Synchronous::Full)]
    pub synchronous: Synchronous,

    /// How long a database call waits on a lock before answering 503.
    #[arg(long, env = "CLOZUP_BUSY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub busy_timeout: Duration,

    /// Reader threads, each with a read-only connection (half as many more serve whole-organization
    /// scans at a lower priority).
    #[arg(long, env = "CLOZUP_READ_POOL", default_value_t = 4)]
    pub read_pool: u32,

    /// How long a login session lasts.
    #[arg(long, env = "CLOZUP_SESSION_TTL", default_value = "30d", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// On SIGINT/SIGTERM, how long requests in flight may take to finish; requests that arrive
    /// meanwhile get 503 with Retry-After. The server exits as soon as nothing is in flight.
    #[arg(long, env = "CLOZUP_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// How often the time-based buying signals (activity gap, overdue follow-up, stage stalled,
    /// close date passed) are re-evaluated.
    #[arg(long, env = "CLOZUP_SIGNAL_SWEEP", default_value = "60s", value_parser = parse_duration)]
    pub signal_sweep: Duration,

    /// Most SSE streams one credential may hold open.
    #[arg(long, env = "CLOZUP_SSE_PER_CREDENTIAL", default_value_t = 5)]
    pub sse_per_credential: usize,

    /// Most SSE streams open in all.
    #[arg(long, env = "CLOZUP_SSE_MAX", default_value_t = 2000)]
    pub sse_max: usize,

    /// How long one SSE stream may stay open before the server ends it (clients reconnect
    /// with Last-Event-ID).
    #[arg(long, env = "CLOZUP_SSE_LIFETIME", default_value = "1h", value_parser = parse_duration)]
    pub sse_lifetime: Duration,

    /// How often an idle SSE stream gets a `:` keep-alive (and its credential is re-checked).
    #[arg(long, env = "CLOZUP_SSE_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub sse_keepalive: Duration,

    /// How long the event log keeps events. Older ones are pruned hourly; a stream asked to
    /// resume from before the pruned point gets a `reset` event first.
    #[arg(long, env = "CLOZUP_EVENT_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// Ranges webhooks may reach although private or loopback (repeatable), e.g. 127.0.0.0/8.
    /// Only at start-up, never through the API; each is logged as a warning.
    #[arg(
        long = "webhook-allow-cidr",
        env = "CLOZUP_WEBHOOK_ALLOW_CIDR",
        value_delimiter = ','
    )]
    pub webhook_allow_cidr: Vec<crate::targets::Cidr>,

    /// Delays between webhook retries, comma separated.
    #[arg(long, env = "CLOZUP_WEBHOOK_RETRIES", default_value = "5s,5m,30m,2h,5h,10h,10h",
          value_delimiter = ',', value_parser = parse_duration)]
    pub webhook_retry_schedule: Vec<Duration>,

    /// Timeout of one webhook delivery attempt.
    #[arg(long, env = "CLOZUP_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Threads sending webhook deliveries.
    #[arg(long, env = "CLOZUP_WEBHOOK_WORKERS", default_value_t = 8)]
    pub webhook_workers: usize,

    /// How often an idle webhook worker looks for retries coming due. A new delivery wakes the
    /// workers at once.
    #[arg(long, env = "CLOZUP_WEBHOOK_POLL", default_value = "1s", value_parser = parse_duration)]
    pub webhook_poll: Duration,

    /// On first run, also write the new admin API key to this file (mode 0600).
    #[arg(long, env = "CLOZUP_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,

    /// On first run, the name of the organization created.
    #[arg(long, env = "CLOZUP_ORG_NAME", default_value = "My Organization")]
    pub org_name: String,

    /// On first run, the email of its owner.
    #[arg(long, env = "CLOZUP_OWNER_EMAIL", default_value = "owner@example.com")]
    pub owner_email: String,
}

/// `--rate-limit`: a limit, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSetting(pub Option<Limit>);

impl ServeConfig {
    /// The settings with every default, for tests and embedding.
    pub fn with_db(db: impl Into<PathBuf>) -> Self {
        Self {
            db: db.into(),
            bind: "127.0.0.1:8080".parse().expect("valid default address"),
            metrics_bind: None,
            tls_cert: None,
            tls_key: None,
            public_url: None,
            email_domain: "inbox.clozup.localhost".into(),
            smtp_url: None,
            inbound_token: None,
            inbound_limit: 25 << 20,
            email_retry_schedule: ["30s", "2m", "10m", "30m", "1h", "3h", "6h"]
                .iter()
                .map(|d| parse_duration(d).expect("valid default schedule"))
                .collect(),
            email_poll: Duration::from_secs(1),
            backup_dir: None,
            backup_every: None,
            backup_keep: 28,
            demo: false,
            rate_limit: parse_rate_limit("30/500ms").expect("valid default limit"),
            body_limit: 1 << 20,
            import_limit: 64 << 20,
            log_format: LogFormat::Text,
            log: "info".into(),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            read_pool: 4,
            session_ttl: Duration::from_secs(30 * 86_400),
            shutdown_grace: Duration::from_secs(10),
            signal_sweep: Duration::from_secs(60),
            sse_per_credential: 5,
            sse_max: 2000,
            sse_lifetime: Duration::from_secs(3600),
            sse_keepalive: Duration::from_secs(15),
            event_retention: Duration::from_secs(30 * 86_400),
            webhook_allow_cidr: Vec::new(),
            webhook_retry_schedule: ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
                .iter()
                .map(|d| parse_duration(d).expect("valid default schedule"))
                .collect(),
            webhook_timeout: Duration::from_secs(15),
            webhook_workers: 8,
            webhook_poll: Duration::from_secs(1),
            admin_key_file: None,
            org_name: "My Organization".into(),
            owner_email: "owner@example.com".into(),
        }
    }

    /// The database options these settings give.
    pub fn db_options(&self) -> DbOptions {
        DbOptions {
            synchronous: self.synchronous,
            busy_timeout: self.busy_timeout,
            read_pool_size: self.read_pool,
        }
    }

    /// The webhook target policy these settings give.
    pub fn webhook_policy(&self) -> crate::targets::TargetPolicy {
        crate::targets::TargetPolicy {
            allow: self.webhook_allow_cidr.clone(),
        }
    }

    /// Where backups go: `--backup-dir`, or `backups/` beside the database.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| {
            self.db
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("backups")
        })
    }

    /// The certificate files when HTTPS is on.
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| {
                let scheme = if self.tls_files().is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", self.bind)
            })
            .trim_end_matches('/')
            .to_string()
    }
}

/// Parses `500ms`, `30s`, `5m`, `24h`, `30d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 500ms, 30s, 5m, 24h or 30d"))?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_millis(ms))
}

/// Parses a byte size: `1048576`, `512KiB`, `1MiB`, `1MB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: usize = number
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as 1048576, 512KiB or 1MiB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "kb" => 1000,
        "mib" | "m" => 1 << 20,
        "mb" => 1_000_000,
        other => return Err(format!("unknown size unit `{other}` (use KiB or MiB)")),
    };
    Ok(n * factor)
}

/// Parses `BURST/PERIOD` (e.g. `30/500ms`) or `off`.
pub fn parse_rate_limit(s: &str) -> Result<RateLimitSetting, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(RateLimitSetting(None));
    }
    let (burst, period) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not BURST/PERIOD (e.g. 30/500ms) or off"))?;
    let burst: u32 = burst
        .trim()
        .parse()
        .ok()
        .filter(|b| *b >= 1)
        .ok_or_else(|| format!("burst `{burst}` must be a whole number of at least 1"))?;
    let period = parse_duration(period)?;
    if period.is_zero() {
        return Err("the period must be longer than zero".into());
    }
    Ok(RateLimitSetting(Some(Limit { burst, period })))
}

/// Checks an `--smtp-url` the way the sender will use it, so a bad one stops the start.
pub fn parse_smtp_url(s: &str) -> Result<String, String> {
    smtp_transport(s).map(|_| s.to_string())
}

/// The SMTP transport an `--smtp-url` describes (lettre reads the URL), or why it is unusable.
pub fn smtp_transport(url: &str) -> Result<lettre::transport::smtp::SmtpTransportBuilder, String> {
    lettre::SmtpTransport::from_url(url).map_err(|e| format!("--smtp-url is not usable: {e}"))
}

/// The configured limit: `burst` requests at once, one more every `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Bucket size.
    pub burst: u32,
    /// Time to earn one token back.
    pub period: Duration,
}

/// How hard SQLite syncs to disk on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Synchronous {
    /// Every commit is durable the moment it is acknowledged (the default).
    Full,
    /// Faster; a power loss may drop the last commits (never corrupts the database).
    Normal,
}

/// Settings for opening the database.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// The `synchronous` pragma.
    pub synchronous: Synchronous,
    /// How long a connection waits on a lock held by another process before giving up.
    pub busy_timeout: Duration,
    /// How many reader threads (each with its read-only connection) serve `Db::read`; half as
    /// many, at least one, serve `Db::scan`.
    pub read_pool_size: u32,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            read_pool_size: 4,
        }
    }
}

/// Where outbound mail goes.
#[derive(Clone)]
pub enum Transport {
    /// A real SMTP server.
    Smtp(lettre::SmtpTransport),
    /// Nowhere: each message is logged and recorded as sent (offline demos).
    Log,
}

impl Transport {
    /// The transport `--smtp-url` asks for (the `log` one without it).
    pub fn from_config(smtp_url: Option<&str>) -> Result<Self, String> {
        match smtp_url {
            None => Ok(Self::Log),
            Some(url) => smtp_transport(url)
                .map(|b| Self::Smtp(b.timeout(Some(Duration::from_secs(30))).build())),
        }
    }

    /// `smtp` or `log`, as `/health` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Smtp(_) => "smtp",
            Self::Log => "log",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("2048").unwrap(), 2048);
        assert_eq!(parse_rate_limit("off").unwrap(), RateLimitSetting(None));
        let RateLimitSetting(Some(l)) = parse_rate_limit("30/500ms").unwrap() else {
            panic!("expected a limit")
        };
        assert_eq!((l.burst, l.period), (30, Duration::from_millis(500)));
        assert!(parse_rate_limit("0/1s").is_err());
    }
}
