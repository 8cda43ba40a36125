//! OpenAI Responses requests into [`ChatRequest`]s, with errors that name the field.
//!
//! What the gateway cannot do is refused, not dropped: hosted tools (web search, file search,
//! code interpreter…), background mode, server-side conversations and prompt templates are a
//! 400 saying so. Settings that only tune OpenAI's own service (`service_tier`, prompt caching,
//! `include`, `truncation`) are accepted and have no effect.

use freeway_types::{ChatRequest, ContentPart, Message, ResponseFormat, ToolCall, ToolChoice};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::response::ToolNames;
use crate::error::ApiError;
use crate::openai::{function_tool, image, json_schema, tool_choice_mode};

#[derive(Deserialize)]
pub struct CreateRequest {
    pub model: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    safety_identifier: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(default)]
    conversation: Option<Value>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    top_logprobs: Option<u32>,
    #[serde(default)]
    moderation: Option<Value>,
    #[serde(default)]
    context_management: Option<Value>,
    #[serde(default)]
    truncation: Option<String>,
    #[serde(default)]
    max_tool_calls: Option<u32>,
}

/// A validated request: this turn's input and everything needed to build the chat request
/// once the earlier turns (`previous_response_id`) are known.
pub struct Prepared {
    pub model: String,
    pub stream: bool,
    /// `store`, default true as in OpenAI's API.
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// This request's input turns (not the instructions, which are not carried over).
    pub input: Vec<Message>,
    /// The request parameters a response object repeats back.
    pub echo: Map<String, Value>,
    /// The flattened names of namespaced tools, to name their calls as the client declared.
    pub tool_names: ToolNames,
    instructions: Option<String>,
    template: ChatRequest,
}

impl Prepared {
    /// The chat request: the instructions, then `earlier` turns, then this input.
    pub fn chat(&self, earlier: Vec<Message>) -> ChatRequest {
        let mut messages = Vec::with_capacity(earlier.len() + self.input.len() + 1);
        if let Some(instructions) = self.instructions.as_ref().filter(|i| !i.is_empty()) {
            messages.push(Message::system(instructions.clone()));
        }
        messages.extend(earlier);
        messages.extend(self.input.iter().cloned());
        ChatRequest {
            messages,
            ..self.template.clone()
        }
    }
}

impl CreateRequest {
    /// Whether the response is to be stored (`store`, default true).
    pub fn stores(&self) -> bool {
        self.store != Some(false)
    }

    /// `input` as the client sent it.
    pub fn input(&self) -> Option<&Value> {
        self.input.as_ref()
    }

