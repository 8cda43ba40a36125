//! The `POST /v1/exec` response body.

use freeway_sandbox::{Diagnosis, LimitHit, ModelAnalysis};
use serde::Serialize;

use super::Outcome;

#[derive(Serialize)]
struct WireAnalysisError<'a> {
    code: &'static str,
    message: String,
    /// The model that was asked, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

/// Field order is the contract's: the process facts, the diagnosis, the analysis, then the
/// sandbox facts.
#[derive(Serialize)]
struct WireExecResponse<'a> {
    exit_code: Option<i32>,
    signal: Option<i32>,
    stdout: &'a str,
    stderr: &'a str,
    duration_ms: u64,
    timed_out: bool,
    truncated: bool,
    max_rss_kb: u64,
    cpu_ms: u64,
    /// `{category, evidence, suggestions, confidence}`; null on success.
    diagnosis: Option<&'a Diagnosis>,
    /// `{summary, category, root_cause, confidence, suggested_commands}`; null when not wanted
    /// or not available.
    analysis: Option<&'a ModelAnalysis>,
    /// Why `analysis` is null although it was wanted; null otherwise.
    analysis_error: Option<WireAnalysisError<'a>>,
    /// The `provider/model` that wrote `analysis`.
    analysis_model: Option<&'a str>,
    isolation: &'static str,
    network_denied: bool,
    /// Mechanisms skipped because the kernel lacks them and `on_missing = "degrade"`.
    degraded: &'a [String],
    /// `cpu`, `file_size` or `processes` when a resource limit stopped the run.
    limit_hit: Option<&'static str>,
}

/// The response body of one run.
pub fn response_body(outcome: &Outcome) -> serde_json::Value {
    let r = &outcome.result;
    let (analysis, analysis_error, analysis_model) = match &outcome.analysis {
        None => (None, None, None),
        Some(Ok(a)) => (Some(&a.analysis), None, Some(a.model.as_str())),
        Some(Err(e)) => {
            let model = match e {
                super::AnalysisError::NoModel => None,
                super::AnalysisError::Model { model, .. }
                | super::AnalysisError::Timeout { model, .. }
                | super::AnalysisError::InvalidAnswer { model, .. } => Some(model.as_str()),
            };
            (
                None,
                Some(WireAnalysisError {
                    code: e.code(),
                    message: e.to_string(),
                    model,
                }),
                None,
            )
        }
    };
    let wire = WireExecResponse {
        exit_code: r.exit_code,
        signal: r.signal,
        stdout: &r.stdout,
        stderr: &r.stderr,
        duration_ms: r.duration_ms,
        timed_out: r.timed_out,
        truncated: r.truncated,
        max_rss_kb: r.max_rss_kb,
        cpu_ms: r.cpu_ms,
        diagnosis: r.diagnosis.as_ref(),
        analysis,
        analysis_error,
        analysis_model,
        isolation: r.isolation.as_str(),
        network_denied: r.network_denied,
        degraded: &r.degraded,
        limit_hit: r.limit_hit.map(|l| match l {
            LimitHit::Cpu => "cpu",
            LimitHit::FileSize => "file_size",
            LimitHit::Processes => "processes",
        }),
    };
    serde_json::to_value(&wire).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}
