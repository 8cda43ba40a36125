//! The OTLP protobuf encoding of `ExportTraceServiceRequest`
//! (`opentelemetry/proto/collector/trace/v1/trace_service.proto`), the body of both
//! OTLP/HTTP (`application/x-protobuf`) and, framed by [`grpc_frame`], OTLP/gRPC.
//!
//! Only what freeway sends is encoded: one resource with attributes, one instrumentation
//! scope, and spans with attributes, a parent and a status. Field numbers are those of the
//! `.proto` files; proto3 defaults (zero, empty) are left out, as protobuf encoders do.

use crate::context::{SpanContext, SpanId};

/// `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// `Status`: unset unless something failed (or was explicitly marked ok).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Status {
    #[default]
    Unset,
    Ok,
    Error(String),
}

/// `AnyValue`, for the kinds of attribute freeway records.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// A `string[]` attribute, such as `gen_ai.response.finish_reasons`.
    Strings(Vec<String>),
}

/// A span that has ended, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    pub context: SpanContext,
    pub parent: Option<SpanId>,
    /// Whether the parent came from another process (`traceparent`).
    pub parent_is_remote: bool,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Vec<(&'static str, AnyValue)>,
    pub status: Status,
}

/// Who sends the spans: the resource's attributes (`service.name`, …) and the scope.
#[derive(Debug, Clone)]
pub struct Origin {
    pub resource: Vec<(&'static str, AnyValue)>,
    pub scope_name: &'static str,
    pub scope_version: &'static str,
}

/// `ExportTraceServiceRequest` holding `spans`.
pub fn encode_request(origin: &Origin, spans: &[FinishedSpan]) -> Vec<u8> {
    let mut scope_spans = Encoder::default();
    scope_spans.message(1, |scope| {
        scope.string(1, origin.scope_name);
        scope.string(2, origin.scope_version);
    });
    for span in spans {
        scope_spans.message(2, |out| encode_span(out, span));
    }
    let mut resource_spans = Encoder::default();
    resource_spans.message(1, |resource| {
        for (key, value) in &origin.resource {
            resource.message(1, |kv| key_value(kv, key, value));
        }
    });
    resource_spans.bytes(2, &scope_spans.buf);
    let mut request = Encoder::default();
    request.bytes(1, &resource_spans.buf);
    request.buf
}

/// A gRPC message frame: not compressed, 4-byte big-endian length, then the message.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// `SpanFlags`: the W3C trace flags in the low byte, then whether the parent is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn encode_span(out: &mut Encoder, span: &FinishedSpan) {
    out.bytes(1, &span.context.trace_id.0);
    out.bytes(2, &span.context.span_id.0);
    if let Some(parent) = span.parent {
        out.bytes(4, &parent.0);
    }
    out.string(5, &span.name);
    out.varint_field(6, span.kind as u64);
    out.fixed64(7, span.start_unix_nano);
    out.fixed64(8, span.end_unix_nano);
    for (key, value) in &span.attributes {
        out.message(9, |kv| key_value(kv, key, value));
    }
    match &span.status {
        Status::Unset => {}
        Status::Ok => out.message(15, |s| s.varint_field(3, 1)),
        Status::Error(message) => out.message(15, |s| {
            s.string(2, message);
            s.varint_field(3, 2);
        }),
    }
    let mut flags = u32::from(span.context.sampled) | HAS_IS_REMOTE;
    if span.parent_is_remote {
        flags |= IS_REMOTE;
    }
    out.fixed32(16, flags);
}

fn key_value(out: &mut Encoder, key: &str, value: &AnyValue) {
    out.string(1, key);
    out.message(2, |v| any_value(v, value));
}

