//! `POST /auth/login`, `POST /auth/logout`, `GET /me`.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::{Object, OpenApi};

use super::body::JsonBody;
use super::envelope::One;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::security::Caller;
use super::ApiTags;
use crate::db::run_blocking;
use crate::domain::auth::{CredentialKind, Scope};
use crate::domain::orgs::{self, Organization};
use crate::domain::users::{self, User};
use crate::domain::validate::EmailAddress;
use crate::domain::{password_resets, sessions, DomainError};
use crate::shape::Shaped;
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Email and password.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's email.
    pub email: Shaped<EmailAddress>,
    /// The user's password.
    #[oai(write_only, validator(max_length = 256))]
    pub password: String,
    /// Which organization, when the same email belongs to several.
    #[oai(nullable)]
    pub org_id: Option<String>,
}

/// A reset token and the new password it sets.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PasswordResetRequest {
    /// The `clzr_` token an admin issued with `POST /users/{id}/password-reset`.
    #[oai(write_only, validator(max_length = 64))]
    pub token: String,
    /// The new password: at least 12 characters.
    #[oai(write_only, validator(min_length = 12, max_length = 256))]
    pub password: String,
}

/// A new session.
#[derive(Debug, Object, serde::Serialize)]
pub struct LoginResponse {
    /// The `clzs_` session token. Send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session ends.
    pub expires_at: Timestamp,
    /// Who signed in.
    pub user: User,
}

/// The credential a request came with.
#[derive(Debug, Object, serde::Serialize)]
pub struct CredentialInfo {
    /// `api_key` or `session`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: CredentialKind,
    /// The key's id (`key_...`) or the session's.
    pub id: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

/// Who is calling.
#[derive(Debug, Object, serde::Serialize)]
pub struct Me {
    /// The user behind the credential (for a key, its creator).
    pub user: User,
    /// The organization every request of this credential is confined to.
    pub organization: Organization,
    /// The credential itself.
    pub credential: CredentialInfo,
}

/// Logout result.
#[derive(Debug, Object, serde::Serialize)]
pub struct LoggedOut {
    /// Always true: the session no longer works.
    pub logged_out: bool,
}

/// Sign-in and identity.
pub struct AuthApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Log in with email and password
    ///
    /// Returns a `clzs_` session token that acts with the user's role (viewer = read,
    /// member = read + write, admin and owner = admin). A wrong email and a wrong password get the
    /// same 401, in the same time.
    #[oai(path = "/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&Arc<AppState>>,
        body: JsonBody<LoginRequest>,
    ) -> ApiResult<One<LoginResponse>> {
        let input = body.0;
        let signed = state
            .sign_in(input.email.into(), input.password, input.org_id)
            .await?;
        Ok(One::new(LoginResponse {
            token: signed.token,
            expires_at: Timestamp(signed.expires_at),
            user: signed.user,
        }))
    }

    /// Set a new password with a reset token
    ///
    /// Trades the one-time token of `POST /users/{id}/password-reset` for a new password and
    /// a session, as a login would give. The token works once, for 24 hours, and only while no
    /// newer reset was issued; any other token gets the same 401 as a bad login.
    #[oai(
        path = "/auth/password-reset",
        method = "post",
        operation_id = "complete_password_reset"
    )]
    async fn password_reset(
        &self,
        state: Data<&Arc<AppState>>,
        body: JsonBody<PasswordResetRequest>,
    ) -> ApiResult<One<LoginResponse>> {
        let PasswordResetRequest { token, password } = body.0;
        let hashed = run_blocking(move || users::hash_password(&password)).await?;
        let ttl = state.config.session_ttl.as_millis() as i64;
        let now = state.clock.now_ms();
        let (token, expires_at, user) = state
            .db
            .write(move |tx| password_resets::redeem(tx, &token, hashed, ttl, now))
            .await?;
        Ok(One::new(LoginResponse {
            token,
            expires_at: Timestamp(expires_at),
            user,
        }))
    }

    /// End the current session
    ///
    /// The session token stops working at once. API keys are not sessions: revoke them with
    /// `DELETE /api-keys/{id}`.
    #[oai(path = "/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
    ) -> ApiResult<One<LoggedOut>> {
        let p = caller.0;
        if p.kind != CredentialKind::Session {
            // The credential is well formed and valid, just not one this operation is for.
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "logout ends sessions; this is an API key (revoke keys with DELETE /api-keys/{id})",
            ));
        }
        let now = state.clock.now_ms();
        state
            .db
            .write(move |tx| sessions::close(tx, &p.credential_id, now))
            .await?;
        Ok(One::new(LoggedOut { logged_out: true }))
    }

    /// Who am I
    ///
    /// The caller's user, organization and credential with its effective scopes. Any valid
    /// credential may call it.
    #[oai(path = "/me", method = "get", operation_id = "get_me")]
    async fn me(&self, state: Data<&Arc<AppState>>, caller: Caller) -> ApiResult<One<Me>> {
        let p = caller.0;
        let (user, organization) = state
            .db
            .read({
                let p = p.clone();
                move |conn| {
                    let user = users::get(conn, &p.org_id, &p.user_id)?;
                    let org = orgs::get(conn, &p.org_id)?;
                    Ok::<_, DomainError>((user, org))
                }
            })
            .await?;
        Ok(One::new(Me {
            user,
            organization,
            credential: CredentialInfo {
                kind: p.kind,
                id: p.credential_id.clone(),
                scopes: p.scopes.to_vec(),
            },
        }))
    }
}
