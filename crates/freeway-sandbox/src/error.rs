//! Errors of the sandbox. Each variant says what went wrong in terms a caller can act on.

use std::path::PathBuf;

/// Why a run could not be started or finished.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The exec policy refused the command line (HTTP 403).
    #[error("denied by exec policy rule `{rule}`: {reason}")]
    PolicyDenied {
        /// Name of the rule that matched.
        rule: String,
        /// Why the rule exists, for the caller.
        reason: String,
    },
    /// A required isolation mechanism is missing and the configuration says to refuse.
    #[error(
        "sandbox mechanism `{mechanism}` is unavailable ({detail}); refusing to run (set on_missing = \"degrade\" to run without it)"
    )]
    Unavailable {
        /// Mechanism name as printed by `freeway doctor`.
        mechanism: &'static str,
        /// What the probe found.
        detail: String,
    },
    /// The request is malformed (empty argv, unknown language, file outside workspace...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The language runtime for a `code` or `file` run is not installed.
    #[error("no runtime for {language} is installed (looked for {looked_for})")]
    RuntimeMissing {
        /// Language asked for.
        language: String,
        /// Executables searched on PATH.
        looked_for: String,
    },
    /// The working directory does not exist or is not a directory.
    #[error("working directory {0} does not exist")]
    MissingWorkdir(PathBuf),
    /// Preparing the sandbox (Landlock ruleset, seccomp filter, cgroup, temp dir) failed.
    #[error("preparing the sandbox failed at {stage}: {source}")]
    Setup {
        /// Which preparation step failed.
        stage: &'static str,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused to start the process (fork, exec or a restriction applied in the child).
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// Program that was being started.
        program: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the process failed.
    #[error("waiting for the process failed: {0}")]
    Wait(#[source] std::io::Error),
    /// An exec policy or redaction rule in the configuration does not compile.
    #[error("invalid rule `{name}`: {detail}")]
    InvalidRule {
        /// Rule name.
        name: String,
        /// Compiler message.
        detail: String,
    },
}

impl SandboxError {
    /// HTTP status a server should answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::PolicyDenied { .. } => 403,
            Self::InvalidRequest(_) | Self::MissingWorkdir(_) | Self::InvalidRule { .. } => 400,
            Self::RuntimeMissing { .. } => 422,
            Self::Unavailable { .. } => 503,
            Self::Setup { .. } | Self::Spawn { .. } | Self::Wait(_) => 500,
        }
    }

    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::PolicyDenied { .. } => "policy_denied",
            Self::Unavailable { .. } => "unavailable",
            Self::InvalidRequest(_) => "invalid_request",
            Self::RuntimeMissing { .. } => "runtime_missing",
            Self::MissingWorkdir(_) => "missing_workdir",
            Self::Setup { .. } => "setup",
            Self::Spawn { .. } => "spawn",
            Self::Wait(_) => "wait",
            Self::InvalidRule { .. } => "invalid_rule",
        }
    }
}
