//! The MCP server: Clozup for agents that speak the Model Context Protocol, at `/mcp`
//! (Streamable HTTP) and from `clozup mcp` (stdio), on the official Rust SDK (`rmcp`).
//!
//! It is a second face of the same API, not a second implementation: its tools are the API's
//! operations ([`tools`]), and a tool call is an API request the server makes of itself, with
//! the caller's credential, through the same gate and handlers. Scopes, organization isolation,
//! validation, idempotency keys, `If-Match` and dry runs therefore hold for tools exactly as for
//! HTTP, and a change to the API is a change to the tools.

pub mod content;
pub mod schema;
pub mod tools;

use std::sync::{Arc, OnceLock};

use poem::endpoint::DynEndpoint;
use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;

use crate::api::error::ApiError;
use crate::api::gate::InProcess;
use crate::domain::auth::Principal;
use tools::{Call, Catalog, Toolsets};

/// The header that chooses toolsets, as `?toolsets=` does (for clients that cannot change the
/// URL they are given).
pub const TOOLSETS_HEADER: &str = "x-mcp-toolsets";

/// The API a tool call goes to: the server's route tree behind its gate.
pub type Api = Arc<dyn DynEndpoint<Output = Response>>;

/// What every connection shares: the tools, and the API they call.
pub struct Core {
    /// The OpenAPI document (JSON) the tools are made from.
    spec: String,
    /// The tools and instructions, made at the first MCP request: a server no agent connects
    /// to does not spend its start-up time (20 ms) or its memory (7 MiB of schemas) on them.
    made: OnceLock<Made>,
    api: Api,
}

/// What [`Core`] makes from the document.
struct Made {
    catalog: Catalog,
    instructions: String,
}

impl Core {
    /// The MCP server of the OpenAPI document `spec` (JSON), calling `api`.
    pub fn new(spec: String, api: Api) -> Arc<Self> {
        Arc::new(Self {
            spec,
            made: OnceLock::new(),
            api,
        })
    }

    fn made(&self) -> &Made {
        self.made.get_or_init(|| {
            let document = serde_json::from_str(&self.spec).unwrap_or_default();
            let catalog = Catalog::from_spec(&document);
            let instructions = content::instructions(&catalog);
            Made {
                catalog,
                instructions,
            }
        })
    }

    /// The tools and toolsets.
    pub fn catalog(&self) -> &Catalog {
        &self.made().catalog
    }

    /// Makes `call` as `caller`, and answers the status and body.
    async fn request(&self, caller: &Caller, call: Call) -> (StatusCode, Vec<u8>) {
        let mut builder = Request::builder()
            .method(call.method)
            .uri_str(&call.uri)
            .header(header::AUTHORIZATION, caller.authorization.as_str());
        for (name, value) in &call.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut req = match call.body {
            Some((media, bytes)) => builder.content_type(&media).body(bytes),
            None => builder.finish(),
        };
        req.set_data(InProcess);
        let resp = match self.api.call(req).await {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        };
        let status = resp.status();
        let body = resp.into_body().into_vec().await.unwrap_or_default();
        (status, body)
    }

    /// A `GET` of `uri` (under `/api/v1`) as `caller`: the JSON answer, or the API's error.
    async fn get(&self, caller: &Caller, uri: String) -> Result<Value, Value> {
        let call = Call {
            method: poem::http::Method::GET,
            uri: format!("/api/v1{uri}"),
            headers: Vec::new(),
            body: None,
        };
        let (status, body) = self.request(caller, call).await;
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(value)
        }
    }
}

/// Who is calling: the credential every tool call carries, what it may do, and which tools it
/// chose to see.
#[derive(Clone)]
pub struct Caller {
    /// The `Authorization` header's value.
    authorization: String,
    principal: Principal,
    toolsets: Toolsets,
}

impl Caller {
    /// `principal`, holding `token`, seeing `toolsets`.
    pub fn new(token: &str, principal: Principal, toolsets: Toolsets) -> Self {
        Self {
            authorization: format!("Bearer {token}"),
            principal,
            toolsets,
        }
    }
}

/// One MCP connection's handler: over HTTP a new one per request, which reads its caller from
/// the request; over stdio one for the process, acting as its one caller.
#[derive(Clone)]
pub struct Server {
    core: Arc<Core>,
    fixed: Option<Arc<Caller>>,
}

impl Server {
    /// A handler for stdio, acting as `caller`.
    pub fn acting_as(core: Arc<Core>, caller: Caller) -> Self {
        Self {
            core,
            fixed: Some(Arc::new(caller)),
        }
    }

