#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! The agent loop end to end: a scripted OpenAI-protocol upstream plays a fixed sequence of
//! tool calls on a small repository with a failing test (read the test and the code, fix the
//! bug, run the test, answer), through the real gateway, tools, sandbox and SQLite store.

use std::path::Path;
use std::sync::Arc;

use freeway_agent::{
    AgentError, AgentSpec, ApproveAll, Context, Event, GatewayModel, Owner, Record, Runtime,
    SessionOptions, StopReason, Turn,
};
use freeway_gateway::Gateway;
use freeway_gateway::pricing::{Price, PriceTable};
use freeway_providers::openai::{OpenAiProvider, Quirks};
use freeway_providers::{Auth, HttpSettings, Timeouts};
use freeway_sandbox::{OnMissing, Sandbox, SandboxConfig};
use freeway_store::{Scope, Store};
use freeway_testkit::openai::{StreamShape, stream};
use freeway_testkit::{Answer, MockToolCall, MockUpstream, MockUsage, Protocol, Reply};
use serde_json::json;
use tokio::sync::mpsc;

const CALC: &str = "def add(a, b):\n    return a - b\n";
const TEST: &str =
    "from calc import add\n\nassert add(2, 3) == 5, f\"add(2, 3) = {add(2, 3)}\"\nprint(\"ok\")\n";

fn repo(dir: &Path) {
    std::fs::write(dir.join("calc.py"), CALC).unwrap();
    std::fs::write(dir.join("test_calc.py"), TEST).unwrap();
}

fn step(answer: Answer) -> Reply {
    Reply::sse(stream("gpt-4o-mini", &answer, StreamShape::default()))
}

fn call(id: &str, name: &str, args: serde_json::Value) -> MockToolCall {
    MockToolCall::new(id, name, &args)
}

/// The fixed play: both files read in one step (in parallel), the fix, the test run, the answer.
fn play(upstream: &MockUpstream) {
    upstream.push(step(Answer::tool_calls(vec![
        call("c1", "read_file", json!({"path": "test_calc.py"})),
        call("c2", "read_file", json!({"path": "calc.py"})),
    ])));
    upstream.push(step(Answer::tool_calls(vec![call(
        "c3",
        "edit_file",
        json!({"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}),
    )])));
    upstream.push(step(Answer::tool_calls(vec![call(
        "c4",
        "bash",
        json!({"command": "python3 test_calc.py"}),
    )])));
    upstream.push(step(Answer::text(
        "Fixed `add`: it subtracted. The test passes now.",
    )));
}

struct Setup {
    upstream: MockUpstream,
    store_url: String,
    _dir: tempfile::TempDir,
    repo: tempfile::TempDir,
}

async fn setup() -> Setup {
    let upstream = MockUpstream::start(Protocol::OpenAi).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    self::repo(repo.path());
    Setup {
        upstream,
        store_url: format!("sqlite://{}/freeway.db", dir.path().display()),
        _dir: dir,
        repo,
    }
}

/// A fresh runtime over the same store: what a restarted process builds.
async fn runtime(s: &Setup, spec: AgentSpec) -> Runtime {
    let settings = HttpSettings {
        provider: "up".into(),
        base_url: s.upstream.base_url(),
        auth: Auth::None,
        headers: Vec::new(),
        timeouts: Timeouts::default(),
    };
    let provider = Arc::new(OpenAiProvider::new(&settings, Quirks::default()).unwrap());
    let gateway = Gateway::builder()
        .provider(provider, vec!["gpt-4o-mini".into()], false)
        .build()
        .unwrap();
    let store = Store::open(&s.store_url).await.unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        workspace: s.repo.path().to_path_buf(),
        on_missing: OnMissing::Degrade,
        ..SandboxConfig::default()
    })
    .unwrap();
    let prices = PriceTable::builtin().unwrap().with_overrides([(
        "up/gpt-4o-mini".to_owned(),
        Price {
            input: 1.0,
            output: 2.0,
            cached_input: None,
            cache_write: None,
        },
    )]);
    let mut runtime = Runtime::new(
        Arc::new(GatewayModel::new(Arc::new(gateway))),
        store,
        Arc::new(sandbox),
        Arc::new(prices),
    );
    runtime.add_agent(spec).unwrap();
    runtime
}

