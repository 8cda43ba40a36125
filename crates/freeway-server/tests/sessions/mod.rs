//! Agents over HTTP: the sessions API and the OpenAI extension, on a real socket, with a
//! scripted OpenAI-protocol upstream playing a fixed sequence of tool calls on a repository
//! with a failing test, the real sandbox and a SQLite store.

use std::sync::Arc;

use freeway_agent::{AgentSpec, GatewayModel, Runtime};
use freeway_gateway::Gateway;
use freeway_gateway::limits::Limiter;
use freeway_gateway::pricing::PriceTable;
use freeway_providers::openai::{OpenAiProvider, Quirks};
use freeway_providers::{Auth, HttpSettings, Secret, Timeouts};
use freeway_sandbox::{OnMissing, Sandbox, SandboxConfig};
use freeway_server::sessions::Agents;
use freeway_server::tenancy::Tenancy;
use freeway_server::{AppState, router};
use freeway_store::Store;
use freeway_testkit::openai::{StreamShape, stream};
use freeway_testkit::{Answer, MockToolCall, MockUpstream, Protocol, Reply, SseScript};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const MASTER: &str = "fw-master-for-tests";

struct App {
    base: String,
    client: reqwest::Client,
    upstream: MockUpstream,
    root: tempfile::TempDir,
}

fn step(answer: Answer) -> Reply {
    Reply::sse(stream("gpt-4o-mini", &answer, StreamShape::default()))
}

fn call(id: &str, name: &str, args: Value) -> MockToolCall {
    MockToolCall::new(id, name, &args)
}

/// `root/repo` with a failing test.
fn repo(root: &std::path::Path) {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(
        repo.join("test_calc.py"),
        "from calc import add\nassert add(2, 3) == 5\nprint('ok')\n",
    )
    .unwrap();
}

fn play(upstream: &MockUpstream) {
    upstream.push(step(Answer::tool_calls(vec![
        call("c1", "read_file", json!({"path": "test_calc.py"})),
        call("c2", "read_file", json!({"path": "calc.py"})),
    ])));
    upstream.push(step(Answer::tool_calls(vec![call(
        "c3",
        "edit_file",
        json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}),
    )])));
    upstream.push(step(Answer::tool_calls(vec![call(
        "c4",
        "bash",
        json!({"command": "python3 test_calc.py"}),
    )])));
    upstream.push(step(Answer::text("Fixed: add subtracted.")));
}

async fn app(extra: Vec<AgentSpec>) -> App {
    let upstream = MockUpstream::start(Protocol::OpenAi).await.unwrap();
    let settings = HttpSettings {
        provider: "up".into(),
        base_url: upstream.base_url(),
        auth: Auth::None,
        headers: Vec::new(),
        timeouts: Timeouts::default(),
    };
    let provider = Arc::new(OpenAiProvider::new(&settings, Quirks::default()).unwrap());
    let gateway = Arc::new(
        Gateway::builder()
            .provider(provider, vec!["gpt-4o-mini".into()], false)
            .cache(freeway_config::CacheSettings {
                url: "off".into(),
                ..Default::default()
            })
            .build()
            .unwrap(),
    );
    let root = tempfile::tempdir().unwrap();
    repo(root.path());
    let store = Store::open(&format!("sqlite://{}/freeway.db", root.path().display()))
        .await
        .unwrap();
    let sandbox = Arc::new(
        Sandbox::new(SandboxConfig {
            workspace: root.path().to_path_buf(),
            on_missing: OnMissing::Degrade,
            ..SandboxConfig::default()
        })
        .unwrap(),
    );
    let prices = Arc::new(PriceTable::builtin().unwrap());
    let mut runtime = Runtime::new(
        Arc::new(GatewayModel::new(gateway.clone())),
        store.clone(),
        sandbox,
        prices,
    );
    runtime
        .add_agent(AgentSpec::coder("up/gpt-4o-mini"))
        .unwrap();
    for spec in extra {
        runtime.add_agent(spec).unwrap();
    }
    let tenancy = Tenancy::new(
        store.clone(),
        Limiter::memory(Some(store)),
        PriceTable::builtin().unwrap(),
    );
    let mut state = AppState::new(gateway, Some(Secret::new(MASTER.to_owned())));
    state.tenancy = Some(Arc::new(tenancy));
    state.agents = Some(Arc::new(Agents::new(
        Arc::new(runtime),
        root.path().to_path_buf(),
    )));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(Arc::new(state)))
            .await
            .unwrap();
    });
    App {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        upstream,
        root,
    }
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `data:` objects of an SSE body.
    fn events(&self) -> Vec<Value> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

