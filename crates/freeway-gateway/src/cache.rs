//! The response cache: exact match on a canonical form of the request, for requests whose
//! answer is deterministic (temperature 0) or that opted in. In memory by default (moka, bounded
//! by bytes); in Redis when `[cache] url = "redis://…"`, so instances share it.
//!
//! The cache never fails a request: a Redis error is logged and counts as a miss.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use freeway_config::CacheSettings;
use freeway_types::{
    ChatRequest, ChatResponse, ChatStream, ProviderError, ResponseFormat, StreamAccumulator,
    StreamEvent, ToolDefinition,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// Redis operations give up after this long: a slow cache must not slow requests.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const REDIS_PREFIX: &str = "freeway:cache:v1:";

/// What a request asks of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Cache deterministic requests (temperature 0) and routes that opted in.
    #[default]
    Default,
    /// The client opted in for this request, whatever its temperature.
    Use,
    /// `cache-control: no-cache`: do not answer from the cache, but store the answer.
    Refresh,
    /// `cache-control: no-store`: leave the cache alone.
    Bypass,
}

/// Whether an answer came from the cache, reported as `x-freeway-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
        }
    }
}

/// Hits, misses and stores since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `memory` or `redis`.
    pub backend: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
    pub errors: u64,
}

/// A cached answer and the target that gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedAnswer {
    pub target: String,
    pub response: ChatResponse,
}

/// The SHA-256 of the canonical request, as hex for Redis keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    /// `model` is the name the client asked for (a route alias or `provider/model`): the same
    /// messages sent to two models are two entries. The end-user id is not part of the answer.
    pub fn new(partition: Option<&str>, model: &str, request: &ChatRequest) -> Option<Self> {
        let mut hasher = Sha256::new();
        // A tenant's answers are its own: the partition leads, length-prefixed.
        let partition = partition.unwrap_or_default();
        hasher.update((partition.len() as u64).to_le_bytes());
        hasher.update(partition.as_bytes());
        hasher.update(model.as_bytes());
        hasher.update([0]);
        // Struct fields serialize in declaration order and JSON objects inside (tool and
        // response schemas) with sorted keys, so equal requests give equal bytes.
        let canonical = ChatRequestKey(request);
        serde_json::to_writer(HashWriter(&mut hasher), &canonical).ok()?;
        Some(CacheKey(hasher.finalize().into()))
    }

    fn redis_key(&self) -> String {
        let mut key = String::with_capacity(REDIS_PREFIX.len() + 64);
        key.push_str(REDIS_PREFIX);
        for b in self.0 {
            key.push(char::from(HEX[usize::from(b >> 4)]));
            key.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        key
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The request as hashed: everything but the model (already hashed as the client named it)
/// and `user`.
struct ChatRequestKey<'a>(&'a ChatRequest);

impl Serialize for ChatRequestKey<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let r = self.0;
        let mut t = serializer.serialize_tuple(13)?;
        t.serialize_element(&r.messages)?;
        t.serialize_element(&Tools(&r.tools))?;
        t.serialize_element(&r.tool_choice)?;
        t.serialize_element(&r.parallel_tool_calls)?;
        t.serialize_element(&r.response_format.as_ref().map(Format))?;
        t.serialize_element(&r.max_tokens)?;
        t.serialize_element(&r.temperature)?;
        t.serialize_element(&r.top_p)?;
        t.serialize_element(&r.top_k)?;
        t.serialize_element(&r.frequency_penalty)?;
        t.serialize_element(&r.presence_penalty)?;
        t.serialize_element(&r.stop)?;
        t.serialize_element(&r.seed)?;
        t.end()
    }
}

/// Tool definitions with their parameter schemas in canonical form.
struct Tools<'a>(&'a [ToolDefinition]);

impl Serialize for Tools<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|t| (&t.name, &t.description, Canonical(&t.parameters), t.strict)),
        )
    }
}

/// A response format with its schema in canonical form.
struct Format<'a>(&'a ResponseFormat);

impl Serialize for Format<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ResponseFormat::Text => serializer.serialize_str("text"),
            ResponseFormat::JsonObject => serializer.serialize_str("json_object"),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => (name, Canonical(schema), strict).serialize(serializer),
        }
    }
}

/// A JSON value with every object's keys in sorted order, whether or not `serde_json` keeps
/// insertion order in this build (its `preserve_order` feature is unified across a workspace).
struct Canonical<'a>(&'a Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                serializer.collect_map(entries.into_iter().map(|(k, v)| (k, Canonical(v))))
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(Canonical)),
            scalar => scalar.serialize(serializer),
        }
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Backend {
    Memory(moka::sync::Cache<CacheKey, Arc<CachedAnswer>>),
    Redis {
        client: redis::Client,
        connection: OnceCell<redis::aio::ConnectionManager>,
    },
}

