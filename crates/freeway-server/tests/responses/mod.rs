//! The OpenAI Responses API over a real socket, through each provider protocol (a scripted
//! mock upstream of that protocol behind the gateway), with a SQLite store for `store` and
//! `previous_response_id`.

use std::sync::Arc;

use freeway_gateway::Gateway;
use freeway_gateway::limits::Limiter;
use freeway_gateway::pricing::PriceTable;
use freeway_providers::anthropic::AnthropicProvider;
use freeway_providers::gemini::GeminiProvider;
use freeway_providers::openai::{OpenAiProvider, Quirks};
use freeway_providers::{Auth, HttpSettings, Secret, Timeouts};
use freeway_server::tenancy::Tenancy;
use freeway_server::{AppState, router};
use freeway_store::{NewKey, NewTeam, Role, Scope, Store};
use freeway_testkit::{
    Answer, Finish, MockToolCall, MockUpstream, Protocol, Reply, SseScript, anthropic, gemini,
    openai,
};
use freeway_types::Provider;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const MASTER: &str = "fw-master-for-tests";
const MODEL: &str = "up/m";

struct App {
    base: String,
    client: reqwest::Client,
    upstream: MockUpstream,
    store: Option<Store>,
    _dir: tempfile::TempDir,
}

fn provider(upstream: &MockUpstream) -> Arc<dyn Provider> {
    let settings = HttpSettings {
        provider: "up".into(),
        base_url: upstream.base_url(),
        auth: Auth::None,
        headers: Vec::new(),
        timeouts: Timeouts::default(),
    };
    match upstream.protocol() {
        Protocol::OpenAi => Arc::new(OpenAiProvider::new(&settings, Quirks::default()).unwrap()),
        Protocol::Anthropic => Arc::new(AnthropicProvider::new(&settings, 1024).unwrap()),
        Protocol::Gemini => Arc::new(GeminiProvider::new(&settings).unwrap()),
    }
}

/// The app in front of one protocol's mock; `with_store` adds a SQLite store (and tenancy).
async fn app(protocol: Protocol, with_store: bool) -> App {
    let upstream = MockUpstream::start(protocol).await.unwrap();
    let gateway = Gateway::builder()
        .provider(provider(&upstream), vec!["m".into()], false)
        .cache(freeway_config::CacheSettings {
            url: "off".into(),
            ..Default::default()
        })
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut state = AppState::new(Arc::new(gateway), Some(Secret::new(MASTER.to_owned())));
    let mut store = None;
    if with_store {
        let s = Store::open(&format!("sqlite://{}/freeway.db", dir.path().display()))
            .await
            .unwrap();
        let tenancy = Tenancy::new(
            s.clone(),
            Limiter::memory(Some(s.clone())),
            PriceTable::builtin().unwrap(),
        );
        state.tenancy = Some(Arc::new(tenancy));
        store = Some(s);
    }
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
        store,
        _dir: dir,
    }
}

struct Got {
    status: u16,
    content_type: String,
    text: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The events of an SSE body; each `event:` line must name its data's `type`.
    fn events(&self) -> Vec<Value> {
        self.text
            .split("\n\n")
            .filter(|f| !f.trim().is_empty())
            .map(|frame| {
                let mut event = None;
                let mut data = None;
                for line in frame.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = Some(e);
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(d).unwrap());
                    }
                }
                let data = data.unwrap_or_else(|| panic!("a frame without data: {frame}"));
                assert_eq!(Some(data["type"].as_str().unwrap()), event, "{frame}");
                data
            })
            .collect()
    }
}

impl App {
    async fn call(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Got {
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
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            text: response.text().await.unwrap(),
        }
    }

    async fn create(&self, body: Value) -> Got {
        self.call("POST", "/v1/responses", MASTER, Some(&body))
            .await
    }

    /// The request body the upstream received last.
    fn upstream_body(&self) -> Value {
        self.upstream.last_request().unwrap().json()
    }

    fn reply(&self, answer: &Answer) {
        let reply = match self.upstream.protocol() {
            Protocol::OpenAi => openai::reply("m", answer),
            Protocol::Anthropic => anthropic::reply("m", answer),
            Protocol::Gemini => gemini::reply("m", answer),
        };
        self.upstream.push(reply);
    }