    pub fn prepare(self) -> Result<Prepared, ApiError> {
        self.refuse_unsupported()?;
        let input = match self.input {
            None | Some(Value::Null) if self.previous_response_id.is_some() => Vec::new(),
            None | Some(Value::Null) => return Err(ApiError::invalid("input", "Field required")),
            Some(v) => input(v)?,
        };
        if input.is_empty() && self.previous_response_id.is_none() {
            return Err(ApiError::invalid("input", "must contain at least one item"));
        }
        let (tools, tools_echo, tool_names) = tools(self.tools.unwrap_or_default())?;
        let tool_choice = match &self.tool_choice {
            None | Some(Value::Null) => None,
            Some(v) => Some(tool_choice(v, &tools)?),
        };
        let response_format = match self.text.as_ref().and_then(|t| t.get("format")) {
            None | Some(Value::Null) => None,
            Some(format) => Some(text_format(format)?),
        };
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ApiError::invalid("temperature", "must be between 0 and 2"));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err(ApiError::invalid("top_p", "must be between 0 and 1"));
        }
        if self.max_output_tokens == Some(0) {
            return Err(ApiError::invalid("max_output_tokens", "must be at least 1"));
        }
        if let Some(r) = &self.reasoning
            && !r.is_object()
            && !r.is_null()
        {
            return Err(ApiError::invalid("reasoning", "must be an object"));
        }
        let store = self.store != Some(false);

        let mut echo = Map::new();
        echo.insert("instructions".into(), self.instructions.clone().into());
        echo.insert("max_output_tokens".into(), self.max_output_tokens.into());
        echo.insert("max_tool_calls".into(), self.max_tool_calls.into());
        echo.insert(
            "metadata".into(),
            Value::Object(self.metadata.unwrap_or_default()),
        );
        echo.insert(
            "parallel_tool_calls".into(),
            self.parallel_tool_calls.unwrap_or(true).into(),
        );
        echo.insert(
            "previous_response_id".into(),
            self.previous_response_id.clone().into(),
        );
        echo.insert(
            "reasoning".into(),
            self.reasoning
                .filter(|r| !r.is_null())
                .unwrap_or_else(|| json!({ "effort": null, "summary": null })),
        );
        echo.insert("service_tier".into(), "default".into());
        echo.insert("temperature".into(), self.temperature.into());
        echo.insert("text".into(), text_echo(self.text.as_ref()));
        echo.insert(
            "tool_choice".into(),
            self.tool_choice
                .filter(|c| !c.is_null())
                .unwrap_or_else(|| "auto".into()),
        );
        echo.insert("tools".into(), Value::Array(tools_echo));
        echo.insert("top_p".into(), self.top_p.into());
        echo.insert(
            "truncation".into(),
            self.truncation.unwrap_or_else(|| "disabled".into()).into(),
        );
        echo.insert("user".into(), self.user.clone().into());
        if let Some(id) = &self.safety_identifier {
            echo.insert("safety_identifier".into(), id.clone().into());
        }

        Ok(Prepared {
            tool_names,
            template: ChatRequest {
                model: self.model.clone(),
                messages: Vec::new(),
                tools,
                tool_choice,
                parallel_tool_calls: self.parallel_tool_calls,
                response_format,
                max_tokens: self.max_output_tokens,
                temperature: self.temperature,
                top_p: self.top_p,
                user: self.user.or(self.safety_identifier),
                ..ChatRequest::default()
            },
            model: self.model,
            stream: self.stream.unwrap_or(false),
            store,
            previous_response_id: self.previous_response_id,
            input,
            echo,
            instructions: self.instructions,
        })
    }

    /// Parameters whose meaning freeway cannot honour: silently ignoring them would answer a
    /// different question than the one asked.
    fn refuse_unsupported(&self) -> Result<(), ApiError> {
        if self.background == Some(true) {
            return Err(ApiError::invalid(
                "background",
                "background responses are not supported by freeway; send the request without \
                 `background` (use `stream: true` for long answers)",
            ));
        }
        let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        if present(&self.conversation) {
            return Err(ApiError::invalid(
                "conversation",
                "server-side conversations are not supported by freeway; chain responses with \
                 `previous_response_id` instead",
            ));
        }
        if present(&self.prompt) {
            return Err(ApiError::invalid(
                "prompt",
                "prompt templates are not supported by freeway; send `instructions` and `input`",
            ));
        }
        if present(&self.moderation) {
            return Err(ApiError::invalid(
                "moderation",
                "moderated responses are not supported by freeway",
            ));
        }
        if self
            .context_management
            .as_ref()
            .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()) && !v.is_null())
        {
            return Err(ApiError::invalid(
                "context_management",
                "server-side context compaction is not supported by freeway",
            ));
        }
        if self.top_logprobs.is_some_and(|n| n > 0) {
            return Err(ApiError::invalid(
                "top_logprobs",
                "log probabilities are not supported through freeway",
            ));
        }
        Ok(())
    }
}

