//! A `tracing` layer that turns freeway's spans into OpenTelemetry spans.
//!
//! Only spans of target [`TARGET`] are traced; their fields become attributes, with a few
//! names that steer the span instead (as `tracing-opentelemetry` spells them):
//! `otel.name` (the span name, which `tracing` only allows static), `otel.kind`
//! (`server`, `client`, `internal`), `otel.status_code` (`error`, `ok`),
//! `otel.status_message`, and `traceparent` (a remote parent, read on the root span). An
//! `error.type` marks the span failed, as the semantic conventions ask. Fields in
//! [`LIST_FIELDS`] hold comma-separated lists and are exported as string arrays.
//!
//! A span inherits trace and sampling from its parent; a root span from `traceparent`, or
//! it starts a trace sampled at the configured ratio. Unsampled spans still carry ids, so
//! that what is sent upstream says "not sampled".

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::context::{SpanContext, SpanId, TraceId};
use crate::proto::{AnyValue, FinishedSpan, SpanKind, Status};

/// The target of every span that is traced.
pub const TARGET: &str = "freeway::span";

/// Attributes that are lists (`string[]` in the semantic conventions).
pub const LIST_FIELDS: &[&str] = &["gen_ai.response.finish_reasons"];

/// Where finished, sampled spans go.
pub trait SpanSink: Send + Sync + 'static {
    fn export(&self, span: FinishedSpan);
}

/// The layer; install it with [`OtelLayer::filter`] so that it sees only traced spans.
pub struct OtelLayer {
    sink: Arc<dyn SpanSink>,
    /// The share of new traces sampled, in [0, 1].
    ratio: f64,
}

impl OtelLayer {
    pub fn new(sink: Arc<dyn SpanSink>, ratio: f64) -> Self {
        Self {
            sink,
            ratio: ratio.clamp(0.0, 1.0),
        }
    }

    /// The per-layer filter that keeps this layer to spans of [`TARGET`].
    pub fn filter<S>() -> impl Filter<S> {
        // Traced spans are at `info`: the hint spares `debug!` call sites elsewhere.
        tracing_subscriber::filter::filter_fn(is_traced)
            .with_max_level_hint(tracing::level_filters::LevelFilter::INFO)
    }

    fn sample(&self) -> bool {
        self.ratio >= 1.0 || fastrand::f64() < self.ratio
    }
}

/// Whether a span is one of freeway's traced spans.
pub fn is_traced(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.target() == TARGET
}

/// The context of the nearest traced span around the current one: for `traceparent` upstream and the
/// trace id in a response. Needs the process's subscriber to be built on a [`Registry`].
pub fn current() -> Option<SpanContext> {
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            // The nearest traced span: the current one may be a library's, not ours.
            registry
                .span(id)?
                .scope()
                .find_map(|span| span.extensions().get::<Open>().map(|open| open.context))
        })
        .flatten()
}

/// What a traced span has gathered while open, kept in its registry extensions.
struct Open {
    context: SpanContext,
    parent: Option<SpanId>,
    parent_is_remote: bool,
    name: String,
    kind: SpanKind,
    start_unix_nano: u64,
    attributes: Vec<(&'static str, AnyValue)>,
    status: Status,
}

impl<S> tracing_subscriber::Layer<S> for OtelLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Open>().map(|o| o.context));
        let (trace_id, parent, parent_is_remote, sampled) = match (parent, fields.remote) {
            (Some(p), _) => (p.trace_id, Some(p.span_id), false, p.sampled),
            (None, Some(r)) => (r.trace_id, Some(r.span_id), true, r.sampled),
            (None, None) => (TraceId::random(), None, false, self.sample()),
        };
        let mut open = Open {
            context: SpanContext {
                trace_id,
                span_id: SpanId::random(),
                sampled,
            },
            parent,
            parent_is_remote,
            name: attrs.metadata().name().to_owned(),
            kind: SpanKind::Internal,
            start_unix_nano: now_unix_nano(),
            attributes: Vec::new(),
            status: Status::Unset,
        };
        fields.apply(&mut open);
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(open) = span.extensions_mut().get_mut::<Open>() {
            fields.apply(open);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        if !open.context.sampled {
            return;
        }
        self.sink.export(FinishedSpan {
            context: open.context,
            parent: open.parent,
            parent_is_remote: open.parent_is_remote,
            name: open.name,
            kind: open.kind,
            start_unix_nano: open.start_unix_nano,
            end_unix_nano: now_unix_nano(),
            attributes: open.attributes,
            status: open.status,
        });
    }
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Field values as recorded, before they are applied to a span.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    kind: Option<SpanKind>,
    status: Option<Status>,
    status_message: Option<String>,
    remote: Option<SpanContext>,
    attributes: Vec<(&'static str, AnyValue)>,
}

