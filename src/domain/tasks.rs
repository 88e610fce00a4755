//! Tasks: the next steps, on a deal or a lead or on their own.

use crate::db::Tx;
use crate::domain::nullable::Nullable;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};
use rusqlite::{params, Connection, Row};

use super::auth::Principal;
use super::error::{DomainError, DomainResult, Issues};
use super::events::Actor;
use super::listing::{any_of, Filters, ListPage, ListSource, Paging, Record, Sort};
use super::validate;
use crate::clock::Millis;
use crate::domain::changes;
use crate::ids::new_id;
use crate::timefmt::Timestamp;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// To do.
    Open,
    /// Done.
    Completed,
    /// Dropped; completing it is a conflict (reopen it first).
    Cancelled,
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Low.
    Low,
    /// Medium (the default).
    Medium,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

fn status_str(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Open => "open",
        TaskStatus::Completed => "completed",
        TaskStatus::Cancelled => "cancelled",
    }
}

fn priority_str(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    }
}

/// A task.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Task {
    /// `task_...`
    pub id: String,
    /// What to do.
    pub title: String,
    /// Details.
    pub description: Nullable<String>,
    /// open, completed or cancelled.
    pub status: TaskStatus,
    /// low, medium, high or urgent.
    pub priority: Priority,
    /// When it is due.
    pub due_at: Nullable<Timestamp>,
    /// True when open and past due.
    pub overdue: bool,
    /// Who does it.
    pub assignee_id: Nullable<String>,
    /// The deal it moves forward.
    pub deal_id: Nullable<String>,
    /// The lead it is about.
    pub lead_id: Nullable<String>,
    /// When it was completed.
    pub completed_at: Nullable<Timestamp>,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A task to create.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewTask {
    /// 1–500 characters.
    #[oai(validator(min_length = 1, max_length = 500))]
    pub title: String,
    /// Up to 10,000 characters.
    #[oai(validator(max_length = 10000))]
    #[oai(nullable)]
    pub description: Option<String>,
    /// Defaults to medium.
    #[oai(nullable)]
    pub priority: Option<Priority>,
    /// When it is due.
    #[oai(nullable)]
    pub due_at: Option<Timestamp>,
    /// An active user; defaults to the caller.
    #[oai(nullable)]
    pub assignee_id: Option<String>,
    /// A deal of this organization.
    #[oai(nullable)]
    pub deal_id: Option<String>,
    /// A lead of this organization.
    #[oai(nullable)]
    pub lead_id: Option<String>,
}

/// Changes to a task; absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct TaskPatch {
    /// 1–500 characters.
    #[oai(validator(min_length = 1, max_length = 500))]
    #[oai(nullable)]
    pub title: Option<String>,
    /// Details.
    #[oai(validator(max_length = 10000))]
    #[oai(nullable)]
    pub description: MaybeUndefined<String>,
    /// open, completed or cancelled (completing a cancelled task is 409).
    #[oai(nullable)]
    pub status: Option<TaskStatus>,
    /// low, medium, high or urgent.
    #[oai(nullable)]
    pub priority: Option<Priority>,
    /// When it is due.
    #[oai(nullable)]
    pub due_at: MaybeUndefined<Timestamp>,
    /// An active user, or null.
    #[oai(nullable)]
    pub assignee_id: MaybeUndefined<String>,
    /// A deal, or null.
    #[oai(nullable)]
    pub deal_id: MaybeUndefined<String>,
    /// A lead, or null.
    #[oai(nullable)]
    pub lead_id: MaybeUndefined<String>,
}

pub(crate) const COLUMNS: &str = "id, title, description, status, priority, due_at, assignee_id, \
    deal_id, lead_id, completed_at, version, created_at, updated_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "tasks",
    id: "id",
    count_from: None,
};

/// A row mapper that knows "now", to say whether a task is overdue.
pub(crate) fn mapper(now: Millis) -> impl Fn(&Row<'_>) -> rusqlite::Result<Task> {
    move |r| {
        let status = match r.get::<_, String>(3)?.as_str() {
            "completed" => TaskStatus::Completed,
            "cancelled" => TaskStatus::Cancelled,
            _ => TaskStatus::Open,
        };
        let priority = match r.get::<_, String>(4)?.as_str() {
            "low" => Priority::Low,
            "high" => Priority::High,
            "urgent" => Priority::Urgent,
            _ => Priority::Medium,
        };
        let due: Option<i64> = r.get(5)?;
        Ok(Task {
            id: r.get(0)?,
            title: r.get(1)?,
            description: r.get(2)?,
            overdue: status == TaskStatus::Open && due.is_some_and(|d| d < now),
            status,
            priority,
            due_at: Nullable(due.map(Timestamp)),
            assignee_id: r.get(6)?,
            deal_id: r.get(7)?,
            lead_id: r.get(8)?,
            completed_at: Nullable(r.get::<_, Option<i64>>(9)?.map(Timestamp)),
            version: r.get(10)?,
            created_at: Timestamp(r.get(11)?),
            updated_at: Timestamp(r.get(12)?),
        })
    }
}

