//! Sending finished spans to an OTLP collector: batched in the background, over
//! OTLP/HTTP (`application/x-protobuf`, to `…/v1/traces`) or OTLP/gRPC
//! (`TraceService/Export` over HTTP/2).
//!
//! A span never waits for the network: [`Exporter::export`] queues it, or drops it (and
//! counts the drop) when the queue is full. A failed export is logged and its batch dropped;
//! tracing is worth less than the requests it describes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::layer::SpanSink;
use crate::proto::{self, AnyValue, FinishedSpan, Origin};

/// How spans travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    Grpc,
}

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// For HTTP, the full URL of the traces endpoint; for gRPC, the collector's base URL.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Sent with every export (e.g. an API key of a hosted collector).
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    /// The longest an export may take.
    pub timeout: Duration,
    /// How long a span may wait for its batch (`OTEL_BSP_SCHEDULE_DELAY`).
    pub delay: Duration,
}

const QUEUE: usize = 2048;
const BATCH: usize = 512;
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);
const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

enum Message {
    Span(FinishedSpan),
    Flush(oneshot::Sender<()>),
}

/// The queue in front of the background export task.
pub struct Exporter {
    queue: mpsc::Sender<Message>,
    /// Shared with the export task, which reports new drops after each batch.
    dropped: Arc<AtomicU64>,
}

impl SpanSink for Exporter {
    fn export(&self, span: FinishedSpan) {
        if self.queue.try_send(Message::Span(span)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Exporter {
    /// Starts the export task on the current Tokio runtime.
    pub fn start(config: ExportConfig) -> Result<Arc<Self>, String> {
        let client = Client::new(&config)?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(rx, client, config.delay, dropped.clone()));
        Ok(Arc::new(Self { queue, dropped }))
    }

    /// Sends what is queued and waits for it (at most `limit`), e.g. before shutting down.
    pub async fn flush(&self, limit: Duration) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(limit, wait).await;
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn run(
    mut rx: mpsc::Receiver<Message>,
    client: Client,
    delay: Duration,
    dropped: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(delay.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_drops = 0;
    // Drops are reported at most this often, so that an overload does not flood the log too.
    let mut reported_at: Option<tokio::time::Instant> = None;
    loop {
        let flush = tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Span(span)) => {
                    batch.push(span);
                    if batch.len() < BATCH {
                        continue;
                    }
                    None
                }
                Some(Message::Flush(done)) => Some(done),
                None => {
                    client.send(&mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => None,
        };
        client.send(&mut batch).await;
        if let Some(done) = flush {
            let _ = done.send(());
        }
        let now = dropped.load(Ordering::Relaxed);
        let due = reported_at.is_none_or(|at| at.elapsed() >= DROP_REPORT_EVERY);
        if now > reported_drops && due {
            reported_at = Some(tokio::time::Instant::now());
            tracing::warn!(
                dropped = now - reported_drops,
                "trace export is behind: spans were dropped"
            );
            reported_drops = now;
        }
    }
}

struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    protocol: Protocol,
    headers: reqwest::header::HeaderMap,
    origin: Origin,
}

impl Client {
    fn new(config: &ExportConfig) -> Result<Self, String> {
        let mut url = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| format!("`{}` is not a valid OTLP endpoint: {e}", config.endpoint))?;
        // The build's rustls provider (ring), as for the provider clients; installed once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("freeway/", env!("CARGO_PKG_VERSION")));
        if config.protocol == Protocol::Grpc {
            let base = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base}{GRPC_PATH}"));
            // Plain-text gRPC is HTTP/2 without a TLS handshake to negotiate it.
            if url.scheme() == "http" {
                builder = builder.http2_prior_knowledge();
            }
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header `{name}` is not valid in a header"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let http = builder
            .build()
            .map_err(|e| format!("could not build the OTLP client: {e}"))?;
        Ok(Self {
            http,
            url,
            protocol: config.protocol,
            headers,
            origin: Origin {
                resource: vec![
                    (
                        "service.name",
                        AnyValue::String(config.service_name.clone()),
                    ),
                    (
                        "service.version",
                        AnyValue::String(env!("CARGO_PKG_VERSION").to_owned()),
                    ),
                    ("telemetry.sdk.name", AnyValue::String("freeway".to_owned())),
                    (
                        "telemetry.sdk.language",
                        AnyValue::String("rust".to_owned()),
                    ),
                ],
                scope_name: "freeway",
                scope_version: env!("CARGO_PKG_VERSION"),
            },
        })
    }

    /// Exports and empties `batch`; a failure is logged, not retried.
    async fn send(&self, batch: &mut Vec<FinishedSpan>) {
        if batch.is_empty() {
            return;
        }
        let message = proto::encode_request(&self.origin, batch);
        let spans = batch.len();
        batch.clear();
        if let Err(e) = self.post(message).await {
            tracing::warn!(spans, error = %e, url = %self.url, "trace export failed");
        }
    }

    async fn post(&self, message: Vec<u8>) -> Result<(), String> {
        let (content_type, body) = match self.protocol {
            Protocol::HttpProtobuf => ("application/x-protobuf", message),
            Protocol::Grpc => ("application/grpc", proto::grpc_frame(&message)),
        };
        let mut request = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if self.protocol == Protocol::Grpc {
            request = request.header(reqwest::header::TE, "trailers");
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(format!("the collector answered {status}: {body}"));
        }
        if self.protocol == Protocol::Grpc {
            return grpc_status(response).await;
        }
        Ok(())
    }
}

/// A gRPC call's outcome: `grpc-status` in the headers (a trailers-only answer) or in the
/// trailers after the body.
async fn grpc_status(response: reqwest::Response) -> Result<(), String> {
    use http_body_util::BodyExt;

    let check = |headers: &reqwest::header::HeaderMap| -> Option<Result<(), String>> {
        let code = headers.get("grpc-status")?.to_str().ok()?.trim().to_owned();
        if code == "0" {
            return Some(Ok(()));
        }
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        Some(Err(format!(
            "the collector answered gRPC status {code}: {message}"
        )))
    };
    if let Some(outcome) = check(response.headers()) {
        return outcome;
    }
    let mut body = http::Response::from(response).into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(trailers) = frame.trailers_ref()
            && let Some(outcome) = check(trailers)
        {
            return outcome;
        }
    }
    Err("the collector's answer carried no grpc-status".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::{Body, Bytes};
    use axum::http::{HeaderMap, Request, StatusCode};
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::context::{SpanContext, SpanId, TraceId};
    use crate::proto::{SpanKind, Status};

    type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

    /// A collector that records each request and answers with `status` (gRPC: in trailers).
    async fn collector(grpc_status: &'static str) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let log = log.clone();
            async move {
                let path = request.uri().path().to_owned();
                let kind = request
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                let body = body.unwrap_or_default().to_vec();
                let grpc = kind == "application/grpc";
                if let Ok(mut log) = log.lock() {
                    log.push((path, kind, body));
                }
                if !grpc {
                    return axum::response::Response::new(Body::empty());
                }
                let mut trailers = HeaderMap::new();
                trailers.insert(
                    "grpc-status",
                    grpc_status.parse().unwrap_or_else(|_| unreachable!()),
                );
                trailers.insert(
                    "grpc-message",
                    "bad".parse().unwrap_or_else(|_| unreachable!()),
                );
                let frames = futures_util::stream::iter([
                    Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
                        &[0, 0, 0, 0, 0],
                    ))),
                    Ok(http_body::Frame::trailers(trailers)),
                ]);
                let mut response =
                    axum::response::Response::new(Body::new(StreamBody::new(frames)));
                response.headers_mut().insert(
                    "content-type",
                    "application/grpc"
                        .parse()
                        .unwrap_or_else(|_| unreachable!()),
                );
                *response.status_mut() = StatusCode::OK;
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }

    fn config(endpoint: String, protocol: Protocol) -> ExportConfig {
        ExportConfig {
            endpoint,
            protocol,
            headers: vec![("x-api-key".to_owned(), "k".to_owned())],
            service_name: "svc".to_owned(),
            timeout: Duration::from_secs(5),
            delay: Duration::from_secs(60),
        }
    }

    fn span(name: &str) -> FinishedSpan {
        FinishedSpan {
            context: SpanContext {
                trace_id: TraceId([7; 16]),
                span_id: SpanId([8; 8]),
                sampled: true,
            },
            parent: None,
            parent_is_remote: false,
            name: name.to_owned(),
            kind: SpanKind::Server,
            start_unix_nano: 1,
            end_unix_nano: 2,
            attributes: Vec::new(),
            status: Status::Unset,
        }
    }

    #[tokio::test]
    async fn http_export_posts_protobuf_on_flush() {
        let (base, seen) = collector("0").await;
        let exporter =
            Exporter::start(config(format!("{base}/v1/traces"), Protocol::HttpProtobuf)).unwrap();
        exporter.export(span("first"));
        exporter.export(span("second"));
        exporter.flush(Duration::from_secs(5)).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "one batch");
        let (path, kind, body) = &seen[0];
        assert_eq!(path, "/v1/traces");
        assert_eq!(kind, "application/x-protobuf");
        let client = Client::new(&config(base, Protocol::HttpProtobuf)).unwrap();
        assert_eq!(
            body,
            &proto::encode_request(&client.origin, &[span("first"), span("second")])
        );
        assert_eq!(exporter.dropped(), 0);
    }

    #[tokio::test]
    async fn grpc_export_frames_the_message_and_reads_the_trailers() {
        let (base, seen) = collector("0").await;
        let client = Client::new(&config(base.clone(), Protocol::Grpc)).unwrap();
        let message = proto::encode_request(&client.origin, &[span("one")]);
        client.post(message.clone()).await.unwrap();
        let (path, kind, body) = seen.lock().unwrap()[0].clone();
        assert_eq!(path, GRPC_PATH);
        assert_eq!(kind, "application/grpc");
        assert_eq!(body, proto::grpc_frame(&message));

        let (base, _) = collector("3").await;
        let client = Client::new(&config(base, Protocol::Grpc)).unwrap();
        let e = client.post(message).await.unwrap_err();
        assert!(e.contains("gRPC status 3: bad"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_collector_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = Client::new(&config(
            format!("http://{addr}/v1/traces"),
            Protocol::HttpProtobuf,
        ))
        .unwrap();
        assert!(client.post(Vec::new()).await.is_err());
    }
}
