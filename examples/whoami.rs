//! A minimal agent client: who am I, and a safely retried write.
//!
//! ```sh
//! CLOZUP_URL=http://127.0.0.1:8080 CLOZUP_KEY=clz_... cargo run --example whoami
//! ```
//!
//! It shows the two habits every agent should have with this API: read the error envelope's
//! `code` rather than the HTTP text, and send an `Idempotency-Key` with every POST so a retry
//! after a timeout can never create a second copy.

use std::time::Duration;

use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("CLOZUP_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("CLOZUP_KEY").map_err(|_| "set CLOZUP_KEY to an API key (clz_...)")?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();

    let mut me = agent
        .get(format!("{base}/api/v1/me"))
        .header("Authorization", format!("Bearer {key}"))
        .call()?;
    let body: Value = me.body_mut().read_json()?;
    if let Some(err) = body.get("error") {
        return Err(format!("{}: {}", err["code"], err["message"]).into());
    }
    let data = &body["data"];
    println!(
        "{} <{}> in {} ({}), scopes {}",
        data["user"]["name"],
        data["user"]["email"],
        data["organization"]["name"],
        data["organization"]["currency"],
        data["credential"]["scopes"]
    );

    // A retried POST with the same key is answered from the first attempt.
    let idempotency_key = format!("whoami-example-{}", std::process::id());
    for attempt in 1..=2 {
        let mut resp = agent
            .post(format!("{base}/api/v1/api-keys"))
            .header("Authorization", format!("Bearer {key}"))
            .header("Idempotency-Key", &idempotency_key)
            .send_json(json!({"name": "made by the whoami example", "scopes": ["read"]}))?;
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let body: Value = resp.body_mut().read_json()?;
        match body.get("error") {
            Some(err) => println!("attempt {attempt}: {} ({})", err["code"], err["message"]),
            None => println!(
                "attempt {attempt}: key {} (replayed: {replayed})",
                body["data"]["id"]
            ),
        }
    }
    Ok(())
}
