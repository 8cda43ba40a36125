//! The validated configuration the rest of freeway runs on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use freeway_providers::openai::{Preset, Quirks};
use freeway_providers::{HttpSettings, Secret};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
/// The provider name of the embedded model when no provider is configured.
pub const LOCAL_PROVIDER: &str = "local";
/// The model name the embedded default model is served under.
pub const LOCAL_MODEL: &str = "smollm2";

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, if any.
    pub file: Option<PathBuf>,
    pub server: ServerConfig,
    pub storage_url: String,
    pub cache: CacheSettings,
    /// Where rate-limit and budget counters live: `memory` or `redis://…`.
    pub limits_url: String,
    /// `[[prices]]`: overrides of the shipped price table.
    pub prices: Vec<PriceOverride>,
    /// Retry, deadline and circuit-breaker defaults for every request.
    pub routing: RoutingSettings,
    /// What the model name `default` resolves to, if anything.
    pub default_model: Option<String>,
    pub providers: Vec<ProviderConfig>,
    pub routes: Vec<RouteConfig>,
    pub agents: Vec<AgentConfig>,
    /// `[[tools]]`: command-line tools agents may call.
    pub tools: Vec<ToolConfig>,
    /// `[[mcp_servers]]`: MCP servers whose tools agents may call.
    pub mcp_servers: Vec<McpServerConfig>,
    pub telemetry: TelemetryConfig,
    pub sandbox: SandboxSettings,
    /// Things that are valid but worth saying (e.g. a setting that has no effect yet).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The admin key; `None` means no authentication, which is only allowed on loopback.
    pub master_key: Option<Secret>,
    pub max_body_bytes: usize,
    pub keep_alive: Duration,
    /// `[auth.jwt]`, when set.
    pub jwt: Option<JwtConfig>,
}

/// How bearer JWTs are checked and what their claims mean.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// HS256 secret.
    pub secret: Option<Secret>,
    /// RS256 public keys: the JWKS file's path.
    pub jwks_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub team_claim: String,
    pub role_claim: String,
    /// `admin`, `developer` or `viewer`.
    pub default_role: String,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Models listed in the file.
    pub models: Vec<String>,
    /// Whether to ask the provider for its models.
    pub discover_models: bool,
    /// The longest one answer may take, a whole stream included; `None`: no bound beyond the
    /// request's deadline.
    pub total_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    OpenAi {
        settings: HttpSettings,
        quirks: Quirks,
        preset: Option<Preset>,
    },
    Anthropic {
        settings: HttpSettings,
        default_max_tokens: u32,
    },
    Gemini {
        settings: HttpSettings,
    },
    Local {
        /// `None`: the default model in the user's model directory.
        model_path: Option<PathBuf>,
        model: String,
        threads: Option<u32>,
        context_size: Option<u32>,
    },
}

impl ProviderKind {
    pub fn protocol(&self) -> &'static str {
        match self {
            ProviderKind::OpenAi { .. } => "openai",
            ProviderKind::Anthropic { .. } => "anthropic",
            ProviderKind::Gemini { .. } => "gemini",
            ProviderKind::Local { .. } => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Targets in order; the next on a retryable failure.
    Fallback,
    /// Rotate the first target per request, falling back through the rest.
    RoundRobin,
    /// Pick the first target at random in proportion to `weights`.
    Weighted,
    /// The target with the lowest decaying average latency first.
    LeastLatency,
    /// The target with the fewest requests in flight first.
    LeastBusy,
    /// Classify the request and use the targets of the tier it falls in.
    Auto,
}

impl Strategy {
    /// The name as written in `freeway.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fallback => "fallback",
            Strategy::RoundRobin => "round_robin",
            Strategy::Weighted => "weighted",
            Strategy::LeastLatency => "least_latency",
            Strategy::LeastBusy => "least_busy",
            Strategy::Auto => "auto",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// `provider/model` ids; for `auto` routes, every tier's targets.
    pub targets: Vec<String>,
    pub strategy: Strategy,
    /// `weighted`: one weight per target.
    pub weights: Vec<u32>,
    /// `auto`: tiers from the cheapest to the most capable.
    pub tiers: Vec<TierConfig>,
    pub classifier: ClassifierConfig,
    /// Overrides of the `[routing]` defaults for this route.
    pub retries: Option<u32>,
    pub deadline: Option<Duration>,
    pub attempt_timeout: Option<Duration>,
    /// `Some(true)`: cache even non-deterministic requests; `Some(false)`: never cache.
    pub cache: Option<bool>,
}

/// One tier of an `auto` route.
#[derive(Debug, Clone)]
pub struct TierConfig {
    pub name: String,
    pub targets: Vec<String>,
    /// The highest complexity score this tier takes; `None` for the last tier (takes the rest).
    pub max_score: Option<u32>,
}

/// How an `auto` route scores a request. Each feature adds its points when present.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierConfig {
    /// Estimated prompt tokens above which `long_prompt` applies.
    pub long_prompt_tokens: u64,
    /// Estimated prompt tokens above which `very_long_prompt` applies too.
    pub very_long_prompt_tokens: u64,
    /// Messages in the conversation above which `deep_conversation` applies.
    pub deep_conversation_messages: usize,
    /// `max_tokens` at or above which `long_output` applies.
    pub long_output_tokens: u32,
    /// Words and phrases (case-insensitive) in the last user message that ask for reasoning.
    pub reasoning_cues: Vec<String>,
    /// Points per feature, by feature name (see [`CLASSIFIER_FEATURES`]).
    pub points: Vec<(String, u32)>,
}

