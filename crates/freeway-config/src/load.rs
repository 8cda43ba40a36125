//! From text (and the environment) to a validated [`Config`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use freeway_providers::openai::{Preset, Quirks};
use freeway_providers::{Auth, HttpSettings, Secret, Timeouts};

use crate::error::{ConfigError, ConfigErrors, line_col, suggest};
use crate::raw::{RawAuth, RawConfig, RawProvider, S};
use crate::runtime::*;

mod agents;
mod mcp;
pub use mcp::mcp_tool_name;
mod routes;
mod sandbox;
mod telemetry;
mod tools;

const PROTOCOLS: [&str; 4] = ["openai", "anthropic", "gemini", "local"];
const DEFAULT_MAX_BODY: u64 = 32 * 1024 * 1024;

/// Where the configuration comes from, and what overrides it.
#[derive(Debug, Default, Clone)]
pub struct Source {
    /// `--config` / `FREEWAY_CONFIG`; `None` means embedded defaults only.
    pub file: Option<PathBuf>,
    /// `--listen`, the last word on the listen address.
    pub listen: Option<String>,
}

/// Reads and validates the configuration, with `FREEWAY_*` overrides from `env`.
pub fn load(source: &Source, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let text = match &source.file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: Some(path.clone()),
            errors: vec![ConfigError {
                location: path.display().to_string(),
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        })?,
        None => String::new(),
    };
    load_str(&text, source, env)
}

/// Like [`load`], with the file's text given.
pub fn load_str(
    text: &str,
    source: &Source,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let label = source
        .file
        .as_deref()
        .map_or_else(|| "freeway.toml".to_owned(), |p| p.display().to_string());
    let fail = |errors| ConfigErrors {
        file: source.file.clone(),
        errors,
    };
    let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                format!("{label}:{line}:{col}")
            }
            None => label.clone(),
        };
        fail(vec![ConfigError {
            location,
            key: String::new(),
            message: e.message().trim().to_owned(),
        }])
    })?;
    let mut cx = Cx {
        text,
        label,
        env,
        errors: Vec::new(),
        from_env: HashMap::new(),
    };
    cx.apply_env(&mut raw, source);
    let config = cx.validate(raw, source);
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        Err(fail(cx.errors))
    }
}

struct Cx<'a> {
    text: &'a str,
    label: String,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
    /// Keys whose value came from an environment variable, and which one.
    from_env: HashMap<String, String>,
}

fn env_location(var: &str) -> String {
    format!("environment variable {var}")
}

fn env_span<T>(value: T) -> S<T> {
    S::new(0..0, value)
}

