//! The embedded model: loading it for `serve`, and `freeway models pull` / `list`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use freeway_config::{ProviderConfig, ProviderKind};
use freeway_local::models::{self, ModelSource, PullPhase, PullProgress};
use freeway_local::{DEFAULT_MODEL, LocalConfig, LocalProvider, default_models_dir};
use freeway_types::Provider;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{ListArgs, PullArgs};
use crate::output;

/// A progress bar on stderr, hidden when stderr is not a terminal (CI logs, pipes).
fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !output::is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = if output::color(true) {
        template.to_owned()
    } else {
        template.replace(".cyan/blue", "")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Builds the local provider for `[[providers]] protocol = "local"` (or the embedded default),
/// with a progress bar while the weights load.
/// The GGUF file a local provider runs, if it is there.
pub fn model_file(p: &ProviderConfig) -> Result<std::path::PathBuf, String> {
    let ProviderKind::Local { model_path, .. } = &p.kind else {
        return Err(format!("provider `{}` is not a local provider", p.name));
    };
    let path = model_path
        .clone()
        .unwrap_or_else(|| LocalConfig::default().model_path);
    if path.exists() {
        return Ok(path);
    }
    let hint = if model_path.is_none() {
        "run `freeway models pull default` (or `make run`, which does it) to fetch it"
    } else {
        "check `model_path`, or fetch a model with `freeway models pull <source>`"
    };
    Err(format!(
        "provider `{}`: the model file {} does not exist; {hint}",
        p.name,
        path.display()
    ))
}

pub fn load(p: &ProviderConfig) -> Result<Arc<dyn Provider>, String> {
    let ProviderKind::Local {
        model,
        threads,
        context_size,
        ..
    } = &p.kind
    else {
        return Err(format!("provider `{}` is not a local provider", p.name));
    };
    let mut config = LocalConfig {
        provider_name: p.name.clone(),
        model_name: model.clone(),
        threads: threads.map(|t| t as usize),
        ..LocalConfig::default()
    };
    if let Some(n) = context_size {
        config.context_size = *n;
    }
    config.model_path = model_file(p)?;
    let loading = bar(100, "loading {msg} [{bar:30.cyan/blue}] {percent}%");
    loading.set_message(model.clone());
    let progress_bar = loading.clone();
    let progress = Box::new(move |fraction: f32| {
        progress_bar.set_position((fraction * 100.0) as u64);
    });
    let result =
        tokio::task::block_in_place(|| LocalProvider::load_with_progress(config, Some(progress)));
    loading.finish_and_clear();
    result
        .map(|provider| Arc::new(provider) as Arc<dyn Provider>)
        .map_err(|e| format!("provider `{}`: {e}", p.name))
}

pub async fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    let source: ModelSource = args.source.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = default_models_dir().map_err(|e| anyhow::anyhow!("{e}"))?;
    let total = match &source {
        ModelSource::Default => DEFAULT_MODEL.size,
        _ => 0,
    };
    let transfer = bar(
        total,
        "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
    );
    transfer.set_message(format!("pulling {}", args.source));
    let progress_bar = transfer.clone();
    let progress = move |p: PullProgress| {
        if let Some(total) = p.total {
            progress_bar.set_length(total);
        }
        progress_bar.set_position(p.bytes);
        match p.phase {
            PullPhase::Resolving => progress_bar.set_message("resolving (pip download)"),
            PullPhase::Transferring => {}
            PullPhase::Verifying => progress_bar.set_message("verifying checksum"),
            PullPhase::Done => progress_bar.set_message("done"),
        }
    };
    let path = models::pull(&source, &dir, &progress)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("pulling `{}`", args.source))?;
    transfer.finish_and_clear();
    if args.json {
        output::line(&serde_json::json!({ "path": path }).to_string());
    } else {
        output::line(&path.display().to_string());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let dir = default_models_dir().map_err(|e| anyhow::anyhow!("{e}"))?;
    let found = models::list(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        let list: Vec<_> = found
            .iter()
            .map(|m| serde_json::json!({ "name": m.name, "path": m.path, "size": m.size }))
            .collect();
        output::line(&serde_json::json!({ "dir": dir, "models": list }).to_string());
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        output::line(&format!(
            "no models in {}; fetch one with `freeway models pull default`",
            dir.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let width = found.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    output::line(&format!("{:width$}  {:>10}  PATH", "NAME", "SIZE"));
    for m in &found {
        output::line(&format!(
            "{:width$}  {:>7.1} MB  {}",
            m.name,
            m.size as f64 / 1_048_576.0,
            m.path.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
