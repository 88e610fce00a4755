//! The MCP server at `/mcp`, spoken to as a client speaks it (JSON-RPC over Streamable HTTP,
//! on a real socket): its credential and rate limit are the API's, its tools are the API's
//! operations with their rules, and a refused call changes nothing. The official Python SDK
//! drives it too, in CI (`.ci/mcp`).

use serde_json::{json, Value};

use crate::common::TestServer;

/// One JSON-RPC request to `/mcp{query}` as `key`: the HTTP status and the answer.
fn rpc(
    s: &TestServer,
    key: Option<&str>,
    query: &str,
    method: &str,
    params: Value,
) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp = s.call(
        "POST",
        &format!("/mcp{query}"),
        key,
        Some(body.to_string().as_bytes()),
        &[
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-11-25"),
        ],
    );
    (
        resp.status,
        serde_json::from_str(&resp.body).unwrap_or(Value::Null),
    )
}

/// The tools `key` lists with `query`.
fn tools(s: &TestServer, key: &str, query: &str) -> Vec<Value> {
    let (status, answer) = rpc(s, Some(key), query, "tools/list", json!({}));
    assert_eq!(status, 200, "{answer}");
    answer["result"]["tools"].as_array().unwrap().clone()
}

fn names(tools: &[Value]) -> Vec<&str> {
    tools.iter().map(|t| t["name"].as_str().unwrap()).collect()
}

/// A tool call's result.
fn call(s: &TestServer, key: &str, tool: &str, arguments: Value) -> Value {
    let (status, answer) = rpc(
        s,
        Some(key),
        "",
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    );
    assert_eq!(status, 200, "{answer}");
    answer["result"].clone()
}

/// A tool call that succeeded: its structured answer's `data`.
fn data(result: &Value) -> Value {
    assert_ne!(result["isError"], true, "{result}");
    result["structuredContent"]["data"].clone()
}

/// A tool call the API refused: its envelope's error, after checking the code.
fn refused(result: &Value, code: &str) -> Value {
    assert_eq!(result["isError"], true, "{result}");
    let error = result["structuredContent"]["error"].clone();
    assert_eq!(error["code"], code, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains(code), "the text names the code: {text}");
    error
}

#[test]
fn mcp_needs_an_api_key_and_answers_the_envelope_without_one() {
    let s = TestServer::start();
    let (status, answer) = rpc(&s, None, "", "tools/list", json!({}));
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "unauthorized");
    let (status, _) = rpc(
        &s,
        Some("clz_00000000000000000000000000000000"),
        "",
        "tools/list",
        json!({}),
    );
    assert_eq!(status, 401);
    let (status, answer) = rpc(
        &s,
        Some(&s.admin_key),
        "?toolsets=deals,crm",
        "tools/list",
        json!({}),
    );
    assert_eq!(status, 400);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("`crm` is not a toolset"));
}

#[test]
fn tools_are_the_apis_operations_grouped_in_toolsets() {
    let s = TestServer::start();
    let k = &s.admin_key;
    let default = tools(&s, k, "");
    assert!(default.len() <= 40, "{} tools by default", default.len());
    for (id, _) in clozup::api::llms::DAILY_LOOP {
        assert!(names(&default).contains(id), "the daily loop's {id}");
    }
    let all = tools(&s, k, "?toolsets=all");
    let spec: Value = serde_json::from_str(&clozup::api::spec_json()).unwrap();
    let operations = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .count();
    // Every operation but those an API key cannot call or a tool cannot answer (log in, reset
    // a password, log out, receive mail, the live stream).
    assert_eq!(all.len(), operations - 5);
    let deals = tools(&s, k, "?toolsets=deals,intelligence");
    assert_eq!(tools(&s, k, "?toolsets=deals%2C%20intelligence"), deals);
    assert!(names(&deals).contains(&"move_deal"));
    assert!(names(&deals).contains(&"list_signals"));
    assert!(!names(&deals).contains(&"create_lead"));
    let by_header = s.call(
        "POST",
        "/mcp",
        Some(k),
        Some(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                .to_string()
                .as_bytes(),
        ),
        &[
            ("accept", "application/json, text/event-stream"),
            ("x-mcp-toolsets", "deals,intelligence"),
        ],
    );
    assert_eq!(by_header.json()["result"]["tools"], json!(deals));

    let find = |name: &str| all.iter().find(|t| t["name"] == name).unwrap().clone();
    let move_deal = find("move_deal");
    assert!(move_deal["description"]
        .as_str()
        .unwrap()
        .starts_with("Move a deal to another stage."));
    assert_eq!(move_deal["inputSchema"]["required"], json!(["id"]));
    assert!(move_deal["outputSchema"]["properties"]["data"].is_object());
    assert_eq!(find("get_deal")["annotations"]["readOnlyHint"], true);
    assert_eq!(find("delete_deal")["annotations"]["destructiveHint"], true);
    assert_eq!(find("update_deal")["annotations"]["idempotentHint"], true);
    assert_eq!(find("create_deal")["annotations"]["destructiveHint"], false);
}

