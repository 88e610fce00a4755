//! The webhook worker: sends queued deliveries, signed per Standard Webhooks, with retries,
//! and refuses targets in private ranges (SSRF) unless the operator allowed them.
//!
//! Runs on its own threads (ureq is blocking). Each target is resolved once, every resolved
//! address is checked, and the connection goes only to those vetted addresses, so a DNS answer
//! that changes between check and connect (rebinding) cannot reach an internal service.

use crate::db::CachedRow;
use crate::db::Tx;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{params, OptionalExtension};
use sha2::Sha256;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::DefaultConnector;

use crate::clock::{Millis, DAY_MS};
use crate::domain::changes;
use crate::domain::events::Actor;
use crate::domain::DomainResult;
use crate::state::AppState;
use crate::targets::TargetPolicy;

/// Longest stretch of failures before an endpoint is disabled.
pub const DISABLE_AFTER_MS: Millis = 5 * DAY_MS;
/// Connections sending to one endpoint at once.
pub const PER_ENDPOINT_CONCURRENCY: usize = 4;
/// Deliveries one worker claims, sends (over one kept-alive connection) and records (in one
/// transaction) at a time.
pub const BATCH: usize = 32;
/// How much of a response body is kept for the delivery log.
const EXCERPT: usize = 512;

/// A target address the policy refuses: no retry can change that, so the delivery fails at once
/// with this reason instead of retrying for days.
#[derive(Debug)]
struct RefusedTarget(String);

impl std::fmt::Display for RefusedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusedTarget {}

/// Resolves once and hands back only vetted addresses, which the connector then uses as they
/// are: no second lookup can swap in another address.
#[derive(Debug)]
struct VettedResolver {
    policy: TargetPolicy,
    inner: DefaultResolver,
}

impl Resolver for VettedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Some((ip, why)) = addrs
            .iter()
            .find_map(|a| self.policy.refusal(a.ip()).map(|why| (a.ip(), why)))
        {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                RefusedTarget(format!("the host resolves to {ip}, which {why}")),
            )));
        }
        Ok(addrs)
    }
}

/// The HTTP client deliveries use: vetted addresses, no redirects, a timeout, statuses as values.
pub fn client(policy: TargetPolicy, timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("Clozup-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        VettedResolver {
            policy,
            inner: DefaultResolver::default(),
        },
    )
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by a `whsec_` secret.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap_or_default();
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// One due delivery, claimed.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    org_id: String,
    webhook_id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    event_id: String,
    payload: String,
    attempts: i64,
}

/// What one attempt came to.
enum Outcome {
    Delivered(u16),
    Gone,
    /// The host resolved into a refused range.
    Refused(String),
    Retry {
        status: Option<u16>,
        error: Option<String>,
        after: Option<Duration>,
    },
}

/// Claims up to `limit` due deliveries (marking them in flight), respecting the per-endpoint cap.
fn claim(state: &AppState, limit: usize, now: Millis) -> DomainResult<Vec<Job>> {
    // A cheap read first, so idle workers never take the write lock.
    let due: bool = state.db.blocking().read(|c| {
        Ok(c.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1)",
        )?
        .query_row(params![now], |r| r.get(0))?)
    })?;
    if !due {
        return Ok(Vec::new());
    }
    state.db.blocking().write(|tx| {
        let mut stmt = tx.prepare_cached(
            "SELECT d.id, d.org_id, d.webhook_id, w.url, w.secret,
                    CASE WHEN w.previous_secret_until > ?1 THEN w.previous_secret END,
                    d.event_id, d.payload, d.attempts
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 AND w.active = 1
             ORDER BY d.next_attempt_at, d.id LIMIT ?2",
        )?;
        let mut in_flight: std::collections::HashMap<String, usize> = {
            let mut counts = tx.prepare_cached(
                "SELECT webhook_id, COUNT(*) FROM webhook_deliveries WHERE status = 'in_flight' GROUP BY webhook_id",
            )?;
            let rows = counts.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let rows = stmt.query_map(params![now, (limit * 4) as i64], |r| {
            Ok(
                Job {
                    id: r.get(0)?,
                    org_id: r.get(1)?,
                    webhook_id: r.get(2)?,
                    url: r.get(3)?,
                    secret: r.get(4)?,
                    previous_secret: r.get(5)?,
                    event_id: r.get(6)?,
                    payload: r.get(7)?,
                    attempts: r.get(8)?,
                },
            )
        })?;
        let mut jobs = Vec::new();
        for row in rows {
            let job = row?;
            let n = in_flight.entry(job.webhook_id.clone()).or_insert(0);
            if *n >= PER_ENDPOINT_CONCURRENCY * BATCH || jobs.len() >= limit {
                continue;
            }
            *n += 1;
            jobs.push(job);
        }
        drop(stmt);
        for j in &jobs {
            tx.prepare_cached("UPDATE webhook_deliveries SET status = 'in_flight', updated_at = ?2 WHERE id = ?1")?
                .execute(params![j.id, now])?;
        }
        Ok(jobs)
    })
}

