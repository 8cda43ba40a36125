//! What every request leaves behind: its duration in `http_server_request_duration_seconds`,
//! an open stream in `freeway_active_streams`, an `x-request-id`, and one access log line.
//!
//! A response is over when its body is: the middleware wraps the body, so a stream counts
//! to its last byte (or until the client goes away), not to its first. The log line names
//! the method, the route template (never the raw path, which may carry ids), status, time
//! and request id; never a header, a key or message content.
//!
//! When traces are exported, each request is also a server span (joining the client's
//! `traceparent`), ended with the body like the metrics, and its trace id is returned in
//! `traceresponse` and `x-trace-id`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use freeway_types::Metrics;
use freeway_types::metrics::Gauge;
use http_body::{Frame, SizeHint};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::AppState;

/// Access logging: every request, or one in `every` of the successful ones (errors are
/// always logged).
#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    pub enabled: bool,
    pub every: u64,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            enabled: true,
            every: 1,
        }
    }
}

pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The template (`/v1/responses/{id}`), bounded; an unrouted path is one label.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let span = server_span(&request, route.as_ref());
    let mut response = next.run(request).instrument(span.clone()).await;
    let trace_id = trace_headers(&span, &mut response);
    let request_id = match response.headers().get("x-request-id") {
        Some(id) => id.to_str().unwrap_or_default().to_owned(),
        None => {
            let id = freeway_types::random_id("req_");
            if let Ok(v) = HeaderValue::from_str(&id) {
                response
                    .headers_mut()
                    .insert(crate::http::names::X_REQUEST_ID, v);
            }
            id
        }
    };
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let metrics = state.gateway.metrics().clone();
    let stream = streaming.then(|| {
        let gauge = metrics.active_streams.with(&[route_label(route.as_ref())]);
        gauge.add(1);
        gauge
    });
    if !span.is_disabled() {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        span.record("freeway.request_id", request_id.as_str());
        // The HTTP conventions: a server span fails on a 5xx, not on the client's 4xx.
        if status.is_server_error() {
            span.record("error.type", status.as_str());
        }
    }
    let done = Done {
        _span: span,
        trace_id,
        metrics,
        log: state.access_log,
        method,
        route,
        status: response.status(),
        request_id,
        started,
        stream,
    };
    response.map(|body| {
        Body::new(Observed {
            inner: body,
            _done: done,
        })
    })
}

/// Counted and logged when the body is dropped: sent whole, or abandoned by the client.
struct Done {
    /// The request's server span, which ends with the body.
    _span: Span,
    /// Named in the log line, to find the trace from it.
    trace_id: Option<freeway_telemetry::TraceId>,
    metrics: Arc<Metrics>,
    log: AccessLog,
    method: Method,
    route: Option<MatchedPath>,
    status: StatusCode,
    request_id: String,
    started: Instant,
    stream: Option<Arc<Gauge>>,
}

impl Drop for Done {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        let route = route_label(self.route.as_ref());
        self.metrics
            .http_requests
            .with(&[self.method.as_str(), route, self.status.as_str()])
            .observe_duration(took);
        if let Some(gauge) = &self.stream {
            gauge.add(-1);
        }
        if !self.log.enabled {
            return;
        }
        let sampled = self.status.as_u16() >= 400
            || self.log.every <= 1
            || fastrand::u64(..self.log.every) == 0;
        if sampled {
            tracing::info!(
                target: "freeway::access",
                method = %self.method,
                route,
                status = self.status.as_u16(),
                duration_ms = took.as_secs_f64() * 1e3,
                request_id = %self.request_id,
                trace_id = self.trace_id.map(tracing::field::display),
                "request"
            );
        }
    }
}

/// The server span of a request, `POST /v1/chat/completions`, child of the client's
/// `traceparent` when it sent one.
fn server_span(request: &Request, route: Option<&MatchedPath>) -> Span {
    let method = request.method();
    let route = route_label(route);
    // Probes and scrapes come every few seconds and say nothing a trace would need.
    if matches!(route, "/healthz" | "/readyz" | "/metrics") {
        return Span::none();
    }
    tracing::info_span!(target: freeway_telemetry::TARGET, "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        traceparent = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
        http.request.method = %method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        freeway.request_id = Empty,
        "error.type" = Empty,
    )
}

/// `traceresponse` (W3C Trace Context level 2) and `x-trace-id`, for a traced request: the
/// ids a user quotes to find the request in their tracing backend.
fn trace_headers(span: &Span, response: &mut Response) -> Option<freeway_telemetry::TraceId> {
    if span.is_disabled() {
        return None;
    }
    let context = span.in_scope(freeway_telemetry::current)?;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&context.traceparent()) {
        headers.insert(crate::http::names::TRACERESPONSE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&context.trace_id.to_string()) {
        headers.insert(crate::http::names::X_TRACE_ID, v);
    }
    Some(context.trace_id)
}

fn route_label(route: Option<&MatchedPath>) -> &str {
    route.map_or("unmatched", MatchedPath::as_str)
}

/// A body that carries [`Done`] until it is dropped.
struct Observed {
    inner: Body,
    _done: Done,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
