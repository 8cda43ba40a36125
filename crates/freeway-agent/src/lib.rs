//! `freeway-agent`: coding agents that read, edit and run code in a working directory.
//!
//! [`Runtime::run`] is the loop: the model is called with the session's context and the agent's
//! tools, the calls it asks for run (reads in parallel, writes and commands one by one, each
//! through the approval mode and, for processes, the sandbox), results go back, and so on until
//! an answer or a limit. Every step is an [`Event`] for whoever listens (CLI, HTTP) and a
//! [`Record`] appended to the session in `freeway-store`, from which a later turn, or a
//! process restarted in between, rebuilds the context.

pub mod approval;
pub mod compaction;
pub mod event;
pub mod mcp;
pub mod model;
pub mod record;
pub mod runtime;
pub mod spec;
pub mod tool;
pub mod tools;
pub mod workspace;

pub use approval::{ApprovalRequest, ApproveAll, Approver, Decision, DenyAll, Pending};
pub use event::{Event, StopReason};
pub use mcp::{McpServer, McpStatus};
pub use model::{GatewayModel, ModelClient, ModelError, ModelStream};
pub use record::{Context, Measured, Record};
pub use runtime::{AgentError, Claim, Owner, Runtime, SessionOptions, Turn, TurnOutcome};
pub use spec::{AgentSpec, DEFAULT_TOOLS, agents_from_config};
pub use tool::{Tool, ToolContext, ToolError, ToolKind, ToolOutput, parse_args};
pub use workspace::Workspace;
