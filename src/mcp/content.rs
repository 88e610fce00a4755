//! What the MCP server offers besides tools: its instructions, the daily agent loop as a
//! prompt, and deals and leads as resources (`clozup://deals/{id}`, `clozup://leads/{id}`),
//! each read through the API as the caller.

use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, Prompt, PromptMessage, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, Role,
};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};

use super::tools::{Catalog, DEFAULT_TOOLSET};
use super::{Caller, Core};
use crate::api::llms::DAILY_LOOP;

/// The daily loop's prompt.
const DAILY_LOOP_PROMPT: &str = "daily_loop";

/// How many deals and leads `resources/list` offers (the most recently updated of each); any
/// other is read by its URI.
const RECENT: usize = 20;

/// What a client shows its model about this server when it connects.
pub fn instructions(catalog: &Catalog) -> String {
    format!(
        "Clozup is a sales CRM: leads, companies, deals in pipeline stages, tasks, activities, \
         notes, email, campaigns, with deal risk, lead scores and buying signals computed by \
         rules. Each tool is one operation of its REST API, with the same rules: writes take \
         `dry_run: true` to rehearse and `idempotency_key` to make a retry safe; updates take \
         `if_match` (an object's `version`) to refuse a lost update. A failed call changes \
         nothing, and its error names the argument to fix. Start the day with `get_agenda` (or \
         the `{DAILY_LOOP_PROMPT}` prompt). This connection lists the default toolset ({} tools); \
         connect with `?toolsets=` (or the X-MCP-Toolsets header) naming any of: all, default, \
         {}.",
        DEFAULT_TOOLSET.len(),
        catalog.toolsets.join(", ")
    )
}

/// The prompts.
pub fn prompts() -> Vec<Prompt> {
    let prompt = json!({
        "name": DAILY_LOOP_PROMPT,
        "title": "Work the day's pipeline",
        "description": "The daily agent loop: read the agenda, act on buying signals and deals \
                        at risk, log what was done, remember what was learnt, move deals forward.",
        "arguments": [{
            "name": "owner_id",
            "description": "Work one owner's day (a user id, `usr_…`); the whole organization's \
                            when left out.",
            "required": false
        }]
    });
    serde_json::from_value(prompt).into_iter().collect()
}

/// The prompt `request` names, with its arguments filled in.
pub fn prompt(request: &GetPromptRequestParams) -> Result<GetPromptResult, McpError> {
    if request.name != DAILY_LOOP_PROMPT {
        return Err(McpError::invalid_params(
            format!(
                "`{}` is not a prompt of this server; it has `{DAILY_LOOP_PROMPT}`",
                request.name
            ),
            None,
        ));
    }
    let owner = request
        .arguments
        .as_ref()
        .and_then(|a| a.get("owner_id"))
        .and_then(Value::as_str)
        .filter(|o| !o.is_empty());
    let whose = match owner {
        Some(owner) => format!(
            "the deals and leads of owner `{owner}` (pass `owner_id: \"{owner}\"` to `get_agenda`)"
        ),
        None => "the whole organization".to_string(),
    };
    let mut text = format!(
        "Work today's sales pipeline in Clozup for {whose}, with its tools, in this order:\n\n"
    );
    for (n, (tool, what)) in DAILY_LOOP.iter().enumerate() {
        text.push_str(&format!("{}. `{tool}`: {what}\n", n + 1));
    }
    text.push_str(
        "\nFor each buying signal and each deal at risk: read the deal's intelligence and \
         memory, decide the one next step (the suggested action is a good default), do it, log \
         it as an activity, record in memory what you learnt, and move the deal when its buyer \
         engaged. Preview a change you are unsure of with `dry_run: true`. Finish with a short \
         report: what you did per deal, and what needs a person.",
    );
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description("The daily agent loop"),
    )
}

