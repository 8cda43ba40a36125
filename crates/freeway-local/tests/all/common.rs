use std::path::PathBuf;
use std::sync::OnceLock;

use freeway_local::{DEFAULT_MODEL, LocalConfig, LocalProvider, default_models_dir};
use freeway_types::{ChatRequest, ChatResponse, Message, Provider, StreamEvent};
use futures_util::StreamExt;

pub fn model_path() -> PathBuf {
    let path = std::env::var_os("FREEWAY_LOCAL_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| default_models_dir().unwrap().join(DEFAULT_MODEL.file_name));
    assert!(
        path.is_file(),
        "the local model is missing at {}: run `scripts/fetch-model.sh` (or set FREEWAY_LOCAL_MODEL)",
        path.display()
    );
    path
}

pub fn config() -> LocalConfig {
    LocalConfig {
        threads: Some(2),
        context_size: 2048,
        ..LocalConfig::with_model(model_path())
    }
}

/// A fresh provider, for tests that look at the engine's counters or KV cache.
pub fn fresh() -> LocalProvider {
    LocalProvider::load(config()).expect("load the local model")
}

/// The provider most tests share (requests queue on its one inference thread).
pub fn shared() -> &'static LocalProvider {
    static P: OnceLock<LocalProvider> = OnceLock::new();
    P.get_or_init(fresh)
}

pub fn greedy(messages: Vec<Message>, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: "smollm2".into(),
        messages,
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..ChatRequest::default()
    }
}

pub fn france() -> Vec<Message> {
    vec![Message::user(
        "What is the capital of France? Answer in one sentence.",
    )]
}

pub async fn events(p: &LocalProvider, req: &ChatRequest) -> Vec<StreamEvent> {
    let mut stream = p.stream(req).await.unwrap();
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        out.push(e.unwrap());
    }
    out
}

pub async fn complete(p: &LocalProvider, req: &ChatRequest) -> ChatResponse {
    p.complete(req).await.unwrap()
}