impl App {
    async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Got {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        Got {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn session(&self, key: &str, body: Value) -> String {
        let got = self.call("POST", "/v1/sessions", key, Some(body)).await;
        assert_eq!(got.status, 201, "{}", got.text);
        got.json()["id"].as_str().unwrap().to_owned()
    }

    fn file(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.path().join(path)).unwrap()
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|t| *t != "message.delta" && *t != "tool.output")
        .collect()
}

#[tokio::test]
async fn the_sessions_api_runs_the_scenario_and_keeps_it() {
    let app = app(Vec::new()).await;
    play(&app.upstream);
    let id = app
        .session(MASTER, json!({"working_directory": "repo"}))
        .await;

    let got = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/messages"),
            MASTER,
            Some(json!({"content": "fix the failing test"})),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert!(
        got.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(got.text.contains("event: tool.started\n"), "{}", got.text);
    let events = got.events();
    assert_eq!(
        types(&events),
        [
            "session.started",
            "message.completed",
            "tool.started",
            "tool.started",
            "tool.finished",
            "tool.finished",
            "message.completed",
            "tool.started",
            "tool.finished",
            "message.completed",
            "tool.started",
            "tool.finished",
            "message.completed",
            "session.idle",
        ]
    );
    let idle = events.last().unwrap();
    assert_eq!(idle["reason"], "completed");
    assert_eq!(idle["answer"], "Fixed: add subtracted.");
    assert_eq!(
        app.file("repo/calc.py"),
        "def add(a, b):\n    return a + b\n"
    );
    let bash = events
        .iter()
        .find(|e| e["type"] == "tool.finished" && e["name"] == "bash")
        .unwrap();
    assert!(
        bash["output"].as_str().unwrap().starts_with("exit code 0"),
        "{bash}"
    );

    // Shown with every item; listed; re-attaching to an idle session gives its end.
    let shown = app
        .call("GET", &format!("/v1/sessions/{id}"), MASTER, None)
        .await;
    assert_eq!(shown.status, 200);
    let shown = shown.json();
    assert_eq!(shown["usage"]["steps"], 4);
    assert_eq!(shown["running"], false);
    assert_eq!(shown["items"].as_array().unwrap().len(), 10);
    assert_eq!(shown["items"][0]["data"]["message"]["role"], "user");
    let listed = app.call("GET", "/v1/sessions", MASTER, None).await.json();
    assert_eq!(listed["data"][0]["id"], id.as_str());
    let again = app
        .call("GET", &format!("/v1/sessions/{id}/events"), MASTER, None)
        .await;
    let again = again.events();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["type"], "session.idle");
    assert_eq!(again[0]["answer"], "Fixed: add subtracted.");

    // Forked, then deleted.
    let fork = app
        .call("POST", &format!("/v1/sessions/{id}/fork"), MASTER, None)
        .await;
    assert_eq!(fork.status, 201, "{}", fork.text);
    assert_eq!(fork.json()["parent_id"], id.as_str());
    let gone = app
        .call("DELETE", &format!("/v1/sessions/{id}"), MASTER, None)
        .await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    let missing = app
        .call("GET", &format!("/v1/sessions/{id}"), MASTER, None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn any_openai_client_drives_an_agent() {
    let app = app(Vec::new()).await;
    play(&app.upstream);
    let got = app
        .call(
            "POST",
            "/v1/chat/completions",
            MASTER,
            Some(json!({
                "model": "agent:coder",
                "messages": [{"role": "user", "content": "fix the failing test"}],
                "working_directory": "repo",
            })),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let body = got.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "agent:coder");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Fixed: add subtracted."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let session = body["session_id"].as_str().unwrap().to_owned();
    assert_eq!(got.headers["x-freeway-session"], session.as_str());
    assert_eq!(
        app.file("repo/calc.py"),
        "def add(a, b):\n    return a + b\n"
    );

    // The same session continues, streamed.
    app.upstream
        .push(step(Answer::text("It subtracted instead of adding.")));
    let got = app
        .call(
            "POST",
            "/v1/chat/completions",
            MASTER,
            Some(json!({
                "model": "agent:coder",
                "messages": [{"role": "user", "content": "what was wrong?"}],
                "session_id": session,
                "stream": true,
                "stream_options": {"include_usage": true},
            })),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let chunks = got.events();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "It subtracted instead of adding.");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert!(got.text.trim_end().ends_with("data: [DONE]"));
    // The upstream saw the whole history.
    let last = app.upstream.last_request().unwrap().json();
    assert_eq!(last["messages"].as_array().unwrap().len(), 11);
}

#[tokio::test]
async fn bad_agent_requests_get_clear_errors() {
    let app = app(Vec::new()).await;
    let outside = app
        .call(
            "POST",
            "/v1/sessions",
            MASTER,
            Some(json!({"working_directory": "../../etc"})),
        )
        .await;
    assert_eq!(outside.status, 400, "{}", outside.text);
    assert!(
        outside.text.contains("working_directory"),
        "{}",
        outside.text
    );
    let unknown = app
        .call(
            "POST",
            "/v1/sessions",
            MASTER,
            Some(json!({"agent": "nope"})),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "agent_not_found");
    let typo = app
        .call(
            "POST",
            "/v1/sessions",
            MASTER,
            Some(json!({"agnet": "coder"})),
        )
        .await;
    assert_eq!(typo.status, 400, "{}", typo.text);
    let id = app.session(MASTER, json!({})).await;
    let empty = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/messages"),
            MASTER,
            Some(json!({"content": "  "})),
        )
        .await;
    assert_eq!(empty.status, 400);
    let tool = app
        .call(
            "POST",
            "/v1/chat/completions",
            MASTER,
            Some(json!({
                "model": "agent:coder",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": ["launch_rockets"],
            })),
        )
        .await;
    assert_eq!(tool.status, 400, "{}", tool.text);
    assert!(tool.text.contains("launch_rockets"), "{}", tool.text);
    let tools = app.call("GET", "/v1/tools", MASTER, None).await.json();
    let names: Vec<&str> = tools["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in [
        "read_file",
        "write_file",
        "edit_file",
        "list",
        "glob",
        "grep",
        "bash",
        "run_code",
    ] {
        assert!(names.contains(&t), "{names:?}");
    }
}

#[tokio::test]
async fn teams_never_see_each_others_sessions_and_viewers_cannot_run() {
    let app = app(Vec::new()).await;
    for team in ["alpha", "beta"] {
        let got = app
            .call("POST", "/admin/teams", MASTER, Some(json!({"name": team})))
            .await;
        assert_eq!(got.status, 201, "{}", got.text);
    }
    let key = |team: &'static str, role: &'static str| {
        let app = &app;
        async move {
            let got = app
                .call(
                    "POST",
                    "/admin/keys",
                    MASTER,
                    Some(json!({"team": team, "role": role})),
                )
                .await;
            assert_eq!(got.status, 201, "{}", got.text);
            got.json()["key"].as_str().unwrap().to_owned()
        }
    };
    let alpha = key("alpha", "developer").await;
    let beta = key("beta", "developer").await;
    let viewer = key("alpha", "viewer").await;
    let id = app
        .session(&alpha, json!({"working_directory": "repo"}))
        .await;

    for (method, path) in [
        ("GET", format!("/v1/sessions/{id}")),
        ("GET", format!("/v1/sessions/{id}/events")),
        ("DELETE", format!("/v1/sessions/{id}")),
        ("POST", format!("/v1/sessions/{id}/abort")),
        ("POST", format!("/v1/sessions/{id}/fork")),
    ] {
        let got = app.call(method, &path, &beta, None).await;
        assert_eq!(got.status, 404, "{method} {path}: {}", got.text);
    }
    let got = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/messages"),
            &beta,
            Some(json!({"content": "steal"})),
        )
        .await;
    assert_eq!(got.status, 404);
    let listed = app.call("GET", "/v1/sessions", &beta, None).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 0);
    // The viewer of alpha reads alpha's sessions but may not run one.
    let listed = app.call("GET", "/v1/sessions", &viewer, None).await.json();
    assert_eq!(listed["data"][0]["id"], id.as_str());
    let got = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/messages"),
            &viewer,
            Some(json!({"content": "go"})),
        )
        .await;
    assert_eq!(got.status, 403, "{}", got.text);
}

