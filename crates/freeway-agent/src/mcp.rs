//! Tools from Model Context Protocol servers (`[[mcp_servers]]`), through the `rmcp` SDK: a
//! child process speaking MCP on stdio, or a streamable HTTP endpoint.
//!
//! Each server is connected once when the runtime is built and shared by every session; its
//! tools become ordinary [`Tool`]s named `mcp__<server>__<tool>`. A server that cannot be
//! reached at start is reported (in the log and in `GET /v1/tools`) and its tools are absent;
//! a connection that drops later is made again on the next call. Calls go through the agent's
//! approval mode like any other tool, with the kind the configuration gives (MCP's own
//! read-only hints come from the server and are not trusted). Stdio servers run as this
//! process's user, outside the sandbox, with an environment reduced to an allow list plus what
//! the configuration gives them, as Codex CLI and Claude Code run theirs.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freeway_config::{McpServerConfig, McpTransport, ToolKindConfig, mcp_tool_name};
use freeway_types::ToolDefinition;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::tool::{Tool, ToolContext, ToolError, ToolKind};

/// How long connecting and listing tools may take at start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables a stdio server inherits; everything else comes from its `env`.
const ENV_ALLOW: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
    "SHELL",
];

/// Lines of a stdio server's stderr kept to explain why it failed.
const STDERR_LINES: usize = 20;

type Client = RunningService<RoleClient, ()>;

/// One connected MCP server.
pub struct McpServer {
    config: McpServerConfig,
    client: tokio::sync::Mutex<Option<Client>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    tools: Vec<rmcp::model::Tool>,
}

/// What `GET /v1/tools` says about a configured server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct McpStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    pub connected: bool,
    /// Why it is not connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The names models call its tools by.
    pub tools: Vec<String>,
}

fn transport_name(config: &McpServerConfig) -> &'static str {
    match config.transport {
        McpTransport::Stdio { .. } => "stdio",
        McpTransport::Http { .. } => "http",
    }
}

impl McpServer {
    /// Connects and lists the server's tools (those the configuration allows).
    pub async fn connect(config: McpServerConfig) -> Result<Arc<McpServer>, String> {
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let work = async {
            let client = open(&config, &stderr).await?;
            let tools = client
                .list_all_tools()
                .await
                .map_err(|e| format!("listing its tools failed: {e}"))?;
            Ok::<_, String>((client, tools))
        };
        let (client, mut tools) = match tokio::time::timeout(CONNECT_TIMEOUT, work).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(with_stderr(e, &stderr)),
            Err(_) => {
                return Err(with_stderr(
                    format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                    &stderr,
                ));
            }
        };
        if let Some(allowed) = &config.tools {
            if let Some(missing) = allowed
                .iter()
                .find(|name| !tools.iter().any(|t| t.name == name.as_str()))
            {
                let offered: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
                return Err(format!(
                    "`tools` names `{missing}`, which the server does not offer; it offers: {}",
                    offered.join(", ")
                ));
            }
            tools.retain(|t| allowed.iter().any(|a| t.name == a.as_str()));
        }
        tools.retain(|t| {
            let ok = valid_name(&mcp_tool_name(&config.name, &t.name));
            if !ok {
                tracing::warn!(
                    server = config.name,
                    tool = %t.name,
                    "MCP tool left out: its name is not letters, digits, `_` and `-`, or too long"
                );
            }
            ok
        });
        Ok(Arc::new(McpServer {
            config,
            client: tokio::sync::Mutex::new(Some(client)),
            stderr,
            tools,
        }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its tools, ready to add to a runtime.
    pub fn tools(self: &Arc<Self>) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .map(|t| {
                Arc::new(McpTool {
                    server: self.clone(),
                    name: mcp_tool_name(&self.config.name, &t.name),
                    tool: t.clone(),
                }) as Arc<dyn Tool>
            })
            .collect()
    }

    pub fn status(&self) -> McpStatus {
        McpStatus {
            name: self.config.name.clone(),
            transport: transport_name(&self.config),
            connected: true,
            error: None,
            tools: self
                .tools
                .iter()
                .map(|t| mcp_tool_name(&self.config.name, &t.name))
                .collect(),
        }
    }

    /// The status of a server that could not be connected.
    pub fn failed(config: &McpServerConfig, error: String) -> McpStatus {
        McpStatus {
            name: config.name.clone(),
            transport: transport_name(config),
            connected: false,
            error: Some(error),
            tools: Vec::new(),
        }
    }

    async fn call(
        &self,
        tool: &str,
        arguments: Option<serde_json::Map<String, Value>>,
    ) -> Result<CallToolResult, String> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = None;
            let client = tokio::time::timeout(CONNECT_TIMEOUT, open(&self.config, &self.stderr))
                .await
                .map_err(|_| "reconnecting timed out".to_owned())
                .and_then(|r| r)
                .map_err(|e| {
                    with_stderr(
                        format!("the connection was lost and could not be made again: {e}"),
                        &self.stderr,
                    )
                })?;
            *slot = Some(client);
        }
        // Calls run side by side: each holds a handle to the connection, not the lock.
        let peer = slot
            .as_ref()
            .map(|c| c.peer().clone())
            .ok_or("not connected")?;
        drop(slot);
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        peer.call_tool(params).await.map_err(|e| e.to_string())
    }
}

/// Connects every server side by side; one that fails is logged and reported as its status.
pub async fn connect_all(configs: &[McpServerConfig]) -> Vec<Result<Arc<McpServer>, McpStatus>> {
    let connecting = configs.iter().map(|config| async move {
        match McpServer::connect(config.clone()).await {
            Ok(server) => {
                tracing::info!(
                    server = config.name,
                    tools = server.tools.len(),
                    "MCP server connected"
                );
                Ok(server)
            }
            Err(error) => {
                tracing::warn!(
                    server = config.name,
                    error,
                    "MCP server could not be connected"
                );
                Err(McpServer::failed(config, error))
            }
        }
    });
    futures_util::future::join_all(connecting).await
}

fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn with_stderr(error: String, stderr: &Mutex<VecDeque<String>>) -> String {
    let lines = stderr.lock().map(|l| l.iter().cloned().collect::<Vec<_>>());
    match lines {
        Ok(lines) if !lines.is_empty() => {
            format!("{error}; its stderr ended with:\n{}", lines.join("\n"))
        }
        _ => error,
    }
}

async fn open(
    config: &McpServerConfig,
    stderr: &Arc<Mutex<VecDeque<String>>>,
) -> Result<Client, String> {
    match &config.transport {
        McpTransport::Stdio { command, env } => {
            let (program, args) = command.split_first().ok_or("the command is empty")?;
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args).env_clear();
            for key in ENV_ALLOW {
                if let Some(v) = std::env::var_os(key) {
                    cmd.env(key, v);
                }
            }
            for (k, v) in env {
                cmd.env(k, v.expose());
            }
            let (transport, err) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("`{program}` could not be started: {e}"))?;
            // Kept to explain a failure, and logged at debug.
            let reader = err.map(|err| {
                let (stderr, server) = (stderr.clone(), config.name.clone());
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(err).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::debug!(server, "{line}");
                        if let Ok(mut kept) = stderr.lock() {
                            if kept.len() == STDERR_LINES {
                                kept.pop_front();
                            }
                            kept.push_back(line);
                        }
                    }
                })
            });
            match ().serve(transport).await {
                Ok(client) => Ok(client),
                Err(e) => {
                    // A server that died says why on stderr: let the reader catch up.
                    if let Some(reader) = reader {
                        let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
                    }
                    Err(format!("the MCP handshake failed: {e}"))
                }
            }
        }
        McpTransport::Http { url, headers } => {
            let mut http = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            for (k, v) in headers {
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("header `{k}` is not a valid header name"))?;
                let value = http::HeaderValue::from_str(v.expose()).map_err(|_| {
                    format!("the value of header `{k}` is not a valid header value")
                })?;
                http.custom_headers.insert(name, value);
            }
            // The client rmcp builds takes this process's TLS provider (ring).
            freeway_providers::transport::install_tls_provider();
            let transport = StreamableHttpClientTransport::from_config(http);
            ().serve(transport)
                .await
                .map_err(|e| format!("the MCP handshake with {url} failed: {e}"))
        }
    }
}

/// One tool of an MCP server.
struct McpTool {
    server: Arc<McpServer>,
    /// `mcp__<server>__<tool>`.
    name: String,
    tool: rmcp::model::Tool,
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn definition(&self) -> ToolDefinition {
        let description = match (&self.tool.title, &self.tool.description) {
            (Some(title), Some(d)) if !d.starts_with(title.as_str()) => format!("{title}: {d}"),
            (_, Some(d)) => d.to_string(),
            (Some(title), None) => title.clone(),
            (None, None) => format!("`{}` of MCP server {}", self.tool.name, self.server.name()),
        };
        ToolDefinition {
            name: self.name.clone(),
            description: Some(description),
            parameters: Value::Object((*self.tool.input_schema).clone()),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        match self.server.config.kind {
            ToolKindConfig::Read => ToolKind::Read,
            ToolKindConfig::Edit => ToolKind::Edit,
            ToolKindConfig::Execute => ToolKind::Execute,
        }
    }

    fn source(&self) -> &'static str {
        "mcp"
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let arguments = match args {
            Value::Object(o) => Some(o),
            Value::Null => None,
            _ => return Err(ToolError::new("the arguments must be a JSON object")),
        };
        let server = self.server.name();
        let timeout = self.server.config.timeout;
        let call = self.server.call(&self.tool.name, arguments);
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, call) => r,
            () = ctx.cancel.cancelled() => return Err(ToolError::new("aborted")),
        };
        let result = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(ToolError(format!(
                    "MCP server `{server}` failed the call: {e}"
                )));
            }
            Err(_) => {
                return Err(ToolError(format!(
                    "MCP server `{server}` did not answer within {} s",
                    timeout.as_secs_f64()
                )));
            }
        };
        let text = render(&result);
        if result.is_error == Some(true) {
            return Err(ToolError(match text.is_empty() {
                true => format!("the tool reported an error (MCP server `{server}`)"),
                false => text,
            }));
        }
        Ok(text)
    }
}

/// A tool result as text for the model: text parts as they are, other parts described.
fn render(result: &CallToolResult) -> String {
    let mut parts = Vec::new();
    for block in &result.content {
        let v = serde_json::to_value(block).unwrap_or(Value::Null);
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        match field("type") {
            "text" => parts.push(field("text").to_owned()),
            kind @ ("image" | "audio") => parts.push(format!(
                "[{kind} {}, {} bytes of base64 data]",
                field("mimeType"),
                field("data").len()
            )),
            "resource" => {
                let r = v.get("resource").cloned().unwrap_or(Value::Null);
                let uri = r.get("uri").and_then(Value::as_str).unwrap_or("");
                match r.get("text").and_then(Value::as_str) {
                    Some(text) => parts.push(format!("[resource {uri}]\n{text}")),
                    None => parts.push(format!("[resource {uri}: binary]")),
                }
            }
            "resource_link" => parts.push(format!("[resource link {}]", field("uri"))),
            other => parts.push(format!("[{other} content]")),
        }
    }
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        return serde_json::to_string_pretty(structured).unwrap_or_default();
    }
    parts.join("\n")
}
