//! The one error type of the domain and the database under it. The API layer maps it to the
//! error envelope in one place.

use std::fmt;

/// One rejected field of an input, reported in the envelope's `details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// The field's name as the client sent it (`per_page`, `email`, `icp.industries`).
    pub field: String,
    /// What is wrong with it, as a short sentence fragment ("must be between 1 and 100").
    pub issue: String,
}

impl FieldIssue {
    /// An issue with `field`.
    pub fn new(field: impl Into<String>, issue: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            issue: issue.into(),
        }
    }
}

/// Why a domain operation did not happen. Nothing it would have written was written.
#[derive(Debug)]
pub enum DomainError {
    /// No such object in the caller's organization (or a malformed id: the same to the caller).
    NotFound(&'static str),
    /// Well-formed input that breaks a rule; every broken rule is listed.
    Validation(Vec<FieldIssue>),
    /// A uniqueness clash or a state conflict.
    Conflict {
        /// What clashed, as a sentence.
        message: String,
        /// Where it clashed (e.g. the id of the existing object).
        details: Vec<FieldIssue>,
    },
    /// The caller's `If-Match` version is not the current one.
    VersionMismatch {
        /// The version the object has now.
        current: i64,
    },
    /// The caller may not do this (role or scope).
    Forbidden(String),
    /// The credential is not valid (wrong password, unknown session).
    Unauthorized,
    /// The database could not serve the request in time, or the disk is full.
    Unavailable(String),
    /// A bug or an unexpected database failure. Logged, never shown to the client.
    Internal(String),
}

/// Shorthand for domain results.
pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    /// A validation error about one field.
    pub fn invalid(field: impl Into<String>, issue: impl Into<String>) -> Self {
        Self::Validation(vec![FieldIssue::new(field, issue)])
    }

    /// A conflict with no details.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(what) => write!(f, "{what} not found"),
            Self::Validation(issues) => {
                let parts: Vec<String> = issues
                    .iter()
                    .map(|i| format!("{} {}", i.field, i.issue))
                    .collect();
                f.write_str(&parts.join("; "))
            }
            Self::Conflict { message, .. } => f.write_str(message),
            Self::VersionMismatch { current } => {
                write!(f, "If-Match does not match the current version ({current})")
            }
            Self::Forbidden(why) => f.write_str(why),
            Self::Unauthorized => f.write_str("invalid credentials"),
            Self::Unavailable(why) => f.write_str(why),
            Self::Internal(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DomainError {}

impl From<rusqlite::Error> for DomainError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
                Self::Unavailable("the database is busy; retry shortly".into())
            }
            Some(ErrorCode::DiskFull) => Self::Unavailable("the disk is full".into()),
            _ => Self::Internal(format!("database error: {err}")),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for DomainError {
    fn from(err: rusqlite::types::FromSqlError) -> Self {
        Self::Internal(format!("unexpected value in the database: {err}"))
    }
}

/// Collects field issues while validating an input, so one response lists every broken rule.
#[derive(Debug, Default)]
pub struct Issues {
    broken: Vec<FieldIssue>,
}

impl Issues {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an issue with `field`.
    pub fn add(&mut self, field: impl Into<String>, issue: impl Into<String>) {
        self.broken.push(FieldIssue::new(field, issue));
    }

    /// Records that `field` names a `kind` the organization does not have. It is the body that
    /// is wrong, not the path, so this is a 422 like any broken rule: a 404 would tell the
    /// caller the resource it addressed is missing (issue 21).
    pub fn add_unknown(&mut self, field: impl Into<String>, kind: &str, id: &str) {
        self.add(field, unknown(kind, id));
    }

    /// `Ok(())` when nothing was recorded; otherwise a validation error listing everything.
    pub fn finish(self) -> DomainResult<()> {
        if self.broken.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Validation(self.broken))
        }
    }
}

/// The issue of a field that names nothing ("stage_id names no stage of this organization: …"),
/// worded once for every such field.
pub fn unknown(kind: &str, id: &str) -> String {
    format!("names no {kind} of this organization: `{id}`")
}
