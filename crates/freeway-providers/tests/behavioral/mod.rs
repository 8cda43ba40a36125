//! The behavioral mock (what `freeway-mock-upstream` serves) driven by the real providers: the
//! deterministic model, magic model names and auth checks must read right through each protocol.

use freeway_providers::Timeouts;
use freeway_testkit::behavior::{self, Keys};
use freeway_types::{
    ChatRequest, ContentPart, ErrorKind, FinishReason, Message, Provider, StreamAccumulator,
    ToolDefinition,
};
use serde_json::json;

use crate::support::{self, Harness, KEY, json_of};

async fn serve(keys: Keys) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(behavior::serve(listener, keys));
    addr
}

fn keys() -> Keys {
    Keys {
        openai: Some(KEY.into()),
        anthropic: Some(KEY.into()),
        gemini: Some(KEY.into()),
    }
}

fn base<H: Harness>(addr: std::net::SocketAddr) -> String {
    match H::PROTOCOL {
        freeway_testkit::Protocol::OpenAi => format!("http://{addr}/v1"),
        _ => format!("http://{addr}"),
    }
}

fn provider<H: Harness>(addr: std::net::SocketAddr) -> Box<dyn Provider> {
    H::provider_with(base::<H>(addr), support::test_timeouts())
}

fn request(model: &str, text: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![Message::user(text)],
        ..ChatRequest::default()
    }
}

async fn echo_tool_round_trip_and_errors<H: Harness>() {
    let addr = serve(keys()).await;
    let p = provider::<H>(addr);

    let r = p.complete(&request("m", "hello there")).await.unwrap();
    assert_eq!(r.text(), "You said: hello there");
    assert!(r.usage.output_tokens > 0);
    let s = StreamAccumulator::collect(p.stream(&request("m", "hello there")).await.unwrap(), "m")
        .await
        .unwrap();
    assert_eq!(s.text(), r.text());

    let mut req = request("m", "Weather in Paris?");
    req.tools = vec![ToolDefinition {
        name: "get_weather".into(),
        description: None,
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}),
        strict: None,
    }];
    let call = StreamAccumulator::collect(p.stream(&req).await.unwrap(), "m")
        .await
        .unwrap();
    assert_eq!(call.finish_reason, FinishReason::ToolCalls);
    let call = call.tool_calls[0].clone();
    assert_eq!(
        json_of(&call.arguments),
        json!({"city": "Paris", "days": 1})
    );
    req.messages.push(Message::Assistant {
        content: Vec::new(),
        tool_calls: vec![call.clone()],
    });
    req.messages.push(Message::Tool {
        tool_call_id: call.id.clone(),
        content: vec![ContentPart::text("sunny")],
        is_error: false,
    });
    assert_eq!(
        p.complete(&req).await.unwrap().text(),
        "The tool said: sunny"
    );

    for (model, kind) in [
        ("error-401", ErrorKind::Auth),
        ("error-429", ErrorKind::RateLimited),
        ("error-500", ErrorKind::Upstream),
        ("error-529", ErrorKind::Overloaded),
        ("error-400-context", ErrorKind::ContextWindowExceeded),
        ("error-404", ErrorKind::ModelNotFound),
    ] {
        let e = p.complete(&request(model, "hi")).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{model}: {e}");
    }

    let wrong = H::provider_with(
        base::<H>(
            serve(Keys {
                openai: Some("other".into()),
                anthropic: Some("other".into()),
                gemini: Some("other".into()),
            })
            .await,
        ),
        support::test_timeouts(),
    );
    let e = wrong.complete(&request("m", "hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains(KEY));

    assert!(!p.list_models().await.unwrap().is_empty());
}

async fn slow_and_hanging_models<H: Harness>() {
    let addr = serve(keys()).await;
    let timeouts = Timeouts {
        first_byte: std::time::Duration::from_millis(200),
        read: std::time::Duration::from_millis(300),
        ..support::test_timeouts()
    };
    let p = H::provider_with(base::<H>(addr), timeouts);
    let e = p.complete(&request("slow-3000", "hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let (_, error) = support::drain(
        p.stream(&request("hang-midstream", "one two three four"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error.expect("hang").kind(), ErrorKind::Timeout);
}

macro_rules! behavioral {
    ($($name:ident => $h:ty),*) => {$(
        mod $name {
            #[tokio::test]
            async fn echo_tool_round_trip_and_errors() {
                super::echo_tool_round_trip_and_errors::<$h>().await;
            }

            #[tokio::test]
            async fn slow_and_hanging_models() {
                super::slow_and_hanging_models::<$h>().await;
            }
        }
    )*};
}

behavioral!(openai => crate::support::OpenAi, anthropic => crate::support::Anthropic, gemini => crate::support::Gemini);
