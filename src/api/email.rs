//! Per-deal email inboxes: `/deals/:id/email-inbox`, `/deals/:id/emails...` and the inbound
//! endpoint a mail server posts raw messages to.

use crate::api::params::Choice;
use std::sync::Arc;

use poem::web::Data;
use poem::{Request, RequestBody};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiResponse, OpenApi, SecurityScheme};

use super::body::{body_extractor, media_type, raw_bytes, JsonBody};
use super::envelope::{Envelope, One, Page};
use super::error::{ApiError, ApiResult};
use super::params::{paging, PageNumber, PerPage};
use super::security::Caller;
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::email::{
    self, Direction, Email, EmailFilter, Inbox, NewInbox, ReplyEmail, SendEmail, SendTemplate,
};
use crate::state::AppState;

/// Email.
pub struct EmailApi;

/// An inbox, found or made.
#[derive(ApiResponse)]
enum InboxResponse {
    /// The deal already had this inbox.
    #[oai(status = 200)]
    Existing(Json<Envelope<Inbox>>),
    /// The inbox was created.
    #[oai(status = 201)]
    Created(Json<Envelope<Inbox>>),
}

/// An inbound message, stored (or already stored).
#[derive(ApiResponse)]
enum InboundResponse {
    /// A message with this `Message-ID` was already stored; nothing changed.
    #[oai(status = 200)]
    Duplicate(Json<Envelope<Email>>),
    /// Stored on the deal.
    #[oai(status = 201)]
    Stored(Json<Envelope<Email>>),
}

/// `Authorization: Bearer <inbound token>`: the secret given to the server with
/// `--inbound-token`, for the mail server that pipes messages in. API keys do not work here.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    rename = "inbound_token",
    bearer_format = "the --inbound-token secret",
    checker = "inbound_token"
)]
pub struct MailServer(());

async fn inbound_token(req: &Request, bearer: Bearer) -> Option<()> {
    let state = req.data::<Arc<AppState>>()?;
    let expected = state.config.inbound_token.as_deref()?;
    // Compared as digests, so the time taken says nothing about how much of it matched.
    (crate::secrets::token_hash(expected) == crate::secrets::token_hash(&bearer.token))
        .then_some(())
}

/// A raw RFC 5322 message as a request body.
pub struct MailBody(pub Vec<u8>);

impl Payload for MailBody {
    const CONTENT_TYPE: &'static str = "message/rfc822";

    fn check_content_type(content_type: &str) -> bool {
        let mime = media_type(content_type);
        matches!(
            mime.as_str(),
            "message/rfc822" | "text/plain" | "application/octet-stream"
        )
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")))
    }
}

impl ParsePayload for MailBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        raw_bytes(body).await.map(Self)
    }
}

body_extractor!(MailBody);

