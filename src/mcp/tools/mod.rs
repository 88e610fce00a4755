//! The MCP tools, one per operation of the OpenAPI document, made from it at start: the tool's
//! name is the operationId, its description the operation's text, its input schema the
//! operation's path, query and header parameters beside its body's fields, its output schema
//! the success response's. Nothing here is written by hand per tool, so the tools cannot drift
//! from the API: a new operation is a new tool.
//!
//! A call becomes the HTTP request the operation documents ([`Operation::request`]), which
//! the server then answers as it answers any other, through the same gate: scopes, rate limits
//! aside (the `/mcp` request counted once), idempotency, `If-Match`, dry runs.

use poem::http::Method;
use rmcp::model::Tool;
use serde_json::{json, Map, Value};

use super::schema::{answer_shape, standalone};
use crate::domain::auth::{minimum_scope_of, Principal};

mod call;
pub use call::Call;

/// Operations that are not tools, with why.
const NOT_TOOLS: &[(&str, &str)] = &[
    // Its credential is the mail server's inbound token, not an API key.
    (
        "receive_email",
        "inbound mail is piped in by the mail server",
    ),
    // A session's end; agents hold keys, which do not log out.
    ("logout", "ends a browser session"),
    // An endless stream: a tool call has one answer.
    (
        "stream_events",
        "a live stream; `list_events` reads the same log",
    ),
];

/// The tools an agent gets when it names no toolset: the daily loop (the agenda, signals,
/// deals at risk, intelligence, memory, logging and moving) and everyday CRM work on leads,
/// deals, tasks, notes and email. At most 40, so they fit an agent's context beside its work.
pub const DEFAULT_TOOLSET: &[&str] = &[
    "get_agenda",
    "list_signals",
    "dismiss_signal",
    "list_at_risk_deals",
    "get_deal_intelligence",
    "list_deal_memory",
    "create_deal_memory",
    "list_deals",
    "get_deal",
    "create_deal",
    "update_deal",
    "move_deal",
    "get_deal_history",
    "list_deal_stages",
    "list_leads",
    "get_lead",
    "get_lead_360",
    "create_lead",
    "update_lead",
    "assign_lead",
    "convert_lead",
    "list_companies",
    "get_company",
    "create_company",
    "list_activities",
    "create_activity",
    "list_notes",
    "create_note",
    "list_tasks",
    "create_task",
    "update_task",
    "complete_task",
    "list_emails",
    "send_email",
    "reply_to_email",
    "search",
    "get_me",
    "list_users",
];

/// Where an operation's parameter goes in its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Path,
    Query,
    Header,
}

/// One parameter: its name in the request, and the argument that carries it.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    argument: String,
    place: In,
}

/// How a call's arguments become the request's body.
#[derive(Debug, Clone)]
enum Body {
    None,
    /// The body object's fields are arguments of their own (`names`), beside the parameters.
    Fields(Vec<String>),
    /// One argument, `body`, is the whole JSON body (a field name the parameters also use).
    Whole,
    /// One argument, `csv`, is a text body of this media type.
    Text(String),
}

/// An operation as a tool.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The tool as `tools/list` shows it.
    pub tool: Tool,
    /// The toolset it belongs to: its tag, lower-cased, spaces as underscores.
    pub toolset: String,
    method: Method,
    /// The path template under `/api/v1`, `{name}` for each path parameter.
    path: String,
    params: Vec<Param>,
    body: Body,
    /// Whether the answer is text (a CSV export), given as such rather than as JSON.
    pub text_answer: bool,
}

/// Every operation of the document that is a tool, in the document's order.
pub struct Catalog {
    pub operations: Vec<Operation>,
    /// Every toolset's name, in the document's tag order.
    pub toolsets: Vec<String>,
}

/// A tag as a toolset's name: `Email templates` is `email_templates`.
pub fn toolset_name(tag: &str) -> String {
    tag.to_lowercase().replace(' ', "_")
}

/// A header's name as an argument: `If-Match` is `if_match`.
fn argument_name(header: &str) -> String {
    header.to_lowercase().replace('-', "_")
}

