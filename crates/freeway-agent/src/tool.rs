//! What a tool is: a name, a JSON schema, a kind, and an async call that returns text for the
//! model or an error message the model can act on.

use std::sync::Arc;

use freeway_sandbox::{Isolation, Sandbox};
use freeway_types::ToolDefinition;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::workspace::Workspace;

/// What a tool does to the world, which decides approvals and parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Reads only: runs without approval, in parallel with other reads.
    Read,
    /// Changes files of the workspace: approved under `suggest`.
    Edit,
    /// Runs a process: approved under `suggest` and `auto-edit`.
    Execute,
}

/// A piece of streamed tool output (a command's stdout or stderr as it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub stream: &'static str,
    pub text: String,
}

/// Everything a call may use. Paths go through [`ToolContext::workspace`], processes through
/// [`ToolContext::sandbox`] at [`ToolContext::isolation`].
#[derive(Clone)]
pub struct ToolContext {
    pub workspace: Workspace,
    pub sandbox: Arc<Sandbox>,
    pub isolation: Isolation,
    /// Streamed output, when someone listens.
    pub output: Option<mpsc::Sender<ToolOutput>>,
    /// Cancelled when the step is aborted: long calls stop early.
    pub cancel: CancellationToken,
}

/// A failure explained for the model: what went wrong and, where it helps, what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        ToolError(message.into())
    }
}

/// One tool the model can call.
#[async_trait::async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The name, description and JSON schema the model sees.
    fn definition(&self) -> ToolDefinition;

    fn kind(&self) -> ToolKind;

    /// Where the tool comes from: `builtin`, `config` (`[[tools]]`), `mcp`.
    fn source(&self) -> &'static str {
        "builtin"
    }

    /// The version its declaration gives, if any.
    fn version(&self) -> Option<&str> {
        None
    }

    /// Runs the call. `Ok` text and `Err` messages both go back to the model; an `Err` is
    /// marked as a failed call.
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError>;
}

/// Reads the arguments object into `T`, explaining a mismatch against the schema.
pub fn parse_args<T: serde::de::DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolError> {
    serde_json::from_value(args)
        .map_err(|e| ToolError(format!("invalid arguments for {tool}: {e}")))
}
