//! `/notes`: what was said about a deal or a lead.

use crate::api::params::{paging, NoteSort, PageNumber, PerPage, SortParam};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::headers::IfMatch;
use super::security::Caller;
use super::ApiTags;
use crate::domain::notes::{self, NewNote, Note, NoteFilter, NotePatch};
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Notes.
pub struct NotesApi;

#[OpenApi(tag = "ApiTags::Notes")]
impl NotesApi {
    /// List notes
    ///
    /// Filters: `deal_id`, `lead_id`, `author_id` (each any of, comma separated),
    /// `created_after`/`created_before`/`updated_since`, `q` (text). Sort: `created_at`,
    /// `updated_at`; default `-created_at`.
    #[oai(path = "/notes", method = "get", operation_id = "list_notes")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<NoteSort>>>,
        /// Only notes on these deals (`deal_...`; any of, comma separated).
        deal_id: Query<Option<String>>,
        /// Only notes on these leads (`lead_...`; any of, comma separated).
        lead_id: Query<Option<String>>,
        /// Only notes written by these users (`usr_...`; any of, comma separated).
        author_id: Query<Option<String>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
    ) -> ApiResult<Page<Note>> {
        let paging = paging(page.0, per_page.0)?;
        let f = NoteFilter {
            deal_id: deal_id.0,
            lead_id: lead_id.0,
            author_id: author_id.0,
            created_after: created_after.0.map(|t| t.0),
            created_before: created_before.0.map(|t| t.0),
            updated_since: updated_since.0.map(|t| t.0),
            q: q.0,
        };
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    notes::list(c, org_id, &f, sort.0.as_deref(), paging)
                })
                .await?,
        ))
    }

    /// Write a note
    ///
    /// Scope `write`. On a deal and/or a lead of this organization: 422 when neither, or an
    /// unknown one, is given. Emits `note.created`.
    #[oai(path = "/notes", method = "post", operation_id = "create_note")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewNote>,
    ) -> ApiResult<Created<Note>> {
        let n = caller
            .write(&state, move |tx, p, now| notes::create(tx, p, body.0, now))
            .await?;
        Ok(Created::versioned(n.version, n))
    }

    /// Get a note
    ///
    /// The note with its version in `ETag`.
    #[oai(path = "/notes/:id", method = "get", operation_id = "get_note")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The note's id (`note_...`).
        id: Path<String>,
    ) -> ApiResult<One<Note>> {
        let n = caller
            .lookup(&state, move |c, org_id| notes::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(n.version, n))
    }

    /// Update a note
    ///
    /// Scope `write`. Replaces the content. Emits `note.updated`.
    #[oai(path = "/notes/:id", method = "patch", operation_id = "update_note")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The note's id (`note_...`).
        id: Path<String>,
        body: JsonBody<NotePatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Note>> {
        let expected = IfMatch::value(if_match.0);
        let n = caller
            .write(&state, move |tx, p, now| {
                notes::update(tx, p, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(n.version, n))
    }

    /// Delete a note
    ///
    /// Scope `write`. Emits `note.deleted`; returns the deleted note.
    #[oai(path = "/notes/:id", method = "delete", operation_id = "delete_note")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The note's id (`note_...`).
        id: Path<String>,
    ) -> ApiResult<One<Note>> {
        let n = caller
            .write(&state, move |tx, p, now| notes::delete(tx, p, &id.0, now))
            .await?;
        Ok(One::new(n))
    }
}
