//! The one HTTP layer every protocol module uses: a pooled client per provider, timeouts,
//! status classification and event streams. It knows HTTP and SSE, not any provider's format.
//!
//! The client is hyper's pooled client over [`connect::Connector`] (TCP, the environment's
//! proxy, rustls with the platform's roots). Each request is built once as an `http::Request`
//! from a URI parsed when the provider was configured and a header map prepared then: nothing is
//! re-parsed or re-printed per request, and a body that is already there is read without
//! arming a timer.

mod body;
mod connect;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use freeway_types::{ProviderError, TimeoutPhase};
use futures_core::Stream;
use futures_util::StreamExt;
pub use http::HeaderName;
use http::uri::Scheme;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_platform_verifier::BuilderVerifierExt;

use self::body::TimedBody;
use self::connect::{ConnectTimeout, Connector};
use crate::secret::Secret;
use crate::sse::{SseEvent, SseStream, SseStreamError};

/// Timeouts of one provider's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Until the response headers arrive.
    pub first_byte: Duration,
    /// Longest silence while reading a body or a stream.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            read: Duration::from_secs(120),
        }
    }
}

/// How a provider authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <key>`.
    Bearer(Secret),
    /// The key in a header of its own (`x-api-key`, `x-goog-api-key`, `api-key`).
    Header(HeaderName, Secret),
}

/// Connection settings shared by every protocol.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The configured provider name, used in errors and logs.
    pub provider: String,
    pub base_url: String,
    pub auth: Auth,
    /// Extra headers sent with every request (e.g. OpenRouter's `HTTP-Referer`).
    pub headers: Vec<(String, String)>,
    pub timeouts: Timeouts,
}

/// A provider's answer whose status was a success; read it with [`HttpClient::read_json`],
/// [`HttpClient::read_body`] or [`HttpClient::events`].
#[derive(Debug)]
pub struct Response(http::Response<Incoming>);

impl Response {
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }
}

/// A pooled HTTP client bound to one provider.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    /// The environment's proxies, kept to add `Proxy-Authorization` to `http` requests that a
    /// forwarding proxy carries; `None` when no proxy is set.
    proxies: Option<Arc<Matcher>>,
    provider: Arc<str>,
    base_url: Arc<str>,
    headers: Arc<HeaderMap>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Installs the process-wide rustls crypto provider (ring) that every TLS client of this build
/// needs; a second call is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

impl HttpClient {
    pub fn new(settings: &HttpSettings) -> Result<Self, ProviderError> {
        Self::with_proxies(settings, connect::proxies_from_env())
    }

