//! `[sandbox]`: validated into the [`SandboxConfig`] of `freeway-sandbox` plus the settings of the
//! model analysis of failures.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use freeway_providers::Auth;
use freeway_sandbox::{ExecPolicy, Isolation, OnMissing, RuleAction, RuleConfig, SandboxConfig};

use super::Cx;
use crate::error::suggest;
use crate::raw::{RawLimits, RawRule, RawSandbox, S};
use crate::runtime::{ProviderConfig, ProviderKind, SandboxSettings, ServerConfig};

const ISOLATIONS: [&str; 3] = ["read-only", "workspace-write", "full-access"];
const NETWORK: [&str; 2] = ["deny", "allow"];
const ON_MISSING: [&str; 2] = ["refuse", "degrade"];
const ACTIONS: [&str; 2] = ["allow", "deny"];
/// The longest timeout a request may ask for unless `max_timeout_ms` says otherwise.
const DEFAULT_MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// What the sandbox section needs from the rest of the file, already validated.
pub(super) struct Known<'a> {
    pub providers: &'a [ProviderConfig],
    pub provider_names: &'a [&'a str],
    pub routes: &'a HashSet<String>,
    pub default_model: Option<&'a str>,
    pub server: &'a ServerConfig,
}

impl Cx<'_> {
    /// A string that must be one of `allowed`, with a "did you mean" hint.
    fn one_of<'v>(&mut self, value: &'v S<String>, key: &str, allowed: &[&str]) -> Option<&'v str> {
        let v = value.get_ref().as_str();
        if allowed.contains(&v) {
            return Some(v);
        }
        let hint = suggest(v, allowed.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.error(
            value.span(),
            key,
            format!(
                "unknown value `{v}`{hint}; expected one of {}",
                allowed.join(", ")
            ),
        );
        None
    }

    fn paths(&mut self, value: Option<&S<Vec<S<String>>>>, key: &str) -> Option<Vec<PathBuf>> {
        let list = value?;
        let mut out = Vec::new();
        for p in list.get_ref() {
            if let Some(resolved) = self.resolve(p, key) {
                out.push(expand_home(&resolved, self.var("HOME").as_deref()));
            }
        }
        Some(out)
    }

    pub(super) fn sandbox(&mut self, raw: &RawSandbox, known: &Known<'_>) -> SandboxSettings {
        let mut config = SandboxConfig::default();
        if let Some(w) = &raw.workspace
            && let Some(path) = self.resolve(w, "sandbox.workspace")
        {
            let path = expand_home(&path, self.var("HOME").as_deref());
            config.workspace = if path.is_relative() {
                config.workspace.join(path)
            } else {
                path
            };
        }
        if let Some(v) = &raw.isolation {
            config.isolation = match self.one_of(v, "sandbox.isolation", &ISOLATIONS) {
                Some("read-only") => Isolation::ReadOnly,
                Some("full-access") => Isolation::FullAccess,
                _ => Isolation::WorkspaceWrite,
            };
        }
        if let Some(v) = &raw.network {
            config.network = self.one_of(v, "sandbox.network", &NETWORK) == Some("allow");
        }
        if let Some(v) = &raw.on_missing {
            config.on_missing = match self.one_of(v, "sandbox.on_missing", &ON_MISSING) {
                Some("degrade") => OnMissing::Degrade,
                _ => OnMissing::Refuse,
            };
        }
        let positive = |cx: &mut Self, v: &Option<S<u64>>, key: &str, default: u64| match v {
            Some(n) if *n.get_ref() == 0 => {
                cx.error(n.span(), key, "must be greater than 0");
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        };
        config.default_timeout_ms = positive(
            self,
            &raw.default_timeout_ms,
            "sandbox.default_timeout_ms",
            config.default_timeout_ms,
        );
        let max_timeout_ms = positive(
            self,
            &raw.max_timeout_ms,
            "sandbox.max_timeout_ms",
            DEFAULT_MAX_TIMEOUT_MS.max(config.default_timeout_ms),
        );
        if config.default_timeout_ms > max_timeout_ms {
            let span = raw.default_timeout_ms.as_ref().map_or(0..0, |v| v.span());
            self.error(
                span,
                "sandbox.default_timeout_ms",
                format!("is larger than sandbox.max_timeout_ms ({max_timeout_ms})"),
            );
        }
        config.kill_grace_ms = positive(
            self,
            &raw.kill_grace_ms,
            "sandbox.kill_grace_ms",
            config.kill_grace_ms,
        );
        let output_limit = positive(
            self,
            &raw.output_limit_bytes,
            "sandbox.output_limit_bytes",
            config.output_limit_bytes as u64,
        );
        config.output_limit_bytes = usize::try_from(output_limit).unwrap_or(usize::MAX);
        self.limits(&raw.limits, &mut config);
        if let Some(env) = &raw.env_allow {
            config.env_allow = env.get_ref().iter().map(|v| v.get_ref().clone()).collect();
        }
        if let Some(paths) = self.paths(raw.deny_read.as_ref(), "sandbox.deny_read") {
            config.deny_read = paths;
        }
        if let Some(paths) = self.paths(raw.writable_roots.as_ref(), "sandbox.writable_roots") {
            config.writable_roots = paths;
        }
        if let Some(d) = &raw.default_rules {
            config.default_rules = *d.get_ref();
        }
        let mut names = HashSet::new();
        for (i, rule) in raw.rules.iter().enumerate() {
            if let Some(rule) = self.rule(i, rule, &mut names) {
                config.rules.push(rule);
            }
        }
        config.secrets = self.secrets(raw, known);

        let analysis_model = match &raw.analysis_model {
            Some(m) if matches!(m.get_ref().as_str(), "off" | "none" | "") => None,
            Some(m) => {
                if m.get_ref() != "default" {
                    self.model_ref(
                        m,
                        "sandbox.analysis_model",
                        known.provider_names,
                        known.routes,
                    );
                }
                Some(m.get_ref().clone())
            }
            None => known.default_model.map(str::to_owned),
        };
        let analysis_timeout = self.seconds(
            raw.analysis_timeout_secs.as_ref(),
            "sandbox.analysis_timeout_secs",
            120.0,
        );
        SandboxSettings {
            config,
            max_timeout_ms,
            analysis_model,
            analyze_failures: raw.analyze_failures.as_ref().is_some_and(|a| *a.get_ref()),
            analysis_timeout,
        }
    }

    fn limits(&mut self, raw: &RawLimits, config: &mut SandboxConfig) {
        let limits = &mut config.limits;
        for (value, slot) in [
            (&raw.cpu_seconds, &mut limits.cpu_seconds),
            (&raw.memory_bytes, &mut limits.memory_bytes),
            (&raw.file_size_bytes, &mut limits.file_size_bytes),
            (&raw.max_processes, &mut limits.max_processes),
            (&raw.open_files, &mut limits.open_files),
        ] {
            if let Some(v) = value {
                *slot = Some(*v.get_ref()).filter(|&n| n > 0);
            }
        }
        if let Some(n) = &raw.open_files
            && (1..16).contains(n.get_ref())
        {
            self.error(
                n.span(),
                "sandbox.limits.open_files",
                "must be at least 16 (stdin, stdout, stderr and the runtime's own files), or 0 for no limit",
            );
        }
    }

    fn rule(&mut self, i: usize, r: &RawRule, names: &mut HashSet<String>) -> Option<RuleConfig> {
        let name = r.name.get_ref().clone();
        let key = |field: &str| format!("sandbox.rules[{i}].{field}");
        if name.is_empty() {
            self.error(r.name.span(), key("name"), "a rule needs a name");
            return None;
        }
        if !names.insert(name.clone()) {
            self.error(
                r.name.span(),
                key("name"),
                format!("a rule named `{name}` is already defined"),
            );
            return None;
        }
        let action = match self.one_of(&r.action, &key("action"), &ACTIONS)? {
            "allow" => RuleAction::Allow,
            _ => RuleAction::Deny,
        };
        let given = [r.prefix.is_some(), r.glob.is_some(), r.regex.is_some()]
            .iter()
            .filter(|&&g| g)
            .count();
        if given != 1 {
            self.error(
                r.name.span(),
                key("prefix"),
                format!(
                    "rule `{name}` needs exactly one of `prefix`, `glob` or `regex` (it has {given})"
                ),
            );
            return None;
        }
        if let Some(p) = &r.prefix
            && p.get_ref().is_empty()
        {
            self.error(
                p.span(),
                key("prefix"),
                "an empty prefix would match everything",
            );
            return None;
        }
        let rule = RuleConfig {
            name,
            action,
            prefix: r.prefix.as_ref().map(|p| p.get_ref().clone()),
            glob: r.glob.as_ref().map(|g| g.get_ref().clone()),
            regex: r.regex.as_ref().map(|g| g.get_ref().clone()),
            reason: r
                .reason
                .as_ref()
                .map(|r| r.get_ref().clone())
                .unwrap_or_default(),
        };
        // Compile it now, so a bad pattern is reported with its line instead of at startup.
        if let Err(e) = ExecPolicy::new(std::slice::from_ref(&rule), false) {
            let (span, field) = match (&r.glob, &r.regex) {
                (Some(g), _) => (g.span(), "glob"),
                (_, Some(re)) => (re.span(), "regex"),
                _ => (r.name.span(), "prefix"),
            };
            let message = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            self.error(span, key(field), message);
            return None;
        }
        Some(rule)
    }

    /// Configured secrets (with `${ENV}` resolved), the master key and every provider's API key
    /// and header values: each is redacted from what a run prints.
    fn secrets(&mut self, raw: &RawSandbox, known: &Known<'_>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(list) = &raw.secrets {
            for s in list.get_ref() {
                if let Some(v) = self.resolve(s, "sandbox.secrets") {
                    out.push(v);
                }
            }
        }
        if let Some(k) = &known.server.master_key {
            out.push(k.expose().to_owned());
        }
        for p in known.providers {
            let settings = match &p.kind {
                ProviderKind::OpenAi { settings, .. }
                | ProviderKind::Anthropic { settings, .. }
                | ProviderKind::Gemini { settings } => settings,
                ProviderKind::Local { .. } => continue,
            };
            match &settings.auth {
                Auth::None => {}
                Auth::Bearer(k) | Auth::Header(_, k) => out.push(k.expose().to_owned()),
            }
        }
        // Short values would redact ordinary words.
        out.retain(|s| s.trim().len() >= 4);
        out.sort();
        out.dedup();
        out
    }
}

/// `~/x` against `$HOME`.
fn expand_home(path: &str, home: Option<&str>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ => PathBuf::from(path),
    }
}
