//! Settings, for admins and owners: the organization, the team and their roles, and backups.
//! (API keys are in keys.rs, webhooks in hooks.rs.) Each change is the API's own
//! domain call with the signed-in admin's principal.

use std::sync::Arc;

use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response};

use super::shell::{self, csrf_field, notice, Section};
use super::{failure, html, see_other, CsrfOnly, Outcome, Viewer};
use crate::db::run_blocking;
use crate::domain::auth::{Role, Scope};
use crate::domain::listing::Paging;
use crate::domain::orgs::{self, Organization, OrganizationPatch};
use crate::domain::terms::Term;
use crate::domain::users::{self, CurrentPassword, NewUser, User, UserFilter, UserPatch};
use crate::domain::{DomainError, Issues};
use crate::shape::Shaped;
use crate::state::AppState;

const TABS: &[(&str, &str)] = &[
    ("/settings", "Organization"),
    ("/settings/users", "Users"),
    ("/settings/keys", "API keys"),
    ("/settings/webhooks", "Webhooks"),
    ("/settings/backups", "Backups"),
];

/// The settings' own navigation.
pub fn tabs(current: &str) -> Markup {
    html! {
        nav.tabs aria-label="Settings" {
            @for (href, label) in TABS {
                @if *href == current {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        }
    }
}

/// The page a viewer or member gets for any settings page: they are the admins' (403).
pub fn admins_only(viewer: &Viewer) -> Option<Response> {
    (!viewer.can_admin()).then(|| {
        let body = html! {
            h1 { "Settings" }
            p { "The organization, its users, API keys, webhooks and backups are managed by its admins and owners." }
        };
        html(StatusCode::FORBIDDEN, shell::page(viewer, Section::Settings, "Settings", body))
    })
}

/// A settings page: the tabs, then `body`.
pub(super) fn settings_page(
    viewer: &Viewer,
    status: StatusCode,
    tab: &str,
    title: &str,
    body: Markup,
) -> Response {
    html(
        status,
        shell::page(
            viewer,
            Section::Settings,
            title,
            html! { (tabs(tab)) h1 { (title) } (body) },
        ),
    )
}

// ---- Organization ----

/// `GET /settings`.
#[poem::handler]
pub async fn org_page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    if let Some(resp) = admins_only(&viewer) {
        return resp;
    }
    render_org(&state, &viewer, StatusCode::OK, None).await
}

async fn render_org(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    match state.db.read(move |c| orgs::get(c, &org)).await {
        Ok(o) => settings_page(
            viewer,
            status,
            "/settings",
            "Organization",
            org_form(viewer, &o, error),
        ),
        Err(e) => failure(&e),
    }
}

fn org_form(viewer: &Viewer, o: &Organization, error: Option<&str>) -> Markup {
    html! {
        (notice(error))
        form.stack.panel method="post" action="/settings" {
            (csrf_field(&viewer.csrf()))
            input type="hidden" name="version" value=(o.version);
            label for="org-name" { "Name" } input #org-name name="name" value=(o.name) required maxlength="200";
            label for="org-currency" { "Currency (ISO 4217)" } input #org-currency name="currency" value=(o.currency.to_string()) required maxlength="3";
            label for="org-tz" { "Time zone (IANA)" } input #org-tz name="timezone" value=(o.timezone) required;
            button type="submit" { "Save" }
        }
    }
}

/// The organization form.
#[derive(serde::Deserialize)]
pub struct OrgForm {
    csrf: String,
    version: i64,
    name: String,
    currency: String,
    timezone: String,
}

/// `POST /settings`.
#[poem::handler]
pub async fn save_organization(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Form(f): Form<OrgForm>,
) -> Response {
    let csrf = f.csrf.clone();
    let outcome = super::change(req, &state, &csrf, Scope::Admin, move |tx, p, now| {
        let mut issues = Issues::new();
        let currency = Term::parse(f.currency.trim())
            .map_err(|e| issues.add("currency", e))
            .ok();
        let patch = OrganizationPatch {
            name: Some(Shaped::checked(&mut issues, "name", f.name)),
            currency,
            timezone: Some(Shaped::checked(
                &mut issues,
                "timezone",
                f.timezone.trim().to_string(),
            )),
            ..Default::default()
        };
        issues.finish()?;
        orgs::update(tx, &p.org_id, patch, Some(f.version), now)
    })
    .await;
    outcome
        .answer(
            async |_, _| see_other("/settings"),
            async |v, status, why| render_org(&state, &v, status, Some(&why)).await,
        )
        .await
}

// ---- Users ----

/// `GET /settings/users`.
#[poem::handler]
pub async fn team_page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    if let Some(resp) = admins_only(&viewer) {
        return resp;
    }
    render_team(&state, &viewer, StatusCode::OK, None).await
}

