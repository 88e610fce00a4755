//! `/webhooks`: signed, durable event delivery to your endpoints (scope `admin` throughout).

use crate::api::params::{paging, DeliveryStatuses, PageNumber, PerPage, Shaped};
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
use crate::domain::auth::Scope;
use crate::domain::webhooks::{
    self, Delivery, NewWebhook, Webhook, WebhookPatch, WebhookWithSecret,
};
use crate::state::AppState;

/// Webhooks.
pub struct WebhooksApi;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// List webhook endpoints
    ///
    /// Never shows secrets.
    #[oai(path = "/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<Webhook>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let paging = paging(page.0, per_page.0)?;
        Ok(Page(
            state
                .db
                .read(move |c| webhooks::list(c, &org_id, paging))
                .await?,
        ))
    }

    /// Add a webhook endpoint
    ///
    /// Events matching `event_types` (wildcards such as `deal.*`; default all) are POSTed, one
    /// per request, as the `Event` schema's JSON (the same as `GET /events` and the SSE stream
    /// send), with the Standard Webhooks headers `webhook-id` (the event id, stable across
    /// retries), `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
    /// "id.timestamp.body">` keyed by the `whsec_` secret returned here, once). A 2xx answer
    /// is success; otherwise retries back off over about three days (5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 10 h, with jitter; `Retry-After` on 429/503 honoured). `410 Gone` disables the
    /// endpoint at once, and so do five days of failures (`webhook.disabled`). Targets in
    /// private, loopback, link-local and other internal ranges are refused unless the operator
    /// allowed them (`--webhook-allow-cidr`): a URL whose host is such an address (`127.0.0.1`,
    /// `[::1]`, `localhost`, `127.1`) is a 422 naming the range; a host name that resolves into
    /// one fails each delivery at once with the reason, without retries.
    #[oai(path = "/webhooks", method = "post", operation_id = "create_webhook")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewWebhook>,
    ) -> ApiResult<Created<WebhookWithSecret>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let now = state.clock.now_ms();
        let policy = state.config.webhook_policy();
        let w = state
            .db
            .write(move |tx| webhooks::create(tx, &org_id, body.0, &policy, now))
            .await?;
        Ok(Created::versioned(w.webhook.version, w))
    }

    /// Get a webhook endpoint
    ///
    /// Its URL, filters, state and failure clock; never its secret.
    #[oai(path = "/webhooks/:id", method = "get", operation_id = "get_webhook")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The webhook's id (`wh_...`).
        id: Path<String>,
    ) -> ApiResult<One<Webhook>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let w = state
            .db
            .lookup(move |c| webhooks::get(c, &org_id, &id.0))
            .await?;
        Ok(One::versioned(w.version, w))
    }

    /// Update a webhook endpoint
    ///
    /// Change its URL, description or filters; `active: true` re-enables a disabled endpoint.
    #[oai(
        path = "/webhooks/:id",
        method = "patch",
        operation_id = "update_webhook"
    )]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The webhook's id (`wh_...`).
        id: Path<String>,
        body: JsonBody<WebhookPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Webhook>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let expected = IfMatch::value(if_match.0);
        let now = state.clock.now_ms();
        let policy = state.config.webhook_policy();
        let w = state
            .db
            .write(move |tx| webhooks::update(tx, &org_id, &id.0, body.0, expected, &policy, now))
            .await?;
        Ok(One::versioned(w.version, w))
    }

    /// Delete a webhook endpoint
    ///
    /// Its pending deliveries and delivery history go with it. Returns the deleted endpoint.
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        operation_id = "delete_webhook"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The webhook's id (`wh_...`).
        id: Path<String>,
    ) -> ApiResult<One<Webhook>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        Ok(One::new(
            state
                .db
                .write(move |tx| webhooks::delete(tx, &org_id, &id.0))
                .await?,
        ))
    }

    /// Send a test event
    ///
    /// Queues a `webhook.test` event to this endpoint, whatever its filters; returns the
    /// delivery, whose outcome shows in the delivery log.
    #[oai(
        path = "/webhooks/:id/test",
        method = "post",
        operation_id = "test_webhook"
    )]
    async fn test(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The webhook's id (`wh_...`).
        id: Path<String>,
    ) -> ApiResult<Created<Delivery>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let now = state.clock.now_ms();
        Ok(Created::new(
            state
                .db
                .write(move |tx| webhooks::send_test(tx, &org_id, &id.0, now))
                .await?,
        ))
    }

    /// List an endpoint's deliveries
    ///
    /// Newest first, each with its status, attempts, last status code or error, latency and
    /// the start of the response. `status` filters (any of pending, in_flight, succeeded,
    /// failed).
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        operation_id = "list_webhook_deliveries"
    )]
    async fn deliveries(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The webhook's id (`wh_...`).
        id: Path<String>,
        /// Only deliveries that are pending, in_flight, succeeded or failed (any of, comma separated).
        status: Query<Option<Shaped<DeliveryStatuses>>>,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<Delivery>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let paging = paging(page.0, per_page.0)?;
        Ok(Page(
            state
                .db
                .read(move |c| webhooks::deliveries(c, &org_id, &id.0, status.0.as_deref(), paging))
                .await?,
        ))
    }

    /// Redeliver
    ///
    /// Sends the delivery again now, with the same event id and body, as a fresh series of
    /// attempts. A delivery being attempted right now is 409.
    #[oai(
        path = "/webhooks/:id/deliveries/:delivery_id/redeliver",
        method = "post",
        operation_id = "redeliver_webhook"
    )]
    async fn redeliver(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The webhook's id (`wh_...`).
        id: Path<String>,
        /// The delivery's id (`dlv_...`).
        delivery_id: Path<String>,
    ) -> ApiResult<One<Delivery>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let now = state.clock.now_ms();
        Ok(One::new(
            state
                .db
                .write(move |tx| webhooks::redeliver(tx, &org_id, &id.0, &delivery_id.0, now))
                .await?,
        ))
    }

    /// Rotate the signing secret
    ///
    /// Returns the new `whsec_` secret, once. For 24 hours the old secret also signs (a second
    /// signature in `webhook-signature`), so receivers can switch without dropping events.
    #[oai(
        path = "/webhooks/:id/rotate-secret",
        method = "post",
        operation_id = "rotate_webhook_secret"
    )]
    async fn rotate(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The webhook's id (`wh_...`).
        id: Path<String>,
    ) -> ApiResult<One<WebhookWithSecret>> {
        let org_id = caller.with(Scope::Admin)?.org_id.clone();
        let now = state.clock.now_ms();
        let w = state
            .db
            .write(move |tx| webhooks::rotate_secret(tx, &org_id, &id.0, now))
            .await?;
        Ok(One::versioned(w.webhook.version, w))
    }
}
