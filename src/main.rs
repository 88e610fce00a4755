//! The `clozup` command: serve the API, or manage keys and organizations on a database file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: a request allocates and frees many small objects (JSON
/// values, strings, rows) across threads, and glibc's allocator spent 10-13% of the server's CPU
/// on that under load (`malloc_consolidate`, `_int_free`, `unlink_chunk` in perf). Built without
/// transparent huge pages (`no_thp`): with them, its 2 MiB-aligned segments took idle RSS on the
/// seeded set from 18 to 39 MiB; without, 21 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clozup::clock::{Clock, SystemClock};
use clozup::config::{parse_duration, ServeConfig};
use clozup::db::{Db, DbOptions};
use clozup::domain::api_keys::{self, NewApiKey};
use clozup::domain::auth::Scope;
use clozup::domain::listing::Paging;
use clozup::domain::{orgs, users, DomainError};
use clozup::timefmt::format_ms;

/// Clozup: a self-hostable, agent-native sales CRM server.
#[derive(Parser)]
#[command(name = "clozup", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (creates and migrates the database on first run).
    Serve(Box<ServeConfig>),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage users' passwords.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Manage organizations.
    Orgs {
        #[command(subcommand)]
        action: OrgsAction,
    },
    /// Print the OpenAPI document (JSON) for client generators.
    Openapi {
        /// Print instead the rules across fields that the server enforces but the document
        /// only states in words (`{schema: JSON Schema keywords}`), for contract fuzzers.
        #[arg(long)]
        cross_field_rules: bool,
    },
    /// Fill an organization with realistic demo data, the same for the same --seed and
    /// --as-of (a new database gets its organization and admin key first).
    Seed(Box<SeedArgs>),
    /// Import a CSV file of leads or companies into the database, as `POST /leads/import`
    /// does (one transaction, a report of every row as JSON on stdout), even while a server
    /// is serving the same file: for migrations too big to upload.
    Import(Box<clozup::import_file::ImportArgs>),
    /// Serve the MCP server over stdin and stdout, for an agent on this machine that starts
    /// it (a desktop assistant, an IDE): the same tools as `/mcp`, acting as one API key, on
    /// a database file a `clozup serve` may be serving at the same time.
    Mcp(Box<McpArgs>),
    /// Write a consistent snapshot of the database to a new file, even while a server is
    /// writing to it; the copy is integrity-checked.
    Backup {
        #[command(flatten)]
        db: DbArg,
        /// The snapshot's path (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a database file, the settings a server would run with (the same flags and
    /// environment as `serve`) and the outbound paths (SMTP, webhooks), and say what to fix.
    /// Reads only; exits 1 when it finds a problem.
    Doctor(Box<ServeConfig>),
    /// Put a snapshot (from `clozup backup`, `POST /admin/backup` or `--backup-every`) in
    /// place of the database, after checking it. Refused while a server uses the database;
    /// the database it replaces is kept beside it as `<db>.replaced-<time>`.
    Restore {
        /// The snapshot file.
        snapshot: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(clap::Args)]
struct DbArg {
    /// SQLite database file.
    #[arg(long, env = "CLOZUP_DB", default_value = "./clozup.sqlite")]
    db: PathBuf,
}

#[derive(clap::Args)]
struct SeedArgs {
    #[command(flatten)]
    db: DbArg,
    /// Team members besides the owner.
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Companies.
    #[arg(long, default_value_t = 1_000)]
    companies: usize,
    /// Leads.
    #[arg(long, default_value_t = 5_000)]
    leads: usize,
    /// Deals.
    #[arg(long, default_value_t = 2_000)]
    deals: usize,
    /// Activities.
    #[arg(long, default_value_t = 50_000)]
    activities: usize,
    /// Campaigns with a history, played forward to `--as-of` (at most 3).
    #[arg(long, default_value_t = 3)]
    campaigns: usize,
    /// The random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The moment the data is made relative to (RFC 3339); default now. With the same seed
    /// and --as-of, the rows and their ids are identical (but for the campaigns' history,
    /// which the campaign engine makes with ids of its own).
    #[arg(long)]
    as_of: Option<String>,
    /// The organization to fill (default the first).
    #[arg(long)]
    org: Option<String>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct McpArgs {
    #[command(flatten)]
    db: DbArg,
    /// The API key the agent acts as: its organization, its scopes (a `read` key sees no
    /// write tool). From the environment rather than the command line where others can see
    /// processes' arguments.
    #[arg(long, env = "CLOZUP_KEY", hide_env_values = true)]
    key: String,
    /// The toolsets to list, separated by commas: `default`, `all`, or API tags such as
    /// `deals,intelligence` (as `/mcp?toolsets=`).
    #[arg(long, default_value = "default")]
    toolsets: String,
    /// Log filter (the log goes to stderr; stdout carries the protocol).
    #[arg(long, env = "CLOZUP_LOG", default_value = "warn")]
    log: String,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key and print it (once).
    Create {
        #[command(flatten)]
        db: DbArg,
        /// What the key is for.
        #[arg(long, default_value = "CLI key")]
        name: String,
        /// Comma-separated scopes: read, write, admin.
        #[arg(long, default_value = "read,write")]
        scopes: String,
        /// Lifetime, e.g. 90d or 12h; without it the key never expires.
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// The organization (default: the first one).
        #[arg(long)]
        org: Option<String>,
    },
    /// List an organization's keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbArg,
        /// The organization (default: the first one).
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a key by id (a server running on the same file refuses it within a second).
    Revoke {
        #[command(flatten)]
        db: DbArg,
        /// The key's id (`key_...`).
        id: String,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Set a user's password, read from standard input (typed twice, unseen, at a terminal;
    /// the first line when piped). Ends the user's sessions. This is how the owner of a new
    /// organization first signs in: the API never lets an API key set a password.
    SetPassword {
        #[command(flatten)]
        db: DbArg,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The organization (default: the first one).
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum OrgsAction {
    /// Create an organization with its owner and default pipeline; prints its first admin key.
    Create {
        #[command(flatten)]
        db: DbArg,
        /// The organization's name.
        #[arg(long)]
        name: String,
        /// The owner's email.
        #[arg(long, default_value = "owner@example.com")]
        owner_email: String,
    },
}

fn main() -> ExitCode {
    sqlite_allocates_with_mimalloc();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(config) => run_server(*config),
        Command::Openapi { cross_field_rules } => {
            if cross_field_rules {
                println!("{:#}", clozup::api::document::cross_field_rules());
            } else {
                println!("{}", clozup::api::spec_json());
            }
            Ok(())
        }
        Command::Keys { action } => keys(action),
        Command::Orgs { action } => orgs_cmd(action),
        Command::Users { action } => users_cmd(action),
        Command::Seed(args) => seed_cmd(*args),
        Command::Import(args) => clozup::import_file::run(*args),
        Command::Mcp(args) => mcp_cmd(*args),
        Command::Backup { db, out } => clozup::db::backup(&db.db, &out).map(|bytes| {
            eprintln!("Wrote {} ({bytes} bytes, integrity ok).", out.display());
        }),
        Command::Doctor(config) => {
            println!("clozup doctor: {}\n", config.db.display());
            let report = clozup::doctor::run(&config);
            print!("{}", report.render());
            if report.worst() == clozup::doctor::Level::Problem {
                return ExitCode::FAILURE;
            }
            Ok(())
        }
        Command::Restore { snapshot, db } => {
            clozup::db::restore(&snapshot, &db.db, now()).map(|done| {
                eprintln!(
                    "Restored {} into {} ({} bytes, integrity ok, schema version {}).",
                    snapshot.display(),
                    db.db.display(),
                    done.bytes,
                    done.schema_version
                );
                if let Some(aside) = done.replaced {
                    eprintln!("The database it replaced is kept at {}.", aside.display());
                }
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clozup: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Points SQLite's allocator at mimalloc. SQLite calls glibc's malloc directly, not Rust's global
/// allocator, and its share was 5% of the server's CPU while creating leads (`_int_malloc`,
/// `unlink_chunk`, `_int_free` on the writer thread). Must run before SQLite is first used (it
/// is the first thing `main` does); were SQLite already set up, it says so and keeps glibc's.
fn sqlite_allocates_with_mimalloc() {
    use libmimalloc_sys as mi;
    use rusqlite::ffi;
    use std::ffi::{c_int, c_void};

    // SQLite asks for sizes as a C int and never for a negative one.
    unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        unsafe { mi::mi_malloc(n as usize) }
    }
    unsafe extern "C" fn free(p: *mut c_void) {
        unsafe { mi::mi_free(p) }
    }
    unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        unsafe { mi::mi_realloc(p, n as usize) }
    }
    unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        unsafe { mi::mi_usable_size(p) as c_int }
    }
    unsafe extern "C" fn roundup(n: c_int) -> c_int {
        unsafe { mi::mi_good_size(n as usize) as c_int }
    }
    unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        ffi::SQLITE_OK
    }
    unsafe extern "C" fn shutdown(_: *mut c_void) {}
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(malloc),
        xFree: Some(free),
        xRealloc: Some(realloc),
        xSize: Some(size),
        xRoundup: Some(roundup),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SQLite copies the methods; nothing else runs yet, as sqlite3_config requires.
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods) };
    if rc != ffi::SQLITE_OK {
        eprintln!("clozup: SQLite keeps the system allocator (sqlite3_config said {rc})");
    }
}

fn run_server(config: ServeConfig) -> Result<(), String> {
    clozup::server::init_logging(config.log_format, &config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = runtime.block_on(clozup::serve(config));
    // Database calls still running on the blocking pool get a moment, not a veto over exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

fn mcp_cmd(a: McpArgs) -> Result<(), String> {
    clozup::server::init_logging(clozup::config::LogFormat::Text, &a.log);
    if !a.db.db.exists() {
        return Err(format!(
            "{} does not exist: create it with `clozup serve` first",
            a.db.db.display()
        ));
    }
    // A restore waits for this session to end rather than swap the file under it.
    let _in_use = clozup::db::hold(&a.db.db)?;
    let db = open(&a.db)?;
    let token = a.key.trim().to_string();
    let lookup = token.clone();
    let principal = db
        .blocking()
        .read(move |c| clozup::domain::auth::authenticate(c, &lookup, now()))
        .map_err(|e| e.to_string())?
        .ok_or("--key (or CLOZUP_KEY) is not a live API key of this database")?;
    let state = Arc::new(clozup::state::AppState::new(
        db,
        ServeConfig::with_db(a.db.db.clone()),
        Arc::new(SystemClock),
    ));
    let core = clozup::server::mcp_core(state);
    let toolsets = core.catalog().parse_toolsets(&a.toolsets)?;
    let caller = clozup::mcp::Caller::new(&token, principal, toolsets);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = runtime.block_on(clozup::mcp::serve_stdio(core, caller));
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

fn open(db: &DbArg) -> Result<Db, String> {
    Db::open(&db.db, &DbOptions::default()).map_err(|e| e.to_string())
}

fn org_or_first(db: &Db, org: Option<String>) -> Result<String, String> {
    match org {
        Some(id) => Ok(id),
        None => db
            .blocking().read(orgs::first_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the database has no organization yet: run `clozup serve` or `clozup orgs create` first".into()),
    }
}

fn now() -> i64 {
    Arc::new(SystemClock).now_ms()
}

fn seed_cmd(a: SeedArgs) -> Result<(), String> {
    let as_of = match &a.as_of {
        Some(t) => clozup::timefmt::parse_rfc3339(t)
            .ok_or_else(|| format!("--as-of `{t}` is not an RFC 3339 time"))?,
        None => now(),
    };
    let db = open(&a.db)?;
    let config = ServeConfig::with_db(a.db.db.clone());
    if let Some(key) = clozup::server::first_run(&db, &config, now()).map_err(|e| e.to_string())? {
        eprintln!("A new organization was created. Its admin API key (shown once):\n\n    {key}\n");
    }
    let org_id = org_or_first(&db, a.org)?;
    let sizes = clozup::seed::Sizes {
        users: a.users,
        companies: a.companies,
        leads: a.leads,
        deals: a.deals,
        activities: a.activities,
        campaigns: a.campaigns,
    };
    let started = std::time::Instant::now();
    let r = clozup::seed::seed(
        &db,
        &org_id,
        sizes,
        a.seed,
        as_of,
        a.quiet,
        &config.email_domain,
    )?;
    eprintln!(
        "Seeded {org_id} in {:.1} s: {} users, {} companies, {} leads, {} deals ({} open tasks), {} activities, {} campaigns.",
        started.elapsed().as_secs_f64(),
        r.users,
        r.companies,
        r.leads,
        r.deals,
        r.tasks,
        r.activities,
        r.campaigns
    );
    Ok(())
}

fn keys(action: KeysAction) -> Result<(), String> {
    match action {
        KeysAction::Create {
            db,
            name,
            scopes,
            expires_in,
            org,
        } => {
            let db = open(&db)?;
            let org_id = org_or_first(&db, org)?;
            let scopes = scopes
                .split(',')
                .map(|s| {
                    Scope::parse(s)
                        .ok_or_else(|| format!("unknown scope `{s}` (use read, write, admin)"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let now = now();
            let created = db
                .blocking()
                .write(|tx| {
                    let input = NewApiKey {
                        name,
                        scopes: Some(scopes),
                        expires_in_seconds: expires_in.map(|d| d.as_secs() as i64),
                    };
                    api_keys::create_as_owner(tx, &org_id, input, now)
                })
                .map_err(|e| e.to_string())?;
            eprintln!(
                "Created {} ({}). The key is shown once:",
                created.api_key.id, created.api_key.name
            );
            println!("{}", created.key);
            Ok(())
        }
        KeysAction::List { db, org } => {
            let db = open(&db)?;
            let org_id = org_or_first(&db, org)?;
            let now = now();
            let mut page_no = 1;
            println!(
                "{:<31} {:<13} {:<18} {:<8} {:<21} NAME",
                "ID", "PREFIX", "SCOPES", "STATUS", "LAST USED"
            );
            loop {
                let paging = Paging::new(Some(page_no), Some(100)).map_err(|e| e.to_string())?;
                let page = db
                    .blocking()
                    .read(|c| api_keys::list(c, &org_id, None, Some("created_at"), paging, now))
                    .map_err(|e| e.to_string())?;
                for k in &page.items {
                    let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                    println!(
                        "{:<31} {:<13} {:<18} {:<8} {:<21} {}",
                        k.id,
                        k.prefix,
                        scopes.join(","),
                        k.status,
                        k.last_used_at
                            .map(|t| format_ms(t.0))
                            .unwrap_or_else(|| "never".into()),
                        k.name
                    );
                }
                if page_no * 100 >= page.total {
                    return Ok(());
                }
                page_no += 1;
            }
        }
        KeysAction::Revoke { db, id } => {
            let db = open(&db)?;
            let now = now();
            let key = db
                .blocking()
                .write(|tx| {
                    let org_id = api_keys::org_of(tx, &id)?;
                    api_keys::revoke(tx, &org_id, &id, now)
                })
                .map_err(|e: DomainError| e.to_string())?;
            println!("Revoked {} ({}).", key.id, key.name);
            Ok(())
        }
    }
}

fn users_cmd(action: UsersAction) -> Result<(), String> {
    match action {
        UsersAction::SetPassword { db, email, org } => {
            let db = open(&db)?;
            let org_id = org_or_first(&db, org)?;
            let password = clozup::prompt::read_new_password()?;
            let hashed = users::hash_password(&password).map_err(|e| e.to_string())?;
            let now = now();
            let user = db
                .blocking()
                .write(|tx| users::set_password_by_operator(tx, &org_id, &email, hashed, now))
                .map_err(|e| e.to_string())?;
            eprintln!(
                "Password set for {} ({}, {}); their other sessions ended. Sign in with \
                 POST /api/v1/auth/login.",
                user.email,
                user.id,
                user.role.as_str()
            );
            Ok(())
        }
    }
}

fn orgs_cmd(action: OrgsAction) -> Result<(), String> {
    match action {
        OrgsAction::Create {
            db,
            name,
            owner_email,
        } => {
            let db = open(&db)?;
            let now = now();
            let (founded, key) = db
                .blocking()
                .write(|tx| orgs::found_with_admin_key(tx, &name, &owner_email, now))
                .map_err(|e| e.to_string())?;
            eprintln!(
                "Created organization {} ({}). Its admin API key, shown once:",
                founded.org.id, founded.org.name
            );
            println!("{key}");
            Ok(())
        }
    }
}
