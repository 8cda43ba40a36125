//! `[[mcp_servers]]`: Model Context Protocol servers whose tools agents may call, over stdio
//! (a child process) or streamable HTTP.

use std::collections::HashSet;
use std::time::Duration;

use freeway_providers::Secret;

use crate::raw::RawMcpServer;
use crate::runtime::{McpServerConfig, McpTransport};

use super::Cx;
use super::tools::is_name;

/// Longest an MCP tool call may take unless `timeout_secs` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What models see an MCP tool as: `mcp__<server>__<tool>`, as Claude Code names them.
pub fn mcp_tool_name(server: &str, tool: &str) -> String {
    format!("mcp__{server}__{tool}")
}

impl Cx<'_> {
    pub(super) fn mcp_servers(&mut self, servers: &[RawMcpServer]) -> Vec<McpServerConfig> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        'servers: for m in servers {
            let name = m.name.get_ref().clone();
            let key = |field: &str| format!("mcp_servers.{name}.{field}");
            if !is_name(&name) || name.contains("__") {
                self.error(
                    m.name.span(),
                    key("name"),
                    "a server name is letters, digits, `_` and `-`, without `__` (its tools are named mcp__<server>__<tool>)",
                );
                continue;
            }
            if !names.insert(name.clone()) {
                self.error(
                    m.name.span(),
                    key("name"),
                    format!("an MCP server named `{name}` is already defined"),
                );
                continue;
            }
            let transport = match (&m.command, &m.url) {
                (Some(command), None) => {
                    let command: Vec<String> = command
                        .get_ref()
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect();
                    if command.first().is_none_or(|c| c.is_empty()) {
                        self.error(
                            m.command.as_ref().map_or(m.name.span(), |c| c.span()),
                            key("command"),
                            "name the program to run, then its arguments: command = [\"npx\", \"-y\", \"@modelcontextprotocol/server-everything\"]",
                        );
                        continue;
                    }
                    if let Some(h) = m.headers.values().next() {
                        self.error(
                            h.span(),
                            key("headers"),
                            "headers are for `url` servers; a `command` server takes `env`",
                        );
                        continue;
                    }
                    let mut env = Vec::new();
                    for (k, v) in &m.env {
                        let Some(value) = self.resolve(v, &key(&format!("env.{k}"))) else {
                            continue 'servers;
                        };
                        env.push((k.clone(), Secret::new(value)));
                    }
                    McpTransport::Stdio { command, env }
                }
                (None, Some(url)) => {
                    let u = url.get_ref();
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        self.error(
                            url.span(),
                            key("url"),
                            "an MCP endpoint is an http:// or https:// URL (e.g. http://127.0.0.1:3001/mcp)",
                        );
                        continue;
                    }
                    if let Some(e) = m.env.values().next() {
                        self.error(
                            e.span(),
                            key("env"),
                            "env is for `command` servers; a `url` server takes `headers`",
                        );
                        continue;
                    }
                    let mut headers = Vec::new();
                    for (k, v) in &m.headers {
                        let Some(value) = self.resolve(v, &key(&format!("headers.{k}"))) else {
                            continue 'servers;
                        };
                        headers.push((k.clone(), Secret::new(value)));
                    }
                    McpTransport::Http {
                        url: u.clone(),
                        headers,
                    }
                }
                (Some(c), Some(_)) => {
                    self.error(
                        c.span(),
                        key("command"),
                        "set `command` (stdio) or `url` (streamable HTTP), not both",
                    );
                    continue;
                }
                (None, None) => {
                    self.error(
                        m.name.span(),
                        key("command"),
                        "set `command` (a program speaking MCP on stdio) or `url` (a streamable HTTP endpoint)",
                    );
                    continue;
                }
            };
            let Some(kind) = self.tool_kind(m.kind.as_ref(), key("kind")) else {
                continue;
            };
            let timeout = match &m.timeout_secs {
                None => DEFAULT_TIMEOUT,
                Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 => {
                    Duration::from_secs_f64(*t.get_ref())
                }
                Some(t) => {
                    self.error(
                        t.span(),
                        key("timeout_secs"),
                        "must be a positive number of seconds",
                    );
                    continue;
                }
            };
            let tools = m
                .tools
                .as_ref()
                .map(|t| t.get_ref().iter().map(|s| s.get_ref().clone()).collect());
            out.push(McpServerConfig {
                name,
                transport,
                tools,
                kind,
                timeout,
            });
        }
        out
    }
}
