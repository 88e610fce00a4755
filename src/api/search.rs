//! `GET /search` and `GET /events/log`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::OpenApi;

use super::envelope::Page;
use super::error::ApiResult;
use super::security::Caller;
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::events::{self, Event};
use crate::domain::listing::Paging;
use crate::domain::search::{self, SearchHit};
use crate::AppState;

/// Search.
pub struct SearchApi;

#[OpenApi(tag = "ApiTags::Search")]
impl SearchApi {
    /// Search leads, companies, deals and notes
    ///
    /// Full-text search, ranked by relevance (names and titles weigh more than other text).
    /// Every word must match, as a prefix (`ada lov` finds "Ada Lovelace"). `types` limits the
    /// kinds (any of lead, company, deal, note). Each hit has a snippet with the matched words
    /// in `**bold**`.
    #[oai(path = "/search", method = "get", operation_id = "search")]
    async fn search(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        #[oai(validator(min_length = 1, max_length = 200))] q: Query<String>,
        types: Query<Option<String>>,
        #[oai(validator(minimum(value = "1")))] page: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] per_page: Query<
            Option<i64>,
        >,
    ) -> ApiResult<Page<SearchHit>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let paging = Paging::new(page.0, per_page.0)?;
        Ok(Page(
            state
                .db
                .read(move |c| search::search(c, &org_id, &q.0, types.0.as_deref(), paging))
                .await?,
        ))
    }
}

/// The event log.
pub struct EventsApi;

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// List events
    ///
    /// The organization's events after `after` (a `seq`; default 0), oldest first: every
    /// change, with its actor and, for updates, the previous values of the changed fields.
    /// `types` filters by type, with wildcards (`deal.*,lead.created`). Page with `page` and
    /// `per_page`, or resume from the last `seq` seen.
    #[oai(path = "/events/log", method = "get", operation_id = "list_events")]
    async fn log(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        #[oai(validator(minimum(value = "0")))] after: Query<Option<i64>>,
        types: Query<Option<String>>,
        #[oai(validator(minimum(value = "1")))] page: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] per_page: Query<
            Option<i64>,
        >,
    ) -> ApiResult<Page<Event>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let paging = Paging::new(page.0, per_page.0)?;
        let patterns = events::parse_type_patterns(types.0.as_deref())?;
        Ok(Page(
            state
                .db
                .read(move |c| events::list(c, &org_id, after.0.unwrap_or(0), &patterns, paging))
                .await?,
        ))
    }
}
