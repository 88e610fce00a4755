//! `GET /live`: what the open pages need to know to stay current, as Server-Sent Events from
//! the same bus as the API's stream: `event: deal`, `data: <deal id>` whenever a deal of the
//! viewer's organization changes (a move by an agent, say), so an open board refreshes itself.
//! Nothing of the deal is sent: the page reads it again with the viewer's own rights.

use std::sync::Arc;

use futures_util::stream::unfold;
use poem::http::StatusCode;
use poem::web::sse::{Event, SSE};
use poem::web::Data;
use poem::{IntoResponse, Request, Response};
use tokio::sync::broadcast::error::RecvError;

use super::Viewer;
use crate::state::AppState;

/// `GET /live`.
#[poem::handler]
pub async fn stream(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let viewer = match Viewer::of(req, &state).await {
        Ok(v) => v,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let config = &state.config;
    let Some(slot) = state.streams.acquire(
        &viewer.principal.credential_id,
        config.sse_per_credential,
        config.sse_max,
    ) else {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    };
    let org = viewer.principal.org_id;
    let bus = state.bus.subscribe();
    let deadline = tokio::time::Instant::now() + config.sse_lifetime;
    let state = state.0.clone();
    // Each step waits for the next deal event of this organization, or ends the stream at its
    // lifetime, at shutdown, or when the bus leaves it behind (the browser reconnects and the
    // page reloads what it shows).
    let events = unfold((bus, slot), move |(mut bus, slot)| {
        let (org, state) = (org.clone(), state.clone());
        async move {
            loop {
                tokio::select! {
                    msg = bus.recv() => match msg {
                        Ok(p) if p.org_id == org && p.event.event_type.starts_with("deal.") => {
                            let id = p.event.data.object.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                            return Some((Event::message(id).event_type("deal"), (bus, slot)));
                        }
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                    },
                    _ = tokio::time::sleep_until(deadline) => return None,
                    _ = state.shutdown.wait() => return None,
                }
            }
        }
    });
    SSE::new(events)
        .keep_alive(config.sse_keepalive)
        .into_response()
}
