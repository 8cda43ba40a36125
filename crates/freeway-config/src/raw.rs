//! The file as written, with spans for error messages. Unknown keys are errors.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// The model that `"model": "default"` resolves to.
    pub default_model: Option<S<String>>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub routing: RawRouting,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub limits: RawRateLimits,
    #[serde(default)]
    pub prices: Vec<RawPrice>,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub agents: Vec<RawAgent>,
    #[serde(default)]
    pub tools: Vec<RawTool>,
    #[serde(default)]
    pub mcp_servers: Vec<RawMcpServer>,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub sandbox: RawSandbox,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<S<String>>,
    pub master_key: Option<S<String>>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: Option<S<u64>>,
    /// Seconds of upstream silence after which a stream gets a keep-alive comment.
    pub keep_alive_secs: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub url: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    /// `memory` (default), `redis://…`, or `off`.
    pub url: Option<S<String>>,
    pub ttl_secs: Option<S<f64>>,
    pub max_bytes: Option<S<u64>>,
}

/// `[auth]`: ways to authenticate besides the master key and virtual keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub jwt: Option<S<RawJwt>>,
}

/// `[auth.jwt]`: bearer JWTs from an SSO proxy, claims mapped to a team and a role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    /// HS256: the shared secret (use `${ENV}`).
    pub secret: Option<S<String>>,
    /// RS256: a JWKS file with the public keys (matched by `kid`).
    pub jwks_file: Option<S<String>>,
    pub issuer: Option<S<String>>,
    pub audience: Option<S<String>>,
    /// The claim naming the team (its id or name); default `team`.
    pub team_claim: Option<S<String>>,
    /// The claim naming the role; default `role`.
    pub role_claim: Option<S<String>>,
    /// The role when the token has no role claim; default `developer`.
    pub default_role: Option<S<String>>,
}

/// `[limits]`: where rate-limit and budget counters live.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    /// `memory` (default) or `redis://…`.
    pub url: Option<S<String>>,
}

/// `[[prices]]`: a price that overrides (or adds to) the shipped table, USD per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrice {
    /// `provider/model` (exact) or a bare model name (dated snapshots match by prefix).
    pub model: S<String>,
    pub input: S<f64>,
    pub output: S<f64>,
    pub cached_input: Option<S<f64>>,
    pub cache_write: Option<S<f64>>,
}

/// `[routing]`: retry, deadline and circuit-breaker defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouting {
    pub retries: Option<S<u32>>,
    pub retry_base_ms: Option<S<u64>>,
    pub retry_max_ms: Option<S<u64>>,
    pub deadline_secs: Option<S<f64>>,
    pub attempt_timeout_secs: Option<S<f64>>,
    pub breaker_failures: Option<S<u32>>,
    pub breaker_error_rate: Option<S<f64>>,
    pub breaker_min_requests: Option<S<u32>>,
    pub breaker_window_secs: Option<S<f64>>,
    pub breaker_cooldown_secs: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub name: S<String>,
    pub protocol: Option<S<String>>,
    /// An OpenAI-compatible vendor whose base URL and conventions to use.
    pub preset: Option<S<String>>,
    pub base_url: Option<S<String>>,
    pub api_key: Option<S<String>>,
    /// Models to expose; when empty they are discovered from the provider.
    #[serde(default)]
    pub models: Vec<S<String>>,
    /// Whether to ask the provider for its model list (default: when `models` is empty).
    pub discover_models: Option<S<bool>>,
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
    pub connect_timeout_secs: Option<S<f64>>,
    pub first_byte_timeout_secs: Option<S<f64>>,
    pub read_timeout_secs: Option<S<f64>>,
    /// The longest one answer from this provider may take, a whole stream included.
    pub total_timeout_secs: Option<S<f64>>,
    /// Anthropic: `max_tokens` sent when the client gives none.
    pub default_max_tokens: Option<S<u32>>,
    /// Local: the GGUF file.
    pub model_path: Option<S<String>>,
    /// Local: the name clients use for the model (`local/<model>`).
    pub model: Option<S<String>>,
    /// Local: inference threads.
    pub threads: Option<S<u32>>,
    /// Local: context window in tokens.
    pub context_size: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: S<String>,
    /// Required except for `auto` routes, whose targets are in their tiers.
    pub targets: Option<S<Vec<S<String>>>>,
    pub strategy: Option<S<String>>,
    pub weights: Option<S<Vec<S<u32>>>>,
    #[serde(default)]
    pub tiers: Vec<RawTier>,
    pub classifier: Option<RawClassifier>,
    pub retries: Option<S<u32>>,
    pub deadline_secs: Option<S<f64>>,
    pub attempt_timeout_secs: Option<S<f64>>,
    pub cache: Option<S<bool>>,
}

/// `[[routes.tiers]]` of an `auto` route, cheapest first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTier {
    pub name: S<String>,
    pub targets: S<Vec<S<String>>>,
    pub max_score: Option<S<u32>>,
}