    fn stream_script(&self, answer: &Answer) -> SseScript {
        match self.upstream.protocol() {
            Protocol::OpenAi => openai::stream("m", answer, openai::StreamShape::default()),
            Protocol::Anthropic => anthropic::stream("m", answer, 3),
            Protocol::Gemini => gemini::stream("m", answer),
        }
    }

    fn stream(&self, answer: &Answer) {
        self.upstream.push(Reply::sse(self.stream_script(answer)));
    }
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    })
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// Every event is numbered 0, 1, 2… in order.
#[track_caller]
fn assert_sequenced(events: &[Value]) {
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn text_answers_through_every_protocol() {
    for protocol in Protocol::ALL {
        let app = app(protocol, true).await;
        app.reply(&Answer::text("Hello from upstream"));
        let got = app
            .create(json!({
                "model": MODEL,
                "instructions": "Answer in one line.",
                "input": "hi there",
                "temperature": 0.5,
                "max_output_tokens": 64,
                "metadata": {"ticket": "42"},
            }))
            .await;
        assert_eq!(got.status, 200, "{protocol:?}: {}", got.text);
        let r = got.json();
        assert!(r["id"].as_str().unwrap().starts_with("resp_"), "{r}");
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], MODEL);
        assert!(r["created_at"].as_u64().unwrap() > 1_600_000_000);
        let output = r["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{protocol:?}: {r}");
        let message = &output[0];
        assert_eq!(message["type"], "message");
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["status"], "completed");
        assert!(message["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(
            message["content"],
            json!([{"type": "output_text", "text": "Hello from upstream", "annotations": [], "logprobs": []}])
        );
        let usage = &r["usage"];
        assert_eq!(usage["input_tokens"], 10, "{protocol:?}: {usage}");
        assert_eq!(usage["output_tokens"], 3);
        assert_eq!(usage["total_tokens"], 13);
        assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
        assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0);
        // The request's parameters are repeated back.
        assert_eq!(r["instructions"], "Answer in one line.");
        assert_eq!(r["temperature"], 0.5);
        assert_eq!(r["max_output_tokens"], 64);
        assert_eq!(r["metadata"], json!({"ticket": "42"}));
        assert_eq!(r["store"], true);
        assert_eq!(r["tool_choice"], "auto");
        // The upstream got the instructions as its system prompt and the input as the user turn.
        let sent = app.upstream_body().to_string();
        assert!(sent.contains("Answer in one line."), "{protocol:?}: {sent}");
        assert!(sent.contains("hi there"), "{protocol:?}: {sent}");
    }
}

#[tokio::test]
async fn a_function_call_round_trip_through_every_protocol() {
    for protocol in Protocol::ALL {
        let app = app(protocol, false).await;
        app.reply(&Answer::tool_calls(vec![MockToolCall::new(
            "call_w1",
            "get_weather",
            &json!({"city": "Paris"}),
        )]));
        let first = app
            .create(json!({
                "model": MODEL,
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}],
                "tools": [weather_tool()],
                "tool_choice": "required",
            }))
            .await;
        assert_eq!(first.status, 200, "{protocol:?}: {}", first.text);
        let r = first.json();
        assert_eq!(r["status"], "completed");
        let call = &r["output"][0];
        assert_eq!(call["type"], "function_call", "{protocol:?}: {r}");
        assert_eq!(call["status"], "completed");
        assert_eq!(call["name"], "get_weather");
        assert!(call["id"].as_str().unwrap().starts_with("fc_"));
        let call_id = call["call_id"].as_str().unwrap().to_owned();
        assert!(!call_id.is_empty());
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
        assert_eq!(r["tools"][0]["name"], "get_weather");
        assert_eq!(r["tool_choice"], "required");
        let offered = app.upstream_body().to_string();
        assert!(
            offered.contains("get_weather") && offered.contains("city"),
            "{offered}"
        );

        // The client runs the tool and sends the call and its output back.
        app.reply(&Answer::text("It is 18C and sunny"));
        let second = app
            .create(json!({
                "model": MODEL,
                "store": false,
                "input": [
                    {"role": "user", "content": "Weather in Paris?"},
                    call,
                    {"type": "function_call_output", "call_id": call_id, "output": "18C and sunny"},
                ],
                "tools": [weather_tool()],
            }))
            .await;
        assert_eq!(second.status, 200, "{protocol:?}: {}", second.text);
        let r = second.json();
        assert_eq!(r["output"][0]["content"][0]["text"], "It is 18C and sunny");
        // Without a store nothing is kept, and the response says so.
        assert_eq!(r["store"], false);
        let sent = app.upstream_body();
        let text = sent.to_string();
        assert!(text.contains("18C and sunny"), "{protocol:?}: {text}");
        match protocol {
            Protocol::OpenAi => {
                let messages = sent["messages"].as_array().unwrap();
                assert_eq!(messages[1]["tool_calls"][0]["id"], call_id.as_str());
                assert_eq!(messages[2]["role"], "tool");
                assert_eq!(messages[2]["tool_call_id"], call_id.as_str());
            }
            Protocol::Anthropic => {
                let messages = sent["messages"].as_array().unwrap();
                assert_eq!(messages[1]["content"][0]["type"], "tool_use");
                assert_eq!(messages[1]["content"][0]["id"], call_id.as_str());
                assert_eq!(messages[2]["content"][0]["type"], "tool_result");
                assert_eq!(messages[2]["content"][0]["tool_use_id"], call_id.as_str());
            }
            Protocol::Gemini => {
                let contents = sent["contents"].as_array().unwrap();
                assert_eq!(
                    contents[1]["parts"][0]["functionCall"]["name"],
                    "get_weather"
                );
                assert_eq!(
                    contents[2]["parts"][0]["functionResponse"]["name"],
                    "get_weather"
                );
            }
        }
    }
}

