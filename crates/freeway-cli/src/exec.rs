//! `freeway exec`: one run in the sandbox, in this process (no server needed), with the same
//! request validation, diagnosis, model analysis and JSON as `POST /v1/exec`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use freeway_config::{SandboxSettings, Source};
use freeway_gateway::Gateway;
use freeway_sandbox::{
    CommandLine, ExecKind, ExecRequest, ExecResult, Isolation, OutputChunk, Stream,
};
use freeway_server::exec::{ExecState, Outcome, Validated, execute, response_body, sandbox_error};
use tokio::sync::mpsc;

use crate::cli::{ExecArgs, IsolationArg};
use crate::commands::{load, local_loader};
use crate::output::{self, Style, paint};

/// Exit status when freeway itself could not run the command (as `env` and `timeout` do).
const EXIT_NOT_RUN: u8 = 125;
/// Exit status of a run that timed out (as `timeout` does).
const EXIT_TIMEOUT: u8 = 124;

/// The exec routes' state from `[sandbox]`; a sandbox that cannot be built is logged and kept
/// as the reason `/v1/exec` answers 503.
pub fn exec_state(settings: &SandboxSettings) -> ExecState {
    let mut state = ExecState::build(settings.config.clone());
    state.max_timeout_ms = settings.max_timeout_ms;
    state.analysis_model.clone_from(&settings.analysis_model);
    state.analyze_failures = settings.analyze_failures;
    state.analysis_timeout = settings.analysis_timeout;
    state
}

pub async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let config = load(&Source {
        file: args.config.config.clone(),
        listen: None,
    })?;
    let request = match request(&args) {
        Ok(r) => r,
        Err(message) => {
            output::error(&message);
            return Ok(ExitCode::from(EXIT_NOT_RUN));
        }
    };
    let mut settings = config.sandbox.clone();
    settings.config.network |= args.allow_network;
    let state = exec_state(&settings);
    let sandbox = match &state.sandbox {
        Ok(s) => s.clone(),
        Err(reason) => {
            output::error(reason);
            return Ok(ExitCode::from(EXIT_NOT_RUN));
        }
    };
    let wants_analysis = args.analyze || settings.analyze_failures;
    let gateway = if wants_analysis {
        Gateway::from_config(&config, &local_loader)
    } else {
        Err("not needed".to_owned())
    };
    let gateway_ref = gateway.as_ref().map_err(String::as_str);
    let kind = request.kind.clone();
    let validated = Validated {
        request,
        analyze: args.analyze.then_some(true),
        stream: false,
    };

    let outcome = if args.json {
        execute(&state, &sandbox, gateway_ref, validated, None).await
    } else {
        let (tx, rx) = mpsc::channel(64);
        let (outcome, ended_with_newline) = tokio::join!(
            execute(&state, &sandbox, gateway_ref, validated, Some(tx)),
            print_live(rx)
        );
        if !ended_with_newline {
            output::stderr_raw("\n");
        }
        outcome
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let e = sandbox_error(e, &kind);
            let mut message = e.message;
            if let Some(param) = e.param.filter(|p| !message.starts_with(p.as_str())) {
                message = format!("{param}: {message}");
            }
            output::error(&message);
            return Ok(ExitCode::from(EXIT_NOT_RUN));
        }
    };
    if args.json {
        output::line(&serde_json::to_string_pretty(&response_body(&outcome))?);
    } else {
        report(&outcome);
    }
    Ok(ExitCode::from(exit_status(&outcome.result)))
}

/// Prints chunks as they come; says whether the last one ended a line.
async fn print_live(mut rx: mpsc::Receiver<OutputChunk>) -> bool {
    let mut ended = true;
    while let Some(chunk) = rx.recv().await {
        if chunk.text.is_empty() {
            continue;
        }
        ended = chunk.text.ends_with('\n');
        match chunk.stream {
            Stream::Stdout => output::stdout_raw(&chunk.text),
            Stream::Stderr => output::stderr_raw(&chunk.text),
        }
    }
    ended
}

/// The category as the JSON spells it (`missing_module`).
fn category_name(c: freeway_sandbox::Category) -> String {
    match serde_json::to_value(c) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
}

fn exit_status(r: &ExecResult) -> u8 {
    if r.timed_out {
        return EXIT_TIMEOUT;
    }
    match (r.exit_code, r.signal) {
        (Some(code), _) => u8::try_from(code.clamp(0, 255)).unwrap_or(1),
        (None, Some(sig)) => u8::try_from((128 + sig).clamp(0, 255)).unwrap_or(1),
        (None, None) => 1,
    }
}

