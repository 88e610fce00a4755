//! `GET /events/log` and the live stream: every change, in order.

use crate::api::params::{paging, EventNumber, EventTypes, PageNumber, PerPage, Shaped};
use crate::api::sse::LastEventId;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::OpenApi;

use super::envelope::Page;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::security::Caller;
use super::sse::{self, EventStreamResponse};
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::events::{self, Event};
use crate::state::AppState;

/// The event log.
pub struct EventsApi;

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// Stream events (Server-Sent Events)
    ///
    /// Every change in the organization as it is committed: frames `id: <seq>`,
    /// `event: <type>`, `data: <event JSON>`, after a `retry:` hint, with a `:` keep-alive while
    /// idle. `types` filters with wildcards (`deal.*,signal.detected`). Resume with the
    /// `Last-Event-ID` header (or `after=<seq>`): missed events are replayed from the log, then
    /// the stream goes live with no gap and no duplicate. Resuming from before the log's
    /// retention (`--event-retention`, 30 days by default) first sends `event: reset` with
    /// `pruned_through` as its id: refetch current state, then carry on from the frames that
    /// follow. A client that falls far behind is
    /// disconnected rather than buffered without bound, and resumes from its last id. Streams
    /// end when the server shuts down, when the credential is revoked, and after their maximum
    /// lifetime; too many streams per credential (or in all) is a 429.
    #[oai(path = "/events", method = "get", operation_id = "stream_events")]
    async fn stream(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Only these event types, with wildcards (`deal.*,signal.detected`; comma separated).
        types: Query<Option<Shaped<EventTypes>>>,
        /// Replay the events after this `seq` first (as `Last-Event-ID` does).
        after: Query<Option<EventNumber>>,
        /// The `seq` of the last event received: the stream replays what came after it, then goes live.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<LastEventId>>,
    ) -> ApiResult<EventStreamResponse> {
        let p = caller.with(Scope::Read)?.clone();
        let patterns = events::parse_type_patterns(types.0.as_deref())?;
        let resume = LastEventId::value(last_event_id.0);
        let config = &state.config;
        let Some(slot) =
            state
                .streams
                .acquire(&p.credential_id, config.sse_per_credential, config.sse_max)
        else {
            return Err(ApiError::new(
                poem::http::StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "too many open event streams (at most {} per credential)",
                    config.sse_per_credential
                ),
            )
            .header(
                poem::http::header::RETRY_AFTER,
                sse::BUSY_RETRY.as_secs().to_string(),
            ));
        };
        let start = sse::Start {
            after: resume.or(after.0.map(|a| a.0)),
            patterns,
        };
        Ok(sse::open(state.0.clone(), p, start, slot))
    }

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
        /// Only events after this `seq` (default 0).
        after: Query<Option<EventNumber>>,
        /// Only these event types, with wildcards (`deal.*,lead.created`; comma separated).
        types: Query<Option<Shaped<EventTypes>>>,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<Event>> {
        let paging = paging(page.0, per_page.0)?;
        let patterns = events::parse_type_patterns(types.0.as_deref())?;
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    events::list(c, org_id, after.0.map_or(0, |a| a.0), &patterns, paging)
                })
                .await?,
        ))
    }
}
