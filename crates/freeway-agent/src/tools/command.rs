//! Tools declared in `[[tools]]`: a command template run in the sandbox, its `{argument}`
//! placeholders replaced by the call's arguments, shell-quoted.

use freeway_config::{ToolConfig, ToolKindConfig};
use freeway_sandbox::ExecRequest;
use freeway_types::ToolDefinition;
use serde_json::Value;

use crate::tool::{Tool, ToolContext, ToolError, ToolKind};

pub struct CommandTool {
    config: ToolConfig,
}

impl CommandTool {
    pub fn new(config: ToolConfig) -> Self {
        CommandTool { config }
    }

    /// The command line for `args`: each `{name}` becomes the argument, shell-quoted (an
    /// absent optional argument becomes nothing, an array its items, each quoted).
    pub fn command_line(&self, args: &Value) -> Result<String, ToolError> {
        let empty = serde_json::Map::new();
        let args = match args {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => return Err(ToolError::new("the arguments must be a JSON object")),
        };
        let required: Vec<&str> = self
            .config
            .parameters
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(missing) = required.iter().find(|r| !args.contains_key(**r)) {
            return Err(ToolError(format!(
                "`{missing}` is required by {}",
                self.config.name
            )));
        }
        let properties = self
            .config
            .parameters
            .get("properties")
            .and_then(Value::as_object);
        if let Some(unknown) = args
            .keys()
            .find(|k| !properties.is_some_and(|p| p.contains_key(*k)))
        {
            return Err(ToolError(format!(
                "{} takes no argument `{unknown}`",
                self.config.name
            )));
        }
        let template = &self.config.command;
        let mut out = String::with_capacity(template.len());
        let mut rest = template.as_str();
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            // The configuration checked the template: every `{` closes on a known name.
            let end = tail.find('}').unwrap_or(tail.len() - 1);
            let name = &tail[1..end];
            out.push_str(&quote_value(args.get(name)));
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn quote_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => quote(s),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| quote_value(Some(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => quote(&other.to_string()),
    }
}

/// POSIX shell single-quoting: the value is one word, whatever it holds.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[async_trait::async_trait]
impl Tool for CommandTool {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: self.config.name.clone(),
            description: Some(self.config.description.clone()),
            parameters: self.config.parameters.clone(),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        match self.config.kind {
            ToolKindConfig::Read => ToolKind::Read,
            ToolKindConfig::Edit => ToolKind::Edit,
            ToolKindConfig::Execute => ToolKind::Execute,
        }
    }

    fn source(&self) -> &'static str {
        "config"
    }

    fn version(&self) -> Option<&str> {
        self.config.version.as_deref()
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let line = self.command_line(&args)?;
        let mut request = ExecRequest::shell(&line);
        if let Some(ms) = self.config.timeout_ms {
            request = request.with_timeout_ms(ms);
        }
        super::exec::run(ctx, request, &self.config.name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(command: &str) -> CommandTool {
        CommandTool::new(ToolConfig {
            name: "t".into(),
            description: "d".into(),
            version: Some("2".into()),
            command: command.into(),
            parameters: json!({
                "type": "object",
                "properties": {"filter": {"type": "string"}, "files": {"type": "array"}, "n": {"type": "integer"}},
                "required": ["n"]
            }),
            kind: ToolKindConfig::Read,
            timeout_ms: None,
        })
    }

    #[test]
    fn arguments_are_quoted_into_the_template() {
        let t = tool("grep -c {filter} {files} | head -n {n} {{literal}}");
        let line = t
            .command_line(&json!({"filter": "it's; rm -rf /", "files": ["a b", "c"], "n": 3}))
            .ok();
        assert_eq!(
            line.as_deref(),
            Some(r"grep -c 'it'\''s; rm -rf /' 'a b' 'c' | head -n '3' {literal}")
        );
        assert_eq!(
            t.command_line(&json!({"n": 1})).ok().as_deref(),
            Some("grep -c   | head -n '1' {literal}")
        );
    }

    #[test]
    fn missing_and_unknown_arguments_are_explained() {
        let t = tool("echo {n}");
        assert!(
            t.command_line(&json!({}))
                .is_err_and(|e| e.0.contains("`n` is required"))
        );
        assert!(
            t.command_line(&json!({"n": 1, "x": 2}))
                .is_err_and(|e| e.0.contains("no argument `x`"))
        );
    }
}
