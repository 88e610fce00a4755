//! Test fixtures: a real server on a real socket over a real SQLite file, and a real HTTP client.

pub mod binary;
pub mod receiver;
pub mod smtp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clozup::clock::ManualClock;
use clozup::config::{parse_rate_limit, ServeConfig};
use clozup::db::Db;
use clozup::server::{first_run, listen, run};
use clozup::AppState;
use serde_json::{json, Value};

/// 2026-11-28T12:00:00Z: where every test's clock starts.
pub const START_MS: i64 = 1_795_867_200_000;

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(clozup::ids::new_id("clozup-test"));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// `data` of a success envelope, after checking the status.
    pub fn data(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self.json()["data"].clone()
    }

    /// Checks that this is exactly the error envelope of docs/api.md §3 with `status` and `code`,
    /// stamped with this response's request id; returns the error object.
    pub fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        let v = self.json();
        let obj = v.as_object().expect("envelope is an object");
        assert_eq!(
            obj.keys().collect::<Vec<_>>(),
            vec!["error"],
            "{}",
            self.body
        );
        let err = &v["error"];
        let mut keys: Vec<&String> = err.as_object().expect("error object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            vec!["code", "details", "message", "request_id"],
            "{}",
            self.body
        );
        assert_eq!(err["code"], code, "{}", self.body);
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(err["details"].is_array());
        assert_eq!(
            err["request_id"].as_str(),
            self.header("x-request-id"),
            "request_id must match X-Request-Id"
        );
        err.clone()
    }
}

/// The owner's password once [`TestServer::owner_session`] has set it.
pub const OWNER_PASSWORD: &str = "the owner's long passphrase";
/// The password of users made by [`TestServer::user_with_session`].
pub const USER_PASSWORD: &str = "correct horse battery staple";

