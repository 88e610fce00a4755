//! `/admin`: operations on the server's own data (scope `admin`).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{Object, OpenApi};

use super::envelope::Created;
use super::error::ApiResult;
use super::security::Caller;
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::error::DomainError;
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// A snapshot written by the server.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Backup {
    /// The snapshot's path on the server (under `--backup-dir`).
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// SQLite's `integrity_check` of the copy: always `ok` (a copy that fails is an error).
    pub integrity: String,
    /// When it was taken.
    pub created_at: Timestamp,
}

/// Administration.
pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// Back up the database
    ///
    /// Writes a consistent snapshot of the whole database (every organization's data: the
    /// server's, not one tenant's) to a new file under the server's `--backup-dir`, while
    /// requests go on being served, and checks it with SQLite's `integrity_check`. A server
    /// started on the file serves the same data. Admin scope.
    #[oai(
        path = "/admin/backup",
        method = "post",
        operation_id = "create_backup"
    )]
    async fn backup(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
    ) -> ApiResult<Created<Backup>> {
        caller.with(Scope::Admin)?;
        let now = state.clock.now_ms();
        let dir = state.config.backup_dir();
        let db = state.db.path().to_path_buf();
        // A dry run writes the copy where nothing is kept, measures it and removes it.
        let rehearsal = crate::db::rehearsing();
        let (file, bytes) = crate::db::run_blocking(move || {
            crate::db::backup_into(&db, &dir, now, rehearsal).map_err(|e| {
                tracing::error!("backup failed: {e}");
                DomainError::Unavailable(format!("the backup could not be written: {e}"))
            })
        })
        .await?;
        Ok(Created::new(Backup {
            file: file.display().to_string(),
            bytes,
            integrity: "ok".into(),
            created_at: Timestamp(now),
        }))
    }
}
