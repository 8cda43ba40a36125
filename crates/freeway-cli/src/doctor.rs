//! `freeway doctor`: whether the configuration's store opens and its providers answer (the
//! embedded model: whether its file is there), what the sandbox can use on this kernel, which
//! languages are installed, and what the configured `on_missing` does about anything missing.
//! The exit status is 1 when something the server needs is not there.

use std::process::ExitCode;
use std::time::Duration;

use freeway_config::{Config, ProviderKind, Source};
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

/// One check of the store or a provider: `None` when it passed.
struct Check {
    name: String,
    kind: &'static str,
    detail: String,
    problem: Option<String>,
}

impl Check {
    fn json(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "kind": self.kind,
            "ok": self.problem.is_none(),
            "detail": self.detail,
            "problem": self.problem,
        })
    }
}

/// How long a provider may take to list its models.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);

async fn check_store(config: &Config) -> Check {
    let url = freeway_store::redact_url(&config.storage_url);
    match freeway_store::Store::open(&config.storage_url).await {
        Ok(store) => {
            let ping = store.ping().await;
            store.close().await;
            Check {
                name: url,
                kind: "store",
                detail: format!("{:?}, migrated", store.dialect()).to_lowercase(),
                problem: ping.err().map(|e| e.to_string()),
            }
        }
        Err(e) => Check {
            name: url,
            kind: "store",
            detail: String::new(),
            problem: Some(e.to_string()),
        },
    }
}

async fn check_provider(p: &freeway_config::ProviderConfig) -> Check {
    let kind = p.kind.protocol();
    let check = |detail: String, problem: Option<String>| Check {
        name: p.name.clone(),
        kind,
        detail,
        problem,
    };
    if let ProviderKind::Local { .. } = p.kind {
        return match crate::local::model_file(p) {
            Ok(path) => check(format!("model file {}", path.display()), None),
            Err(e) => check(String::new(), Some(e)),
        };
    }
    let provider = match freeway_gateway::remote_provider(p) {
        Ok(Some(provider)) => provider,
        Ok(None) => return check(String::new(), Some("not a remote provider".to_owned())),
        Err(e) => return check(String::new(), Some(e)),
    };
    match tokio::time::timeout(PROVIDER_TIMEOUT, provider.list_models()).await {
        Ok(Ok(models)) => check(format!("answers: {} models listed", models.len()), None),
        Ok(Err(e)) => check(String::new(), Some(e.to_string())),
        Err(_) => check(
            String::new(),
            Some(format!(
                "no answer to a model listing within {} s",
                PROVIDER_TIMEOUT.as_secs()
            )),
        ),
    }
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = load(&Source {
        file: args.config.config,
        listen: None,
    })?;
    let (store, providers) = tokio::join!(
        check_store(&config),
        futures_util::future::join_all(config.providers.iter().map(check_provider)),
    );
    let checks: Vec<Check> = std::iter::once(store).chain(providers).collect();
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
            "checks": checks.iter().map(Check::json).collect::<Vec<_>>(),
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
        print_checks(&checks);
        print_report(&caps, &langs, &verdicts, &config.sandbox, on_missing);
    }
    let failed = checks.iter().any(|c| c.problem.is_some());
    Ok(if configured.action == "refuse" || failed {
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

fn print_checks(checks: &[Check]) {
    output::line(&paint(Style::Bold, "Store and providers"));
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(8);
    for c in checks {
        let what = match &c.problem {
            None => c.detail.clone(),
            Some(p) => paint(Style::Red, p),
        };
        output::line(&format!(
            "  {} {:width$}  {:9}  {what}",
            yes_no(c.problem.is_none()),
            c.name,
            c.kind
        ));
    }
    output::line("");
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
