//! `freeway teams`, `keys`, `usage` and `audit`: clients of a running server's `/admin` API.
//!
//! They know the API's JSON documents, not the store's types: the server is the one authority
//! on what a team or key is, and these commands print what it answers.

mod audit;
mod client;
mod format;
mod keys;
mod teams;
mod usage;

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::cli::AdminCommand;
use crate::output;

pub use client::ApiError;

pub async fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    let result = match command {
        AdminCommand::Teams(args) => teams::run(args).await,
        AdminCommand::Keys(args) => keys::run(args).await,
        AdminCommand::Usage(args) => usage::run(args).await,
        AdminCommand::Audit(args) => audit::run(args).await,
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) => match e.downcast::<ApiError>() {
            Ok(refused) => {
                // The server's own words, verbatim: it knows which team or field is wrong.
                output::error(&refused.message);
                if let Some(hint) = refused.hint() {
                    output::note(&format!("hint: {hint}"));
                }
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e),
        },
    }
}

/// The body fields `--models`, `--tools`, `--budget-usd`, `--period`, `--rpm`, `--tpm` and `--on-exceed`
/// set (teams and keys take the same ones).
fn limit_fields(limits: &crate::cli::LimitArgs) -> anyhow::Result<Map<String, Value>> {
    let mut body = Map::new();
    if let Some(models) = &limits.models {
        let models: Vec<&str> = models
            .iter()
            .map(|m| m.trim())
            .filter(|m| !m.is_empty())
            .collect();
        if models.is_empty() {
            anyhow::bail!(
                "--models names no model: leave it out to allow every model (`--clear models` \
                 lifts a list that is set)"
            );
        }
        body.insert("models".into(), json!(models));
    }
    if let Some(tools) = &limits.tools {
        let tools: Vec<&str> = tools
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        if tools.is_empty() {
            anyhow::bail!(
                "--tools names no tool: leave it out to allow every tool (`--clear tools` \
                 lifts a list that is set)"
            );
        }
        body.insert("tools".into(), json!(tools));
    }
    if let Some(usd) = limits.budget_usd {
        if !usd.is_finite() || usd < 0.0 {
            anyhow::bail!("--budget-usd must be 0 or more (`--clear budget` lifts a budget)");
        }
        body.insert("budget_usd".into(), json!(usd));
    }
    if let Some(period) = limits.period {
        body.insert("budget_period".into(), json!(period.as_str()));
    }
    if let Some(rpm) = limits.rpm {
        body.insert("rpm".into(), json!(rpm));
    }
    if let Some(tpm) = limits.tpm {
        body.insert("tpm".into(), json!(tpm));
    }
    if let Some(route) = &limits.on_exceed {
        body.insert("on_exceed".into(), json!(route));
    }
    Ok(body)
}

/// Sets each `--clear`ed field to `null`, which the API reads as "lift it"; a field both set
/// and cleared is a contradiction.
fn clear_fields(
    body: &mut Map<String, Value>,
    cleared: impl IntoIterator<Item = (&'static str, &'static str)>,
) -> anyhow::Result<()> {
    for (name, field) in cleared {
        if body.get(field).is_some_and(|v| !v.is_null()) {
            anyhow::bail!(
                "`--clear {name}` lifts what another flag sets: give one of them, not both"
            );
        }
        body.insert(field.into(), Value::Null);
    }
    Ok(())
}
