//! The mock-provider kit: upstreams that speak the OpenAI, Anthropic and Gemini wire protocols
//! byte for byte as each provider documents them.
//!
//! Two ways to drive it:
//! - [`MockUpstream`] (scripted, for Rust tests): queue [`Reply`]s — whole bodies or
//!   [`SseScript`]s of raw frames with delays, a hang or an abrupt close — then read back the
//!   [`CapturedRequest`]s and the call count.
//! - [`behavior`] (for the `freeway-mock-upstream` binary, the end-to-end suite and the
//!   benchmark): all three protocols at once on their real paths, answering deterministically
//!   from the request, with magic model names for errors, delays and hangs.
//!
//! The per-protocol modules ([`openai`], [`anthropic`], [`gemini`]) render a protocol-neutral
//! [`Answer`] or [`ErrorCase`] in that protocol's exact shapes; both modes use them. Recorded
//! fixtures live in `fixtures/<protocol>/` ([`fixture`]).
//!
//! This crate knows the providers' wire formats and nothing of freeway's own types.

mod answer;
pub mod anthropic;
pub mod behavior;
pub mod gemini;
pub mod openai;
mod script;
mod server;

pub use answer::{
    Answer, ErrorCase, Finish, MockToolCall, MockUsage, arguments_from_schema, fragments,
    text_deltas,
};
pub use script::{Reply, ReplyBody, SseScript, Step, split_frames};
pub use server::{CapturedRequest, MockUpstream};

/// A provider wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::OpenAi, Protocol::Anthropic, Protocol::Gemini];

    /// The fixture folder name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
        }
    }
}

/// The directory holding the recorded fixtures.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A recorded fixture's text: `fixture(Protocol::Anthropic, "stream_tool_use.sse")`.
pub fn fixture(protocol: Protocol, name: &str) -> std::io::Result<String> {
    std::fs::read_to_string(fixtures_dir().join(protocol.name()).join(name))
}
