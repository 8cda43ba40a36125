//! Arguments of `freeway exec` and `freeway doctor`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::ConfigArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// Read everything not denied; write only to a private temp dir.
    ReadOnly,
    /// Also write inside the working directory.
    WorkspaceWrite,
    /// No filesystem or network rules (limits, timeouts and redaction still apply).
    FullAccess,
}

#[derive(Debug, Args)]
#[command(after_help = "What to run (exactly one):
  -- <ARGV>...                      a program and its arguments, run directly
  --shell <STRING>                  a shell command line, run by /bin/sh -c
  --code <LANG> --source <FILE|->   a snippet; `freeway doctor` lists the languages
  --file <PATH> [-- <ARGS>...]      a workspace file, run by its extension or #! line

Examples:
  freeway exec -- ls -la
  freeway exec --shell 'make test 2>&1 | tail -20'
  freeway exec --code python --source script.py
  echo 'print(6 * 7)' | freeway exec --code python --source -
  freeway exec --file scripts/check.sh -- --verbose
  freeway exec --analyze -- python3 -c 'import nosuchmodule'
  freeway exec --json --timeout 5s -- sleep 60

Output: the command's stdout and stderr stream live; then a summary, the diagnosis of a
failure and, with --analyze, a model's analysis go to stderr (colors off with NO_COLOR).

Exit status: the command's own; 128+N when killed by signal N; 124 on timeout; 125 when
freeway could not run it (policy denial, missing sandbox mechanism, bad arguments).")]
pub struct ExecArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Run a shell command line with /bin/sh -c.
    #[arg(long, value_name = "STRING", conflicts_with_all = ["code", "file"])]
    pub shell: Option<String>,
    /// Run a code snippet in this language (give it with --source).
    #[arg(
        long,
        value_name = "LANG",
        requires = "source",
        conflicts_with = "file"
    )]
    pub code: Option<String>,
    /// The snippet's file, or `-` for standard input.
    #[arg(long, value_name = "FILE|-", requires = "code")]
    pub source: Option<String>,
    /// Run a file by its extension or #! line; arguments after `--` are passed to it.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Working directory (default: the configured workspace, else the current directory).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Timeout, e.g. 30s, 500ms, 2m (a bare number is seconds).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Isolation level (default: [sandbox] isolation, else workspace-write).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub isolation: Option<IsolationArg>,
    /// Allow network access (denied by default outside full-access).
    #[arg(long)]
    pub allow_network: bool,
    /// Ask the analysis model to explain a failure ([sandbox] analysis_model, else default_model).
    #[arg(long)]
    pub analyze: bool,
    /// Extra environment variable for the run (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Give the run this file as standard input (`-` for freeway's own stdin); default: empty.
    #[arg(long, value_name = "FILE|-")]
    pub stdin: Option<String>,
    /// Print the /v1/exec response as JSON instead of streaming the output.
    #[arg(long)]
    pub json: bool,
    /// The program and its arguments (or, with --file, the file's arguments).
    #[arg(last = true, value_name = "ARGV")]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  freeway doctor
  freeway doctor --json
  freeway doctor --config freeway.toml   # its store, providers and what on_missing will do

Checks the store (opened and migrated), every provider (a remote one must answer a model
listing within 5 s; the embedded model's file must be there), the sandbox mechanisms of this
kernel and the installed languages.

Exit status: 0 when all is well; 1 when the store or a provider fails its check, or when runs
at the configured isolation would be refused (a missing mechanism and on_missing = \"refuse\").")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