impl Cx<'_> {
    fn location(&self, span: Range<usize>, key: &str) -> String {
        if let Some(var) = self.from_env.get(key) {
            return env_location(var);
        }
        if span.is_empty() && span.start == 0 {
            return self.label.clone();
        }
        let (line, col) = line_col(self.text, span.start);
        format!("{}:{line}:{col}", self.label)
    }

    fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        self.errors.push(ConfigError {
            location: self.location(span, &key),
            key,
            message: message.into(),
        });
    }

    /// A problem with a variable that no key of the file stands for (`OTEL_*`).
    fn env_error(&mut self, var: &str, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            location: env_location(var),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// `FREEWAY_*` variables override file values; the variables' names follow the keys.
    fn apply_env(&mut self, raw: &mut RawConfig, source: &Source) {
        let set = |cx: &mut Self, slot: &mut Option<S<String>>, key: &str, vars: &[&str]| {
            for var in vars {
                if let Some(value) = cx.var(var) {
                    *slot = Some(env_span(value));
                    cx.from_env.insert(key.to_owned(), (*var).to_owned());
                    return;
                }
            }
        };
        set(
            self,
            &mut raw.server.listen,
            "server.listen",
            &["FREEWAY_SERVER_LISTEN", "FREEWAY_LISTEN"],
        );
        set(
            self,
            &mut raw.server.master_key,
            "server.master_key",
            &["FREEWAY_SERVER_MASTER_KEY", "FREEWAY_MASTER_KEY"],
        );
        set(
            self,
            &mut raw.storage.url,
            "storage.url",
            &["FREEWAY_STORAGE_URL"],
        );
        set(
            self,
            &mut raw.cache.url,
            "cache.url",
            &["FREEWAY_CACHE_URL"],
        );
        set(
            self,
            &mut raw.limits.url,
            "limits.url",
            &["FREEWAY_LIMITS_URL"],
        );
        set(
            self,
            &mut raw.default_model,
            "default_model",
            &["FREEWAY_DEFAULT_MODEL"],
        );
        set(
            self,
            &mut raw.telemetry.otlp_endpoint,
            "telemetry.otlp_endpoint",
            &[
                "FREEWAY_TELEMETRY_OTLP_ENDPOINT",
                telemetry::OTEL_TRACES_ENDPOINT,
                telemetry::OTEL_ENDPOINT,
            ],
        );
        set(
            self,
            &mut raw.telemetry.otlp_protocol,
            "telemetry.otlp_protocol",
            &[
                "FREEWAY_TELEMETRY_OTLP_PROTOCOL",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
        );
        set(
            self,
            &mut raw.telemetry.service_name,
            "telemetry.service_name",
            &["FREEWAY_TELEMETRY_SERVICE_NAME", "OTEL_SERVICE_NAME"],
        );
        set(
            self,
            &mut raw.telemetry.log_format,
            "telemetry.log_format",
            &["FREEWAY_LOG_FORMAT"],
        );
        for (slot, key) in [
            (&mut raw.sandbox.workspace, "workspace"),
            (&mut raw.sandbox.isolation, "isolation"),
            (&mut raw.sandbox.network, "network"),
            (&mut raw.sandbox.on_missing, "on_missing"),
            (&mut raw.sandbox.analysis_model, "analysis_model"),
        ] {
            let var = format!("FREEWAY_SANDBOX_{}", key.to_ascii_uppercase());
            set(self, slot, &format!("sandbox.{key}"), &[&var]);
        }
        for p in &mut raw.providers {
            let prefix = format!("FREEWAY_PROVIDERS_{}", env_name(p.name.get_ref()));
            let name = p.name.get_ref().clone();
            set(
                self,
                &mut p.api_key,
                &format!("providers.{name}.api_key"),
                &[&format!("{prefix}_API_KEY")],
            );
            set(
                self,
                &mut p.base_url,
                &format!("providers.{name}.base_url"),
                &[&format!("{prefix}_BASE_URL")],
            );
        }
        if let Some(listen) = &source.listen {
            raw.server.listen = Some(env_span(listen.clone()));
            self.from_env
                .insert("server.listen".into(), "--listen".into());
        }
    }

    /// Replaces `${VAR}` (and `${VAR:-fallback}`) with the environment's values; `$${` is a
    /// literal `${`. A variable that is not set is an error naming it.
    fn resolve(&mut self, value: &S<String>, key: &str) -> Option<String> {
        let text = value.get_ref();
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(start) = rest.find('$') {
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            if let Some(after) = rest.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
                continue;
            }
            let Some(body) = rest.strip_prefix("${") else {
                out.push('$');
                rest = &rest[1..];
                continue;
            };
            let Some(end) = body.find('}') else {
                self.error(
                    value.span(),
                    key,
                    "unclosed `${`: write `${NAME}`, or `$${` for a literal",
                );
                return None;
            };
            let (name, fallback) = match body[..end].split_once(":-") {
                Some((n, f)) => (n, Some(f)),
                None => (&body[..end], None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.error(
                    value.span(),
                    key,
                    format!("`${{{name}}}` is not a valid environment variable name"),
                );
                return None;
            }
            match (self.var(name), fallback) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(f)) => out.push_str(f),
                (None, None) => {
                    self.error(value.span(), key, format!("environment variable `{name}` is not set (write `${{{name}:-}}` to make it optional)"));
                    return None;
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn validate(&mut self, raw: RawConfig, source: &Source) -> Config {
        let mut server = self.server(&raw);
        server.jwt = self.jwt(&raw.auth, source.file.as_deref().and_then(Path::parent));
        let storage_url = match &raw.storage.url {
            Some(url) => self.resolve(url, "storage.url").unwrap_or_default(),
            None => format!(
                "sqlite://{}",
                data_dir(self.env).join("freeway.db").display()
            ),
        };
        if !(storage_url.starts_with("sqlite:")
            || storage_url.starts_with("postgres://")
            || storage_url.starts_with("postgresql://"))
        {
            let span = raw.storage.url.as_ref().map_or(0..0, |u| u.span());
            self.error(
                span,
                "storage.url",
                format!("`{storage_url}` is neither sqlite://PATH nor postgres://…"),
            );
        }
        let cache = self.cache(&raw.cache);
        let limits_url = self.limits_url(&raw.limits);
        let prices = self.prices(&raw.prices);
        let routing = self.routing(&raw.routing);

        let mut providers = Vec::new();
        let mut names = HashSet::new();
        for (i, p) in raw.providers.iter().enumerate() {
            if let Some(p) = self.provider(i, p, &mut names) {
                providers.push(p);
            }
        }
        let embedded = raw.providers.is_empty();
        if embedded {
            providers.push(ProviderConfig {
                name: LOCAL_PROVIDER.to_owned(),
                kind: ProviderKind::Local {
                    model_path: None,
                    model: LOCAL_MODEL.to_owned(),
                    threads: None,
                    context_size: None,
                },
                models: vec![LOCAL_MODEL.to_owned()],
                discover_models: false,
                total_timeout: None,
            });
        }
        let provider_names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let mut routes = Vec::new();
        let mut route_names = HashSet::new();
        for r in &raw.routes {
            if let Some(r) = self.route(r, &provider_names, &mut route_names) {
                routes.push(r);
            }
        }
        let default_model = match &raw.default_model {
            Some(m) => {
                self.model_ref(m, "default_model", &provider_names, &route_names);
                Some(m.get_ref().clone())
            }
            None if embedded => Some(format!("{LOCAL_PROVIDER}/{LOCAL_MODEL}")),
            None => None,
        };
        let tools = self.tools(&raw.tools);
        let mcp_servers = self.mcp_servers(&raw.mcp_servers);
        let mut agents = Vec::new();
        let mut agent_names = HashSet::new();
        for a in &raw.agents {
            let Some(agent) = self.agent(
                a,
                default_model.as_deref(),
                &provider_names,
                &route_names,
                &mut agent_names,
            ) else {
                continue;
            };
            let known =
                |t: &str| tools::BUILTIN_TOOLS.contains(&t) || tools.iter().any(|c| c.name == t);
            let unknown = a
                .tools
                .iter()
                .flat_map(|list| list.get_ref())
                .find(|t| !known(t.get_ref()));
            if let Some(t) = unknown {
                self.error(
                    t.span(),
                    format!("agents.{}.tools", agent.name),
                    format!(
                        "no tool named `{}`; the built-in tools are {}, and [[tools]] adds more (MCP tools come with `mcp_servers`)",
                        t.get_ref(),
                        tools::BUILTIN_TOOLS.join(", ")
                    ),
                );
                continue;
            }
            let unknown = a
                .mcp_servers
                .iter()
                .flat_map(|list| list.get_ref())
                .find(|m| !mcp_servers.iter().any(|s| &s.name == m.get_ref()));
            if let Some(m) = unknown {
                let known: Vec<&str> = mcp_servers.iter().map(|s| s.name.as_str()).collect();
                self.error(
                    m.span(),
                    format!("agents.{}.mcp_servers", agent.name),
                    format!(
                        "no [[mcp_servers]] entry named `{}`{}",
                        m.get_ref(),
                        match known.is_empty() {
                            true => String::new(),
                            false => format!("; defined: {}", known.join(", ")),
                        }
                    ),
                );
                continue;
            }
            agents.push(agent);
        }
        let sandbox = self.sandbox(
            &raw.sandbox,
            &sandbox::Known {
                providers: &providers,
                provider_names: &provider_names,
                routes: &route_names,
                default_model: default_model.as_deref(),
                server: &server,
            },
        );
        let telemetry = self.telemetry(&raw.telemetry);
        let warnings = Vec::new();
        Config {
            file: source.file.clone(),
            server,
            storage_url,
            cache,
            limits_url,
            prices,
            routing,
            default_model,
            providers,
            routes,
            agents,
            tools,
            mcp_servers,
            telemetry,
            sandbox,
            warnings,
        }
    }

    fn server(&mut self, raw: &RawConfig) -> ServerConfig {
        let s = &raw.server;
        let listen = match &s.listen {
            Some(l) => parse_listen(l.get_ref()).unwrap_or_else(|msg| {
                self.error(l.span(), "server.listen", msg);
                default_listen()
            }),
            None => default_listen(),
        };
        let master_key = s
            .master_key
            .as_ref()
            .and_then(|k| self.resolve(k, "server.master_key"))
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        if master_key.is_none() && !listen.ip().is_loopback() {
            let span = s.listen.as_ref().map_or(0..0, |l| l.span());
            self.error(span, "server.listen", format!(
                "{listen} is reachable from other machines, but no master_key is set: set [server] master_key (or FREEWAY_MASTER_KEY), or listen on 127.0.0.1"
            ));
        }
        let max_body_bytes = match &s.max_body_bytes {
            Some(b) if *b.get_ref() < 1024 => {
                self.error(b.span(), "server.max_body_bytes", "must be at least 1024");
                DEFAULT_MAX_BODY
            }
            Some(b) => *b.get_ref(),
            None => DEFAULT_MAX_BODY,
        };
        let keep_alive = self.seconds(s.keep_alive_secs.as_ref(), "server.keep_alive_secs", 15.0);
        ServerConfig {
            listen,
            master_key,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            keep_alive,
            jwt: None,
        }
    }

    /// `[auth.jwt]`; a relative `jwks_file` is relative to the configuration file.
    fn jwt(&mut self, auth: &RawAuth, base: Option<&Path>) -> Option<JwtConfig> {
        let raw = auth.jwt.as_ref()?;
        let span = raw.span();
        let j = raw.get_ref();
        let secret = j
            .secret
            .as_ref()
            .and_then(|s| self.resolve(s, "auth.jwt.secret"))
            .filter(|s| !s.is_empty());
        if secret.as_ref().is_some_and(|s| s.len() < 32) {
            let span = j.secret.as_ref().map_or(span.clone(), |s| s.span());
            self.error(
                span,
                "auth.jwt.secret",
                "an HS256 secret must be at least 32 bytes (256 bits)",
            );
        }
        let jwks_file = j.jwks_file.as_ref().map(|f| {
            let path = PathBuf::from(f.get_ref());
            match base {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path,
            }
        });
        if secret.is_none() && jwks_file.is_none() {
            self.error(
                span.clone(),
                "auth.jwt",
                "set `secret` (HS256) or `jwks_file` (RS256), or remove [auth.jwt]",
            );
        }
        let text = |cx: &mut Self, v: &Option<S<String>>, key: &str| {
            v.as_ref().and_then(|v| cx.resolve(v, key))
        };
        let default_role = text(self, &j.default_role, "auth.jwt.default_role")
            .unwrap_or_else(|| "developer".to_owned());
        if !["admin", "developer", "viewer"].contains(&default_role.as_str()) {
            let span = j.default_role.as_ref().map_or(span.clone(), |s| s.span());
            self.error(
                span,
                "auth.jwt.default_role",
                format!("`{default_role}` is not a role; expected admin, developer or viewer"),
            );
        }
        Some(JwtConfig {
            secret: secret.map(Secret::new),
            jwks_file,
            issuer: text(self, &j.issuer, "auth.jwt.issuer"),
            audience: text(self, &j.audience, "auth.jwt.audience"),
            team_claim: text(self, &j.team_claim, "auth.jwt.team_claim")
                .unwrap_or_else(|| "team".to_owned()),
            role_claim: text(self, &j.role_claim, "auth.jwt.role_claim")
                .unwrap_or_else(|| "role".to_owned()),
            default_role,
        })
    }

    fn seconds(&mut self, value: Option<&S<f64>>, key: &str, default: f64) -> Duration {
        match value {
            None => Duration::from_secs_f64(default),
            Some(v) => match Duration::try_from_secs_f64(*v.get_ref()) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    self.error(v.span(), key, "must be a positive number of seconds");
                    Duration::from_secs_f64(default)
                }
            },
        }
    }

    fn provider(
        &mut self,
        i: usize,
        p: &RawProvider,
        names: &mut HashSet<String>,
    ) -> Option<ProviderConfig> {
        let name = p.name.get_ref().clone();
        let key = |field: &str| format!("providers.{name}.{field}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.error(p.name.span(), format!("providers[{i}].name"), format!("`{name}` is not a valid provider name: use letters, digits, `-`, `_` and `.` (clients write `{name}/<model>`)"));
            return None;
        }
        if !names.insert(name.clone()) {
            self.error(
                p.name.span(),
                format!("providers[{i}].name"),
                format!("a provider named `{name}` is already defined"),
            );
            return None;
        }
        let preset = match &p.preset {
            Some(v) => match Preset::from_name(v.get_ref()) {
                Some(preset) => Some(preset),
                None => {
                    let names = Preset::ALL.map(Preset::name);
                    let hint = suggest(v.get_ref(), names)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    self.error(
                        v.span(),
                        key("preset"),
                        format!(
                            "unknown preset `{}`{hint}; known presets: {}",
                            v.get_ref(),
                            names.join(", ")
                        ),
                    );
                    return None;
                }
            },
            // Without an explicit preset: a base URL on a vendor's host means that vendor; with
            // no base URL, a provider named after a vendor is that vendor. A custom URL under a
            // vendor's name (a proxy, a test server) is a plain OpenAI-compatible server.
            None if p.protocol.as_ref().is_none_or(|x| x.get_ref() == "openai") => {
                match &p.base_url {
                    Some(url) => Preset::ALL
                        .into_iter()
                        .find(|preset| same_origin(preset.base_url(), url.get_ref())),
                    None => Preset::from_name(&name),
                }
            }
            None => None,
        };
        let protocol = match &p.protocol {
            Some(v) => {
                let v_str = v.get_ref().as_str();
                if !PROTOCOLS.contains(&v_str) {
                    let hint = suggest(v_str, PROTOCOLS)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    self.error(
                        v.span(),
                        key("protocol"),
                        format!(
                            "unknown protocol `{v_str}`{hint}; expected one of {}",
                            PROTOCOLS.join(", ")
                        ),
                    );
                    return None;
                }
                v_str.to_owned()
            }
            None if preset.is_some() => "openai".to_owned(),
            None => match name.as_str() {
                "anthropic" | "claude" => "anthropic".to_owned(),
                "gemini" | "google" => "gemini".to_owned(),
                "local" => "local".to_owned(),
                _ => {
                    self.error(
                        p.name.span(),
                        key("protocol"),
                        format!("missing; set protocol = one of {}", PROTOCOLS.join(", ")),
                    );
                    return None;
                }
            },
        };
        if let Some(v) = &p.preset
            && protocol != "openai"
        {
            self.error(
                v.span(),
                key("preset"),
                "presets are OpenAI-compatible services; they need protocol = \"openai\"",
            );
        }
        let models: Vec<String> = p.models.iter().map(|m| m.get_ref().clone()).collect();
        let discover_models = p
            .discover_models
            .as_ref()
            .map_or(models.is_empty(), |d| *d.get_ref());

        if protocol == "local" {
            for (field, present) in [
                ("base_url", p.base_url.is_some()),
                ("api_key", p.api_key.is_some()),
            ] {
                if present {
                    self.error(
                        p.name.span(),
                        key(field),
                        "the local protocol runs in-process and takes no base_url or api_key",
                    );
                }
            }
            let model_path = p
                .model_path
                .as_ref()
                .and_then(|m| self.resolve(m, &key("model_path")))
                .map(|path| match (path.strip_prefix("~/"), self.var("HOME")) {
                    (Some(rest), Some(home)) => Path::new(&home).join(rest),
                    _ => PathBuf::from(path),
                });
            let model = match (&p.model, &model_path) {
                (Some(m), _) => m.get_ref().clone(),
                (None, Some(path)) => path.file_stem().map_or_else(
                    || LOCAL_MODEL.to_owned(),
                    |s| s.to_string_lossy().to_lowercase(),
                ),
                (None, None) => LOCAL_MODEL.to_owned(),
            };
            let total_timeout = self.total_timeout(p, &key("total_timeout_secs"));
            return Some(ProviderConfig {
                name,
                models: vec![model.clone()],
                discover_models: false,
                total_timeout,
                kind: ProviderKind::Local {
                    model_path,
                    model,
                    threads: p.threads.as_ref().map(|t| *t.get_ref()),
                    context_size: p.context_size.as_ref().map(|t| *t.get_ref()),
                },
            });
        }
        for (field, present) in [
            ("model_path", p.model_path.is_some()),
            ("model", p.model.is_some()),
            ("threads", p.threads.is_some()),
            ("context_size", p.context_size.is_some()),
        ] {
            if present {
                self.error(
                    p.name.span(),
                    key(field),
                    format!(
                        "only the local protocol takes `{field}`; list remote models in `models`"
                    ),
                );
            }
        }

        let base_url = match (&p.base_url, preset, protocol.as_str()) {
            (Some(u), _, _) => self.resolve(u, &key("base_url"))?,
            (None, Some(preset), _) => preset.base_url().to_owned(),
            (None, None, "anthropic") => "https://api.anthropic.com".to_owned(),
            (None, None, "gemini") => "https://generativelanguage.googleapis.com".to_owned(),
            (None, None, _) => {
                self.error(p.name.span(), key("base_url"), "missing; an OpenAI-compatible provider needs base_url (ending in /v1), or a preset");
                return None;
            }
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            let span = p.base_url.as_ref().map_or(0..0, |u| u.span());
            self.error(
                span,
                key("base_url"),
                format!("`{base_url}` is not an http:// or https:// URL"),
            );
        }
        let conventional_env = match (preset, protocol.as_str()) {
            (Some(preset), _) => preset.key_env(),
            (None, "anthropic") => Some("ANTHROPIC_API_KEY"),
            (None, "gemini") => Some("GEMINI_API_KEY"),
            _ => None,
        };
        let api_key = match &p.api_key {
            Some(k) => self.resolve(k, &key("api_key")).filter(|k| !k.is_empty()),
            None => conventional_env
                .and_then(|var| self.var(var))
                .filter(|k| !k.is_empty()),
        };
        let needs_key = match (preset, protocol.as_str()) {
            (Some(preset), _) => preset.requires_key(),
            (None, "anthropic" | "gemini") => true,
            _ => false,
        };
        if api_key.is_none() && needs_key && p.api_key.is_none() {
            let hint = conventional_env
                .map(|v| format!(" (or export {v})"))
                .unwrap_or_default();
            self.error(
                p.name.span(),
                key("api_key"),
                format!(
                    "missing; set api_key = \"${{{}}}\"{hint}",
                    conventional_env.unwrap_or("API_KEY_VARIABLE")
                ),
            );
        }
        let mut headers = Vec::new();
        for (h, v) in &p.headers {
            if let Some(v) = self.resolve(v, &key(&format!("headers.{h}"))) {
                headers.push((h.clone(), v));
            }
        }
        let timeouts = Timeouts {
            connect: self.seconds(
                p.connect_timeout_secs.as_ref(),
                &key("connect_timeout_secs"),
                10.0,
            ),
            first_byte: self.seconds(
                p.first_byte_timeout_secs.as_ref(),
                &key("first_byte_timeout_secs"),
                120.0,
            ),
            read: self.seconds(
                p.read_timeout_secs.as_ref(),
                &key("read_timeout_secs"),
                120.0,
            ),
        };
        let auth = match (api_key, protocol.as_str()) {
            (None, _) => Auth::None,
            (Some(k), "anthropic") => Auth::Header(http_header("x-api-key"), Secret::new(k)),
            (Some(k), "gemini") => Auth::Header(http_header("x-goog-api-key"), Secret::new(k)),
            (Some(k), _) => Auth::Bearer(Secret::new(k)),
        };
        let settings = HttpSettings {
            provider: name.clone(),
            base_url,
            auth,
            headers,
            timeouts,
        };
        if p.default_max_tokens.is_some() && protocol != "anthropic" {
            self.error(
                p.name.span(),
                key("default_max_tokens"),
                "only the anthropic protocol requires max_tokens; remove this key",
            );
        }
        let kind = match protocol.as_str() {
            "anthropic" => ProviderKind::Anthropic {
                settings,
                default_max_tokens: p
                    .default_max_tokens
                    .as_ref()
                    .map_or(freeway_providers::anthropic::DEFAULT_MAX_TOKENS, |m| {
                        *m.get_ref()
                    }),
            },
            "gemini" => ProviderKind::Gemini { settings },
            _ => ProviderKind::OpenAi {
                settings,
                quirks: preset.map_or_else(Quirks::default, Preset::quirks),
                preset,
            },
        };
        let total_timeout = self.total_timeout(p, &key("total_timeout_secs"));
        Some(ProviderConfig {
            name,
            kind,
            models,
            discover_models,
            total_timeout,
        })
    }

    fn total_timeout(&mut self, p: &RawProvider, key: &str) -> Option<Duration> {
        p.total_timeout_secs
            .as_ref()
            .map(|v| self.seconds(Some(v), key, 600.0))
    }

    /// Checks that `value` names a route or `provider/model` of a known provider.
    fn model_ref(
        &mut self,
        value: &S<String>,
        key: &str,
        providers: &[&str],
        routes: &HashSet<String>,
    ) -> bool {
        let v = value.get_ref();
        if routes.contains(v) {
            return true;
        }
        match v.split_once('/') {
            Some((provider, model)) if !model.is_empty() => {
                if providers.contains(&provider) {
                    return true;
                }
                let hint = suggest(provider, providers.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.error(
                    value.span(),
                    key,
                    format!("`{v}` names provider `{provider}`, which is not defined{hint}"),
                );
            }
            _ => self.error(
                value.span(),
                key,
                format!("`{v}` is neither a route nor `provider/model`"),
            ),
        }
        false
    }
}

fn http_header(name: &'static str) -> freeway_providers::transport::HeaderName {
    freeway_providers::transport::HeaderName::from_static(name)
}

/// Whether two URLs share scheme-less host and port (`localhost` and `127.0.0.1` alike).
fn same_origin(a: &str, b: &str) -> bool {
    fn origin(url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
        host.replace("localhost", "127.0.0.1")
    }
    origin(a) == origin(b)
}

fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn default_listen() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000)
}

fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    let replaced = value
        .strip_prefix("localhost:")
        .map(|port| format!("127.0.0.1:{port}"));
    replaced
        .as_deref()
        .unwrap_or(value)
        .parse()
        .map_err(|_| format!("`{value}` is not an address like 127.0.0.1:4000 or [::1]:4000"))
}

/// `$XDG_DATA_HOME/freeway`, else `~/.local/share/freeway`, else the current directory.
fn data_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = env("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&d).join("freeway");
    }
    if let Some(h) = env("HOME").filter(|h| !h.is_empty()) {
        return Path::new(&h).join(".local/share/freeway");
    }
    PathBuf::from(".")
}
