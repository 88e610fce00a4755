//! `/llms.txt`: a short guide to the API for language models, after the llms.txt convention (a
//! Markdown page at the root: a title, a one-line summary, then sections of links). It is made
//! from the OpenAPI document — its description, its tags and every operation's summary — so it
//! says what the server does and nothing it does not.

use serde_json::Value;

/// The daily agent loop (`examples/agent_loop.rs`), by operation id, with what each step is for.
/// A test checks that every id names an operation of the document.
pub const DAILY_LOOP: &[(&str, &str)] = &[
    (
        "get_agenda",
        "the day in one read: signals, deals at risk, tasks overdue and due today, unanswered \
         email (or the next two lists, one at a time)",
    ),
    (
        "list_signals",
        "the buying signals that call for action (`score_min=70`)",
    ),
    (
        "list_at_risk_deals",
        "the deals at risk, riskiest first, each with its factors and suggested action",
    ),
    (
        "get_deal_intelligence",
        "one deal's risk, its factors with their points, and the one next step",
    ),
    (
        "list_deal_memory",
        "what earlier runs learnt about the deal (facts, preferences, commitments)",
    ),
    (
        "create_activity",
        "log what was done (a call, an email, a meeting) on the deal",
    ),
    (
        "create_deal_memory",
        "record what this run learnt, for the next one",
    ),
    (
        "move_deal",
        "move a deal whose buyer engaged to its next stage (send `If-Match`)",
    ),
    ("dismiss_signal", "dismiss the signal acted on"),
];

/// The guide, for a server whose public address is `base` (no trailing slash).
pub fn guide(spec: &Value, base: &str) -> String {
    let api = format!("{base}/api/v1");
    let info = &spec["info"];
    let description = info["description"].as_str().unwrap_or_default();
    let (summary, rest) = description.split_once("\n\n").unwrap_or((description, ""));
    let mut out = format!(
        "# {} {}\n\n> {summary}\n\n{rest}\n\n\
         Every path below is under `{api}`. The OpenAPI document describes each operation, \
         field and rule exactly: {api}/public/docs (interactive: {api}/public/docs/ui). \
         Writes take `dry_run=true` to rehearse (validated and answered, nothing stored); a \
         refused request changes nothing, and its error names the field and what to fix.\n",
        info["title"].as_str().unwrap_or("Clozup API"),
        info["version"].as_str().unwrap_or_default(),
    );
    out.push_str(&format!(
        "\nAgents that speak the Model Context Protocol connect to {base}/mcp (Streamable HTTP, \
         the same `Authorization: Bearer` key) and get these operations as tools, named by \
         their ids below, with the same rules; `?toolsets=` chooses among the sections below \
         (default: the daily loop and everyday work). The loop is also its prompt \
         `daily_loop`.\n"
    ));
    let operations = operations(spec);
    out.push_str("\n## The daily agent loop\n\n");
    for (n, (id, what)) in DAILY_LOOP.iter().enumerate() {
        if let Some(op) = operations.iter().find(|op| op.id == *id) {
            out.push_str(&format!(
                "{}. `{} {}` ({id}): {what}\n",
                n + 1,
                op.method,
                op.path
            ));
        }
    }
    for tag in spec["tags"].as_array().into_iter().flatten() {
        let name = tag["name"].as_str().unwrap_or_default();
        let listed: Vec<&Operation> = operations.iter().filter(|op| op.tag == name).collect();
        if listed.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {name}\n\n"));
        if let Some(about) = tag["description"].as_str() {
            out.push_str(&format!("{about}\n\n"));
        }
        for op in listed {
            out.push_str(&format!(
                "- `{} {}` ({}): {}\n",
                op.method, op.path, op.id, op.summary
            ));
        }
    }
    out
}

/// What the guide says of an operation.
struct Operation {
    id: String,
    method: String,
    path: String,
    tag: String,
    summary: String,
}

/// The document's operations, in its order.
fn operations(spec: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, methods) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in methods.as_object().into_iter().flatten() {
            let text = |key: &str| op[key].as_str().unwrap_or_default().to_string();
            out.push(Operation {
                id: text("operationId"),
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                tag: op["tags"][0].as_str().unwrap_or_default().to_string(),
                summary: text("summary"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        serde_json::from_str(&crate::api::spec_json()).unwrap()
    }

    #[test]
    fn every_step_of_the_loop_names_an_operation_of_the_document() {
        let ids: Vec<String> = operations(&spec()).into_iter().map(|op| op.id).collect();
        for (id, _) in DAILY_LOOP {
            assert!(ids.iter().any(|known| known == id), "{id} is no operation");
        }
    }

    #[test]
    fn the_guide_lists_every_operation_once_under_its_tag_and_the_whole_loop() {
        let spec = spec();
        let guide = guide(&spec, "https://crm.example");
        let ops = operations(&spec);
        assert!(ops.len() > 100);
        for op in &ops {
            let line = format!("- `{} {}` ({}): ", op.method, op.path, op.id);
            assert_eq!(guide.matches(&line).count(), 1, "{line}");
        }
        let steps = guide
            .lines()
            .filter(|l| {
                l.split_once(". `")
                    .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
            })
            .count();
        assert_eq!(steps, DAILY_LOOP.len());
        assert!(guide.starts_with("# Clozup API "));
        assert!(guide.contains("https://crm.example/api/v1/public/docs"));
        assert!(guide.contains("https://crm.example/mcp "));
    }
}