impl Catalog {
    /// The catalog of the OpenAPI document `spec` (JSON).
    pub fn from_spec(spec: &Value) -> Self {
        let empty = Map::new();
        let components = spec["components"]["schemas"].as_object().unwrap_or(&empty);
        let mut operations = Vec::new();
        for (path, item) in spec["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if let Some(operation) = Operation::from_spec(path, method, op, components) {
                    operations.push(operation);
                }
            }
        }
        let toolsets = spec["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .map(toolset_name)
            .filter(|name| operations.iter().any(|op| &op.toolset == name))
            .collect();
        Self {
            operations,
            toolsets,
        }
    }

    /// The operation named `name`.
    pub fn get(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.tool.name == name)
    }

    /// The tools `caller` sees among `chosen`: those whose operation its scopes allow.
    pub fn visible<'a>(
        &'a self,
        chosen: &'a Toolsets,
        caller: &'a Principal,
    ) -> impl Iterator<Item = &'a Operation> + 'a {
        self.operations
            .iter()
            .filter(move |op| chosen.includes(op))
            .filter(move |op| op.allowed(caller))
    }

    /// `value` (`/mcp?toolsets=…` or the `X-MCP-Toolsets` header: names separated by commas)
    /// as a choice of toolsets, or why it is not one.
    pub fn parse_toolsets(&self, value: &str) -> Result<Toolsets, String> {
        let mut chosen = Toolsets {
            all: false,
            default: false,
            tags: Vec::new(),
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => chosen.all = true,
                "default" => chosen.default = true,
                tag if self.toolsets.iter().any(|t| t == tag) => chosen.tags.push(tag.into()),
                unknown => {
                    return Err(format!(
                        "`{unknown}` is not a toolset; choose among default, all, {}",
                        self.toolsets.join(", ")
                    ))
                }
            }
        }
        if !chosen.all && chosen.tags.is_empty() {
            chosen.default = true;
        }
        Ok(chosen)
    }
}

/// Which tools a connection lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolsets {
    all: bool,
    default: bool,
    tags: Vec<String>,
}

impl Default for Toolsets {
    /// The default set alone.
    fn default() -> Self {
        Self {
            all: false,
            default: true,
            tags: Vec::new(),
        }
    }
}

impl Toolsets {
    fn includes(&self, op: &Operation) -> bool {
        self.all
            || self.tags.contains(&op.toolset)
            || (self.default && DEFAULT_TOOLSET.contains(&op.tool.name.as_ref()))
    }
}

impl Operation {
    fn from_spec(
        path: &str,
        method: &str,
        op: &Value,
        components: &Map<String, Value>,
    ) -> Option<Self> {
        let id = op["operationId"].as_str()?;
        let bearer = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s.get("bearer").is_some());
        if !bearer || NOT_TOOLS.iter().any(|(name, _)| *name == id) {
            return None;
        }
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).ok()?;
        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut params = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            let place = match p["in"].as_str() {
                Some("path") => In::Path,
                Some("query") => In::Query,
                Some("header") => In::Header,
                _ => continue,
            };
            let argument = argument_name(name);
            let mut schema = standalone(&p["schema"], components);
            if let (Some(s), Some(d)) = (schema.as_object_mut(), p["description"].as_str()) {
                s.insert("description".into(), d.into());
            }
            if p["required"] == Value::Bool(true) {
                required.push(Value::from(argument.clone()));
            }
            properties.insert(argument.clone(), schema);
            params.push(Param {
                name: name.to_string(),
                argument,
                place,
            });
        }
        let content = &op["requestBody"]["content"];
        let body_required = op["requestBody"]["required"] == Value::Bool(true);
        let body = if let Some(json) = content.get("application/json") {
            let schema = standalone(&json["schema"], components);
            let fields = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let collides = fields.keys().any(|f| properties.contains_key(f));
            if schema["type"] == "object" && !fields.is_empty() && !collides {
                for field in schema["required"].as_array().into_iter().flatten() {
                    if body_required {
                        required.push(field.clone());
                    }
                }
                let names = fields.keys().cloned().collect();
                properties.extend(fields);
                Body::Fields(names)
            } else {
                properties.insert("body".into(), schema);
                if body_required {
                    required.push("body".into());
                }
                Body::Whole
            }
        } else if let Some((media, _)) = content.as_object().and_then(|c| c.iter().next()) {
            properties.insert(
                "csv".into(),
                json!({"type": "string", "description": format!("The file's content ({media}).")}),
            );
            required.push("csv".into());
            Body::Text(media.clone())
        } else {
            Body::None
        };
        let (output_schema, text_answer) = answer(op, components);
        let summary = op["summary"].as_str().unwrap_or(id);
        let description = match op["description"].as_str() {
            Some(more) => format!("{summary}.\n\n{more}"),
            None => format!("{summary}."),
        };
        let tag = op["tags"][0].as_str().unwrap_or("Other");
        let annotations = annotations(&method, id, summary);
        let tool = json!({
            "name": id,
            "title": summary,
            "description": description,
            "inputSchema": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            },
            "outputSchema": output_schema,
            "annotations": annotations,
        });
        let tool: Tool = serde_json::from_value(tool).ok()?;
        Some(Self {
            tool,
            toolset: toolset_name(tag),
            method,
            path: path.to_string(),
            params,
            body,
            text_answer,
        })
    }

    /// Whether `caller`'s scopes allow this operation at all (a handler may then be stricter).
    pub fn allowed(&self, caller: &Principal) -> bool {
        minimum_scope_of(caller.kind, self.method.as_str(), &self.path)
            .is_none_or(|s| caller.require(s).is_ok())
    }
}