/// A running server and a client for it.
pub struct TestServer {
    pub base: String,
    pub admin_key: String,
    pub state: Arc<AppState>,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    agent: ureq::Agent,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A response as the tests read it.
fn answer(mut resp: ureq::http::Response<ureq::Body>) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

impl TestServer {
    /// A server with test defaults: a generous rate limit, everything else as shipped.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// A server whose settings `adjust` changes first.
    pub fn start_with(adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = TempDir::new();
        let mut config = ServeConfig::with_db(dir.path().join("crm.sqlite"));
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.rate_limit = parse_rate_limit("10000/1ms").unwrap();
        // Tests run the signal sweep themselves, at the moments they choose.
        config.signal_sweep = Duration::from_secs(24 * 3600);
        adjust(&mut config);
        let db = Db::open(&config.db, &config.db_options()).expect("open db");
        let clock = Arc::new(ManualClock::new(START_MS));
        let admin_key = first_run(&db, &config, START_MS)
            .expect("first run")
            .expect("a new database gets a key");
        let state = Arc::new(AppState::new(db, config, clock.clone()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (acceptor, addr) = runtime.block_on(listen(state.config.bind)).expect("bind");
        runtime.spawn(run(state.clone(), acceptor));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            base: format!("http://{addr}"),
            admin_key,
            state,
            clock,
            dir,
            agent,
            runtime: Some(runtime),
        }
    }

    /// Records a `kind` activity on `deal_id` as the server itself writes one (an email received
    /// or opened, which no client may log), in the admin's organization at the test clock's now.
    pub fn record_system_activity(
        &self,
        deal_id: &str,
        kind: &str,
        subject: Option<&str>,
    ) -> clozup::domain::activities::Activity {
        let org_id = self.get("/org", &self.admin_key).data(200)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let details = clozup::domain::activities::Details {
            subject: subject.map(str::to_string),
            deal_id: Some(deal_id.to_string()),
            ..Default::default()
        };
        let kind = clozup::domain::terms::Term::parse(kind).expect("an activity type");
        let now = self.clock_now();
        self.state
            .db
            .blocking()
            .write(|tx| {
                clozup::domain::activities::record(
                    tx,
                    &org_id,
                    &clozup::domain::events::Actor::system(),
                    None,
                    kind,
                    details,
                    now,
                )
            })
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/')
            && !path.starts_with("/api/v1")
            && !path.starts_with("/t/")
            && !path.starts_with("/u/")
            && path != "/health"
            && path != "/llms.txt"
            && !path.starts_with("/mcp")
        {
            format!("{}/api/v1{path}", self.base)
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request; `path` is relative to `/api/v1` unless it starts with it.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let has_ct = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_ct {
            req = req.header("content-type", "application/json");
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .unwrap();
        answer(self.agent.run(req).expect("request failed"))
    }

    /// A request to the web app (`path` as it is, not under `/api/v1`) with the session
    /// `cookie` and a form body; redirects are answers here, not followed.
    pub fn page(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header("cookie", format!("clozup_session={c}"));
        }
        if form.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req
            .body(form.unwrap_or_default().as_bytes().to_vec())
            .unwrap();
        answer(agent.run(req).expect("request failed"))
    }

    pub fn get(&self, path: &str, key: &str) -> Resp {
        self.call("GET", path, Some(key), None, &[])
    }

    pub fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call(
            "POST",
            path,
            Some(key),
            Some(body.to_string().as_bytes()),
            &[],
        )
    }

    pub fn patch(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call(
            "PATCH",
            path,
            Some(key),
            Some(body.to_string().as_bytes()),
            &[],
        )
    }

    pub fn delete(&self, path: &str, key: &str) -> Resp {
        self.call("DELETE", path, Some(key), None, &[])
    }

    /// A new API key of the first organization with the given scopes, made straight in the
    /// database (so it costs no request against the rate limit).
    pub fn key_with(&self, scopes: &[&str]) -> String {
        use clozup::domain::{api_keys, auth, orgs};
        let scopes: Vec<auth::Scope> = scopes
            .iter()
            .map(|s| auth::Scope::parse(s).unwrap())
            .collect();
        let now = self.clock_now();
        self.state
            .db
            .blocking()
            .write(|tx| {
                let org_id = orgs::first_id(tx)?.unwrap();
                let input = api_keys::NewApiKey {
                    name: "test key".into(),
                    scopes: Some(scopes),
                    expires_in_seconds: None,
                };
                Ok(api_keys::create_as_owner(tx, &org_id, input, now)?.key)
            })
            .unwrap()
    }

    /// Logs in; the whole answer.
    pub fn login(&self, email: &str, password: &str) -> Resp {
        self.call(
            "POST",
            "/auth/login",
            None,
            Some(
                json!({"email": email, "password": password})
                    .to_string()
                    .as_bytes(),
            ),
            &[],
        )
    }

    /// A session of the first organization's owner (see [`TestServer::owner_session_of`]).
    pub fn owner_session(&self) -> String {
        self.owner_session_of(&self.admin_key)
    }

    /// A session of the owner of the organization `key` belongs to: the operator sets the
    /// owner's password (what `clozup users set-password` does; no API key can), then the
    /// owner logs in.
    pub fn owner_session_of(&self, key: &str) -> String {
        let org_id = self.get("/org", key).data(200)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let email = self.get("/users?role=owner", key).data(200)[0]["email"]
            .as_str()
            .unwrap()
            .to_string();
        let hashed = clozup::domain::users::hash_password(OWNER_PASSWORD).unwrap();
        let now = self.clock_now();
        self.state
            .db
            .blocking()
            .write(|tx| {
                clozup::domain::users::set_password_by_operator(tx, &org_id, &email, hashed, now)
            })
            .unwrap();
        let body = json!({"email": email, "password": OWNER_PASSWORD, "org_id": org_id});
        self.call(
            "POST",
            "/auth/login",
            None,
            Some(body.to_string().as_bytes()),
            &[],
        )
        .data(200)["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Adds a user with `role` and [`USER_PASSWORD`] as a signed-in admin (`session`) does;
    /// returns their id and a session of theirs.
    pub fn user_with_session(&self, session: &str, email: &str, role: &str) -> (String, String) {
        let id = self
            .post(
                "/users",
                session,
                json!({"email": email, "name": "Someone", "role": role, "password": USER_PASSWORD}),
            )
            .data(201)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let token = self.login(email, USER_PASSWORD).data(200)["token"]
            .as_str()
            .unwrap()
            .to_string();
        (id, token)
    }

    pub fn clock_now(&self) -> i64 {
        clozup::clock::Clock::now_ms(self.clock.as_ref())
    }

    /// A second organization in the same database, and its admin key.
    pub fn second_org(&self) -> String {
        self.state
            .db
            .blocking()
            .write(|tx| {
                let (_, key) = clozup::domain::orgs::found_with_admin_key(
                    tx,
                    "Other Org",
                    "boss@other.example",
                    START_MS,
                )?;
                Ok(key)
            })
            .unwrap()
    }

    /// Runs a read-only SQL query returning one integer, to check what is stored.
    pub fn count(&self, sql: &str) -> i64 {
        let sql = sql.to_string();
        self.state
            .db
            .blocking()
            .read(|c| Ok(c.query_row(&sql, [], |r| r.get(0))?))
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.shutdown.trigger();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