    fn with_proxies(
        settings: &HttpSettings,
        proxies: Option<Arc<Matcher>>,
    ) -> Result<Self, ProviderError> {
        let invalid = |message: String| ProviderError::Connection {
            provider: settings.provider.clone(),
            message,
        };
        install_tls_provider();
        let tls = rustls::ClientConfig::builder()
            .with_platform_verifier()
            .map_err(|e| invalid(format!("could not load the system's TLS roots: {e}")))?
            .with_no_client_auth();
        let connector = Connector::new(tls, proxies.clone(), settings.timeouts.connect);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);

        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("freeway/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        match &settings.auth {
            Auth::None => {}
            Auth::Bearer(key) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                        invalid("the API key contains characters not allowed in a header".into())
                    })?;
                v.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, v);
            }
            Auth::Header(name, key) => {
                let mut v = HeaderValue::from_str(key.expose()).map_err(|_| {
                    invalid("the API key contains characters not allowed in a header".into())
                })?;
                v.set_sensitive(true);
                headers.insert(name.clone(), v);
            }
        }
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name `{name}`")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("invalid value for header `{name}`")))?;
            headers.insert(name, value);
        }
        Ok(Self {
            client,
            proxies,
            provider: settings.provider.as_str().into(),
            base_url: settings.base_url.trim_end_matches('/').into(),
            headers: Arc::new(headers),
            timeouts: settings.timeouts,
        })
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// `base_url` joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        let mut url = String::with_capacity(self.base_url.len() + path.len());
        url.push_str(&self.base_url);
        url.push_str(path);
        url
    }

    /// [`Self::url`], parsed: an `http` or `https` URL with a host, or an error that names it.
    /// Protocols parse the paths every request uses once, when the provider is configured.
    pub fn uri(&self, path: &str) -> Result<Uri, ProviderError> {
        let url = self.url(path);
        let invalid = |why: String| ProviderError::Connection {
            provider: self.provider.to_string(),
            message: format!("`{url}` is not a valid URL: {why}"),
        };
        let uri = Uri::try_from(url.as_str()).map_err(|e| invalid(e.to_string()))?;
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => {}
            _ => return Err(invalid("it must start with http:// or https://".into())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("it names no host".into()));
        }
        Ok(uri)
    }

    /// POSTs a JSON body and returns the response if its status is a success; a failure status
    /// becomes an error through `classify`, which reads the protocol's error body.
    pub async fn post_json(
        &self,
        uri: Uri,
        extra_headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
        classify: impl FnOnce(&str, StatusCode, &HeaderMap, &[u8]) -> ProviderError,
    ) -> Result<Response, ProviderError> {
        let mut request = self.request(Method::POST, uri, extra_headers, Bytes::from(body));
        request
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, APPLICATION_JSON);
        self.send(request, classify).await
    }

    pub async fn get(
        &self,
        uri: Uri,
        extra_headers: &[(HeaderName, HeaderValue)],
        classify: impl FnOnce(&str, StatusCode, &HeaderMap, &[u8]) -> ProviderError,
    ) -> Result<Response, ProviderError> {
        let request = self.request(Method::GET, uri, extra_headers, Bytes::new());
        self.send(request, classify).await
    }

    fn request(
        &self,
        method: Method,
        uri: Uri,
        extra_headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> http::Request<Full<Bytes>> {
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = method;
        let headers = request.headers_mut();
        *headers = HeaderMap::clone(&self.headers);
        for (name, value) in extra_headers {
            headers.insert(name, value.clone());
        }
        // The upstream joins the trace of the call this request is part of.
        if let Some(context) = freeway_telemetry::current()
            && let Ok(value) = HeaderValue::try_from(context.traceparent())
        {
            headers.insert(TRACEPARENT, value);
        }
        // A forwarding proxy reads its credentials from each request (a tunnel's go in CONNECT).
        if let Some(proxies) = &self.proxies
            && uri.scheme() == Some(&Scheme::HTTP)
            && let Some(auth) = proxies
                .intercept(&uri)
                .and_then(|p| p.basic_auth().cloned())
        {
            headers.insert(http::header::PROXY_AUTHORIZATION, auth);
        }
        *request.uri_mut() = uri;
        request
    }

    async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        classify: impl FnOnce(&str, StatusCode, &HeaderMap, &[u8]) -> ProviderError,
    ) -> Result<Response, ProviderError> {
        let authority = request.uri().authority().cloned();
        let response = tokio::time::timeout(self.timeouts.first_byte, self.client.request(request))
            .await
            .map_err(|_| self.timeout(TimeoutPhase::FirstByte))?
            .map_err(|e| self.request_error(authority.as_ref(), &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Response(response));
        }
        let (parts, body) = response.into_parts();
        if status.is_redirection() {
            // An API that moved says so once; following it would resend the key elsewhere.
            let location = parts
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere");
            return Err(ProviderError::Upstream {
                provider: self.provider.to_string(),
                status: status.as_u16(),
                message: format!(
                    "the provider redirected to {location}; set its base_url to where it points"
                ),
            });
        }
        // An error body is small; a huge one is cut rather than read whole.
        let body = self.read_capped(body, 64 * 1024).await;
        Err(classify(&self.provider, status, &parts.headers, &body))
    }

    /// Reads a whole successful body, bounded by the read timeout between chunks.
    pub async fn read_body(&self, response: Response) -> Result<Bytes, ProviderError> {
        let mut chunks = self.chunks(response.0.into_body());
        let Some(first) = chunks.next().await.transpose()? else {
            return Ok(Bytes::new());
        };
        // Most answers arrive in one chunk: hand it over as it is.
        let Some(second) = chunks.next().await.transpose()? else {
            return Ok(first);
        };
        let mut body = Vec::with_capacity(first.len() + second.len());
        body.extend_from_slice(&first);
        body.extend_from_slice(&second);
        while let Some(chunk) = chunks.next().await.transpose()? {
            body.extend_from_slice(&chunk);
        }
        Ok(body.into())
    }

    /// Reads a whole successful body as the JSON of `T`; `what` names it in the error when the
    /// provider's answer does not have that shape.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: Response,
        what: &str,
    ) -> Result<T, ProviderError> {
        let bytes = self.read_body(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.invalid(format!("{what}: {e}")))
    }

    /// The events of a streamed response body. The first event must arrive within the
    /// first-byte timeout (servers send headers at once, then think); later silences are bounded
    /// by the read timeout.
    pub fn events(
        &self,
        response: Response,
    ) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static + use<> {
        let provider = self.provider.clone();
        let first_byte = self.timeouts.first_byte;
        let events = SseStream::new(self.chunks(response.0.into_body())).map(move |item| {
            item.map_err(|e| match e {
                SseStreamError::Transport(e) => e,
                SseStreamError::Parse(e) => ProviderError::InvalidResponse {
                    provider: provider.to_string(),
                    message: e.to_string(),
                },
            })
        });
        let timeout = self.timeout(TimeoutPhase::FirstByte);
        futures_util::stream::unfold(
            (Box::pin(events), Some(timeout)),
            move |(mut events, first)| async move {
                let item = match first {
                    None => events.next().await?,
                    Some(timeout) => match tokio::time::timeout(first_byte, events.next()).await {
                        Ok(item) => item?,
                        Err(_) => return Some((Err(timeout), (events, None))),
                    },
                };
                Some((item, (events, None)))
            },
        )
    }

    /// A body's data chunks, each due within the read timeout.
    fn chunks(&self, body: Incoming) -> TimedBody {
        TimedBody::new(body, self.timeouts.read, self.provider.clone())
    }

    async fn read_capped(&self, body: Incoming, cap: usize) -> Vec<u8> {
        let mut chunks = self.chunks(body);
        let mut body = Vec::new();
        while let Some(Ok(chunk)) = chunks.next().await {
            let room = cap.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= cap {
                break;
            }
        }
        body
    }

    pub fn timeout(&self, phase: TimeoutPhase) -> ProviderError {
        ProviderError::Timeout {
            provider: self.provider.to_string(),
            phase,
        }
    }

    /// A request that failed before a response arrived: the connection could not be opened,
    /// or it broke. The message names the host and the cause, never a header.
    fn request_error(
        &self,
        authority: Option<&http::uri::Authority>,
        e: &hyper_util::client::legacy::Error,
    ) -> ProviderError {
        let provider = self.provider.to_string();
        if chain(e).any(|s| s.is::<ConnectTimeout>()) {
            return ProviderError::Timeout {
                provider,
                phase: TimeoutPhase::Connect,
            };
        }
        let host = authority.map_or("the provider", |a| a.as_str());
        let mut message = if e.is_connect() {
            format!("could not connect to {host}")
        } else {
            format!("the request to {host} failed")
        };
        // The legacy client's own words ("client error (Connect)") say less than its causes.
        for cause in chain(e).skip(1) {
            message.push_str(": ");
            message.push_str(&cause.to_string());
        }
        ProviderError::Connection { provider, message }
    }

    /// A request this protocol cannot express; refused before anything is sent.
    pub fn unsayable(&self, message: impl std::fmt::Display) -> ProviderError {
        ProviderError::BadRequest {
            provider: self.provider.to_string(),
            status: 400,
            message: message.to_string(),
        }
    }

    /// An answer that does not follow the protocol.
    pub fn invalid(&self, message: impl std::fmt::Display) -> ProviderError {
        ProviderError::InvalidResponse {
            provider: self.provider.to_string(),
            message: message.to_string(),
        }
    }
}

