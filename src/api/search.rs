//! `GET /search`.

use crate::api::params::{paging, PageNumber, PerPage, SearchKinds, SearchText, Shaped};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::OpenApi;

use super::envelope::Page;
use super::error::ApiResult;
use super::security::Caller;
use super::ApiTags;
use crate::domain::search::{self, SearchHit};
use crate::state::AppState;

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
        /// The words to find, each as a prefix (`ada lov`); 1 to 200 characters.
        q: Query<Shaped<SearchText>>,
        /// Only these kinds of results: lead, company, deal, note (comma separated).
        types: Query<Option<Shaped<SearchKinds>>>,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<SearchHit>> {
        let paging = paging(page.0, per_page.0)?;
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    search::search(c, org_id, &q.0, types.0.as_deref(), paging)
                })
                .await?,
        ))
    }
}