fn attempt(agent: &ureq::Agent, job: &Job, now: Millis) -> (Outcome, u64, Option<String>) {
    let timestamp = now / 1000;
    let mut sig = signature(&job.secret, &job.event_id, timestamp, &job.payload);
    if let Some(old) = &job.previous_secret {
        sig.push(' ');
        sig.push_str(&signature(old, &job.event_id, timestamp, &job.payload));
    }
    let started = Instant::now();
    let result = agent
        .post(&job.url)
        .header("content-type", "application/json")
        .header("webhook-id", &job.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sig)
        .send(job.payload.as_bytes());
    let latency = started.elapsed().as_millis() as u64;
    match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp
                .body_mut()
                .with_config()
                .limit(EXCERPT as u64 * 4)
                .read_to_string()
                .unwrap_or_default();
            let excerpt: String = body.chars().take(EXCERPT).collect();
            let outcome = match status {
                200..=299 => Outcome::Delivered(status),
                410 => Outcome::Gone,
                429 | 503 => Outcome::Retry {
                    status: Some(status),
                    error: None,
                    after: retry_after,
                },
                _ => Outcome::Retry {
                    status: Some(status),
                    error: None,
                    after: None,
                },
            };
            (outcome, latency, Some(excerpt))
        }
        Err(ureq::Error::Io(io))
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<RefusedTarget>()) =>
        {
            (Outcome::Refused(io.to_string()), latency, None)
        }
        Err(e) => (
            Outcome::Retry {
                status: None,
                error: Some(e.to_string()),
                after: None,
            },
            latency,
            None,
        ),
    }
}

/// Spreads a retry delay by up to ±10% so failing endpoints are not hit in lockstep.
fn jitter(delay: Duration) -> Duration {
    let mut b = [0u8; 2];
    crate::secrets::fill_random(&mut b);
    let unit = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX); // 0..1
    delay.mul_f64(0.9 + 0.2 * unit)
}

/// Records the outcomes of a batch of attempts in one transaction (one sync for the batch).
fn record_all(
    state: &AppState,
    results: Vec<(Job, Outcome, u64, Option<String>)>,
    now: Millis,
) -> DomainResult<()> {
    state.db.blocking().write(|tx| {
        for (job, outcome, latency, excerpt) in results {
            record(
                tx,
                &state.config.webhook_retry_schedule,
                &job,
                outcome,
                latency,
                excerpt,
                now,
            )?;
        }
        Ok(())
    })
}

