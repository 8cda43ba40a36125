//! What happens around a provider call besides the call: its duration, first token,
//! tokens and cost counted in the metrics, and the stream handed to a client (in flight
//! until dropped, its failures reported to the breaker, ended at the deadline).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use freeway_config::BreakerSettings;
use freeway_types::metrics::Histogram;
use freeway_types::{
    ChatResponse, ChatStream, EmbeddingResponse, Metrics, ProviderError, StreamEvent, TimeoutPhase,
    Usage,
};
use futures_util::Stream;
use tracing::Span;
use tracing::field::Empty;

use crate::health::{InFlight, TargetHealth};
use crate::pricing::PriceTable;
use crate::registry::{Gateway, Target};

impl Gateway {
    /// Counts an answer's tokens and cost against the target that gave it.
    pub(crate) fn count_usage(&self, target: &Target, usage: &Usage) {
        count_usage(&self.metrics, self.prices.as_deref(), target, usage);
    }
}

fn count_usage(metrics: &Metrics, prices: Option<&PriceTable>, target: &Target, usage: &Usage) {
    let system = target.provider.system();
    for (kind, tokens) in [
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
    ] {
        if tokens > 0 || kind == "input" {
            metrics
                .token_usage
                .with(&[system, &target.model, &target.id, kind])
                .observe(tokens as f64);
        }
    }
    if let Some(cost) = prices.and_then(|p| p.cost_of(&target.id, usage)) {
        metrics.cost.with(&[&target.id]).add(cost.usd());
    }
}

/// What a provider call is, for `gen_ai.operation.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Chat,
    Stream,
    Embeddings,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Chat | Operation::Stream => "chat",
            Operation::Embeddings => "embeddings",
        }
    }
}

/// The `gen_ai_client_operation_duration_seconds` series of one call.
pub(crate) fn operation(
    metrics: &Metrics,
    op: Operation,
    target: &Target,
    error: &str,
) -> Arc<Histogram> {
    metrics.operation_duration.with(&[
        op.name(),
        target.provider.system(),
        &target.model,
        &target.id,
        error,
    ])
}

/// The client span of one provider call (each retry its own), named and attributed after
/// the GenAI semantic conventions: `chat gpt-4.1`.
pub(crate) fn call_span(op: Operation, target: &Target, retry: u32) -> Span {
    let name = op.name();
    tracing::info_span!(target: freeway_telemetry::TARGET, "call",
        otel.name = %format!("{name} {}", target.model),
        otel.kind = "client",
        gen_ai.operation.name = name,
        gen_ai.provider.name = target.provider.system(),
        gen_ai.request.model = %target.model,
        freeway.target = %target.id,
        freeway.retry = retry,
        gen_ai.response.id = Empty,
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        "error.type" = Empty,
    )
}

/// What a complete answer tells its call's span.
pub(crate) fn record_answer(span: &Span, answer: &ChatResponse) {
    if span.is_disabled() {
        return;
    }
    if !answer.id.is_empty() {
        span.record("gen_ai.response.id", answer.id.as_str());
    }
    if !answer.model.is_empty() {
        span.record("gen_ai.response.model", answer.model.as_str());
    }
    span.record(
        "gen_ai.response.finish_reasons",
        answer.finish_reason.as_str(),
    );
    record_usage(span, &answer.usage);
}

/// What an embeddings answer tells its call's span: the model and the input tokens (an
/// embedding has no output tokens).
pub(crate) fn record_embeddings(span: &Span, answer: &EmbeddingResponse) {
    if span.is_disabled() {
        return;
    }
    if !answer.model.is_empty() {
        span.record("gen_ai.response.model", answer.model.as_str());
    }
    span.record("gen_ai.usage.input_tokens", answer.usage.input_tokens);
}

fn record_usage(span: &Span, usage: &Usage) {
    span.record("gen_ai.usage.input_tokens", usage.input_tokens);
    span.record("gen_ai.usage.output_tokens", usage.output_tokens);
}

/// A stream's call, counted when the stream is dropped: its whole duration, how it ended,
/// and the usage it reported.
pub(crate) struct StreamMeter {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) prices: Option<Arc<PriceTable>>,
    pub(crate) target: Target,
    pub(crate) started: Instant,
    pub(crate) usage: Option<Usage>,
    pub(crate) error: Option<&'static str>,
    /// The provider said how the answer ended (a client may stop reading after that).
    pub(crate) finished: bool,
    /// The call's span, which ends with the stream.
    pub(crate) span: Span,
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        let error = self.error.unwrap_or_default();
        if !error.is_empty() {
            self.span.record("error.type", error);
        }
        if let Some(usage) = &self.usage {
            record_usage(&self.span, usage);
        }
        operation(&self.metrics, Operation::Stream, &self.target, error)
            .observe_duration(self.started.elapsed());
        if let Some(usage) = &self.usage {
            count_usage(&self.metrics, self.prices.as_deref(), &self.target, usage);
        }
    }
}

/// A stream handed to a client: counts as in flight until dropped, reports a failure inside
/// it to the target's breaker, and ends with a timeout error at the request deadline or the
/// target's total timeout, whichever comes first.
pub(crate) struct Tracked {
    pub(crate) inner: ChatStream,
    pub(crate) health: Arc<TargetHealth>,
    pub(crate) breaker: BreakerSettings,
    pub(crate) provider: String,
    pub(crate) deadline: Pin<Box<tokio::time::Sleep>>,
    pub(crate) _in_flight: InFlight,
    pub(crate) done: bool,
    pub(crate) meter: Option<StreamMeter>,
}

impl Stream for Tracked {
    type Item = Result<StreamEvent, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.done = true;
            if let Some(meter) = &mut this.meter {
                meter.error = Some("timeout");
            }
            return Poll::Ready(Some(Err(ProviderError::Timeout {
                provider: std::mem::take(&mut this.provider),
                phase: TimeoutPhase::Total,
            })));
        }
        let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Err(e)) => {
                this.done = true;
                if e.is_retryable() {
                    this.health.failed(&this.breaker, Instant::now());
                }
                if let Some(meter) = &mut this.meter {
                    meter.error = Some(e.metric_label());
                }
            }
            None => {
                this.done = true;
                // Counted now, not when the client lets go of the stream.
                this.meter = None;
            }
            Some(Ok(StreamEvent::Usage { usage })) => {
                if let Some(meter) = &mut this.meter {
                    meter.usage = Some(*usage);
                }
            }
            Some(Ok(StreamEvent::Finish { reason, .. })) => {
                if let Some(meter) = &mut this.meter {
                    meter.finished = true;
                    meter
                        .span
                        .record("gen_ai.response.finish_reasons", reason.as_str());
                }
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(item)
    }
}

impl Drop for Tracked {
    /// A stream let go of before the provider finished its answer was abandoned by the client:
    /// its call is counted and traced as `error.type = "cancelled"`, not as a success.
    fn drop(&mut self) {
        if let Some(meter) = &mut self.meter
            && !self.done
            && !meter.finished
            && meter.error.is_none()
        {
            meter.error = Some("cancelled");
        }
    }
}
