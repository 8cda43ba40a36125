//! Chat templates: the GGUF's `tokenizer.chat_template` (Hugging Face Jinja) rendered with
//! minijinja.
//!
//! Hugging Face renders templates with Jinja2's `trim_blocks` and `lstrip_blocks`, a
//! `raise_exception` function, a `tojson` filter that writes JSON the way Python's `json.dumps`
//! does (`", "` and `": "` separators), `strftime_now`, and Python string methods
//! (`.strip()`, `.split()`, ...); all of these are provided here. Messages are passed in the
//! Hugging Face shape: `content` a string, assistant `tool_calls` as
//! `{"id", "type": "function", "function": {"name", "arguments": <object>}}`, tool results with
//! role `tool`, and `tools` as OpenAI function definitions.
//!
//! A template that never mentions `tools` gets the tool list through a system prompt instead
//! (see [`crate::tools::fallback_tools_prompt`]); one that never mentions `tool_calls` sees
//! earlier calls written into the assistant's text as `<tool_call>` blocks, and one that never
//! mentions the `tool` role sees tool results as user messages in `<tool_response>` tags.

use std::fmt::Write as _;

use freeway_types::{ContentPart, Message, ToolDefinition};
use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error as JError, ErrorKind as JErrorKind};
use serde_json::{Value, json};

use crate::tools::{CLOSE_TAG, OPEN_TAG, fallback_tools_prompt};

/// ChatML, for GGUF files that carry no template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const NAME: &str = "chat";

/// A compiled chat template and what it knows how to render.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    renders_tools: bool,
    renders_tool_calls: bool,
    renders_tool_role: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("renders_tools", &self.renders_tools)
            .finish_non_exhaustive()
    }
}

/// A template that does not compile or fails to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chat template: {0}")]
pub struct TemplateError(pub String);

impl From<JError> for TemplateError {
    fn from(err: JError) -> Self {
        // minijinja keeps the useful part (e.g. a raise_exception message) in the detail.
        let mut msg = err.to_string();
        if let Some(detail) = err.detail()
            && !msg.contains(detail)
        {
            let _ = write!(msg, ": {detail}");
        }
        TemplateError(msg)
    }
}

