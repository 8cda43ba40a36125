//! Request plumbing shared by every route: auth, bounded bodies, JSON with field paths, SSE.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use freeway_gateway::{CacheMode, RequestOptions, Served};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, Category};
use crate::tenancy::Caller;

/// The non-standard header names this server sends, built once: a name given to `insert` as
/// a `&str` is copied into an allocation every time (`HeaderName::from_static` is not).
pub mod names {
    use axum::http::HeaderName;

    pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");
    pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
    pub const X_FREEWAY_CACHE: HeaderName = HeaderName::from_static("x-freeway-cache");
    pub const X_FREEWAY_DOWNGRADED: HeaderName = HeaderName::from_static("x-freeway-downgraded");
    pub const X_FREEWAY_ROUTE: HeaderName = HeaderName::from_static("x-freeway-route");
    pub const X_FREEWAY_SESSION: HeaderName = HeaderName::from_static("x-freeway-session");
    pub const X_FREEWAY_TARGET: HeaderName = HeaderName::from_static("x-freeway-target");
    pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    pub const X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");
}

/// Who is calling. Keys come as `Authorization: Bearer` or `x-api-key`:
/// - the master key is [`Caller::Master`];
/// - a virtual key (`fw-…`) is its key and team, or a 401 when it is unknown, revoked or expired;
/// - with `[auth.jwt]`, a bearer JWT is its claims' team and role, or a 401 saying why not;
/// - with no master key configured (loopback only), anything else is [`Caller::Open`];
///   with one, it is a 401.
pub async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    if let (Some(key), Some(master)) = (given, &state.master_key)
        && constant_time_eq(key.as_bytes(), master.expose().as_bytes())
    {
        return Ok(Caller::Master);
    }
    if let (Some(token), Some(tenancy)) = (given, &state.tenancy)
        && tenancy.jwt.is_some()
        && crate::jwt::JwtVerifier::looks_like_jwt(token)
    {
        return Ok(Caller::Key(tenancy.authenticate_jwt(token).await?));
    }
    if let (Some(key), Some(tenancy)) = (given, &state.tenancy)
        && key.starts_with(freeway_store::KEY_PREFIX)
    {
        return match tenancy.authenticate(key).await? {
            Some(principal) => Ok(Caller::Key(principal)),
            None => {
                Err(ApiError::unauthorized()
                    .with_message("This key is unknown, revoked or expired."))
            }
        };
    }
    match state.master_key {
        None => Ok(Caller::Open),
        Some(_) => Err(ApiError::unauthorized()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads the whole body, refusing more than `limit` bytes with a 413.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

/// Parses JSON; a syntax error or a field of the wrong shape is a 400 naming where it is.
/// Tracking the path costs an allocation or more per field, so a body is parsed without it
/// first, and again with it only to explain a failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "",
            "the request body is empty; send a JSON object",
        ));
    }
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut *de) {
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::invalid("", format!("the request body is not valid JSON: {inner}"))
            } else if path == "." {
                ApiError::invalid("", inner)
            } else {
                ApiError::invalid(path, inner)
            }
        }
        Ok(_) => match de.end() {
            Err(e) => ApiError::invalid("", format!("the request body is not valid JSON: {e}")),
            // Not expected: the same bytes failed without the path.
            Ok(()) => ApiError::invalid("", "the request body could not be parsed"),
        },
    };
    Err(error)
}

/// Wraps encoded SSE frames into a streaming response, adding a keep-alive comment whenever
/// the upstream has been silent for `keep_alive`. Dropping the response (client gone) drops
/// `frames` and with it the upstream request.
pub fn sse_response(
    frames: impl Stream<Item = Bytes> + Send + 'static,
    keep_alive: Duration,
    extra: HeaderMap,
) -> Response {
    let frames = Box::pin(frames);
    let body = futures_util::stream::unfold(frames, move |mut frames| async move {
        match tokio::time::timeout(keep_alive, frames.next()).await {
            Ok(Some(frame)) => Some((Ok::<_, Infallible>(frame), frames)),
            Ok(None) => None,
            Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), frames)),
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx buffer responses unless told not to.
    headers.insert(names::X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    headers.extend(extra);
    response
}

/// A JSON answer with the headers that say how it was served.
pub fn json_response(body: impl serde::Serialize, extra: HeaderMap) -> Response {
    // Most answers fit, so the buffer is seldom grown.
    let mut bytes = Vec::with_capacity(1024);
    if let Err(e) = serde_json::to_writer(&mut bytes, &body) {
        tracing::error!(error = %e, "could not serialize a response");
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Category::Internal,
            "The server could not serialize its answer.",
        )
        .openai();
    }
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.extend(extra);
    response
}

