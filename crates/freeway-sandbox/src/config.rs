//! Configuration of a [`crate::Sandbox`]: isolation level, limits, what to do when the kernel
//! lacks a mechanism, environment allow list, exec policy rules and secrets to redact.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::RuleConfig;

/// How much of the host a run may touch (names as users know them from Codex CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Read everything not denied; write only to the run's private temp dir.
    ReadOnly,
    /// Read everything not denied; write inside the working directory and the private temp dir.
    #[default]
    WorkspaceWrite,
    /// No filesystem or network rules; limits, process-group control and redaction still apply.
    FullAccess,
}

impl Isolation {
    /// Name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::WorkspaceWrite => "workspace-write",
            Self::FullAccess => "full-access",
        }
    }
}

/// What to do when a mechanism the isolation level needs is missing on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissing {
    /// Refuse to run ([`crate::SandboxError::Unavailable`]).
    #[default]
    Refuse,
    /// Run without it, list it in [`crate::ExecResult::degraded`] and log a warning.
    Degrade,
}

/// Resource limits applied to every run. `None` leaves the inherited limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// CPU seconds (RLIMIT_CPU; SIGXCPU then SIGKILL).
    pub cpu_seconds: Option<u64>,
    /// Memory in bytes: the limit of the run's memory cgroup (resident memory, swap included)
    /// where the kernel offers one, else RLIMIT_AS (address space).
    pub memory_bytes: Option<u64>,
    /// Largest file a run may write, in bytes (RLIMIT_FSIZE).
    pub file_size_bytes: Option<u64>,
    /// Processes and threads of a run (cgroup `pids.max`; RLIMIT_NPROC when not root).
    pub max_processes: Option<u64>,
    /// Open file descriptors (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: Some(300),
            memory_bytes: Some(8 << 30),
            file_size_bytes: Some(1 << 30),
            max_processes: Some(256),
            open_files: Some(1024),
        }
    }
}

/// Everything a [`crate::Sandbox`] needs to know; plain data, deserializable from `freeway.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Working directory of runs that do not name one; `file` runs resolve paths against it.
    pub workspace: PathBuf,
    /// Isolation of runs that do not ask for one.
    pub isolation: Isolation,
    /// Allow network access in `read-only` and `workspace-write` (always allowed in full-access).
    pub network: bool,
    /// Refuse or degrade when the kernel lacks a mechanism.
    pub on_missing: OnMissing,
    /// Resource limits.
    pub limits: Limits,
    /// Timeout of runs that do not give one, in milliseconds.
    pub default_timeout_ms: u64,
    /// Time between SIGTERM and SIGKILL of the process group, in milliseconds.
    pub kill_grace_ms: u64,
    /// Bytes of stdout and of stderr kept in the result (each); the rest is cut with a marker.
    pub output_limit_bytes: usize,
    /// Environment variables passed through from the server's environment.
    pub env_allow: Vec<String>,
    /// Paths a sandboxed run may not read (nor write), e.g. credential directories.
    pub deny_read: Vec<PathBuf>,
    /// Extra directories writable in `workspace-write`.
    pub writable_roots: Vec<PathBuf>,
    /// Exec policy rules, evaluated in order before the built-in defaults; first match wins.
    pub rules: Vec<RuleConfig>,
    /// Keep the built-in deny rules (`rm -rf /`, `mkfs`, fork bombs, `curl | sh`...).
    pub default_rules: bool,
    /// Secret values redacted from every output (in addition to well-known credential shapes).
    pub secrets: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut deny_read = Vec::new();
        if let Some(home) = &home {
            for dir in [
                ".ssh",
                ".aws",
                ".gnupg",
                ".config/gcloud",
                ".docker",
                ".kube",
                ".netrc",
            ] {
                deny_read.push(home.join(dir));
            }
        }
        deny_read.push(PathBuf::from("/etc/shadow"));
        deny_read.push(PathBuf::from("/etc/gshadow"));
        Self {
            workspace: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            isolation: Isolation::default(),
            network: false,
            on_missing: OnMissing::default(),
            limits: Limits::default(),
            default_timeout_ms: 30_000,
            kill_grace_ms: 2_000,
            output_limit_bytes: 256 * 1024,
            env_allow: [
                "PATH",
                "HOME",
                "USER",
                "LOGNAME",
                "SHELL",
                "LANG",
                "LANGUAGE",
                "LC_ALL",
                "LC_CTYPE",
                "TERM",
                "TZ",
                "RUSTUP_HOME",
                "CARGO_HOME",
                "GOPATH",
                "GOROOT",
                "PYENV_ROOT",
                "VIRTUAL_ENV",
                "NODE_PATH",
                "JAVA_HOME",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            deny_read,
            writable_roots: Vec::new(),
            rules: Vec::new(),
            default_rules: true,
            secrets: Vec::new(),
        }
    }
}
