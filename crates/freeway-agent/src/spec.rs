//! What an agent is: its model, prompt, tools, sandbox level, approval mode and limits.

use freeway_config::{AgentConfig, Approval, SandboxLevel};
use freeway_sandbox::Isolation;

/// The tools an agent gets when its configuration names none.
pub const DEFAULT_TOOLS: &[&str] = &[
    "read_file",
    "write_file",
    "edit_file",
    "list",
    "glob",
    "grep",
    "bash",
    "run_code",
];

/// Context window assumed when the configuration gives none.
pub const DEFAULT_CONTEXT_WINDOW: u32 = 128_000;

pub const CODER_PROMPT: &str = "You are a coding agent working in a repository on the user's \
machine. Use the tools to look before you change anything: list and grep to find code, read_file \
to read it, edit_file for precise changes, bash to build and run tests. Keep changes minimal and \
in the style of the code around them. After a change, run the relevant tests or checks and read \
their output. When you are done, answer with a short summary of what you found and changed. If \
a tool fails, read its message: it says what to do instead. Never invent file contents or \
command output.";

#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: String,
    /// A model id or route alias.
    pub model: String,
    pub system_prompt: String,
    pub tools: Vec<String>,
    pub isolation: Isolation,
    pub approval: Approval,
    pub max_steps: u32,
    /// Stop a session once it has cost this much (USD); `None`: no limit.
    pub max_spend_usd: Option<f64>,
    /// Tokens of the model's window; compaction starts at 80 % of it.
    pub context_window: u32,
    /// MCP servers whose tools the agent gets besides `tools`.
    pub mcp_servers: Vec<String>,
}

impl AgentSpec {
    /// The agent that ships: every built-in tool, workspace-write, full-auto within the sandbox.
    pub fn coder(model: impl Into<String>) -> Self {
        AgentSpec {
            name: "coder".to_owned(),
            model: model.into(),
            system_prompt: CODER_PROMPT.to_owned(),
            tools: DEFAULT_TOOLS.iter().map(|t| (*t).to_owned()).collect(),
            isolation: Isolation::WorkspaceWrite,
            approval: Approval::FullAuto,
            max_steps: 50,
            max_spend_usd: None,
            context_window: DEFAULT_CONTEXT_WINDOW,
            mcp_servers: Vec::new(),
        }
    }

    pub fn from_config(config: &AgentConfig) -> Self {
        AgentSpec {
            name: config.name.clone(),
            model: config.model.clone(),
            system_prompt: config
                .system_prompt
                .clone()
                .unwrap_or_else(|| CODER_PROMPT.to_owned()),
            tools: if config.tools.is_empty() {
                DEFAULT_TOOLS.iter().map(|t| (*t).to_owned()).collect()
            } else {
                config.tools.clone()
            },
            isolation: match config.sandbox {
                SandboxLevel::ReadOnly => Isolation::ReadOnly,
                SandboxLevel::WorkspaceWrite => Isolation::WorkspaceWrite,
                SandboxLevel::FullAccess => Isolation::FullAccess,
            },
            approval: config.approval,
            max_steps: config.max_steps,
            max_spend_usd: config.max_spend_usd,
            context_window: config.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW),
            mcp_servers: config.mcp_servers.clone(),
        }
    }
}

/// The configured agents, with `coder` added on `default_model` when none is named so.
pub fn agents_from_config(agents: &[AgentConfig], default_model: Option<&str>) -> Vec<AgentSpec> {
    let mut specs: Vec<AgentSpec> = agents.iter().map(AgentSpec::from_config).collect();
    if !specs.iter().any(|a| a.name == "coder")
        && let Some(model) = default_model
    {
        specs.push(AgentSpec::coder(model));
    }
    specs
}
