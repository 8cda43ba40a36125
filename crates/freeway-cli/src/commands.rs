//! What each subcommand does.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use freeway_config::{Config, ConfigErrors, LogFormat, Source};
use freeway_gateway::Gateway;
use freeway_gateway::limits::Limiter;
use freeway_gateway::pricing::{Price, PriceTable};
use freeway_server::AppState;
use freeway_server::tenancy::Tenancy;
use freeway_store::Store;
use freeway_types::Provider;
use tokio_util::sync::CancellationToken;

use crate::cli::{CheckArgs, Command, ConfigCommand, ModelsAction, ModelsArgs, ServeArgs};
use crate::output;

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Models(args) => match args.action {
            Some(ModelsAction::Pull(pull)) => crate::local::pull(pull).await,
            Some(ModelsAction::List(list)) => crate::local::list(list),
            None => models(args).await,
        },
        Command::Routes(args) => crate::routes::run(args).await,
        Command::Config(ConfigCommand::Check(args)) => check(args),
        Command::Run(args) => crate::agent::run(args).await,
        Command::Chat(args) => crate::chat::run(args).await,
        Command::Exec(args) => crate::exec::run(args).await,
        Command::Doctor(args) => crate::doctor::run(args).await,
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub(crate) fn load(source: &Source) -> anyhow::Result<Config> {
    let config =
        freeway_config::load(source, &env).map_err(|e: ConfigErrors| anyhow::anyhow!("{e}"))?;
    for w in &config.warnings {
        output::warning(w);
    }
    Ok(config)
}

pub(crate) fn local_loader(
    p: &freeway_config::ProviderConfig,
) -> Result<Arc<dyn Provider>, String> {
    crate::local::load(p)
}

/// Logs to stderr, and traces to an OTLP collector when one is configured. Each has its own
/// filter: `FREEWAY_LOG` steers the logs, and the traced spans (target
/// [`freeway_telemetry::TARGET`]) go to the exporter only, never into log lines.
fn init_logging(
    format: LogFormat,
    traces: Option<&freeway_config::TraceExport>,
) -> anyhow::Result<Option<Arc<freeway_telemetry::Exporter>>> {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, Registry};

    let filter = tracing_subscriber::EnvFilter::try_from_env("FREEWAY_LOG").unwrap_or_else(
        |_| // llama.cpp narrates every model load at info; its warnings still show.
        tracing_subscriber::EnvFilter::new("info,llama-cpp-2=warn"),
    );
    let filter = filter.and(filter_fn(|meta| !freeway_telemetry::layer::is_traced(meta)));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Pretty => logs
            .with_ansi(output::color(true))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter)
            .boxed(),
    };
    let Some(traces) = traces else {
        Registry::default().with(logs).init();
        return Ok(None);
    };
    let exporter = freeway_telemetry::Exporter::start(freeway_telemetry::ExportConfig {
        endpoint: traces.endpoint.clone(),
        protocol: match traces.protocol {
            freeway_config::OtlpProtocol::HttpProtobuf => freeway_telemetry::Protocol::HttpProtobuf,
            freeway_config::OtlpProtocol::Grpc => freeway_telemetry::Protocol::Grpc,
        },
        headers: traces
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect(),
        service_name: traces.service_name.clone(),
        timeout: std::time::Duration::from_secs(10),
        delay: traces.delay,
    })
    .map_err(|e| anyhow::anyhow!("telemetry.otlp_endpoint: {e}"))?;
    let spans = freeway_telemetry::OtelLayer::new(exporter.clone(), traces.sample)
        .with_filter(freeway_telemetry::OtelLayer::filter());
    Registry::default().with(logs).with(spans).init();
    Ok(Some(exporter))
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let source = Source {
        file: args.config.config,
        listen: args.listen,
    };
    let config = load(&source)?;
    let log_format = match args.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some(_) => LogFormat::Pretty,
        None => config.telemetry.log_format,
    };
    let traces = init_logging(log_format, config.telemetry.traces.as_ref())?;
    if let Some(t) = &config.telemetry.traces {
        tracing::info!(endpoint = %t.endpoint, protocol = ?t.protocol, sample = t.sample, "exporting traces");
    }
    let gateway = Gateway::from_config(&config, &local_loader).map_err(anyhow::Error::msg)?;
    let gateway = Arc::new(gateway.with_prices(Arc::new(prices(&config)?)));
    let mut state = AppState::new(gateway.clone(), config.server.master_key.clone());
    state.max_body_bytes = config.server.max_body_bytes;
    state.keep_alive = config.server.keep_alive;
    state.exec = crate::exec::exec_state(&config.sandbox);
    state.access_log = freeway_server::observe::AccessLog {
        enabled: config.telemetry.access_log,
        every: config.telemetry.access_log_every,
    };
    let tenancy = Arc::new(tenancy(&config).await?);
    state.tenancy = Some(tenancy.clone());
    match &state.exec.sandbox {
        Ok(sandbox) => {
            let runtime = crate::agent::runtime(
                &config,
                gateway.clone(),
                tenancy.store.clone(),
                sandbox.clone(),
            )
            .await?;
            let root = config.sandbox.config.workspace.clone();
            state.agents = Some(Arc::new(freeway_server::sessions::Agents::new(
                Arc::new(runtime),
                root,
            )));
        }
        Err(reason) => tracing::warn!(%reason, "agents are off: they need the sandbox"),
    }
    let app = freeway_server::router(Arc::new(state));

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr().context("listener address")?;
    tracing::info!(
        %addr,
        providers = config.providers.len(),
        routes = config.routes.len(),
        auth = config.server.master_key.is_some(),
        "freeway listening"
    );
    output::note(&format!("freeway listening on http://{addr}"));
    if let Some(model) = gateway.default_model() {
        output::note(&format!("default model: {model}"));
    }

    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    // Accept on a worker: on the thread that runs `main`, each new connection cost two more
    // thread wake-ups (the I/O driver woke that thread, and it woke a worker to serve).
    tokio::spawn(freeway_server::serve::serve(listener, app, shutdown))
        .await
        .context("the server task failed")?;
    // Every request answered has handed its ledger row over; write them before leaving.
    tenancy.flush().await;
    tenancy.store.close().await;
    if let Some(traces) = traces {
        traces.flush(std::time::Duration::from_secs(5)).await;
    }
    tracing::info!("freeway stopped");
    Ok(ExitCode::SUCCESS)
}