/// A session of `agent` in the setup's repository.
async fn new_session(runtime: &Runtime, s: &Setup, agent: &str) -> freeway_store::Session {
    runtime
        .create_session(
            &Owner::default(),
            &SessionOptions {
                agent: agent.into(),
                model: None,
                working_directory: s.repo.path().to_path_buf(),
                title: None,
            },
        )
        .await
        .unwrap()
}

fn coder() -> AgentSpec {
    AgentSpec::coder("up/gpt-4o-mini")
}

async fn turn(
    runtime: &Runtime,
    session: &str,
    input: &str,
) -> (Vec<Event>, freeway_agent::TurnOutcome) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let turn = Turn {
        approver: Arc::new(ApproveAll),
        ..Turn::new(input, tx)
    };
    let outcome = runtime.run(Scope::All, session, turn).await.unwrap();
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (events, outcome)
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(Event::name)
        .filter(|n| *n != "message.delta" && *n != "tool.output")
        .collect()
}

#[tokio::test]
async fn the_agent_fixes_the_failing_test_and_everything_is_kept() {
    let s = setup().await;
    play(&s.upstream);
    let runtime = runtime(&s, coder()).await;
    let session = new_session(&runtime, &s, "coder").await;

    let (events, outcome) = turn(&runtime, &session.id, "fix the failing test").await;

    assert_eq!(outcome.reason, StopReason::Completed, "{events:#?}");
    assert_eq!(outcome.steps, 4);
    assert_eq!(
        outcome.answer.as_deref(),
        Some("Fixed `add`: it subtracted. The test passes now.")
    );
    // The file really changed, and the test really ran and passed.
    let fixed = std::fs::read_to_string(s.repo.path().join("calc.py")).unwrap();
    assert_eq!(fixed, "def add(a, b):\n    return a + b\n");
    let bash = events
        .iter()
        .find_map(|e| match e {
            Event::ToolFinished {
                name,
                output,
                is_error,
                ..
            } if name == "bash" => Some((output.clone(), *is_error)),
            _ => None,
        })
        .unwrap();
    assert!(bash.0.starts_with("exit code 0"), "{}", bash.0);
    assert!(bash.0.contains("ok"), "{}", bash.0);
    assert!(!bash.1);

    // The events came in order.
    assert_eq!(
        names(&events),
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
    // The streamed answer is the final text.
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            Event::MessageDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, "Fixed `add`: it subtracted. The test passes now.");

    // The model saw the tools and, on the second step, both file contents.
    let requests = s.upstream.requests();
    assert_eq!(requests.len(), 4);
    let first = requests[0].json();
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"edit_file") && tools.contains(&"bash"),
        "{tools:?}"
    );
    let second = requests[1].json().to_string();
    assert!(second.contains("return a - b"), "{second}");
    assert!(second.contains("assert add(2, 3) == 5"), "{second}");

    // Everything is in the store: user, 4 assistant messages, 4 tool results, the turn.
    let store = runtime.store();
    let saved = store.session(Scope::All, &session.id).await.unwrap();
    assert_eq!(saved.usage.steps, 4);
    assert!(saved.usage.cost_nanos > 0);
    assert_eq!(saved.title.as_deref(), Some("fix the failing test"));
    let items = store.items(Scope::All, &session.id, 0, None).await.unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "message").count(), 9);
    assert_eq!(kinds.last(), Some(&"turn"));
}

#[tokio::test]
async fn a_session_resumes_after_a_restart_with_its_history() {
    let s = setup().await;
    play(&s.upstream);
    let session_id = {
        let runtime = runtime(&s, coder()).await;
        let session = new_session(&runtime, &s, "coder").await;
        turn(&runtime, &session.id, "fix the failing test").await;
        runtime.store().close().await;
        session.id
    };

    // A new process: nothing in memory, the same store.
    s.upstream
        .push(step(Answer::text("It was `a - b` instead of `a + b`.")));
    let runtime = runtime(&s, coder()).await;
    let (events, outcome) = turn(&runtime, &session_id, "what was wrong?").await;
    assert_eq!(outcome.reason, StopReason::Completed, "{events:#?}");
    let last = s.upstream.last_request().unwrap().json();
    let messages = last["messages"].as_array().unwrap();
    // system + the first turn (user, 4 assistant, 4 tool) + the new question.
    assert_eq!(messages.len(), 11, "{messages:#?}");
    assert_eq!(messages[1]["content"], "fix the failing test");
    assert_eq!(messages[10]["content"], "what was wrong?");
    assert_eq!(messages[9]["role"], "assistant");
}