const RECORD: Record = Record::new("tasks", COLUMNS, "task", "task");

/// The task `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str, now: Millis) -> DomainResult<Task> {
    RECORD.get(conn, org_id, id, mapper(now))
}

/// Filters of the task list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Any of open, completed, cancelled.
    pub status: Option<String>,
    /// Any of low, medium, high, urgent.
    pub priority: Option<String>,
    /// Only open tasks past due (true) or not (false).
    pub overdue: Option<bool>,
    /// On any of these deals.
    pub deal_id: Option<String>,
    /// On any of these leads.
    pub lead_id: Option<String>,
    /// Assigned to any of these users.
    pub assignee_id: Option<String>,
    /// Due before.
    pub due_before: Option<Millis>,
    /// Due at or after.
    pub due_after: Option<Millis>,
    /// Created at or after.
    pub created_after: Option<Millis>,
    /// Created before.
    pub created_before: Option<Millis>,
    /// Changed at or after.
    pub updated_since: Option<Millis>,
}

/// Sortable fields; priority sorts low < medium < high < urgent.
pub const SORTS: &[(&str, &str)] = &[
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("due_at", "coalesce(due_at, 9223372036854775807)"),
    (
        "priority",
        "CASE priority WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 ELSE 3 END",
    ),
];

/// The values of the `status` filter.
pub const STATUSES: &[&str] = &["open", "completed", "cancelled"];
/// The values of the `priority` filter.
pub const PRIORITIES: &[&str] = &["low", "medium", "high", "urgent"];

/// One page of tasks.
pub fn list(
    conn: &Connection,
    org_id: &str,
    f: &TaskFilter,
    sort: Option<&str>,
    paging: Paging,
    now: Millis,
) -> DomainResult<ListPage<Task>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    let statuses = any_of(f.status.as_deref());
    validate::one_of("status", &statuses, STATUSES)?;
    filters.any_of("status", &statuses);
    let priorities = any_of(f.priority.as_deref());
    validate::one_of("priority", &priorities, PRIORITIES)?;
    filters.any_of("priority", &priorities);
    match f.overdue {
        Some(true) => filters.push("status = 'open' AND due_at < ?", vec![now.into()]),
        Some(false) => filters.push(
            "NOT (status = 'open' AND coalesce(due_at < ?, 0))",
            vec![now.into()],
        ),
        None => {}
    }
    filters.any_of("deal_id", &any_of(f.deal_id.as_deref()));
    filters.any_of("lead_id", &any_of(f.lead_id.as_deref()));
    filters.any_of("assignee_id", &any_of(f.assignee_id.as_deref()));
    if let Some(t) = f.due_before {
        filters.push("due_at < ?", vec![t.into()]);
    }
    if let Some(t) = f.due_after {
        filters.push("due_at >= ?", vec![t.into()]);
    }
    filters.time_window("", f.created_after, f.created_before, f.updated_since);
    filters.fetch_page(conn, &LIST, sort, paging, mapper(now))
}

#[allow(clippy::too_many_arguments)]
fn check_refs(
    conn: &Connection,
    org_id: &str,
    title: &str,
    description: Option<String>,
    assignee_id: Option<&str>,
    deal_id: Option<&str>,
    lead_id: Option<&str>,
    issues: &mut Issues,
) -> DomainResult<(String, Option<String>)> {
    let title = validate::text(issues, "title", title, 1, 500);
    let description = validate::optional_text(issues, "description", description, 10_000);
    validate::active_user(conn, issues, "assignee_id", org_id, assignee_id)?;
    validate::reference(conn, issues, "deal_id", "deals", "deal", org_id, deal_id)?;
    validate::reference(conn, issues, "lead_id", "leads", "lead", org_id, lead_id)?;
    Ok((title, description))
}

/// Creates a task (assigned to the caller unless said otherwise); records `task.created`.
pub fn create(tx: &Tx<'_>, p: &Principal, input: NewTask, now: Millis) -> DomainResult<Task> {
    let mut issues = Issues::new();
    let assignee = input.assignee_id.or_else(|| Some(p.user_id.clone()));
    let (title, description) = check_refs(
        tx,
        &p.org_id,
        &input.title,
        input.description,
        assignee.as_deref(),
        input.deal_id.as_deref(),
        input.lead_id.as_deref(),
        &mut issues,
    )?;
    issues.finish()?;
    let id = new_id("task");
    tx.execute(
        "INSERT INTO tasks (id, org_id, title, description, status, priority, due_at, assignee_id,
                            deal_id, lead_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            id,
            p.org_id,
            title,
            description,
            priority_str(input.priority.unwrap_or(Priority::Medium)),
            input.due_at.map(|t| t.0),
            assignee,
            input.deal_id,
            input.lead_id,
            now
        ],
    )?;
    let task = get(tx, &p.org_id, &id, now)?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "task.created",
        &task,
        None,
        now,
    )?;
    Ok(task)
}