#[tokio::test]
async fn streamed_text_has_the_real_event_sequence_through_every_protocol() {
    for protocol in Protocol::ALL {
        let app = app(protocol, true).await;
        app.stream(&Answer::text("streamed in four words"));
        let got = app
            .create(json!({"model": MODEL, "input": "go", "stream": true}))
            .await;
        assert_eq!(got.status, 200, "{protocol:?}: {}", got.text);
        assert!(got.content_type.starts_with("text/event-stream"));
        let events = got.events();
        assert_sequenced(&events);
        let kinds = types(&events);
        let deltas = kinds
            .iter()
            .filter(|k| **k == "response.output_text.delta")
            .count();
        assert!(deltas > 1, "{protocol:?}: {kinds:?}");
        let mut expected = vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ];
        expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
        expected.extend([
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]);
        assert_eq!(kinds, expected, "{protocol:?}");

        let created = &events[0]["response"];
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["output"], json!([]));
        let id = created["id"].as_str().unwrap();
        let item_id = events[2]["item"]["id"].as_str().unwrap();
        assert_eq!(events[2]["item"]["status"], "in_progress");
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| {
                assert_eq!(e["item_id"], item_id);
                assert_eq!(
                    (e["output_index"].as_u64(), e["content_index"].as_u64()),
                    (Some(0), Some(0))
                );
                e["delta"].as_str().unwrap()
            })
            .collect();
        assert_eq!(text, "streamed in four words");
        assert_eq!(events[deltas + 4]["text"], "streamed in four words");
        assert_eq!(events[deltas + 5]["part"]["text"], "streamed in four words");
        assert_eq!(events[deltas + 6]["item"]["status"], "completed");
        let done = &events.last().unwrap()["response"];
        assert_eq!(done["id"], id);
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["id"], item_id);
        assert_eq!(
            done["output"][0]["content"][0]["text"],
            "streamed in four words"
        );
        assert_eq!(done["usage"]["output_tokens"], 4, "{protocol:?}: {done}");
        assert_eq!(done["usage"]["total_tokens"], 14);

        // Stored before the last event went out: reading it back gives the same object.
        let back = app
            .call("GET", &format!("/v1/responses/{id}"), MASTER, None)
            .await;
        assert_eq!(back.status, 200, "{}", back.text);
        assert_eq!(&back.json(), done);
    }
}

