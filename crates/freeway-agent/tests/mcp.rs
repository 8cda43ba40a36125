#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The MCP client against a real third-party server: the reference "everything" server from
//! npm (`tests/mcp`, installed by `npm ci --prefix tests/mcp`), over stdio and streamable HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use freeway_agent::mcp::{McpServer, connect_all};
use freeway_agent::{Tool, ToolContext, ToolKind, Workspace};
use freeway_config::{McpServerConfig, McpTransport, ToolKindConfig};
use freeway_sandbox::{Isolation, OnMissing, Sandbox, SandboxConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The server's entry point; the tests need it installed.
pub fn everything() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci --prefix tests/mcp` (make test does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

fn stdio(tools: Option<Vec<&str>>) -> McpServerConfig {
    McpServerConfig {
        name: "everything".into(),
        transport: McpTransport::Stdio {
            command: vec!["node".into(), everything(), "stdio".into()],
            env: Vec::new(),
        },
        tools: tools.map(|t| t.into_iter().map(String::from).collect()),
        kind: ToolKindConfig::Read,
        timeout: Duration::from_secs(30),
    }
}

fn context(dir: &std::path::Path) -> ToolContext {
    let sandbox = Sandbox::new(SandboxConfig {
        workspace: dir.to_path_buf(),
        on_missing: OnMissing::Degrade,
        ..SandboxConfig::default()
    })
    .unwrap();
    ToolContext {
        workspace: Workspace::new(dir).unwrap(),
        sandbox: Arc::new(sandbox),
        isolation: Isolation::WorkspaceWrite,
        output: None,
        cancel: CancellationToken::new(),
    }
}

fn tool(tools: &[Arc<dyn Tool>], name: &str) -> Arc<dyn Tool> {
    tools
        .iter()
        .find(|t| t.definition().name == name)
        .unwrap_or_else(|| {
            let names: Vec<String> = tools.iter().map(|t| t.definition().name).collect();
            panic!("no {name} among {names:?}")
        })
        .clone()
}

#[tokio::test]
async fn stdio_server_tools_are_listed_and_called() {
    let server = McpServer::connect(stdio(None)).await.unwrap();
    let tools = server.tools();
    let echo = tool(&tools, "mcp__everything__echo");
    let d = echo.definition();
    assert!(d.description.unwrap().contains("Echoes back"));
    assert_eq!(d.parameters["properties"]["message"]["type"], "string");
    assert_eq!(echo.kind(), ToolKind::Read);
    assert_eq!(echo.source(), "mcp");

    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let out = echo
        .call(&ctx, json!({"message": "hello, mcp"}))
        .await
        .unwrap();
    assert_eq!(out, "Echo: hello, mcp");
    let sum = tool(&tools, "mcp__everything__get-sum");
    let out = sum.call(&ctx, json!({"a": 2, "b": 40})).await.unwrap();
    assert!(out.contains("42"), "{out}");

    // Arguments the server's schema refuses come back as a failed call the model can read.
    let err = sum.call(&ctx, json!({"a": "two"})).await.unwrap_err();
    assert!(!err.0.is_empty());
    let err = echo.call(&ctx, json!("not an object")).await.unwrap_err();
    assert_eq!(err.0, "the arguments must be a JSON object");

    // Calls run side by side on one connection.
    let calls = (0..8).map(|i| {
        let (echo, ctx) = (echo.clone(), ctx.clone());
        async move { echo.call(&ctx, json!({"message": format!("n{i}")})).await }
    });
    let outs = futures_util::future::join_all(calls).await;
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.unwrap(), format!("Echo: n{i}"));
    }
}

#[tokio::test]
async fn an_allow_list_keeps_only_the_named_tools() {
    let server = McpServer::connect(stdio(Some(vec!["echo"]))).await.unwrap();
    let names: Vec<String> = server.tools().iter().map(|t| t.definition().name).collect();
    assert_eq!(names, ["mcp__everything__echo"]);

    let err = McpServer::connect(stdio(Some(vec!["echo", "nope"])))
        .await
        .err()
        .unwrap();
    assert!(
        err.contains("`nope`, which the server does not offer"),
        "{err}"
    );
    assert!(err.contains("get-sum"), "{err}");
}

#[tokio::test]
async fn a_server_that_fails_to_start_says_why() {
    let mut config = stdio(None);
    config.name = "broken".into();
    config.transport = McpTransport::Stdio {
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo 'missing API token' >&2; exit 3".into(),
        ],
        env: Vec::new(),
    };
    let mut missing = stdio(None);
    missing.transport = McpTransport::Stdio {
        command: vec!["/nonexistent/mcp-server".into()],
        env: Vec::new(),
    };
    let results = connect_all(&[config, missing]).await;
    let status = results[0].as_ref().err().unwrap();
    assert!(!status.connected);
    let error = status.error.as_deref().unwrap();
    assert!(error.contains("handshake failed"), "{error}");
    assert!(error.contains("missing API token"), "{error}");
    let error = results[1].as_ref().err().unwrap().error.clone().unwrap();
    assert!(error.contains("could not be started"), "{error}");
}

#[tokio::test]
async fn stdio_servers_get_only_their_configured_environment() {
    // Cargo and nextest give the test process this; the server must not inherit it.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    let mut config = stdio(Some(vec!["get-env"]));
    config.transport = McpTransport::Stdio {
        command: vec!["node".into(), everything(), "stdio".into()],
        env: vec![("GIVEN".into(), freeway_providers::Secret::new("yes"))],
    };
    let server = McpServer::connect(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tool(&server.tools(), "mcp__everything__get-env")
        .call(&context(dir.path()), json!({}))
        .await
        .unwrap();
    assert!(out.contains("GIVEN"), "{out}");
    assert!(!out.contains("CARGO_PKG_NAME"), "{out}");
    assert!(out.contains("PATH"), "{out}");
}

#[tokio::test]
async fn streamable_http_server_tools_are_called() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = tokio::process::Command::new("node")
        .args([everything(), "streamableHttp".into()])
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config = McpServerConfig {
        name: "remote".into(),
        transport: McpTransport::Http {
            url: format!("http://127.0.0.1:{port}/mcp"),
            headers: vec![("X-Team".into(), freeway_providers::Secret::new("a"))],
        },
        tools: Some(vec!["echo".into()]),
        kind: ToolKindConfig::Execute,
        timeout: Duration::from_secs(30),
    };
    let server = McpServer::connect(config).await.unwrap();
    assert_eq!(server.status().transport, "http");
    let echo = tool(&server.tools(), "mcp__remote__echo");
    assert_eq!(echo.kind(), ToolKind::Execute);
    let dir = tempfile::tempdir().unwrap();
    let out = echo
        .call(&context(dir.path()), json!({"message": "over http"}))
        .await
        .unwrap();
    assert_eq!(out, "Echo: over http");
}
