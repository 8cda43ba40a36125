//! Chat Completions request body, borrowed from a [`ChatRequest`] so nothing is copied.

use freeway_types::{
    ChatRequest, ContentPart, EmbeddingInput, EmbeddingRequest, ImageSource, Message,
    ResponseFormat, ToolChoice, ToolDefinition,
};
use serde::Serialize;
use serde_json::Value;

use super::Quirks;

#[derive(Serialize)]
pub(super) struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    random_seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: WireContent<'a>,
    },
    Assistant {
        // `null` rather than absent when the turn is only tool calls: some servers require the key.
        content: Option<WireContent<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: WireContent<'a>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl<'a> },
}

#[derive(Serialize)]
struct WireImageUrl<'a> {
    url: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

/// Content as a plain string when it is a single text part (what every server accepts), as parts
/// otherwise.
fn content(parts: &[ContentPart]) -> WireContent<'_> {
    match parts {
        [] => WireContent::Text(""),
        [ContentPart::Text { text }] => WireContent::Text(text),
        parts => WireContent::Parts(
            parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => WirePart::Text { text },
                    ContentPart::Image { source, detail } => WirePart::ImageUrl {
                        image_url: WireImageUrl {
                            url: match source {
                                ImageSource::Url { url } => url.as_str().into(),
                                ImageSource::Base64 { .. } => source.to_url().into(),
                            },
                            detail: detail.as_deref(),
                        },
                    },
                })
                .collect(),
        ),
    }
}

fn message(m: &Message) -> WireMessage<'_> {
    match m {
        Message::System { content } => WireMessage::System { content },
        Message::User { content: parts } => WireMessage::User {
            content: content(parts),
        },
        Message::Assistant {
            content: parts,
            tool_calls,
        } => WireMessage::Assistant {
            content: (!parts.is_empty()).then(|| content(parts)),
            tool_calls: tool_calls
                .iter()
                .map(|c| WireToolCall {
                    id: &c.id,
                    r#type: "function",
                    function: WireFunctionCall {
                        name: &c.name,
                        arguments: &c.arguments,
                    },
                })
                .collect(),
        },
        // OpenAI has no error flag on tool results; the text itself says what failed.
        Message::Tool {
            tool_call_id,
            content: parts,
            is_error: _,
        } => WireMessage::Tool {
            tool_call_id,
            content: content(parts),
        },
    }
}

fn tool(t: &ToolDefinition) -> WireTool<'_> {
    WireTool {
        r#type: "function",
        function: WireFunction {
            name: &t.name,
            description: t.description.as_deref(),
            parameters: &t.parameters,
            strict: t.strict,
        },
    }
}

pub(super) fn tool_choice(choice: &ToolChoice, quirks: &Quirks) -> Value {
    match choice {
        ToolChoice::Auto => Value::from("auto"),
        ToolChoice::None => Value::from("none"),
        ToolChoice::Required => Value::from(quirks.required_tool_choice),
        ToolChoice::Tool { name } => serde_json::json!({
            "type": "function",
            "function": { "name": name },
        }),
    }
}

fn response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => serde_json::json!({ "type": "text" }),
        ResponseFormat::JsonObject => serde_json::json!({ "type": "json_object" }),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut inner = serde_json::json!({ "name": name, "schema": schema });
            if let Some(strict) = strict {
                inner["strict"] = Value::from(*strict);
            }
            serde_json::json!({ "type": "json_schema", "json_schema": inner })
        }
    }
}

pub(super) fn chat_body(
    request: &ChatRequest,
    stream: bool,
    quirks: &Quirks,
) -> serde_json::Result<Vec<u8>> {
    let (max_tokens, max_completion_tokens) = if quirks.max_completion_tokens {
        (None, request.max_tokens)
    } else {
        (request.max_tokens, None)
    };
    let (seed, random_seed) = if quirks.random_seed {
        (None, request.seed)
    } else {
        (request.seed, None)
    };
    let wire = WireRequest {
        model: &request.model,
        messages: request.messages.iter().map(message).collect(),
        tools: request.tools.iter().map(tool).collect(),
        tool_choice: request.tool_choice.as_ref().map(|c| tool_choice(c, quirks)),
        parallel_tool_calls: request.parallel_tool_calls,
        response_format: request.response_format.as_ref().map(response_format),
        max_tokens,
        max_completion_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: if quirks.top_k { request.top_k } else { None },
        frequency_penalty: request.frequency_penalty,
        presence_penalty: request.presence_penalty,
        stop: &request.stop,
        seed,
        random_seed,
        user: request.user.as_deref(),
        stream,
        stream_options: (stream && quirks.stream_options).then_some(StreamOptions {
            include_usage: true,
        }),
    };
    serde_json::to_vec(&wire)
}

#[derive(Serialize)]
struct WireEmbeddingRequest<'a> {
    model: &'a str,
    input: &'a EmbeddingInputWire<'a>,
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingInputWire<'a> {
    Text(&'a [String]),
    Tokens(&'a [Vec<u32>]),
}

pub(super) fn embedding_body(request: &EmbeddingRequest) -> serde_json::Result<Vec<u8>> {
    let input = match &request.input {
        EmbeddingInput::Text(t) => EmbeddingInputWire::Text(t),
        EmbeddingInput::Tokens(t) => EmbeddingInputWire::Tokens(t),
    };
    serde_json::to_vec(&WireEmbeddingRequest {
        model: &request.model,
        input: &input,
        encoding_format: "float",
        dimensions: request.dimensions,
        user: request.user.as_deref(),
    })
}