#[tokio::test]
async fn streamed_function_calls_have_their_argument_events_through_every_protocol() {
    for protocol in Protocol::ALL {
        let app = app(protocol, false).await;
        app.stream(&Answer::tool_calls(vec![MockToolCall::new(
            "call_s1",
            "get_weather",
            &json!({"city": "Paris"}),
        )]));
        let got = app
            .create(json!({"model": MODEL, "input": "weather?", "tools": [weather_tool()], "stream": true}))
            .await;
        assert_eq!(got.status, 200, "{protocol:?}: {}", got.text);
        let events = got.events();
        assert_sequenced(&events);
        let kinds: Vec<&str> = types(&events)
            .into_iter()
            .filter(|k| *k != "response.function_call_arguments.delta")
            .collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ],
            "{protocol:?}"
        );
        let added = &events[2]["item"];
        assert_eq!(added["type"], "function_call");
        assert_eq!(added["name"], "get_weather");
        assert_eq!(added["arguments"], "");
        let args: String = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .map(|e| {
                assert_eq!(e["item_id"], added["id"]);
                e["delta"].as_str().unwrap()
            })
            .collect();
        let args: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
        let done = events
            .iter()
            .find(|e| e["type"] == "response.function_call_arguments.done")
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(done["arguments"].as_str().unwrap()).unwrap(),
            json!({"city": "Paris"})
        );
        let last = &events.last().unwrap()["response"];
        assert_eq!(last["output"][0]["type"], "function_call");
        assert_eq!(last["output"][0]["call_id"], added["call_id"]);
        assert_eq!(last["output"][0]["status"], "completed");
    }
}

