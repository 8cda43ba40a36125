//! The inference thread: one llama.cpp context, jobs taken in arrival order.
//!
//! The model's weights are shared (`Arc<LlamaModel>`: tokenizing happens on the caller's side);
//! the context, its KV cache and the token history that cache holds belong to this thread
//! alone. Each job streams its events through a channel; when the receiving side is dropped (the
//! client went away) the job stops at the next token, and a job whose receiver is gone before it
//! starts is skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use freeway_types::{FinishReason, ProviderError, StreamEvent, Usage};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use crate::LocalError;
use crate::stop::StopMatcher;
use crate::tools::{Piece, ToolCallParser};
use crate::utf8::Utf8Decoder;

/// llama.cpp's backend is process-global (initialising it twice is an error), so it is set up
/// once here and shared by every model the process loads.
pub(crate) fn backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Engine(e.clone()))
}

/// Resolved sampling settings of one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sampling {
    /// 0 or less: greedy.
    pub(crate) temperature: f32,
    pub(crate) top_p: f32,
    pub(crate) top_k: u32,
    pub(crate) min_p: f32,
    pub(crate) repeat_penalty: f32,
    pub(crate) repeat_last_n: u32,
    pub(crate) frequency_penalty: f32,
    pub(crate) presence_penalty: f32,
    pub(crate) seed: u32,
}

/// One request for the inference thread.
pub(crate) struct Job {
    pub(crate) prompt: Vec<LlamaToken>,
    pub(crate) max_tokens: u32,
    pub(crate) sampling: Sampling,
    /// A compiled constraint (JSON schema, forced tool call), applied before sampling.
    pub(crate) grammar: Option<llguidance::Matcher>,
    /// A constraint for the rest of a tool call, applied once the model writes the opening tag.
    pub(crate) lazy_call_grammar: Option<llguidance::Matcher>,
    pub(crate) stops: Vec<String>,
    /// Read tool calls out of the text.
    pub(crate) parse_tools: bool,
    /// Prefix for the ids of parsed tool calls.
    pub(crate) call_id_prefix: String,
    pub(crate) events: UnboundedSender<Result<StreamEvent, ProviderError>>,
}