/// An error and its causes, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// What a protocol module learned from an error body.
#[derive(Debug, Default)]
pub struct ErrorDetails {
    pub message: String,
    /// The body says the prompt does not fit the model's context window.
    pub context_exceeded: bool,
    /// The body says the model does not exist.
    pub model_not_found: bool,
    /// The body says the service is overloaded (e.g. Anthropic's `overloaded_error`).
    pub overloaded: bool,
    /// The body says the credentials were refused, whatever the status (Gemini answers an
    /// invalid key with 400).
    pub auth: bool,
}

/// Maps an HTTP failure to an error class. Protocol modules parse their own error bodies into
/// [`ErrorDetails`] and delegate here, so every protocol classifies statuses alike.
pub fn classify_status(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    details: ErrorDetails,
) -> ProviderError {
    let provider = provider.to_owned();
    let message = if details.message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned()
    } else {
        details.message
    };
    let code = status.as_u16();
    if details.context_exceeded {
        return ProviderError::ContextWindowExceeded { provider, message };
    }
    if details.overloaded {
        return ProviderError::Overloaded {
            provider,
            retry_after: retry_after(headers),
            message,
        };
    }
    match code {
        _ if details.auth => ProviderError::Auth {
            provider,
            status: code,
            message,
        },
        401 | 403 => ProviderError::Auth {
            provider,
            status: code,
            message,
        },
        404 => ProviderError::ModelNotFound { provider, message },
        408 => ProviderError::Timeout {
            provider,
            phase: TimeoutPhase::FirstByte,
        },
        429 => ProviderError::RateLimited {
            provider,
            retry_after: retry_after(headers),
            message,
        },
        503 | 529 => ProviderError::Overloaded {
            provider,
            retry_after: retry_after(headers),
            message,
        },
        _ if details.model_not_found => ProviderError::ModelNotFound { provider, message },
        400..=499 => ProviderError::BadRequest {
            provider,
            status: code,
            message,
        },
        _ => ProviderError::Upstream {
            provider,
            status: code,
            message,
        },
    }
}

