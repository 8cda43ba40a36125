//! Errors a provider can return, classified so routing can act on them.

use std::time::Duration;

/// What went wrong talking to a provider.
///
/// Variants carry meaning, not transport details: routing retries on [`is_retryable`] errors,
/// the server answers with [`status_code`], metrics count by [`metric_label`]. Messages never
/// contain credentials.
///
/// [`is_retryable`]: ProviderError::is_retryable
/// [`status_code`]: ProviderError::status_code
/// [`metric_label`]: ProviderError::metric_label
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused our credentials (401/403 upstream).
    #[error("provider `{provider}` refused the credentials (status {status}): {message}")]
    Auth {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("provider `{provider}` is rate limiting requests: {message}")]
    RateLimited {
        provider: String,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The provider is temporarily out of capacity (503, Anthropic's 529).
    #[error("provider `{provider}` is overloaded: {message}")]
    Overloaded {
        provider: String,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The provider rejected the request as malformed or unsupported (400, 422).
    #[error("provider `{provider}` rejected the request: {message}")]
    BadRequest {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("the request does not fit the context window of provider `{provider}`: {message}")]
    ContextWindowExceeded { provider: String, message: String },
    #[error("provider `{provider}` does not know the model: {message}")]
    ModelNotFound { provider: String, message: String },
    /// Any other failure status, mostly 5xx.
    #[error("provider `{provider}` failed with status {status}: {message}")]
    Upstream {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("provider `{provider}` timed out ({phase})")]
    Timeout {
        provider: String,
        phase: TimeoutPhase,
    },
    #[error("could not reach provider `{provider}`: {message}")]
    Connection { provider: String, message: String },
    /// The provider answered, but not in its documented format.
    #[error("provider `{provider}` sent a response freeway could not read: {message}")]
    InvalidResponse { provider: String, message: String },
    /// The request asks for something this provider or protocol cannot do.
    #[error("provider `{provider}` does not support {what}")]
    Unsupported { provider: String, what: String },
    #[error("the request was cancelled")]
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutPhase {
    Connect,
    /// Waiting for the response headers or the first streamed event.
    FirstByte,
    /// Silence between two streamed events, or the whole body.
    Read,
    /// The time the gateway allowed for an attempt or for the whole request ran out.
    Total,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "while connecting",
            TimeoutPhase::FirstByte => "waiting for the first byte",
            TimeoutPhase::Read => "while reading the response",
            TimeoutPhase::Total => "within the time allowed for the answer",
        })
    }
}

/// The class of a [`ProviderError`], without its data: for matching, metrics and mapping to
/// wire error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Auth,
    RateLimited,
    Overloaded,
    BadRequest,
    ContextWindowExceeded,
    ModelNotFound,
    Upstream,
    Timeout,
    Connection,
    InvalidResponse,
    Unsupported,
    Cancelled,
}

impl ProviderError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProviderError::Auth { .. } => ErrorKind::Auth,
            ProviderError::RateLimited { .. } => ErrorKind::RateLimited,
            ProviderError::Overloaded { .. } => ErrorKind::Overloaded,
            ProviderError::BadRequest { .. } => ErrorKind::BadRequest,
            ProviderError::ContextWindowExceeded { .. } => ErrorKind::ContextWindowExceeded,
            ProviderError::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            ProviderError::Upstream { .. } => ErrorKind::Upstream,
            ProviderError::Timeout { .. } => ErrorKind::Timeout,
            ProviderError::Connection { .. } => ErrorKind::Connection,
            ProviderError::InvalidResponse { .. } => ErrorKind::InvalidResponse,
            ProviderError::Unsupported { .. } => ErrorKind::Unsupported,
            ProviderError::Cancelled => ErrorKind::Cancelled,
        }
    }

    /// Whether the same request may succeed if tried again, here or at another target.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// How long the provider asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. }
            | ProviderError::Overloaded { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status freeway answers its own client with.
    pub fn status_code(&self) -> u16 {
        match self {
            // The client's request was fine; our credentials upstream were not.
            ProviderError::Auth { .. } => 502,
            ProviderError::RateLimited { .. } => 429,
            ProviderError::Overloaded { .. } => 503,
            ProviderError::BadRequest { status, .. } => *status,
            ProviderError::ContextWindowExceeded { .. } => 400,
            ProviderError::ModelNotFound { .. } => 404,
            ProviderError::Upstream { .. } => 502,
            ProviderError::Timeout { .. } => 504,
            ProviderError::Connection { .. } => 502,
            ProviderError::InvalidResponse { .. } => 502,
            ProviderError::Unsupported { .. } => 400,
            ProviderError::Cancelled => 499,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        self.kind().metric_label()
    }

    /// The provider this error came from, if any.
    pub fn provider(&self) -> Option<&str> {
        match self {
            ProviderError::Auth { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::Overloaded { provider, .. }
            | ProviderError::BadRequest { provider, .. }
            | ProviderError::ContextWindowExceeded { provider, .. }
            | ProviderError::ModelNotFound { provider, .. }
            | ProviderError::Upstream { provider, .. }
            | ProviderError::Timeout { provider, .. }
            | ProviderError::Connection { provider, .. }
            | ProviderError::InvalidResponse { provider, .. }
            | ProviderError::Unsupported { provider, .. } => Some(provider),
            ProviderError::Cancelled => None,
        }
    }
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorKind::RateLimited
            | ErrorKind::Overloaded
            | ErrorKind::Upstream
            | ErrorKind::Timeout
            | ErrorKind::Connection
            // A garbled answer says something about that target, not about the request.
            | ErrorKind::InvalidResponse => true,
            ErrorKind::Auth
            | ErrorKind::BadRequest
            | ErrorKind::ContextWindowExceeded
            | ErrorKind::ModelNotFound
            | ErrorKind::Unsupported
            | ErrorKind::Cancelled => false,
        }
    }

    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::ContextWindowExceeded => "context_window_exceeded",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        let p = || "p".to_owned();
        let retryable = [
            ProviderError::RateLimited {
                provider: p(),
                retry_after: None,
                message: String::new(),
            },
            ProviderError::Upstream {
                provider: p(),
                status: 500,
                message: String::new(),
            },
            ProviderError::Timeout {
                provider: p(),
                phase: TimeoutPhase::FirstByte,
            },
        ];
        let final_ = [
            ProviderError::Auth {
                provider: p(),
                status: 401,
                message: String::new(),
            },
            ProviderError::BadRequest {
                provider: p(),
                status: 400,
                message: String::new(),
            },
            ProviderError::ModelNotFound {
                provider: p(),
                message: String::new(),
            },
        ];
        assert!(retryable.iter().all(ProviderError::is_retryable));
        assert!(!final_.iter().any(ProviderError::is_retryable));
    }

    #[test]
    fn upstream_auth_failure_is_a_bad_gateway_not_the_clients_fault() {
        let e = ProviderError::Auth {
            provider: "claude".into(),
            status: 401,
            message: "invalid x-api-key".into(),
        };
        assert_eq!(e.status_code(), 502);
        assert!(e.to_string().contains("claude"));
    }
}
