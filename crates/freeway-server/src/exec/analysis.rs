//! The model analysis of a failed run: the sandbox's [`analysis_prompt`] sent through the
//! gateway with a JSON schema, the answer parsed and checked into a [`ModelAnalysis`]. Nothing
//! is ever made up: when no model answers properly the caller gets the reason instead.

use std::time::Duration;

use freeway_gateway::{Gateway, GatewayError};
use freeway_sandbox::{ExecRequest, ExecResult, ModelAnalysis, Redactor, analysis_prompt};
use freeway_types::{ChatRequest, Message, ResponseFormat};
use serde_json::json;

const SYSTEM: &str = "You diagnose failed commands run in a sandbox on a developer's machine. \
Be concrete: name the missing package, file, permission or flag. Suggested commands must be \
runnable shell commands that fix the cause, most likely fix first. Answer with one JSON object \
and nothing else.";

/// Most suggested commands kept from an answer.
const MAX_COMMANDS: usize = 8;

/// Why there is no analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// No analysis model is configured (`[sandbox] analysis_model`, or `default_model`).
    #[error("no analysis model is configured: set [sandbox] analysis_model or default_model")]
    NoModel,
    /// The model exists in the configuration but cannot be reached from here (e.g. the
    /// gateway could not be built).
    #[error("the analysis model `{model}` is unavailable: {reason}")]
    Unavailable { model: String, reason: String },
    /// The model (or every target of its route) failed.
    #[error("the analysis model `{model}` failed: {source}")]
    Model {
        model: String,
        #[source]
        source: GatewayError,
    },
    /// The model did not answer in time.
    #[error("the analysis model `{model}` did not answer within {}s", timeout.as_secs_f64())]
    Timeout { model: String, timeout: Duration },
    /// The model answered something that is not the analysis JSON.
    #[error("the analysis model `{model}` gave an invalid answer: {detail}")]
    InvalidAnswer { model: String, detail: String },
}

impl AnalysisError {
    /// Low-cardinality label, also the `analysis_error.code` of the response.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoModel => "no_analysis_model",
            Self::Unavailable { .. } => "analysis_model_unavailable",
            Self::Model { .. } => "analysis_model_failed",
            Self::Timeout { .. } => "analysis_timeout",
            Self::InvalidAnswer { .. } => "analysis_invalid_answer",
        }
    }
}

/// An analysis and the `provider/model` that wrote it.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub analysis: ModelAnalysis,
    pub model: String,
}

/// The JSON schema the model is asked to follow (`response_format`).
pub fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["summary", "category", "root_cause", "confidence", "suggested_commands"],
        "properties": {
            "summary": { "type": "string", "description": "one sentence" },
            "category": {
                "type": "string",
                "description": "command_not_found, permission_denied, missing_module, missing_file, syntax_error, compile_error, port_in_use, network_unreachable, out_of_memory, timeout, disk_full, or another short word"
            },
            "root_cause": { "type": "string" },
            "confidence": { "type": "number", "description": "0 to 1" },
            "suggested_commands": { "type": "array", "items": { "type": "string" } }
        }
    })
}

/// Asks `model` (an id or route alias) to analyze a failed run.
pub async fn analyze(
    gateway: &Gateway,
    model: Option<&str>,
    timeout: Duration,
    request: &ExecRequest,
    result: &ExecResult,
    redactor: &Redactor,
) -> Result<Analysis, AnalysisError> {
    let model = model.ok_or(AnalysisError::NoModel)?;
    let chat = ChatRequest {
        messages: vec![
            Message::system(SYSTEM),
            Message::user(analysis_prompt(request, result)),
        ],
        response_format: Some(ResponseFormat::JsonSchema {
            name: "exec_analysis".into(),
            schema: schema(),
            strict: Some(true),
        }),
        temperature: Some(0.0),
        max_tokens: Some(1024),
        ..ChatRequest::default()
    };
    let served = match tokio::time::timeout(timeout, gateway.complete(model, chat)).await {
        Err(_) => {
            return Err(AnalysisError::Timeout {
                model: model.to_owned(),
                timeout,
            });
        }
        Ok(Err(source)) => {
            return Err(AnalysisError::Model {
                model: model.to_owned(),
                source,
            });
        }
        Ok(Ok(served)) => served,
    };
    let analysis =
        parse(&served.value.text(), redactor).map_err(|detail| AnalysisError::InvalidAnswer {
            model: served.target.clone(),
            detail,
        })?;
    Ok(Analysis {
        analysis,
        model: served.target,
    })
}

/// Parses and checks the model's answer; outputs went in redacted, and what comes back is
/// redacted again in case the model reconstructed a secret.
pub fn parse(text: &str, redactor: &Redactor) -> Result<ModelAnalysis, String> {
    let trimmed = text.trim();
    // Models without constrained decoding like to wrap JSON in a fence or a sentence.
    let json = match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(start), Some(end)) if start < end => &trimmed[start..=end],
        _ => {
            return Err(format!(
                "no JSON object in the answer: {}",
                preview(trimmed)
            ));
        }
    };
    let mut a: ModelAnalysis =
        serde_json::from_str(json).map_err(|e| format!("{e} in the answer: {}", preview(json)))?;
    if a.summary.trim().is_empty() {
        return Err("`summary` is empty".into());
    }
    if a.root_cause.trim().is_empty() {
        return Err("`root_cause` is empty".into());
    }
    if !(a.confidence.is_finite() && (0.0..=1.0).contains(&a.confidence)) {
        return Err(format!(
            "`confidence` {} is not between 0 and 1",
            a.confidence
        ));
    }
    a.category = a
        .category
        .trim()
        .to_ascii_lowercase()
        .replace([' ', '-'], "_");
    if a.category.is_empty() {
        a.category = "unknown".into();
    }
    a.suggested_commands.retain(|c| !c.trim().is_empty());
    a.suggested_commands.truncate(MAX_COMMANDS);
    a.summary = redactor.redact(a.summary.trim());
    a.root_cause = redactor.redact(a.root_cause.trim());
    for c in &mut a.suggested_commands {
        *c = redactor.redact(c.trim());
    }
    Ok(a)
}

fn preview(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&["hunter22"]).unwrap()
    }

    #[test]
    fn fenced_answers_parse_and_are_normalized() {
        let text = "```json\n{\"summary\": \"s\", \"category\": \"Missing Module\", \"root_cause\": \"pw hunter22\", \"confidence\": 0.9, \"suggested_commands\": [\"pip install x\", \" \"]}\n```";
        let a = parse(text, &redactor()).unwrap();
        assert_eq!(a.category, "missing_module");
        assert_eq!(a.suggested_commands, ["pip install x"]);
        assert!(!a.root_cause.contains("hunter22"));
    }

    #[test]
    fn invalid_answers_are_refused_with_a_reason() {
        let r = redactor();
        assert!(
            parse("I think pip.", &r)
                .unwrap_err()
                .contains("no JSON object")
        );
        assert!(
            parse("{\"summary\": \"s\"}", &r)
                .unwrap_err()
                .contains("missing field")
        );
        let out_of_range = "{\"summary\": \"s\", \"category\": \"c\", \"root_cause\": \"r\", \"confidence\": 85, \"suggested_commands\": []}";
        assert!(
            parse(out_of_range, &r)
                .unwrap_err()
                .contains("between 0 and 1")
        );
    }
}
