//! The embedded local model: GGUF files run in-process, behind the
//! [`Provider`](freeway_types::Provider) trait, so freeway answers with no network and no API key.
//!
//! This crate owns loading a GGUF model (weights, tokenizer and chat template from its
//! metadata), rendering chat templates ([`template`]), sampling, stop sequences, streaming with
//! correct UTF-8, constrained decoding for JSON output and forced tool calls, reading tool calls
//! out of generated text, KV-cache reuse across turns, and fetching model files ([`models`]). It
//! knows nothing of HTTP ingress, routing or configuration files: the gateway constructs a
//! [`LocalProvider`] from a [`LocalConfig`] and uses it like any other provider.
//!
//! # Engine
//!
//! Inference is llama.cpp through the `llama-cpp-2` crate, built from source by cargo. On this
//! project's reference machine (2 vCPU Zen 4) it decodes SmolLM2-135M Q4_1 at ~125 tokens/s,
//! like llama.cpp itself, where candle 0.11 reached ~0.5x (no SIMD kernel for Q4_1); see
//! `bench/RESULTS.md`. The engine is an implementation detail behind `Provider`.
//!
//! One inference thread owns the llama.cpp context; requests queue in arrival order (FIFO) and
//! never block the async runtime. Dropping a stream stops its generation before the next token.
//! The KV cache keeps the previous request's tokens: a request that starts with the same tokens
//! (the next turn of a conversation) evaluates only what is new.
//!
//! # Building
//!
//! Needs `cmake`, a C++ compiler and libclang (Debian: `apt-get install cmake clang
//! libclang-dev`); the first build of llama.cpp takes about 4 minutes on 2 cores.
//!
//! llama.cpp's SIMD level follows the Rust target CPU: with Rust's default `x86-64` baseline it
//! is built with no AVX at all and runs several times slower. The workspace's
//! `.cargo/config.toml` therefore sets `-C target-cpu=native` for x86-64 Linux, which makes
//! `llama-cpp-sys-2` build llama.cpp with `GGML_NATIVE`. Such a binary runs only on CPUs like
//! the build machine's. For a portable release build with an explicit baseline instead, e.g.
//! `RUSTFLAGS="-C target-cpu=x86-64-v3"` (AVX2, FMA, F16C): the build script passes the same
//! `-march` to llama.cpp. Cargo features used: `llguidance` (constrained decoding) only. Default
//! features are off, `openmp` included: with OpenMP, decoding on our own inference thread ran at
//! ~30 tokens/s here, with ggml's own thread pool at ~120-150 (see `bench/RESULTS.md`).
//!
//! # Tool calls and JSON
//!
//! Tools are rendered by the model's chat template when it knows `tools`; otherwise they go into
//! the system prompt in the Hermes format. Calls are parsed from
//! `<tool_call>{...}</tool_call>` blocks or a bare `{"name": .., "arguments": ..}` answer. With
//! `tool_choice` `required` or a named tool, and with `response_format` `json_object` /
//! `json_schema`, llguidance masks the sampler so only output valid for the grammar can be
//! produced; even a 135M model then answers with a valid call or schema-valid JSON (cut short
//! only if `max_tokens` runs out).

mod config;
mod engine;
mod error;
pub mod models;
mod provider;
mod stop;
pub mod template;
mod tools;
mod utf8;

pub use config::{AutoToolChoice, LocalConfig, SamplingDefaults};
pub use engine::EngineStats;
pub use error::LocalError;
pub use models::{
    DEFAULT_MODEL, HubConfig, ModelSource, PullPhase, PullProgress, default_models_dir,
};
pub use provider::{LoadProgress, LocalProvider};