/// The `text` parameter as a response repeats it: the format given, else plain text.
fn text_echo(text: Option<&Value>) -> Value {
    let mut out = match text {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    if out.get("format").is_none_or(Value::is_null) {
        out.insert("format".into(), json!({ "type": "text" }));
    }
    out.entry("verbosity").or_insert_with(|| "medium".into());
    Value::Object(out)
}

/// `input`: a string (one user message) or a list of items.
fn input(value: Value) -> Result<Vec<Message>, ApiError> {
    let items = match value {
        Value::String(text) => return Ok(vec![Message::user(text)]),
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid(
                "input",
                "must be a string or an array of input items",
            ));
        }
    };
    let mut out: Vec<Message> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("input[{i}]");
        let Value::Object(item) = item else {
            return Err(ApiError::invalid(at, "must be an object"));
        };
        let kind = match item.get("type") {
            Some(Value::String(t)) => t.as_str(),
            None | Some(Value::Null) if item.contains_key("role") => "message",
            None | Some(Value::Null) => {
                return Err(ApiError::invalid(format!("{at}.type"), "Field required"));
            }
            Some(_) => return Err(ApiError::invalid(format!("{at}.type"), "must be a string")),
        };
        match kind {
            "message" => {
                if let Some(m) = message(&at, &item)? {
                    out.push(m);
                }
            }
            "function_call" => {
                let name = string(&item, "name", &at)?;
                let call = ToolCall {
                    id: string(&item, "call_id", &at)?,
                    name: match item.get("namespace").and_then(Value::as_str) {
                        Some(namespace) => ToolNames::flat(namespace, &name),
                        None => name,
                    },
                    arguments: match item.get("arguments") {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(a)) => a.clone(),
                        Some(_) => {
                            return Err(ApiError::invalid(
                                format!("{at}.arguments"),
                                "must be a string of JSON",
                            ));
                        }
                    },
                };
                // The calls of one turn follow its message (if any): they join it.
                match out.last_mut() {
                    Some(Message::Assistant { tool_calls, .. }) => tool_calls.push(call),
                    _ => out.push(Message::Assistant {
                        content: Vec::new(),
                        tool_calls: vec![call],
                    }),
                }
            }
            "custom_tool_call" => {
                let input = string(&item, "input", &at)?;
                let call = ToolCall {
                    id: string(&item, "call_id", &at)?,
                    name: string(&item, "name", &at)?,
                    arguments: json!({ "input": input }).to_string(),
                };
                match out.last_mut() {
                    Some(Message::Assistant { tool_calls, .. }) => tool_calls.push(call),
                    _ => out.push(Message::Assistant {
                        content: Vec::new(),
                        tool_calls: vec![call],
                    }),
                }
            }
            "function_call_output" | "custom_tool_call_output" => out.push(Message::Tool {
                tool_call_id: string(&item, "call_id", &at)?,
                content: function_output(&format!("{at}.output"), item.get("output"))?,
                is_error: false,
            }),
            // Reasoning replayed from an earlier turn: other models cannot read it.
            "reasoning" => {}
            "item_reference" => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    "item references are not supported by freeway; send the items themselves \
                     or continue with `previous_response_id`",
                ));
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!(
                        "input items of type `{other}` are not supported by freeway; it accepts \
                         `message`, `function_call`, `function_call_output`, `custom_tool_call` \
                         and `custom_tool_call_output` items"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn string(item: &Map<String, Value>, field: &str, at: &str) -> Result<String, ApiError> {
    match item.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => {
            Err(ApiError::invalid(format!("{at}.{field}"), "Field required"))
        }
        Some(_) => Err(ApiError::invalid(
            format!("{at}.{field}"),
            "must be a string",
        )),
    }
}

/// A message item; `None` when it carries nothing (an empty content list).
fn message(at: &str, item: &Map<String, Value>) -> Result<Option<Message>, ApiError> {
    let role = string(item, "role", at)?;
    let content = format!("{at}.content");
    let images = role == "user";
    let parts = match item.get("content") {
        Some(Value::String(text)) => vec![ContentPart::text(text.clone())],
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| content_part(&format!("{content}[{j}]"), p, images))
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => return Err(ApiError::invalid(content, "Field required")),
        Some(_) => {
            return Err(ApiError::invalid(
                content,
                "must be a string or an array of content parts",
            ));
        }
    };
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(match role.as_str() {
        "user" => Message::User { content: parts },
        "system" | "developer" => Message::System {
            content: freeway_types::join_text(&parts),
        },
        "assistant" => Message::Assistant {
            content: parts,
            tool_calls: Vec::new(),
        },
        other => {
            return Err(ApiError::invalid(
                format!("{at}.role"),
                format!("unknown role `{other}`; expected user, assistant, system or developer"),
            ));
        }
    }))
}

