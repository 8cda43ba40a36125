//! `freeway chat`.

use std::path::PathBuf;

use clap::Args;

use super::ConfigArg;

#[derive(Debug, Args)]
#[command(after_help = "Keys:
  Enter              send the message: the agent works on it (a turn)
  Ctrl-C             abort the running step; when idle, quit
  y / n              approve or deny a write or command the agent asks about
  Ctrl-O, /sessions  open a recent session (↑ ↓ to choose, Enter to open, Esc to close)
  /new               start a new session
  PageUp / PageDown  scroll the transcript (↑ ↓ by one line)
  ← → Home End       move in the input line; Ctrl-U, Ctrl-K, Ctrl-W delete
  Ctrl-D, /quit      quit

Examples:
  freeway chat --cwd ./my-repo
  freeway chat --resume ses_abc123
  freeway chat --agent reviewer --model openai/gpt-4.1 --yes

Sessions are kept in the store ([storage] url), the same as `freeway run`'s: one can be
continued by the other. Which calls ask for approval is the agent's `approval` mode.
NO_COLOR turns the colors off.")]
pub struct ChatArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The working directory of new sessions: the agent may read, edit and run in it.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub cwd: PathBuf,
    /// The agent of new sessions (from [[agents]]; `coder` ships).
    #[arg(long, default_value = "coder")]
    pub agent: String,
    /// A model id or route alias instead of the agent's, for new sessions.
    #[arg(long)]
    pub model: Option<String>,
    /// Open this session at start (its directory, agent and model).
    #[arg(long, value_name = "SESSION")]
    pub resume: Option<String>,
    /// Approve every write and command the agent's approval mode would ask about.
    #[arg(long, short = 'y')]
    pub yes: bool,
}
