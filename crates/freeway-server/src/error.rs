//! Errors as each ingress format spells them.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use freeway_gateway::GatewayError;
use freeway_types::{ErrorKind, ProviderError};
use serde_json::json;

/// What went wrong, independent of how a format writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    InvalidRequest,
    Authentication,
    NotFound,
    TooLarge,
    RateLimited,
    /// The upstream failed or refused us: not the client's fault.
    Upstream,
    Overloaded,
    Timeout,
    NotImplemented,
    /// Authenticated, but a policy refuses the action (exec policy rules).
    PermissionDenied,
    /// A feature this server cannot offer right now (e.g. no sandbox on this kernel).
    Unavailable,
    /// The request was fine; something on this machine failed.
    Internal,
}

/// An error answer: status, category, message, and for OpenAI the offending parameter.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub category: Category,
    pub message: String,
    pub param: Option<String>,
    /// A short machine-readable code (`model_not_found`, `upstream_auth`…).
    pub code: Option<&'static str>,
    pub retry_after: Option<Duration>,
    /// Extra members of the error object (e.g. the exec policy `rule` and `reason`); boxed,
    /// because errors travel in every `Result` of the request path and most have none.
    pub details: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// Replaces the error `type` the category implies (`budget_exceeded`…).
    pub kind: Option<&'static str>,
    /// Extra response headers (`x-ratelimit-*` on a 429).
    pub headers: Option<Box<axum::http::HeaderMap>>,
}

impl ApiError {
    pub fn new(status: StatusCode, category: Category, message: impl Into<String>) -> Self {
        Self {
            status,
            category,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            details: None,
            kind: None,
            headers: None,
        }
    }

    /// A 400 naming the field at fault.
    pub fn invalid(param: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let param = param.into();
        let message = if param.is_empty() {
            message.to_string()
        } else {
            format!("{param}: {message}")
        };
        Self {
            param: (!param.is_empty()).then_some(param),
            ..Self::new(StatusCode::BAD_REQUEST, Category::InvalidRequest, message)
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Adds a member to the error object.
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.into());
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Something on this machine failed (logged; the message is safe to show).
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(%message, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Category::Internal,
            message,
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Category::Authentication,
            "Missing or invalid API key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
        )
        .with_code("invalid_api_key")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Category::TooLarge,
            format!("The request body is larger than the limit of {limit} bytes (server.max_body_bytes)."),
        )
        .with_code("request_too_large")
    }

    /// An OpenAI error body.
    pub fn openai(self) -> Response {
        let kind = self.kind.unwrap_or(match self.category {
            Category::InvalidRequest | Category::NotFound | Category::TooLarge => {
                "invalid_request_error"
            }
            Category::Authentication => "authentication_error",
            Category::RateLimited => "rate_limit_error",
            Category::NotImplemented => "not_implemented_error",
            Category::PermissionDenied => "permission_error",
            Category::Upstream
            | Category::Overloaded
            | Category::Timeout
            | Category::Unavailable
            | Category::Internal => "server_error",
        });
        let mut error = serde_json::Map::new();
        error.insert("message".into(), self.message.clone().into());
        error.insert("type".into(), kind.into());
        error.insert("param".into(), self.param.clone().into());
        error.insert("code".into(), self.code.into());
        for (k, v) in self.details.iter().flat_map(|d| d.iter()) {
            error.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.respond(json!({ "error": error }))
    }

    /// An Anthropic error body.
    pub fn anthropic(self) -> Response {
        let body = json!({
            "type": "error",
            "error": {
                "type": self.kind.unwrap_or(self.anthropic_type()),
                "message": self.message,
            },
        });
        self.respond(body)
    }

    pub fn anthropic_type(&self) -> &'static str {
        match self.category {
            Category::InvalidRequest | Category::NotImplemented => "invalid_request_error",
            Category::Authentication => "authentication_error",
            Category::PermissionDenied => "permission_error",
            Category::NotFound => "not_found_error",
            Category::TooLarge => "request_too_large",
            Category::RateLimited => "rate_limit_error",
            Category::Upstream | Category::Internal => "api_error",
            Category::Overloaded | Category::Unavailable => "overloaded_error",
            Category::Timeout => "timeout_error",
        }
    }

    fn respond(self, body: serde_json::Value) -> Response {
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(extra) = self.headers {
            response.headers_mut().extend(*extra);
        }
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        let category = match e.kind() {
            ErrorKind::BadRequest | ErrorKind::ContextWindowExceeded | ErrorKind::Unsupported => {
                Category::InvalidRequest
            }
            ErrorKind::ModelNotFound => Category::NotFound,
            ErrorKind::RateLimited => Category::RateLimited,
            ErrorKind::Overloaded => Category::Overloaded,
            ErrorKind::Timeout => Category::Timeout,
            ErrorKind::Auth
            | ErrorKind::Upstream
            | ErrorKind::Connection
            | ErrorKind::InvalidResponse
            | ErrorKind::Cancelled => Category::Upstream,
        };
        let code = match e.kind() {
            ErrorKind::Auth => "upstream_auth_failed",
            ErrorKind::ContextWindowExceeded => "context_length_exceeded",
            ErrorKind::ModelNotFound => "model_not_found",
            other => other.metric_label(),
        };
        let status = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::BAD_GATEWAY);
        Self {
            status,
            category,
            message: e.to_string(),
            param: None,
            code: Some(code),
            retry_after: e.retry_after(),
            details: None,
            kind: None,
            headers: None,
        }
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::ModelNotFound { message, .. } => {
                let mut err = Self::new(StatusCode::NOT_FOUND, Category::NotFound, message)
                    .with_code("model_not_found");
                err.param = Some("model".into());
                err
            }
            GatewayError::Unavailable {
                message,
                retry_after,
            } => {
                let mut err = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Category::Overloaded,
                    message,
                )
                .with_code("circuit_open");
                err.retry_after = retry_after;
                err
            }
            GatewayError::Provider(e) => e.into(),
        }
    }
}
