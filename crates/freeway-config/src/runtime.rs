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
    pub cache_url: String,
    /// What the model name `default` resolves to, if anything.
    pub default_model: Option<String>,
    pub providers: Vec<ProviderConfig>,
    pub routes: Vec<RouteConfig>,
    pub agents: Vec<AgentConfig>,
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
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Models listed in the file.
    pub models: Vec<String>,
    /// Whether to ask the provider for its models.
    pub discover_models: bool,
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
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// `provider/model` ids (or other route names).
    pub targets: Vec<String>,
    pub strategy: Strategy,
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
}

#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<String>,
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
