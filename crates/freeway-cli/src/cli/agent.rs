//! `freeway run` and `freeway sessions`.

use std::path::PathBuf;

use clap::Args;

use super::ConfigArg;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  freeway run \"fix the failing test\" --cwd ./my-repo
  freeway run \"why does the build fail?\" --agent coder --model openai/gpt-4.1
  freeway run \"now add a test for it\" --resume ses_abc123
  freeway run --json \"list the TODOs\" | jq -c 'select(.type == \"tool.started\")'
  echo \"explain src/main.rs\" | freeway run -

Events go to stdout: the answer as text, or one JSON object per line with --json
(session.started, message.delta, tool.started, tool.output, tool.finished,
message.completed, compaction, error, session.idle). Tool activity goes to stderr.
The session is kept in the store ([storage] url); resume it with --resume.

Exit status: 0 answered, 1 failed, 2 stopped at the step or spend limit, 130 aborted (Ctrl-C).")]
pub struct RunArgs {
    /// The task, or `-` to read it from stdin.
    pub task: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// The working directory the agent may read, edit and run in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub cwd: PathBuf,
    /// The agent (from [[agents]]; `coder` ships).
    #[arg(long, default_value = "coder")]
    pub agent: String,
    /// A model id or route alias instead of the agent's.
    #[arg(long)]
    pub model: Option<String>,
    /// Continue this session (its directory, agent and model) with the task.
    #[arg(long, value_name = "SESSION")]
    pub resume: Option<String>,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Approve every write and command the agent's approval mode would ask about.
    #[arg(long, short = 'y')]
    pub yes: bool,
}