#[test]
fn a_read_only_key_lists_no_write_tool_and_a_write_call_fails_cleanly() {
    let s = TestServer::start();
    let read = s.key_with(&["read"]);
    let listed = tools(&s, &read, "?toolsets=all");
    assert!(!listed.is_empty());
    for tool in &listed {
        assert_eq!(
            tool["annotations"]["readOnlyHint"], true,
            "{}",
            tool["name"]
        );
    }
    let admin_only = tools(&s, &s.key_with(&["read", "write"]), "?toolsets=all");
    assert!(!names(&admin_only).contains(&"create_api_key"));
    assert!(names(&admin_only).contains(&"create_lead"));

    let before = s.count("SELECT count(*) FROM leads");
    let error = refused(
        &call(&s, &read, "create_lead", json!({"first_name": "Ada"})),
        "forbidden",
    );
    assert!(error["message"].as_str().unwrap().contains("`write` scope"));
    assert_eq!(s.count("SELECT count(*) FROM leads"), before);
}

#[test]
fn a_tool_call_keeps_the_apis_rules_validation_dry_runs_idempotency_and_if_match() {
    let s = TestServer::start();
    let k = &s.admin_key;
    let leads = || s.count("SELECT count(*) FROM leads");

    let error = refused(
        &call(
            &s,
            k,
            "create_lead",
            json!({"first_name": "Ada", "email": "nope"}),
        ),
        "validation_error",
    );
    assert_eq!(error["details"][0]["field"], "email");
    let error = refused(
        &call(
            &s,
            k,
            "create_lead",
            json!({"first_name": "Ada", "colour": "red"}),
        ),
        "validation_error",
    );
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("colour is not an argument of create_lead"));
    refused(&call(&s, k, "get_deal", json!({})), "validation_error");
    assert_eq!(leads(), 0);

    let rehearsed = data(&call(
        &s,
        k,
        "create_lead",
        json!({"first_name": "Ada", "dry_run": true}),
    ));
    assert_eq!(rehearsed["first_name"], "Ada");
    assert_eq!(leads(), 0);

    let args = json!({"first_name": "Ada", "idempotency_key": "mcp-ada-1"});
    let first = data(&call(&s, k, "create_lead", args.clone()));
    let again = data(&call(&s, k, "create_lead", args));
    assert_eq!(first["id"], again["id"]);
    assert_eq!(leads(), 1);

    let id = first["id"].as_str().unwrap();
    let stale = call(
        &s,
        k,
        "update_lead",
        json!({"id": id, "title": "CTO", "if_match": "\"7\""}),
    );
    refused(&stale, "precondition_failed");
    let fresh = data(&call(
        &s,
        k,
        "update_lead",
        json!({"id": id, "title": "CTO", "if_match": format!("\"{}\"", first["version"])}),
    ));
    assert_eq!(fresh["title"], "CTO");
}

