//! A response body as a stream of data chunks, each due within the read timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use freeway_types::{ProviderError, TimeoutPhase};
use futures_core::Stream;
use hyper::body::{Body, Incoming};
use tokio::time::{Instant, Sleep};

/// The data of a body; trailers are skipped. A chunk that does not come within `idle` of the
/// previous one (or of the first poll) ends the stream with a read timeout.
///
/// The timer is armed only when the body has nothing ready, so an answer that has already
/// arrived (the usual case for a non-streamed completion) is read without touching the timer
/// wheel; once armed it is moved, never re-created.
pub(super) struct TimedBody {
    body: Incoming,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer's deadline belongs to the chunk awaited now.
    armed: bool,
    provider: Arc<str>,
    done: bool,
}

impl TimedBody {
    pub(super) fn new(body: Incoming, idle: Duration, provider: Arc<str>) -> Self {
        Self {
            body,
            idle,
            timer: None,
            armed: false,
            provider,
            done: false,
        }
    }

    fn error(&mut self, error: ProviderError) -> Poll<Option<Result<Bytes, ProviderError>>> {
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl Stream for TimedBody {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.armed = false;
                    match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                        // Trailers, or an empty chunk: nothing to hand over.
                        _ => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = format!("the response broke off: {}", describe(&e));
                    let error = ProviderError::Connection {
                        provider: this.provider.to_string(),
                        message,
                    };
                    return this.error(error);
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            if !this.armed {
                let deadline = Instant::now() + this.idle;
                match &mut this.timer {
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.armed = true;
            }
            if let Some(timer) = &mut this.timer {
                ready!(timer.as_mut().poll(cx));
            }
            let error = ProviderError::Timeout {
                provider: this.provider.to_string(),
                phase: TimeoutPhase::Read,
            };
            return this.error(error);
        }
    }
}

/// hyper's error and its causes in one line (`error reading a body from connection: …`).
fn describe(e: &hyper::Error) -> String {
    let causes: Vec<String> = super::chain(e).map(ToString::to_string).collect();
    causes.join(": ")
}