/// `[routes.classifier]` of an `auto` route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClassifier {
    pub long_prompt_tokens: Option<S<u64>>,
    pub very_long_prompt_tokens: Option<S<u64>>,
    pub deep_conversation_messages: Option<S<u64>>,
    pub long_output_tokens: Option<S<u32>>,
    pub reasoning_cues: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub points: BTreeMap<String, S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub name: S<String>,
    pub model: Option<S<String>>,
    pub system_prompt: Option<S<String>>,
    pub tools: Option<S<Vec<S<String>>>>,
    pub sandbox: Option<S<String>>,
    pub approval: Option<S<String>>,
    pub max_steps: Option<S<u32>>,
    pub max_spend_usd: Option<S<f64>>,
    pub context_window: Option<S<u32>>,
    /// Names of `[[mcp_servers]]` whose tools this agent gets.
    pub mcp_servers: Option<S<Vec<S<String>>>>,
}

/// `[[mcp_servers]]`: a Model Context Protocol server whose tools agents may call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMcpServer {
    pub name: S<String>,
    /// stdio: the program and its arguments.
    pub command: Option<S<Vec<S<String>>>>,
    /// stdio: environment variables for the program (values may be `${SECRET}`).
    #[serde(default)]
    pub env: BTreeMap<String, S<String>>,
    /// Streamable HTTP: the endpoint.
    pub url: Option<S<String>>,
    /// Streamable HTTP: headers sent with every request (values may be `${SECRET}`).
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
    /// Only these of the server's tools (default: all).
    pub tools: Option<S<Vec<S<String>>>>,
    /// read | edit | execute: what its tools do, for approvals (default execute).
    pub kind: Option<S<String>>,
    /// Longest a call may take.
    pub timeout_secs: Option<S<f64>>,
}

/// `[[tools]]`: a command-line tool agents may call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTool {
    pub name: S<String>,
    pub description: S<String>,
    pub version: Option<S<String>>,
    /// A shell command line with `{arg}` placeholders, run in the sandbox.
    pub command: S<String>,
    /// The JSON Schema of the arguments, as a TOML table.
    pub parameters: Option<S<toml::Table>>,
    /// read | edit | execute
    pub kind: Option<S<String>>,
    pub timeout_ms: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    /// Where traces go: an OTLP collector (`http://host:4318`, or `…:4317` for gRPC).
    pub otlp_endpoint: Option<S<String>>,
    /// `http/protobuf` (default) or `grpc`.
    pub otlp_protocol: Option<S<String>>,
    /// Sent with every export, e.g. a hosted collector's key (`${VAR}` allowed).
    #[serde(default)]
    pub otlp_headers: BTreeMap<String, S<String>>,
    /// The share of new traces recorded, in [0, 1] (default 1); a client's sampled flag wins.
    pub trace_sample: Option<S<f64>>,
    /// The `service.name` of the spans (default `freeway`).
    pub service_name: Option<S<String>>,
    /// `pretty` (default) or `json`.
    pub log_format: Option<S<String>>,
    /// One log line per request (default true).
    pub access_log: Option<S<bool>>,
    /// The share of successful requests logged, in (0, 1]; errors are always logged.
    pub access_log_sample: Option<S<f64>>,
}

/// `[sandbox]`: how `/v1/exec`, `freeway exec` and agent tools run processes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    /// Working directory of runs that name none (default: the directory freeway started in).
    pub workspace: Option<S<String>>,
    /// read-only | workspace-write | full-access.
    pub isolation: Option<S<String>>,
    /// deny | allow.
    pub network: Option<S<String>>,
    /// refuse | degrade.
    pub on_missing: Option<S<String>>,
    pub default_timeout_ms: Option<S<u64>>,
    /// The largest `timeout_ms` a request may ask for.
    pub max_timeout_ms: Option<S<u64>>,
    pub kill_grace_ms: Option<S<u64>>,
    pub output_limit_bytes: Option<S<u64>>,
    #[serde(default)]
    pub limits: RawLimits,
    pub env_allow: Option<S<Vec<S<String>>>>,
    pub deny_read: Option<S<Vec<S<String>>>>,
    pub writable_roots: Option<S<Vec<S<String>>>>,
    /// Keep the built-in deny rules.
    pub default_rules: Option<S<bool>>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Values to redact; `${ENV}` references are resolved.
    pub secrets: Option<S<Vec<S<String>>>>,
    /// The model (id or route) that writes the analysis of a failure; `"off"` disables it.
    pub analysis_model: Option<S<String>>,
    /// Analyze every failed run unless the request says `"analyze": false`.
    pub analyze_failures: Option<S<bool>>,
    pub analysis_timeout_secs: Option<S<f64>>,
}

/// `[sandbox.limits]`; 0 means no limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub cpu_seconds: Option<S<u64>>,
    pub memory_bytes: Option<S<u64>>,
    pub file_size_bytes: Option<S<u64>>,
    pub max_processes: Option<S<u64>>,
    pub open_files: Option<S<u64>>,
}

/// `[[sandbox.rules]]`: exactly one of `prefix`, `glob`, `regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: S<String>,
    pub action: S<String>,
    pub prefix: Option<S<Vec<String>>>,
    pub glob: Option<S<String>>,
    pub regex: Option<S<String>>,
    pub reason: Option<S<String>>,
}
