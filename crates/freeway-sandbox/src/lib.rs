//! `freeway-sandbox` owns running processes for freeway: every run in its own session and
//! process group (and cgroup, pids and memory, when the kernel offers one), timeouts that kill
//! the whole group (SIGTERM, then SIGKILL after a grace period), resource limits, Landlock
//! filesystem rules, network denial with seccomp, a scrubbed environment, an exec policy over
//! the command line, capped and streamed output with secret redaction, code runners for the
//! installed languages, and a deterministic diagnosis of failures.
//!
//! It knows nothing of HTTP, models or configuration files: the server maps [`ExecRequest`] and
//! [`ExecResult`] to `POST /v1/exec`, the CLI prints [`probe`] for `freeway doctor`, and the
//! agent builds a model analysis from [`analysis_prompt`].
//!
//! A process is started with `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does, not with
//! `fork`, so a spawn costs the same whatever the size of the server. Restrictions are applied
//! in the child between the clone and the `exec`, with everything prepared in the parent: the
//! Landlock ruleset is created and filled, the seccomp program compiled (once per [`Sandbox`]),
//! rlimits computed and the cgroup opened, so the child only makes async-signal-safe system
//! calls and allocates nothing. No re-exec launcher is needed, which keeps a sandboxed spawn
//! close to a plain one.
//!
//! Linux only.

mod capture;
mod cgroup;
mod config;
mod diagnosis;
mod error;
mod exec;
mod landlock_rules;
mod policy;
mod probe;
mod process;
mod redact;
mod runners;
mod seccomp;
mod sys;
mod tempdir;
mod types;

pub use cgroup::CgroupVersion;
pub use config::{Isolation, Limits, OnMissing, SandboxConfig};
pub use diagnosis::{
    Category, Context as DiagnosisContext, Diagnoser, Diagnosis, ModelAnalysis, analysis_prompt,
};
pub use error::SandboxError;
pub use exec::Sandbox;
pub use policy::{ExecPolicy, PolicyDecision, RuleAction, RuleConfig};
pub use probe::{Capabilities, Mechanism, probe};
pub use redact::{Redactor, StreamRedactor};
pub use runners::{LanguageInfo, languages_on};
pub use types::{CommandLine, ExecKind, ExecRequest, ExecResult, LimitHit, OutputChunk, Stream};

/// Every supported language and whether its runtime is installed on this host's PATH.
pub fn languages() -> Vec<LanguageInfo> {
    languages_on(&std::env::var_os("PATH").unwrap_or_default())
}
