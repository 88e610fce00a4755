//! What every handler and worker shares: the database, the clock, the settings, the limiter,
//! the credential cache, the shutdown, the event bus and the mail transport.

use std::sync::Arc;

use crate::clock::{Clock, Millis};
use crate::config::ServeConfig;
use crate::config::Transport;
use crate::db::{run_blocking, Db};
use crate::domain::auth::{self, Principal};
use crate::domain::users::{self, User};
use crate::domain::{sessions, DomainResult};
use crate::shutdown::Shutdown;
use crate::{events_bus, ids, secrets};

/// Everything a request handler may need, shared by all of them.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The source of "now" (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// The settings the server was started with.
    pub config: ServeConfig,
    /// Per-caller rate limits.
    pub limiter: crate::ratelimit::RateLimiter,
    /// Principals recently resolved from bearer tokens.
    pub credentials: crate::credentials::Credentials,
    /// This process's id, to tell its in-flight idempotent requests from a crashed one's.
    pub instance_id: String,
    /// Fires when the server starts shutting down; long-lived streams end on it.
    pub shutdown: Shutdown,
    /// Committed events, broadcast to SSE streams.
    pub bus: events_bus::EventBus,
    /// Open SSE streams, for their limits.
    pub streams: Arc<events_bus::StreamSlots>,
    /// Where outbound mail goes.
    pub mail: Transport,
}

impl AppState {
    /// State over an open database.
    pub fn new(db: Db, config: ServeConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            limiter: crate::ratelimit::RateLimiter::new(config.rate_limit.0),
            credentials: Default::default(),
            instance_id: ids::new_id("inst"),
            shutdown: Shutdown::new(),
            bus: events_bus::EventBus::new(),
            streams: Arc::default(),
            // The flag parser has already tried the URL, so a bad one never gets this far.
            mail: Transport::from_config(config.smtp_url.as_deref()).unwrap_or(Transport::Log),
            config,
        }
    }
}

/// A session opened by a correct email and password: the token (shown once), when it ends, and
/// who signed in.
pub struct SignedIn {
    /// The `clzs_` token.
    pub token: String,
    /// When the session ends.
    pub expires_at: Millis,
    /// The user.
    pub user: User,
}

impl AppState {
    /// The principal behind a bearer token (an API key or a session), from the credentials
    /// recently resolved when nothing can have changed it since (see [`crate::credentials`]),
    /// else from the database. `None` for anything that is not a live credential. The API's
    /// gate and the web app's session cookie both resolve through here.
    pub async fn principal_of(&self, token: &str) -> DomainResult<Option<Principal>> {
        if !secrets::is_token_shaped(token, auth::API_KEY_PREFIX)
            && !secrets::is_token_shaped(token, auth::SESSION_PREFIX)
        {
            return Ok(None);
        }
        let hash = secrets::token_hash(token);
        // Taken before the read, so a commit that lands during it makes the entry stale.
        let commit = self.db.commit_count();
        let now = self.clock.now_ms();
        if let Some(p) = self.credentials.get(&hash, commit, now) {
            return Ok(Some(p));
        }
        let token = token.to_string();
        let principal = self
            .db
            .lookup(move |conn| auth::authenticate(conn, &token, now))
            .await?;
        if let Some(p) = &principal {
            self.credentials.remember(hash, p, commit, now);
        }
        Ok(principal)
    }

    /// Opens a session for an email and password (`POST /auth/login` and the web app's sign
    /// in). A wrong email and a wrong password fail alike, in the same time.
    pub async fn sign_in(
        &self,
        email: String,
        password: String,
        org_id: Option<String>,
    ) -> DomainResult<SignedIn> {
        let ttl = self.config.session_ttl.as_millis() as i64;
        let candidates = self
            .db
            .read(move |conn| users::login_candidates(conn, &email))
            .await?;
        let (user_id, org_id) =
            run_blocking(move || sessions::verify_login(candidates, &password, org_id.as_deref()))
                .await?;
        let now = self.clock.now_ms();
        self.db
            .write(move |tx| {
                let (token, expires_at) = sessions::open(tx, &user_id, &org_id, ttl, now)?;
                let user = users::get(tx, &org_id, &user_id)?;
                Ok(SignedIn {
                    token,
                    expires_at,
                    user,
                })
            })
            .await
    }
}