/// The store (migrated), the rate-limit counters and the price table with `[[prices]]`.
async fn tenancy(config: &Config) -> anyhow::Result<Tenancy> {
    let store = Store::open(&config.storage_url)
        .await
        .with_context(|| "storage.url: the store could not be opened".to_owned())?;
    let limiter = if config.limits_url == "memory" {
        Limiter::memory(Some(store.clone()))
    } else {
        Limiter::redis(&config.limits_url, Some(store.clone())).map_err(anyhow::Error::msg)?
    };
    let prices = prices(config)?;
    tracing::info!(
        store = ?store.dialect(),
        limits = limiter.backend_name(),
        "store open"
    );
    let mut tenancy = Tenancy::new(store, limiter, prices);
    if let Some(jwt) = &config.server.jwt {
        let jwks =
            match &jwt.jwks_file {
                Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                    format!("auth.jwt.jwks_file: cannot read {}", path.display())
                })?),
                None => None,
            };
        let verifier = freeway_server::jwt::JwtVerifier::new(jwt, jwks.as_deref())
            .map_err(anyhow::Error::msg)?;
        tenancy = tenancy.with_jwt(verifier);
    }
    Ok(tenancy)
}

/// The shipped price table with the configuration's `[[prices]]`.
pub(crate) fn prices(config: &Config) -> anyhow::Result<PriceTable> {
    Ok(PriceTable::builtin()
        .context("the shipped price table")?
        .with_overrides(config.prices.iter().map(|p| {
            (
                p.model.clone(),
                Price {
                    input: p.input,
                    output: p.output,
                    cached_input: p.cached_input,
                    cache_write: p.cache_write,
                },
            )
        })))
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn models(args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let source = Source {
        file: args.config.config,
        listen: None,
    };
    let config = load(&source)?;
    let gateway = Gateway::from_config(&config, &local_loader).map_err(anyhow::Error::msg)?;
    let models = gateway.list_models().await;
    if args.json {
        let list: Vec<_> = models
            .iter()
            .map(|m| serde_json::json!({ "id": m.id, "owned_by": m.owned_by }))
            .collect();
        output::line(
            &serde_json::json!({ "models": list, "default": gateway.default_model() }).to_string(),
        );
    } else {
        let width = models.iter().map(|m| m.id.len()).max().unwrap_or(2).max(2);
        output::line(&format!("{:width$}  OWNED BY", "ID"));
        for m in &models {
            output::line(&format!("{:width$}  {}", m.id, m.owned_by));
        }
        if let Some(d) = gateway.default_model() {
            output::line(&format!("\n`default` resolves to {d}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let source = Source {
        file: args.config.config,
        listen: None,
    };
    let label = source.file.as_ref().map_or_else(
        || "the embedded defaults".to_owned(),
        |f| f.display().to_string(),
    );
    match freeway_config::load(&source, &env) {
        Ok(config) => {
            if args.json {
                output::line(&serde_json::json!({ "valid": true, "errors": [], "warnings": config.warnings }).to_string());
            } else {
                for w in &config.warnings {
                    output::warning(w);
                }
                output::line(&format!(
                    "{label} is valid: {} provider(s), {} route(s), {} agent(s), listening on {}",
                    config.providers.len(),
                    config.routes.len(),
                    config.agents.len(),
                    config.server.listen
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                let errors: Vec<_> = e
                    .errors
                    .iter()
                    .map(|e| serde_json::json!({ "location": e.location, "key": e.key, "message": e.message }))
                    .collect();
                output::line(
                    &serde_json::json!({ "valid": false, "errors": errors, "warnings": [] })
                        .to_string(),
                );
            } else {
                output::error(e.to_string().trim_end());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