#[tokio::test]
async fn two_instances_on_one_store_never_run_a_session_at_once() {
    let s = setup().await;
    let here = runtime(&s, coder()).await;
    let there = runtime(&s, coder()).await;
    let session = new_session(&here, &s, "coder").await;

    let claim = here.claim(Scope::All, &session.id).await.unwrap();
    let held = there
        .store()
        .session(Scope::All, &session.id)
        .await
        .unwrap();
    assert_eq!(held.status, freeway_store::SessionStatus::Running);
    // The other instance has nothing in memory about it; the lease in the store refuses.
    let (tx, _rx) = mpsc::unbounded_channel();
    let refused = there
        .run(Scope::All, &session.id, Turn::new("me too", tx))
        .await;
    assert!(
        matches!(refused, Err(AgentError::Busy(ref id)) if *id == session.id),
        "{refused:?}"
    );
    assert!(matches!(
        here.claim(Scope::All, &session.id).await,
        Err(AgentError::Busy(_))
    ));

    // The turn runs on the instance that holds the claim and gives the session back.
    s.upstream.push(step(Answer::text("done")));
    let (tx, _rx) = mpsc::unbounded_channel();
    let outcome = here
        .run_claimed(Scope::All, claim, Turn::new("go", tx))
        .await
        .unwrap();
    assert_eq!(outcome.reason, StopReason::Completed);
    let idle = there
        .store()
        .session(Scope::All, &session.id)
        .await
        .unwrap();
    assert_eq!(idle.status, freeway_store::SessionStatus::Idle);
    s.upstream.push(step(Answer::text("done there")));
    let (_, outcome) = turn(&there, &session.id, "and now from there").await;
    assert_eq!(outcome.answer.as_deref(), Some("done there"));

    // A claim given up without running a turn frees the session too.
    drop(there.claim(Scope::All, &session.id).await.unwrap());
    let mut free = false;
    for _ in 0..100 {
        if here.claim(Scope::All, &session.id).await.is_ok() {
            free = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(free, "a dropped claim releases its lease");
}

#[tokio::test]
async fn a_turn_cut_between_a_call_and_its_result_resumes_cleanly() {
    let s = setup().await;
    let runtime = runtime(&s, coder()).await;
    let session = new_session(&runtime, &s, "coder").await;
    // What a crash leaves: the model's call is stored, its result is not.
    let records = [
        Record::Message(freeway_agent::record::MessageRecord::plain(
            freeway_types::Message::user("run it"),
        )),
        Record::Message(freeway_agent::record::MessageRecord::plain(
            freeway_types::Message::Assistant {
                content: vec![],
                tool_calls: vec![freeway_types::ToolCall {
                    id: "lost".into(),
                    name: "bash".into(),
                    arguments: "{\"command\":\"true\"}".into(),
                }],
            },
        )),
    ];
    let items: Vec<_> = records.iter().map(Record::to_item).collect();
    runtime
        .store()
        .append_items(Scope::All, &session.id, &items)
        .await
        .unwrap();
    s.upstream
        .push(step(Answer::text("Sorry, trying again later.")));
    let (_, outcome) = turn(&runtime, &session.id, "go on").await;
    assert_eq!(outcome.reason, StopReason::Completed);
    let messages = s.upstream.last_request().unwrap().json()["messages"].clone();
    let tool = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool["tool_call_id"], "lost");
    assert!(tool["content"].as_str().unwrap().contains("interrupted"));
}

#[tokio::test]
async fn limits_end_a_turn_with_their_reason() {
    let s = setup().await;
    let spec = AgentSpec {
        max_steps: 2,
        ..coder()
    };
    let runtime = runtime(&s, spec).await;
    let session = new_session(&runtime, &s, "coder").await;
    for i in 0..3 {
        s.upstream.push(step(Answer::tool_calls(vec![call(
            &format!("l{i}"),
            "list",
            json!({}),
        )])));
    }
    let (events, outcome) = turn(&runtime, &session.id, "look around forever").await;
    assert_eq!(outcome.reason, StopReason::MaxSteps);
    assert_eq!(outcome.steps, 2);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Error { kind, .. } if kind == "max_steps"))
    );
    assert_eq!(s.upstream.requests().len(), 2);
}

