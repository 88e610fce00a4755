//! The daily agent loop, against a running Clozup server:
//!
//! 1. read the buying signals that call for action (score ≥ 70);
//! 2. read the deals at risk, with the intelligence that explains each;
//! 3. read each risky deal's memory, so today's run starts from what earlier runs learned;
//! 4. log an activity and write a memory entry recording what the agent concluded;
//! 5. move forward the deals whose buyer just replied or is highly engaged, and dismiss the
//!    signal it acted on.
//!
//! ```sh
//! CLOZUP_URL=http://127.0.0.1:8080 CLOZUP_KEY=clz_... cargo run --example agent_loop
//! ```
//!
//! Every write carries an `Idempotency-Key` built from the day and the deal, so running the
//! loop twice in a day (or retrying after a timeout) never writes twice.

use std::time::Duration;

use serde_json::{json, Value};

struct Client {
    base: String,
    key: String,
    agent: ureq::Agent,
}

impl Client {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, String> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.key));
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let bytes = match &body {
            Some(b) => {
                req = req.header("Content-Type", "application/json");
                b.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        let mut resp = self
            .agent
            .run(req.body(bytes).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let value: Value = resp
            .body_mut()
            .read_json()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        match value.get("error") {
            Some(err) => Err(format!(
                "{method} {path}: {} ({})",
                err["code"], err["message"]
            )),
            None => Ok(value),
        }
    }
}

#[allow(dead_code)] // the integration test runs `run` itself
fn main() {
    let base = std::env::var("CLOZUP_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let Ok(key) = std::env::var("CLOZUP_KEY") else {
        eprintln!("set CLOZUP_KEY to an API key with read and write scopes");
        std::process::exit(2);
    };
    // One run a day: the day number makes the idempotency keys of today's writes.
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    match run(&base, &key, &format!("day-{day}")) {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("agent loop failed: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs the loop once; `today` names the run in idempotency keys. Returns the closing summary.
pub fn run(base: &str, key: &str, today: &str) -> Result<String, String> {
    let client = Client {
        base: base.trim_end_matches('/').to_string(),
        key: key.to_string(),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into(),
    };

    println!("== Signals that call for action (score ≥ 70)");
    let signals = client.call("GET", "/signals?score_min=70&per_page=50", None, None)?;
    let signals = signals["data"].as_array().cloned().unwrap_or_default();
    for s in &signals {
        println!(
            "  [{}] {} — {} (deal {})",
            s["score"],
            s["type"],
            s["title"].as_str().unwrap_or(""),
            s["deal_id"]
        );
    }
    if signals.is_empty() {
        println!("  none");
    }

    println!("== Deals at risk");
    let at_risk = client.call("GET", "/deals/at-risk?per_page=10", None, None)?;
    let at_risk = at_risk["data"].as_array().cloned().unwrap_or_default();
    if at_risk.is_empty() {
        println!("  none");
    }
    let mut actions = 0;
    for intel in &at_risk {
        let deal_id = intel["deal_id"].as_str().unwrap_or_default();
        println!(
            "  {deal_id}: risk {} ({}) because {}",
            intel["risk_score"],
            intel["risk_level"].as_str().unwrap_or(""),
            intel["risk_factors"]
                .as_array()
                .map(|f| f
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; "))
                .unwrap_or_default()
        );
        let memory = client.call(
            "GET",
            &format!("/deals/{deal_id}/memory?per_page=5"),
            None,
            None,
        )?;
        let known = memory["meta"]["total"].as_i64().unwrap_or(0);
        println!(
            "    memory: {known} entries{}",
            memory["data"][0]["content"]
                .as_str()
                .map(|c| format!(", latest: {c}"))
                .unwrap_or_default()
        );
        let action = intel["suggested_action"]
            .as_str()
            .unwrap_or("Review the deal");
        client.call(
            "POST",
            "/activities",
            Some(json!({"type": "other", "deal_id": deal_id, "subject": "Agent review", "body": format!("Suggested: {action}")})),
            Some(&format!("{today}-review-{deal_id}")),
        )?;
        client.call(
            "POST",
            &format!("/deals/{deal_id}/memory"),
            Some(json!({
                "content": format!("Risk {} ({}): {}. Next: {action}", intel["risk_score"], intel["risk_level"].as_str().unwrap_or(""),
                    intel["risk_factors"].as_array().map(|f| f.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")).unwrap_or_default()),
                "kind": "summary",
                "tags": ["agent-review"],
                "source": "agent_loop example",
                "confidence": 0.8
            })),
            Some(&format!("{today}-memory-{deal_id}")),
        )?;
        println!("    logged a review activity and a memory entry; next step: {action}");
        actions += 2;
    }

    println!("== Moving engaged deals forward");
    let mut moved = 0;
    for s in signals
        .iter()
        .filter(|s| s["type"] == "email_replied" || s["type"] == "high_engagement")
    {
        let Some(deal_id) = s["deal_id"].as_str() else {
            continue;
        };
        let deal = client.call("GET", &format!("/deals/{deal_id}"), None, None)?["data"].clone();
        if deal["status"] != "open" {
            continue;
        }
        let stages = client.call(
            "GET",
            &format!(
                "/deals/stages?pipeline_id={}",
                deal["pipeline_id"].as_str().unwrap_or("")
            ),
            None,
            None,
        )?;
        let next = stages["data"].as_array().into_iter().flatten().find(|st| {
            st["kind"] == "open" && st["position"].as_i64() > deal["stage"]["position"].as_i64()
        });
        let Some(next) = next else { continue };
        client.call(
            "POST",
            &format!("/deals/{deal_id}/move"),
            Some(json!({"stage_id": next["id"]})),
            Some(&format!("{today}-move-{deal_id}")),
        )?;
        // The signal is acted on: dismiss it, so tomorrow's run does not move the deal again.
        client.call(
            "POST",
            &format!("/signals/{}/dismiss", s["id"].as_str().unwrap_or("")),
            None,
            None,
        )?;
        println!(
            "  {deal_id}: {} → {} because {}",
            deal["stage_name"].as_str().unwrap_or(""),
            next["name"].as_str().unwrap_or(""),
            s["title"].as_str().unwrap_or("")
        );
        moved += 1;
    }
    if moved == 0 {
        println!("  no engaged deal to move");
    }
    Ok(format!(
        "== Done: {} signals read, {} risky deals reviewed, {actions} writes, {moved} deals moved",
        signals.len(),
        at_risk.len()
    ))
}
