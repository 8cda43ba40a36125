//! `freeway doctor`: what the sandbox can use on this kernel, which languages are installed,
//! and what the configured `on_missing` does about anything missing.

use std::process::ExitCode;

use freeway_config::Source;
use freeway_sandbox::{Capabilities, Isolation, OnMissing, SandboxConfig, languages, probe};
use serde_json::json;

use crate::cli::DoctorArgs;
use crate::commands::load;
use crate::output::{self, Style, paint};

const LEVELS: [Isolation; 3] = [
    Isolation::ReadOnly,
    Isolation::WorkspaceWrite,
    Isolation::FullAccess,
];

/// What happens to a run at one isolation level.
struct Verdict {
    isolation: Isolation,
    missing: Vec<&'static str>,
    /// `ready`, `degrade` or `refuse`.
    action: &'static str,
}

fn verdict(caps: &Capabilities, config: &SandboxConfig, isolation: Isolation) -> Verdict {
    let missing: Vec<&'static str> = caps
        .missing_for(config, isolation)
        .into_iter()
        .map(|m| m.name)
        .collect();
    let action = match (missing.is_empty(), config.on_missing) {
        (true, _) => "ready",
        (false, OnMissing::Degrade) => "degrade",
        (false, OnMissing::Refuse) => "refuse",
    };
    Verdict {
        isolation,
        missing,
        action,
    }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = load(&Source {
        file: args.config.config,
        listen: None,
    })?;
    let sandbox = &config.sandbox.config;
    let caps = probe();
    let langs = languages();
    let verdicts: Vec<Verdict> = LEVELS.iter().map(|&l| verdict(&caps, sandbox, l)).collect();
    let configured = verdict(&caps, sandbox, sandbox.isolation);
    let on_missing = match sandbox.on_missing {
        OnMissing::Refuse => "refuse",
        OnMissing::Degrade => "degrade",
    };

    if args.json {
        let body = json!({
            "kernel": caps.kernel,
            "running_as_root": caps.running_as_root,
            "landlock_abi": caps.landlock_abi,
            "mechanisms": caps.mechanisms,
            "languages": langs,
            "sandbox": {
                "workspace": sandbox.workspace,
                "isolation": sandbox.isolation.as_str(),
                "network": if sandbox.network { "allow" } else { "deny" },
                "on_missing": on_missing,
                "analysis_model": config.sandbox.analysis_model,
            },
            "isolation_levels": verdicts.iter().map(|v| json!({
                "isolation": v.isolation.as_str(),
                "missing": v.missing,
                "action": v.action,
            })).collect::<Vec<_>>(),
        });
        output::line(&serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string()));
    } else {
        print_report(&caps, &langs, &verdicts, &config.sandbox, on_missing);
    }
    Ok(if configured.action == "refuse" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn yes_no(ok: bool) -> String {
    if ok {
        paint(Style::Green, "yes")
    } else {
        paint(Style::Red, "no ")
    }
}

fn print_report(
    caps: &Capabilities,
    langs: &[freeway_sandbox::LanguageInfo],
    verdicts: &[Verdict],
    settings: &freeway_config::SandboxSettings,
    on_missing: &str,
) {
    let sandbox = &settings.config;
    output::line(&paint(Style::Bold, "Kernel"));
    output::line(&format!(
        "  Linux {}{}; Landlock ABI {}",
        caps.kernel,
        if caps.running_as_root {
            ", running as root"
        } else {
            ""
        },
        caps.landlock_abi
            .map_or_else(|| "none".to_owned(), |v| v.to_string()),
    ));
    output::line("");
    output::line(&paint(Style::Bold, "Isolation mechanisms"));
    let width = caps
        .mechanisms
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(8);
    for m in &caps.mechanisms {
        output::line(&format!(
            "  {} {:width$}  {}  {}",
            yes_no(m.available),
            m.name,
            m.detail,
            paint(Style::Dim, &format!("— {}", m.used_for)),
        ));
    }
    output::line("");
    output::line(&paint(Style::Bold, "Languages"));
    for l in langs {
        let runtime = l
            .runtime
            .as_ref()
            .map_or_else(|| "not installed".to_owned(), |p| p.display().to_string());
        output::line(&format!(
            "  {} {:6}  {runtime}",
            yes_no(l.available),
            l.language
        ));
    }
    output::line("");
    output::line(&paint(Style::Bold, "Configuration"));
    output::line(&format!(
        "  isolation = {}, network = {}, on_missing = {on_missing}, workspace = {}",
        sandbox.isolation.as_str(),
        if sandbox.network { "allow" } else { "deny" },
        sandbox.workspace.display(),
    ));
    output::line(&format!(
        "  analysis model: {}",
        settings
            .analysis_model
            .as_deref()
            .unwrap_or("none (model analysis off)")
    ));
    for v in verdicts {
        let marker = if v.isolation == sandbox.isolation {
            " (default)"
        } else {
            ""
        };
        let what = match v.action {
            "ready" => paint(Style::Green, "runs fully isolated"),
            "degrade" => paint(
                Style::Yellow,
                &format!(
                    "runs WITHOUT {} (on_missing = \"degrade\"; listed in each result's `degraded`)",
                    v.missing.join(", ")
                ),
            ),
            _ => paint(
                Style::Red,
                &format!(
                    "is REFUSED: missing {} (on_missing = \"refuse\"; set it to \"degrade\" to run anyway)",
                    v.missing.join(", ")
                ),
            ),
        };
        output::line(&format!("  {}{marker}: {what}", v.isolation.as_str()));
    }
}
