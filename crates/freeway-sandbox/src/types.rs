//! Request and result types of one run, serde-serializable in the shape of `POST /v1/exec`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Isolation;
use crate::diagnosis::Diagnosis;

/// A command given either as one shell string (run by `sh -c`) or as an argv vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// Run with `/bin/sh -c`.
    Shell(String),
    /// Executed directly, `argv[0]` looked up on PATH.
    Argv(Vec<String>),
}

impl CommandLine {
    /// The command as one line, for policy matching and messages.
    pub fn display(&self) -> String {
        match self {
            Self::Shell(s) => s.clone(),
            Self::Argv(argv) => argv.join(" "),
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExecKind {
    /// A command line.
    Command {
        /// Shell string or argv.
        command: CommandLine,
    },
    /// A snippet of source code in a language (see [`crate::languages`]).
    Code {
        /// Language name: bash, sh, python, node, c, cpp, rust, go.
        language: String,
        /// Source text.
        source: String,
    },
    /// A file of the workspace, run by its extension or shebang.
    File {
        /// Path, relative to the working directory or absolute.
        path: PathBuf,
        /// Arguments passed to the program.
        #[serde(default)]
        args: Vec<String>,
    },
}

/// One run as asked by a caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// What to run.
    #[serde(flatten)]
    pub kind: ExecKind,
    /// Working directory (default: the configured workspace).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Extra environment, applied after scrubbing.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Bytes written to stdin, which is then closed; `None` gives an empty stdin.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Timeout in milliseconds (default from the configuration).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Isolation level (default from the configuration).
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Ask for a model analysis on failure (done by the caller; see [`crate::analysis_context`]).
    #[serde(default)]
    pub analyze: bool,
}

impl ExecRequest {
    /// A request for a shell command with every option at its default.
    pub fn shell(command: impl Into<String>) -> Self {
        Self::new(ExecKind::Command {
            command: CommandLine::Shell(command.into()),
        })
    }

    /// A request for an argv command with every option at its default.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(ExecKind::Command {
            command: CommandLine::Argv(argv.into_iter().map(Into::into).collect()),
        })
    }

    /// A request for a code snippet.
    pub fn code(language: impl Into<String>, source: impl Into<String>) -> Self {
        Self::new(ExecKind::Code {
            language: language.into(),
            source: source.into(),
        })
    }

    /// A request with every option at its default.
    pub fn new(kind: ExecKind) -> Self {
        Self {
            kind,
            cwd: None,
            env: BTreeMap::new(),
            stdin: None,
            timeout_ms: None,
            isolation: None,
            analyze: false,
        }
    }

    /// Builder: set the working directory.
    #[must_use]
    pub fn with_cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Builder: set the timeout.
    #[must_use]
    pub fn with_timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Builder: set the isolation level.
    #[must_use]
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Builder: give stdin.
    #[must_use]
    pub fn with_stdin(mut self, stdin: impl Into<String>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of output, already redacted, sent while the process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Stream it came from.
    pub stream: Stream,
    /// Text (invalid UTF-8 replaced).
    pub text: String,
}

/// A resource limit the kernel enforced on the run, when it can be told from the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitHit {
    /// RLIMIT_CPU: killed by SIGXCPU or SIGKILL after using its CPU seconds.
    Cpu,
    /// RLIMIT_FSIZE: SIGXFSZ.
    FileSize,
    /// The process count limit refused a fork.
    Processes,
    /// The memory cgroup's limit: the kernel's OOM killer ended a process of the run.
    Memory,
}

/// Outcome of one run: the `/v1/exec` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit status when the process exited; `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// Signal number that killed it.
    pub signal: Option<i32>,
    /// Captured stdout, redacted and capped.
    pub stdout: String,
    /// Captured stderr, redacted and capped.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub duration_ms: u64,
    /// The timeout fired and the process group was killed.
    pub timed_out: bool,
    /// stdout or stderr exceeded the cap and was cut.
    pub truncated: bool,
    /// Peak resident set of the process (and the children it waited for), in KiB.
    pub max_rss_kb: u64,
    /// User plus system CPU time, in milliseconds.
    pub cpu_ms: u64,
    /// Deterministic diagnosis of a failure; `None` on success.
    pub diagnosis: Option<Diagnosis>,
    /// Isolation level applied.
    pub isolation: Isolation,
    /// Network access was denied to the run.
    pub network_denied: bool,
    /// Mechanisms that were missing and skipped because the configuration says to degrade.
    pub degraded: Vec<String>,
    /// A resource limit the run ran into, when known.
    pub limit_hit: Option<LimitHit>,
    /// Process id (also the process group and session id) the run had.
    pub pid: u32,
}

impl ExecResult {
    /// The process exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}
