//! `bash` and `run_code`: processes run through `freeway-sandbox` at the session's isolation
//! level, in its working directory, with streamed output and the exec policy applied.

use freeway_sandbox::{ExecRequest, ExecResult, OutputChunk, SandboxError, Stream};
use freeway_types::ToolDefinition;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::tool::{Tool, ToolContext, ToolError, ToolKind, ToolOutput, parse_args};

/// The longest a model may ask a command to run.
const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Output kept for the model from each stream; the sandbox caps what it captures already.
const MODEL_OUTPUT_CHARS: usize = 30_000;

pub struct Bash;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BashArgs {
    command: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[async_trait::async_trait]
impl Tool for Bash {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "bash".into(),
            description: Some(
                "Run a shell command (sh -c) in the working directory, in the sandbox. Returns \
                 the exit code, stdout and stderr; a failing command is not a tool error, read \
                 its output. Network access is denied unless the deployment allows it."
                    .into(),
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The command line, e.g. `cargo test -q`."},
                    "timeout_ms": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS,
                                   "description": "Kill the command after this long (default from the sandbox, 30 s)."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Execute
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: BashArgs = parse_args("bash", args)?;
        if args.command.trim().is_empty() {
            return Err(ToolError::new("the command is empty"));
        }
        let mut request = ExecRequest::shell(&args.command);
        if let Some(ms) = args.timeout_ms {
            request = request.with_timeout_ms(ms.clamp(1, MAX_TIMEOUT_MS));
        }
        run(ctx, request, &args.command).await
    }
}

pub struct RunCode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunCodeArgs {
    language: String,
    source: String,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[async_trait::async_trait]
impl Tool for RunCode {
    fn definition(&self) -> ToolDefinition {
        let languages: Vec<String> = freeway_sandbox::languages()
            .into_iter()
            .filter(|l| l.available)
            .map(|l| l.language.to_owned())
            .collect();
        ToolDefinition {
            name: "run_code".into(),
            description: Some(format!(
                "Run a snippet of source code in the sandbox, in the working directory, and \
                 return its exit code, stdout and stderr. Installed languages: {}.",
                languages.join(", ")
            )),
            parameters: json!({
                "type": "object",
                "properties": {
                    "language": {"type": "string", "enum": languages},
                    "source": {"type": "string", "description": "The complete program."},
                    "stdin": {"type": "string", "description": "Text given on standard input."},
                    "timeout_ms": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS}
                },
                "required": ["language", "source"],
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Execute
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: RunCodeArgs = parse_args("run_code", args)?;
        let what = format!("{} code", args.language);
        let mut request = ExecRequest::code(args.language, args.source);
        if let Some(stdin) = args.stdin {
            request = request.with_stdin(stdin);
        }
        if let Some(ms) = args.timeout_ms {
            request = request.with_timeout_ms(ms.clamp(1, MAX_TIMEOUT_MS));
        }
        run(ctx, request, &what).await
    }
}

/// Runs `request` in the session's directory and isolation, forwarding output as it comes and
/// stopping (the sandbox kills the process group) when the step is aborted.
pub(crate) async fn run(
    ctx: &ToolContext,
    request: ExecRequest,
    what: &str,
) -> Result<String, ToolError> {
    let request = request
        .with_cwd(ctx.workspace.root())
        .with_isolation(ctx.isolation);
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
    let forward = {
        let out = ctx.output.clone();
        async move {
            while let Some(chunk) = rx.recv().await {
                if let Some(out) = &out {
                    let stream = match chunk.stream {
                        Stream::Stdout => "stdout",
                        Stream::Stderr => "stderr",
                    };
                    // A slow listener must not stall the process: drop output it cannot take.
                    let _ = out.try_send(ToolOutput {
                        stream,
                        text: chunk.text,
                    });
                }
            }
        }
    };
    let sandbox = ctx.sandbox.clone();
    let execution =
        async move { tokio::join!(sandbox.run_streaming(request, Some(tx)), forward).0 };
    let result = tokio::select! {
        result = execution => result,
        () = ctx.cancel.cancelled() => return Err(ToolError(format!("{what} was aborted by the user"))),
    };
    match result {
        Ok(result) => Ok(describe(&result)),
        Err(SandboxError::PolicyDenied { rule, reason }) => Err(ToolError(format!(
            "the exec policy refused this command (rule `{rule}`): {reason}. Do not retry it; find another way or ask the user."
        ))),
        Err(e) => Err(ToolError(format!("could not run {what}: {e}"))),
    }
}

/// The result as the model reads it.
fn describe(result: &ExecResult) -> String {
    let mut out = String::new();
    let status = match (result.exit_code, result.signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended".to_owned(),
    };
    out.push_str(&status);
    out.push_str(&format!(" after {} ms", result.duration_ms));
    if result.timed_out {
        out.push_str(" (timed out: the process group was killed)");
    }
    out.push('\n');
    for (name, text) in [("stdout", &result.stdout), ("stderr", &result.stderr)] {
        if text.is_empty() {
            continue;
        }
        out.push_str(&format!("--- {name} ---\n"));
        out.push_str(&tail(text, MODEL_OUTPUT_CHARS));
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    if result.stdout.is_empty() && result.stderr.is_empty() {
        out.push_str("(no output)\n");
    }
    if result.truncated {
        out.push_str("(output was longer than the capture limit and was cut)\n");
    }
    if let Some(d) = &result.diagnosis {
        out.push_str(&format!(
            "--- diagnosis: {} ---\n",
            serde_json::to_value(d.category)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
        for e in &d.evidence {
            out.push_str(&format!("evidence: {e}\n"));
        }
        for s in &d.suggestions {
            out.push_str(&format!("suggestion: {s}\n"));
        }
    }
    out
}

/// The last `max` characters of `text`, where errors usually are, with a marker when cut.
fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let skip = count - max;
    let start = text.char_indices().nth(skip).map_or(0, |(i, _)| i);
    format!("[… {skip} characters cut …]\n{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use freeway_sandbox::{Isolation, OnMissing, Sandbox, SandboxConfig};
    use tokio_util::sync::CancellationToken;

    use crate::workspace::Workspace;

    fn ctx(dir: &std::path::Path) -> Result<ToolContext, Box<dyn std::error::Error>> {
        let config = SandboxConfig {
            workspace: dir.to_path_buf(),
            on_missing: OnMissing::Degrade,
            ..SandboxConfig::default()
        };
        Ok(ToolContext {
            workspace: Workspace::new(dir)?,
            sandbox: Arc::new(Sandbox::new(config)?),
            isolation: Isolation::WorkspaceWrite,
            output: None,
            cancel: CancellationToken::new(),
        })
    }

    #[tokio::test]
    async fn bash_reports_exit_code_and_both_streams() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ctx = ctx(dir.path())?;
        let out = Bash
            .call(&ctx, json!({"command": "echo out; echo err >&2; exit 3"}))
            .await?;
        assert!(out.starts_with("exit code 3"), "{out}");
        assert!(out.contains("--- stdout ---\nout\n"), "{out}");
        assert!(out.contains("--- stderr ---\nerr\n"), "{out}");
        Ok(())
    }

    #[tokio::test]
    async fn bash_runs_in_the_working_directory_and_streams()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (tx, mut rx) = mpsc::channel(16);
        let ctx = ToolContext {
            output: Some(tx),
            ..ctx(dir.path())?
        };
        let out = Bash
            .call(&ctx, json!({"command": "touch made && ls"}))
            .await?;
        assert!(out.contains("made"), "{out}");
        assert!(dir.path().join("made").exists());
        drop(ctx);
        let mut streamed = String::new();
        while let Some(chunk) = rx.recv().await {
            streamed.push_str(&chunk.text);
        }
        assert!(streamed.contains("made"), "{streamed}");
        Ok(())
    }

    #[tokio::test]
    async fn the_exec_policy_refusal_is_explained() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ctx = ctx(dir.path())?;
        let err = Bash
            .call(&ctx, json!({"command": "rm -rf /"}))
            .await
            .err()
            .ok_or("rm -rf / ran")?;
        assert!(err.0.contains("exec policy refused"), "{err}");
        Ok(())
    }

    #[tokio::test]
    async fn an_abort_stops_the_command() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ctx = ctx(dir.path())?;
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            cancel.cancel();
        });
        let err = Bash
            .call(&ctx, json!({"command": "sleep 30"}))
            .await
            .err()
            .ok_or("sleep finished")?;
        assert!(err.0.contains("aborted"), "{err}");
        Ok(())
    }

    #[test]
    fn long_output_keeps_its_tail() {
        let text = "x".repeat(10) + "END";
        let cut = tail(&text, 5);
        assert!(cut.ends_with("xxEND"), "{cut}");
        assert!(cut.contains("8 characters cut"), "{cut}");
    }
}