/// Counters of the inference thread, for tests, benchmarks and metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    started: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    queued: AtomicU64,
    prompt_tokens_evaluated: AtomicU64,
    prompt_tokens_reused: AtomicU64,
    tokens_generated: AtomicU64,
    lazy_grammars: AtomicU64,
    last_prompt_tokens: AtomicU64,
    last_prompt_us: AtomicU64,
    last_output_tokens: AtomicU64,
    last_decode_us: AtomicU64,
}

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Jobs the inference thread started.
    pub started: u64,
    /// Jobs that ran to a finish reason.
    pub completed: u64,
    /// Jobs stopped (or skipped) because their stream was dropped.
    pub cancelled: u64,
    pub failed: u64,
    /// Jobs waiting for the inference thread now.
    pub queued: u64,
    /// Prompt tokens run through the model.
    pub prompt_tokens_evaluated: u64,
    /// Prompt tokens whose KV cache entries were reused from the previous request.
    pub prompt_tokens_reused: u64,
    pub tokens_generated: u64,
    /// Tool calls the model opened by itself and that were then constrained to be valid.
    pub lazy_tool_grammars: u64,
    /// The last job: prompt tokens evaluated and the time until its first token was sampled.
    pub last_prompt_tokens: u64,
    pub last_prompt_time: Duration,
    /// The last job: tokens generated after the first, and the time they took.
    pub last_decode_tokens: u64,
    pub last_decode_time: Duration,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> EngineStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EngineStats {
            started: g(&self.started),
            completed: g(&self.completed),
            cancelled: g(&self.cancelled),
            failed: g(&self.failed),
            queued: g(&self.queued),
            prompt_tokens_evaluated: g(&self.prompt_tokens_evaluated),
            prompt_tokens_reused: g(&self.prompt_tokens_reused),
            tokens_generated: g(&self.tokens_generated),
            lazy_tool_grammars: g(&self.lazy_grammars),
            last_prompt_tokens: g(&self.last_prompt_tokens),
            last_prompt_time: Duration::from_micros(g(&self.last_prompt_us)),
            last_decode_tokens: g(&self.last_output_tokens),
            last_decode_time: Duration::from_micros(g(&self.last_decode_us)),
        }
    }

    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    pub(crate) fn enqueue(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unqueue(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Settings of the inference context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContextSettings {
    pub(crate) n_ctx: u32,
    pub(crate) n_batch: u32,
    pub(crate) threads: i32,
    pub(crate) flash_attention: Option<bool>,
}

/// Starts the inference thread and waits until its context exists.
pub(crate) fn spawn(
    model: Arc<LlamaModel>,
    settings: ContextSettings,
    provider: String,
    stats: Arc<Stats>,
) -> Result<mpsc::Sender<Job>, LocalError> {
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), LocalError>>(1);
    std::thread::Builder::new()
        .name("freeway-local-inference".to_owned())
        .spawn(move || run(&model, settings, &provider, &stats, &jobs_rx, &ready_tx))
        .map_err(|e| LocalError::Engine(format!("cannot start the inference thread: {e}")))?;
    ready_rx
        .recv()
        .map_err(|_| LocalError::Engine("the inference thread died while starting".into()))??;
    Ok(jobs_tx)
}

fn run(
    model: &LlamaModel,
    settings: ContextSettings,
    provider: &str,
    stats: &Stats,
    jobs: &mpsc::Receiver<Job>,
    ready: &mpsc::SyncSender<Result<(), LocalError>>,
) {
    let ctx = backend().and_then(|backend| {
        // llama.cpp's flash-attention policy: -1 auto, 0 off, 1 on.
        let flash = settings.flash_attention.map_or(-1, i32::from);
        let params = LlamaContextParams::default()
            .with_flash_attention_policy(flash)
            .with_n_ctx(std::num::NonZeroU32::new(settings.n_ctx))
            .with_n_batch(settings.n_batch)
            .with_n_ubatch(settings.n_batch)
            .with_n_threads(settings.threads)
            .with_n_threads_batch(settings.threads);
        model
            .new_context(backend, params)
            .map_err(|e| LocalError::Engine(format!("cannot create the inference context: {e}")))
    });
    let mut ctx = match ctx {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut worker = Worker {
        model,
        batch: LlamaBatch::new(settings.n_batch as usize, 1),
        n_batch: settings.n_batch as usize,
        cached: Vec::new(),
        provider,
        stats,
    };
    // The loop ends when the provider (the only sender) is dropped.
    while let Ok(job) = jobs.recv() {
        stats.unqueue();
        if job.events.is_closed() {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        stats.started.fetch_add(1, Ordering::Relaxed);
        let events = job.events.clone();
        match worker.generate(&mut ctx, job) {
            Ok(Outcome::Finished) => {
                stats.completed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Outcome::Cancelled) => {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                // The cache's state is unknown after a failed decode: start afresh.
                ctx.clear_kv_cache();
                worker.cached.clear();
                let _ = events.send(Err(err));
            }
        }
    }
}

enum Outcome {
    Finished,
    Cancelled,
}

struct Worker<'m> {
    model: &'m LlamaModel,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    /// The tokens whose keys and values sit in the KV cache, positions 0.. in order.
    cached: Vec<LlamaToken>,
    provider: &'m str,
    stats: &'m Stats,
}

impl Worker<'_> {
    fn fail(&self, message: impl std::fmt::Display) -> ProviderError {
        ProviderError::Upstream {
            provider: self.provider.to_owned(),
            status: 500,
            message: format!("local inference failed: {message}"),
        }
    }

    /// Makes the KV cache hold `prompt[..reuse]` and returns `reuse`: the longest prefix shared
    /// with the previous request, less one token so that the last prompt token is always
    /// evaluated (its logits are needed).
    fn reuse_prefix(&mut self, ctx: &mut LlamaContext<'_>, prompt: &[LlamaToken]) -> usize {
        let common = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1));
        if common < self.cached.len() {
            let removed = u32::try_from(common)
                .ok()
                .and_then(|p0| ctx.clear_kv_cache_seq(Some(0), Some(p0), None).ok())
                .unwrap_or(false);
            if removed {
                self.cached.truncate(common);
            } else {
                ctx.clear_kv_cache();
                self.cached.clear();
                return 0;
            }
        }
        common
    }

    /// Runs `tokens` through the model at the end of the cache; logits for the last one.
    fn decode(
        &mut self,
        ctx: &mut LlamaContext<'_>,
        tokens: &[LlamaToken],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<bool, ProviderError> {
        for (i, chunk) in tokens.chunks(self.n_batch).enumerate() {
            if i > 0 && cancelled() {
                return Ok(false);
            }
            self.batch.clear();
            let last_chunk = (i + 1) * self.n_batch >= tokens.len();
            for (j, &token) in chunk.iter().enumerate() {
                let pos = i32::try_from(self.cached.len() + j).map_err(|e| self.fail(e))?;
                let logits = last_chunk && j + 1 == chunk.len();
                self.batch
                    .add(token, pos, &[0], logits)
                    .map_err(|e| self.fail(e))?;
            }
            ctx.decode(&mut self.batch).map_err(|e| self.fail(e))?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(true)
    }

    fn generate(&mut self, ctx: &mut LlamaContext<'_>, job: Job) -> Result<Outcome, ProviderError> {
        let start = Instant::now();
        let events = &job.events;
        let cancelled = || events.is_closed();
        let n_ctx = ctx.n_ctx() as usize;
        if job.prompt.is_empty() || job.prompt.len() >= n_ctx {
            return Err(ProviderError::ContextWindowExceeded {
                provider: self.provider.to_owned(),
                message: format!(
                    "the prompt has {} tokens, the context window {n_ctx}",
                    job.prompt.len()
                ),
            });
        }

        let reused = self.reuse_prefix(ctx, &job.prompt);
        let to_eval = job.prompt.len() - reused;
        if !self.decode(ctx, &job.prompt[reused..], &cancelled)? {
            return Ok(Outcome::Cancelled);
        }
        self.stats
            .prompt_tokens_evaluated
            .fetch_add(to_eval as u64, Ordering::Relaxed);
        self.stats
            .prompt_tokens_reused
            .fetch_add(reused as u64, Ordering::Relaxed);

        let n_vocab = self.model.n_vocab();
        let mut sampler = build_sampler(&job.sampling, job.grammar, n_vocab);
        let mut lazy = job.lazy_call_grammar;
        // Generated text, kept only until a tool call opens (or forever if none does).
        let mut raw = String::new();
        let mut logits_index = self.batch.n_tokens() - 1;
        let vocab = self.model.vocab();
        let mut utf8 = Utf8Decoder::new();
        let mut stop = StopMatcher::new(&job.stops);
        let mut out = Output::new(job.parse_tools, job.call_id_prefix, events);
        let mut generated: u64 = 0;
        let mut first_token_at = None;
        let mut finish = (FinishReason::Length, None);
        let budget = (job.max_tokens as usize).min(n_ctx - job.prompt.len());

        for _ in 0..budget {
            if cancelled() {
                return Ok(Outcome::Cancelled);
            }
            let token = sampler.sample(ctx, logits_index);
            if first_token_at.is_none() {
                first_token_at = Some(Instant::now());
            }
            if vocab.is_eog(token) {
                finish = (FinishReason::Stop, None);
                break;
            }
            generated += 1;
            let piece = vocab.token_to_piece(token, false, None);
            let text = utf8.push(&piece);
            if lazy.is_some() {
                raw.push_str(&text);
                if let Some(at) = raw.find(crate::tools::OPEN_TAG) {
                    let after = &raw[at + crate::tools::OPEN_TAG.len()..];
                    // The grammar starts right after the tag (optionally a newline).
                    let matcher = lazy.take();
                    if after.trim().is_empty() && !after.contains("\n\n") {
                        sampler = build_sampler(&job.sampling, matcher, n_vocab);
                        self.stats.lazy_grammars.fetch_add(1, Ordering::Relaxed);
                    }
                    raw = String::new();
                } else {
                    // Only a possible start of the tag needs keeping.
                    let keep = crate::tools::OPEN_TAG.len();
                    if raw.len() > 4 * keep {
                        let mut cut = raw.len() - keep;
                        while !raw.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        raw.drain(..cut);
                    }
                }
            }
            let step = stop.push(&text);
            out.text(&step.emit);
            if let Some(matched) = step.stopped {
                finish = (FinishReason::StopSequence, Some(matched));
                break;
            }
            if generated as usize == budget {
                break;
            }
            self.batch.clear();
            let pos = i32::try_from(self.cached.len()).map_err(|e| self.fail(e))?;
            self.batch
                .add(token, pos, &[0], true)
                .map_err(|e| self.fail(e))?;
            ctx.decode(&mut self.batch).map_err(|e| self.fail(e))?;
            self.cached.push(token);
            logits_index = 0;
        }
        if finish.0 != FinishReason::StopSequence {
            let rest = utf8.finish();
            let step = stop.push(&rest);
            out.text(&step.emit);
            match step.stopped {
                Some(matched) => finish = (FinishReason::StopSequence, Some(matched)),
                None => out.text(&stop.finish()),
            }
        }
        out.finish();
        if out.calls > 0 && finish.0 == FinishReason::Stop {
            finish.0 = FinishReason::ToolCalls;
        }

        let end = Instant::now();
        let first = first_token_at.unwrap_or(end);
        let stats = self.stats;
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        stats
            .tokens_generated
            .fetch_add(generated, Ordering::Relaxed);
        set(&stats.last_prompt_tokens, to_eval as u64);
        set(&stats.last_prompt_us, micros(first - start));
        set(&stats.last_output_tokens, generated.saturating_sub(1));
        set(&stats.last_decode_us, micros(end - first));

        let usage = Usage {
            input_tokens: job.prompt.len() as u64,
            output_tokens: generated,
            cache_read_tokens: reused as u64,
            cache_write_tokens: 0,
        };
        let _ = events.send(Ok(StreamEvent::Usage { usage }));
        let _ = events.send(Ok(StreamEvent::Finish {
            reason: finish.0,
            stop_sequence: finish.1,
        }));
        Ok(Outcome::Finished)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn build_sampler(s: &Sampling, grammar: Option<llguidance::Matcher>, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if let Some(matcher) = grammar {
        chain.push(LlamaSampler::from(matcher));
    }
    if s.repeat_penalty != 1.0 || s.frequency_penalty != 0.0 || s.presence_penalty != 0.0 {
        let last_n = i32::try_from(s.repeat_last_n).unwrap_or(i32::MAX);
        chain.push(LlamaSampler::penalties(
            n_vocab,
            last_n,
            s.repeat_penalty,
            s.frequency_penalty,
            s.presence_penalty,
        ));
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if s.top_k > 0 {
            chain.push(LlamaSampler::top_k(
                i32::try_from(s.top_k).unwrap_or(i32::MAX),
            ));
        }
        if s.top_p > 0.0 && s.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(s.top_p, 1));
        }
        if s.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(s.min_p, 1));
        }
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(s.seed));
    }
    LlamaSampler::chain_simple(chain)
}