#[test]
fn another_organizations_records_are_not_found_through_tools_or_resources() {
    let s = TestServer::start();
    let deal = data(&call(
        &s,
        &s.admin_key,
        "create_deal",
        json!({"title": "Ours"}),
    ));
    let id = deal["id"].as_str().unwrap();
    let other = s.second_org();
    refused(
        &call(&s, &other, "get_deal", json!({"id": id})),
        "not_found",
    );
    let (_, answer) = rpc(
        &s,
        Some(&other),
        "",
        "resources/read",
        json!({"uri": format!("clozup://deals/{id}")}),
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not_found"));
    let (_, mine) = rpc(
        &s,
        Some(&s.admin_key),
        "",
        "resources/read",
        json!({"uri": format!("clozup://deals/{id}")}),
    );
    let read: Value =
        serde_json::from_str(mine["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(read["deal"]["title"], "Ours");
    assert!(read["intelligence"]["risk_level"].is_string());
    assert_eq!(read["memory"], json!([]));
    let (_, listed) = rpc(&s, Some(&other), "", "resources/list", json!({}));
    assert_eq!(listed["result"]["resources"], json!([]));
}

#[test]
fn the_daily_loop_is_a_prompt() {
    let s = TestServer::start();
    let (_, answer) = rpc(
        &s,
        Some(&s.admin_key),
        "",
        "prompts/get",
        json!({"name": "daily_loop", "arguments": {"owner_id": "usr_1"}}),
    );
    let text = answer["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    for (id, _) in clozup::api::llms::DAILY_LOOP {
        assert!(text.contains(&format!("`{id}`")), "{id}");
    }
    assert!(text.contains("usr_1"));
}

#[test]
fn mcp_requests_count_against_the_keys_rate_limit() {
    let s = TestServer::start_with(|c| {
        c.rate_limit = clozup::config::parse_rate_limit("3/1h").unwrap();
    });
    let k = &s.admin_key;
    for _ in 0..3 {
        let (status, _) = rpc(&s, Some(k), "", "tools/call", json!({"name": "get_me"}));
        assert_eq!(status, 200);
    }
    let (status, answer) = rpc(&s, Some(k), "", "tools/list", json!({}));
    assert_eq!(status, 429);
    assert_eq!(answer["error"]["code"], "rate_limited");
}

/// `clozup mcp` on the file a server is serving: newline-delimited JSON-RPC on its stdin and
/// stdout, acting as one key; what it writes the server reads at once, and a bad key is refused
/// before anything is served.
#[test]
fn clozup_mcp_serves_over_stdio_beside_a_running_server() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    use crate::common::binary::BIN;

    let s = TestServer::start();
    let db = s.dir.path().join("crm.sqlite");
    let refused = Command::new(BIN)
        .args(["mcp", "--db"])
        .arg(&db)
        .env("CLOZUP_KEY", "clz_00000000000000000000000000000000")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a live API key"));

    let mut child = Command::new(BIN)
        .args(["mcp", "--toolsets", "deals", "--db"])
        .arg(&db)
        .env("CLOZUP_KEY", &s.admin_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut next_id = 0;
    let mut request = |method: &str, params: Value| -> Value {
        next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params});
        writeln!(stdin, "{message}").unwrap();
        if method == "initialize" {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            writeln!(
                stdin,
                r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
            )
            .unwrap();
            return serde_json::from_str(&line).unwrap();
        }
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let hello = request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "test", "version": "1"}}),
    );
    assert_eq!(hello["result"]["serverInfo"]["name"], "clozup");
    let listed = request("tools/list", json!({}));
    let listed = listed["result"]["tools"].as_array().unwrap();
    assert!(names(listed).contains(&"move_deal"));
    assert!(!names(listed).contains(&"create_lead"));
    let created = request(
        "tools/call",
        json!({"name": "create_deal", "arguments": {"title": "From stdio"}}),
    );
    let deal = data(&created["result"]);
    drop(stdin);
    assert!(child.wait().unwrap().success());

    let id = deal["id"].as_str().unwrap();
    let read = s.get(&format!("/deals/{id}"), &s.admin_key).data(200);
    assert_eq!(read["title"], "From stdio");
}