/// One content part. Text comes as `input_text` (what clients send) or `output_text` (an
/// earlier answer replayed); images only in user messages and tool outputs.
fn content_part(at: &str, part: &Value, images: bool) -> Result<ContentPart, ApiError> {
    let Value::Object(part) = part else {
        return Err(ApiError::invalid(at, "must be an object with a `type`"));
    };
    let kind = match part.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(ApiError::invalid(format!("{at}.type"), "Field required")),
    };
    match kind {
        "input_text" | "output_text" | "text" => Ok(ContentPart::text(string(part, "text", at)?)),
        // A refusal replayed from an earlier turn is what the model said.
        "refusal" => Ok(ContentPart::text(string(part, "refusal", at)?)),
        "input_image" if images => {
            if part.get("file_id").is_some_and(|f| !f.is_null()) {
                return Err(ApiError::invalid(
                    format!("{at}.file_id"),
                    "file ids are not supported by freeway; send `image_url` as an https or \
                     data URL",
                ));
            }
            let url = string(part, "image_url", at)?;
            let detail = part
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(image(&url, detail))
        }
        "input_image" => Err(ApiError::invalid(
            format!("{at}.type"),
            "images are only allowed in user messages and function call outputs",
        )),
        "input_file" => Err(ApiError::invalid(
            format!("{at}.type"),
            "file inputs are not supported by freeway; send text or `input_image`",
        )),
        other => Err(ApiError::invalid(
            format!("{at}.type"),
            format!(
                "content parts of type `{other}` are not supported; use `input_text` or `input_image`"
            ),
        )),
    }
}

/// A function call's output: a string, or a list of text and image parts.
fn function_output(at: &str, output: Option<&Value>) -> Result<Vec<ContentPart>, ApiError> {
    match output {
        Some(Value::String(text)) => Ok(vec![ContentPart::text(text.clone())]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| content_part(&format!("{at}[{j}]"), p, true))
            .collect(),
        None | Some(Value::Null) => Err(ApiError::invalid(at, "Field required")),
        Some(_) => Err(ApiError::invalid(
            at,
            "must be a string or an array of content parts",
        )),
    }
}

/// Function tools (and the function tools of `namespace` groups, flattened), the list a
/// response repeats back, and the flattened names. Hosted tools are refused by name.
fn tools(
    values: Vec<Value>,
) -> Result<(Vec<freeway_types::ToolDefinition>, Vec<Value>, ToolNames), ApiError> {
    let mut defs = Vec::with_capacity(values.len());
    let mut echo = Vec::with_capacity(values.len());
    let mut names = ToolNames::default();
    for (i, tool) in values.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        let Value::Object(tool) = tool else {
            return Err(ApiError::invalid(at, "must be an object"));
        };
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let def = function_def(&tool, &at)?;
                echo.push(json!({
                    "type": "function",
                    "name": def.name,
                    "description": def.description,
                    "parameters": def.parameters,
                    "strict": def.strict,
                }));
                defs.push(def);
            }
            Some("custom") => {
                let def = custom_def(&tool, &at)?;
                names.custom(&def.name);
                echo.push(Value::Object(tool));
                defs.push(def);
            }
            Some("namespace") => {
                let namespace = string(&tool, "name", &at)?;
                let Some(Value::Array(members)) = tool.get("tools") else {
                    return Err(ApiError::invalid(
                        format!("{at}.tools"),
                        "must be an array of function tools",
                    ));
                };
                for (j, member) in members.iter().enumerate() {
                    let at = format!("{at}.tools[{j}]");
                    let Value::Object(member) = member else {
                        return Err(ApiError::invalid(at, "must be an object"));
                    };
                    if member.get("type").and_then(Value::as_str) != Some("function") {
                        return Err(ApiError::invalid(
                            format!("{at}.type"),
                            "a namespace holds only function tools",
                        ));
                    }
                    let mut def = function_def(member, &at)?;
                    def.name = names.insert(&namespace, &def.name);
                    defs.push(def);
                }
                echo.push(Value::Object(tool));
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!(
                        "the tool type `{other}` is not supported by freeway: only function \
                         tools (`\"type\": \"function\"`), namespaces of them and `custom` \
                         (freeform) tools are; hosted \
                         tools such as web search, file search or code interpreter do not run \
                         here"
                    ),
                ));
            }
            None => return Err(ApiError::invalid(format!("{at}.type"), "Field required")),
        }
    }
    Ok((defs, echo, names))
}