/// The features an `auto` route scores, in the order they are reported.
pub const CLASSIFIER_FEATURES: [&str; 8] = [
    "long_prompt",
    "very_long_prompt",
    "code",
    "much_code",
    "reasoning",
    "tools",
    "deep_conversation",
    "long_output",
];

impl Default for ClassifierConfig {
    fn default() -> Self {
        let cues = [
            "step by step",
            "think",
            "reason",
            "prove",
            "proof",
            "analyze",
            "analyse",
            "debug",
            "refactor",
            "architecture",
            "design",
            "plan",
            "trade-off",
            "tradeoff",
            "optimize",
            "why does",
            "root cause",
            "compare",
        ];
        let points = [
            ("long_prompt", 1),
            ("very_long_prompt", 2),
            ("code", 1),
            ("much_code", 1),
            ("reasoning", 2),
            ("tools", 1),
            ("deep_conversation", 1),
            ("long_output", 1),
        ];
        ClassifierConfig {
            long_prompt_tokens: 1_000,
            very_long_prompt_tokens: 8_000,
            deep_conversation_messages: 8,
            long_output_tokens: 2_000,
            reasoning_cues: cues.iter().map(|c| (*c).to_owned()).collect(),
            points: points.iter().map(|(f, p)| ((*f).to_owned(), *p)).collect(),
        }
    }
}

/// `[routing]`: what every request gets unless its route says otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingSettings {
    /// Extra attempts on the same target after a retryable failure, before moving on.
    pub retries: u32,
    /// The first backoff; each retry doubles it, with full jitter.
    pub retry_base: Duration,
    /// The longest wait before a retry; a longer `Retry-After` moves on to the next target.
    pub retry_max: Duration,
    /// The whole request, every attempt and wait included.
    pub deadline: Duration,
    /// One attempt (for streams: until the first event); `None`: the provider's own timeouts.
    pub attempt_timeout: Option<Duration>,
    pub breaker: BreakerSettings,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            retries: 1,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            deadline: Duration::from_secs(600),
            attempt_timeout: None,
            breaker: BreakerSettings::default(),
        }
    }
}

/// The circuit breaker each target has.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive retryable failures that open the circuit; 0 disables the breaker.
    pub failures: u32,
    /// Failure ratio over `window` that opens the circuit, once `min_requests` were seen.
    pub error_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    /// How long an open circuit skips the target before one probe request is let through.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

/// A price from `[[prices]]`, USD per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceOverride {
    /// `provider/model` or a bare model name.
    pub model: String,
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
    pub cache_write: Option<f64>,
}

/// `[cache]`: the response cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// `memory`, `redis://…` or `off`.
    pub url: String,
    pub ttl: Duration,
    /// Memory backend: the most bytes of cached responses kept.
    pub max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            url: "memory".to_owned(),
            ttl: Duration::from_secs(3600),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxLevel {
    ReadOnly,
    WorkspaceWrite,
    FullAccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    Suggest,
    AutoEdit,
    FullAuto,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub tools: Vec<String>,
    pub sandbox: SandboxLevel,
    pub approval: Approval,
    pub max_steps: u32,
    /// Stop a session once it has cost this much.
    pub max_spend_usd: Option<f64>,
    /// Tokens of the model's context window, for compaction.
    pub context_window: Option<u32>,
    /// `[[mcp_servers]]` whose tools this agent gets.
    pub mcp_servers: Vec<String>,
}

