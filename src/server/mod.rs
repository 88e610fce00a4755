//! Assembling and running the server: routes, first-run setup, logging, graceful shutdown.

use std::io::Write;
use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::http::StatusCode;
use std::net::SocketAddr;

use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::web::Json;
use poem::{get, handler, Endpoint, EndpointExt, IntoResponse, Route};
use serde_json::json;

use crate::api::{self, gate::Gate};
use crate::clock::SystemClock;
use crate::config::{LogFormat, ServeConfig};
use crate::db::{Db, LATEST_VERSION};
use crate::domain::{orgs, DomainError};
use crate::mcp;
use crate::state::AppState;

mod links;

/// Where the docs page loads RapiDoc from.
const RAPIDOC_PATH: &str = "/api/v1/public/docs/ui/rapidoc-min.js";

/// RapiDoc, gzip-compressed, sent as it is (assets/README.md): 176 KB of the binary, not 621.
const RAPIDOC_GZ: &[u8] = include_bytes!("../../assets/rapidoc-min.js.gz");

/// The interactive docs page: RapiDoc on the document `/api/v1/public/docs` serves, every byte
/// from this server (no web fonts or scripts from a third party), so it works offline.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clozup API</title>
<script src="/api/v1/public/docs/ui/rapidoc-min.js"></script>
</head>
<body>
<rapi-doc spec-url="/api/v1/public/docs" theme="light" render-style="focused" show-header="false"
  show-components="true" allow-try="true" allow-authentication="true"
  schema-description-expanded="true"></rapi-doc>
</body>
</html>
"#;

/// The whole route tree behind the gate: the API and its docs under `/api/v1`, the MCP server
/// at `/mcp`, `/health`, `/llms.txt`, and the web app at `/`.
pub fn build_app(state: Arc<AppState>) -> impl Endpoint + 'static {
    let (routes, core) = assemble(&state);
    Split {
        mcp: mcp::endpoint(core),
        rest: routes,
    }
    .with(Gate::new(state))
}

/// The MCP server's core alone, for `clozup mcp` (stdio): tool calls go through the same gate
/// and routes as `clozup serve`'s.
pub fn mcp_core(state: Arc<AppState>) -> Arc<mcp::Core> {
    assemble(&state).1
}

/// Every route but `/mcp`, without the gate; and the MCP core, whose tool calls pass the gate
/// into those routes.
fn assemble(
    state: &Arc<AppState>,
) -> (Arc<impl Endpoint<Output = poem::Response>>, Arc<mcp::Core>) {
    let service = api::service();
    let spec = api::spec_json();
    let document: serde_json::Value = serde_json::from_str(&spec).unwrap_or_default();
    // Absolute links when the public address is known; else paths on this server.
    let base = state.config.public_url.as_deref().unwrap_or("");
    let guide = api::llms::guide(&document, base.trim_end_matches('/'));
    let spec_for_mcp = spec.clone();
    // Shared, not boxed: an HTTP request reaches the routes without a dynamic call.
    let routes = Arc::new(
        Route::new()
            .at("/llms.txt", text("text/plain; charset=utf-8", guide))
            .at(
                "/api/v1/public/docs",
                text("application/json; charset=utf-8", spec),
            )
            .at(
                "/api/v1/public/docs/ui",
                get(make_sync(|_| poem::web::Html(DOCS_PAGE))),
            )
            .at(RAPIDOC_PATH, get(rapidoc))
            .nest("/api/v1", service)
            .at("/health", get(health))
            .at("/t/:token", get(links::open_pixel))
            .at(
                "/u/:token",
                get(links::unsubscribe_page).post(links::unsubscribe),
            )
            .nest("/", crate::web::routes())
            .data(state.clone()),
    );
    let gated: mcp::Api = Arc::from(routes.clone().with(Gate::new(state.clone())).boxed());
    (routes, mcp::Core::new(spec_for_mcp, gated))
}

/// `/mcp` to the MCP server, everything else to the routes.
struct Split<M, R> {
    mcp: M,
    rest: R,
}

impl<M, R> Endpoint for Split<M, R>
where
    M: Endpoint<Output = poem::Response>,
    R: Endpoint<Output = poem::Response>,
{
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        if req.uri().path() == api::gate::MCP_PATH {
            self.mcp.call(req).await
        } else {
            self.rest.call(req).await
        }
    }
}