/// The resource templates: a deal and a lead by id.
pub fn templates() -> Vec<ResourceTemplate> {
    [
        json!({
            "uriTemplate": "clozup://deals/{id}",
            "name": "deal",
            "title": "A deal with its intelligence and memory",
            "description": "The deal, its risk (score, level, factors, suggested action) and \
                            what agents remembered about it.",
            "mimeType": "application/json"
        }),
        json!({
            "uriTemplate": "clozup://leads/{id}",
            "name": "lead",
            "title": "A lead, all of it",
            "description": "The lead with its company, score, deals, activities, notes, tasks \
                            and signals (the lead 360 view).",
            "mimeType": "application/json"
        }),
    ]
    .into_iter()
    .filter_map(|t| serde_json::from_value(t).ok())
    .collect()
}

/// The most recently updated deals and leads the caller can read, as resources.
pub async fn recent(core: &Core, caller: &Caller) -> Vec<Resource> {
    let mut resources = Vec::new();
    let kinds: [(&str, TitleOf); 2] = [("deals", deal_title), ("leads", lead_name)];
    for (kind, title_of) in kinds {
        let uri = format!("/{kind}?sort=-updated_at&per_page={RECENT}");
        let Ok(page) = core.get(caller, uri).await else {
            continue;
        };
        for item in page["data"].as_array().into_iter().flatten() {
            let id = item["id"].as_str().unwrap_or_default();
            let title = title_of(item);
            let resource = json!({
                "uri": format!("clozup://{kind}/{id}"),
                "name": id,
                "title": title.trim(),
                "mimeType": "application/json"
            });
            resources.extend(serde_json::from_value(resource).ok());
        }
    }
    resources
}

/// How `resources/list` titles a record of one kind.
type TitleOf = fn(&Value) -> String;

/// A field of a listed record, as text.
fn text(item: &Value, field: &str) -> String {
    item[field].as_str().unwrap_or_default().to_string()
}

/// A deal's title, as `resources/list` shows it.
fn deal_title(deal: &Value) -> String {
    text(deal, "title")
}

/// A lead's name, as `resources/list` shows it.
fn lead_name(lead: &Value) -> String {
    format!("{} {}", text(lead, "first_name"), text(lead, "last_name"))
}

/// The resource at `uri`, read as `caller`.
pub async fn read(core: &Core, caller: &Caller, uri: &str) -> Result<ReadResourceResult, McpError> {
    let unknown = || {
        McpError::resource_not_found(
            format!("`{uri}` is not a resource of this server: clozup://deals/{{id}} or clozup://leads/{{id}}"),
            None,
        )
    };
    let (kind, id) = uri
        .strip_prefix("clozup://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(_, id)| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .ok_or_else(unknown)?;
    let value = match kind {
        "deals" => {
            let deal = core.get(caller, format!("/deals/{id}")).await;
            let intelligence = core.get(caller, format!("/deals/{id}/intelligence")).await;
            let memory = core
                .get(caller, format!("/deals/{id}/memory?per_page=100"))
                .await;
            json!({
                "deal": deal.map_err(|e| refused(uri, e))?["data"],
                "intelligence": intelligence.map_err(|e| refused(uri, e))?["data"],
                "memory": memory.map_err(|e| refused(uri, e))?["data"],
            })
        }
        "leads" => core
            .get(caller, format!("/leads/{id}/360"))
            .await
            .map_err(|e| refused(uri, e))?["data"]
            .clone(),
        _ => return Err(unknown()),
    };
    Ok(ReadResourceResult::new(vec![
        ResourceContents::TextResourceContents {
            uri: uri.to_string(),
            mime_type: Some("application/json".into()),
            text: value.to_string(),
            meta: None,
        },
    ]))
}

/// The API's refusal to read `uri` (its error envelope `error`) as an MCP error.
fn refused(uri: &str, error: Value) -> McpError {
    let code = error["error"]["code"].as_str().unwrap_or("error");
    let message = format!(
        "{uri}: {code}: {}",
        error["error"]["message"].as_str().unwrap_or_default()
    );
    if code == "not_found" {
        McpError::resource_not_found(message, Some(error))
    } else {
        McpError::invalid_request(message, Some(error))
    }
}