/// The success answer's schema, as a tool's output schema (JSON objects only, as MCP wants),
/// and whether the answer is text rather than JSON.
fn answer(op: &Value, components: &Map<String, Value>) -> (Option<Value>, bool) {
    let responses = op["responses"].as_object();
    let success = responses
        .into_iter()
        .flatten()
        .find(|(code, _)| code.starts_with('2'));
    let Some((_, response)) = success else {
        return (None, false);
    };
    match response["content"]
        .as_object()
        .and_then(|c| c.iter().next())
    {
        Some((media, content)) if media.starts_with("application/json") => {
            let mut schema = standalone(&content["schema"], components);
            answer_shape(&mut schema);
            ((schema["type"] == "object").then_some(schema), false)
        }
        Some(_) => (None, true),
        None => (None, false),
    }
}

/// The hints MCP clients show (or act on): reads are read-only; deletes destroy; a delete, a
/// `PATCH` or a `PUT` done twice is done once; and a call that sends mail or calls a webhook
/// reaches past this server.
fn annotations(method: &Method, id: &str, summary: &str) -> Value {
    let reaches_out = id.starts_with("send_email")
        || id.starts_with("reply_to")
        || id == "test_webhook"
        || id == "redeliver_webhook";
    if *method == Method::GET {
        return json!({"title": summary, "readOnlyHint": true, "openWorldHint": false});
    }
    json!({
        "title": summary,
        "readOnlyHint": false,
        "destructiveHint": *method == Method::DELETE,
        "idempotentHint": matches!(*method, Method::DELETE | Method::PATCH | Method::PUT),
        "openWorldHint": reaches_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let spec: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        Catalog::from_spec(&spec)
    }

    #[test]
    fn every_operation_an_api_key_can_call_is_a_tool_except_the_named_few() {
        let spec: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let catalog = Catalog::from_spec(&spec);
        let mut keyed = 0;
        for (_, item) in spec["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                let bearer = op["security"].to_string().contains("\"bearer\"");
                let excluded = NOT_TOOLS.iter().any(|(n, _)| *n == id);
                assert_eq!(catalog.get(id).is_some(), bearer && !excluded, "{id}");
                keyed += usize::from(bearer && !excluded);
            }
        }
        assert_eq!(catalog.operations.len(), keyed);
        for (name, _) in NOT_TOOLS {
            assert!(spec.to_string().contains(&format!("\"{name}\"")), "{name}");
        }
    }

    #[test]
    fn the_default_toolset_names_at_most_forty_tools_that_exist() {
        let catalog = catalog();
        assert!(DEFAULT_TOOLSET.len() <= 40);
        for id in DEFAULT_TOOLSET {
            assert!(catalog.get(id).is_some(), "{id} is not a tool");
        }
        for (id, _) in crate::api::llms::DAILY_LOOP {
            assert!(DEFAULT_TOOLSET.contains(id), "the daily loop's {id}");
        }
    }

    #[test]
    fn schemas_are_standalone_and_name_every_parameter_and_body_field() {
        let catalog = catalog();
        for op in &catalog.operations {
            let text = serde_json::to_string(&op.tool).unwrap();
            assert!(!text.contains("$ref"), "{}", op.tool.name);
            assert!(!text.contains("nullable"), "{}", op.tool.name);
        }
        let mv = catalog.get("move_deal").unwrap();
        let props = mv.tool.input_schema["properties"].as_object().unwrap();
        for arg in ["id", "stage_id", "stage", "dry_run", "idempotency_key"] {
            assert!(props.contains_key(arg), "move_deal lacks {arg}");
        }
        assert_eq!(mv.tool.input_schema["required"][0], "id");
        let out = mv.tool.output_schema.as_ref().unwrap();
        assert!(out["properties"]["data"]["properties"]["stage_id"].is_object());
    }

    /// The walk of the document: each tool's input schema is its operation's parameters and
    /// body fields, each with the operation's own schema (standalone), required exactly when
    /// the operation requires it, and nothing else; so it accepts what the API accepts.
    #[test]
    fn every_tools_input_schema_is_its_operations_parameters_and_body() {
        let spec: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let components = spec["components"]["schemas"].as_object().unwrap();
        let catalog = Catalog::from_spec(&spec);
        let mut walked = 0;
        for (_, item) in spec["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let Some(tool) = catalog.get(op["operationId"].as_str().unwrap()) else {
                    continue;
                };
                let input = &tool.tool.input_schema;
                let name = &tool.tool.name;
                let mut expected = Map::new();
                let mut required = Vec::new();
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let arg = argument_name(p["name"].as_str().unwrap());
                    let mut schema = standalone(&p["schema"], components);
                    if let Some(d) = p["description"].as_str() {
                        schema["description"] = d.into();
                    }
                    if p["required"] == true {
                        required.push(arg.clone());
                    }
                    expected.insert(arg, schema);
                }
                let body = &op["requestBody"];
                if let Some(json) = body["content"].get("application/json") {
                    let schema = standalone(&json["schema"], components);
                    match schema["properties"].as_object() {
                        Some(fields) if !fields.keys().any(|f| expected.contains_key(f)) => {
                            expected.extend(fields.clone());
                            if body["required"] == true {
                                for f in schema["required"].as_array().into_iter().flatten() {
                                    required.push(f.as_str().unwrap().to_string());
                                }
                            }
                        }
                        _ => {
                            expected.insert("body".into(), schema);
                            required.push("body".into());
                        }
                    }
                } else if body.is_object() {
                    assert!(input["properties"]["csv"].is_object(), "{name}");
                    expected.insert("csv".into(), input["properties"]["csv"].clone());
                    required.push("csv".into());
                }
                assert_eq!(input["properties"], Value::Object(expected), "{name}");
                let mut listed: Vec<String> =
                    serde_json::from_value(input["required"].clone()).unwrap();
                listed.sort();
                required.sort();
                assert_eq!(listed, required, "{name}");
                assert_eq!(input["additionalProperties"], false, "{name}");
                walked += 1;
            }
        }
        assert_eq!(walked, catalog.operations.len());
    }

    #[test]
    fn a_call_becomes_the_documented_request() {
        let catalog = catalog();
        let args =
            json!({"id": "deal_a/b", "stage": "Won", "dry_run": true, "idempotency_key": "k1"});
        let call = catalog
            .get("move_deal")
            .unwrap()
            .request(args.as_object().unwrap())
            .unwrap();
        assert_eq!(call.method, Method::POST);
        assert_eq!(call.uri, "/api/v1/deals/deal_a%2Fb/move?dry_run=true");
        assert_eq!(call.headers, [("Idempotency-Key".into(), "k1".into())]);
        let body: Value = serde_json::from_slice(&call.body.unwrap().1).unwrap();
        assert_eq!(body, json!({"stage": "Won"}));
    }

    #[test]
    fn a_missing_path_argument_or_an_unknown_one_is_named() {
        let catalog = catalog();
        let get = catalog.get("get_deal").unwrap();
        let err = get.request(&Map::new()).err().unwrap();
        assert!(err.message.contains("id is required"), "{}", err.message);
        let args = json!({"id": "deal_1", "colour": "red"});
        let err = get.request(args.as_object().unwrap()).err().unwrap();
        assert!(err
            .message
            .starts_with("colour is not an argument of get_deal"));
    }

    #[test]
    fn a_header_argument_no_header_can_carry_is_refused_not_dropped() {
        let catalog = catalog();
        let args = json!({"id": "lead_1", "title": "CTO", "if_match": "\"1\"\n"});
        let err = catalog
            .get("update_lead")
            .unwrap()
            .request(args.as_object().unwrap())
            .err()
            .unwrap();
        assert!(
            err.message
                .starts_with("if_match cannot be sent as the If-Match header"),
            "{}",
            err.message
        );
    }

    #[test]
    fn toolsets_are_the_tags_plus_default_and_all() {
        let catalog = catalog();
        assert!(catalog.toolsets.contains(&"email_templates".to_string()));
        let chosen = catalog.parse_toolsets("deals, intelligence").unwrap();
        assert!(!chosen.default);
        let err = catalog.parse_toolsets("deals,crm").unwrap_err();
        assert!(err.starts_with("`crm` is not a toolset"), "{err}");
        assert_eq!(catalog.parse_toolsets("").unwrap(), Toolsets::default());
    }
}