/// A `custom` (freeform) tool: the model writes free text, not JSON arguments. Providers know
/// only function tools, so it becomes one taking a single `input` string, its format (a
/// grammar or plain text) described to the model.
fn custom_def(
    tool: &Map<String, Value>,
    at: &str,
) -> Result<freeway_types::ToolDefinition, ApiError> {
    let name = string(tool, "name", at)?;
    let mut description = tool
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let format = tool.get("format");
    let input = match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
        None | Some("text") => "The input is free text.".to_owned(),
        Some("grammar") => {
            let syntax = format
                .and_then(|f| f.get("syntax"))
                .and_then(Value::as_str)
                .unwrap_or("lark");
            let definition = format
                .and_then(|f| f.get("definition"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid(format!("{at}.format.definition"), "Field required")
                })?;
            format!("The input must match this {syntax} grammar exactly:\n{definition}")
        }
        Some(other) => {
            return Err(ApiError::invalid(
                format!("{at}.format.type"),
                format!("unknown value `{other}`; expected text or grammar"),
            ));
        }
    };
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(&input);
    let parameters = json!({
        "type": "object",
        "properties": { "input": { "type": "string", "description": input } },
        "required": ["input"],
        "additionalProperties": false,
    });
    Ok(function_tool(
        name,
        Some(description),
        Some(parameters),
        None,
    ))
}

/// One flat function tool: `name`, `description`, `parameters`, `strict` beside `type`.
fn function_def(
    tool: &Map<String, Value>,
    at: &str,
) -> Result<freeway_types::ToolDefinition, ApiError> {
    let name = string(tool, "name", at)?;
    if tool.get("function").is_some() {
        return Err(ApiError::invalid(
            at,
            "function tools are flat in the Responses API: put `name`, `parameters` and \
             `description` beside `type`, not under `function`",
        ));
    }
    let description = tool
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let parameters = tool.get("parameters").cloned();
    if parameters
        .as_ref()
        .is_some_and(|p| !p.is_object() && !p.is_null())
    {
        return Err(ApiError::invalid(
            format!("{at}.parameters"),
            "must be a JSON schema object",
        ));
    }
    let strict = tool.get("strict").and_then(Value::as_bool);
    Ok(function_tool(name, description, parameters, strict))
}

fn tool_choice(
    value: &Value,
    tools: &[freeway_types::ToolDefinition],
) -> Result<ToolChoice, ApiError> {
    match value {
        Value::String(mode) => tool_choice_mode(mode).ok_or_else(|| {
            ApiError::invalid(
                "tool_choice",
                format!("unknown value `{mode}`; expected auto, none, required or a function"),
            )
        }),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = string(o, "name", "tool_choice")?;
                if !tools.iter().any(|t| t.name == name) {
                    return Err(ApiError::invalid(
                        "tool_choice.name",
                        format!("`{name}` is not one of the function tools of this request"),
                    ));
                }
                Ok(ToolChoice::Tool { name })
            }
            Some(other) => Err(ApiError::invalid(
                "tool_choice.type",
                format!(
                    "`{other}` is not supported by freeway; choose auto, none, required or \
                     {{\"type\": \"function\", \"name\": …}}"
                ),
            )),
            None => Err(ApiError::invalid("tool_choice.type", "Field required")),
        },
        _ => Err(ApiError::invalid(
            "tool_choice",
            "must be a string or an object",
        )),
    }
}

