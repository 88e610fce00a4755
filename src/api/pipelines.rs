//! `/pipelines` and `/stages`: the boards deals move across.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::headers::IfMatch;
use super::params::{paging, PageNumber, PerPage};
use super::security::Caller;
use super::ApiTags;
use crate::domain::pipelines::{
    self, NewPipeline, NewStage, Pipeline, PipelinePatch, Stage, StagePatch,
};
use crate::domain::{deals, DomainResult};
use crate::state::AppState;

/// Pipelines and stages.
pub struct PipelinesApi;

#[OpenApi(tag = "ApiTags::Pipelines")]
impl PipelinesApi {
    /// List pipelines
    ///
    /// Every pipeline with its stages in board order; the default pipeline first.
    #[oai(path = "/pipelines", method = "get", operation_id = "list_pipelines")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
    ) -> ApiResult<Page<Pipeline>> {
        let paging = paging(page.0, per_page.0)?;
        Ok(Page(
            caller
                .read(&state, move |c, org_id| pipelines::list(c, org_id, paging))
                .await?,
        ))
    }

    /// Create a pipeline
    ///
    /// Scope `write`. With `stages` in board order, or the standard sales stages when none are
    /// given. `is_default: true` makes it the default (the old default stops being one).
    #[oai(path = "/pipelines", method = "post", operation_id = "create_pipeline")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewPipeline>,
    ) -> ApiResult<Created<Pipeline>> {
        let p = caller
            .write(&state, move |tx, p, now| {
                pipelines::create(tx, &p.org_id, body.0, now)
            })
            .await?;
        Ok(Created::versioned(p.version, p))
    }

    /// Get a pipeline
    ///
    /// The pipeline with its stages in board order.
    #[oai(path = "/pipelines/:id", method = "get", operation_id = "get_pipeline")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The pipeline's id (`pip_...`).
        id: Path<String>,
    ) -> ApiResult<One<Pipeline>> {
        let p = caller
            .lookup(&state, move |c, org_id| pipelines::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(p.version, p))
    }

    /// Update a pipeline
    ///
    /// Scope `write`. Rename it, or make it the default with `is_default: true`.
    #[oai(
        path = "/pipelines/:id",
        method = "patch",
        operation_id = "update_pipeline"
    )]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The pipeline's id (`pip_...`).
        id: Path<String>,
        body: JsonBody<PipelinePatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Pipeline>> {
        let expected = IfMatch::value(if_match.0);
        let p = caller
            .write(&state, move |tx, p, now| {
                pipelines::update(tx, &p.org_id, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(p.version, p))
    }

    /// Delete a pipeline
    ///
    /// Scope `write`. Deletes the pipeline and its stages. The default pipeline, and a
    /// pipeline that still holds deals, cannot be deleted (409). Returns the deleted pipeline.
    #[oai(
        path = "/pipelines/:id",
        method = "delete",
        operation_id = "delete_pipeline"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The pipeline's id (`pip_...`).
        id: Path<String>,
    ) -> ApiResult<One<Pipeline>> {
        let p = caller
            .write(&state, move |tx, p, _| {
                pipelines::delete(tx, &p.org_id, &id.0)
            })
            .await?;
        Ok(One::new(p))
    }

    /// Add a stage
    ///
    /// Scope `write`. Inserted at `position` (default: the end); later stages shift right.
    /// Names are unique within the pipeline (409).
    #[oai(
        path = "/pipelines/:id/stages",
        method = "post",
        operation_id = "create_stage"
    )]
    async fn add_stage(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The pipeline's id (`pip_...`).
        id: Path<String>,
        body: JsonBody<NewStage>,
    ) -> ApiResult<Created<Stage>> {
        let s = caller
            .write(&state, move |tx, p, now| {
                pipelines::add_stage(tx, &p.org_id, &id.0, body.0, now)
            })
            .await?;
        Ok(Created::versioned(s.version, s))
    }

    /// Update a stage
    ///
    /// Scope `write`. Rename it, change its probability or rotting days, or reorder the board
    /// with `position`. The kind of a stage that holds deals cannot change (409).
    #[oai(path = "/stages/:id", method = "patch", operation_id = "update_stage")]
    async fn update_stage(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The stage's id (`stg_...`).
        id: Path<String>,
        body: JsonBody<StagePatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Stage>> {
        let expected = IfMatch::value(if_match.0);
        let s = caller
            .write(&state, move |tx, p, now| {
                pipelines::update_stage(tx, &p.org_id, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(s.version, s))
    }

    /// Delete a stage
    ///
    /// Scope `write`. A stage that holds deals is 409 unless `move_to` names another stage of
    /// the same pipeline: its deals are moved there first (each a normal move, with history
    /// and events). A pipeline keeps at least one stage. Stage history keeps the stage's name.
    #[oai(path = "/stages/:id", method = "delete", operation_id = "delete_stage")]
    async fn delete_stage(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The stage's id (`stg_...`).
        id: Path<String>,
        /// A stage of the same pipeline (`stg_...`) to move the stage's deals to first; without it a stage holding deals is 409.
        move_to: Query<Option<String>>,
    ) -> ApiResult<One<Stage>> {
        let s = caller
            .write(&state, move |tx, p, now| -> DomainResult<Stage> {
                if let Some(target) = &move_to.0 {
                    deals::empty_stage(tx, p, &id.0, target, now)?;
                }
                pipelines::delete_stage(tx, &p.org_id, &id.0)
            })
            .await?;
        Ok(One::new(s))
    }
}