/// What the client asked of routing besides the body:
/// - `x-freeway-tier: <tier>` picks the tier of an `auto` route;
/// - `cache-control: no-cache` skips the cached answer (and stores the fresh one),
///   `cache-control: no-store` leaves the cache alone;
/// - `x-freeway-cache: use | refresh | bypass` says the same, and `use` opts a request in
///   that would not be cached by default (temperature above 0).
pub fn request_options(headers: &HeaderMap) -> Result<RequestOptions, ApiError> {
    let mut options = RequestOptions::default();
    if let Some(tier) = headers.get("x-freeway-tier") {
        let tier = tier
            .to_str()
            .map_err(|_| ApiError::invalid("x-freeway-tier", "must be a tier name in ASCII"))?;
        options.tier = Some(tier.trim().to_owned()).filter(|t| !t.is_empty());
    }
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            if directive.eq_ignore_ascii_case("no-store") {
                options.cache = CacheMode::Bypass;
            } else if directive.eq_ignore_ascii_case("no-cache")
                && options.cache != CacheMode::Bypass
            {
                options.cache = CacheMode::Refresh;
            }
        }
    }
    if let Some(value) = headers.get("x-freeway-cache") {
        options.cache = match value.to_str().map(str::trim) {
            Ok(v) if v.eq_ignore_ascii_case("use") => CacheMode::Use,
            Ok(v) if v.eq_ignore_ascii_case("refresh") => CacheMode::Refresh,
            Ok(v) if v.eq_ignore_ascii_case("bypass") => CacheMode::Bypass,
            _ => {
                return Err(ApiError::invalid(
                    "x-freeway-cache",
                    "expected `use` (cache this request), `refresh` (skip the cached answer) \
                     or `bypass` (leave the cache alone)",
                ));
            }
        };
    }
    Ok(options)
}

/// `x-freeway-target` (which `provider/model` answered), `x-freeway-route` (for `auto`
/// routes: the tier and why) and `x-freeway-cache` (`hit` or `miss`, when it was consulted).
pub fn served_headers<T>(served: &Served<T>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    if let Ok(v) = HeaderValue::from_str(&served.target) {
        headers.insert(names::X_FREEWAY_TARGET, v);
    }
    if let Some(v) = served
        .route
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        headers.insert(names::X_FREEWAY_ROUTE, v);
    }
    if let Some(status) = served.cache {
        headers.insert(
            names::X_FREEWAY_CACHE,
            HeaderValue::from_static(status.as_str()),
        );
    }
    headers
}

pub fn not_found_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Category::NotFound,
        "No such route. The API serves /v1/chat/completions, /v1/responses, /v1/messages, /v1/embeddings, /v1/models, /v1/exec, /v1/sessions and /v1/tools; /openapi.json lists every route.",
    )
}

pub fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Category::InvalidRequest,
        "This route does not accept that HTTP method.",
    )
}

/// Seconds since the epoch, for OpenAI's `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[allow(dead_code, reason = "only parsed")]
        model: String,
        max_tokens: Option<u32>,
    }

    #[test]
    fn a_valid_body_parses_on_the_fast_path() {
        let body: Body = parse_json(br#"{"model":"m","max_tokens":3}  "#).unwrap();
        assert_eq!(body.max_tokens, Some(3));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let e = parse_json::<Body>(br#"{"model":"m","max_tokens":"many"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        assert!(
            e.message.starts_with("max_tokens: invalid type"),
            "{}",
            e.message
        );
    }

    #[test]
    fn syntax_errors_and_trailing_bytes_are_refused() {
        let e = parse_json::<Body>(br#"{"model":"m""#).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse_json::<Body>(br#"{"model":"m"} {"model":"n"}"#).unwrap_err();
        assert!(
            e.message.contains("not valid JSON: trailing characters"),
            "{}",
            e.message
        );
        let e = parse_json::<Body>(b" \n").unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }
}