/// A GET route that answers `body`, made once at start, as `content_type`.
fn text(content_type: &'static str, body: String) -> impl Endpoint {
    get(make_sync(move |_| {
        poem::Response::builder()
            .content_type(content_type)
            .body(body.clone())
    }))
}

/// RapiDoc's script, compressed. A client that refuses gzip outright (an `Accept-Encoding`
/// without it, or with `q=0`) gets 400 (a header value this route cannot serve; docs/api.md has no
/// 406): the server keeps no uncompressed copy. Browsers, the page's only reader, take gzip.
#[handler]
fn rapidoc(req: &poem::Request) -> poem::Response {
    let takes_gzip = req
        .headers()
        .get(poem::http::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(accepts_gzip);
    if !takes_gzip {
        return api::error::ApiError::bad_request(
            "this script is served gzip-compressed only: send Accept-Encoding: gzip",
        )
        .into_response();
    }
    poem::Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(poem::http::header::CONTENT_ENCODING, "gzip")
        .header(poem::http::header::VARY, "Accept-Encoding")
        .header(poem::http::header::CACHE_CONTROL, "public, max-age=86400")
        .body(RAPIDOC_GZ)
}

/// Whether an `Accept-Encoding` value allows gzip (RFC 9110 §12.5.3): `gzip` (or `x-gzip`) with
/// a weight above zero, or, when gzip is not named, `*` with a weight above zero.
fn accepts_gzip(value: &str) -> bool {
    let mut any = false;
    for item in value.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("").to_ascii_lowercase();
        let weight = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => return weight > 0.0,
            "*" => any = weight > 0.0,
            _ => {}
        }
    }
    any
}

/// Liveness and readiness: the version, and whether the database answers.
#[handler]
async fn health(state: poem::web::Data<&Arc<AppState>>) -> poem::Response {
    let db = state
        .db
        .read(|conn| {
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            Ok(version)
        })
        .await;
    let (status, database) = match db {
        Ok(version) => (
            StatusCode::OK,
            json!({"status": "ok", "schema_version": version}),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "error": e.to_string()}),
        ),
    };
    let ok = status == StatusCode::OK;
    Json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "database": database,
        "email": {
            "transport": state.mail.name(),
            "inbound": state.config.inbound_token.is_some(),
        },
    }))
    .with_status(status)
    .into_response()
}

/// Installs the global log subscriber (text or JSON lines on stderr).
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// On a database with no organization yet: founds one with its owner and default pipeline and
/// returns the owner's first admin key, which the caller shows once.
pub fn first_run(db: &Db, config: &ServeConfig, now: i64) -> Result<Option<String>, DomainError> {
    let org_name = config.org_name.clone();
    let owner_email = config.owner_email.clone();
    db.blocking().write(|tx| {
        if orgs::first_id(tx)?.is_some() {
            return Ok(None);
        }
        let (_, key) = orgs::found_with_admin_key(tx, &org_name, &owner_email, now)?;
        Ok(Some(key))
    })
}

