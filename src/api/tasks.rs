//! `/tasks`: next steps.

use crate::api::params::{
    paging, PageNumber, PerPage, Priorities, Shaped, SortParam, TaskSort, TaskStatuses,
};
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
use crate::domain::tasks::{self, NewTask, Task, TaskFilter, TaskPatch};
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Tasks.
pub struct TasksApi;

#[OpenApi(tag = "ApiTags::Tasks")]
impl TasksApi {
    /// List tasks
    ///
    /// Filters: `status` (open, completed, cancelled), `priority` (low, medium, high, urgent),
    /// `deal_id`, `lead_id`, `assignee_id` (each any of, comma separated), `overdue=true` (open
    /// and past due), `due_before`/`due_after`, `created_after`/`created_before`/
    /// `updated_since`. Sort: `created_at`, `updated_at`, `due_at` (undated last), `priority`;
    /// default `-created_at`.
    #[oai(path = "/tasks", method = "get", operation_id = "list_tasks")]
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
        sort: Query<Option<SortParam<TaskSort>>>,
        /// Only tasks that are open, completed or cancelled (any of, comma separated).
        status: Query<Option<Shaped<TaskStatuses>>>,
        /// Only tasks of these priorities: low, medium, high, urgent (any of, comma separated).
        priority: Query<Option<Shaped<Priorities>>>,
        /// true: only open tasks past their due time.
        overdue: Query<Option<bool>>,
        /// Only tasks on these deals (`deal_...`; any of, comma separated).
        deal_id: Query<Option<String>>,
        /// Only tasks on these leads (`lead_...`; any of, comma separated).
        lead_id: Query<Option<String>>,
        /// Only tasks assigned to these users (`usr_...`; any of, comma separated).
        assignee_id: Query<Option<String>>,
        /// Only tasks due before this time (RFC 3339).
        due_before: Query<Option<Timestamp>>,
        /// Only tasks due at or after this time (RFC 3339).
        due_after: Query<Option<Timestamp>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
    ) -> ApiResult<Page<Task>> {
        let paging = paging(page.0, per_page.0)?;
        let now = state.clock.now_ms();
        let f = TaskFilter {
            status: status.0.map(String::from),
            priority: priority.0.map(String::from),
            overdue: overdue.0,
            deal_id: deal_id.0,
            lead_id: lead_id.0,
            assignee_id: assignee_id.0,
            due_before: due_before.0.map(|t| t.0),
            due_after: due_after.0.map(|t| t.0),
            created_after: created_after.0.map(|t| t.0),
            created_before: created_before.0.map(|t| t.0),
            updated_since: updated_since.0.map(|t| t.0),
        };
        Ok(Page(
            caller
                .read(&state, move |c, org_id| {
                    tasks::list(c, org_id, &f, sort.0.as_deref(), paging, now)
                })
                .await?,
        ))
    }

    /// Create a task
    ///
    /// Scope `write`. Assigned to the caller unless `assignee_id` names another active user;
    /// may hang on a deal and/or a lead. Emits `task.created`.
    #[oai(path = "/tasks", method = "post", operation_id = "create_task")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewTask>,
    ) -> ApiResult<Created<Task>> {
        let t = caller
            .write(&state, move |tx, p, now| tasks::create(tx, p, body.0, now))
            .await?;
        Ok(Created::versioned(t.version, t))
    }

    /// Get a task
    ///
    /// The task, with `overdue` computed for now.
    #[oai(path = "/tasks/:id", method = "get", operation_id = "get_task")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The task's id (`task_...`).
        id: Path<String>,
    ) -> ApiResult<One<Task>> {
        let now = state.clock.now_ms();
        let t = caller
            .lookup(&state, move |c, org_id| tasks::get(c, org_id, &id.0, now))
            .await?;
        Ok(One::versioned(t.version, t))
    }

    /// Update a task
    ///
    /// Scope `write`. Absent fields stay, `null` clears. Setting `status` follows the rules
    /// of complete and reopen (a cancelled task cannot be completed: 409). Emits
    /// `task.updated` (and `task.completed` when it becomes completed).
    #[oai(path = "/tasks/:id", method = "patch", operation_id = "update_task")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The task's id (`task_...`).
        id: Path<String>,
        body: JsonBody<TaskPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Task>> {
        let expected = IfMatch::value(if_match.0);
        let t = caller
            .write(&state, move |tx, p, now| {
                tasks::update(tx, p, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(t.version, t))
    }

    /// Delete a task
    ///
    /// Scope `write`. Emits `task.deleted`; returns the deleted task.
    #[oai(path = "/tasks/:id", method = "delete", operation_id = "delete_task")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The task's id (`task_...`).
        id: Path<String>,
    ) -> ApiResult<One<Task>> {
        let t = caller
            .write(&state, move |tx, p, now| tasks::delete(tx, p, &id.0, now))
            .await?;
        Ok(One::new(t))
    }

    /// Complete a task
    ///
    /// Scope `write`. A completed task stays as it is; a cancelled one is 409 (reopen it
    /// first). Emits `task.updated` and `task.completed`.
    #[oai(
        path = "/tasks/:id/complete",
        method = "post",
        operation_id = "complete_task"
    )]
    async fn complete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The task's id (`task_...`).
        id: Path<String>,
    ) -> ApiResult<One<Task>> {
        let t = caller
            .write(&state, move |tx, p, now| tasks::complete(tx, p, &id.0, now))
            .await?;
        Ok(One::versioned(t.version, t))
    }

    /// Reopen a task
    ///
    /// Scope `write`. A completed or cancelled task becomes open again (an open one stays as
    /// it is). Emits `task.updated`.
    #[oai(
        path = "/tasks/:id/reopen",
        method = "post",
        operation_id = "reopen_task"
    )]
    async fn reopen(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The task's id (`task_...`).
        id: Path<String>,
    ) -> ApiResult<One<Task>> {
        let t = caller
            .write(&state, move |tx, p, now| tasks::reopen(tx, p, &id.0, now))
            .await?;
        Ok(One::versioned(t.version, t))
    }
}
