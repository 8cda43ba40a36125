use std::collections::HashMap;
use std::path::PathBuf;

use freeway_config::{Config, ConfigErrors, ProviderKind, Source, Strategy, load_str};
use freeway_providers::Auth;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn source() -> Source {
    Source {
        file: Some(PathBuf::from("freeway.toml")),
        listen: None,
    }
}

fn ok(text: &str, vars: &[(&str, &str)]) -> Config {
    load_str(text, &source(), &env(vars)).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str, vars: &[(&str, &str)]) -> ConfigErrors {
    match load_str(text, &source(), &env(vars)) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn no_file_means_embedded_defaults() {
    let c = load_str("", &Source::default(), &env(&[("HOME", "/home/u")])).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:4000");
    assert!(c.server.master_key.is_none());
    assert_eq!(
        c.storage_url,
        "sqlite:///home/u/.local/share/freeway/freeway.db"
    );
    assert_eq!(c.cache.url, "memory");
    assert_eq!(c.providers.len(), 1);
    assert!(matches!(c.providers[0].kind, ProviderKind::Local { .. }));
    assert_eq!(c.default_model.as_deref(), Some("local/smollm2"));
}

const CONTRACT: &str = r#"
[server]
listen = "127.0.0.1:4000"
master_key = "${FREEWAY_MASTER_KEY}"

[storage]
url = "sqlite://freeway.db"

[cache]
url = "memory"

[[providers]]
name = "openai"
protocol = "openai"
base_url = "https://api.openai.com/v1"
api_key = "${OPENAI_API_KEY}"

[[providers]]
name = "claude"
protocol = "anthropic"
base_url = "https://api.anthropic.com"
api_key = "${ANTHROPIC_API_KEY}"

[[routes]]
name = "smart"
targets = ["claude/claude-sonnet-4-5", "openai/gpt-4.1"]
strategy = "fallback"

[[agents]]
name = "coder"
model = "smart"
system_prompt = "..."
tools = ["read_file", "write_file", "edit_file", "list", "glob", "grep", "bash", "run_code"]
sandbox = "workspace-write"
approval = "full-auto"
max_steps = 50

[telemetry]
otlp_endpoint = "http://127.0.0.1:4318"
otlp_protocol = "http/protobuf"
"#;

#[test]
fn the_design_contract_parses_with_secrets_resolved() {
    let c = ok(
        CONTRACT,
        &[
            ("FREEWAY_MASTER_KEY", "mk"),
            ("OPENAI_API_KEY", "sk-o"),
            ("ANTHROPIC_API_KEY", "sk-a"),
        ],
    );
    assert_eq!(c.server.master_key.as_ref().unwrap().expose(), "mk");
    assert_eq!(c.providers.len(), 2);
    let ProviderKind::Anthropic { settings, .. } = &c.providers[1].kind else {
        panic!()
    };
    let Auth::Header(name, key) = &settings.auth else {
        panic!()
    };
    assert_eq!(name.as_str(), "x-api-key");
    assert_eq!(key.expose(), "sk-a");
    assert_eq!(c.routes[0].strategy, Strategy::Fallback);
    assert_eq!(
        c.routes[0].targets,
        ["claude/claude-sonnet-4-5", "openai/gpt-4.1"]
    );
    assert_eq!(c.agents[0].max_steps, 50);
    // Secrets never print.
    assert!(!format!("{c:?}").contains("sk-a"));
}

#[test]
fn a_missing_secret_is_named_with_its_line() {
    let e = err(
        CONTRACT,
        &[("FREEWAY_MASTER_KEY", "mk"), ("OPENAI_API_KEY", "x")],
    );
    let text = e.to_string();
    assert_eq!(e.errors.len(), 1, "{text}");
    assert!(text.contains("freeway.toml:22:"), "{text}");
    assert!(text.contains("ANTHROPIC_API_KEY"), "{text}");
    assert!(text.contains("providers.claude.api_key"), "{text}");
}

#[test]
fn telemetry_sets_the_log_format_and_the_access_log_share() {
    let c = ok(
        "[telemetry]\nlog_format = \"json\"\naccess_log_sample = 0.01\n",
        &[],
    );
    assert_eq!(c.telemetry.log_format, freeway_config::LogFormat::Json);
    assert!(c.telemetry.access_log);
    assert_eq!(c.telemetry.access_log_every, 100);
    let c = ok("", &[("FREEWAY_LOG_FORMAT", "json")]);
    assert_eq!(c.telemetry.log_format, freeway_config::LogFormat::Json);
    assert_eq!(c.telemetry.access_log_every, 1);

    let e = err(
        "[telemetry]\nlog_format = \"xml\"\naccess_log_sample = 0\n",
        &[],
    );
    let text = e.to_string();
    assert_eq!(e.errors.len(), 2, "{text}");
    assert!(
        text.contains("freeway.toml:2:") && text.contains("`xml`"),
        "{text}"
    );
    assert!(
        text.contains("freeway.toml:3:") && text.contains("(0, 1]"),
        "{text}"
    );
}

#[test]
fn unknown_keys_and_syntax_errors_point_at_the_line() {
    let e = err("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &[]);
    assert!(e.to_string().contains("freeway.toml:3:1"), "{e}");
    assert!(e.to_string().contains("lisen"), "{e}");
    let e = err("[server\n", &[]);
    assert!(e.to_string().contains("freeway.toml:1:"), "{e}");
}

#[test]
fn every_semantic_problem_is_reported_at_once_with_hints() {
    let text = r#"
[[providers]]
name = "x"
protocol = "opena"

[[providers]]
name = "y"
protocol = "openai"
preset = "grok"

[[routes]]
name = "r"
targets = ["nope/m"]
strategy = "weighted"
"#;
    let e = err(text, &[]);
    let s = e.to_string();
    assert!(
        s.contains("freeway.toml:4:12") && s.contains("did you mean `openai`"),
        "{s}"
    );
    assert!(
        s.contains("freeway.toml:9:") && s.contains("did you mean `groq`"),
        "{s}"
    );
    assert!(
        s.contains("strategy `weighted` needs `weights`, one per target"),
        "{s}"
    );
}

#[test]
fn routing_strategies_tiers_and_cache_are_validated() {
    let providers = "[[providers]]\nname = \"a\"\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";
    let good = format!(
        r#"{providers}
[routing]
retries = 3
retry_base_ms = 50
deadline_secs = 30
breaker_failures = 4
breaker_cooldown_secs = 5

[cache]
url = "off"
ttl_secs = 10

[[routes]]
name = "w"
strategy = "weighted"
targets = ["a/x", "a/y"]
weights = [2, 1]
retries = 0
cache = true

[[routes]]
name = "auto"
strategy = "auto"
[[routes.tiers]]
name = "fast"
targets = ["a/small"]
max_score = 2
[[routes.tiers]]
name = "deep"
targets = ["a/big"]
[routes.classifier]
reasoning_cues = ["ponder"]
points = {{ tools = 5 }}
"#
    );
    let c = ok(&good, &[]);
    assert_eq!(c.routing.retries, 3);
    assert_eq!(c.routing.retry_base, std::time::Duration::from_millis(50));
    assert_eq!(c.routing.breaker.failures, 4);
    assert_eq!(c.cache.url, "off");
    assert_eq!(c.routes[0].strategy, Strategy::Weighted);
    assert_eq!(c.routes[0].weights, [2, 1]);
    assert_eq!(
        (c.routes[0].retries, c.routes[0].cache),
        (Some(0), Some(true))
    );
    let auto = &c.routes[1];
    assert_eq!(auto.strategy, Strategy::Auto);
    assert_eq!(auto.targets, ["a/small", "a/big"]);
    assert_eq!(auto.tiers[0].max_score, Some(2));
    assert_eq!(auto.classifier.reasoning_cues, ["ponder"]);
    assert!(auto.classifier.points.contains(&("tools".to_owned(), 5)));

    let bad = format!(
        r#"{providers}
[routing]
breaker_error_rate = 2.0

[cache]
url = "memcached://x"

[[routes]]
name = "w"
strategy = "weighted"
targets = ["a/x", "a/y"]
weights = [1]

[[routes]]
name = "auto"
strategy = "auto"
[[routes.tiers]]
name = "fast"
targets = ["a/small"]
[[routes.tiers]]
name = "deep"
targets = ["a/big"]
[routes.classifier]
points = {{ toolz = 1 }}

[[routes]]
name = "plain"
strategy = "least_latncy"
targets = ["a/x"]
"#
    );
    let s = err(&bad, &[]).to_string();
    for expected in [
        "routing.breaker_error_rate",
        "neither `memory`, `off` nor redis://",
        "1 weights for 2 targets",
        "every tier but the last needs `max_score`",
        "unknown feature `toolz` (did you mean `tools`?)",
        "unknown strategy `least_latncy` (did you mean `least_latency`?)",
    ] {
        assert!(s.contains(expected), "missing {expected:?} in:\n{s}");
    }
}

#[test]
fn provider_total_timeouts_and_redis_tls_are_checked() {
    let provider = "[[providers]]\nname = \"a\"\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";
    let c = ok(&format!("{provider}total_timeout_secs = 2.5\n"), &[]);
    assert_eq!(
        c.providers[0].total_timeout,
        Some(std::time::Duration::from_millis(2500))
    );
    let s = err(&format!("{provider}total_timeout_secs = 0\n"), &[]).to_string();
    assert!(
        s.contains("providers.a.total_timeout_secs: must be a positive number"),
        "{s}"
    );
    let s = err(
        &format!("[cache]\nurl = \"rediss://h:6380\"\n{provider}"),
        &[],
    )
    .to_string();
    assert!(
        s.contains("TLS to Redis (rediss://) is not built in"),
        "{s}"
    );
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let text = "[server]\nlisten = \"127.0.0.1:1000\"\n[[providers]]\nname = \"groq\"\npreset = \"groq\"\napi_key = \"k\"\n";
    let c = ok(
        text,
        &[
            ("FREEWAY_LISTEN", "127.0.0.1:2000"),
            ("FREEWAY_PROVIDERS_GROQ_BASE_URL", "http://127.0.0.1:9/v1"),
        ],
    );
    assert_eq!(c.server.listen.port(), 2000);
    let ProviderKind::OpenAi {
        settings, preset, ..
    } = &c.providers[0].kind
    else {
        panic!()
    };
    assert_eq!(settings.base_url, "http://127.0.0.1:9/v1");
    assert_eq!(preset.map(|p| p.name()), Some("groq"));

    let flagged = Source {
        listen: Some("127.0.0.1:3000".into()),
        ..source()
    };
    let c = load_str(
        text,
        &flagged,
        &env(&[("FREEWAY_LISTEN", "127.0.0.1:2000")]),
    )
    .unwrap();
    assert_eq!(c.server.listen.port(), 3000);
}

#[test]
fn an_invalid_env_override_names_the_variable() {
    let e = err("", &[("FREEWAY_LISTEN", "everywhere")]);
    assert!(
        e.to_string()
            .contains("environment variable FREEWAY_LISTEN"),
        "{e}"
    );
}

#[test]
fn exposing_the_server_needs_a_master_key() {
    let e = err("[server]\nlisten = \"0.0.0.0:4000\"\n", &[]);
    assert!(e.to_string().contains("master_key"), "{e}");
    ok(
        "[server]\nlisten = \"0.0.0.0:4000\"\nmaster_key = \"k\"\n",
        &[],
    );
}

#[test]
fn presets_fill_in_vendor_details_and_demand_keys() {
    let c = ok("[[providers]]\nname = \"ollama\"\n", &[]);
    let ProviderKind::OpenAi { settings, .. } = &c.providers[0].kind else {
        panic!()
    };
    assert_eq!(settings.base_url, "http://127.0.0.1:11434/v1");
    assert!(matches!(settings.auth, Auth::None));

    let e = err("[[providers]]\nname = \"openai\"\n", &[]);
    assert!(e.to_string().contains("OPENAI_API_KEY"), "{e}");
    let c = ok(
        "[[providers]]\nname = \"openai\"\n",
        &[("OPENAI_API_KEY", "sk")],
    );
    assert!(
        matches!(&c.providers[0].kind, ProviderKind::OpenAi { settings, .. } if matches!(settings.auth, Auth::Bearer(_)))
    );
}

#[test]
fn optional_and_escaped_references() {
    let c = ok(
        "[server]\nmaster_key = \"${UNSET:-}\"\n[[providers]]\nname = \"v\"\nprotocol = \"openai\"\nbase_url = \"http://h/v1\"\nheaders = { x = \"$${literal}\" }\n",
        &[],
    );
    assert!(c.server.master_key.is_none());
    let ProviderKind::OpenAi { settings, .. } = &c.providers[0].kind else {
        panic!()
    };
    assert_eq!(
        settings.headers,
        [("x".to_string(), "${literal}".to_string())]
    );
}

#[test]
fn presets_follow_the_base_url_host_not_just_the_name() {
    let preset_of = |text: &str| {
        let c = ok(text, &[("OPENAI_API_KEY", "sk")]);
        match &c.providers[0].kind {
            ProviderKind::OpenAi { preset, .. } => preset.map(|p| p.name()),
            _ => panic!(),
        }
    };
    // The contract's example: OpenAI's own host.
    assert_eq!(
        preset_of(
            "[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key = \"k\"\n"
        ),
        Some("openai")
    );
    // Named after a vendor but pointing elsewhere: a generic compatible server.
    assert_eq!(
        preset_of(
            "[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9999/v1\"\n"
        ),
        None
    );
    // Any name on Ollama's port is Ollama.
    assert_eq!(
        preset_of(
            "[[providers]]\nname = \"mine\"\nprotocol = \"openai\"\nbase_url = \"http://localhost:11434/v1\"\n"
        ),
        Some("ollama")
    );
}

mod sandbox {
    use super::*;
    use freeway_sandbox::{Isolation, OnMissing, RuleAction};

    const PROVIDERS: &str = r#"
[[providers]]
name = "openai"
protocol = "openai"
base_url = "https://api.openai.com/v1"
api_key = "${OPENAI_API_KEY}"

[[routes]]
name = "smart"
targets = ["openai/gpt-4.1"]
"#;

    #[test]
    fn defaults_when_the_section_is_absent() {
        let c = load_str("", &Source::default(), &env(&[])).unwrap();
        let s = &c.sandbox;
        assert_eq!(s.config.isolation, Isolation::WorkspaceWrite);
        assert!(!s.config.network);
        assert_eq!(s.config.on_missing, OnMissing::Refuse);
        assert!(s.config.default_rules);
        assert!(!s.analyze_failures);
        // The analysis model defaults to the default model.
        assert_eq!(s.analysis_model.as_deref(), Some("local/smollm2"));
    }

    #[test]
    fn every_key_maps_onto_the_sandbox_config() {
        let text = format!(
            r#"{PROVIDERS}
[server]
master_key = "fw-master-key-1"

[sandbox]
workspace = "/srv/work"
isolation = "read-only"
network = "allow"
on_missing = "degrade"
default_timeout_ms = 5000
max_timeout_ms = 60000
kill_grace_ms = 500
output_limit_bytes = 4096
env_allow = ["PATH"]
deny_read = ["~/.secret", "/etc/x"]
writable_roots = ["/srv/cache"]
default_rules = false
secrets = ["${{DB_PASSWORD}}", "literal-secret"]
analysis_model = "smart"
analyze_failures = true
analysis_timeout_secs = 7

[sandbox.limits]
cpu_seconds = 10
memory_bytes = 0
max_processes = 64

[[sandbox.rules]]
name = "no-push"
action = "deny"
prefix = ["git", "push"]
reason = "pushing is for humans"

[[sandbox.rules]]
name = "make-ok"
action = "allow"
glob = "make *"
"#
        );
        let c = ok(
            &text,
            &[
                ("OPENAI_API_KEY", "sk-openai-key-123"),
                ("DB_PASSWORD", "hunter22"),
                ("HOME", "/home/u"),
            ],
        );
        let s = &c.sandbox;
        let sc = &s.config;
        assert_eq!(sc.workspace, PathBuf::from("/srv/work"));
        assert_eq!(sc.isolation, Isolation::ReadOnly);
        assert!(sc.network);
        assert_eq!(sc.on_missing, OnMissing::Degrade);
        assert_eq!(sc.default_timeout_ms, 5000);
        assert_eq!(s.max_timeout_ms, 60000);
        assert_eq!(sc.kill_grace_ms, 500);
        assert_eq!(sc.output_limit_bytes, 4096);
        assert_eq!(sc.env_allow, ["PATH"]);
        assert_eq!(
            sc.deny_read,
            [PathBuf::from("/home/u/.secret"), PathBuf::from("/etc/x")]
        );
        assert_eq!(sc.writable_roots, [PathBuf::from("/srv/cache")]);
        assert!(!sc.default_rules);
        assert_eq!(sc.limits.cpu_seconds, Some(10));
        assert_eq!(sc.limits.memory_bytes, None, "0 means no limit");
        assert_eq!(sc.limits.max_processes, Some(64));
        assert_eq!(sc.limits.open_files, Some(1024), "unset keeps the default");
        assert_eq!(sc.rules.len(), 2);
        assert_eq!(sc.rules[0].action, RuleAction::Deny);
        assert_eq!(
            sc.rules[0].prefix.as_deref(),
            Some(&["git".to_owned(), "push".to_owned()][..])
        );
        assert_eq!(sc.rules[1].glob.as_deref(), Some("make *"));
        // Configured secrets resolved, plus the master key and the provider's API key.
        for secret in [
            "hunter22",
            "literal-secret",
            "fw-master-key-1",
            "sk-openai-key-123",
        ] {
            assert!(sc.secrets.iter().any(|s| s == secret), "{secret} missing");
        }
        assert_eq!(s.analysis_model.as_deref(), Some("smart"));
        assert!(s.analyze_failures);
        assert_eq!(s.analysis_timeout.as_secs(), 7);
        // Secrets never print.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter22") && !debug.contains("sk-openai-key-123"),
            "{debug}"
        );
    }

    #[test]
    fn bad_values_are_errors_with_lines_and_hints() {
        let text = format!(
            r#"{PROVIDERS}
[sandbox]
isolation = "workspace-writ"
network = "yes"
on_missing = "ignore"
default_timeout_ms = 0
analysis_model = "nosuch/model"

[[sandbox.rules]]
name = "bad"
action = "deny"
regex = "(unclosed"

[[sandbox.rules]]
name = "two"
action = "block"
prefix = ["x"]

[[sandbox.rules]]
name = "none"
action = "deny"
"#
        );
        let e = err(&text, &[("OPENAI_API_KEY", "k")]);
        let msg = e.to_string();
        assert_eq!(e.errors.len(), 8, "{msg}");
        assert!(msg.contains("freeway.toml:13:13: sandbox.isolation: unknown value `workspace-writ` (did you mean `workspace-write`?)"), "{msg}");
        assert!(
            msg.contains("sandbox.network: unknown value `yes`"),
            "{msg}"
        );
        assert!(
            msg.contains("sandbox.on_missing: unknown value `ignore`"),
            "{msg}"
        );
        assert!(
            msg.contains("sandbox.default_timeout_ms: must be greater than 0"),
            "{msg}"
        );
        assert!(
            msg.contains("sandbox.analysis_model: `nosuch/model` names provider `nosuch`"),
            "{msg}"
        );
        assert!(
            msg.contains("freeway.toml:22:9: sandbox.rules[0].regex: invalid rule `bad`: regex parse error: (unclosed ^ error: unclosed group"),
            "{msg}"
        );
        assert!(
            msg.contains("sandbox.rules[1].action: unknown value `block`"),
            "{msg}"
        );
        assert!(
            msg.contains("sandbox.rules[2].prefix: rule `none` needs exactly one of"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let e = err(
            "[sandbox]\nisolation = \"read-only\"\nnetwrk = \"allow\"\n",
            &[],
        );
        assert!(e.to_string().contains("freeway.toml:3:1"), "{e}");
        assert!(e.to_string().contains("netwrk"), "{e}");
        let e = err("[sandbox.limits]\ncpu = 3\n", &[]);
        assert!(e.to_string().contains("freeway.toml:2:1"), "{e}");
        let e = err(
            "[[sandbox.rules]]\nname = \"x\"\naction = \"deny\"\nprefix = [\"x\"]\nwhy = \"\"\n",
            &[],
        );
        assert!(e.to_string().contains("freeway.toml:5:1"), "{e}");
    }

    #[test]
    fn environment_overrides_and_analysis_off() {
        let c = ok(
            "[sandbox]\nisolation = \"read-only\"\nanalysis_model = \"off\"\n",
            &[
                ("FREEWAY_SANDBOX_ISOLATION", "full-access"),
                ("FREEWAY_SANDBOX_NETWORK", "allow"),
            ],
        );
        assert_eq!(c.sandbox.config.isolation, Isolation::FullAccess);
        assert!(c.sandbox.config.network);
        assert_eq!(c.sandbox.analysis_model, None);
        let e = err("", &[("FREEWAY_SANDBOX_ON_MISSING", "maybe")]);
        assert!(
            e.to_string()
                .contains("environment variable FREEWAY_SANDBOX_ON_MISSING"),
            "{e}"
        );
    }
}

#[test]
fn a_local_model_path_may_start_at_home() {
    let c = ok(
        "[[providers]]\nname = \"local\"\nprotocol = \"local\"\nmodel_path = \"~/models/Qwen2.5-0.5B.gguf\"\n",
        &[("HOME", "/home/u")],
    );
    let ProviderKind::Local {
        model_path, model, ..
    } = &c.providers[0].kind
    else {
        panic!()
    };
    assert_eq!(
        model_path.as_deref(),
        Some(std::path::Path::new("/home/u/models/Qwen2.5-0.5B.gguf"))
    );
    assert_eq!(model, "qwen2.5-0.5b");
}

#[test]
fn prices_override_the_table_and_limits_pick_a_backend() {
    let c = ok(
        "[limits]\nurl = \"redis://127.0.0.1:6379/\"\n\n[[prices]]\nmodel = \"openai/gpt-4.1\"\ninput = 1.5\noutput = 6\ncached_input = 0.25\n",
        &[],
    );
    assert_eq!(c.limits_url, "redis://127.0.0.1:6379/");
    assert_eq!(c.prices.len(), 1);
    assert_eq!(c.prices[0].model, "openai/gpt-4.1");
    assert_eq!(c.prices[0].cached_input, Some(0.25));
    assert_eq!(ok("", &[]).limits_url, "memory");
    assert_eq!(
        ok("", &[("FREEWAY_LIMITS_URL", "redis://r:6379")]).limits_url,
        "redis://r:6379"
    );

    let e = err(
        "[[prices]]\nmodel = \"m\"\ninput = -1\noutput = 2\n\n[limits]\nurl = \"mem\"\n",
        &[],
    );
    let text = e.to_string();
    assert!(
        text.contains("prices[0].input") && text.contains(":3"),
        "{text}"
    );
    assert!(text.contains("limits.url"), "{text}");
}

#[test]
fn jwt_auth_needs_a_key_source_and_a_long_secret() {
    let c = ok(
        "[auth.jwt]\nsecret = \"${JWT}\"\naudience = \"freeway\"\n",
        &[("JWT", "0123456789abcdef0123456789abcdef")],
    );
    let jwt = c.server.jwt.unwrap();
    assert_eq!(
        jwt.secret.unwrap().expose(),
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        (jwt.team_claim.as_str(), jwt.role_claim.as_str()),
        ("team", "role")
    );
    assert_eq!(jwt.default_role, "developer");
    assert!(ok("", &[]).server.jwt.is_none());

    let e = err("[auth.jwt]\nissuer = \"x\"\n", &[]).to_string();
    assert!(e.contains("jwks_file"), "{e}");
    let e = err(
        "[auth.jwt]\nsecret = \"short\"\ndefault_role = \"owner\"\n",
        &[],
    )
    .to_string();
    assert!(e.contains("32 bytes") && e.contains(":2:"), "{e}");
    assert!(e.contains("`owner` is not a role"), "{e}");
}

#[test]
fn configured_tools_and_agent_limits_are_checked() {
    let base = r#"
[[providers]]
name = "openai"
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
"#;
    let good = format!(
        r#"{base}
[[tools]]
name = "run_tests"
description = "Run the tests"
version = "2"
command = "cargo test -q {{filter}}"
kind = "execute"
timeout_ms = 60000
parameters = {{ type = "object", properties = {{ filter = {{ type = "string" }} }} }}

[[agents]]
name = "tester"
model = "openai/gpt-4.1"
tools = ["read_file", "run_tests"]
max_spend_usd = 0.5
context_window = 32000
"#
    );
    let c = ok(&good, &[]);
    assert_eq!(c.tools.len(), 1);
    assert_eq!(
        c.tools[0].parameters["properties"]["filter"]["type"],
        "string"
    );
    assert_eq!(c.agents[0].max_spend_usd, Some(0.5));
    assert_eq!(c.agents[0].context_window, Some(32000));
    assert!(
        c.warnings.iter().all(|w| !w.contains("agent")),
        "{:?}",
        c.warnings
    );

    let bad = format!(
        r#"{base}
[[tools]]
name = "bash"
description = "shadows a built-in"
command = "true"

[[tools]]
name = "lint"
description = "uses an undeclared argument"
command = "ruff {{path"

[[tools]]
name = "fmt"
description = "names an undeclared argument"
command = "black {{path}}"

[[agents]]
name = "a"
model = "openai/gpt-4.1"
tools = ["read_file", "deploy"]
max_spend_usd = -1
"#
    );
    let text = err(&bad, &[]).to_string();
    assert!(text.contains("`bash` is a built-in tool"), "{text}");
    assert!(text.contains("never closed"), "{text}");
    assert!(
        text.contains("`{path}` is not a property of `parameters`"),
        "{text}"
    );
    assert!(text.contains("max_spend_usd"), "{text}");
}

#[test]
fn mcp_servers_are_checked_and_their_secrets_resolved() {
    let good = r#"
[[mcp_servers]]
name = "files"
command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"]
env = { API_TOKEN = "${MCP_TOKEN}" }
kind = "read"

[[mcp_servers]]
name = "tracker"
url = "http://127.0.0.1:3001/mcp"
headers = { Authorization = "Bearer ${TRACKER_TOKEN}" }
tools = ["create_issue"]
timeout_secs = 5

[[agents]]
name = "coder"
mcp_servers = ["files", "tracker"]
"#;
    let c = ok(good, &[("MCP_TOKEN", "t0k3n"), ("TRACKER_TOKEN", "abc")]);
    assert_eq!(c.mcp_servers.len(), 2);
    match &c.mcp_servers[0].transport {
        freeway_config::McpTransport::Stdio { command, env } => {
            assert_eq!(command[0], "npx");
            assert_eq!(env[0].0, "API_TOKEN");
            assert_eq!(env[0].1.expose(), "t0k3n");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.mcp_servers[0].kind, freeway_config::ToolKindConfig::Read);
    match &c.mcp_servers[1].transport {
        freeway_config::McpTransport::Http { url, headers } => {
            assert_eq!(url, "http://127.0.0.1:3001/mcp");
            assert_eq!(headers[0].1.expose(), "Bearer abc");
        }
        other => panic!("{other:?}"),
    }
    // The default is execute: an MCP server's own hints are not trusted.
    assert_eq!(
        c.mcp_servers[1].kind,
        freeway_config::ToolKindConfig::Execute
    );
    assert_eq!(
        c.mcp_servers[1].tools.as_deref(),
        Some(&["create_issue".to_owned()][..])
    );
    assert_eq!(c.mcp_servers[1].timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.agents[0].mcp_servers, ["files", "tracker"]);
    assert!(
        !format!("{:?}", c.mcp_servers).contains("abc"),
        "secrets stay out of Debug"
    );

    let bad = r#"
[[mcp_servers]]
name = "both"
command = ["x"]
url = "http://127.0.0.1:1/mcp"

[[mcp_servers]]
name = "neither"

[[mcp_servers]]
name = "ftp"
url = "ftp://example.com/mcp"

[[mcp_servers]]
name = "bad__name"
command = ["x"]

[[mcp_servers]]
name = "secret"
command = ["x"]
env = { TOKEN = "${NOT_SET_ANYWHERE}" }

[[agents]]
name = "a"
mcp_servers = ["nowhere"]
"#;
    let text = err(bad, &[]).to_string();
    assert!(text.contains("not both"), "{text}");
    assert!(text.contains("set `command` (a program"), "{text}");
    assert!(text.contains("http:// or https://"), "{text}");
    assert!(text.contains("without `__`"), "{text}");
    assert!(text.contains("`NOT_SET_ANYWHERE` is not set"), "{text}");
    assert!(
        text.contains("no [[mcp_servers]] entry named `nowhere`"),
        "{text}"
    );
}

#[test]
fn trace_export_follows_the_otel_endpoint_rules() {
    use freeway_config::OtlpProtocol;
    // No endpoint: no export, whatever else is set.
    assert!(
        ok("[telemetry]\ntrace_sample = 0.5\n", &[])
            .telemetry
            .traces
            .is_none()
    );

    // A file URL with no path gets the conventional one; a path is kept.
    let t = ok(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n",
        &[],
    )
    .telemetry
    .traces
    .unwrap();
    assert_eq!(t.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(t.service_name, "freeway");
    assert_eq!(t.sample, 1.0);
    assert_eq!(t.delay, std::time::Duration::from_secs(5));
    let t = ok(
        "[telemetry]\notlp_endpoint = \"https://otel.example/ingest/traces\"\n",
        &[],
    )
    .telemetry
    .traces
    .unwrap();
    assert_eq!(t.endpoint, "https://otel.example/ingest/traces");

    // The generic variable is a base, the per-signal one is used as is, and it wins.
    let t = ok(
        "",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base/")],
    )
    .telemetry
    .traces
    .unwrap();
    assert_eq!(t.endpoint, "http://c:4318/base/v1/traces");
    let t = ok(
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9999/x"),
        ],
    )
    .telemetry
    .traces
    .unwrap();
    assert_eq!(t.endpoint, "http://t:9999/x");

    // gRPC keeps only the address; headers, service name, sampler and delay from OTEL_*.
    let t = ok(
        "[telemetry]\notlp_endpoint = \"http://file:4318\"\n[telemetry.otlp_headers]\nx-key = \"${K}\"\n",
        &[
            ("K", "from-file"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "X-Key=a%20b, tenant=t1"),
            ("OTEL_SERVICE_NAME", "edge"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .telemetry
    .traces
    .unwrap();
    assert_eq!(t.endpoint, "http://c:4317");
    assert_eq!(t.protocol, OtlpProtocol::Grpc);
    let headers: Vec<(&str, &str)> = t
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(headers, [("x-key", "a b"), ("tenant", "t1")]);
    assert_eq!(t.service_name, "edge");
    assert_eq!(t.sample, 0.25);
    assert_eq!(t.delay, std::time::Duration::from_millis(200));
    // Header values are secrets.
    assert!(!format!("{t:?}").contains("a b"));

    let e = err(
        "[telemetry]\notlp_endpoint = \"127.0.0.1:4318\"\notlp_protocol = \"http/json\"\ntrace_sample = 2\n",
        &[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
    );
    let text = e.to_string();
    assert_eq!(e.errors.len(), 4, "{text}");
    assert!(
        text.contains("freeway.toml:2:") && text.contains("not an http"),
        "{text}"
    );
    assert!(
        text.contains("freeway.toml:3:") && text.contains("`http/json` is not supported"),
        "{text}"
    );
    assert!(
        text.contains("freeway.toml:4:") && text.contains("[0, 1]"),
        "{text}"
    );
    assert!(text.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{text}");
}