/// Changes a task (`If-Match` checked). A change of status follows the same rules as complete
/// and reopen; completing emits `task.completed` beside `task.updated`.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: TaskPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Task> {
    let before = get(tx, &p.org_id, id, now)?;
    validate::if_match(expected_version, before.version)?;
    let status = patch.status.unwrap_or(before.status);
    if status == TaskStatus::Completed && before.status == TaskStatus::Cancelled {
        return Err(DomainError::conflict(
            "the task is cancelled; reopen it before completing it",
        ));
    }
    let assignee = validate::merge(patch.assignee_id, before.assignee_id.0.clone());
    let deal_id = validate::merge(patch.deal_id, before.deal_id.0.clone());
    let lead_id = validate::merge(patch.lead_id, before.lead_id.0.clone());
    let mut issues = Issues::new();
    let (title, description) = check_refs(
        tx,
        &p.org_id,
        patch.title.as_deref().unwrap_or(&before.title),
        validate::merge(patch.description, before.description.0.clone()),
        assignee.as_deref(),
        deal_id.as_deref(),
        lead_id.as_deref(),
        &mut issues,
    )?;
    issues.finish()?;
    let completed_at = match status {
        TaskStatus::Completed => Some(before.completed_at.map_or(now, |t| t.0)),
        _ => None,
    };
    let written = changes::update(
        tx,
        "tasks",
        &p.org_id,
        id,
        &[
            ("title", &title),
            ("description", &description),
            ("status", &status_str(status)),
            (
                "priority",
                &priority_str(patch.priority.unwrap_or(before.priority)),
            ),
            (
                "due_at",
                &validate::merge(patch.due_at, before.due_at.0).map(|t| t.0),
            ),
            ("assignee_id", &assignee),
            ("deal_id", &deal_id),
            ("lead_id", &lead_id),
            ("completed_at", &completed_at),
        ],
        now,
    )?;
    if !written {
        return Ok(before);
    }
    let after = get(tx, &p.org_id, id, now)?;
    let actor = Actor::from(p);
    let previous =
        changes::record_update(tx, &p.org_id, &actor, "task.updated", &before, &after, now)?;
    if status == TaskStatus::Completed && before.status != TaskStatus::Completed {
        changes::append(
            tx,
            &p.org_id,
            &actor,
            "task.completed",
            &after,
            Some(previous),
            now,
        )?;
    }
    Ok(after)
}

/// Marks a task done. Completing a completed task changes nothing; a cancelled one is 409.
pub fn complete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Task> {
    let task = get(tx, &p.org_id, id, now)?;
    if task.status == TaskStatus::Completed {
        return Ok(task);
    }
    let patch = TaskPatch {
        status: Some(TaskStatus::Completed),
        ..TaskPatch::default()
    };
    update(tx, p, id, patch, None, now)
}

/// Opens a completed or cancelled task again (an open one is left as it is).
pub fn reopen(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Task> {
    let task = get(tx, &p.org_id, id, now)?;
    if task.status == TaskStatus::Open {
        return Ok(task);
    }
    let patch = TaskPatch {
        status: Some(TaskStatus::Open),
        ..TaskPatch::default()
    };
    update(tx, p, id, patch, None, now)
}

/// Deletes one task; records `task.deleted`.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Task> {
    let task = get(tx, &p.org_id, id, now)?;
    changes::remove(
        tx,
        "tasks",
        &p.org_id,
        id,
        &Actor::from(p),
        "task.deleted",
        &task,
        now,
    )?;
    Ok(task)
}

/// Deletes every task whose `column` (`deal_id` or `lead_id`) is `id`, each with its event: the
/// cascade when a deal or lead goes.
pub fn delete_where(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    column: &str,
    id: &str,
    now: Millis,
) -> DomainResult<()> {
    let tasks: Vec<Task> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE org_id = ?1 AND {column} = ?2"
        ))?;
        let rows = stmt.query_map(params![org_id, id], mapper(now))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for task in tasks {
        tx.execute("DELETE FROM tasks WHERE id = ?1", params![task.id])?;
        changes::append(tx, org_id, actor, "task.deleted", &task, None, now)?;
    }
    Ok(())
}