/// An MCP server from `[[mcp_servers]]`.
#[derive(Debug, Clone)]
pub struct McpServerConfig {
    pub name: String,
    pub transport: McpTransport,
    /// Only these of its tools; `None`: all of them.
    pub tools: Option<Vec<String>>,
    /// What its tools do (MCP's own hints come from the server and are not trusted).
    pub kind: ToolKindConfig,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum McpTransport {
    /// A child process speaking MCP on its stdin and stdout.
    Stdio {
        command: Vec<String>,
        env: Vec<(String, Secret)>,
    },
    /// MCP's streamable HTTP transport.
    Http {
        url: String,
        headers: Vec<(String, Secret)>,
    },
}

/// A tool from `[[tools]]`: a command template run in the sandbox with the call's arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolConfig {
    pub name: String,
    pub description: String,
    pub version: Option<String>,
    /// A shell command line; `{arg}` is replaced by the argument, shell-quoted.
    pub command: String,
    /// The JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
    pub kind: ToolKindConfig,
    pub timeout_ms: Option<u64>,
}

/// What a configured tool does, which decides approvals and parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKindConfig {
    Read,
    Edit,
    Execute,
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Trace export over OTLP; `None` when no endpoint is configured.
    pub traces: Option<TraceExport>,
    pub log_format: LogFormat,
    pub access_log: bool,
    /// Log one in this many successful requests (1: all of them).
    pub access_log_every: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            traces: None,
            log_format: LogFormat::Pretty,
            access_log: true,
            access_log_every: 1,
        }
    }
}

/// `[telemetry] otlp_*` with the standard `OTEL_*` variables applied.
#[derive(Clone)]
pub struct TraceExport {
    /// For HTTP, the full URL spans are posted to (`…/v1/traces`); for gRPC, the collector's
    /// base URL.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Header values may hold secrets: they never print.
    pub headers: Vec<(String, Secret)>,
    pub service_name: String,
    /// The share of new traces recorded, in [0, 1].
    pub sample: f64,
    /// How long a finished span may wait for its batch.
    pub delay: Duration,
}

impl std::fmt::Debug for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TraceExport")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("service_name", &self.service_name)
            .field("sample", &self.sample)
            .field("delay", &self.delay)
            .finish()
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// Protobuf bodies posted over HTTP (port 4318 by convention).
    HttpProtobuf,
    /// `TraceService/Export` over HTTP/2 (port 4317 by convention).
    Grpc,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: aligned, colored on a terminal (unless `NO_COLOR`).
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[sandbox]`: how processes are run, and who explains their failures.
#[derive(Clone)]
pub struct SandboxSettings {
    /// What `freeway-sandbox` runs with. `secrets` holds the configured secrets, the master key
    /// and every provider API key, all redacted from outputs.
    pub config: freeway_sandbox::SandboxConfig,
    /// The largest `timeout_ms` a request may ask for.
    pub max_timeout_ms: u64,
    /// The model (id or route alias) asked to analyze a failure; `None`: no model analysis.
    pub analysis_model: Option<String>,
    /// Analyze failed runs when the request does not say (`analyze` omitted).
    pub analyze_failures: bool,
    /// How long to wait for the analysis model.
    pub analysis_timeout: Duration,
}

impl std::fmt::Debug for SandboxSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("SandboxSettings")
            .field("workspace", &c.workspace)
            .field("isolation", &c.isolation)
            .field("network", &c.network)
            .field("on_missing", &c.on_missing)
            .field("limits", &c.limits)
            .field("default_timeout_ms", &c.default_timeout_ms)
            .field("rules", &c.rules.len())
            .field("secrets", &format_args!("[{} redacted]", c.secrets.len()))
            .field("max_timeout_ms", &self.max_timeout_ms)
            .field("analysis_model", &self.analysis_model)
            .field("analyze_failures", &self.analyze_failures)
            .finish_non_exhaustive()
    }
}