#[OpenApi(tag = "ApiTags::Email")]
impl EmailApi {
    /// Create a deal's inbox
    ///
    /// Gives the deal its own address, `<username or deal slug>@<email domain>`: mail sent to
    /// it lands on the deal. Idempotent: a deal that has an inbox gets it back (200). Send `{}`
    /// for the defaults.
    #[oai(
        path = "/deals/:id/email-inbox",
        method = "post",
        operation_id = "create_email_inbox"
    )]
    async fn create_inbox(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        body: JsonBody<NewInbox>,
    ) -> ApiResult<InboxResponse> {
        let org_id = caller.with(Scope::Write)?.org_id.clone();
        let now = state.clock.now_ms();
        let domain = state.config.email_domain.clone();
        let (inbox, created) = state
            .db
            .write(move |tx| email::ensure_inbox(tx, &org_id, &id.0, body.0, &domain, now))
            .await?;
        let body = Json(Envelope { data: inbox });
        Ok(if created {
            InboxResponse::Created(body)
        } else {
            InboxResponse::Existing(body)
        })
    }

    /// Get a deal's inbox
    ///
    /// 404 when the deal has none yet.
    #[oai(
        path = "/deals/:id/email-inbox",
        method = "get",
        operation_id = "get_email_inbox"
    )]
    async fn get_inbox(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
    ) -> ApiResult<One<Inbox>> {
        let inbox = caller
            .read(&state, move |c, org_id| email::get_inbox(c, org_id, &id.0))
            .await?;
        Ok(One::new(inbox))
    }

    /// List a deal's emails
    ///
    /// Both directions, newest first; `thread_id` for one conversation, `direction` for one way.
    #[oai(
        path = "/deals/:id/emails",
        method = "get",
        operation_id = "list_emails"
    )]
    #[allow(clippy::too_many_arguments)] // one per query parameter, as poem-openapi wants them
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        /// Only the messages of this conversation.
        thread_id: Query<Option<String>>,
        /// Only inbound or only outbound messages.
        direction: Query<Option<Choice<Direction>>>,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<Email>> {
        let paging = paging(page.0, per_page.0)?;
        let filter = EmailFilter {
            thread_id: thread_id.0,
            direction: direction.0.map(|c| c.0),
        };
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    email::list(c, org_id, &id.0, &filter, paging)
                })
                .await?,
        ))
    }

    /// Get an email
    ///
    /// By its `eml_` id or its `Message-ID`: bodies, headers of interest, attachments'
    /// metadata, open count and delivery status.
    #[oai(
        path = "/deals/:id/emails/:message_id",
        method = "get",
        operation_id = "get_email"
    )]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        /// The message's id (`eml_...`).
        message_id: Path<String>,
    ) -> ApiResult<One<Email>> {
        let e = caller
            .read(&state, move |c, org_id| {
                email::get(c, org_id, &id.0, &message_id.0)
            })
            .await?;
        Ok(One::new(e))
    }

    /// Send an email from the deal's inbox
    ///
    /// Queues the message (creating the deal's inbox if needed) and answers 202 with it
    /// `queued`; the sender delivers it after the request, retrying temporary SMTP failures
    /// with backoff, and the status moves to `sent` (`email.sent`, an `email_sent` activity) or
    /// `failed` with the error (`email.failed`). With `html`, the message is
    /// multipart/alternative and, unless `track_opens` is false, carries an open-tracking pixel.
    #[oai(
        path = "/deals/:id/emails/send",
        method = "post",
        operation_id = "send_email"
    )]
    async fn send(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        body: JsonBody<SendEmail>,
    ) -> ApiResult<One<Email, 202>> {
        let domain = state.config.email_domain.clone();
        let e = caller
            .write(&state, move |tx, p, now| {
                email::send(tx, p, &id.0, body.0, &domain, now)
            })
            .await?;
        Ok(One::new(e))
    }

    /// Send an email written by a template
    ///
    /// Scope `write`. Renders the template for the deal, its lead, the lead's company and
    /// owner (as the preview does), then queues the message as a send does: to `to`, or by
    /// default the deal's lead at their email. A template with only HTML gets a text part made
    /// from it. 422 naming the part and the field when a variable has no value for this deal
    /// and no fallback, or when the deal has no lead with an email and `to` is empty. Emits
    /// `email.queued`; 202.
    #[oai(
        path = "/deals/:id/emails/send-template",
        method = "post",
        operation_id = "send_email_from_template"
    )]
    async fn send_template(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        body: JsonBody<SendTemplate>,
    ) -> ApiResult<One<Email, 202>> {
        let domain = state.config.email_domain.clone();
        let e = caller
            .write(&state, move |tx, p, now| {
                email::send_template(tx, p, &id.0, body.0, &domain, now)
            })
            .await?;
        Ok(One::new(e))
    }

    /// Reply to an email
    ///
    /// To the original's sender (its `Reply-To` if it had one; for one of our own messages,
    /// its recipients), with a `Re:` subject, `In-Reply-To` and `References`, in the same
    /// thread. Queued like a new message: 202.
    #[oai(
        path = "/deals/:id/emails/reply/:message_id",
        method = "post",
        operation_id = "reply_to_email"
    )]
    async fn reply(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The deal's id (`deal_...`).
        id: Path<String>,
        /// The message's id (`eml_...`).
        message_id: Path<String>,
        body: JsonBody<ReplyEmail>,
    ) -> ApiResult<One<Email, 202>> {
        let domain = state.config.email_domain.clone();
        let e = caller
            .write(&state, move |tx, p, now| {
                email::reply(tx, p, &id.0, &message_id.0, body.0, &domain, now)
            })
            .await?;
        Ok(One::new(e))
    }

    /// Receive an email (for your mail server)
    ///
    /// A raw RFC 5322 message (`message/rfc822`), authorized by the server's inbound token.
    /// Stored on the deal of the inbox it was delivered to (`Delivered-To` or
    /// `X-Original-To`: a mail server delivers a message to several inboxes once per
    /// recipient), else on the deal of every inbox its To, Cc and Bcc name (none: 404).
    /// Threaded by `In-Reply-To`/`References` and logged as an `email_received` activity,
    /// which raises the `email_replied` signal; emits `email.received` per deal. A message is
    /// stored once per inbox: the same `Message-ID` again is a 200 that changes nothing. The
    /// answer is the copy on the first inbox. Input that does not start with a header field,
    /// a message that names no recipient, and a routed message without a sender are 422s.
    #[oai(
        path = "/inbound/email",
        method = "post",
        operation_id = "receive_email"
    )]
    async fn inbound(
        &self,
        state: Data<&Arc<AppState>>,
        _server: MailServer,
        body: MailBody,
    ) -> ApiResult<InboundResponse> {
        let parsed = crate::mail_worker::parse_inbound(&body.0)
            .map_err(|e| ApiError::invalid("body", e.0))?;
        let now = state.clock.now_ms();
        let received = state
            .db
            .write(move |tx| email::receive(tx, parsed, now))
            .await?;
        let body = Json(Envelope {
            data: received.email,
        });
        Ok(if received.created {
            InboundResponse::Stored(body)
        } else {
            InboundResponse::Duplicate(body)
        })
    }
}