impl ChatTemplate {
    pub fn new(
        source: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_owned())?;
        Ok(Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            renders_tools: source.contains("tools"),
            renders_tool_calls: source.contains("tool_calls"),
            renders_tool_role: source.contains("tool"),
        })
    }

    /// Whether the template renders the `tools` list itself.
    pub fn renders_tools(&self) -> bool {
        self.renders_tools
    }

    /// Renders a conversation, ending with the assistant's generation prompt.
    ///
    /// `extra_system` (e.g. a JSON-format instruction) is appended to the first system message,
    /// or becomes one.
    pub fn render(
        &self,
        messages: &[Message],
        tools: &[ToolDefinition],
        extra_system: Option<&str>,
    ) -> Result<String, TemplateError> {
        let mut system_extra = Vec::new();
        if !tools.is_empty() && !self.renders_tools {
            system_extra.push(fallback_tools_prompt(tools));
        }
        if let Some(extra) = extra_system {
            system_extra.push(extra.to_owned());
        }
        let mut msgs = self.messages(messages)?;
        if !system_extra.is_empty() {
            let extra = system_extra.join("\n\n");
            match msgs.first_mut() {
                Some(first) if first["role"] == "system" => {
                    let content = first["content"].as_str().unwrap_or_default();
                    first["content"] = Value::String(format!("{content}\n\n{extra}"));
                }
                _ => msgs.insert(0, json!({ "role": "system", "content": extra })),
            }
        }
        let tools_value = if tools.is_empty() || !self.renders_tools {
            JValue::UNDEFINED
        } else {
            JValue::from_serialize(
                tools
                    .iter()
                    .map(|t| {
                        let mut function = serde_json::Map::new();
                        function.insert("name".into(), Value::String(t.name.clone()));
                        if let Some(d) = &t.description {
                            function.insert("description".into(), Value::String(d.clone()));
                        }
                        function.insert("parameters".into(), t.parameters.clone());
                        json!({ "type": "function", "function": function })
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let ctx = minijinja::context! {
            messages => JValue::from_serialize(&msgs),
            tools => tools_value,
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        Ok(self.env.get_template(NAME)?.render(ctx)?)
    }

    fn messages(&self, messages: &[Message]) -> Result<Vec<Value>, TemplateError> {
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            let value = match message {
                Message::System { content } => json!({ "role": "system", "content": content }),
                Message::User { content } => {
                    json!({ "role": "user", "content": text_only(content)? })
                }
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    let mut text = text_only(content)?;
                    if self.renders_tool_calls {
                        let calls: Vec<Value> = tool_calls
                            .iter()
                            .map(|c| {
                                json!({
                                    "id": c.id,
                                    "type": "function",
                                    "function": {
                                        "name": c.name,
                                        "arguments": arguments_value(&c.arguments),
                                    },
                                })
                            })
                            .collect();
                        let mut m = json!({ "role": "assistant", "content": text });
                        if !calls.is_empty() {
                            m["tool_calls"] = Value::Array(calls);
                        }
                        m
                    } else {
                        for c in tool_calls {
                            // Name first, as models are trained to write it.
                            let call = format!(
                                "{{\"name\": {}, \"arguments\": {}}}",
                                Value::String(c.name.clone()),
                                arguments_value(&c.arguments)
                            );
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            let _ = write!(text, "{OPEN_TAG}\n{call}\n{CLOSE_TAG}");
                        }
                        json!({ "role": "assistant", "content": text })
                    }
                }
                Message::Tool {
                    tool_call_id,
                    content,
                    ..
                } => {
                    let text = text_only(content)?;
                    let name = tool_name(messages, tool_call_id);
                    if self.renders_tool_role {
                        json!({
                            "role": "tool",
                            "content": text,
                            "tool_call_id": tool_call_id,
                            "name": name,
                        })
                    } else {
                        json!({
                            "role": "user",
                            "content": format!("<tool_response>\n{text}\n</tool_response>"),
                        })
                    }
                }
            };
            out.push(value);
        }
        Ok(out)
    }
}

fn text_only(parts: &[ContentPart]) -> Result<String, TemplateError> {
    let mut text = String::new();
    for part in parts {
        match part {
            ContentPart::Text { text: t } => text.push_str(t),
            ContentPart::Image { .. } => {
                return Err(TemplateError(
                    "this local model reads text only; the request has an image".into(),
                ));
            }
        }
    }
    Ok(text)
}

/// Templates index into arguments (`tool_call.arguments|items`), so pass an object when the
/// text parses as one.
fn arguments_value(arguments: &str) -> Value {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::String(arguments.to_owned()))
}

fn tool_name(messages: &[Message], id: &str) -> Option<String> {
    messages.iter().find_map(|m| match m {
        Message::Assistant { tool_calls, .. } => tool_calls
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone()),
        Message::System { .. } | Message::User { .. } | Message::Tool { .. } => None,
    })
}

fn raise_exception(message: String) -> Result<JValue, JError> {
    Err(JError::new(JErrorKind::InvalidOperation, message))
}

