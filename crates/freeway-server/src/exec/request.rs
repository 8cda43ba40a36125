//! The `POST /v1/exec` request as clients send it, validated into a sandbox [`ExecRequest`]
//! with a 400 naming the field at fault.

use std::collections::BTreeMap;
use std::path::PathBuf;

use freeway_sandbox::{CommandLine, ExecKind, ExecRequest, Isolation};
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Command,
    Code,
    File,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Code => "code",
            Self::File => "file",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireCommand {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum WireIsolation {
    ReadOnly,
    WorkspaceWrite,
    FullAccess,
}

/// The body of `POST /v1/exec`. Unknown fields are refused: a misspelt `timeout` must not
/// silently run with the default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireExecRequest {
    kind: Kind,
    #[serde(default)]
    command: Option<WireCommand>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    isolation: Option<WireIsolation>,
    #[serde(default)]
    analyze: Option<bool>,
    #[serde(default)]
    stream: bool,
}

/// A validated request: what to run, and what to do around it.
#[derive(Debug)]
pub struct Validated {
    pub request: ExecRequest,
    /// `None`: the server's default (`[sandbox] analyze_failures`).
    pub analyze: Option<bool>,
    pub stream: bool,
}

impl WireExecRequest {
    pub fn validate(self, max_timeout_ms: u64) -> Result<Validated, ApiError> {
        let kind = self.kind;
        let unused = |field: &str, present: bool| {
            if present {
                Err(ApiError::invalid(
                    field,
                    format!("is not used by kind \"{}\"", kind.name()),
                ))
            } else {
                Ok(())
            }
        };
        let exec_kind = match kind {
            Kind::Command => {
                unused("language", self.language.is_some())?;
                unused("source", self.source.is_some())?;
                unused("path", self.path.is_some())?;
                unused("args", self.args.is_some())?;
                let command = match self.command {
                    None => {
                        return Err(ApiError::invalid(
                            "command",
                            "is required for kind \"command\": a shell string or an argv array",
                        ));
                    }
                    Some(WireCommand::Shell(s)) if s.trim().is_empty() => {
                        return Err(ApiError::invalid("command", "is empty"));
                    }
                    Some(WireCommand::Argv(argv)) if argv.first().is_none_or(String::is_empty) => {
                        return Err(ApiError::invalid(
                            "command",
                            "the argv array is empty or its first element is empty",
                        ));
                    }
                    Some(WireCommand::Shell(s)) => CommandLine::Shell(s),
                    Some(WireCommand::Argv(argv)) => CommandLine::Argv(argv),
                };
                ExecKind::Command { command }
            }
            Kind::Code => {
                unused("command", self.command.is_some())?;
                unused("path", self.path.is_some())?;
                unused("args", self.args.is_some())?;
                let language = self
                    .language
                    .filter(|l| !l.trim().is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "language",
                            "is required for kind \"code\" (GET /v1/exec/languages lists them)",
                        )
                    })?;
                let known = freeway_sandbox::languages();
                let lower = language.trim().to_ascii_lowercase();
                if !known
                    .iter()
                    .any(|l| l.language == lower || l.aliases.contains(&lower.as_str()))
                {
                    let names: Vec<&str> = known.iter().map(|l| l.language).collect();
                    return Err(ApiError::invalid(
                        "language",
                        format!("unknown language `{language}`; known: {}", names.join(", ")),
                    ));
                }
                let source = self
                    .source
                    .ok_or_else(|| ApiError::invalid("source", "is required for kind \"code\""))?;
                ExecKind::Code {
                    language: lower,
                    source,
                }
            }
            Kind::File => {
                unused("command", self.command.is_some())?;
                unused("language", self.language.is_some())?;
                unused("source", self.source.is_some())?;
                let path = self
                    .path
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| ApiError::invalid("path", "is required for kind \"file\""))?;
                ExecKind::File {
                    path: PathBuf::from(path),
                    args: self.args.unwrap_or_default(),
                }
            }
        };
        if let Some(t) = self.timeout_ms
            && (t == 0 || t > max_timeout_ms)
        {
            return Err(ApiError::invalid(
                "timeout_ms",
                format!("must be between 1 and {max_timeout_ms} (sandbox.max_timeout_ms)"),
            ));
        }
        let env = self.env.unwrap_or_default();
        if let Some(bad) = env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(ApiError::invalid(
                "env",
                format!("`{bad}` is not a valid environment variable name"),
            ));
        }
        if let Some((k, _)) = env.iter().find(|(_, v)| v.contains('\0')) {
            return Err(ApiError::invalid(format!("env.{k}"), "contains a NUL byte"));
        }
        if self.cwd.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::invalid(
                "cwd",
                "is empty; omit it for the workspace",
            ));
        }
        let request = ExecRequest {
            kind: exec_kind,
            cwd: self.cwd.map(PathBuf::from),
            env,
            stdin: self.stdin,
            timeout_ms: self.timeout_ms,
            isolation: self.isolation.map(|i| match i {
                WireIsolation::ReadOnly => Isolation::ReadOnly,
                WireIsolation::WorkspaceWrite => Isolation::WorkspaceWrite,
                WireIsolation::FullAccess => Isolation::FullAccess,
            }),
            analyze: self.analyze.unwrap_or(false),
        };
        Ok(Validated {
            request,
            analyze: self.analyze,
            stream: self.stream,
        })
    }
}
