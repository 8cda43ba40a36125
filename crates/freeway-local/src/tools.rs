//! Tool calls for local models: how tools are shown to a model whose chat template ignores them,
//! and how calls are read back out of generated text.
//!
//! Two output shapes are recognised, the ones small open models are trained on:
//! - Hermes / Qwen style: `<tool_call>{"name": "f", "arguments": {...}}</tool_call>`, any number
//!   of them, possibly after some text;
//! - a bare JSON object (or array of objects) `{"name": "f", "arguments": {...}}` that makes up
//!   the whole answer (Llama 3.x style; `parameters` is accepted for `arguments`).
//!
//! Text that merely looks like the start of a call is held back until it is decided, so a
//! `<tool_call>` tag never reaches the client as text.

use freeway_types::ToolDefinition;
use serde_json::Value;

pub(crate) const OPEN_TAG: &str = "<tool_call>";
pub(crate) const CLOSE_TAG: &str = "</tool_call>";

/// The system-prompt section used when the model's chat template does not render `tools`
/// itself. It follows the Hermes function-calling format, which Qwen2.5's own template also uses.
pub(crate) fn fallback_tools_prompt(tools: &[ToolDefinition]) -> String {
    let mut out = String::from(
        "You may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
    );
    for tool in tools {
        let mut function = serde_json::Map::new();
        function.insert("name".into(), Value::String(tool.name.clone()));
        if let Some(description) = &tool.description {
            function.insert("description".into(), Value::String(description.clone()));
        }
        function.insert("parameters".into(), tool.parameters.clone());
        let entry = serde_json::json!({ "type": "function", "function": function });
        out.push_str(&entry.to_string());
        out.push('\n');
    }
    out.push_str(
        "</tools>\n\nFor each function call, return a json object with function name and \
         arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    out
}

/// A parsed call: the function name and its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedCall {
    pub(crate) name: String,
    pub(crate) arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Call(ParsedCall),
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing but whitespace seen yet.
    Start,
    /// Plain text, watching for an opening tag.
    Text,
    /// Inside `<tool_call>`, collecting the JSON up to the closing tag.
    InCall,
    /// The answer began with `{` or `[`: it may be one bare JSON call; decided at the end.
    BareJson,
}

/// Splits a stream of generated text into text and tool calls.
#[derive(Debug)]
pub(crate) struct ToolCallParser {
    mode: Mode,
    buf: String,
    calls: usize,
}

impl ToolCallParser {
    pub(crate) fn new() -> Self {
        Self {
            mode: Mode::Start,
            buf: String::new(),
            calls: 0,
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> Vec<Piece> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.mode {
                Mode::Start => {
                    let trimmed = self.buf.trim_start();
                    if trimmed.is_empty() {
                        return out;
                    }
                    self.mode = if trimmed.starts_with('{') || trimmed.starts_with('[') {
                        Mode::BareJson
                    } else {
                        Mode::Text
                    };
                }
                Mode::BareJson => return out,
                Mode::Text => {
                    if let Some(at) = self.buf.find(OPEN_TAG) {
                        let before: String = self.buf[..at].to_owned();
                        self.buf.drain(..at + OPEN_TAG.len());
                        self.emit_text(before, &mut out);
                        self.mode = Mode::InCall;
                        continue;
                    }
                    let keep = partial_suffix(&self.buf, OPEN_TAG);
                    let cut = self.buf.len() - keep;
                    let text: String = self.buf.drain(..cut).collect();
                    self.emit_text(text, &mut out);
                    return out;
                }
                Mode::InCall => {
                    let Some(at) = self.buf.find(CLOSE_TAG) else {
                        return out;
                    };
                    let body: String = self.buf[..at].to_owned();
                    self.buf.drain(..at + CLOSE_TAG.len());
                    match parse_calls(&body) {
                        Some(calls) => {
                            self.calls += calls.len();
                            out.extend(calls.into_iter().map(Piece::Call));
                        }
                        None => {
                            out.push(Piece::Text(format!("{OPEN_TAG}{body}{CLOSE_TAG}")));
                        }
                    }
                    self.mode = Mode::Text;
                }
            }
        }
    }

    /// Whitespace between or after calls is not worth a text event.
    fn emit_text(&self, text: String, out: &mut Vec<Piece>) {
        if text.is_empty() || (self.calls > 0 && text.trim().is_empty()) {
            return;
        }
        out.push(Piece::Text(text));
    }

    /// Ends the stream: decides whatever is still held.
    pub(crate) fn finish(&mut self) -> Vec<Piece> {
        let rest = std::mem::take(&mut self.buf);
        let mut out = Vec::new();
        match self.mode {
            Mode::Start | Mode::Text => self.emit_text(rest, &mut out),
            Mode::InCall => match parse_calls(strip_partial_close(&rest)) {
                // The model stopped right after the JSON, before the closing tag.
                Some(calls) => out.extend(calls.into_iter().map(Piece::Call)),
                None => out.push(Piece::Text(format!("{OPEN_TAG}{rest}"))),
            },
            Mode::BareJson => match parse_calls(&rest) {
                Some(calls) => out.extend(calls.into_iter().map(Piece::Call)),
                None => {
                    // Not a bare call after all; it may still hold tagged calls.
                    self.mode = Mode::Text;
                    out = self.push(&rest);
                    out.extend(self.finish());
                }
            },
        }
        out
    }
}

