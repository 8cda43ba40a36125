//! `freeway run`: one agent turn in this process, headless, on the configured gateway and
//! store; and the agent runtime `freeway serve` hands to the server.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use freeway_agent::mcp::connect_all;
use freeway_agent::tools::CommandTool;
use freeway_agent::{
    ApprovalRequest, ApproveAll, Approver, Decision, Event, GatewayModel, Owner, Runtime,
    SessionOptions, StopReason, Turn, agents_from_config,
};
use freeway_config::{Config, Source};
use freeway_gateway::Gateway;
use freeway_sandbox::Sandbox;
use freeway_store::{Scope, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::commands::{load, local_loader, prices};
use crate::output::{self, Style, paint};

/// The agents of `config` on `gateway`, with their sessions in `store`. Connects the MCP
/// servers, side by side; one that fails is reported and leaves its tools out.
pub async fn runtime(
    config: &Config,
    gateway: Arc<Gateway>,
    store: Store,
    sandbox: Arc<Sandbox>,
) -> anyhow::Result<Runtime> {
    let prices = Arc::new(prices(config)?);
    let model = Arc::new(GatewayModel::new(gateway.clone()));
    let mut runtime = Runtime::new(model, store, sandbox, prices);
    runtime.set_metrics(gateway.metrics().clone());
    for tool in &config.tools {
        runtime
            .add_tool(Arc::new(CommandTool::new(tool.clone())))
            .map_err(|e| anyhow::anyhow!("[[tools]]: {e}"))?;
    }
    for server in connect_all(&config.mcp_servers).await {
        runtime
            .add_mcp_server(server)
            .map_err(|e| anyhow::anyhow!("[[mcp_servers]]: {e}"))?;
    }
    for spec in agents_from_config(&config.agents, gateway.default_model()) {
        runtime
            .add_agent(spec)
            .map_err(|e| anyhow::anyhow!("[[agents]]: {e}"))?;
    }
    Ok(runtime)
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load(&Source {
        file: args.config.config.clone(),
        listen: None,
    })?;
    let task = if args.task == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the task from stdin")?;
        text
    } else {
        args.task.clone()
    };
    if task.trim().is_empty() {
        output::error("the task is empty: give it as an argument, or `-` to read stdin");
        return Ok(ExitCode::FAILURE);
    }
    let gateway =
        Arc::new(Gateway::from_config(&config, &local_loader).map_err(anyhow::Error::msg)?);
    let store = Store::open(&config.storage_url)
        .await
        .context("storage.url: the store could not be opened")?;
    let cwd = std::fs::canonicalize(&args.cwd)
        .with_context(|| format!("--cwd {}: no such directory", args.cwd.display()))?;
    let mut sandbox_config = config.sandbox.config.clone();
    sandbox_config.workspace = cwd.clone();
    let sandbox =
        Arc::new(Sandbox::new(sandbox_config).map_err(|e| anyhow::anyhow!("the sandbox: {e}"))?);
    let runtime = runtime(&config, gateway, store.clone(), sandbox).await?;
    let session = match &args.resume {
        Some(id) => store
            .session(Scope::All, id)
            .await
            .map_err(|e| anyhow::anyhow!("--resume {id}: {e}"))?,
        None => runtime
            .create_session(
                &Owner::default(),
                &SessionOptions {
                    agent: args.agent.clone(),
                    model: args.model.clone(),
                    working_directory: cwd,
                    title: None,
                },
            )
            .await
            .map_err(anyhow::Error::msg)?,
    };
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let approver: Arc<dyn Approver> = if args.yes {
        Arc::new(ApproveAll)
    } else if std::io::stdin().is_terminal() && !args.json {
        Arc::new(Ask)
    } else {
        Arc::new(freeway_agent::DenyAll(
            "freeway run is headless here: rerun with --yes to approve writes and commands"
                .to_owned(),
        ))
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let turn = Turn {
        cancel,
        approver,
        ..Turn::new(task, tx)
    };
    let json = args.json;
    let printer = tokio::spawn(async move {
        let mut printer = Printer::default();
        while let Some(event) = rx.recv().await {
            if json {
                output::line(&serde_json::to_string(&event).unwrap_or_default());
            } else {
                printer.print(&event);
            }
        }
    });
    let outcome = runtime
        .run(Scope::All, &session.id, turn)
        .await
        .map_err(anyhow::Error::msg);
    let _ = printer.await;
    store.close().await;
    let outcome = outcome?;
    if !json {
        output::note(&paint(
            Style::Dim,
            &format!(
                "session {} · {} steps · {} tokens in, {} out{} — continue with --resume {}",
                session.id,
                outcome.steps,
                outcome.usage.input_tokens,
                outcome.usage.output_tokens,
                if outcome.cost_nanos > 0 {
                    format!(" · ${:.4}", outcome.cost_nanos as f64 / 1e9)
                } else {
                    String::new()
                },
                session.id
            ),
        ));
    }
    Ok(ExitCode::from(match outcome.reason {
        StopReason::Completed => 0,
        StopReason::Error => 1,
        StopReason::MaxSteps | StopReason::Budget => 2,
        StopReason::Aborted => 130,
    }))
}

/// Human output: the answer on stdout as it streams, tool activity on stderr.
#[derive(Default)]
struct Printer {
    /// The last thing written to stdout did not end a line.
    open_line: bool,
}

impl Printer {
    fn end_line(&mut self) {
        if self.open_line {
            output::stdout_raw("\n");
            self.open_line = false;
        }
    }

    fn print(&mut self, event: &Event) {
        match event {
            Event::MessageDelta { text } => {
                output::stdout_raw(text);
                self.open_line = !text.ends_with('\n');
            }
            Event::ToolStarted {
                name, arguments, ..
            } => {
                self.end_line();
                output::note(&paint(
                    Style::Cyan,
                    &format!("→ {name} {}", short(&arguments.to_string(), 120)),
                ));
            }
            Event::ToolOutput { text, .. } => output::stderr_raw(&paint(Style::Dim, text)),
            Event::ToolFinished {
                name,
                is_error,
                output: out,
                duration_ms,
                ..
            } => {
                let line = if *is_error {
                    paint(
                        Style::Red,
                        &format!("✗ {name} ({duration_ms} ms): {}", short(out, 300)),
                    )
                } else {
                    paint(Style::Green, &format!("✓ {name} ({duration_ms} ms)"))
                };
                output::note(&line);
            }
            Event::ApprovalRequested { .. } => self.end_line(),
            Event::Compaction {
                replaced,
                tokens_before,
                tokens_after,
                ..
            } => {
                self.end_line();
                output::note(&paint(
                    Style::Yellow,
                    &format!(
                        "compacted {replaced} messages: ~{tokens_before} → ~{tokens_after} tokens"
                    ),
                ));
            }
            Event::Error { message, .. } => {
                self.end_line();
                output::error(message);
            }
            Event::SessionIdle { .. } | Event::MessageCompleted { .. } => self.end_line(),
            Event::SessionStarted { .. } => {}
        }
    }
}

fn short(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ⏎ ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max).collect();
    cut.push('…');
    cut
}

/// Asks on the terminal before a write or a command.
struct Ask;

#[async_trait::async_trait]
impl Approver for Ask {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        let question = format!(
            "{} {} {}? [y/N] ",
            paint(Style::Yellow, "allow"),
            paint(Style::Bold, &request.name),
            short(&request.arguments.to_string(), 200)
        );
        let answer = tokio::task::spawn_blocking(move || {
            output::stderr_raw(&question);
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        match answer {
            Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes") => Decision::Approve,
            _ => Decision::Deny {
                reason: Some("the user said no".to_owned()),
            },
        }
    }
}