/// How long the provider asks us to wait: `retry-after-ms`, `Retry-After` (seconds or an HTTP
/// date), or the earliest of OpenAI-style `x-ratelimit-reset-*` durations (`1s`, `6m0s`, `20ms`).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(v) = text("retry-after") {
        let v = v.trim();
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs));
            }
        } else if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(SystemTime::now()).unwrap_or_default());
        }
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|name| text(name).and_then(parse_go_duration))
        .min()
}

/// Parses durations like `1s`, `6m0s`, `1h2m3.5s`, `20ms`.
fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    total.is_finite().then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn settings(base_url: String) -> HttpSettings {
        HttpSettings {
            provider: "p".into(),
            base_url,
            auth: Auth::Bearer(Secret::new("sk-test")),
            headers: Vec::new(),
            timeouts: Timeouts {
                connect: Duration::from_secs(2),
                first_byte: Duration::from_secs(5),
                read: Duration::from_secs(5),
            },
        }
    }

    fn classify(
        provider: &str,
        status: StatusCode,
        headers: &HeaderMap,
        _: &[u8],
    ) -> ProviderError {
        classify_status(provider, status, headers, ErrorDetails::default())
    }

    /// A server that reads one request head, hands it over and sends `answer`.
    async fn one_shot(answer: &'static str) -> (String, tokio::sync::oneshot::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn a_redirect_is_reported_not_followed() {
        let (addr, head) = one_shot(
            "HTTP/1.1 301 Moved Permanently\r\nlocation: https://elsewhere.example/v1/x\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        let client =
            HttpClient::with_proxies(&settings(format!("http://{addr}/v1")), None).unwrap();
        let error = client
            .post_json(client.uri("/x").unwrap(), &[], b"{}".to_vec(), classify)
            .await
            .unwrap_err();
        let head = head.await.unwrap();
        assert!(head.starts_with("POST /v1/x HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("authorization: Bearer sk-test\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        match error {
            ProviderError::Upstream {
                status, message, ..
            } => {
                assert_eq!(status, 301);
                assert!(
                    message.contains("https://elsewhere.example/v1/x"),
                    "{message}"
                );
            }
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_http_request_goes_through_a_forwarding_proxy_with_its_credentials() {
        let (proxy, head) = one_shot(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
        )
        .await;
        let proxies = Matcher::builder()
            .http(format!("http://user:secret@{proxy}"))
            .build();
        let client = HttpClient::with_proxies(
            &settings("http://api.example:8080/v1".into()),
            Some(Arc::new(proxies)),
        )
        .unwrap();
        let response = client
            .post_json(client.uri("/chat").unwrap(), &[], b"{}".to_vec(), classify)
            .await
            .unwrap();
        let body: serde_json::Value = client.read_json(response, "answer").await.unwrap();
        assert_eq!(body, serde_json::json!({"ok": true}));
        let head = head.await.unwrap();
        assert!(
            head.starts_with("POST http://api.example:8080/v1/chat HTTP/1.1\r\n"),
            "{head}"
        );
        // `user:secret` in base64.
        assert!(
            head.contains("proxy-authorization: Basic dXNlcjpzZWNyZXQ=\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_https_request_tunnels_through_the_proxy() {
        let (proxy, head) = one_shot("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await;
        let proxies = Matcher::builder()
            .https(format!("http://user:secret@{proxy}"))
            .build();
        let client = HttpClient::with_proxies(
            &settings("https://api.example/v1".into()),
            Some(Arc::new(proxies)),
        )
        .unwrap();
        let error = client
            .post_json(client.uri("/chat").unwrap(), &[], b"{}".to_vec(), classify)
            .await
            .unwrap_err();
        let head = head.await.unwrap();
        assert!(
            head.starts_with("CONNECT api.example:443 HTTP/1.1\r\n"),
            "{head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("proxy-authorization: basic dxnlcjpzzwnyzxq=\r\n"),
            "{head}"
        );
        // What goes through the tunnel (the key included) never reaches the proxy in clear.
        assert!(!head.contains("sk-test"), "{head}");
        assert_eq!(
            error.kind(),
            freeway_types::ErrorKind::Connection,
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_host_and_the_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = HttpClient::with_proxies(&settings(format!("http://{addr}")), None).unwrap();
        let error = client
            .get(client.uri("/models").unwrap(), &[], classify)
            .await
            .unwrap_err();
        let ProviderError::Connection { message, .. } = error else {
            panic!("expected a connection error, got {error:?}");
        };
        assert!(
            message.starts_with(&format!("could not connect to {addr}: ")),
            "{message}"
        );
        assert!(message.contains("refused"), "{message}");
    }

    #[test]
    fn urls_are_checked_when_parsed() {
        let client = HttpClient::with_proxies(&settings("ftp://example.com".into()), None).unwrap();
        assert!(client.uri("/x").is_err());
        let client = HttpClient::with_proxies(&settings("not a url".into()), None).unwrap();
        assert!(client.uri("/x").is_err());
        let client =
            HttpClient::with_proxies(&settings("https://example.com/v1/".into()), None).unwrap();
        assert_eq!(
            client.uri("/models").unwrap(),
            "https://example.com/v1/models"
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn retry_after_reads_every_convention() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("x-ratelimit-reset-requests", "6m0s"),
                ("x-ratelimit-reset-tokens", "1.5s")
            ])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn statuses_map_to_classes() {
        let c = |code: u16| {
            classify_status(
                "p",
                StatusCode::from_u16(code).unwrap(),
                &HeaderMap::new(),
                ErrorDetails::default(),
            )
            .kind()
        };
        use freeway_types::ErrorKind::*;
        assert_eq!(c(401), Auth);
        assert_eq!(c(403), Auth);
        assert_eq!(c(404), ModelNotFound);
        assert_eq!(c(429), RateLimited);
        assert_eq!(c(529), Overloaded);
        assert_eq!(c(400), BadRequest);
        assert_eq!(c(500), Upstream);
        assert_eq!(c(408), Timeout);
    }
}