#[tokio::test]
async fn an_abort_stops_the_turn_and_a_client_can_reattach() {
    let app = app(Vec::new()).await;
    // The model starts answering, then hangs.
    app.upstream.push(Reply::sse(
        SseScript::new()
            .data(&freeway_testkit::openai::chunk(
                "gpt-4o-mini",
                json!({"role": "assistant", "content": "thinking"}),
                None,
                false,
            ))
            .hang(),
    ));
    let id = app.session(MASTER, json!({})).await;
    let base = app.base.clone();
    let client = app.client.clone();
    let path = format!("{base}/v1/sessions/{id}/messages");
    let first = tokio::spawn(async move {
        client
            .post(path)
            .bearer_auth(MASTER)
            .header("content-type", "application/json")
            .body(json!({"content": "think hard"}).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    // Wait until the turn is running, then re-attach from a second client.
    let mut running = false;
    for _ in 0..200 {
        let shown = app
            .call("GET", &format!("/v1/sessions/{id}"), MASTER, None)
            .await;
        if shown.json()["running"] == true && app.upstream.requests().len() == 1 {
            running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(running);
    let client = app.client.clone();
    let path = format!("{}/v1/sessions/{id}/events", app.base);
    let second = tokio::spawn(async move {
        client
            .get(path)
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let busy = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/messages"),
            MASTER,
            Some(json!({"content": "again"})),
        )
        .await;
    assert_eq!(busy.status, 409, "{}", busy.text);
    let aborted = app
        .call("POST", &format!("/v1/sessions/{id}/abort"), MASTER, None)
        .await;
    assert_eq!(aborted.json()["aborted"], true);
    for text in [first.await.unwrap(), second.await.unwrap()] {
        assert!(text.contains("\"type\":\"session.started\""), "{text}");
        assert!(text.contains("\"text\":\"thinking\""), "{text}");
        assert!(text.contains("\"reason\":\"aborted\""), "{text}");
    }
}

#[tokio::test]
async fn suggest_mode_waits_for_an_approval() {
    let careful = AgentSpec {
        name: "careful".into(),
        approval: freeway_config::Approval::Suggest,
        ..AgentSpec::coder("up/gpt-4o-mini")
    };
    let app = app(vec![careful]).await;
    app.upstream.push(step(Answer::tool_calls(vec![call(
        "w1",
        "write_file",
        json!({"path": "note.txt", "content": "approved"}),
    )])));
    app.upstream.push(step(Answer::tool_calls(vec![call(
        "w2",
        "write_file",
        json!({"path": "denied.txt", "content": "no"}),
    )])));
    app.upstream.push(step(Answer::text("done")));
    let id = app
        .session(
            MASTER,
            json!({"agent": "careful", "working_directory": "repo"}),
        )
        .await;
    let client = app.client.clone();
    let path = format!("{}/v1/sessions/{id}/messages", app.base);
    let turn = tokio::spawn(async move {
        client
            .post(path)
            .bearer_auth(MASTER)
            .header("content-type", "application/json")
            .body(json!({"content": "write notes"}).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for (call_id, approve) in [("w1", true), ("w2", false)] {
        let mut waiting = false;
        for _ in 0..200 {
            let shown = app
                .call("GET", &format!("/v1/sessions/{id}"), MASTER, None)
                .await;
            if shown.json()["pending_approvals"] == json!([call_id]) {
                waiting = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(waiting, "{call_id} never waited");
        let got = app
            .call(
                "POST",
                &format!("/v1/sessions/{id}/approvals/{call_id}"),
                MASTER,
                Some(json!({"approve": approve, "reason": "not that one"})),
            )
            .await;
        assert_eq!(got.status, 200, "{}", got.text);
    }
    let text = turn.await.unwrap();
    assert!(text.contains("event: approval.requested"), "{text}");
    assert!(
        text.contains("the user did not approve this call: not that one"),
        "{text}"
    );
    assert_eq!(app.file("repo/note.txt"), "approved");
    assert!(!app.root.path().join("repo/denied.txt").exists());
    let nothing = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/approvals/zzz"),
            MASTER,
            Some(json!({"approve": true})),
        )
        .await;
    assert_eq!(nothing.status, 404);
}

/// A key's and its team's tool allow lists narrow what an agent may run for it: the model sees
/// only the allowed tools, a call to another is refused, and asking for one is a 403.
#[tokio::test]
async fn tool_allow_lists_bound_what_a_key_runs() {
    let app = app(Vec::new()).await;
    let got = app
        .call(
            "POST",
            "/admin/teams",
            MASTER,
            Some(json!({"name": "careful", "tools": ["read_file", "list", "grep", "bash"]})),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.text);
    assert_eq!(
        got.json()["tools"],
        json!(["read_file", "list", "grep", "bash"])
    );
    let got = app
        .call(
            "POST",
            "/admin/keys",
            MASTER,
            Some(json!({"team": "careful", "role": "developer", "tools": ["read_file", "list"]})),
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.text);
    assert_eq!(got.json()["tools"], json!(["read_file", "list"]));
    let key = got.json()["key"].as_str().unwrap().to_owned();
    let id = app
        .session(&key, json!({"working_directory": "repo"}))
        .await;

    // Asking for a tool the key may not use is refused before anything runs.
    let got = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/messages"),
            &key,
            Some(json!({"content": "go", "tools": ["read_file", "bash"]})),
        )
        .await;
    assert_eq!(got.status, 403, "{}", got.text);
    assert_eq!(got.json()["error"]["code"], "tool_not_allowed");
    assert!(got.text.contains("`bash`"), "{}", got.text);
    assert!(app.upstream.requests().is_empty());

    // Otherwise the agent's tools are narrowed to the lists, and a call outside them fails.
    app.upstream.push(step(Answer::tool_calls(vec![call(
        "e1",
        "edit_file",
        json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}),
    )])));
    app.upstream.push(step(Answer::text("I may not edit.")));
    let got = app
        .call(
            "POST",
            &format!("/v1/sessions/{id}/messages"),
            &key,
            Some(json!({"content": "fix it", "stream": false})),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let requests = app.upstream.requests();
    let mut names: Vec<String> = requests[0].json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["list", "read_file"]);
    assert!(
        app.file("repo/calc.py").contains("a - b"),
        "nothing was edited"
    );
    let back = requests[1].json()["messages"].to_string();
    assert!(back.contains("there is no tool `edit_file`"), "{back}");
}
