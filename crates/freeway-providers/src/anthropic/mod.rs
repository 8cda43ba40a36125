//! The Anthropic Messages protocol (`POST /v1/messages`).

mod request;
mod response;

use freeway_types::{
    ChatRequest, ChatResponse, ChatStream, ModelInfo, Provider, ProviderError, StreamEvent,
};
use http::{HeaderName, HeaderValue};

use crate::decode::{EventDecoder, decode_stream};
use crate::sse::SseEvent;
use crate::transport::{HttpClient, HttpSettings};
use response::{EventTranslator, WireModelList, WireResponse};

/// The API version freeway speaks; Anthropic requires it on every request.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` is mandatory in this protocol; this is sent when the client gave none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct AnthropicProvider {
    http: HttpClient,
    messages_url: http::Uri,
    headers: [(HeaderName, HeaderValue); 1],
    default_max_tokens: u32,
}

impl AnthropicProvider {
    /// `settings.base_url` is the host root (`https://api.anthropic.com`); `/v1/messages` is
    /// appended. Auth goes in `x-api-key`.
    pub fn new(settings: &HttpSettings, default_max_tokens: u32) -> Result<Self, ProviderError> {
        // `…/v1` is a common slip (it is right for OpenAI); the API root is meant.
        let mut settings = settings.clone();
        let root = settings.base_url.trim_end_matches('/');
        settings.base_url = root.strip_suffix("/v1").unwrap_or(root).to_owned();
        let http = HttpClient::new(&settings)?;
        Ok(Self {
            messages_url: http.uri("/v1/messages")?,
            http,
            headers: [(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(API_VERSION),
            )],
            default_max_tokens,
        })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Vec<u8>, ProviderError> {
        request::body(request, stream, self.default_max_tokens)
            .map_err(|e| self.http.unsayable(e.0))
    }
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        self.http.provider()
    }

    fn system(&self) -> &'static str {
        "anthropic"
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = self.body(request, true)?;
        let response = self
            .http
            .post_json(
                self.messages_url.clone(),
                &self.headers,
                body,
                response::classify,
            )
            .await?;
        let decoder = Decoder {
            provider: self.http.provider().to_owned(),
            events: EventTranslator::default(),
        };
        Ok(decode_stream(self.http.events(response), decoder))
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(request, false)?;
        let response = self
            .http
            .post_json(
                self.messages_url.clone(),
                &self.headers,
                body,
                response::classify,
            )
            .await?;
        let wire: WireResponse = self.http.read_json(response, "message").await?;
        Ok(wire.into())
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let url = self.http.uri("/v1/models?limit=1000")?;
        let response = self
            .http
            .get(url, &self.headers, response::classify)
            .await?;
        let list: WireModelList = self.http.read_json(response, "model list").await?;
        Ok(list.into())
    }
}

struct Decoder {
    provider: String,
    events: EventTranslator,
}

impl EventDecoder for Decoder {
    fn decode(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        self.events.decode(&self.provider, &event.data, out)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        self.events.finish(&self.provider, out)
    }
}