async fn render_team(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let org = viewer.principal.org_id.clone();
    let read = state
        .db
        .read(move |c| {
            users::list(
                c,
                &org,
                &UserFilter::default(),
                Some("name"),
                Paging {
                    page: 1,
                    per_page: 100,
                },
            )
        })
        .await;
    match read {
        Ok(listed) => settings_page(
            viewer,
            status,
            "/settings/users",
            "Users",
            team_body(viewer, &listed.items, error),
        ),
        Err(e) => failure(&e),
    }
}

const ROLES: &[&str] = &["viewer", "member", "admin", "owner"];

fn team_body(viewer: &Viewer, team: &[User], error: Option<&str>) -> Markup {
    let csrf = viewer.csrf();
    html! {
        (notice(error))
        table.keys {
            caption.sr { "The organization's users" }
            thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Status" } th scope="col" { "" } } }
            tbody {
                @for u in team {
                    tr data-user=(u.id) {
                        td { (u.name) }
                        td { (u.email) }
                        td {
                            form.inline method="post" action={"/settings/users/" (u.id) "/role"} {
                                (csrf_field(&csrf))
                                input type="hidden" name="version" value=(u.version);
                                label.sr for={"role-" (u.id)} { "Role of " (u.name) }
                                select #{"role-" (u.id)} name="role" {
                                    @for r in ROLES { option value=(r) selected[u.role.as_str() == *r] { (r) } }
                                }
                                button type="submit" { "Change" }
                            }
                        }
                        td.status { (if u.active { "active" } else { "deactivated" }) }
                        td {
                            @if u.active && u.id != viewer.principal.user_id {
                                form method="post" action={"/settings/users/" (u.id) "/deactivate"} {
                                    (csrf_field(&csrf))
                                    input type="hidden" name="version" value=(u.version);
                                    button.danger type="submit" aria-label={"Deactivate " (u.name)} { "Deactivate" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.panel aria-labelledby="h-add-user" {
            h2 #h-add-user { "Add a user" }
            form.inline method="post" action="/settings/users" {
                (csrf_field(&csrf))
                label { "Name" input name="name" required maxlength="200"; }
                label { "Email" input name="email" type="email" required; }
                label { "Role" select name="role" { @for r in ROLES { option value=(r) selected[*r == "member"] { (r) } } } }
                label { "Password (12+ characters)" input name="password" type="password" minlength="12" autocomplete="new-password" required; }
                button type="submit" { "Add user" }
            }
        }
    }
}

/// The add-user form.
#[derive(serde::Deserialize)]
pub struct UserForm {
    csrf: String,
    name: String,
    email: String,
    role: String,
    password: String,
}

/// `POST /settings/users`: the password is hashed off the async workers, as the API does.
#[poem::handler]
pub async fn add_user(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Form(f): Form<UserForm>,
) -> Response {
    let password = f.password.clone();
    let hashed = match run_blocking(move || users::hash_new_password(Some(&password))).await {
        Ok(h) => h,
        Err(e) => return failure(&e),
    };
    let csrf = f.csrf.clone();
    let outcome = super::change(req, &state, &csrf, Scope::Admin, move |tx, p, now| {
        let mut issues = Issues::new();
        let role = Role::parse(&f.role);
        if role.is_none() {
            issues.add("role", "must be viewer, member, admin or owner");
        }
        let input = NewUser {
            email: Shaped::checked(&mut issues, "email", f.email.trim().to_string()),
            name: Shaped::checked(&mut issues, "name", f.name),
            role,
            password: Some(f.password),
        };
        issues.finish()?;
        users::create(tx, &p.org_id, input, hashed, Some(p), now)
    })
    .await;
    team_outcome(&state, outcome).await
}

async fn team_outcome<T>(state: &AppState, outcome: Outcome<T>) -> Response {
    outcome
        .answer(
            async |_, _| see_other("/settings/users"),
            async |v, status, why| render_team(state, &v, status, Some(&why)).await,
        )
        .await
}

/// The role form.
#[derive(serde::Deserialize)]
pub struct RoleForm {
    csrf: String,
    version: i64,
    role: String,
}

/// `POST /settings/users/{id}/role`.
#[poem::handler]
pub async fn set_role(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<RoleForm>,
) -> Response {
    let csrf = f.csrf.clone();
    let outcome = super::change(req, &state, &csrf, Scope::Admin, move |tx, p, now| {
        let role = Role::parse(&f.role).ok_or_else(|| {
            DomainError::invalid("role", "must be viewer, member, admin or owner")
        })?;
        let patch = UserPatch {
            role: Some(role),
            ..Default::default()
        };
        users::update(
            tx,
            p,
            &id,
            patch,
            None,
            CurrentPassword::Missing,
            Some(f.version),
            now,
        )
    })
    .await;
    team_outcome(&state, outcome).await
}

/// The deactivate form.
#[derive(serde::Deserialize)]
pub struct VersionForm {
    csrf: String,
    version: i64,
}

/// `POST /settings/users/{id}/deactivate`.
#[poem::handler]
pub async fn deactivate(
    req: &Request,
    state: Data<&Arc<AppState>>,
    Path(id): Path<String>,
    Form(f): Form<VersionForm>,
) -> Response {
    let outcome = super::change(req, &state, &f.csrf, Scope::Admin, move |tx, p, now| {
        users::deactivate(tx, p, &id, Some(f.version), now)
    })
    .await;
    team_outcome(&state, outcome).await
}

// ---- Backups ----

/// `GET /settings/backups`.
#[poem::handler]
pub async fn backups_page(viewer: Viewer, state: Data<&Arc<AppState>>) -> Response {
    if let Some(resp) = admins_only(&viewer) {
        return resp;
    }
    render_backups(&state, &viewer, StatusCode::OK, None).await
}

async fn render_backups(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    made: Option<(&str, u64)>,
) -> Response {
    let dir = state.config.backup_dir();
    let folder = dir.display().to_string();
    let files = run_blocking(move || Ok(crate::db::snapshots(&dir)))
        .await
        .unwrap_or_default();
    let body = html! {
        p { "A backup is a checked copy of the whole database file (every organization on this server), written to " code { (folder) } " while the server goes on serving. A server started on a copy serves the same data." }
        @if let Some((name, bytes)) = made {
            p.notice role="status" { "Written: " code { (name) } " (" (bytes) " bytes, integrity ok)." }
        }
        form method="post" action="/settings/backups" {
            (csrf_field(&viewer.csrf()))
            button type="submit" { "Back up now" }
        }
        h2 { "In the folder" }
        @if files.is_empty() { p.empty { "No backups yet." } }
        ul.list.backups {
            @for (name, bytes) in &files { li { code { (name) } " · " (bytes) " bytes" } }
        }
    };
    settings_page(viewer, status, "/settings/backups", "Backups", body)
}

/// `POST /settings/backups`.
#[poem::handler]
pub async fn back_up(
    req: &Request,
    viewer: Viewer,
    state: Data<&Arc<AppState>>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(resp) =
        admins_only(&viewer).or_else(|| viewer.refusal_of_change(req, &f.csrf, Scope::Admin))
    {
        return resp;
    }
    let (db, dir, now) = (
        state.db.path().to_path_buf(),
        state.config.backup_dir(),
        state.clock.now_ms(),
    );
    match run_blocking(move || {
        crate::db::backup_into(&db, &dir, now, false).map_err(DomainError::Unavailable)
    })
    .await
    {
        Ok((file, bytes)) => {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            render_backups(&state, &viewer, StatusCode::CREATED, Some((&name, bytes))).await
        }
        Err(e) => failure(&e),
    }
}