pub(crate) struct ResponseCache {
    backend: Backend,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    errors: AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("backend", &self.backend_name())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// `None` when the cache is `off`.
    pub fn new(settings: &CacheSettings) -> Result<Option<Self>, String> {
        let backend = if settings.url == "off" {
            return Ok(None);
        } else if settings.url == "memory" {
            Backend::Memory(
                moka::sync::Cache::builder()
                    .max_capacity(settings.max_bytes)
                    .weigher(|_, v: &Arc<CachedAnswer>| weight(v))
                    .time_to_live(settings.ttl)
                    .build(),
            )
        } else {
            let client = redis::Client::open(settings.url.as_str())
                .map_err(|e| format!("cache.url: {e}"))?;
            Backend::Redis {
                client,
                connection: OnceCell::new(),
            }
        };
        Ok(Some(ResponseCache {
            backend,
            ttl: settings.ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stores: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }))
    }

    fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            backend: self.backend_name(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stores: self.stores.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<CachedAnswer>> {
        let found = match &self.backend {
            Backend::Memory(cache) => cache.get(key),
            Backend::Redis { .. } => self.redis_get(key).await,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores an answer without holding up the request: at once in memory, by a task of its
    /// own for Redis (whose failure is only logged).
    pub fn store(self: &Arc<Self>, key: CacheKey, answer: CachedAnswer) {
        match &self.backend {
            Backend::Memory(cache) => {
                cache.insert(key, Arc::new(answer));
                self.stores.fetch_add(1, Ordering::Relaxed);
            }
            Backend::Redis { .. } => {
                let cache = self.clone();
                tokio::spawn(async move { cache.put(key, answer).await });
            }
        }
    }

    pub async fn put(&self, key: CacheKey, answer: CachedAnswer) {
        match &self.backend {
            Backend::Memory(cache) => cache.insert(key, Arc::new(answer)),
            Backend::Redis { .. } => {
                if !self.redis_put(&key, &answer).await {
                    return;
                }
            }
        }
        self.stores.fetch_add(1, Ordering::Relaxed);
    }

    async fn redis(&self) -> Option<redis::aio::ConnectionManager> {
        let Backend::Redis { client, connection } = &self.backend else {
            return None;
        };
        let made = connection
            .get_or_try_init(|| async {
                tokio::time::timeout(REDIS_TIMEOUT * 4, client.get_connection_manager())
                    .await
                    .map_err(|_| "timed out connecting".to_owned())?
                    .map_err(|e| e.to_string())
            })
            .await;
        match made {
            Ok(c) => Some(c.clone()),
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            error,
            "response cache (redis) unavailable; serving without it"
        );
    }

    async fn redis_get(&self, key: &CacheKey) -> Option<Arc<CachedAnswer>> {
        let mut conn = self.redis().await?;
        let cmd = redis::cmd("GET").arg(key.redis_key()).clone();
        let bytes: Option<Vec<u8>> =
            match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async(&mut conn)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    self.failed(&e.to_string());
                    return None;
                }
                Err(_) => {
                    self.failed("GET timed out");
                    return None;
                }
            };
        match serde_json::from_slice(&bytes?) {
            Ok(answer) => Some(Arc::new(answer)),
            Err(e) => {
                self.failed(&format!("unreadable entry: {e}"));
                None
            }
        }
    }

    async fn redis_put(&self, key: &CacheKey, answer: &CachedAnswer) -> bool {
        let Some(mut conn) = self.redis().await else {
            return false;
        };
        let Ok(body) = serde_json::to_vec(answer) else {
            return false;
        };
        let cmd = redis::cmd("SET")
            .arg(key.redis_key())
            .arg(body)
            .arg("PX")
            .arg(
                u64::try_from(self.ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .clone();
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                false
            }
            Err(_) => {
                self.failed("SET timed out");
                false
            }
        }
    }
}

/// Approximate bytes an entry holds, for the memory bound.
fn weight(answer: &CachedAnswer) -> u32 {
    let r = &answer.response;
    let text: usize = r
        .content
        .iter()
        .map(|p| match p {
            freeway_types::ContentPart::Text { text } => text.len(),
            freeway_types::ContentPart::Image { .. } => 1024,
        })
        .sum();
    let calls: usize = r
        .tool_calls
        .iter()
        .map(|c| c.id.len() + c.name.len() + c.arguments.len())
        .sum();
    u32::try_from(256 + answer.target.len() + r.id.len() + r.model.len() + text + calls)
        .unwrap_or(u32::MAX)
}

/// A cached answer played back as a stream, in the order a provider would send it.
pub(crate) fn replay(response: &ChatResponse) -> ChatStream {
    let mut events = Vec::with_capacity(3 + 2 * response.tool_calls.len());
    let text = response.text();
    if !text.is_empty() {
        events.push(Ok(StreamEvent::TextDelta { text }));
    }
    for (index, call) in (0u32..).zip(&response.tool_calls) {
        events.push(Ok(StreamEvent::ToolCallStart {
            index,
            id: call.id.clone(),
            name: call.name.clone(),
        }));
        events.push(Ok(StreamEvent::ToolCallDelta {
            index,
            arguments: call.arguments.clone(),
        }));
    }
    events.push(Ok(StreamEvent::Usage {
        usage: response.usage,
    }));
    events.push(Ok(StreamEvent::Finish {
        reason: response.finish_reason,
        stop_sequence: response.stop_sequence.clone(),
    }));
    Box::pin(futures_util::stream::iter(events))
}

/// Passes a stream through and, if it ends with a finish reason and no error, stores what it
/// said. A stream the client abandons is not stored.
pub(crate) struct Filling {
    inner: ChatStream,
    acc: Option<StreamAccumulator>,
    finished: bool,
    key: CacheKey,
    target: String,
    cache: Arc<ResponseCache>,
}

impl Filling {
    pub fn new(
        inner: ChatStream,
        cache: Arc<ResponseCache>,
        key: CacheKey,
        target: String,
    ) -> Self {
        Filling {
            inner,
            acc: Some(StreamAccumulator::new()),
            finished: false,
            key,
            target,
            cache,
        }
    }
}

impl Stream for Filling {
    type Item = Result<StreamEvent, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(event)) => {
                if matches!(event, StreamEvent::Finish { .. }) {
                    this.finished = true;
                }
                if let Some(acc) = &mut this.acc {
                    acc.push(event.clone());
                }
            }
            Some(Err(_)) => this.acc = None,
            None => {
                if let Some(acc) = this.acc.take().filter(|_| this.finished) {
                    let answer = CachedAnswer {
                        target: std::mem::take(&mut this.target),
                        response: acc.finish(String::new(), String::new()),
                    };
                    this.cache.store(this.key, answer);
                }
            }
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_types::Message;

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "ignored".into(),
            messages: vec![Message::user(text)],
            temperature: Some(0.0),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn equal_requests_share_a_key_and_any_difference_splits_it() {
        let a = CacheKey::new(None, "m", &request("hi")).unwrap();
        assert_eq!(a, CacheKey::new(None, "m", &request("hi")).unwrap());
        assert_ne!(a, CacheKey::new(None, "other", &request("hi")).unwrap());
        assert_ne!(
            a,
            CacheKey::new(Some("team_a"), "m", &request("hi")).unwrap()
        );
        assert_ne!(
            CacheKey::new(Some("team_a"), "m", &request("hi")).unwrap(),
            CacheKey::new(Some("team_b"), "m", &request("hi")).unwrap(),
            "one tenant's cached answers never reach another"
        );
        assert_ne!(a, CacheKey::new(None, "m", &request("hi!")).unwrap());
        let mut r = request("hi");
        r.max_tokens = Some(5);
        assert_ne!(a, CacheKey::new(None, "m", &r).unwrap());
        let mut r = request("hi");
        r.user = Some("alice".into());
        r.model = "different-upstream-name".into();
        assert_eq!(
            a,
            CacheKey::new(None, "m", &r).unwrap(),
            "user and upstream model are not part of it"
        );
    }

