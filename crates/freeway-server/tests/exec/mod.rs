//! `/v1/exec` through the real router: runs, diagnosis, policy, isolation, timeouts, bad input,
//! auth, and the model analysis through a scripted provider.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use freeway_gateway::Gateway;
use freeway_sandbox::{RuleAction, RuleConfig, Sandbox, SandboxConfig};
use freeway_server::exec::ExecState;
use freeway_server::{AppState, router};
use freeway_types::{
    ChatRequest, ChatResponse, ChatStream, ContentPart, FinishReason, Provider, ProviderError,
    ResponseFormat, Usage,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A provider that answers every request with the same text and keeps the requests.
struct Scripted {
    answer: String,
    seen: Mutex<Vec<ChatRequest>>,
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        "mock"
    }

    async fn stream(&self, _request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: "mock".into(),
            what: "streaming".into(),
        })
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.seen.lock().unwrap().push(request.clone());
        Ok(ChatResponse {
            id: "r1".into(),
            model: request.model.clone(),
            content: vec![ContentPart::text(self.answer.clone())],
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            stop_sequence: None,
            usage: Usage::default(),
        })
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "freeway-exec-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct App {
    router: axum::Router,
    workspace: Dir,
    provider: Arc<Scripted>,
}

struct Setup {
    master_key: Option<&'static str>,
    analysis_answer: &'static str,
    analysis_model: Option<&'static str>,
    sandbox: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            master_key: None,
            analysis_answer: "{}",
            analysis_model: Some("mock/analyst"),
            sandbox: true,
        }
    }
}

fn app(setup: Setup) -> App {
    let workspace = Dir::new("ws");
    let provider = Arc::new(Scripted {
        answer: setup.analysis_answer.to_owned(),
        seen: Mutex::new(Vec::new()),
    });
    let gateway = Gateway::builder()
        .provider(provider.clone(), vec!["analyst".into()], false)
        .build()
        .unwrap();
    let mut state = AppState::new(
        Arc::new(gateway),
        setup
            .master_key
            .map(|k| freeway_providers::Secret::new(k.to_owned())),
    );
    if setup.sandbox {
        let config = SandboxConfig {
            workspace: workspace.0.clone(),
            rules: vec![RuleConfig {
                name: "no-git-push".into(),
                action: RuleAction::Deny,
                prefix: Some(vec!["git".into(), "push".into()]),
                glob: None,
                regex: None,
                reason: "pushing is for humans".into(),
            }],
            secrets: vec!["hunter2-secret".into()],
            ..SandboxConfig::default()
        };
        let mut exec = ExecState::with_sandbox(Arc::new(Sandbox::new(config).unwrap()));
        exec.analysis_model = setup.analysis_model.map(str::to_owned);
        exec.max_timeout_ms = 60_000;
        state.exec = exec;
    }
    App {
        router: router(Arc::new(state)),
        workspace,
        provider,
    }
}

async fn call(
    app: &App,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, String) {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    let body = match body {
        Some(v) => Body::from(v.to_string()),
        None => Body::empty(),
    };
    let response = app
        .router
        .clone()
        .oneshot(builder.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn exec(app: &App, body: Value) -> (StatusCode, Value) {
    let (status, text) = call(app, "POST", "/v1/exec", Some(body), None).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

const CONTRACT_FIELDS: [&str; 11] = [
    "exit_code",
    "signal",
    "stdout",
    "stderr",
    "duration_ms",
    "timed_out",
    "truncated",
    "max_rss_kb",
    "cpu_ms",
    "diagnosis",
    "analysis",
];

#[tokio::test]
async fn a_command_succeeds_with_every_contract_field() {
    let app = app(Setup::default());
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": "echo hello; echo oops >&2"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    for field in CONTRACT_FIELDS {
        assert!(r.get(field).is_some(), "missing {field}: {r}");
    }
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["signal"], Value::Null);
    assert_eq!(r["stdout"], "hello\n");
    assert_eq!(r["stderr"], "oops\n");
    assert_eq!(r["timed_out"], false);
    assert_eq!(r["diagnosis"], Value::Null);
    assert_eq!(r["analysis"], Value::Null);
    assert_eq!(r["analysis_error"], Value::Null);
    assert_eq!(r["isolation"], "workspace-write");
}

#[tokio::test]
async fn argv_stdin_env_and_cwd_are_passed() {
    let app = app(Setup::default());
    std::fs::create_dir(app.workspace.0.join("sub")).unwrap();
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": ["sh", "-c", "cat; echo \" $GREETING $(basename $PWD)\""],
               "stdin": "in", "env": {"GREETING": "hi"}, "cwd": "sub"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["stdout"], "in hi sub\n");
}