impl Fields {
    fn apply(self, open: &mut Open) {
        if let Some(name) = self.name {
            open.name = name;
        }
        if let Some(kind) = self.kind {
            open.kind = kind;
        }
        for (key, value) in self.attributes {
            if key == "error.type" && open.status == Status::Unset {
                open.status = Status::Error(String::new());
            }
            match open.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => open.attributes.push((key, value)),
            }
        }
        if let Some(status) = self.status {
            open.status = status;
        }
        if let (Some(message), Status::Error(m)) = (self.status_message, &mut open.status) {
            *m = message;
        }
    }

    fn text(&mut self, field: &Field, value: String) {
        match field.name() {
            "otel.name" => self.name = Some(value),
            "otel.kind" => {
                self.kind = match value.as_str() {
                    "server" => Some(SpanKind::Server),
                    "client" => Some(SpanKind::Client),
                    _ => Some(SpanKind::Internal),
                }
            }
            "otel.status_code" => {
                self.status = match value.as_str() {
                    "error" => Some(Status::Error(String::new())),
                    "ok" => Some(Status::Ok),
                    _ => None,
                }
            }
            "otel.status_message" => self.status_message = Some(value),
            "traceparent" => self.remote = SpanContext::from_traceparent(&value),
            name if LIST_FIELDS.contains(&name) => {
                let items = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned);
                self.attributes
                    .push((name, AnyValue::Strings(items.collect())));
            }
            name => self.attributes.push((name, AnyValue::String(value))),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push((field.name(), AnyValue::Int(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.attributes.push((field.name(), AnyValue::Int(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes
            .push((field.name(), AnyValue::Double(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push((field.name(), AnyValue::Bool(value)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing::field::Empty;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<FinishedSpan>>);

    impl SpanSink for Collect {
        fn export(&self, span: FinishedSpan) {
            if let Ok(mut spans) = self.0.lock() {
                spans.push(span);
            }
        }
    }

    fn traced(ratio: f64, work: impl FnOnce()) -> Vec<FinishedSpan> {
        let sink = Arc::new(Collect::default());
        let layer = OtelLayer::new(sink.clone(), ratio);
        let subscriber = Registry::default().with(tracing_subscriber::Layer::with_filter(
            layer,
            OtelLayer::filter(),
        ));
        tracing::subscriber::with_default(subscriber, work);
        sink.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn attr<'a>(span: &'a FinishedSpan, key: &str) -> Option<&'a AnyValue> {
        span.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn children_share_the_trace_and_name_their_parent() {
        let mut seen = None;
        let spans = traced(1.0, || {
            let root = tracing::info_span!(target: TARGET, "request",
                "otel.name" = "POST /v1/chat/completions", "otel.kind" = "server",
                traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
            let _in_root = root.enter();
            // A span of another target is invisible: its child still links to the root.
            let other = tracing::info_span!("not traced");
            let _in_other = other.enter();
            let call = tracing::info_span!(target: TARGET, "chat",
                "otel.kind" = "client", "gen_ai.request.model" = "m",
                "gen_ai.usage.input_tokens" = Empty, "gen_ai.response.finish_reasons" = Empty);
            let _in_call = call.enter();
            seen = current();
            call.record("gen_ai.usage.input_tokens", 12u64);
            call.record("gen_ai.response.finish_reasons", "stop");
        });
        assert_eq!(spans.len(), 2, "the untraced span is not exported");
        let (call, root) = (&spans[0], &spans[1]);
        assert_eq!(root.name, "POST /v1/chat/completions");
        assert_eq!(root.kind, SpanKind::Server);
        assert_eq!(
            root.context.trace_id.to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(
            root.parent.map(|p| p.to_string()).as_deref(),
            Some("b7ad6b7169203331")
        );
        assert!(root.parent_is_remote);
        assert_eq!(call.context.trace_id, root.context.trace_id);
        assert_eq!(call.parent, Some(root.context.span_id));
        assert!(!call.parent_is_remote);
        assert_eq!(call.kind, SpanKind::Client);
        assert_eq!(
            seen,
            Some(call.context),
            "current() is the innermost traced span"
        );
        assert_eq!(
            attr(call, "gen_ai.usage.input_tokens"),
            Some(&AnyValue::Int(12))
        );
        assert_eq!(
            attr(call, "gen_ai.response.finish_reasons"),
            Some(&AnyValue::Strings(vec!["stop".to_owned()]))
        );
        assert_eq!(
            attr(root, "traceparent"),
            None,
            "steering fields are not attributes"
        );
        assert!(call.start_unix_nano <= call.end_unix_nano);
        assert!(root.start_unix_nano <= call.start_unix_nano);
    }

    #[test]
    fn an_error_type_fails_the_span() {
        let spans = traced(1.0, || {
            let span = tracing::info_span!(target: TARGET, "chat", "error.type" = Empty,
                "otel.status_message" = Empty);
            span.record("error.type", "timeout");
            span.record("otel.status_message", "no answer in 30 s");
        });
        assert_eq!(
            spans[0].status,
            Status::Error("no answer in 30 s".to_owned())
        );
        assert_eq!(
            attr(&spans[0], "error.type"),
            Some(&AnyValue::String("timeout".to_owned()))
        );
    }

    #[test]
    fn unsampled_traces_are_not_exported_but_keep_their_ids() {
        let mut seen = None;
        let spans = traced(1.0, || {
            let root = tracing::info_span!(target: TARGET, "request",
                traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
            let _in = root.enter();
            seen = current();
        });
        assert!(spans.is_empty(), "the client said: not sampled");
        let seen = seen.unwrap();
        assert!(!seen.sampled);
        assert!(
            seen.traceparent()
                .starts_with("00-0af7651916cd43dd8448eb211c80319c-")
        );
        assert!(traced(0.0, || drop(tracing::info_span!(target: TARGET, "r"))).is_empty());
        assert_eq!(
            traced(1.0, || drop(tracing::info_span!(target: TARGET, "r"))).len(),
            1
        );
    }

    #[test]
    fn without_a_traced_span_there_is_no_context() {
        traced(1.0, || {
            let _in = tracing::info_span!("plain").entered();
            assert_eq!(current(), None);
        });
    }

    #[test]
    fn the_context_is_the_nearest_traced_span_around_a_plain_one() {
        let mut seen = None;
        let spans = traced(1.0, || {
            let _call = tracing::info_span!(target: TARGET, "call").entered();
            // A library's span inside ours: the context still names ours.
            let _lib = tracing::info_span!("hyper").entered();
            seen = current();
        });
        let seen = seen.expect("a context");
        assert_eq!(spans.len(), 1);
        assert_eq!(seen.span_id, spans[0].context.span_id);
        assert_eq!(seen.trace_id, spans[0].context.trace_id);
    }
}
