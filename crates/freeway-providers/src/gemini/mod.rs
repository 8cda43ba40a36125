//! The Gemini API protocol: `generateContent` and `streamGenerateContent?alt=sse`.

mod request;
mod response;

use std::fmt::Write as _;

use freeway_types::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse, ModelInfo,
    Provider, ProviderError, StreamAccumulator, StreamEvent,
};

use crate::decode::{EventDecoder, decode_stream};
use crate::sse::SseEvent;
use crate::transport::{HttpClient, HttpSettings};
use response::{ChunkTranslator, WireEmbeddings, WireModelList, WireResponse};

pub struct GeminiProvider {
    http: HttpClient,
}

impl GeminiProvider {
    /// `settings.base_url` is the host root (`https://generativelanguage.googleapis.com`); the
    /// key goes in `x-goog-api-key`.
    pub fn new(settings: &HttpSettings) -> Result<Self, ProviderError> {
        // Accept the API version in the URL too: the paths add it themselves.
        let mut settings = settings.clone();
        let root = settings.base_url.trim_end_matches('/');
        settings.base_url = root
            .strip_suffix("/v1beta")
            .or_else(|| root.strip_suffix("/v1"))
            .unwrap_or(root)
            .to_owned();
        Ok(Self {
            http: HttpClient::new(&settings)?,
        })
    }

    /// `…/v1beta/models/{model}:{method}`, the model name escaped so that it stays one path
    /// segment whatever a client sent.
    fn model_url(&self, model: &str, method: &str) -> Result<http::Uri, ProviderError> {
        let mut path = String::with_capacity(16 + model.len() + method.len());
        path.push_str("/v1beta/models/");
        for b in model.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                path.push(char::from(b));
            } else {
                let _ = write!(path, "%{b:02X}");
            }
        }
        path.push(':');
        path.push_str(method);
        self.http.uri(&path)
    }

    fn unsayable(&self, e: request::Unsayable) -> ProviderError {
        self.http.unsayable(e.0)
    }
}

#[async_trait::async_trait]
impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        self.http.provider()
    }

    fn system(&self) -> &'static str {
        "gcp.gemini"
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = request::chat_body(request).map_err(|e| self.unsayable(e))?;
        let url = self.model_url(&request.model, "streamGenerateContent?alt=sse")?;
        let response = self
            .http
            .post_json(url, &[], body, response::classify)
            .await?;
        let decoder = Decoder {
            provider: self.http.provider().to_owned(),
            chunks: ChunkTranslator::default(),
        };
        Ok(decode_stream(self.http.events(response), decoder))
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = request::chat_body(request).map_err(|e| self.unsayable(e))?;
        let url = self.model_url(&request.model, "generateContent")?;
        let response = self
            .http
            .post_json(url, &[], body, response::classify)
            .await?;
        let wire: WireResponse = self.http.read_json(response, "generateContent").await?;
        let id = wire.response_id.clone().unwrap_or_default();
        let model = wire
            .model_version
            .clone()
            .unwrap_or_else(|| request.model.clone());
        // One whole response is one chunk of the stream: the same translation serves both.
        let mut events = Vec::new();
        let mut chunks = ChunkTranslator::default();
        chunks.push(wire, &mut events);
        chunks.finish(&mut events);
        let mut acc = StreamAccumulator::new();
        events.into_iter().for_each(|e| acc.push(e));
        Ok(acc.finish(id, model))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let response = self
            .http
            .get(
                self.http.uri("/v1beta/models?pageSize=1000")?,
                &[],
                response::classify,
            )
            .await?;
        let list: WireModelList = self.http.read_json(response, "model list").await?;
        Ok(list.into())
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let body = request::embedding_body(request).map_err(|e| self.unsayable(e))?;
        let url = self.model_url(&request.model, "batchEmbedContents")?;
        let response = self
            .http
            .post_json(url, &[], body, response::classify)
            .await?;
        let wire: WireEmbeddings = self.http.read_json(response, "batchEmbedContents").await?;
        Ok(wire.into_response(&request.model))
    }
}

struct Decoder {
    provider: String,
    chunks: ChunkTranslator,
}

impl EventDecoder for Decoder {
    fn decode(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(false);
        }
        let chunk: WireResponse =
            serde_json::from_str(&event.data).map_err(|e| ProviderError::InvalidResponse {
                provider: self.provider.clone(),
                message: format!("stream chunk: {e}"),
            })?;
        if let Some(error) = chunk.error {
            let status = error
                .get("code")
                .and_then(serde_json::Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .and_then(|c| http::StatusCode::from_u16(c).ok())
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            let body = serde_json::json!({ "error": error }).to_string();
            return Err(response::classify(
                &self.provider,
                status,
                &http::HeaderMap::new(),
                body.as_bytes(),
            ));
        }
        self.chunks.push(chunk, out);
        Ok(false)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if !self.chunks.has_finish_reason() {
            return Err(ProviderError::InvalidResponse {
                provider: self.provider.clone(),
                message: "the stream ended before the response was complete".into(),
            });
        }
        self.chunks.finish(out);
        Ok(())
    }
}
