//! The team: `GET/POST /users`, `GET/PATCH/DELETE /users/{id}`.

use crate::api::params::{paging, PageNumber, PerPage, Roles, Shaped, SortParam, UserSort};
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
use crate::db::run_blocking;
use crate::domain::auth::Scope;
use crate::domain::password_resets::{self, IssuedReset};
use crate::domain::users::{self, CurrentPassword, NewUser, User, UserFilter, UserPatch};
use crate::state::AppState;

/// Team management.
pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// List users
    ///
    /// Scope `read` (agents assign leads and tasks to people). Filters: `role` (any of, comma
    /// separated), `active`, `q` (name or email). Sort: `created_at`, `name`, `email`, with `-`
    /// for descending; default `-created_at`.
    #[oai(path = "/users", method = "get", operation_id = "list_users")]
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
        sort: Query<Option<SortParam<UserSort>>>,
        /// Only users with one of these roles (owner, admin, member, viewer, comma separated).
        role: Query<Option<Shaped<Roles>>>,
        /// Only active users (true) or only deactivated ones (false).
        active: Query<Option<bool>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
    ) -> ApiResult<Page<User>> {
        let paging = paging(page.0, per_page.0)?;
        let filter = UserFilter {
            role: role.0.map(String::from),
            active: active.0,
            q: q.0,
        };
        let page = caller
            .read(&state, move |c, org_id| {
                users::list(c, org_id, &filter, sort.0.as_deref(), paging)
            })
            .await?;
        Ok(Page(page))
    }

    /// Add a user
    ///
    /// Scope `admin`. The email must be unique in the organization (409 with the existing user's
    /// id otherwise). Only an owner may add another owner.
    #[oai(path = "/users", method = "post", operation_id = "create_user")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewUser>,
    ) -> ApiResult<Created<User>> {
        let p = caller.with(Scope::Admin)?.clone();
        let password = body.0.password.clone();
        let hashed = run_blocking(move || users::hash_new_password(password.as_deref())).await?;
        let now = state.clock.now_ms();
        let user = state
            .db
            .write(move |tx| users::create(tx, &p.org_id, body.0, hashed, Some(&p), now))
            .await?;
        Ok(Created::versioned(user.version, user))
    }

    /// Get a user
    ///
    /// Scope `read`.
    #[oai(path = "/users/:id", method = "get", operation_id = "get_user")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The user's id (`usr_...`).
        id: Path<String>,
    ) -> ApiResult<One<User>> {
        let user = caller
            .lookup(&state, move |c, org_id| users::get(c, org_id, &id.0))
            .await?;
        Ok(One::versioned(user.version, user))
    }

    /// Update a user
    ///
    /// With `admin`: the name, role and activation of anyone (an owner's only by an owner;
    /// granting or removing `owner` takes an owner; the organization always keeps one active
    /// owner). A user signed in with a session may change their own name, and with
    /// `current_password` their own email and password, which ends their other sessions.
    /// Nobody else may change a user's email or password, whatever their scopes: an admin
    /// issues a reset instead (`POST /users/{id}/password-reset`). API keys never change a
    /// user's email or password.
    #[oai(path = "/users/:id", method = "patch", operation_id = "update_user")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The user's id (`usr_...`).
        id: Path<String>,
        body: JsonBody<UserPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<User>> {
        let p = caller.with(Scope::Read)?.clone();
        let expected = IfMatch::value(if_match.0);
        // Hashed and checked only for the user themself, signed in: nobody else may change
        // credentials, so anyone else's attempt costs no argon2 and learns nothing.
        let in_person = users::in_person(&p, &id.0);
        let password = body.0.password.clone().filter(|_| in_person);
        let hashed = run_blocking(move || users::hash_new_password(password.as_deref())).await?;
        let proof = match body.0.current_password.clone() {
            Some(typed) if in_person => {
                let (org_id, user_id) = (p.org_id.clone(), id.0.clone());
                let stored = state
                    .db
                    .lookup(move |c| users::password_hash(c, &org_id, &user_id))
                    .await?;
                run_blocking(move || Ok(users::prove_password(stored, &typed))).await?
            }
            Some(_) => CurrentPassword::Wrong,
            None => CurrentPassword::Missing,
        };
        let now = state.clock.now_ms();
        let user = state
            .db
            .write(move |tx| users::update(tx, &p, &id.0, body.0, hashed, proof, expected, now))
            .await?;
        Ok(One::versioned(user.version, user))
    }

    /// Issue a password reset
    ///
    /// For a member who forgot their password or never had one. Only an admin signed in with
    /// a session may issue one (never an API key), never for themself, and for an owner only an
    /// owner. It clears the user's password, ends all their sessions, voids any earlier reset
    /// and records a `user.password_reset` event naming who issued it. The one-time `token`
    /// (shown once, valid 24 hours) goes to the user, who sends it with a new password to
    /// `POST /auth/password-reset`.
    #[oai(
        path = "/users/:id/password-reset",
        method = "post",
        operation_id = "reset_user_password"
    )]
    async fn reset_password(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The user's id (`usr_...`).
        id: Path<String>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<Created<IssuedReset>> {
        let p = caller.with(Scope::Admin)?.clone();
        let expected = IfMatch::value(if_match.0);
        let now = state.clock.now_ms();
        let issued = state
            .db
            .write(move |tx| password_resets::issue(tx, &p, &id.0, expected, now))
            .await?;
        Ok(Created::new(issued))
    }

    /// Deactivate a user
    ///
    /// Scope `admin`. The user can no longer sign in, their sessions end and the API keys they
    /// created stop working; the leads, deals and notes they own stay as they are. Reactivate
    /// with `PATCH {"active": true}`. Returns the deactivated user.
    #[oai(
        path = "/users/:id",
        method = "delete",
        operation_id = "deactivate_user"
    )]
    async fn deactivate(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The user's id (`usr_...`).
        id: Path<String>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<User>> {
        let p = caller.with(Scope::Admin)?.clone();
        let expected = IfMatch::value(if_match.0);
        let now = state.clock.now_ms();
        let user = state
            .db
            .write(move |tx| users::deactivate(tx, &p, &id.0, expected, now))
            .await?;
        Ok(One::versioned(user.version, user))
    }
}
