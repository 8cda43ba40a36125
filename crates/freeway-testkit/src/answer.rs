//! What a mock model answers, independent of any wire protocol; each protocol module renders it.

use serde_json::{Map, Value};

/// A model's answer: text, tool calls, why it stopped and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub tool_calls: Vec<MockToolCall>,
    pub finish: Finish,
    pub usage: MockUsage,
}

impl Answer {
    /// A plain text answer that stopped naturally; usage counts words.
    pub fn text(text: impl Into<String>) -> Self {
        let text = text.into();
        let output = word_count(&text);
        Self {
            text,
            tool_calls: Vec::new(),
            finish: Finish::Stop,
            usage: MockUsage {
                input: 10,
                output,
                ..MockUsage::default()
            },
        }
    }

    /// An answer that only calls tools.
    pub fn tool_calls(calls: Vec<MockToolCall>) -> Self {
        let output = calls.iter().map(|c| word_count(&c.arguments)).sum();
        Self {
            text: String::new(),
            tool_calls: calls,
            finish: Finish::ToolCalls,
            usage: MockUsage {
                input: 10,
                output,
                ..MockUsage::default()
            },
        }
    }

    pub fn with_finish(mut self, finish: Finish) -> Self {
        self.finish = finish;
        self
    }

    pub fn with_usage(mut self, usage: MockUsage) -> Self {
        self.usage = usage;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

impl MockToolCall {
    pub fn new(id: &str, name: &str, arguments: &Value) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: arguments.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Stop,
    /// `max_tokens` ran out.
    Length,
    /// One of the request's stop sequences (Anthropic names it; the others say a plain stop).
    StopSequence(String),
    ToolCalls,
}

/// Token counts in the protocol-neutral sense: `input` excludes cached tokens (as Anthropic
/// reports); each protocol renders them its own way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MockUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// Every error the behavioral mock can be asked for, rendered in each protocol's own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCase {
    /// 400, a malformed request.
    BadRequest,
    /// A wrong API key (Gemini answers 400 `API_KEY_INVALID`, the others 401).
    InvalidKey,
    /// No API key at all.
    MissingKey,
    /// 403.
    Forbidden,
    /// 404, unknown model.
    ModelNotFound,
    /// 429 with `retry-after: 1`.
    RateLimited,
    /// 500.
    Internal,
    /// Out of capacity: Anthropic 529 `overloaded_error`, OpenAI and Gemini 503.
    Overloaded,
    /// 503 service unavailable.
    Unavailable,
    /// The prompt does not fit the context window, in the provider's wording.
    ContextTooLong,
}

pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Splits text into small deltas: one word (with the space after it) each.
pub fn text_deltas(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            out.push(&text[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Splits JSON text into `n` fragments at character boundaries (so a client must reassemble).
pub fn fragments(text: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let len = text.len();
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..=n {
        let mut end = if k == n { len } else { len * k / n };
        while end < len && !text.is_char_boundary(end) {
            end += 1;
        }
        if end > start {
            out.push(&text[start..end]);
            start = end;
        }
    }
    out
}

/// Arguments a deterministic model fills in from a JSON schema: every required property (all
/// properties when none is marked required), strings `"Paris"`, numbers `1`, booleans `true`.
pub fn arguments_from_schema(schema: &Value) -> Value {
    let mut out = Map::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Value::Object(out);
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, prop) in props {
        if required.is_empty() || required.contains(&name.as_str()) {
            out.insert(name.clone(), example_value(prop));
        }
    }
    Value::Object(out)
}

fn example_value(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // `["string", "null"]`: the first non-null type.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ => "string",
    };
    match ty.to_ascii_lowercase().as_str() {
        "number" | "integer" => Value::from(1),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "object" => arguments_from_schema(schema),
        "null" => Value::Null,
        _ => Value::from("Paris"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_fragments_rebuild_the_text() {
        let t = "You said: héllo wide world";
        assert_eq!(text_deltas(t).concat(), t);
        assert!(text_deltas(t).len() > 3);
        let j = r#"{"city":"Paris","n":1}"#;
        for n in 1..8 {
            assert_eq!(fragments(j, n).concat(), j);
        }
        assert_eq!(fragments("é", 3).concat(), "é");
    }

    #[test]
    fn arguments_follow_the_schema() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "unit": {"type": "string", "enum": ["c", "f"]}
            },
            "required": ["city", "days", "metric"]
        });
        assert_eq!(
            arguments_from_schema(&schema),
            serde_json::json!({"city": "Paris", "days": 1, "metric": true})
        );
    }
}