#[tokio::test]
async fn json_schema_output_reaches_the_providers_that_have_it() {
    let format = json!({
        "type": "json_schema",
        "name": "city",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "strict": true,
    });
    for protocol in Protocol::ALL {
        let app = app(protocol, false).await;
        app.reply(&Answer::text(r#"{"name":"Paris"}"#));
        let got = app
            .create(json!({"model": MODEL, "input": "a city", "text": {"format": format}}))
            .await;
        let sent = app.upstream.last_request().map(|r| r.json());
        match protocol {
            Protocol::OpenAi => {
                assert_eq!(got.status, 200, "{}", got.text);
                let sent = sent.unwrap();
                assert_eq!(sent["response_format"]["type"], "json_schema");
                assert_eq!(sent["response_format"]["json_schema"]["name"], "city");
                assert_eq!(
                    sent["response_format"]["json_schema"]["schema"]["required"],
                    json!(["name"])
                );
            }
            Protocol::Gemini => {
                assert_eq!(got.status, 200, "{}", got.text);
                let config = &sent.unwrap()["generationConfig"];
                assert_eq!(config["responseMimeType"], "application/json");
                assert!(config.to_string().contains("\"name\""), "{config}");
            }
            Protocol::Anthropic => {
                // The anthropic protocol has no structured output: a clear 400, not prose.
                assert_eq!(got.status, 400, "{}", got.text);
                assert!(
                    got.json()["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("anthropic")
                );
                assert!(sent.is_none(), "nothing should reach the upstream");
                continue;
            }
        }
        let r = got.json();
        assert_eq!(r["text"]["format"]["type"], "json_schema");
        assert_eq!(r["text"]["format"]["name"], "city");
        assert_eq!(r["output"][0]["content"][0]["text"], r#"{"name":"Paris"}"#);
    }
}

#[tokio::test]
async fn a_cut_off_answer_is_incomplete_whole_and_streamed() {
    let app = app(Protocol::Anthropic, false).await;
    app.reply(&Answer::text("this got cut").with_finish(Finish::Length));
    let r = app
        .create(json!({"model": MODEL, "input": "long please", "max_output_tokens": 3}))
        .await
        .json();
    assert_eq!(r["status"], "incomplete", "{r}");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(app.upstream_body()["max_tokens"], 3);

    app.stream(&Answer::text("this got cut").with_finish(Finish::Length));
    let events = app
        .create(json!({"model": MODEL, "input": "long please", "stream": true}))
        .await
        .events();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[tokio::test]
async fn an_upstream_failure_mid_stream_ends_in_response_failed() {
    let app = app(Protocol::OpenAi, true).await;
    let script = app
        .stream_script(&Answer::text("one two three four five six"))
        .truncate_frames(4)
        .delay(std::time::Duration::from_millis(50))
        .abort();
    app.upstream.push(Reply::sse(script));
    let got = app
        .create(json!({"model": MODEL, "input": "go", "stream": true}))
        .await;
    assert_eq!(got.status, 200);
    let events = got.events();
    assert_sequenced(&events);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{:?}", types(&events));
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    assert!(
        !last["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // What arrived before the failure is there, marked incomplete; nothing was stored.
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    let id = last["response"]["id"].as_str().unwrap();
    let back = app
        .call("GET", &format!("/v1/responses/{id}"), MASTER, None)
        .await;
    assert_eq!(back.status, 404);
}

#[tokio::test]
async fn unsupported_requests_are_refused_in_the_openai_error_shape() {
    let app = app(Protocol::OpenAi, true).await;
    let cases = [
        (
            json!({"model": MODEL, "input": "x", "tools": [{"type": "web_search_preview"}]}),
            "tools[0].type",
            "web_search_preview",
        ),
        (
            json!({"model": MODEL, "input": "x", "tools": [weather_tool(), {"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
            "tools[1].type",
            "file_search",
        ),
        (
            json!({"model": MODEL, "input": "x", "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
            "tools[0].type",
            "code_interpreter",
        ),
        (
            json!({"model": MODEL, "input": "x", "tools": [{"type": "mcp", "server_label": "s"}]}),
            "tools[0].type",
            "mcp",
        ),
        (
            json!({"model": MODEL, "input": "x", "background": true}),
            "background",
            "background",
        ),
        (json!({"model": MODEL, "input": 42}), "input", "string"),
        (
            json!({"model": MODEL, "input": [{"type": "message", "role": "wizard", "content": "x"}]}),
            "input[0].role",
            "wizard",
        ),
        (
            json!({"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]}),
            "input[0].call_id",
            "required",
        ),
        (
            json!({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
            "file",
        ),
        (
            json!({"model": MODEL, "input": "x", "tool_choice": {"type": "web_search_preview"}}),
            "tool_choice.type",
            "web_search_preview",
        ),
        (
            json!({"model": MODEL, "input": "x", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
            "yaml",
        ),
        (json!({"model": MODEL}), "input", "required"),
        (json!({"input": "x"}), "", "model"),
    ];
    for (body, param, word) in cases {
        let got = app.create(body.clone()).await;
        assert_eq!(got.status, 400, "{body}: {}", got.text);
        let e = &got.json()["error"];
        assert_eq!(e["type"], "invalid_request_error", "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(word), "{body}: {e}");
        if !param.is_empty() {
            assert_eq!(e["param"], param, "{body}: {e}");
        }
    }
    let hosted = app
        .create(json!({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}))
        .await
        .json();
    assert!(
        hosted["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only function tools"),
        "{hosted}"
    );
    let broken = app
        .client
        .post(format!("{}/v1/responses", app.base))
        .bearer_auth(MASTER)
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let unauthorized = app
        .call(
            "POST",
            "/v1/responses",
            "wrong",
            Some(&json!({"model": MODEL, "input": "x"})),
        )
        .await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(
        app.upstream.calls(),
        0,
        "a refused request reached the upstream"
    );
}

#[tokio::test]
async fn previous_response_id_continues_the_stored_conversation() {
    for protocol in Protocol::ALL {
        let app = app(protocol, true).await;
        app.reply(&Answer::text("Nice to meet you Ada"));
        let first = app
            .create(json!({"model": MODEL, "instructions": "Be warm.", "input": "My name is Ada"}))
            .await
            .json();
        let first_id = first["id"].as_str().unwrap();

        app.reply(&Answer::text("Your name is Ada"));
        let second = app
            .create(json!({
                "model": MODEL,
                "previous_response_id": first_id,
                "instructions": "Be brief.",
                "input": [{"role": "user", "content": "What is my name?"}],
            }))
            .await;
        assert_eq!(second.status, 200, "{protocol:?}: {}", second.text);
        let second = second.json();
        assert_eq!(second["previous_response_id"], first_id);
        let sent = app.upstream_body().to_string();
        for earlier in [
            "My name is Ada",
            "Nice to meet you Ada",
            "What is my name?",
            "Be brief.",
        ] {
            assert!(
                sent.contains(earlier),
                "{protocol:?}: `{earlier}` missing from {sent}"
            );
        }
        // Instructions are not carried over from the earlier response.
        assert!(!sent.contains("Be warm."), "{protocol:?}: {sent}");

        // A chain of three: the third sees both earlier exchanges.
        app.reply(&Answer::text("Goodbye Ada"));
        let third = app
            .create(json!({"model": MODEL, "previous_response_id": second["id"], "input": "Bye"}))
            .await;
        assert_eq!(third.status, 200, "{}", third.text);
        let sent = app.upstream_body().to_string();
        for earlier in [
            "My name is Ada",
            "Nice to meet you Ada",
            "Your name is Ada",
            "Bye",
        ] {
            assert!(
                sent.contains(earlier),
                "{protocol:?}: `{earlier}` missing from {sent}"
            );
        }

        let back = app
            .call("GET", &format!("/v1/responses/{first_id}"), MASTER, None)
            .await;
        assert_eq!(back.status, 200);
        assert_eq!(back.json(), first);
    }
}

#[tokio::test]
async fn a_function_call_output_continues_from_previous_response_id() {
    let app = app(Protocol::Anthropic, true).await;
    app.reply(&Answer::tool_calls(vec![MockToolCall::new(
        "toolu_1",
        "get_weather",
        &json!({"city": "Paris"}),
    )]));
    let first = app
        .create(json!({"model": MODEL, "input": "Weather?", "tools": [weather_tool()]}))
        .await
        .json();
    let call_id = first["output"][0]["call_id"].as_str().unwrap();
    app.reply(&Answer::text("Sunny"));
    let got = app
        .create(json!({
            "model": MODEL,
            "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": call_id, "output": "18C"}],
            "tools": [weather_tool()],
        }))
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let sent = app.upstream_body();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{sent}");
    assert_eq!(messages[1]["content"][0]["id"], "toolu_1");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_1");
}

#[tokio::test]
async fn stored_responses_belong_to_their_team() {
    let app = app(Protocol::OpenAi, true).await;
    let store = app.store.clone().unwrap();
    let mut keys = Vec::new();
    for name in ["alpha", "beta"] {
        let team = store
            .create_team(NewTeam {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let (_, secret) = store
            .create_key(
                Scope::All,
                NewKey {
                    team: team.id.clone(),
                    role: Role::Developer,
                    name: None,
                    models: None,
                    tools: None,
                    limits: Default::default(),
                    expires_at: None,
                },
            )
            .await
            .unwrap();
        keys.push(secret);
    }
    let (alpha, beta) = (&keys[0], &keys[1]);
    app.reply(&Answer::text("secret of alpha"));
    let created = app
        .call(
            "POST",
            "/v1/responses",
            alpha,
            Some(&json!({"model": MODEL, "input": "hi"})),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/responses/{id}");

    assert_eq!(app.call("GET", &path, alpha, None).await.status, 200);
    assert_eq!(app.call("GET", &path, MASTER, None).await.status, 200);
    let other = app.call("GET", &path, beta, None).await;
    assert_eq!(other.status, 404, "{}", other.text);
    assert_eq!(other.json()["error"]["type"], "invalid_request_error");
    // Another team can neither continue it nor delete it.
    let calls = app.upstream.calls();
    let cont = app
        .call(
            "POST",
            "/v1/responses",
            beta,
            Some(&json!({"model": MODEL, "input": "tell me", "previous_response_id": id})),
        )
        .await;
    assert_eq!(cont.status, 400, "{}", cont.text);
    assert_eq!(cont.json()["error"]["param"], "previous_response_id");
    assert_eq!(cont.json()["error"]["code"], "previous_response_not_found");
    assert_eq!(app.upstream.calls(), calls);
    assert_eq!(app.call("DELETE", &path, beta, None).await.status, 404);

    let deleted = app.call("DELETE", &path, alpha, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.json(),
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    assert_eq!(app.call("GET", &path, MASTER, None).await.status, 404);
}

#[tokio::test]
async fn store_false_keeps_nothing() {
    let app = app(Protocol::Gemini, true).await;
    app.reply(&Answer::text("ephemeral"));
    let r = app
        .create(json!({"model": MODEL, "input": "hi", "store": false}))
        .await
        .json();
    assert_eq!(r["store"], false);
    let id = r["id"].as_str().unwrap();
    let back = app
        .call("GET", &format!("/v1/responses/{id}"), MASTER, None)
        .await;
    assert_eq!(back.status, 404);
    let cont = app
        .create(json!({"model": MODEL, "input": "again", "previous_response_id": id}))
        .await;
    assert_eq!(cont.status, 400);
    assert!(
        cont.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
}

#[tokio::test]
async fn without_a_store_previous_response_id_is_a_clear_400() {
    let app = app(Protocol::OpenAi, false).await;
    let got = app
        .create(json!({"model": MODEL, "input": "hi", "previous_response_id": "resp_abc"}))
        .await;
    assert_eq!(got.status, 400, "{}", got.text);
    let e = &got.json()["error"];
    assert_eq!(e["param"], "previous_response_id");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not stored on this server"),
        "{e}"
    );
    let back = app
        .call("GET", "/v1/responses/resp_abc", MASTER, None)
        .await;
    assert_eq!(back.status, 404);
    assert!(
        back.text.contains("not stored on this server"),
        "{}",
        back.text
    );
    assert_eq!(app.upstream.calls(), 0);
}
