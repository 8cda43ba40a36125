//! Turning the gateway's event stream into an ingress format's SSE frames.

use bytes::Bytes;
use freeway_types::{ChatStream, StreamEvent};
use futures_util::{Stream, StreamExt};

use crate::error::ApiError;

/// One ingress format's stream encoding. Each method returns whole SSE frames.
pub trait FrameEncoder: Send + 'static {
    /// Frames sent before any event (Anthropic's `message_start`).
    fn start(&mut self) -> Option<Bytes> {
        None
    }

    /// Frames for one event; `None` for events that only update state.
    fn event(&mut self, event: StreamEvent) -> Option<Bytes>;

    /// The closing frames after the last event.
    fn end(&mut self) -> Bytes;

    /// A failure after the stream began, in the format's own error shape. Nothing follows it.
    fn error(&mut self, error: ApiError) -> Bytes;
}

/// Frames for a whole stream. Pulls one event at a time, so the client's pace is the
/// upstream's pace (no buffering of the stream).
pub fn frames<E: FrameEncoder>(
    events: ChatStream,
    mut encoder: E,
) -> impl Stream<Item = Bytes> + Send {
    let start = encoder.start();
    let body = futures_util::stream::unfold(Some((events, encoder)), |state| async move {
        let (mut events, mut encoder) = state?;
        loop {
            match events.next().await {
                Some(Ok(event)) => {
                    if let Some(frame) = encoder.event(event) {
                        return Some((frame, Some((events, encoder))));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "stream failed after it began");
                    return Some((encoder.error(e.into()), None));
                }
                None => return Some((encoder.end(), None)),
            }
        }
    });
    futures_util::stream::iter(start).chain(body)
}
