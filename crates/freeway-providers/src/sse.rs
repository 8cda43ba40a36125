//! Server-sent events: an incremental parser and a stream adapter.
//!
//! Follows the WHATWG event-stream rules that matter for model APIs: lines end in `\n`, `\r\n`
//! or `\r`; `data:` lines of one event are joined with `\n`; a blank line dispatches; lines
//! starting with `:` are comments; one optional space after the colon is dropped. Input arrives
//! in arbitrary chunks, split anywhere — including inside a UTF-8 sequence or a `\r\n`.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use futures_core::Stream;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    pub data: String,
}

/// Why the byte stream could not be read as events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("event stream is not valid UTF-8")]
    InvalidUtf8,
    #[error("event stream line longer than {0} bytes")]
    LineTooLong(usize),
}

/// Longest line accepted; a stream that never ends a line is not an event stream.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Incremental parser: feed bytes, take events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    /// A `\r` ended the previous chunk; a `\n` starting the next one belongs to it.
    pending_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and appends every event they complete to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut chunk = chunk;
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        self.buf.extend_from_slice(chunk);
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if self.buf.len() > MAX_LINE {
                    return Err(SseError::LineTooLong(MAX_LINE));
                }
                return Ok(());
            };
            let line = self.buf.split_to(end);
            let terminator = self.buf[0];
            self.buf.advance(1);
            if terminator == b'\r' {
                match self.buf.first() {
                    Some(b'\n') => self.buf.advance(1),
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            self.line(&line, out)?;
        }
    }

    /// Ends the input: a final event without its blank line is still dispatched, as every
    /// provider's last event sometimes lacks it.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.buf.is_empty() {
            let line = self.buf.split();
            self.line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` steer browser reconnection, which a model stream never uses.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
    }
}

/// Adapts a stream of byte chunks into a stream of events.
pub struct SseStream<S> {
    inner: S,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
    scratch: Vec<SseEvent>,
    done: bool,
}

impl<S> SseStream<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            parser: SseParser::new(),
            ready: std::collections::VecDeque::new(),
            scratch: Vec::new(),
            done: false,
        }
    }
}

/// What can end an event stream early: the transport, or bytes that are not events.
#[derive(Debug)]
pub enum SseStreamError<E> {
    Transport(E),
    Parse(SseError),
}

impl<S, B, E> Stream for SseStream<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    type Item = Result<SseEvent, SseStreamError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let polled = Pin::new(&mut this.inner).poll_next(cx);
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(SseStreamError::Transport(e))));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    let result = this.parser.feed(chunk.as_ref(), &mut this.scratch);
                    this.ready.extend(this.scratch.drain(..));
                    if let Err(e) = result {
                        this.done = true;
                        return Poll::Ready(Some(Err(SseStreamError::Parse(e))));
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let result = this.parser.finish(&mut this.scratch);
                    this.ready.extend(this.scratch.drain(..));
                    if let Err(e) = result {
                        return Poll::Ready(Some(Err(SseStreamError::Parse(e))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(input: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let input = "event: message_start\r\ndata: {\"a\":\r\ndata: \"é\"}\r\n\r\n: ping\n\ndata:x\rdata: y\r\rdata: [DONE]\n\n".as_bytes();
        let expected = vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":\n\"é\"}".into(),
            },
            SseEvent {
                event: None,
                data: "x\ny".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for chunk in 1..input.len() {
            assert_eq!(
                parse_in_chunks(input, chunk),
                expected,
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_dispatched() {
        assert_eq!(
            parse_in_chunks(b"data: tail", 3),
            vec![SseEvent {
                event: None,
                data: "tail".into()
            }]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        assert_eq!(
            p.feed(b"data: \xff\xfe\n\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
    }
}
