//! Arguments of `freeway teams`, `freeway keys`, `freeway usage` and `freeway audit`: clients of
//! a running server's `/admin` API.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::ConfigArg;

/// The commands that manage a running server through `/admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create, list, show and update teams: allowed models, budgets and rate limits.
    Teams(TeamsArgs),
    /// Create, list, update, rotate and revoke a team's virtual API keys.
    Keys(KeysArgs),
    /// Requests, tokens and spend, grouped by model, key, team, provider or day.
    Usage(UsageArgs),
    /// Read, verify and export the tamper-evident audit log of admin actions and requests.
    Audit(AuditArgs),
}

/// Which server to ask and with what key.
#[derive(Debug, Args, Clone)]
pub struct Connection {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The server to ask (default: http://<server.listen> of the configuration).
    #[arg(long, env = "FREEWAY_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The master key or an admin-role virtual key (default: server.master_key of the
    /// configuration).
    #[arg(
        long,
        env = "FREEWAY_ADMIN_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

/// The server to ask and how to print its answer; flattened last into every admin command so
/// that the command's own flags come first in `--help`.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Print the server's JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeriodArg {
    /// Resets at 00:00 UTC.
    Day,
    /// Resets on the first of the month, 00:00 UTC.
    Month,
}

impl PeriodArg {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodArg::Day => "day",
            PeriodArg::Month => "month",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything a developer may, plus the team's keys, usage and audit log.
    Admin,
    /// Calls models, agent tools and exec.
    Developer,
    /// Lists models and reads the team's usage; calls nothing.
    Viewer,
}

impl RoleArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::Admin => "admin",
            RoleArg::Developer => "developer",
            RoleArg::Viewer => "viewer",
        }
    }
}