fn any_value(out: &mut Encoder, value: &AnyValue) {
    // A oneof: its member is written even when it holds the default.
    match value {
        AnyValue::String(s) => out.bytes(1, s.as_bytes()),
        AnyValue::Bool(b) => out.varint_field_always(2, u64::from(*b)),
        AnyValue::Int(i) => out.varint_field_always(3, *i as u64),
        AnyValue::Double(d) => {
            out.key(4, WIRE_I64);
            out.buf.extend_from_slice(&d.to_le_bytes());
        }
        AnyValue::Strings(items) => out.message(5, |array| {
            for item in items {
                array.message(1, |v| v.bytes(1, item.as_bytes()));
            }
        }),
    }
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

#[derive(Default)]
struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, WIRE_LEN);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn varint_field(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.varint_field_always(field, v);
        }
    }

    fn varint_field_always(&mut self, field: u32, v: u64) {
        self.key(field, WIRE_VARINT);
        self.varint(v);
    }

    fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, WIRE_I64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn fixed32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.key(field, WIRE_I32);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A nested message, length-prefixed.
    fn message(&mut self, field: u32, body: impl FnOnce(&mut Encoder)) {
        let mut inner = Encoder::default();
        body(&mut inner);
        self.bytes(field, &inner.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceId;

    #[test]
    fn varints_follow_the_protobuf_encoding() {
        let mut e = Encoder::default();
        e.varint(1);
        e.varint(150);
        e.varint(u64::MAX);
        assert_eq!(e.buf[..3], [0x01, 0x96, 0x01]);
        assert_eq!(e.buf.len(), 3 + 10, "a 64-bit varint takes ten bytes");
        assert_eq!(e.buf[12], 0x01);
    }

    #[test]
    fn a_negative_int_attribute_is_twos_complement() {
        let mut e = Encoder::default();
        key_value(&mut e, "n", &AnyValue::Int(-1));
        // key "n", then AnyValue { int_value(3) = -1 as ten varint bytes }
        let mut want = vec![0x0a, 0x01, b'n', 0x12, 11, 0x18];
        want.extend([0xff; 9]);
        want.push(0x01);
        assert_eq!(e.buf, want);
    }

    #[test]
    fn a_span_encodes_field_by_field() {
        let span = FinishedSpan {
            context: SpanContext {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([2; 8]),
                sampled: true,
            },
            parent: Some(SpanId([3; 8])),
            parent_is_remote: true,
            name: "chat m".to_owned(),
            kind: SpanKind::Client,
            start_unix_nano: 5,
            end_unix_nano: 6,
            attributes: vec![("k", AnyValue::Bool(false))],
            status: Status::Error("boom".to_owned()),
        };
        let mut e = Encoder::default();
        encode_span(&mut e, &span);
        let mut want = vec![0x0a, 16];
        want.extend([1; 16]);
        want.extend([0x12, 8]);
        want.extend([2; 8]);
        want.extend([0x22, 8]);
        want.extend([3; 8]);
        want.extend([0x2a, 6]);
        want.extend(b"chat m");
        want.extend([0x30, 3]);
        want.push(0x39);
        want.extend(5u64.to_le_bytes());
        want.push(0x41);
        want.extend(6u64.to_le_bytes());
        // attributes(9) { key(1) "k", value(2) { bool_value(2) false, written: a oneof } }
        want.extend([0x4a, 7, 0x0a, 1, b'k', 0x12, 2, 0x10, 0]);
        // status(15) { message(2) "boom", code(3) ERROR }
        want.extend([0x7a, 8, 0x12, 4]);
        want.extend(b"boom");
        want.extend([0x18, 2]);
        // flags(16), fixed32: sampled | has-is-remote | is-remote
        want.extend([0x85, 0x01]);
        want.extend(0x301u32.to_le_bytes());
        assert_eq!(e.buf, want);
    }

    #[test]
    fn a_request_nests_resource_scope_and_spans() {
        let origin = Origin {
            resource: vec![("service.name", AnyValue::String("freeway".to_owned()))],
            scope_name: "freeway",
            scope_version: "0.1.0",
        };
        let body = encode_request(&origin, &[]);
        // resource_spans(1) { resource(1) { attributes(1) {…} } scope_spans(2) { scope(1) {…} } }
        assert_eq!(body[0], 0x0a);
        assert_eq!(body[1] as usize, body.len() - 2);
        assert_eq!(body[2], 0x0a, "the resource comes first");
        assert!(body.windows(7).any(|w| w == b"freeway"));
        let framed = grpc_frame(&body);
        assert_eq!(framed[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize,
            body.len()
        );
    }
}
