//! Turning a provider's event stream into a [`ChatStream`], shared by every protocol.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use freeway_types::{ChatStream, ProviderError, StreamEvent};
use futures_core::Stream;

use crate::sse::SseEvent;

/// A protocol's stream translation: one SSE event in, zero or more [`StreamEvent`]s out.
pub(crate) trait EventDecoder: Send + Unpin + 'static {
    /// Decodes one event. Returns `true` when the protocol says the stream is complete.
    fn decode(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError>;

    /// Called once after the last event: emits the closing events, or fails if the upstream
    /// stopped before the response was complete.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;
}

pub(crate) fn decode_stream<S, D>(events: S, decoder: D) -> ChatStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
    D: EventDecoder,
{
    Box::pin(Decoded {
        events: Box::pin(events),
        decoder,
        ready: VecDeque::new(),
        scratch: Vec::new(),
        state: State::Streaming,
        error: None,
    })
}

enum State {
    Streaming,
    /// The protocol's own end marker arrived; nothing after it is read.
    Finishing,
    Done,
}

struct Decoded<D> {
    events: Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>,
    decoder: D,
    ready: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    state: State,
    /// Ends the stream once the events decoded before it have been delivered.
    error: Option<ProviderError>,
}

impl<D: EventDecoder> Stream for Decoded<D> {
    type Item = Result<StreamEvent, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            match this.state {
                State::Done => return Poll::Ready(this.error.take().map(Err)),
                State::Finishing => {
                    this.state = State::Done;
                    let result = this.decoder.finish(&mut this.scratch);
                    this.ready.extend(this.scratch.drain(..));
                    this.error = result.err();
                    continue;
                }
                State::Streaming => {}
            }
            match this.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(event))) => {
                    let result = this.decoder.decode(event, &mut this.scratch);
                    this.ready.extend(this.scratch.drain(..));
                    match result {
                        Ok(true) => this.state = State::Finishing,
                        Ok(false) => {}
                        Err(e) => {
                            this.state = State::Done;
                            this.error = Some(e);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Done;
                    this.error = Some(e);
                }
                Poll::Ready(None) => this.state = State::Finishing,
            }
        }
    }
}