/// Limits a team and a key share. A request must pass both the key's and its team's.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Models and route names the keys may call, comma-separated; `provider/*` admits a whole
    /// provider (default: all).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Agent tools the keys may have run, comma-separated; `mcp__<server>__*` admits an MCP
    /// server's (default: all).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Spend allowed per period, in USD; past it requests get 429 `budget_exceeded`.
    #[arg(long, value_name = "USD")]
    pub budget_usd: Option<f64>,
    /// The period the budget resets on, UTC (the server's default: month).
    #[arg(long, value_enum, value_name = "PERIOD")]
    pub period: Option<PeriodArg>,
    /// Requests per minute; past it requests get 429 `rate_limit_exceeded`.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u64>,
    /// Tokens (input + output) per minute; past it requests get 429 `rate_limit_exceeded`.
    #[arg(long, value_name = "N")]
    pub tpm: Option<u64>,
    /// Past the budget, send requests to this (cheaper) route instead of refusing them.
    #[arg(long, value_name = "route:NAME")]
    pub on_exceed: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    subcommand_required = true,
    after_help = "Examples:
  freeway teams create research --budget-usd 200 --period month --rpm 600
  freeway teams create interns --models local/*,cheap --budget-usd 5 --period day --on-exceed route:cheap
  freeway teams list
  freeway teams update research --tpm 200000 --clear budget

Every command asks the server at --url (default: http://<server.listen> of --config) with the
master key (--key, FREEWAY_ADMIN_KEY, else server.master_key).

Exit status: 0 on success, 1 when the server refused the request or could not be reached."
)]
pub struct TeamsArgs {
    #[command(subcommand)]
    pub action: TeamsAction,
}

#[derive(Debug, Subcommand)]
pub enum TeamsAction {
    /// Create a team.
    #[command(after_help = "Examples:
  freeway teams create research
  freeway teams create research --models openai/*,smart --budget-usd 200 --rpm 600 --tpm 500000
  freeway teams create interns --budget-usd 5 --period day --on-exceed route:cheap

Then give it keys: freeway keys create --team research --role developer")]
    Create(TeamCreateArgs),
    /// List every team with its limits.
    List(TeamListArgs),
    /// Show one team.
    Show(TeamShowArgs),
    /// Change a team's name, models or limits; --clear lifts a limit.
    #[command(
        after_help = "Only the fields given change. To lift a limit, name it in --clear:
  freeway teams update research --budget-usd 500
  freeway teams update research --clear budget,rpm      # no budget, no request rate limit
  freeway teams update research --clear models          # every model again
  freeway teams update research --name research-eu"
    )]
    Update(TeamUpdateArgs),
}

#[derive(Debug, Args)]
pub struct TeamCreateArgs {
    /// The team's name, unique; commands accept it wherever they take a team.
    pub name: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct TeamListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct TeamShowArgs {
    /// The team's id or name.
    pub team: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What `teams update --clear` can lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TeamField {
    /// The model allow list: every model.
    Models,
    /// The tool allow list: every tool.
    Tools,
    /// The budget: unlimited spend.
    Budget,
    /// The request rate limit.
    Rpm,
    /// The token rate limit.
    Tpm,
    /// The fallback route: refuse past the budget.
    OnExceed,
}

#[derive(Debug, Args)]
pub struct TeamUpdateArgs {
    /// The team's id or name.
    pub team: String,
    /// A new name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Lift these settings, comma-separated.
    #[arg(long, value_enum, value_name = "FIELD", value_delimiter = ',')]
    pub clear: Vec<TeamField>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    subcommand_required = true,
    after_help = "Examples:
  freeway keys create --team research --role developer --name ci --expires-in 90d
  freeway keys list --team research
  freeway keys rotate key_3kQ9… --grace 10m
  freeway keys revoke key_3kQ9…

A key's secret (fw-…) is printed once, when it is created or rotated; the server keeps only a
hash and the prefix that `keys list` shows. A key's limits apply within its team's.

Exit status: 0 on success, 1 when the server refused the request or could not be reached."
)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key for a team and print its secret, once.
    #[command(after_help = "Examples:
  freeway keys create --team research --role developer
  freeway keys create --team research --role developer --name ci --rpm 60 --expires-in 30d
  freeway keys create --team research --role admin --json | jq -r .key

The secret is printed once and never again: the server stores only its hash. Store it
in your secret manager right away; a lost secret cannot be recovered, only rotated.

Roles: admin manages the team's keys and reads its usage and audit log; developer calls
models, tools and exec; viewer lists models and reads usage.")]
    Create(KeyCreateArgs),
    /// List keys (their prefixes, never their secrets).
    List(KeyListArgs),
    /// Show one key.
    Show(KeyIdArg),
    /// Change a key's name, role, models, limits or expiry; --clear lifts a setting.
    #[command(
        after_help = "Only the fields given change. To lift a setting, name it in --clear:
  freeway keys update key_3kQ9… --role viewer
  freeway keys update key_3kQ9… --rpm 120 --clear budget
  freeway keys update key_3kQ9… --clear expires,models"
    )]
    Update(KeyUpdateArgs),
    /// Issue a new secret for a key; the old one keeps working for the grace period.
    #[command(after_help = "Examples:
  freeway keys rotate key_3kQ9…               # the old secret stops working now
  freeway keys rotate key_3kQ9… --grace 10m   # both work for ten minutes, time to redeploy

The new secret is printed once and never again.")]
    Rotate(KeyRotateArgs),
    /// Revoke a key: requests with it get 401 from now on. There is no undo.
    Revoke(KeyIdArg),
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// The team the key belongs to (id or name).
    #[arg(long, value_name = "TEAM")]
    pub team: String,
    /// What the key may do.
    #[arg(long, value_enum, value_name = "ROLE")]
    pub role: RoleArg,
    /// A label to recognize the key by, e.g. the service that uses it.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Let the key expire after this long, e.g. 90d, 12h, 30m.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// Only this team's keys (id or name).
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    /// Include revoked keys.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct KeyIdArg {
    /// The key's id (as `keys list` shows it).
    pub id: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What `keys update --clear` can lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyField {
    /// The label.
    Name,
    /// The model allow list: whatever the team allows.
    Models,
    /// The tool allow list: whatever the team allows.
    Tools,
    /// The key's own budget (the team's still applies).
    Budget,
    /// The key's request rate limit.
    Rpm,
    /// The key's token rate limit.
    Tpm,
    /// The fallback route: refuse past the budget.
    OnExceed,
    /// The expiry: the key never expires.
    Expires,
}

#[derive(Debug, Args)]
pub struct KeyUpdateArgs {
    /// The key's id.
    pub id: String,
    /// A new label.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A new role.
    #[arg(long, value_enum, value_name = "ROLE")]
    pub role: Option<RoleArg>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Expire this long from now, e.g. 90d, 12h, 30m.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    /// Lift these settings, comma-separated.
    #[arg(long, value_enum, value_name = "FIELD", value_delimiter = ',')]
    pub clear: Vec<KeyField>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// The key's id.
    pub id: String,
    /// How long the old secret keeps working, e.g. 10m, 1h (default: not at all).
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupBy {
    Model,
    Key,
    Team,
    Provider,
    Day,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Key => "key",
            GroupBy::Team => "team",
            GroupBy::Provider => "provider",
            GroupBy::Day => "day",
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  freeway usage                                  # everything, by model
  freeway usage --group-by team --since 2025-06-01
  freeway usage --group-by day --since 7d        # the last seven days, a row per day
  freeway usage --group-by key --json | jq '.data[] | select(.cost_usd > 1)'

Times are UTC: a date means its 00:00; --until is exclusive. The master key sees every
team; a team's key (a viewer's too) sees its own team.

Exit status: 0 on success, 1 when the server refused the request or could not be reached.")]
pub struct UsageArgs {
    /// One row per this.
    #[arg(long, value_enum, value_name = "BY", default_value = "model")]
    pub group_by: GroupBy,
    /// From this time on: a date (YYYY-MM-DD), unix seconds, or a span ago (7d, 12h).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Up to (not including) this time; same forms as --since.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    subcommand_required = true,
    after_help = "Every admin action (a team or key created, changed, rotated or revoked) and every model
request (action `request`) is appended to the audit log. Each entry carries the hash of the
one before it, so an edit or a deletion anywhere breaks the chain from there on, and
`freeway audit verify` finds it.

Examples:
  freeway audit list --action key.revoke
  freeway audit verify
  freeway audit export --output audit.jsonl"
)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Show audit entries, newest first.
    #[command(after_help = "Examples:
  freeway audit list                             # the newest 100 entries
  freeway audit list --action key.create --limit 10
  freeway audit list --oldest-first --after 500  # entries 501 onward, in order")]
    List(AuditListArgs),
    /// Recompute the hash chain and report the first entry that does not match.
    #[command(after_help = "Examples:
  freeway audit verify
  freeway audit verify --json   # {\"ok\", \"entries\", \"head_hash\", \"first_bad_seq\", \"problem\"}

Needs the master key. Keep the head hash somewhere else (a ticket, a log shipper): an
intact chain ending at the hash you kept proves nothing before it was changed.

Exit status: 0 when the chain is intact, 1 when it is broken (the first bad entry and why
are printed) or the check could not run.")]
    Verify(AuditVerifyArgs),
    /// Write every entry, oldest first, as JSON lines.
    #[command(after_help = "Examples:
  freeway audit export > audit.jsonl
  freeway audit export --output audit.jsonl

One JSON object per line, in sequence order, with the fields of `audit list --json`.")]
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// At most this many entries (the server's default: 100; at most 10000).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Only entries of this action, e.g. team.create, key.rotate, request.
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only entries after this sequence number.
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,
    /// Oldest first (for paging with --after).
    #[arg(long)]
    pub oldest_first: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Write to this file instead of standard output (replaced if it exists).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub connection: Connection,
}
