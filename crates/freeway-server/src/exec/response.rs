//! The `POST /v1/exec` response body.

use freeway_sandbox::{Category, Diagnosis, LimitHit, ModelAnalysis};
use serde::Serialize;

use super::Outcome;

/// `{category, evidence, suggestions, confidence}`.
#[derive(Serialize)]
struct WireDiagnosis<'a> {
    category: Category,
    evidence: &'a [String],
    suggestions: &'a [String],
    confidence: f64,
}

/// `{summary, category, root_cause, confidence, suggested_commands}`.
#[derive(Serialize)]
struct WireAnalysis<'a> {
    summary: &'a str,
    category: &'a str,
    root_cause: &'a str,
    confidence: f64,
    suggested_commands: &'a [String],
}

/// A confidence as a short decimal (0.9, not 0.8999999761581421).
fn confidence(c: f32) -> f64 {
    (f64::from(c) * 1000.0).round() / 1000.0
}

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
    diagnosis: Option<WireDiagnosis<'a>>,
    /// `{summary, category, root_cause, confidence, suggested_commands}`; null when not wanted
    /// or not available.
    analysis: Option<WireAnalysis<'a>>,
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

/// The response body of one run, fields in the contract's order.
pub fn response_body(outcome: &Outcome) -> impl Serialize + '_ {
    let r = &outcome.result;
    let (analysis, analysis_error, analysis_model) = match &outcome.analysis {
        None => (None, None, None),
        Some(Ok(a)) => (Some(analysis(&a.analysis)), None, Some(a.model.as_str())),
        Some(Err(e)) => {
            let model = match e {
                super::AnalysisError::NoModel => None,
                super::AnalysisError::Model { model, .. }
                | super::AnalysisError::Unavailable { model, .. }
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
    WireExecResponse {
        exit_code: r.exit_code,
        signal: r.signal,
        stdout: &r.stdout,
        stderr: &r.stderr,
        duration_ms: r.duration_ms,
        timed_out: r.timed_out,
        truncated: r.truncated,
        max_rss_kb: r.max_rss_kb,
        cpu_ms: r.cpu_ms,
        diagnosis: r.diagnosis.as_ref().map(diagnosis),
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
            LimitHit::Memory => "memory",
        }),
    }
}

fn diagnosis(d: &Diagnosis) -> WireDiagnosis<'_> {
    WireDiagnosis {
        category: d.category,
        evidence: &d.evidence,
        suggestions: &d.suggestions,
        confidence: confidence(d.confidence),
    }
}

fn analysis(a: &ModelAnalysis) -> WireAnalysis<'_> {
    WireAnalysis {
        summary: &a.summary,
        category: &a.category,
        root_cause: &a.root_cause,
        confidence: confidence(a.confidence),
        suggested_commands: &a.suggested_commands,
    }
}