/// Turns text pieces into stream events, reading tool calls out when asked.
struct Output<'a> {
    tools: Option<ToolCallParser>,
    call_id_prefix: String,
    calls: u32,
    events: &'a UnboundedSender<Result<StreamEvent, ProviderError>>,
}

impl<'a> Output<'a> {
    fn new(
        parse_tools: bool,
        call_id_prefix: String,
        events: &'a UnboundedSender<Result<StreamEvent, ProviderError>>,
    ) -> Self {
        Self {
            tools: parse_tools.then(ToolCallParser::new),
            call_id_prefix,
            calls: 0,
            events,
        }
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.tools.as_mut() {
            Some(parser) => {
                let pieces = parser.push(text);
                self.emit(pieces);
            }
            None => {
                let _ = self.events.send(Ok(StreamEvent::TextDelta {
                    text: text.to_owned(),
                }));
            }
        }
    }

    fn finish(&mut self) {
        if let Some(parser) = self.tools.as_mut() {
            let pieces = parser.finish();
            self.emit(pieces);
        }
    }

    fn emit(&mut self, pieces: Vec<Piece>) {
        for piece in pieces {
            let event = match piece {
                Piece::Text(text) => StreamEvent::TextDelta { text },
                Piece::Call(call) => {
                    let index = self.calls;
                    self.calls += 1;
                    let _ = self.events.send(Ok(StreamEvent::ToolCallStart {
                        index,
                        id: format!("{}{index}", self.call_id_prefix),
                        name: call.name,
                    }));
                    StreamEvent::ToolCallDelta {
                        index,
                        arguments: call.arguments,
                    }
                }
            };
            let _ = self.events.send(Ok(event));
        }
    }
}
