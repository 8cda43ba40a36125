//! How the agent reaches a model: through the gateway, or through whatever the server wraps
//! around it (tenancy checks, metering).

use std::sync::Arc;

use freeway_gateway::{Gateway, GatewayError, RequestOptions};
use freeway_types::{ChatRequest, ChatStream};

/// A started answer and who gives it.
pub struct ModelStream {
    pub stream: ChatStream,
    /// The `provider/model` that answers.
    pub target: String,
}

/// Why a model call found no answer, in words for the user and a kind for scripts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    /// `model_not_found`, `rate_limit_exceeded`, `budget_exceeded`, `provider_error`…
    pub kind: String,
    pub message: String,
}

impl From<GatewayError> for ModelError {
    fn from(e: GatewayError) -> Self {
        let kind = match &e {
            GatewayError::ModelNotFound { .. } => "model_not_found".to_owned(),
            GatewayError::Unavailable { .. } => "unavailable".to_owned(),
            GatewayError::Provider(p) => p.metric_label().to_owned(),
        };
        ModelError {
            kind,
            message: e.to_string(),
        }
    }
}

#[async_trait::async_trait]
pub trait ModelClient: Send + Sync + 'static {
    /// Starts a streamed answer from `model` (an id or route alias) for `request`.
    async fn stream(&self, model: &str, request: ChatRequest) -> Result<ModelStream, ModelError>;
}

/// The gateway itself, with no tenant: the CLI and an open server.
pub struct GatewayModel {
    pub gateway: Arc<Gateway>,
    pub options: RequestOptions,
}

impl GatewayModel {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        GatewayModel {
            gateway,
            options: RequestOptions {
                // A step answers a context that includes tool results of this run: never replay.
                cache: freeway_gateway::CacheMode::Bypass,
                ..RequestOptions::default()
            },
        }
    }
}

#[async_trait::async_trait]
impl ModelClient for GatewayModel {
    async fn stream(&self, model: &str, request: ChatRequest) -> Result<ModelStream, ModelError> {
        let served = self
            .gateway
            .stream_with(model, request, &self.options)
            .await?;
        Ok(ModelStream {
            stream: served.value,
            target: served.target,
        })
    }
}
