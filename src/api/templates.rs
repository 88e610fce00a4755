//! `/email-templates`: what outbound email says, written once and rendered per lead.

use crate::api::params::{paging, PageNumber, PerPage, SortParam, TemplateSort};
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
use crate::domain::templates::{
    self, EmailTemplate, EmailTemplatePatch, NewEmailTemplate, PreviewFor, RenderedEmail,
};
use crate::state::AppState;

/// Email templates.
pub struct EmailTemplatesApi;

#[OpenApi(tag = "ApiTags::EmailTemplates")]
impl EmailTemplatesApi {
    /// List email templates
    ///
    /// Filter: `q` (text in the name). Sort: `name`, `created_at`, `updated_at`; default
    /// `-created_at`.
    #[oai(
        path = "/email-templates",
        method = "get",
        operation_id = "list_email_templates"
    )]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<TemplateSort>>>,
        /// Text to look for in the name (ASCII letters match in either case).
        q: Query<Option<String>>,
    ) -> ApiResult<Page<EmailTemplate>> {
        let paging = paging(page.0, per_page.0)?;
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    templates::list(c, org_id, q.0.as_deref(), sort.0.as_deref(), paging)
                })
                .await?,
        ))
    }

    /// Save an email template
    ///
    /// Scope `write`. The subject and bodies are Jinja templates over `lead`, `company`, `owner`
    /// and `deal` (`Hi {{ lead.first_name | default("there") }}`); HTML bodies escape every
    /// value. 422 naming the field for a template that does not parse or uses a variable that
    /// is no field of those objects; 409 when the name is taken. Emits
    /// `email_template.created`.
    #[oai(
        path = "/email-templates",
        method = "post",
        operation_id = "create_email_template"
    )]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewEmailTemplate>,
    ) -> ApiResult<Created<EmailTemplate>> {
        let t = caller
            .write(&state, move |tx, p, now| {
                templates::create(tx, p, body.0, now)
            })
            .await?;
        Ok(Created::versioned(t.version, t))
    }

    /// Get an email template
    ///
    /// The template with its version in `ETag` and the variables it uses.
    #[oai(
        path = "/email-templates/:id",
        method = "get",
        operation_id = "get_email_template"
    )]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The template's id (`tpl_...`).
        id: Path<String>,
    ) -> ApiResult<One<EmailTemplate>> {
        let t = caller
            .lookup(&state, move |c, org_id| templates::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(t.version, t))
    }

    /// Update an email template
    ///
    /// Scope `write`. Absent fields stay; `null` clears a body (one must remain). Checked as
    /// when saved. Send `If-Match` to avoid overwriting a newer version (412). Emits
    /// `email_template.updated` with the old values of the changed fields.
    #[oai(
        path = "/email-templates/:id",
        method = "patch",
        operation_id = "update_email_template"
    )]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The template's id (`tpl_...`).
        id: Path<String>,
        body: JsonBody<EmailTemplatePatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<EmailTemplate>> {
        let expected = IfMatch::value(if_match.0);
        let t = caller
            .write(&state, move |tx, p, now| {
                templates::update(tx, p, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(t.version, t))
    }

    /// Delete an email template
    ///
    /// Scope `write`. Emits `email_template.deleted`; returns the deleted template.
    #[oai(
        path = "/email-templates/:id",
        method = "delete",
        operation_id = "delete_email_template"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The template's id (`tpl_...`).
        id: Path<String>,
    ) -> ApiResult<One<EmailTemplate>> {
        let t = caller
            .write(&state, move |tx, p, now| {
                templates::delete(tx, p, &id.0, now)
            })
            .await?;
        Ok(One::new(t))
    }

    /// Render an email template for a lead or a deal
    ///
    /// Scope `write` (as every POST), though nothing is stored. What the email would say to
    /// this lead (and about this deal), without sending anything: the subject and bodies
    /// rendered with the lead, its company, its owner and the deal.
    /// 422 naming the part and the field when a variable has no value for them and no
    /// fallback (`{{ lead.first_name | default("there") }}`).
    #[oai(
        path = "/email-templates/:id/preview",
        method = "post",
        operation_id = "preview_email_template"
    )]
    async fn preview(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The template's id (`tpl_...`).
        id: Path<String>,
        body: JsonBody<PreviewFor>,
    ) -> ApiResult<One<RenderedEmail>> {
        Ok(One::new(
            caller
                .read(&state, move |c, org_id| {
                    templates::preview(c, org_id, &id.0, body.0)
                })
                .await?,
        ))
    }
}
