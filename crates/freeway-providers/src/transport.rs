//! The one HTTP layer every protocol module uses: a pooled client per provider, timeouts,
//! status classification and event streams. It knows HTTP and SSE, not any provider's format.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use freeway_types::{ProviderError, TimeoutPhase};
use futures_core::Stream;
use futures_util::StreamExt;
pub use http::HeaderName;
use http::{HeaderMap, HeaderValue, StatusCode};

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

/// A pooled HTTP client bound to one provider.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
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

/// Installs the process-wide rustls crypto provider (ring) that every reqwest client of this
/// build needs; a second call is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpClient {
    pub fn new(settings: &HttpSettings) -> Result<Self, ProviderError> {
        let invalid = |message: String| ProviderError::Connection {
            provider: settings.provider.clone(),
            message,
        };
        install_tls_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeouts.connect)
            .read_timeout(settings.timeouts.read)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("freeway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("could not build the HTTP client: {e}")))?;

        let mut headers = HeaderMap::new();
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

    /// [`Self::url`], parsed once: for the paths every request uses, so that a request does
    /// not parse (and IDNA-map) its URL again.
    pub fn parsed_url(&self, path: &str) -> Result<reqwest::Url, ProviderError> {
        let url = self.url(path);
        reqwest::Url::parse(&url).map_err(|e| ProviderError::Connection {
            provider: self.provider.to_string(),
            message: format!("`{url}` is not a valid URL: {e}"),
        })
    }

    /// POSTs a JSON body and returns the response if its status is a success; a failure status
    /// becomes an error through `classify`, which reads the protocol's error body.
    pub async fn post_json(
        &self,
        url: impl reqwest::IntoUrl,
        extra_headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
        classify: impl FnOnce(&str, StatusCode, &HeaderMap, &[u8]) -> ProviderError,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut request = self
            .client
            .post(url)
            .headers((*self.headers).clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in extra_headers {
            request = request.header(name, value);
        }
        self.send(request, classify).await
    }

    pub async fn get(
        &self,
        url: &str,
        extra_headers: &[(HeaderName, HeaderValue)],
        classify: impl FnOnce(&str, StatusCode, &HeaderMap, &[u8]) -> ProviderError,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut request = self.client.get(url).headers((*self.headers).clone());
        for (name, value) in extra_headers {
            request = request.header(name, value);
        }
        self.send(request, classify).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        classify: impl FnOnce(&str, StatusCode, &HeaderMap, &[u8]) -> ProviderError,
    ) -> Result<reqwest::Response, ProviderError> {
        // The upstream joins the trace of the call this request is part of.
        let request = match freeway_telemetry::current() {
            Some(context) => request.header("traceparent", context.traceparent()),
            None => request,
        };
        let response = tokio::time::timeout(self.timeouts.first_byte, request.send())
            .await
            .map_err(|_| self.timeout(TimeoutPhase::FirstByte))?
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        // An error body is small; a huge one is cut rather than read whole.
        let body = read_capped(response, 64 * 1024).await;
        Err(classify(&self.provider, status, &headers, &body))
    }

    /// Reads a whole successful body, bounded by the read timeout between chunks.
    pub async fn read_body(&self, response: reqwest::Response) -> Result<Bytes, ProviderError> {
        response.bytes().await.map_err(|e| self.transport_error(&e))
    }

    /// Reads a whole successful body as the JSON of `T`; `what` names it in the error when the
    /// provider's answer does not have that shape.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
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
        response: reqwest::Response,
    ) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static + use<> {
        let provider = self.provider.clone();
        let first_byte = self.timeouts.first_byte;
        let events = SseStream::new(response.bytes_stream()).map(move |item| {
            item.map_err(|e| match e {
                SseStreamError::Transport(e) => transport_error(&provider, &e),
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

    pub fn timeout(&self, phase: TimeoutPhase) -> ProviderError {
        ProviderError::Timeout {
            provider: self.provider.to_string(),
            phase,
        }
    }

    pub fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        transport_error(&self.provider, e)
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

fn transport_error(provider: &str, e: &reqwest::Error) -> ProviderError {
    let provider = provider.to_owned();
    if e.is_timeout() {
        let phase = if e.is_connect() {
            TimeoutPhase::Connect
        } else {
            TimeoutPhase::Read
        };
        return ProviderError::Timeout { provider, phase };
    }
    // reqwest's Display for a connect error names the URL, never headers, so no key leaks.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    ProviderError::Connection { provider, message }
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
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