/// `text.format`: plain text, any JSON object, or JSON valid against a schema.
fn text_format(format: &Value) -> Result<ResponseFormat, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => json_schema("text.format", format),
        Some(other) => Err(ApiError::invalid(
            "text.format.type",
            format!("unknown value `{other}`; expected text, json_object or json_schema"),
        )),
        None => Err(ApiError::invalid("text.format.type", "Field required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(body: Value) -> Result<Prepared, ApiError> {
        serde_json::from_value::<CreateRequest>(body)
            .unwrap()
            .prepare()
    }

    #[test]
    fn items_become_turns_with_calls_joined_to_their_message() {
        let p = prepare(json!({
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "t", "arguments": "{}"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
            ],
        }))
        .unwrap();
        let chat = p.chat(vec![Message::user("earlier")]);
        assert_eq!(chat.messages.len(), 6);
        assert_eq!(chat.messages[0], Message::system("Be brief."));
        assert_eq!(chat.messages[1], Message::user("earlier"));
        match &chat.messages[3] {
            Message::Assistant {
                content,
                tool_calls,
            } => {
                assert_eq!(freeway_types::join_text(content), "Checking.");
                let ids: Vec<&str> = tool_calls.iter().map(|c| c.id.as_str()).collect();
                assert_eq!(ids, ["c1", "c2"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&chat.messages[5], Message::Tool { tool_call_id, .. } if tool_call_id == "c2")
        );
        // The instructions are not part of what a continuation carries on.
        assert_eq!(p.input.len(), 4);
        assert!(p.store);
    }

    #[test]
    fn namespace_tools_are_flattened_and_their_calls_named_as_declared() {
        let p = prepare(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "spawn one"},
                {"type": "function_call", "call_id": "c1", "namespace": "agents", "name": "spawn", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ],
            "tools": [
                {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
                {"type": "namespace", "name": "agents", "description": "sub-agents", "tools": [
                    {"type": "function", "name": "spawn", "parameters": {"type": "object"}},
                    {"type": "function", "name": "close", "parameters": {"type": "object"}},
                ]},
            ],
        }))
        .unwrap();
        let chat = p.chat(Vec::new());
        let names: Vec<&str> = chat.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["exec_command", "agents__spawn", "agents__close"]);
        let Message::Assistant { tool_calls, .. } = &chat.messages[1] else {
            panic!("{:?}", chat.messages[1]);
        };
        assert_eq!(tool_calls[0].name, "agents__spawn");
        // The echo repeats the namespace as sent; a call is named back with its namespace.
        assert_eq!(p.echo["tools"][1]["type"], "namespace");
        let call = ToolCall {
            id: "c2".into(),
            name: "agents__close".into(),
            arguments: "{}".into(),
        };
        let item = super::super::response::call_item("fc_1", "completed", &call, &p.tool_names);
        assert_eq!(
            (item["namespace"].as_str(), item["name"].as_str()),
            (Some("agents"), Some("close"))
        );
        let plain = ToolCall {
            name: "exec_command".into(),
            ..call
        };
        let item = super::super::response::call_item("fc_2", "completed", &plain, &p.tool_names);
        assert!(item.get("namespace").is_none());
        assert_eq!(item["name"], "exec_command");

        let bad = prepare(json!({"model": "m", "input": "x", "tools": [
            {"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]},
        ]}))
        .err()
        .unwrap();
        assert!(
            format!("{bad:?}").contains("tools[0].tools[0].type"),
            "{bad:?}"
        );
    }

    #[test]
    fn custom_tools_run_as_functions_taking_one_input_string() {
        let p = prepare(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "patch it"},
                {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "custom_tool_call_output", "call_id": "c1", "output": "Done!"},
            ],
            "tools": [{
                "type": "custom", "name": "apply_patch", "description": "Edit files.",
                "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\""},
            }],
        }))
        .unwrap();
        let chat = p.chat(Vec::new());
        let tool = &chat.tools[0];
        assert_eq!(tool.name, "apply_patch");
        assert_eq!(tool.parameters["required"], json!(["input"]));
        assert!(
            tool.description
                .as_deref()
                .unwrap()
                .contains("lark grammar"),
            "{:?}",
            tool.description
        );
        let Message::Assistant { tool_calls, .. } = &chat.messages[1] else {
            panic!("{:?}", chat.messages[1]);
        };
        assert_eq!(tool_calls[0].arguments, r#"{"input":"*** Begin Patch"}"#);
        assert!(
            matches!(&chat.messages[2], Message::Tool { tool_call_id, .. } if tool_call_id == "c1")
        );
        let item =
            super::super::response::call_item("ctc_1", "completed", &tool_calls[0], &p.tool_names);
        assert_eq!(item["type"], "custom_tool_call");
        assert_eq!(item["input"], "*** Begin Patch");
        let bad = prepare(json!({"model": "m", "input": "x", "tools": [
            {"type": "custom", "name": "x", "format": {"type": "regex"}},
        ]}))
        .err()
        .unwrap();
        assert_eq!(bad.param.as_deref(), Some("tools[0].format.type"));
    }

    #[test]
    fn hosted_tools_and_semantic_changes_are_refused_by_name() {
        for (tool, word) in [
            ("web_search", "web_search"),
            ("file_search", "file_search"),
            ("code_interpreter", "code_interpreter"),
        ] {
            let e = prepare(json!({"model": "m", "input": "x", "tools": [{"type": tool}]}))
                .err()
                .unwrap();
            assert_eq!(e.param.as_deref(), Some("tools[0].type"));
            assert!(
                e.message.contains(word) && e.message.contains("only function"),
                "{}",
                e.message
            );
        }
        let e = prepare(json!({"model": "m", "input": "x", "background": true}))
            .err()
            .unwrap();
        assert_eq!(e.param.as_deref(), Some("background"));
        let e = prepare(json!({"model": "m", "input": [{"type": "web_search_call", "id": "w"}]}))
            .err()
            .unwrap();
        assert_eq!(e.param.as_deref(), Some("input[0].type"));
        assert!(prepare(json!({"model": "m"})).is_err());
        assert!(prepare(json!({"model": "m", "input": 3})).is_err());
        // Harmless OpenAI-only settings pass.
        assert!(
            prepare(json!({"model": "m", "input": "x", "service_tier": "auto", "include": ["reasoning.encrypted_content"], "truncation": "auto", "prompt_cache_key": "k", "background": false}))
                .is_ok()
        );
    }

    #[test]
    fn formats_tools_and_choice_map_to_the_chat_request() {
        let p = prepare(json!({
            "model": "m",
            "input": "x",
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "w"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
            "max_output_tokens": 50,
            "store": false,
        }))
        .unwrap();
        let chat = p.chat(Vec::new());
        assert_eq!(chat.tools[0].name, "w");
        assert_eq!(chat.tools[0].strict, Some(true));
        assert_eq!(
            chat.tool_choice,
            Some(ToolChoice::Tool { name: "w".into() })
        );
        assert_eq!(
            chat.response_format,
            Some(ResponseFormat::JsonSchema {
                name: "out".into(),
                schema: json!({"type": "object"}),
                strict: Some(true)
            })
        );
        assert_eq!(chat.max_tokens, Some(50));
        assert!(!p.store);
        assert_eq!(p.echo["tools"][0]["name"], "w");
        assert_eq!(p.echo["text"]["format"]["name"], "out");
        let e = prepare(json!({"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "nope"}}))
            .err()
            .unwrap();
        assert_eq!(e.param.as_deref(), Some("tool_choice.name"));
    }
}