#[tokio::test]
async fn secrets_are_redacted_from_output() {
    let app = app(Setup::default());
    let (_, r) = exec(
        &app,
        json!({"kind": "command", "command": "echo pw=hunter2-secret"}),
    )
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(
        !out.contains("hunter2-secret") && out.contains("[REDACTED"),
        "{out}"
    );
}

#[tokio::test]
async fn python_code_runs() {
    let app = app(Setup::default());
    let (status, r) = exec(
        &app,
        json!({"kind": "code", "language": "python", "source": "print(6 * 7)"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["stdout"], "42\n");
}

#[tokio::test]
async fn a_workspace_file_runs_by_its_type() {
    let app = app(Setup::default());
    std::fs::write(app.workspace.0.join("hello.sh"), "echo from-file \"$1\"\n").unwrap();
    let (status, r) = exec(
        &app,
        json!({"kind": "file", "path": "hello.sh", "args": ["x"]}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["stdout"], "from-file x\n", "{r}");
}

#[tokio::test]
async fn a_missing_module_is_diagnosed_with_a_pip_install() {
    let app = app(Setup::default());
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": ["python3", "-c", "import nosuchmodule"]}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["exit_code"], 1);
    let d = &r["diagnosis"];
    assert_eq!(d["category"], "missing_module", "{r}");
    assert!(
        d["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("nosuchmodule")),
        "{d}"
    );
    assert!(
        d["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("pip install nosuchmodule")),
        "{d}"
    );
    let confidence = d["confidence"].as_f64().unwrap();
    assert!(confidence > 0.5 && confidence <= 1.0, "{d}");
    // Not asked for: no model call, no analysis, no complaint.
    assert_eq!(r["analysis"], Value::Null);
    assert_eq!(r["analysis_error"], Value::Null);
    assert!(app.provider.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_policy_denial_is_403_with_the_rule_and_reason() {
    let app = app(Setup::default());
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": "cd repo && git push origin main"}),
    )
    .await;
    assert_eq!(status, 403, "{r}");
    let e = &r["error"];
    assert_eq!(e["type"], "permission_error");
    assert_eq!(e["code"], "policy_denied");
    assert_eq!(e["rule"], "no-git-push");
    assert_eq!(e["reason"], "pushing is for humans");
    assert!(
        e["message"].as_str().unwrap().contains("no-git-push"),
        "{e}"
    );
    // The built-in rules apply too.
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": ["rm", "-rf", "/"]}),
    )
    .await;
    assert_eq!(status, 403, "{r}");
    assert!(
        r["error"]["rule"].as_str().is_some_and(|r| !r.is_empty()),
        "{r}"
    );
}

#[tokio::test]
async fn a_write_outside_the_workspace_is_denied() {
    let app = app(Setup::default());
    let outside = Dir::new("outside");
    let target = outside.0.join("escaped");
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": format!("echo x > {}", target.display())}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_ne!(r["exit_code"], 0, "{r}");
    assert!(!target.exists(), "the write escaped the workspace");
    assert_eq!(r["diagnosis"]["category"], "permission_denied", "{r}");
    // Inside the workspace the same write works.
    let (_, r) = exec(
        &app,
        json!({"kind": "command", "command": "echo x > inside && cat inside"}),
    )
    .await;
    assert_eq!(r["stdout"], "x\n", "{r}");
    // read-only refuses even that.
    let (_, r) = exec(
        &app,
        json!({"kind": "command", "command": "echo x > ro", "isolation": "read-only"}),
    )
    .await;
    assert_ne!(r["exit_code"], 0, "{r}");
    assert_eq!(r["isolation"], "read-only");
}

#[tokio::test]
async fn a_timeout_kills_the_run_and_says_so() {
    let app = app(Setup::default());
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": "echo started; sleep 30", "timeout_ms": 300}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["timed_out"], true, "{r}");
    assert_eq!(r["stdout"], "started\n");
    assert!(r["duration_ms"].as_u64().unwrap() < 10_000, "{r}");
    assert_eq!(r["diagnosis"]["category"], "timeout", "{r}");
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field() {
    let app = app(Setup::default());
    let cases = [
        (json!({"kind": "command"}), "command"),
        (json!({"kind": "command", "command": []}), "command"),
        (json!({"kind": "code", "source": "print(1)"}), "language"),
        (
            json!({"kind": "code", "language": "cobol", "source": "x"}),
            "language",
        ),
        (json!({"kind": "code", "language": "python"}), "source"),
        (json!({"kind": "file"}), "path"),
        (
            json!({"kind": "command", "command": "true", "timeout_ms": 0}),
            "timeout_ms",
        ),
        (
            json!({"kind": "command", "command": "true", "timeout_ms": 999_999_999}),
            "timeout_ms",
        ),
        (
            json!({"kind": "command", "command": "true", "isolation": "none"}),
            "isolation",
        ),
        (
            json!({"kind": "command", "command": "true", "env": {"A=B": "x"}}),
            "env",
        ),
        (
            json!({"kind": "command", "command": "true", "language": "python"}),
            "language",
        ),
        (json!({"kind": "script", "command": "true"}), "kind"),
        (
            json!({"kind": "command", "command": "true", "cwd": "no/such/dir"}),
            "cwd",
        ),
    ];
    for (body, field) in cases {
        let (status, r) = exec(&app, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {r}");
        assert_eq!(r["error"]["type"], "invalid_request_error", "{r}");
        assert_eq!(r["error"]["param"], field, "{body} -> {r}");
        assert!(
            r["error"]["message"].as_str().unwrap().starts_with(field),
            "{r}"
        );
    }
    // Unknown fields and broken JSON are refused too.
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": "true", "timeout": 5}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        r["error"]["message"].as_str().unwrap().contains("timeout"),
        "{r}"
    );
    let (status, text) = call(&app, "POST", "/v1/exec", None, None).await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn a_master_key_is_required_when_set() {
    let app = app(Setup {
        master_key: Some("fw-key"),
        ..Setup::default()
    });
    let body = json!({"kind": "command", "command": "true"});
    let (status, text) = call(&app, "POST", "/v1/exec", Some(body.clone()), None).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("authentication_error"), "{text}");
    let (status, _) = call(&app, "POST", "/v1/exec", Some(body.clone()), Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, text) = call(&app, "POST", "/v1/exec", Some(body), Some("fw-key")).await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = call(&app, "GET", "/v1/exec/languages", None, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn without_a_sandbox_exec_answers_503_with_the_reason() {
    let app = app(Setup {
        sandbox: false,
        ..Setup::default()
    });
    let (status, r) = exec(&app, json!({"kind": "command", "command": "true"})).await;
    assert_eq!(status, 503, "{r}");
    assert_eq!(r["error"]["code"], "sandbox_unavailable");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no sandbox"),
        "{r}"
    );
}

#[tokio::test]
async fn languages_are_listed_with_their_availability() {
    let app = app(Setup::default());
    let (status, text) = call(&app, "GET", "/v1/exec/languages", None, None).await;
    assert_eq!(status, 200);
    let r: Value = serde_json::from_str(&text).unwrap();
    let data = r["data"].as_array().unwrap();
    let names: Vec<&str> = data
        .iter()
        .map(|l| l["language"].as_str().unwrap())
        .collect();
    for lang in ["bash", "python", "node", "c", "rust", "go"] {
        assert!(
            names.iter().any(|n| n.contains(lang)),
            "{lang} not in {names:?}"
        );
    }
    let sh = data.iter().find(|l| l["language"] == "bash").unwrap();
    assert_eq!(sh["available"], true, "{sh}");
}

const ANALYSIS: &str = r#"{"summary": "Python cannot import nosuchmodule.", "category": "missing_module", "root_cause": "The package nosuchmodule is not installed in this interpreter.", "confidence": 0.8, "suggested_commands": ["pip install nosuchmodule"]}"#;

#[tokio::test]
async fn analysis_comes_from_the_model_as_structured_json() {
    let app = app(Setup {
        analysis_answer: ANALYSIS,
        ..Setup::default()
    });
    let (status, r) = exec(
        &app,
        json!({"kind": "code", "language": "python", "source": "import nosuchmodule", "analyze": true}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let a = &r["analysis"];
    assert_eq!(a["summary"], "Python cannot import nosuchmodule.", "{r}");
    assert_eq!(a["category"], "missing_module");
    assert_eq!(
        a["root_cause"],
        "The package nosuchmodule is not installed in this interpreter."
    );
    assert!((a["confidence"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    assert_eq!(a["suggested_commands"], json!(["pip install nosuchmodule"]));
    assert_eq!(r["analysis_model"], "mock/analyst");
    assert_eq!(r["analysis_error"], Value::Null);
    // The model was asked once, for schema-constrained JSON, with the failure in the prompt.
    let seen = app.provider.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].model, "analyst");
    assert!(matches!(
        seen[0].response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ));
    let prompt: String = seen[0].messages.iter().map(|m| m.text()).collect();
    assert!(prompt.contains("nosuchmodule"), "{prompt}");
}

#[tokio::test]
async fn a_successful_run_is_not_analyzed() {
    let app = app(Setup {
        analysis_answer: ANALYSIS,
        ..Setup::default()
    });
    let (_, r) = exec(
        &app,
        json!({"kind": "command", "command": "true", "analyze": true}),
    )
    .await;
    assert_eq!(r["analysis"], Value::Null);
    assert!(app.provider.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_bad_model_answer_is_reported_never_faked() {
    let app = app(Setup {
        analysis_answer: "It is probably a missing module, try pip.",
        ..Setup::default()
    });
    let (status, r) = exec(
        &app,
        json!({"kind": "command", "command": "exit 3", "analyze": true}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["analysis"], Value::Null);
    assert_eq!(
        r["analysis_error"]["code"], "analysis_invalid_answer",
        "{r}"
    );
    assert_eq!(r["analysis_error"]["model"], "mock/analyst");

    let app = app_without_model();
    let (_, r) = exec(
        &app,
        json!({"kind": "command", "command": "exit 3", "analyze": true}),
    )
    .await;
    assert_eq!(r["analysis"], Value::Null);
    assert_eq!(r["analysis_error"]["code"], "no_analysis_model", "{r}");
}

fn app_without_model() -> App {
    app(Setup {
        analysis_model: None,
        ..Setup::default()
    })
}

#[tokio::test]
async fn an_unknown_analysis_model_is_reported() {
    let app = app(Setup {
        analysis_model: Some("nosuch/model"),
        ..Setup::default()
    });
    let (_, r) = exec(
        &app,
        json!({"kind": "command", "command": "exit 2", "analyze": true}),
    )
    .await;
    assert_eq!(r["analysis"], Value::Null);
    assert_eq!(r["analysis_error"]["code"], "analysis_model_failed", "{r}");
}

#[tokio::test]
async fn streaming_sends_output_then_the_result() {
    let app = app(Setup::default());
    let (status, text) = call(
        &app,
        "POST",
        "/v1/exec",
        Some(
            json!({"kind": "command", "command": "echo one; echo two >&2; exit 4", "stream": true}),
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter(|f| f.starts_with("event: "))
        .map(|f| {
            let (head, data) = f.split_once('\n').unwrap();
            (
                head.trim_start_matches("event: "),
                serde_json::from_str(data.trim_start_matches("data: ")).unwrap(),
            )
        })
        .collect();
    let outputs: String = events
        .iter()
        .filter(|(e, _)| *e == "output")
        .map(|(_, d)| {
            format!(
                "{}:{}",
                d["stream"].as_str().unwrap(),
                d["text"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        outputs.contains("stdout:one\n") && outputs.contains("stderr:two\n"),
        "{text}"
    );
    let (last, result) = events.last().unwrap();
    assert_eq!(*last, "result", "{text}");
    assert_eq!(result["exit_code"], 4);
    assert_eq!(result["stdout"], "one\n");

    // A denied command is still a plain 403, not a stream.
    let (status, text) = call(
        &app,
        "POST",
        "/v1/exec",
        Some(json!({"kind": "command", "command": "git push", "stream": true})),
        None,
    )
    .await;
    assert_eq!(status, 403, "{text}");
}
