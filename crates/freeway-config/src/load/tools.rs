//! `[[tools]]`: command-line tools declared in the file.

use std::collections::HashSet;

use crate::raw::{RawTool, S};
use crate::runtime::{ToolConfig, ToolKindConfig};

use super::Cx;

/// Names the built-in tools take; a configured tool may not shadow one.
pub const BUILTIN_TOOLS: &[&str] = &[
    "read_file",
    "write_file",
    "edit_file",
    "list",
    "glob",
    "grep",
    "bash",
    "run_code",
];

/// The `{name}` placeholders of a command template (`{{` and `}}` are literal braces).
pub fn placeholders(command: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = command.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
            }
            '{' => {
                let rest = &command[i + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "`{{` at byte {i} is never closed; write `{{{{` for a literal brace"
                    ));
                };
                let name = &rest[..end];
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "`{{{name}}}` is not a placeholder: use `{{argument_name}}`"
                    ));
                }
                out.push(name.to_owned());
                for _ in 0..=end {
                    chars.next();
                }
            }
            '}' => {
                return Err(format!(
                    "`}}` at byte {i} closes nothing; write `}}}}` for a literal brace"
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A tool or server name: letters, digits, `_` and `-` (models call tools by these names).
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Cx<'_> {
    /// `kind = "read" | "edit" | "execute"` (default execute); `None` after reporting another.
    pub(super) fn tool_kind(
        &mut self,
        kind: Option<&S<String>>,
        key: String,
    ) -> Option<ToolKindConfig> {
        match kind.map(|k| (k.get_ref().as_str(), k.span())) {
            None | Some(("execute", _)) => Some(ToolKindConfig::Execute),
            Some(("read", _)) => Some(ToolKindConfig::Read),
            Some(("edit", _)) => Some(ToolKindConfig::Edit),
            Some((other, span)) => {
                self.error(
                    span,
                    key,
                    format!("unknown kind `{other}`; expected read, edit or execute"),
                );
                None
            }
        }
    }

    pub(super) fn tools(&mut self, tools: &[RawTool]) -> Vec<ToolConfig> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        for t in tools {
            let name = t.name.get_ref().clone();
            let key = |field: &str| format!("tools.{name}.{field}");
            if !is_name(&name) {
                self.error(
                    t.name.span(),
                    key("name"),
                    "a tool name is letters, digits, `_` and `-` (models call it by this name)",
                );
                continue;
            }
            if BUILTIN_TOOLS.contains(&name.as_str()) {
                self.error(
                    t.name.span(),
                    key("name"),
                    format!("`{name}` is a built-in tool; give this one another name"),
                );
                continue;
            }
            if !names.insert(name.clone()) {
                self.error(
                    t.name.span(),
                    key("name"),
                    format!("a tool named `{name}` is already defined"),
                );
                continue;
            }
            let Some(kind) = self.tool_kind(t.kind.as_ref(), key("kind")) else {
                continue;
            };
            let parameters = match &t.parameters {
                Some(p) => match serde_json::to_value(p.get_ref()) {
                    Ok(v) => v,
                    Err(e) => {
                        self.error(
                            p.span(),
                            key("parameters"),
                            format!("not a JSON schema: {e}"),
                        );
                        continue;
                    }
                },
                None => serde_json::json!({"type": "object", "properties": {}}),
            };
            let properties = parameters
                .get("properties")
                .and_then(serde_json::Value::as_object);
            match placeholders(t.command.get_ref()) {
                Err(message) => {
                    self.error(t.command.span(), key("command"), message);
                    continue;
                }
                Ok(used) => {
                    if let Some(missing) = used
                        .iter()
                        .find(|p| !properties.is_some_and(|props| props.contains_key(*p)))
                    {
                        self.error(
                            t.command.span(),
                            key("command"),
                            format!("`{{{missing}}}` is not a property of `parameters`; declare it there"),
                        );
                        continue;
                    }
                }
            }
            out.push(ToolConfig {
                name,
                description: t.description.get_ref().clone(),
                version: t.version.as_ref().map(|v| v.get_ref().clone()),
                command: t.command.get_ref().clone(),
                parameters,
                kind,
                timeout_ms: t.timeout_ms.as_ref().map(|v| *v.get_ref()),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_are_found_and_braces_escape() {
        assert_eq!(
            placeholders("cargo test {filter} -- {{x}}").ok(),
            Some(vec!["filter".to_owned()])
        );
        assert!(placeholders("echo {").is_err());
        assert!(placeholders("echo }").is_err());
        assert!(placeholders("echo {a b}").is_err());
    }
}
