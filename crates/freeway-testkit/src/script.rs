//! What a mock answers: a status, headers and a body that is either whole or a scripted stream.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

/// One scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Waited before anything is sent, headers included (a slow first byte).
    pub delay: Option<Duration>,
    pub body: ReplyBody,
}

#[derive(Debug, Clone)]
pub enum ReplyBody {
    Whole(Bytes),
    Stream(SseScript),
}

impl Reply {
    /// A JSON body with `content-type: application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::raw(status, "application/json", value.to_string())
    }

    /// Any body, byte for byte.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            delay: None,
            body: ReplyBody::Whole(body.into()),
        }
    }

    /// A `200 text/event-stream` answer played step by step.
    pub fn sse(script: SseScript) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("content-type".to_owned(), "text/event-stream".to_owned()),
                ("cache-control".to_owned(), "no-cache".to_owned()),
            ],
            delay: None,
            body: ReplyBody::Stream(script),
        }
    }

    /// Adds (or replaces) a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Waits before sending the status line: the first byte is late.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The body of a whole reply as text (empty for a stream); handy in assertions.
    pub fn body_text(&self) -> String {
        match &self.body {
            ReplyBody::Whole(b) => String::from_utf8_lossy(b).into_owned(),
            ReplyBody::Stream(s) => s.text(),
        }
    }

    pub(crate) fn into_response(self) -> Response {
        let body = match self.body {
            ReplyBody::Whole(bytes) => Body::from(bytes),
            ReplyBody::Stream(script) => script.into_body(),
        };
        let mut response = Response::new(body);
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        response
    }
}

/// One step of a streamed body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Bytes written as they are (one or more frames, or part of one).
    Bytes(Bytes),
    Delay(Duration),
    /// Stop sending and never finish: the connection stays open and silent.
    Hang,
    /// Break the connection without ending the body (no final chunk): an abrupt close.
    Abort,
}

/// A streamed body as raw frames, with optional pauses, a hang, or an abrupt close. When the
/// steps run out the body ends cleanly.
#[derive(Debug, Clone, Default)]
pub struct SseScript {
    pub steps: Vec<Step>,
}

impl SseScript {
    pub fn new() -> Self {
        Self::default()
    }

    /// Raw bytes, sent as they are.
    pub fn raw(mut self, bytes: impl Into<Bytes>) -> Self {
        self.steps.push(Step::Bytes(bytes.into()));
        self
    }

    /// OpenAI framing: `data: {json}\n\n`.
    pub fn data(self, json: &serde_json::Value) -> Self {
        self.raw(format!("data: {json}\n\n"))
    }

    /// OpenAI's end marker `data: [DONE]\n\n`.
    pub fn done(self) -> Self {
        self.raw("data: [DONE]\n\n")
    }

    /// Anthropic framing: `event: name\ndata: {json}\n\n`.
    pub fn event(self, name: &str, json: &serde_json::Value) -> Self {
        self.raw(format!("event: {name}\ndata: {json}\n\n"))
    }

    /// Gemini framing: `data: {json}\r\n\r\n`.
    pub fn gemini(self, json: &serde_json::Value) -> Self {
        self.raw(format!("data: {json}\r\n\r\n"))
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.steps.push(Step::Delay(delay));
        self
    }

    pub fn hang(mut self) -> Self {
        self.steps.push(Step::Hang);
        self
    }

    pub fn abort(mut self) -> Self {
        self.steps.push(Step::Abort);
        self
    }

    /// A recorded stream (a fixture file), one step per frame so every frame is its own write.
    pub fn from_recording(text: &str) -> Self {
        let mut script = Self::new();
        for frame in split_frames(text) {
            script = script.raw(frame.to_owned());
        }
        script
    }

    /// Keeps only the first `n` byte-writing steps (the rest of the stream never comes).
    pub fn truncate_frames(mut self, n: usize) -> Self {
        let mut seen = 0;
        self.steps.retain(|s| {
            if matches!(s, Step::Bytes(_)) {
                seen += 1;
                seen <= n
            } else {
                seen < n
            }
        });
        self
    }

    /// How many frames (byte steps) the script writes.
    pub fn frame_count(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Bytes(_)))
            .count()
    }

    /// Every byte the script writes, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            if let Step::Bytes(b) = step {
                out.push_str(&String::from_utf8_lossy(b));
            }
        }
        out
    }

    pub(crate) fn into_body(self) -> Body {
        let stream = futures_util::stream::unfold(self.steps.into_iter(), |mut steps| async move {
            loop {
                match steps.next()? {
                    Step::Bytes(b) => return Some((Ok::<_, std::io::Error>(b), steps)),
                    Step::Delay(d) => tokio::time::sleep(d).await,
                    Step::Hang => std::future::pending::<()>().await,
                    Step::Abort => {
                        return Some((Err(std::io::Error::other("scripted abrupt close")), steps));
                    }
                }
            }
        });
        Body::from_stream(stream)
    }
}

/// Splits an event stream into its frames, each keeping its terminating blank line (`\n\n` or
/// `\r\n\r\n`).
pub fn split_frames(text: &str) -> Vec<&str> {
    let mut frames = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = [
            rest.find("\r\n\r\n").map(|i| i + 4),
            rest.find("\n\n").map(|i| i + 2),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
        frames.push(&rest[..end]);
        rest = &rest[end..];
    }
    frames
}
