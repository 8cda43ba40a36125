//! OpenTelemetry traces without the OpenTelemetry SDK: the W3C trace context that clients
//! send and providers receive ([`context`]), and the OTLP protobuf encoding of finished spans
//! ([`proto`]) that a collector accepts over HTTP or gRPC, and the `tracing` layer that
//! turns freeway's spans into them ([`layer`]), and the batching exporter that sends them
//! over OTLP/HTTP or OTLP/gRPC ([`export`]).
//!
//! Hand-written because what freeway needs is small (one resource, one scope, spans with
//! attributes and a status) and the SDK with its gRPC stack would be most of a build.

pub mod context;
pub mod export;
pub mod layer;
pub mod proto;

pub use context::{SpanContext, SpanId, TraceId};
pub use export::{ExportConfig, Exporter, Protocol};
pub use layer::{OtelLayer, SpanSink, TARGET, current};
pub use proto::{AnyValue, FinishedSpan, SpanKind, Status};