    #[test]
    fn tool_schemas_hash_the_same_whatever_their_key_order() {
        let tool = |params: &str| freeway_types::ToolDefinition {
            name: "f".into(),
            description: None,
            parameters: serde_json::from_str(params).unwrap(),
            strict: None,
        };
        let mut a = request("hi");
        a.tools.push(tool(r#"{"type":"object","properties":{}}"#));
        let mut b = request("hi");
        b.tools.push(tool(r#"{"properties":{},"type":"object"}"#));
        assert_eq!(CacheKey::new(None, "m", &a), CacheKey::new(None, "m", &b));

        let format = |schema: &str| ResponseFormat::JsonSchema {
            name: "s".into(),
            schema: serde_json::from_str(schema).unwrap(),
            strict: None,
        };
        a.response_format = Some(format(r#"{"type":"object","required":["x"]}"#));
        b.response_format = Some(format(r#"{"required":["x"],"type":"object"}"#));
        assert_eq!(CacheKey::new(None, "m", &a), CacheKey::new(None, "m", &b));
        b.response_format = Some(format(r#"{"required":["y"],"type":"object"}"#));
        assert_ne!(CacheKey::new(None, "m", &a), CacheKey::new(None, "m", &b));
    }

    #[test]
    fn redis_keys_are_prefixed_hex() {
        let k = CacheKey::new(None, "m", &request("hi"))
            .unwrap()
            .redis_key();
        assert!(k.starts_with(REDIS_PREFIX));
        assert_eq!(k.len(), REDIS_PREFIX.len() + 64);
        assert!(
            k[REDIS_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
    }
}