/// Writes a secret to a new file readable only by its owner.
pub fn write_secret_file(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Runs `clozup serve` until SIGINT or SIGTERM.
pub async fn serve(config: ServeConfig) -> Result<(), String> {
    let started = std::time::Instant::now();
    // The certificate first: files that do not load stop the start before anything is written.
    let tls = match config.tls_files() {
        Some(files) => Some((crate::tls::Current::load(&files)?, files)),
        None => None,
    };
    on_sighup(tls.clone()).map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
    let tls = tls.map(|(current, _)| current);
    // Kept until the process ends: `clozup restore` refuses to replace a file being served.
    let _in_use = crate::db::hold(&config.db)?;
    let db = Db::open(&config.db, &config.db_options()).map_err(|e| e.to_string())?;
    let clock = Arc::new(SystemClock);
    let now = crate::clock::Clock::now_ms(clock.as_ref());
    let first_key = {
        let db = db.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || first_run(&db, &config, now))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("first-run setup failed: {e}"))?
    };
    if let Some(key) = &first_key {
        if let Some(path) = &config.admin_key_file {
            write_secret_file(path, key)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        eprintln!(
            "\nA new organization was created. Its admin API key (shown once, store it now):\n\n    {key}\n\n\
             To sign in as its owner, {}, give them a password first:\n\n    \
             clozup users set-password --db {} --email {}\n",
            config.owner_email,
            config.db.display(),
            config.owner_email
        );
        if config.demo {
            let db = db.clone();
            let email_domain = config.email_domain.clone();
            let report = tokio::task::spawn_blocking(move || {
                let org = db
                    .blocking()
                    .read(crate::domain::orgs::first_id)?
                    .ok_or_else(|| {
                        crate::domain::error::DomainError::Internal("no organization".into())
                    })?;
                crate::seed::seed(
                    &db,
                    &org,
                    crate::seed::Sizes::DEMO,
                    42,
                    now,
                    true,
                    &email_domain,
                )
                .map_err(crate::domain::error::DomainError::Internal)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("demo data could not be written: {e}"))?;
            tracing::info!(
                leads = report.leads,
                deals = report.deals,
                activities = report.activities,
                "demo organization filled"
            );
        }
    } else if config.demo {
        tracing::info!("--demo: the database already has an organization; serving it as it is");
    }
    let state = Arc::new(AppState::new(db, config.clone(), clock));
    let metrics = match config.metrics_bind {
        Some(addr) => Some(serve_metrics(state.clone(), addr).await?),
        None => None,
    };
    let (acceptor, addr) = listen(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    // Registered here, before READY=1 is said: a stop asked for right after the start (a
    // `systemctl stop` at once) must drain, not meet the default action that kills the process.
    let stop_signal = stop_signal().map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let signal_state = state.clone();
    tokio::spawn(async move {
        stop_signal.await;
        tracing::info!("shutting down: draining requests");
        crate::systemd::notify("STOPPING=1");
        signal_state.shutdown.trigger();
    });
    tracing::info!(
        bind = %addr,
        tls = tls.is_some(),
        metrics = metrics.map(|a| a.to_string()),
        db = %config.db.display(),
        schema_version = LATEST_VERSION,
        ready_ms = started.elapsed().as_millis() as u64,
        "clozup {} listening",
        env!("CARGO_PKG_VERSION")
    );
    crate::systemd::notify("READY=1");
    let served = match tls {
        Some(current) => run(state, crate::tls::TlsAcceptor::new(acceptor, current)).await,
        None => run(state, acceptor).await,
    };
    served.map_err(|e| format!("server error: {e}"))
}

/// SIGHUP (`systemctl reload`) re-reads the TLS certificate when there is one, and never stops
/// the server: a renewal is picked up without a restart, and a reload of a server without TLS
/// is harmless. A certificate that does not load is logged, and the one in use stays.
fn on_sighup(tls: Option<(crate::tls::Current, crate::tls::TlsFiles)>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match &tls {
                None => tracing::info!("SIGHUP: nothing to reload (no --tls-cert)"),
                Some((current, files)) => match current.reload(files) {
                    Ok(()) => {
                        tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded")
                    }
                    Err(e) => {
                        tracing::error!("TLS certificate not reloaded, the old one stays: {e}")
                    }
                },
            }
        }
    });
    Ok(())
}

/// Serves `/metrics` on `addr`, apart from the API, until shutdown; returns the address bound.
pub async fn serve_metrics(state: Arc<AppState>, addr: SocketAddr) -> Result<SocketAddr, String> {
    let (acceptor, local) = listen(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    if !local.ip().is_loopback() {
        tracing::warn!(metrics = %local, "/metrics answers without a key beyond this machine: keep its port to your monitoring");
    }
    let app = Route::new()
        .at("/metrics", get(metrics_page))
        .data(state.clone());
    tokio::spawn(async move {
        let stop = async move { state.shutdown.wait().await };
        if let Err(e) = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, stop, Some(std::time::Duration::from_secs(1)))
            .await
        {
            tracing::error!("the metrics listener stopped: {e}");
        }
    });
    Ok(local)
}