/// The summary, the diagnosis and the analysis, on stderr.
fn report(outcome: &Outcome) {
    let r = &outcome.result;
    let status = if r.timed_out {
        paint(Style::Red, "timed out")
    } else {
        match (r.exit_code, r.signal) {
            (Some(0), _) => paint(Style::Green, "exit 0"),
            (Some(code), _) => paint(Style::Red, &format!("exit {code}")),
            (None, Some(sig)) => paint(Style::Red, &format!("killed by signal {sig}")),
            (None, None) => paint(Style::Red, "no status"),
        }
    };
    let network = if r.network_denied {
        "network denied"
    } else {
        "network allowed"
    };
    output::note(&format!(
        "{} {status} · {:.2}s · cpu {}ms · max rss {:.1} MiB · {}, {network}{}",
        paint(Style::Dim, "──"),
        r.duration_ms as f64 / 1000.0,
        r.cpu_ms,
        r.max_rss_kb as f64 / 1024.0,
        r.isolation.as_str(),
        if r.truncated {
            " · output truncated"
        } else {
            ""
        },
    ));
    for d in &r.degraded {
        output::warning(&format!("ran without {d} (on_missing = \"degrade\")"));
    }
    if let Some(d) = &r.diagnosis {
        output::note(&format!(
            "{} {} {}",
            paint(Style::Bold, "diagnosis:"),
            paint(Style::Yellow, &category_name(d.category)),
            paint(Style::Dim, &format!("(confidence {:.2})", d.confidence)),
        ));
        for e in &d.evidence {
            output::note(&format!("  {} {e}", paint(Style::Dim, "│")));
        }
        for s in &d.suggestions {
            output::note(&format!(
                "  {} {}",
                paint(Style::Bold, "try:"),
                paint(Style::Cyan, s)
            ));
        }
    }
    match &outcome.analysis {
        None => {}
        Some(Ok(a)) => {
            let x = &a.analysis;
            output::note(&format!(
                "{} {} {}",
                paint(Style::Bold, &format!("analysis by {}:", a.model)),
                x.summary,
                paint(
                    Style::Dim,
                    &format!("({}, confidence {:.2})", x.category, x.confidence)
                ),
            ));
            output::note(&format!(
                "  {} {}",
                paint(Style::Bold, "root cause:"),
                x.root_cause
            ));
            for c in &x.suggested_commands {
                output::note(&format!(
                    "  {} {}",
                    paint(Style::Bold, "run:"),
                    paint(Style::Cyan, c)
                ));
            }
        }
        Some(Err(e)) => output::warning(&format!("no analysis: {e}")),
    }
}

/// The sandbox request from the flags; `Err` is a message for the user.
fn request(args: &ExecArgs) -> Result<ExecRequest, String> {
    let here = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    let kind = match (&args.shell, &args.code, &args.file, args.argv.is_empty()) {
        (Some(shell), None, None, true) => {
            if shell.trim().is_empty() {
                return Err("--shell: the command line is empty".into());
            }
            ExecKind::Command {
                command: CommandLine::Shell(shell.clone()),
            }
        }
        (None, Some(language), None, true) => {
            let source = match args.source.as_deref() {
                Some("-") => read_stdin()?,
                Some(file) => {
                    std::fs::read_to_string(file).map_err(|e| format!("--source {file}: {e}"))?
                }
                None => return Err("--code needs --source FILE (or - for stdin)".into()),
            };
            ExecKind::Code {
                language: language.clone(),
                source,
            }
        }
        (None, None, Some(file), _) => ExecKind::File {
            path: absolute(&here, file),
            args: args.argv.clone(),
        },
        (None, None, None, false) => ExecKind::Command {
            command: CommandLine::Argv(args.argv.clone()),
        },
        (None, None, None, true) => {
            return Err(
                "nothing to run: give `-- <program> [args]`, --shell, --code with --source, or --file (see freeway exec --help)"
                    .into(),
            );
        }
        _ => {
            return Err(
                "give exactly one of `-- <argv>`, --shell, --code or --file (arguments after -- go to --file only)"
                    .into(),
            );
        }
    };
    let mut env = BTreeMap::new();
    for pair in &args.env {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                env.insert(k.to_owned(), v.to_owned());
            }
            _ => return Err(format!("--env {pair}: expected KEY=VALUE")),
        }
    }
    let stdin = match args.stdin.as_deref() {
        None => None,
        Some("-") => Some(read_stdin()?),
        Some(file) => {
            Some(std::fs::read_to_string(file).map_err(|e| format!("--stdin {file}: {e}"))?)
        }
    };
    let timeout_ms = args
        .timeout
        .as_deref()
        .map(|t| parse_duration_ms(t).map_err(|e| format!("--timeout {t}: {e}")))
        .transpose()?;
    Ok(ExecRequest {
        kind,
        cwd: args.cwd.as_deref().map(|c| absolute(&here, c)),
        env,
        stdin,
        timeout_ms,
        isolation: args.isolation.map(|i| match i {
            IsolationArg::ReadOnly => Isolation::ReadOnly,
            IsolationArg::WorkspaceWrite => Isolation::WorkspaceWrite,
            IsolationArg::FullAccess => Isolation::FullAccess,
        }),
        analyze: args.analyze,
    })
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn read_stdin() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("reading standard input: {e}"))?;
    Ok(s)
}

/// `30s`, `500ms`, `2m`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| "expected a duration like 30s, 500ms or 2m".to_owned())?;
    let factor = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1000.0,
        "ms" => 1.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        other => return Err(format!("unknown unit `{other}`; use ms, s, m or h")),
    };
    let ms = (value * factor).round();
    if !(1.0..=u64::MAX as f64).contains(&ms) {
        return Err("must be at least 1ms".into());
    }
    Ok(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("1.5"), Ok(1_500));
        assert!(parse_duration_ms("0").is_err());
        assert!(parse_duration_ms("5 parsecs").is_err());
    }
}