fn strftime_now(format: String) -> Result<JValue, JError> {
    // Without a time-zone database, UTC; templates use this for "Today Date: 26 Jul 2024".
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0) % 12];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => {
                let _ = write!(out, "{d:02}");
            }
            Some('m') => {
                let _ = write!(out, "{m:02}");
            }
            Some('Y') => {
                let _ = write!(out, "{y}");
            }
            Some('y') => {
                let _ = write!(out, "{:02}", y % 100);
            }
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    Ok(JValue::from(out))
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Python's `json.dumps` as Hugging Face's `tojson` calls it: `ensure_ascii=False`, separators
/// `", "` / `": "` (`","` between items when indenting), optional `indent`.
fn tojson(value: &JValue, kwargs: Kwargs) -> Result<JValue, JError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    // Accepted for compatibility; keys are always sorted and output is never ASCII-escaped.
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(value)
        .map_err(|e| JError::new(JErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_py_json(&json, indent, 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

fn write_py_json(value: &Value, indent: Option<usize>, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                write_py_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_py_json(v, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use freeway_types::ToolCall;

    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// The tool-handling part of Qwen2.5's template, abridged.
    const QWEN_LIKE: &str = r#"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen.' }}{%- endif %}
    {{- "\n\n# Tools\n\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}{{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools><|im_end|>\n" }}
{%- elif messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == "system" %}{% continue %}{% endif %}
    {%- if message.role == "user" %}
        {{- '<|im_start|>user\n' + message.content.strip() + '<|im_end|>\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}{{- '\n' + message.content }}{%- endif %}
        {%- for tool_call in message.tool_calls %}
            {{- '\n<tool_call>\n{"name": "' }}{{- tool_call.function.name }}{{- '", "arguments": ' }}{{- tool_call.function.arguments | tojson }}{{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {{- '<|im_start|>user\n<tool_response>\n' }}{{- message.content }}{{- '\n</tool_response><|im_end|>\n' }}
    {%- else %}{{- raise_exception('Unknown role: ' + message.role) }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"#;

    fn weather() -> ToolDefinition {
        ToolDefinition {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            strict: None,
        }
    }

    #[test]
    fn smollm2_template_adds_its_default_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2, "", "<|im_end|>").unwrap();
        let out = t.render(&[Message::user("Hi")], &[], None).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(
                &[Message::system("Be brief."), Message::user("Hi")],
                &[],
                None,
            )
            .unwrap();
        assert!(out.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"));
    }

    #[test]
    fn templates_that_ignore_tools_get_them_in_the_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2, "", "").unwrap();
        assert!(!t.renders_tools());
        let messages = vec![
            Message::user("Weather in Paris?"),
            Message::Assistant {
                content: vec![],
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                }],
            },
            Message::Tool {
                tool_call_id: "c1".into(),
                content: vec![ContentPart::text("sunny")],
                is_error: false,
            },
        ];
        let out = t.render(&messages, &[weather()], None).unwrap();
        assert!(out.starts_with("<|im_start|>system\nYou may call one or more functions"));
        assert!(out.contains("\"name\":\"get_weather\""));
        assert!(out.contains(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call><|im_end|>"
        ));
        assert!(
            out.contains("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>")
        );
    }

    #[test]
    fn hf_idioms_render_tools_tojson_loop_controls_and_string_methods() {
        let t = ChatTemplate::new(QWEN_LIKE, "", "").unwrap();
        assert!(t.renders_tools());
        let messages = vec![
            Message::system("Sys."),
            Message::user("  Weather?  "),
            Message::Assistant {
                content: vec![],
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                }],
            },
            Message::Tool {
                tool_call_id: "c1".into(),
                content: vec![ContentPart::text("sunny")],
                is_error: false,
            },
        ];
        let out = t.render(&messages, &[weather()], None).unwrap();
        let expected = "<|im_start|>system\nSys.\n\n# Tools\n\n<tools>\n{\"function\": {\"description\": \"Weather for a city\", \"name\": \"get_weather\", \"parameters\": {\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"], \"type\": \"object\"}}, \"type\": \"function\"}\n</tools><|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn raise_exception_becomes_a_template_error() {
        let src = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let err = t.render(&[Message::assistant("x")], &[], None).unwrap_err();
        assert!(
            err.0
                .contains("Conversations must start with a user message"),
            "{err}"
        );
    }

    #[test]
    fn tojson_indents_like_python() {
        let t = ChatTemplate::new("{{ x | tojson(indent=2) }}|{{ y | tojson }}", "", "").unwrap();
        let mut env_out = String::new();
        let ctx = minijinja::context! { x => json!({"a": [1, 2], "b": {}}), y => json!("é\"") };
        env_out.push_str(&t.env.get_template(NAME).unwrap().render(ctx).unwrap());
        assert_eq!(
            env_out,
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}|\"é\\\"\""
        );
    }

    #[test]
    fn images_are_refused_and_bos_is_available() {
        let t =
            ChatTemplate::new("{{ bos_token }}{{ strftime_now('%d %b %Y') }}", "<s>", "").unwrap();
        let out = t.render(&[], &[], None).unwrap();
        assert!(out.starts_with("<s>") && out.len() == 3 + 11, "{out}");
        let img = Message::User {
            content: vec![ContentPart::Image {
                source: freeway_types::ImageSource::Url {
                    url: "http://x".into(),
                },
                detail: None,
            }],
        };
        assert!(t.render(&[img], &[], None).is_err());
    }
}