/// `GET /metrics`: the Prometheus text format, with the backlogs read from the database now.
#[handler]
async fn metrics_page(state: poem::web::Data<&Arc<AppState>>) -> poem::Response {
    let m = crate::metrics::get();
    m.sse_open.set(state.streams.open_count() as i64);
    let backlogs = state
        .db
        .read(|c| {
            Ok((
                crate::domain::outbox::backlog(c)?,
                crate::domain::email::backlog(c)?,
            ))
        })
        .await;
    match backlogs {
        Ok((webhooks, emails)) => {
            for (family, counts, states) in [
                (&m.webhook_backlog, webhooks, ["pending", "in_flight"]),
                (&m.email_backlog, emails, ["queued", "sending"]),
            ] {
                for of in states {
                    let n = counts.iter().find(|(s, _)| s == of).map_or(0, |(_, n)| *n);
                    family.get_or_create(&crate::metrics::Of { of }).set(n);
                }
            }
        }
        Err(e) => tracing::warn!("metrics: the backlogs could not be read: {e}"),
    }
    poem::Response::builder()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(crate::metrics::render())
}

/// Binds `addr` (port 0 picks a free one) and returns the listener with its real address.
pub async fn listen(addr: SocketAddr) -> std::io::Result<(TcpAcceptor, SocketAddr)> {
    let acceptor = TcpListener::bind(addr).into_acceptor().await?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    Ok((acceptor, local))
}

/// Serves the app on `acceptor` until `state.shutdown` fires and its drain ends (see
/// [`crate::shutdown::Shutdown`]): requests in flight finish within the grace period, the ones that arrive
/// meanwhile get 503.
pub async fn run(state: Arc<AppState>, acceptor: impl Acceptor + 'static) -> std::io::Result<()> {
    spawn_housekeeping(state.clone());
    for cidr in &state.config.webhook_allow_cidr {
        tracing::warn!(range = ?cidr, "webhooks may reach this private range (--webhook-allow-cidr)");
    }
    crate::webhook_worker::spawn(state.clone(), state.config.webhook_workers);
    crate::mail_worker::spawn(state.clone(), state.mail.clone());
    crate::campaign_worker::spawn(state.clone());
    crate::backup_worker::spawn(state.clone());
    let fanout = state.clone();
    tokio::spawn(async move { fanout.bus.run(fanout.db.clone(), &fanout.shutdown).await });
    let grace = state.config.shutdown_grace;
    // What is still running once the drain ends (past the grace period) may take as long as a
    // database call can wait on a lock, which then answers 503 itself; after that it is cut.
    let cut_off = state.config.busy_timeout + std::time::Duration::from_secs(1);
    let app = build_app(state.clone());
    poem::Server::new_with_acceptor(api::wire::EnvelopeAcceptor(acceptor))
        .run_with_graceful_shutdown(
            app,
            async move { state.shutdown.drained(grace).await },
            Some(cut_off),
        )
        .await
}

/// Periodic work: the buying-signal sweep, first at start (a server started on existing data
/// shows its time-based signals from the first second, not a period later); hourly, clean-up of
/// expired idempotency records and pruning of the event log to its retention.
fn spawn_housekeeping(state: Arc<AppState>) {
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweeper.config.signal_sweep);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = sweeper.shutdown.wait() => return,
            }
            let db = sweeper.db.clone();
            let now = sweeper.clock.now_ms();
            let started = std::time::Instant::now();
            match crate::db::run_blocking(move || crate::domain::signals::sweep_all(&db, now)).await
            {
                // The start-up work ends with the first sweep, said always: an operator (and the
                // benchmark's idle-memory figure) can tell a server still reading its data from
                // one at rest.
                Ok(o) if first => tracing::info!(
                    detected = o.detected,
                    resolved = o.resolved,
                    ms = started.elapsed().as_millis() as u64,
                    "start-up sweep finished"
                ),
                Ok(o) if o.detected + o.resolved > 0 => {
                    tracing::info!(detected = o.detected, resolved = o.resolved, "signal sweep")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("signal sweep failed: {e}"),
            }
            first = false;
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = state.shutdown.wait() => return,
            }
            let now = state.clock.now_ms();
            if let Err(e) = state
                .db
                .write(move |tx| crate::domain::idempotency::purge_expired(tx, now))
                .await
            {
                tracing::warn!("idempotency clean-up failed: {e}");
            }
            let db = state.db.clone();
            let before = now - state.config.event_retention.as_millis() as i64;
            match crate::db::run_blocking(move || crate::domain::events::prune(&db, before)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "event log pruned to its retention"),
                Err(e) => tracing::warn!("event log pruning failed: {e}"),
            }
        }
    });
}

/// Waits for SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called, not
/// when the future is first polled.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