    /// The caller: the process's, or the one the gate authenticated for this HTTP request.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
        if let Some(caller) = &self.fixed {
            return Ok(caller.as_ref().clone());
        }
        let parts = context
            .extensions
            .get::<poem::http::request::Parts>()
            .ok_or_else(|| McpError::internal_error("no HTTP request behind this call", None))?;
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                McpError::invalid_request("this request carries no valid credential", None)
            })?;
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let toolsets = parts
            .extensions
            .get::<Toolsets>()
            .cloned()
            .unwrap_or_default();
        Ok(Caller {
            authorization,
            principal,
            toolsets,
        })
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> InitializeResult {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_resources()
            .build();
        let mut implementation = Implementation::new("clozup", env!("CARGO_PKG_VERSION"));
        implementation.title = Some("Clozup CRM".into());
        InitializeResult::new(capabilities)
            .with_server_info(implementation)
            .with_instructions(self.core.made().instructions.clone())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let caller = self.caller(&context)?;
        let tools = self
            .core
            .catalog()
            .visible(&caller.toolsets, &caller.principal)
            .map(|op| op.tool.clone())
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// The tool `name`, for the SDK's check of a request's standard headers (`Mcp-Name` and
    /// the rest, 2026-07-28) against the tool they name.
    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.core.catalog().get(name).map(|op| op.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = self.caller(&context)?;
        // Any tool of the catalog may be called, listed or not: toolsets keep the list short,
        // they are not permissions (the call's scope check is the API's own).
        let Some(op) = self.core.catalog().get(&request.name) else {
            return Err(McpError::invalid_params(
                format!(
                    "`{}` is not a tool of this server; tools/list names them",
                    request.name
                ),
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        let call = match op.request(&arguments) {
            Ok(call) => call,
            Err(err) => return Ok(refusal(&err).into()),
        };
        let (status, body) = self.core.request(&caller, call).await;
        let result = if status.is_success() && op.text_answer {
            CallToolResult::success(vec![ContentBlock::text(
                String::from_utf8_lossy(&body).into_owned(),
            )])
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(value) if status.is_success() => CallToolResult::structured(value),
                Ok(value) => failure(status, value),
                Err(_) => CallToolResult::error(vec![ContentBlock::text(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                ))]),
            }
        };
        Ok(result.into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(content::prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        content::prompt(&request).map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let caller = self.caller(&context)?;
        Ok(ListResourcesResult::with_all_items(
            content::recent(&self.core, &caller).await,
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            content::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let caller = self.caller(&context)?;
        content::read(&self.core, &caller, &request.uri)
            .await
            .map(Into::into)
    }
}

/// A tool error from the API's error envelope `value`: its code and message first, in words an
/// agent reads, then the envelope itself (details name the fields to fix).
fn failure(status: StatusCode, value: Value) -> CallToolResult {
    let error = &value["error"];
    let summary = format!(
        "{} {} ({}): {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        error["code"].as_str().unwrap_or("error"),
        error["message"].as_str().unwrap_or_default(),
    );
    let mut result = CallToolResult::structured_error(value);
    result.content.insert(0, ContentBlock::text(summary));
    result
}

/// A call whose arguments cannot make a request: the API's own envelope for it.
fn refusal(err: &ApiError) -> CallToolResult {
    let body = err.body(String::new());
    failure(
        err.status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// `/mcp`: the Streamable HTTP transport, stateless (every request stands alone, so any number
/// of servers may share a database and no session outlives a restart), answering JSON where the
/// call allows. Toolsets come from `?toolsets=` or the `X-MCP-Toolsets` header; an unknown one
/// is a 400 naming the known ones.
pub fn endpoint(core: Arc<Core>) -> impl Endpoint<Output = Response> {
    use poem::endpoint::TowerCompatExt;
    use rmcp::transport::streamable_http_server::{
        session::never::NeverSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    };
    let mut config = StreamableHttpServerConfig::default();
    config.legacy_session_mode = false;
    config.json_response = true;
    // The Host check guards servers without authentication against DNS rebinding; every
    // request here carries an API key a rebinding page cannot have, and the server answers on
    // whatever name its operator gives it.
    config.allowed_hosts.clear();
    let handler_core = core.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(Server {
                core: handler_core.clone(),
                fixed: None,
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    )
    .compat();
    Mcp { core, service }
}

/// `/mcp`'s endpoint: the SDK's service, given the request's toolsets.
struct Mcp<S> {
    core: Arc<Core>,
    service: S,
}

impl<S: Endpoint> Endpoint for Mcp<S> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        match toolsets_of(self.core.catalog(), &req) {
            Ok(chosen) => {
                req.set_data(chosen);
                let resp = self.service.call(req).await?.into_response();
                Ok(whole(resp).await)
            }
            Err(message) => Ok(ApiError::bad_request(message)
                .detail("toolsets", "names no toolset")
                .render()),
        }
    }
}

/// A JSON answer read whole, so it goes out with its length in one write: the SDK streams
/// every body, and hyper sends a streamed body in chunks, its end in a write of its own (a
/// `send` to the kernel per answer saved is a tenth of a tool call's cost). An event stream
/// stays a stream.
async fn whole(resp: Response) -> Response {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    match body.into_bytes().await {
        Ok(bytes) => Response::from_parts(parts, bytes.into()),
        Err(e) => ApiError::internal(e).render(),
    }
}

/// The toolsets a request chose (`?toolsets=` first, then the header), or why not.
fn toolsets_of(catalog: &Catalog, req: &Request) -> Result<Toolsets, String> {
    /// The query's one parameter of ours, percent-decoded as any other query is.
    #[derive(serde::Deserialize)]
    struct Query {
        toolsets: Option<String>,
    }
    let from_query = req
        .params::<Query>()
        .map_err(|e| format!("the query string cannot be read: {e}"))?
        .toolsets;
    let from_header = || {
        req.headers()
            .get(TOOLSETS_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match from_query.or_else(from_header) {
        Some(value) => catalog.parse_toolsets(&value),
        None => Ok(Toolsets::default()),
    }
}

/// Serves MCP over stdin and stdout as `caller` until the client closes stdin.
pub async fn serve_stdio(core: Arc<Core>, caller: Caller) -> Result<(), String> {
    use rmcp::ServiceExt;
    let running = Server::acting_as(core, caller)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("the MCP client did not connect: {e}"))?;
    running
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("the MCP connection failed: {e}"))
}
