use freeway_types::{FinishReason, Message, ResponseFormat, ToolChoice, ToolDefinition};
use serde_json::{Value, json};

use super::common::*;

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: Some("Get the current weather in a city".into()),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
            "additionalProperties": false
        }),
        strict: None,
    }
}

#[tokio::test]
async fn json_schema_output_validates() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}
        },
        "required": ["name", "age", "languages"],
        "additionalProperties": false
    });
    let mut req = greedy(
        vec![Message::user("Describe a fictional programmer as JSON.")],
        120,
    );
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "person".into(),
        schema,
        strict: Some(true),
    });
    let r = complete(shared(), &req).await;
    assert_eq!(r.finish_reason, FinishReason::Stop, "{:?}", r.text());
    let v: Value = serde_json::from_str(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 3, "{v}");
    assert!(obj["name"].as_str().is_some_and(|s| s.len() <= 30));
    assert!(obj["age"].as_u64().is_some_and(|a| a <= 150));
    assert!(
        obj["languages"]
            .as_array()
            .is_some_and(|a| a.len() <= 3 && a.iter().all(Value::is_string))
    );
}

#[tokio::test]
async fn json_object_output_parses() {
    let mut req = greedy(
        vec![Message::user(
            "Give the capital of France as JSON with a key \"capital\".",
        )],
        60,
    );
    req.response_format = Some(ResponseFormat::JsonObject);
    let r = complete(shared(), &req).await;
    if r.finish_reason == FinishReason::Stop {
        let v: Value =
            serde_json::from_str(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
        assert!(v.is_object());
    } else {
        // Cut short by max_tokens: still a valid prefix of an object.
        assert!(r.text().starts_with('{'), "{:?}", r.text());
    }
}

#[tokio::test]
async fn a_required_tool_choice_returns_a_parsed_call() {
    let mut req = greedy(
        vec![Message::user("What is the weather like in Paris?")],
        60,
    );
    req.tools = vec![weather_tool()];
    req.tool_choice = Some(ToolChoice::Required);
    let r = complete(shared(), &req).await;
    assert_eq!(r.finish_reason, FinishReason::ToolCalls, "{r:?}");
    assert_eq!(r.tool_calls.len(), 1, "{r:?}");
    let call = &r.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    assert!(call.id.starts_with("call_"));
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert!(args["city"].is_string(), "{args}");
    assert!(r.text().is_empty(), "{:?}", r.text());
}

#[tokio::test]
async fn a_named_tool_choice_calls_that_tool() {
    let time = ToolDefinition {
        name: "get_time".into(),
        description: Some("Current time in a time zone".into()),
        parameters: json!({"type": "object", "properties": {"tz": {"type": "string", "maxLength": 40}}, "required": ["tz"]}),
        strict: None,
    };
    let mut req = greedy(vec![Message::user("What time is it in Tokyo?")], 60);
    req.tools = vec![weather_tool(), time];
    req.tool_choice = Some(ToolChoice::Tool {
        name: "get_time".into(),
    });
    let r = complete(shared(), &req).await;
    assert_eq!(r.tool_calls.len(), 1, "{r:?}");
    assert_eq!(r.tool_calls[0].name, "get_time");
    let args: Value = serde_json::from_str(&r.tool_calls[0].arguments).unwrap();
    assert!(args["tz"].is_string());
}

#[tokio::test]
async fn tools_reach_a_template_that_ignores_them_through_the_system_prompt() {
    let mut req = greedy(vec![Message::user("Weather in Paris?")], 8);
    req.tools = vec![weather_tool()];
    let prompt = shared().render_prompt(&req).unwrap();
    assert!(prompt.starts_with("<|im_start|>system\nYou may call one or more functions"));
    assert!(prompt.contains("\"name\":\"get_weather\""));
    assert!(prompt.ends_with("<|im_start|>assistant\n"));
    req.tool_choice = Some(ToolChoice::None);
    let prompt = shared().render_prompt(&req).unwrap();
    assert!(!prompt.contains("get_weather"));
}

#[tokio::test]
async fn auto_tool_choice_can_be_configured_to_call_after_a_user_turn() {
    let p = freeway_local::LocalProvider::load(freeway_local::LocalConfig {
        auto_tool_choice: freeway_local::AutoToolChoice::RequiredAfterUser,
        ..config()
    })
    .unwrap();
    let mut messages = vec![Message::user("What is the weather like in Paris?")];
    let mut req = greedy(messages.clone(), 60);
    req.tools = vec![weather_tool()];
    let r = complete(&p, &req).await;
    assert_eq!(r.finish_reason, FinishReason::ToolCalls, "{r:?}");
    let call = r.tool_calls[0].clone();
    assert_eq!(call.name, "get_weather");
    // With the result in, the model answers in text.
    messages.push(Message::Assistant {
        content: vec![],
        tool_calls: vec![call.clone()],
    });
    messages.push(Message::Tool {
        tool_call_id: call.id,
        content: vec![freeway_types::ContentPart::text(
            "Sunny, 24 degrees Celsius.",
        )],
        is_error: false,
    });
    let mut req = greedy(messages, 40);
    req.tools = vec![weather_tool()];
    let r = complete(&p, &req).await;
    assert!(r.tool_calls.is_empty(), "{r:?}");
    assert!(!r.text().is_empty());
}

#[tokio::test]
async fn a_call_the_model_opens_by_itself_is_constrained_to_be_valid() {
    // tool_choice auto: the model writes freely until it opens <tool_call>, then the rest of the
    // call follows the tools' schemas.
    let mut req = greedy(
        vec![Message::user(
            "Call get_weather for Paris. Reply with <tool_call> only.",
        )],
        60,
    );
    req.tools = vec![weather_tool()];
    let before = shared().stats().lazy_tool_grammars;
    let r = complete(shared(), &req).await;
    assert_eq!(r.finish_reason, FinishReason::ToolCalls, "{r:?}");
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].name, "get_weather");
    let args: Value = serde_json::from_str(&r.tool_calls[0].arguments).unwrap();
    assert!(args["city"].is_string());
    assert!(shared().stats().lazy_tool_grammars > before);
}
