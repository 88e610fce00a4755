//! `GET /events`: the event log as Server-Sent Events, replayed from a position and then live,
//! with no gap and no duplicate (docs/api.md §9).

use std::sync::Arc;
use std::time::Duration;

use poem::http::{header, StatusCode};
use poem::{Body, IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::ApiResponse;
use tokio::sync::{broadcast, mpsc};

use super::csv::ChunkStream;
use crate::domain::auth::{self, Principal};
use crate::domain::events::{self, Event};
use crate::domain::listing::Paging;
use crate::events_bus::Slot;
use crate::state::AppState;

/// The `retry:` hint sent first: how long a client should wait before reconnecting.
pub const RETRY_MS: u64 = 3000;

/// A live event stream response.
pub struct EventStreamResponse(mpsc::Receiver<std::io::Result<Vec<u8>>>);

impl IntoResponse for EventStreamResponse {
    fn into_response(self) -> Response {
        Response::builder()
            .status(StatusCode::OK)
            .content_type("text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("x-accel-buffering", "no")
            .body(Body::from_bytes_stream(ChunkStream(self.0)))
    }
}

impl ApiResponse for EventStreamResponse {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "A stream of frames `id: <seq>`, `event: <type>`, `data: <event JSON>`, after a \
                              `retry:` hint, with `:` keep-alives.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/event-stream",
                    schema: Event::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        Event::register(registry);
    }
}

fn frame(e: &Event) -> Vec<u8> {
    let data = e.to_json().map(|v| v.to_string()).unwrap_or_default();
    format!("id: {}\nevent: {}\ndata: {data}\n\n", e.seq, e.event_type).into_bytes()
}

/// Where the stream starts.
pub struct Start {
    /// Replay events after this `seq` first; `None`: only what is committed from now on.
    pub after: Option<i64>,
    /// The type patterns to send.
    pub patterns: Vec<String>,
}

/// Opens the stream: subscribes to the bus first, replays the log after `start.after`, then
/// follows the bus, skipping anything already sent, so nothing is missed or repeated.
pub fn open(
    state: Arc<AppState>,
    principal: Principal,
    start: Start,
    slot: Slot,
) -> EventStreamResponse {
    let (tx, rx) = mpsc::channel(64);
    let mut bus = state.bus.subscribe();
    tokio::spawn(async move {
        let _slot = slot;
        let send = |bytes: Vec<u8>| {
            let tx = tx.clone();
            async move { tx.send(Ok(bytes)).await.is_ok() }
        };
        if !send(format!("retry: {RETRY_MS}\n\n").into_bytes()).await {
            return;
        }
        let org = principal.org_id.clone();
        let mut last = match start.after {
            Some(after) => after,
            None => {
                let db = state.db.clone();
                crate::db::run_blocking(move || events::last_seq(&db))
                    .await
                    .unwrap_or(0)
            }
        };
        if start.after.is_some() {
            // Resuming from before what retention kept: say so, so the client resyncs its state
            // instead of trusting a replay with a hole in it, then replay everything kept.
            let db = state.db.clone();
            let pruned =
                crate::db::run_blocking(move || db.blocking().read(events::pruned_through))
                    .await
                    .unwrap_or(0);
            if last < pruned {
                let reset = serde_json::json!({
                    "type": "reset",
                    "reason": "events_pruned",
                    "requested_after": last,
                    "pruned_through": pruned,
                    "detail": "Events up to this seq are past the log's retention and cannot be \
                               replayed; refetch current state, then continue from here.",
                });
                if !send(format!("id: {pruned}\nevent: reset\ndata: {reset}\n\n").into_bytes())
                    .await
                {
                    return;
                }
                last = pruned;
            }
            loop {
                let (db, org, patterns) = (state.db.clone(), org.clone(), start.patterns.clone());
                let page = crate::db::run_blocking(move || {
                    db.blocking().read(|c| {
                        events::list(
                            c,
                            &org,
                            last,
                            &patterns,
                            Paging {
                                page: 1,
                                per_page: 500,
                            },
                        )
                    })
                })
                .await;
                let Ok(page) = page else { return };
                for e in &page.items {
                    if !send(frame(e)).await {
                        return;
                    }
                    last = e.seq;
                }
                if page.items.len() < 500 {
                    break;
                }
            }
        }
        let config = &state.config;
        let deadline = tokio::time::Instant::now() + config.sse_lifetime;
        let mut keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + config.sse_keepalive,
            config.sse_keepalive,
        );
        loop {
            tokio::select! {
                msg = bus.recv() => match msg {
                    Ok(p) => {
                        if p.org_id != org || p.event.seq <= last {
                            continue;
                        }
                        last = p.event.seq;
                        if events::matches(&start.patterns, &p.event.event_type) && !send(frame(&p.event)).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow to keep up: end rather than buffer without bound; the client
                        // resumes from its last id.
                        let _ = send(b": too far behind; reconnect with Last-Event-ID\n\n".to_vec()).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = keepalive.tick() => {
                    let (db, p) = (state.db.clone(), principal.clone());
                    let now = state.clock.now_ms();
                    let live = crate::db::run_blocking(move || db.blocking().read(|c| auth::still_valid(c, &p, now))).await;
                    if !matches!(live, Ok(true)) || !send(b":\n\n".to_vec()).await {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = state.shutdown.wait() => return,
            }
        }
    });
    EventStreamResponse(rx)
}

/// `Last-Event-ID` as documented: a `seq` (at most 18 digits), or empty for none.
pub const LAST_EVENT_ID_PATTERN: &str = "^[0-9]{0,18}$";

/// Parses `Last-Event-ID` (see [`LAST_EVENT_ID_PATTERN`]).
pub fn last_event_id(raw: Option<&str>) -> Result<Option<i64>, super::error::ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => Some(v)
            .filter(|v| v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| {
                super::error::ApiError::bad_request(
                    "Last-Event-ID must be the id (seq) of an event this stream sent",
                )
                .detail("Last-Event-ID", "is not an event seq")
            }),
    }
}

/// `Last-Event-ID`'s form: [`LAST_EVENT_ID_PATTERN`], parsed by [`last_event_id`].
pub struct LastEventIdForm;

impl super::headers::NumberForm for LastEventIdForm {
    const PATTERN: &'static str = LAST_EVENT_ID_PATTERN;
    fn parse(raw: &str) -> Result<Option<i64>, super::error::ApiError> {
        last_event_id(Some(raw))
    }
}

/// `Last-Event-ID`: the `seq` a stream resumes after (`None`: no header, or empty).
pub type LastEventId = super::headers::NumberHeader<LastEventIdForm>;

/// How long a client told "too many streams" should wait.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn last_event_id_takes_every_seq_and_refuses_the_rest(raw in ".*", seq in 0i64..1_000_000_000_000_000_000) {
            if let Ok(Some(n)) = last_event_id(Some(&raw)) {
                proptest::prop_assert!(n >= 0);
            }
            proptest::prop_assert_eq!(last_event_id(Some(&seq.to_string())).unwrap(), Some(seq));
            let padded = format!(" {seq} ");
            proptest::prop_assert!(last_event_id(Some(&padded)).is_err());
            let negative = format!("-{}", seq + 1);
            proptest::prop_assert!(last_event_id(Some(&negative)).is_err());
        }
    }
}