#[tokio::test]
async fn an_unknown_tool_and_bad_arguments_are_explained_to_the_model() {
    let s = setup().await;
    let runtime = runtime(&s, coder()).await;
    let session = new_session(&runtime, &s, "coder").await;
    s.upstream.push(step(Answer::tool_calls(vec![
        call("u1", "deploy", json!({})),
        MockToolCall {
            id: "u2".into(),
            name: "read_file".into(),
            arguments: "{not json".into(),
        },
    ])));
    s.upstream.push(step(Answer::text("ok")));
    let (events, _) = turn(&runtime, &session.id, "try things").await;
    let errors: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolFinished {
                output,
                is_error: true,
                ..
            } => Some(output.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2, "{events:#?}");
    assert!(
        errors[0].contains("there is no tool `deploy`"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("not valid JSON"), "{}", errors[1]);
}

#[tokio::test]
async fn compaction_summarizes_old_turns_and_keeps_them_in_the_store() {
    let s = setup().await;
    // One small tool, so the long messages decide: ~1,000 tokens each, compaction at 4,000.
    let spec = AgentSpec {
        context_window: 5000,
        tools: vec!["list".into()],
        ..coder()
    };
    let runtime = runtime(&s, spec).await;
    let session = new_session(&runtime, &s, "coder").await;
    let long = "word ".repeat(1000);
    // Two long turns fill the window. The provider counts the second request at 3,900
    // tokens, more than a local count of it (about 3,100) would say…
    for (i, input) in [1_100, 3_900].into_iter().enumerate() {
        let answer = Answer::text(format!("answer {i}: {long}")).with_usage(MockUsage {
            input,
            output: 1_000,
            ..MockUsage::default()
        });
        s.upstream.push(step(answer));
        turn(&runtime, &session.id, &format!("question {i}: {long}")).await;
    }
    // …so the third compacts first (one summary request), then answers.
    s.upstream
        .push(step(Answer::text("SUMMARY: two questions were asked.")));
    s.upstream.push(step(Answer::text("third answer")));
    let (events, outcome) = turn(&runtime, &session.id, &format!("question 2: {long}")).await;
    assert_eq!(outcome.reason, StopReason::Completed, "{events:#?}");
    let compaction = events
        .iter()
        .find_map(|e| match e {
            Event::Compaction {
                replaced,
                tokens_before,
                tokens_after,
                ..
            } => Some((*replaced, *tokens_before, *tokens_after)),
            _ => None,
        })
        .expect("a compaction event");
    assert!(compaction.0 >= 2, "{compaction:?}");
    assert!(compaction.2 < compaction.1, "{compaction:?}");
    // The size that triggered it starts from the provider's count (3,900) and adds the two
    // messages since (about 1,000 each); a local count of everything would be near 5,100.
    assert!((5_800..6_200).contains(&compaction.1), "{compaction:?}");
    let requests = s.upstream.requests();
    let summary_request = requests[requests.len() - 2].json().to_string();
    assert!(summary_request.contains("question 0"), "{summary_request}");
    let last = requests[requests.len() - 1].json();
    let system = last["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("SUMMARY: two questions were asked."),
        "{system}"
    );
    assert!(!last.to_string().contains("question 0"));
    // Nothing was dropped from the store.
    let items = runtime
        .store()
        .items(Scope::All, &session.id, 0, None)
        .await
        .unwrap();
    assert!(items.iter().any(|i| i.kind == "compaction"));
    assert!(items.iter().any(|i| i.data.contains("question 0")));
    // The next turn reads from the compaction on, and sees what reading everything would.
    let loaded = Context::load(runtime.store(), Scope::All, &session.id)
        .await
        .unwrap();
    assert_eq!(loaded, Context::from_items(&items));
    assert_eq!(
        loaded.summary.as_deref(),
        Some("SUMMARY: two questions were asked.")
    );
}

#[tokio::test]
async fn a_configured_command_tool_runs_with_quoted_arguments() {
    let s = setup().await;
    let spec = AgentSpec {
        tools: vec!["count_lines".into()],
        ..coder()
    };
    let mut runtime = runtime(&s, AgentSpec::coder("up/gpt-4o-mini")).await;
    runtime
        .add_tool(Arc::new(freeway_agent::tools::CommandTool::new(
            freeway_config::ToolConfig {
                name: "count_lines".into(),
                description: "Count the lines of a file".into(),
                version: Some("1.0".into()),
                command: "wc -l < {path}".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"]
                }),
                kind: freeway_config::ToolKindConfig::Read,
                timeout_ms: Some(5000),
            },
        )))
        .unwrap();
    runtime
        .add_agent(AgentSpec {
            name: "counter".into(),
            ..spec
        })
        .unwrap();
    let session = new_session(&runtime, &s, "counter").await;
    s.upstream.push(step(Answer::tool_calls(vec![call(
        "n1",
        "count_lines",
        json!({"path": "test_calc.py"}),
    )])));
    s.upstream.push(step(Answer::text("4 lines")));
    let (events, outcome) = turn(&runtime, &session.id, "how long is the test?").await;
    assert_eq!(outcome.reason, StopReason::Completed, "{events:#?}");
    let output = events
        .iter()
        .find_map(|e| match e {
            Event::ToolFinished { name, output, .. } if name == "count_lines" => {
                Some(output.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(output.starts_with("exit code 0"), "{output}");
    assert!(output.contains("\n4\n"), "{output}");
    // The model saw only the agent's one tool.
    let tools = s.upstream.requests()[0].json()["tools"].clone();
    assert_eq!(tools.as_array().unwrap().len(), 1);
    assert_eq!(tools[0]["function"]["name"], "count_lines");
}

/// A tool of a real MCP server (the npm reference server, `tests/mcp`) in the loop: the model
/// sees it beside the agent's own tools, its call runs, its result goes back to the model.
#[tokio::test]
async fn an_mcp_server_tool_runs_in_the_loop() {
    let s = setup().await;
    let mut runtime = runtime(&s, coder()).await;
    let entry = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(entry.exists(), "run `npm ci --prefix tests/mcp`");
    let server = freeway_agent::McpServer::connect(freeway_config::McpServerConfig {
        name: "everything".into(),
        transport: freeway_config::McpTransport::Stdio {
            command: vec!["node".into(), entry.display().to_string(), "stdio".into()],
            env: Vec::new(),
        },
        tools: Some(vec!["echo".into(), "get-sum".into()]),
        kind: freeway_config::ToolKindConfig::Read,
        timeout: std::time::Duration::from_secs(30),
    })
    .await
    .unwrap();
    runtime.add_mcp_server(Ok(server)).unwrap();
    runtime
        .add_agent(AgentSpec {
            name: "mcp".into(),
            tools: vec!["read_file".into()],
            mcp_servers: vec!["everything".into()],
            ..coder()
        })
        .unwrap();
    assert_eq!(runtime.mcp_servers()[0].tools.len(), 2);
    let session = new_session(&runtime, &s, "mcp").await;
    s.upstream.push(step(Answer::tool_calls(vec![call(
        "m1",
        "mcp__everything__echo",
        json!({"message": "from the loop"}),
    )])));
    s.upstream.push(step(Answer::text("It echoed.")));
    let (events, outcome) = turn(&runtime, &session.id, "echo something").await;
    assert_eq!(outcome.reason, StopReason::Completed, "{events:#?}");
    let output = events
        .iter()
        .find_map(|e| match e {
            Event::ToolFinished { name, output, .. } if name == "mcp__everything__echo" => {
                Some(output.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(output, "Echo: from the loop");
    let requests = s.upstream.requests();
    let names: Vec<String> = requests[0].json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "mcp__everything__echo",
            "mcp__everything__get-sum",
            "read_file"
        ]
    );
    let back = requests[1].json()["messages"].to_string();
    assert!(back.contains("Echo: from the loop"), "{back}");
}
