//! `clozup import`: a CSV file straight into the database, with the API's rules and report,
//! for migrations too big to upload. Safe beside a running server: SQLite serializes the two
//! writers, and the server reads the other process's events from the log within a second.

use std::path::PathBuf;

use crate::clock::{Clock, SystemClock};
use crate::db::{Db, DbOptions};
use crate::domain::auth::Principal;
use crate::domain::sheets::{
    self, companies::CompanyImport, deals::DealImport, leads::LeadImport, Run,
};
use crate::domain::{orgs, users, DomainError};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// What the file holds: `leads`, `companies` or `deals`.
    #[arg(value_parser = ["leads", "companies", "deals"])]
    pub what: String,
    /// The CSV file (any encoding and separator the API reads; see docs/import.md).
    pub file: PathBuf,
    /// SQLite database file.
    #[arg(long, env = "CLOZUP_DB", default_value = "./clozup.sqlite")]
    pub db: PathBuf,
    /// The organization to import into (default the first).
    #[arg(long)]
    pub org: Option<String>,
    /// The member the import acts as, by email (default the organization's first owner).
    #[arg(long = "as")]
    pub as_member: Option<String>,
    /// What a row matching an existing record does.
    #[arg(long, default_value = "skip", value_parser = ["skip", "update", "error"])]
    pub on_duplicate: String,
    /// The separator between cells (default: the header row's first).
    #[arg(long, value_parser = ["comma", "semicolon", "tab"])]
    pub delimiter: Option<String>,
    /// The file's encoding, when it has no byte-order mark and is neither UTF-8 nor
    /// Windows-1252 (a WHATWG label such as `iso-8859-2`).
    #[arg(long)]
    pub charset: Option<String>,
    /// Read and check every row, report, and store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// A value of one of the API's enumerations, by its name there (clap has checked it).
fn term<T: poem_openapi::types::ParseFromJSON>(name: &str) -> Result<T, String> {
    T::parse_from_json(Some(serde_json::Value::from(name))).map_err(|e| e.into_message())
}

/// Runs `clozup import`.
pub fn run(a: ImportArgs) -> Result<(), String> {
    use std::io::{IsTerminal, Write};
    let bytes = std::fs::read(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let db = Db::open(&a.db, &DbOptions::default()).map_err(|e| e.to_string())?;
    let org_id = match a.org {
        Some(id) => id,
        None => db
            .blocking()
            .read(orgs::first_id)
            .map_err(|e| e.to_string())?
            .ok_or("the database has no organization yet: run `clozup serve` first")?,
    };
    let org = org_id.clone();
    let member = db
        .blocking()
        .read(move |c| match a.as_member {
            Some(email) => users::by_email(c, &org_id, &email)?
                .filter(|u| u.active)
                .ok_or_else(|| {
                    DomainError::invalid("--as", format!("`{email}` is not an active member"))
                }),
            None => users::first_owner(c, &org_id),
        })
        .map_err(|e| e.to_string())?;
    let p = Principal::operator(&org, &member.id, member.role);
    let options = sheets::ReadOptions {
        charset: a.charset,
        delimiter: a.delimiter.as_deref().map(term).transpose()?,
    };
    let on_duplicate = term(&a.on_duplicate)?;
    // A bar on a terminal; a line each tenth elsewhere (a log keeps every line).
    let terminal = std::io::stderr().is_terminal();
    let mut shown = usize::MAX;
    let mut progress = |done: usize, total: usize| {
        let tenth = (done * 10).checked_div(total).unwrap_or(10);
        if a.quiet || (!terminal && tenth == shown) {
            return;
        }
        shown = tenth;
        let bar = format!("[{:<30}] {done}/{total} rows", "#".repeat(tenth * 3));
        let mut err = std::io::stderr();
        let _ = if terminal {
            write!(err, "\r{bar}")
        } else {
            writeln!(err, "{bar}")
        };
        if terminal && done == total {
            let _ = writeln!(err);
        }
    };
    let run = Run::new(p, SystemClock.now_ms());
    let (o, d, dry, tick) = (&options, on_duplicate, a.dry_run, &mut progress);
    let result = match a.what.as_str() {
        "leads" => sheets::import(&db, &LeadImport(run), &bytes, o, d, dry, tick),
        "companies" => sheets::import(&db, &CompanyImport(run), &bytes, o, d, dry, tick),
        _ => sheets::import(&db, &DealImport(run), &bytes, o, d, dry, tick),
    }
    .map_err(|e| e.to_string())?;
    let json = poem_openapi::types::ToJSON::to_json(&result).unwrap_or_default();
    println!("{json:#}");
    Ok(())
}
