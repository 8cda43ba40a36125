//! The scripted mock: tests queue replies, then read back what the client sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use tokio::task::JoinHandle;

use crate::Protocol;
use crate::script::Reply;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl CapturedRequest {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Path and query as sent: `/v1beta/models/m:streamGenerateContent?alt=sse`.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

#[derive(Default)]
struct Shared {
    replies: VecDeque<Reply>,
    requests: Vec<CapturedRequest>,
}

/// A scripted upstream on `127.0.0.1:<random port>`.
///
/// Every request, whatever its path, takes the next queued [`Reply`]; with none left it gets a
/// 500 saying so. The server lives until the mock is dropped.
pub struct MockUpstream {
    protocol: Protocol,
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl MockUpstream {
    pub async fn start(protocol: Protocol) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            // The server ends only when the mock is dropped (the task is aborted).
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            protocol,
            addr,
            shared,
            task,
        })
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL a provider of this protocol is configured with: `…/v1` for OpenAI, the host
    /// root for Anthropic and Gemini.
    pub fn base_url(&self) -> String {
        match self.protocol {
            Protocol::OpenAi => format!("http://{}/v1", self.addr),
            Protocol::Anthropic | Protocol::Gemini => self.url(),
        }
    }

    /// Queues a reply; replies are used in order.
    pub fn push(&self, reply: Reply) -> &Self {
        self.lock().replies.push_back(reply);
        self
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.lock().requests.clone()
    }

    /// The most recent request; panics-free callers get `None` when there was none.
    pub fn last_request(&self) -> Option<CapturedRequest> {
        self.lock().requests.last().cloned()
    }

    pub fn calls(&self) -> usize {
        self.lock().requests.len()
    }

    /// Replies queued but not used yet.
    pub fn pending_replies(&self) -> usize {
        self.lock().replies.len()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let captured = CapturedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let reply = {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.requests.push(captured);
        shared.replies.pop_front()
    };
    let reply = reply.unwrap_or_else(|| {
        Reply::raw(
            500,
            "text/plain",
            "freeway-testkit: no scripted reply left for this request",
        )
    });
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    reply.into_response()
}
