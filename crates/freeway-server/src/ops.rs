//! What operators look at: `GET /admin/routes` (routes, every target's circuit, load and
//! latency, the cache) and `GET /metrics` (the same, in the Prometheus text format).
//!
//! Both need the master key when one is set: target names and load say more about a
//! deployment than a stranger should learn.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use freeway_gateway::{CircuitState, Gateway, RouteSnapshot};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::http::authorize;

/// The master key, or an admin key.
async fn operator(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    crate::admin::require_operator(&authorize(state, headers).await?)
}

/// `GET /readyz`: ready when the store answers (if there is one) and some provider can
/// take a request: one is configured, and not every target it was tried on has its circuit
/// open. A 503 says which of the two is missing.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let store = match &state.tenancy {
        Some(t) => match t.store.ping().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the store does not answer");
                "unreachable"
            }
        },
        None => "none",
    };
    let providers = state.gateway.provider_names().count();
    let targets = state.gateway.target_health();
    let open = targets
        .iter()
        .filter(|t| t.circuit == CircuitState::Open)
        .count();
    let usable = providers > 0 && (targets.is_empty() || open < targets.len());
    let ready = store != "unreachable" && usable;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "store": store,
        "providers": providers,
        "open_circuits": open,
        "targets": targets.len(),
    });
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /admin/routes`.
pub async fn routes(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&state, &headers).await {
        return e.openai();
    }
    axum::Json(routes_document(&state.gateway)).into_response()
}

/// The JSON that `/admin/routes` serves and `freeway routes` prints.
pub fn routes_document(gateway: &Gateway) -> Value {
    let routes: Vec<Value> = gateway.routes().iter().map(route_json).collect();
    let targets: Vec<Value> = gateway
        .target_health()
        .into_iter()
        .map(|t| {
            json!({
                "target": t.target,
                "circuit": t.circuit.as_str(),
                "consecutive_failures": t.consecutive_failures,
                "window_successes": t.window_successes,
                "window_failures": t.window_failures,
                "in_flight": t.in_flight,
                "latency_ms": t.latency.map(|d| d.as_secs_f64() * 1e3),
                "open_for_ms": t.open_for.map(|d| d.as_millis()),
            })
        })
        .collect();
    let cache = gateway.cache_stats().map(|c| {
        json!({
            "backend": c.backend,
            "hits": c.hits,
            "misses": c.misses,
            "stores": c.stores,
            "errors": c.errors,
        })
    });
    json!({ "routes": routes, "targets": targets, "cache": cache })
}

/// One route as `/admin/routes` lists it.
pub fn route_json(r: &RouteSnapshot) -> Value {
    let mut route = json!({
        "name": r.name,
        "strategy": r.strategy.as_str(),
        "targets": r.targets,
    });
    if !r.weights.is_empty() {
        route["weights"] = json!(r.weights);
    }
    if !r.tiers.is_empty() {
        route["tiers"] = r
            .tiers
            .iter()
            .map(|t| json!({ "name": t.name, "targets": t.targets, "max_score": t.max_score }))
            .collect();
    }
    route
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&state, &headers).await {
        return e.openai();
    }
    let mut response = render_metrics(&state).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn render_metrics(state: &AppState) -> String {
    let gateway = &state.gateway;
    let targets = gateway.target_health();
    let mut out = String::with_capacity(256 + targets.len() * 256);
    family(
        &mut out,
        "freeway_circuit_state",
        "gauge",
        "Circuit breaker of each target: 0 closed, 1 half-open, 2 open.",
    );
    for t in &targets {
        let state = match t.circuit {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        };
        sample(&mut out, "freeway_circuit_state", &t.target, state);
    }
    family(
        &mut out,
        "freeway_target_consecutive_failures",
        "gauge",
        "Retryable failures of each target since its last success.",
    );
    for t in &targets {
        sample(
            &mut out,
            "freeway_target_consecutive_failures",
            &t.target,
            t.consecutive_failures,
        );
    }
    family(
        &mut out,
        "freeway_target_in_flight",
        "gauge",
        "Requests each target is serving now, streams included.",
    );
    for t in &targets {
        sample(&mut out, "freeway_target_in_flight", &t.target, t.in_flight);
    }
    family(
        &mut out,
        "freeway_target_latency_seconds",
        "gauge",
        "Decaying average time of each target to its answer or first streamed event.",
    );
    for t in &targets {
        if let Some(latency) = t.latency {
            sample(
                &mut out,
                "freeway_target_latency_seconds",
                &t.target,
                latency.as_secs_f64(),
            );
        }
    }
    if let Some(c) = gateway.cache_stats() {
        family(
            &mut out,
            "freeway_cache_lookups_total",
            "counter",
            "Response cache lookups by result.",
        );
        let _ = writeln!(
            out,
            "freeway_cache_lookups_total{{result=\"hit\"}} {}",
            c.hits
        );
        let _ = writeln!(
            out,
            "freeway_cache_lookups_total{{result=\"miss\"}} {}",
            c.misses
        );
        counter(
            &mut out,
            "freeway_cache_stores_total",
            "Answers written to the response cache.",
            c.stores,
        );
        counter(
            &mut out,
            "freeway_cache_errors_total",
            "Response cache backend failures (each served as a miss).",
            c.errors,
        );
    }
    if let Some(tenancy) = &state.tenancy {
        let stats = &tenancy.ledger.stats;
        counter(
            &mut out,
            "freeway_ledger_writes_total",
            "Transactions the usage ledger writer committed, each a batch of rows.",
            stats.writes.load(Ordering::Relaxed),
        );
        family(
            &mut out,
            "freeway_ledger_rows_total",
            "counter",
            "Usage rows by result: written, or dropped after five failed attempts.",
        );
        let _ = writeln!(
            out,
            "freeway_ledger_rows_total{{result=\"written\"}} {}\nfreeway_ledger_rows_total{{result=\"dropped\"}} {}",
            stats.rows_written.load(Ordering::Relaxed),
            stats.rows_dropped.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "freeway_ledger_overflow_rows_total",
            "Usage rows handed to the normal-priority writer because the background one was too far behind (the machine is saturated).",
            stats.rows_overflowed.load(Ordering::Relaxed),
        );
    }
    gateway.metrics().render(&mut out);
    out
}

/// A counter family with one unlabelled sample.
fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, target: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{name}{{target=\"");
    // The exposition format escapes backslash, double quote and newline in label values.
    for c in target.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    let _ = writeln!(out, "\"}} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", "a\"b\\c\nd", 1);
        assert_eq!(out, "m{target=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
