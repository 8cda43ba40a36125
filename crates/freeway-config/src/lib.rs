//! `freeway.toml`: the configuration contract of DESIGN.md.
//!
//! Parsed in two phases (tensorzero's pattern): [`raw`] mirrors the file with spans for error
//! messages; [`load`] layers `FREEWAY_*` environment overrides on it, resolves `${VAR}` secret
//! references and validates everything into the runtime [`Config`], collecting every problem
//! with its file, line and key rather than stopping at the first. With no file at all the
//! embedded defaults apply: listen on loopback, SQLite, memory cache, the local model.
//!
//! This crate knows the file format and which values are valid; it does not start anything.

mod error;
mod load;
mod raw;
mod runtime;

pub use error::{ConfigError, ConfigErrors};
pub use load::{Source, load, load_str, mcp_tool_name};
pub use runtime::{
    AgentConfig, Approval, BreakerSettings, CLASSIFIER_FEATURES, CacheSettings, ClassifierConfig,
    Config, DEFAULT_LISTEN, JwtConfig, LOCAL_MODEL, LOCAL_PROVIDER, LogFormat, McpServerConfig,
    McpTransport, OtlpProtocol, PriceOverride, ProviderConfig, ProviderKind, RouteConfig,
    RoutingSettings, SandboxLevel, SandboxSettings, ServerConfig, Strategy, TelemetryConfig,
    TierConfig, ToolConfig, ToolKindConfig, TraceExport,
};