fn record(
    tx: &Tx<'_>,
    schedule: &[Duration],
    job: &Job,
    outcome: Outcome,
    latency: u64,
    excerpt: Option<String>,
    now: Millis,
) -> DomainResult<()> {
    {
        let attempts = job.attempts + 1;
        match outcome {
            Outcome::Delivered(status) => {
                tx.execute(
                    "UPDATE webhook_deliveries SET status = 'succeeded', attempts = ?2, next_attempt_at = NULL,
                            last_status_code = ?3, last_error = NULL, last_latency_ms = ?4, response_excerpt = ?5, updated_at = ?6
                     WHERE id = ?1",
                    params![job.id, attempts, status, latency as i64, excerpt, now],
                )?;
                tx.execute(
                    "UPDATE webhooks SET failing_since = NULL WHERE id = ?1",
                    params![job.webhook_id],
                )?;
            }
            Outcome::Gone => {
                tx.execute(
                    "UPDATE webhook_deliveries SET status = 'failed', attempts = ?2, next_attempt_at = NULL,
                            last_status_code = 410, last_latency_ms = ?3, response_excerpt = ?4, updated_at = ?5
                     WHERE id = ?1",
                    params![job.id, attempts, latency as i64, excerpt, now],
                )?;
                disable(
                    tx,
                    &job.org_id,
                    &job.webhook_id,
                    "the endpoint answered 410 Gone",
                    now,
                )?;
            }
            Outcome::Refused(reason) => {
                tx.execute(
                    "UPDATE webhook_deliveries SET status = 'failed', attempts = ?2, next_attempt_at = NULL,
                            last_status_code = NULL, last_error = ?3, last_latency_ms = ?4, response_excerpt = NULL, updated_at = ?5
                     WHERE id = ?1",
                    params![job.id, attempts, reason, latency as i64, now],
                )?;
            }
            Outcome::Retry {
                status,
                error,
                after,
            } => {
                let failing_since: Option<i64> = tx
                    .cached_row(
                        "SELECT failing_since FROM webhooks WHERE id = ?1",
                        params![job.webhook_id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                let since = failing_since.unwrap_or(now);
                tx.execute(
                    "UPDATE webhooks SET failing_since = ?2 WHERE id = ?1",
                    params![job.webhook_id, since],
                )?;
                let next = schedule
                    .get(job.attempts as usize)
                    .map(|d| after.map_or(jitter(*d), |a| a.max(*d)));
                let (status_text, next_at) = match next {
                    Some(d) => ("pending", Some(now + d.as_millis() as i64)),
                    None => ("failed", None),
                };
                tx.execute(
                    "UPDATE webhook_deliveries SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_status_code = ?5,
                            last_error = ?6, last_latency_ms = ?7, response_excerpt = ?8, updated_at = ?9
                     WHERE id = ?1",
                    params![job.id, status_text, attempts, next_at, status.map(i64::from), error, latency as i64, excerpt, now],
                )?;
                if now - since >= DISABLE_AFTER_MS {
                    disable(
                        tx,
                        &job.org_id,
                        &job.webhook_id,
                        "deliveries failed for five days",
                        now,
                    )?;
                }
            }
        }
        Ok(())
    }
}

fn disable(
    tx: &Tx<'_>,
    org_id: &str,
    webhook_id: &str,
    reason: &str,
    now: Millis,
) -> DomainResult<()> {
    tx.execute(
        "UPDATE webhooks SET active = 0, disabled_reason = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1 AND active = 1",
        params![webhook_id, reason, now],
    )?;
    let webhook = crate::domain::webhooks::get(tx, org_id, webhook_id)?;
    changes::append(
        tx,
        org_id,
        &Actor::system(),
        "webhook.disabled",
        &webhook,
        None,
        now,
    )?;
    Ok(())
}

/// Runs the worker until shutdown: `threads` threads claim due deliveries and send them.
/// In-flight deliveries left by a previous process are made pending again first.
pub fn spawn(state: Arc<AppState>, threads: usize) {
    std::thread::spawn(move || start(state, threads));
}

fn start(state: Arc<AppState>, threads: usize) {
    if let Err(e) = state.db.blocking().write(|tx| {
        tx.execute(
            "UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'in_flight'",
            [],
        )?;
        Ok(())
    }) {
        tracing::warn!("could not resume in-flight webhook deliveries: {e}");
    }
    let agent = client(state.config.webhook_policy(), state.config.webhook_timeout);
    for _ in 0..threads.max(1) {
        let state = state.clone();
        let agent = agent.clone();
        std::thread::spawn(move || loop {
            if state.shutdown.is_triggered() {
                return;
            }
            let now = state.clock.now_ms();
            let seen = state.db.work_queued();
            let jobs = match claim(&state, BATCH, now) {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!("webhook worker could not claim deliveries: {e}");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                // Idle: until a commit queues a delivery, or the poll (retries coming due).
                state.db.wait_for_work(seen, state.config.webhook_poll);
                continue;
            }
            let results: Vec<_> = jobs
                .into_iter()
                .map(|job| {
                    let (outcome, latency, excerpt) = attempt(&agent, &job, state.clock.now_ms());
                    let of = match outcome {
                        Outcome::Delivered(_) => "delivered",
                        Outcome::Gone => "gone",
                        Outcome::Refused(_) => "refused",
                        Outcome::Retry { .. } => "retry",
                    };
                    let attempts = &crate::metrics::get().webhook_attempts;
                    attempts.get_or_create(&crate::metrics::Of { of }).inc();
                    (job, outcome, latency, excerpt)
                })
                .collect();
            if let Err(e) = record_all(&state, results, state.clock.now_ms()) {
                tracing::warn!("could not record webhook deliveries: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_signature() {
        // The example from the Standard Webhooks specification.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
