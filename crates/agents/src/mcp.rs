//! The MCP server at `/mcp` (Streamable HTTP, through rmcp): flywheel's own tools, every toolset the runtime
//! has, for any MCP client. Each MCP session gets its own tool state, so the store's tools authenticate one
//! customer per MCP session as they do per agent session. Calls need the same key as the rest of the API.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gateway::Gateway;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use crate::runtime::Runtime;
use crate::tool::{ToolError, Toolbox};

/// One MCP session's server: its own toolbox.
#[derive(Clone)]
struct McpSession {
    toolbox: Arc<Toolbox>,
}

impl McpSession {
    fn tool(spec: &crate::tool::ToolSpec) -> rmcp::model::Tool {
        let schema = match &spec.parameters {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        rmcp::model::Tool::new(spec.name.clone(), spec.description.clone(), Arc::new(schema))
    }
}

impl ServerHandler for McpSession {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("flywheel", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "flywheel's tools. The store's order tools serve one customer per session: authenticate them \
                 first with find_user_id_by_email or find_user_id_by_name_zip.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.toolbox.specs().map(McpSession::tool).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = self.toolbox.get(request.name.as_ref()) else {
            return Err(ErrorData::invalid_params(
                format!("there is no tool named {}", request.name),
                None,
            ));
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let result = match tool.call(arguments).await {
            Ok(value @ Value::Object(_)) => CallToolResult::structured(value),
            Ok(Value::String(text)) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Ok(other) => CallToolResult::success(vec![ContentBlock::text(other.to_string())]),
            Err(error @ (ToolError::InvalidArguments(_) | ToolError::Failed(_))) => {
                CallToolResult::error(vec![ContentBlock::text(error.to_string())])
            }
        };
        Ok(result.into())
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.toolbox.get(name).map(|tool| McpSession::tool(tool.spec()))
    }
}

/// `/mcp`, serving every toolset of `runtime`.
pub fn router(runtime: Runtime, gateway: Gateway) -> Router {
    let factory_runtime = runtime.clone();
    let mut config = StreamableHttpServerConfig::default();
    // Without auth, only loopback hosts may call (a guard against DNS rebinding); with auth, the key guards.
    if gateway.auth_enabled() {
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || {
            let session = format!("mcp_{}", uuid::Uuid::new_v4().simple());
            Ok(McpSession {
                toolbox: Arc::new(factory_runtime.all_tools(&session)),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(gateway, authenticate))
}

async fn authenticate(
    axum::extract::State(gateway): axum::extract::State<Gateway>,
    request: Request,
    next: Next,
) -> Response {
    match gateway.authenticate_headers(request.headers()).await {
        Ok(_) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}