/// The call body without a closing tag cut short by `max_tokens` (`...}\n</tool`).
fn strip_partial_close(body: &str) -> &str {
    let trimmed = body.trim_end();
    let keep = partial_suffix(trimmed, CLOSE_TAG);
    &trimmed[..trimmed.len() - keep]
}

/// The length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    let max = (tag.len() - 1).min(text.len());
    (1..=max)
        .rev()
        .find(|&len| {
            let start = text.len() - len;
            text.is_char_boundary(start) && tag.starts_with(&text[start..])
        })
        .unwrap_or(0)
}

/// Reads one call object, or an array of them, out of a JSON text (tolerating a Markdown fence).
pub(crate) fn parse_calls(text: &str) -> Option<Vec<ParsedCall>> {
    let mut body = text.trim();
    if let Some(rest) = body.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        body = rest.strip_suffix("```").unwrap_or(rest).trim();
    }
    let value: Value = serde_json::from_str(body).ok()?;
    match value {
        Value::Array(items) if !items.is_empty() => items.iter().map(parse_call).collect(),
        Value::Object(_) => parse_call(&value).map(|c| vec![c]),
        _ => None,
    }
}

fn parse_call(value: &Value) -> Option<ParsedCall> {
    let obj = value.as_object()?;
    // Some models nest the call OpenAI-style: {"type": "function", "function": {...}}.
    if let Some(inner) = obj.get("function").filter(|f| f.is_object()) {
        return parse_call(inner);
    }
    let name = obj.get("name")?.as_str()?.to_owned();
    let arguments = match obj.get("arguments").or_else(|| obj.get("parameters")) {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other @ Value::Object(_)) => other.to_string(),
        Some(_) => return None,
    };
    Some(ParsedCall { name, arguments })
}

/// The JSON schema of one call object `{"name": <one of the tools>, "arguments": <its schema>}`,
/// for constrained decoding of forced tool calls.
pub(crate) fn call_schema(tools: &[&ToolDefinition]) -> Value {
    let variants: Vec<Value> = tools
        .iter()
        .map(|tool| {
            let parameters = if tool.parameters.is_object() {
                tool.parameters.clone()
            } else {
                serde_json::json!({ "type": "object" })
            };
            serde_json::json!({
                "type": "object",
                "properties": {
                    "name": { "const": tool.name },
                    "arguments": parameters,
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    if variants.len() == 1 {
        variants.into_iter().next().unwrap_or(Value::Null)
    } else {
        serde_json::json!({ "anyOf": variants })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pieces: &[&str]) -> Vec<Piece> {
        let mut p = ToolCallParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(p.push(piece));
        }
        out.extend(p.finish());
        // Merge adjacent text for easy comparison.
        let mut merged: Vec<Piece> = Vec::new();
        for piece in out {
            match (merged.last_mut(), piece) {
                (Some(Piece::Text(a)), Piece::Text(b)) => a.push_str(&b),
                (_, piece) => merged.push(piece),
            }
        }
        merged
    }

    fn call(name: &str, arguments: &str) -> Piece {
        Piece::Call(ParsedCall {
            name: name.into(),
            arguments: arguments.into(),
        })
    }

    #[test]
    fn hermes_calls_split_across_tokens_are_parsed() {
        let out = feed(&[
            "Let me check.\n<tool",
            "_call>\n{\"name\": \"weather\", ",
            "\"arguments\": {\"city\": \"Paris\"}}\n</tool_",
            "call>\n<tool_call>{\"name\":\"time\",\"arguments\":{}}</tool_call>",
        ]);
        assert_eq!(
            out,
            vec![
                Piece::Text("Let me check.\n".into()),
                call("weather", "{\"city\":\"Paris\"}"),
                call("time", "{}"),
            ]
        );
    }

    #[test]
    fn bare_json_calls_and_unclosed_tags_are_parsed() {
        assert_eq!(
            feed(&["  {\"name\": \"f\", \"parameters\": {\"x\": 1}}"]),
            vec![call("f", "{\"x\":1}")]
        );
        assert_eq!(
            feed(&["[{\"name\": \"f\", \"arguments\": \"{}\"}]"]),
            vec![call("f", "{}")]
        );
        assert_eq!(
            feed(&["<tool_call>{\"name\": \"f\", \"arguments\": {}}"]),
            vec![call("f", "{}")]
        );
        assert_eq!(
            feed(&["<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool"]),
            vec![call("f", "{}")]
        );
    }

    #[test]
    fn text_that_is_not_a_call_stays_text() {
        assert_eq!(
            feed(&["{\"a\": 1}"]),
            vec![Piece::Text("{\"a\": 1}".into())]
        );
        assert_eq!(
            feed(&["a <tool", " b"]),
            vec![Piece::Text("a <tool b".into())]
        );
        assert_eq!(
            feed(&["<tool_call>not json</tool_call> after"]),
            vec![Piece::Text("<tool_call>not json</tool_call> after".into())]
        );
    }

    #[test]
    fn forced_call_schema_names_each_tool() {
        let t = ToolDefinition {
            name: "weather".into(),
            description: None,
            parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            strict: None,
        };
        let s = call_schema(&[&t]);
        assert_eq!(s["properties"]["name"]["const"], "weather");
        let s = call_schema(&[&t, &t]);
        assert_eq!(s["anyOf"].as_array().map(Vec::len), Some(2));
    }
}
