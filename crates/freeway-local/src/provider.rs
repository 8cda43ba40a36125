//! [`LocalProvider`]: the embedded model behind the `Provider` trait.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

use freeway_types::{
    ChatRequest, ChatStream, Message, ModelInfo, Provider, ProviderError, ResponseFormat,
    ToolChoice, ToolDefinition,
};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{Value, json};

use crate::engine::{self, ContextSettings, EngineStats, Job, Sampling, Stats};
use crate::template::{CHATML_TEMPLATE, ChatTemplate};
use crate::tools::{CLOSE_TAG, OPEN_TAG, call_schema};
use crate::{AutoToolChoice, LocalConfig, LocalError};

/// Progress of loading the weights, from 0.0 to 1.0.
pub type LoadProgress = Box<dyn FnMut(f32) + Send>;

/// The embedded model: a GGUF file run in-process by llama.cpp.
///
/// Cheap to clone; all clones share one model and one inference thread. Requests are served one
/// at a time in arrival order; dropping a [`ChatStream`] stops its generation at the next token.
#[derive(Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

struct Inner {
    config: LocalConfig,
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    jobs: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    n_ctx: u32,
    bos_text: String,
    add_bos: bool,
    /// llguidance's view of the vocabulary, built on the first constrained request.
    grammar: OnceLock<Result<ParserFactory, String>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("name", &self.inner.config.provider_name)
            .field("model", &self.inner.config.model_name)
            .field("path", &self.inner.config.model_path)
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    /// Loads the model and starts its inference thread. Blocking (a second or so for the default
    /// model); call it from `spawn_blocking` inside an async runtime.
    pub fn load(config: LocalConfig) -> Result<Self, LocalError> {
        Self::load_with_progress(config, None)
    }

    /// [`LocalProvider::load`], reporting how much of the weights is loaded.
    pub fn load_with_progress(
        config: LocalConfig,
        progress: Option<LoadProgress>,
    ) -> Result<Self, LocalError> {
        let path = config.model_path.clone();
        crate::models::check_gguf_magic(&path)?;
        let backend = engine::backend()?;
        let mut params = LlamaModelParams::default();
        if let Some(mut progress) = progress {
            params = params.with_progress_callback(move |p| {
                progress(p);
                true
            });
        }
        let model = LlamaModel::load_from_file(backend, &path, &params).map_err(|e| {
            let (architecture, file_type) = describe_gguf(&path);
            LocalError::Unsupported {
                path: path.clone(),
                architecture,
                file_type,
                message: e.to_string(),
            }
        })?;
        let model = Arc::new(model);

        let vocab = model.vocab();
        let piece = |t| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
        let bos_text = piece(vocab.bos());
        let eos_text = piece(vocab.eos());
        let add_bos = vocab.should_add_bos();
        let source = model
            .chat_template(None)
            .ok()
            .and_then(|t| t.to_string().ok())
            .unwrap_or_else(|| CHATML_TEMPLATE.to_owned());
        let template = ChatTemplate::new(&source, bos_text.clone(), eos_text)?;

        let n_ctx = config.context_size.clamp(256, model.n_ctx_train().max(256));
        let settings = ContextSettings {
            n_ctx,
            n_batch: config.batch_size.clamp(32, n_ctx),
            threads: i32::try_from(config.threads()).unwrap_or(1),
            flash_attention: config.flash_attention,
        };
        let stats = Arc::new(Stats::default());
        let jobs = engine::spawn(
            Arc::clone(&model),
            settings,
            config.provider_name.clone(),
            Arc::clone(&stats),
        )?;
        tracing::info!(
            model = %config.model_name,
            path = %path.display(),
            n_ctx,
            threads = settings.threads,
            "local model loaded"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                model,
                template,
                jobs,
                stats,
                n_ctx,
                bos_text,
                add_bos,
                grammar: OnceLock::new(),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The model name this provider serves.
    pub fn model_name(&self) -> &str {
        &self.inner.config.model_name
    }

    /// The context window in tokens.
    pub fn context_size(&self) -> u32 {
        self.inner.n_ctx
    }

    /// Counters of the inference thread.
    pub fn stats(&self) -> EngineStats {
        self.inner.stats.snapshot()
    }

    /// The prompt text a request renders to (chat template applied), for debugging and tests.
    pub fn render_prompt(&self, request: &ChatRequest) -> Result<String, ProviderError> {
        Ok(self.inner.plan(request)?.prompt)
    }

    /// Tokenizes text as a prompt would be (special tokens parsed, BOS added when the model
    /// wants one and the text lacks it).
    pub fn tokenize(&self, text: &str) -> Vec<i32> {
        self.inner.tokenize(text).into_iter().map(|t| t.0).collect()
    }
}

/// What one request turns into before it is queued.
struct Plan {
    prompt: String,
    grammar: Option<TopLevelGrammar>,
    /// Applied only after the model opens a tool call by itself.
    lazy_call: Option<TopLevelGrammar>,
    parse_tools: bool,
}

impl Inner {
    fn name(&self) -> &str {
        &self.config.provider_name
    }

    fn bad_request(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::BadRequest {
            provider: self.name().to_owned(),
            status: 400,
            message: message.into(),
        }
    }

    fn knows_model(&self, model: &str) -> bool {
        let stem = self
            .config
            .model_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        model.is_empty()
            || model == "default"
            || model == self.config.model_name
            || stem.as_deref() == Some(model)
    }

    fn plan(&self, request: &ChatRequest) -> Result<Plan, ProviderError> {
        if !self.knows_model(&request.model) {
            return Err(ProviderError::ModelNotFound {
                provider: self.name().to_owned(),
                message: format!(
                    "this provider serves `{}`, not `{}`",
                    self.config.model_name, request.model
                ),
            });
        }
        let mut choice = request.tool_choice.clone().unwrap_or(ToolChoice::Auto);
        if choice == ToolChoice::Auto
            && !request.tools.is_empty()
            && self.config.auto_tool_choice == AutoToolChoice::RequiredAfterUser
            && matches!(request.messages.last(), Some(Message::User { .. }))
        {
            choice = ToolChoice::Required;
        }
        let tools: &[ToolDefinition] = match choice {
            ToolChoice::None => &[],
            ToolChoice::Auto | ToolChoice::Required | ToolChoice::Tool { .. } => &request.tools,
        };
        let forced: Vec<&ToolDefinition> = match &choice {
            ToolChoice::Required => tools.iter().collect(),
            ToolChoice::Tool { name } => {
                let tool = tools.iter().find(|t| &t.name == name).ok_or_else(|| {
                    self.bad_request(format!("tool_choice names `{name}`, which is not in tools"))
                })?;
                vec![tool]
            }
            ToolChoice::Auto | ToolChoice::None => Vec::new(),
        };
        if matches!(choice, ToolChoice::Required) && tools.is_empty() {
            return Err(self.bad_request("tool_choice is `required` but no tools were given"));
        }

        let (grammar, extra_system) = if !forced.is_empty() {
            let schema = guided(call_schema(&forced));
            let lark = format!(
                "start: {open} call {close}\ncall: %json {schema}\n",
                open = Value::String(format!("{OPEN_TAG}\n")),
                close = Value::String(format!("\n{CLOSE_TAG}")),
            );
            (Some(TopLevelGrammar::from_lark(lark)), None)
        } else {
            match &request.response_format {
                None | Some(ResponseFormat::Text) => (None, None),
                Some(ResponseFormat::JsonObject) => (
                    Some(TopLevelGrammar::from_json_schema(guided(
                        json!({ "type": "object" }),
                    ))),
                    Some("Respond with a single JSON object and nothing else.".to_owned()),
                ),
                Some(ResponseFormat::JsonSchema { schema, .. }) => (
                    Some(TopLevelGrammar::from_json_schema(guided(schema.clone()))),
                    Some(format!(
                        "Respond with a single JSON object and nothing else, valid against this JSON schema: {schema}"
                    )),
                ),
            }
        };
        // With `auto`, the model writes freely; once it opens a `<tool_call>` tag, the rest of
        // the call is constrained (llama.cpp's "lazy grammar"), so an opened call is a valid one.
        // A constrained call ends the turn (no parallel calls this way).
        let lazy_call = (grammar.is_none() && !tools.is_empty()).then(|| {
            let all: Vec<&ToolDefinition> = tools.iter().collect();
            let schema = guided(call_schema(&all));
            TopLevelGrammar::from_lark(format!(
                // One call, then only end-of-turn: small models otherwise repeat calls until
                // max_tokens.
                "start: NL? call NL? {close}\nNL: /\\n/\ncall: %json {schema}\n",
                close = Value::String(CLOSE_TAG.to_owned()),
            ))
        });
        let prompt = self
            .template
            .render(&request.messages, tools, extra_system.as_deref())
            .map_err(|e| self.bad_request(e.to_string()))?;
        Ok(Plan {
            prompt,
            grammar,
            lazy_call,
            parse_tools: !tools.is_empty(),
        })
    }

    fn tokenize(&self, text: &str) -> Vec<llama_cpp_2::token::LlamaToken> {
        let has_bos = !self.bos_text.is_empty() && text.starts_with(&self.bos_text);
        let add_bos = self.add_bos && !has_bos;
        self.model.vocab().tokenize(text.as_bytes(), add_bos, true)
    }

    fn matcher(&self, grammar: TopLevelGrammar) -> Result<Matcher, ProviderError> {
        let factory = self
            .grammar
            .get_or_init(|| {
                let env = llama_cpp_2::sampling::LlamaSampler::llguidance_tok_env(&self.model);
                ParserFactory::new_simple(&env)
                    .map(|mut f| {
                        f.quiet();
                        f
                    })
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| self.bad_request(format!("constrained decoding unavailable: {e}")))?;
        let parser = factory
            .create_parser(grammar)
            .map_err(|e| self.bad_request(format!("cannot enforce the response format: {e}")))?;
        Ok(Matcher::new(Ok(parser)))
    }

    fn sampling(&self, request: &ChatRequest) -> Sampling {
        let d = &self.config.sampling;
        Sampling {
            temperature: request.temperature.unwrap_or(d.temperature),
            top_p: request.top_p.unwrap_or(d.top_p),
            top_k: request.top_k.unwrap_or(d.top_k),
            min_p: d.min_p,
            repeat_penalty: d.repeat_penalty,
            repeat_last_n: d.repeat_last_n,
            frequency_penalty: request.frequency_penalty.unwrap_or(0.0),
            presence_penalty: request.presence_penalty.unwrap_or(0.0),
            // llama.cpp draws a random seed for u32::MAX.
            #[expect(
                clippy::cast_possible_truncation,
                reason = "any 32 bits of the seed do"
            )]
            seed: request.seed.map_or(u32::MAX, |s| s as u32),
        }
    }
}

/// Compact JSON with the separators models are used to, and no free whitespace (a small model
/// given free whitespace can emit newlines forever).
fn guided(mut schema: Value) -> Value {
    if let Some(obj) = schema.as_object_mut()
        && !obj.contains_key("x-guidance")
    {
        obj.insert(
            "x-guidance".into(),
            json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
                "lenient": true,
            }),
        );
    }
    schema
}

/// The architecture and file type a GGUF file declares, for error messages.
fn describe_gguf(path: &Path) -> (String, String) {
    const GGUF_TYPE_UINT32: u32 = 4;
    const GGUF_TYPE_STRING: u32 = 8;
    let unknown = || "unknown".to_owned();
    let Some(ctx) = llama_cpp_2::gguf::GgufContext::from_file(path) else {
        return (unknown(), unknown());
    };
    let arch_key = ctx.find_key("general.architecture");
    let architecture = (arch_key >= 0 && ctx.kv_type(arch_key) == GGUF_TYPE_STRING)
        .then(|| ctx.val_str(arch_key).map(str::to_owned))
        .flatten()
        .unwrap_or_else(unknown);
    let ft_key = ctx.find_key("general.file_type");
    let file_type = if ft_key >= 0 && ctx.kv_type(ft_key) == GGUF_TYPE_UINT32 {
        let ft = ctx.val_u32(ft_key);
        let name = match ft {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            7 => "Q8_0",
            8 => "Q5_0",
            9 => "Q5_1",
            10 => "Q2_K",
            11 => "Q3_K_S",
            12 => "Q3_K_M",
            13 => "Q3_K_L",
            14 => "Q4_K_S",
            15 => "Q4_K_M",
            16 => "Q5_K_S",
            17 => "Q5_K_M",
            18 => "Q6_K",
            32 => "BF16",
            _ => "",
        };
        if name.is_empty() {
            format!("#{ft}")
        } else {
            name.to_owned()
        }
    } else {
        unknown()
    };
    (architecture, file_type)
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn system(&self) -> &'static str {
        "freeway.local"
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let inner = Arc::clone(&self.inner);
        let plan = inner.plan(request)?;
        if inner.stats.queued() >= inner.config.max_queue as u64 {
            return Err(ProviderError::Overloaded {
                provider: inner.name().to_owned(),
                retry_after: None,
                message: format!("{} requests are already waiting", inner.config.max_queue),
            });
        }
        // Tokenizing a long prompt and compiling a grammar are CPU work: off the async threads.
        let prepared = {
            let worker = Arc::clone(&inner);
            tokio::task::spawn_blocking(move || {
                let tokens = worker.tokenize(&plan.prompt);
                let matcher = plan.grammar.map(|g| worker.matcher(g)).transpose()?;
                let lazy = plan.lazy_call.map(|g| worker.matcher(g)).transpose()?;
                Ok::<_, ProviderError>((tokens, matcher, lazy, plan.parse_tools))
            })
            .await
            .map_err(|e| ProviderError::Upstream {
                provider: inner.name().to_owned(),
                status: 500,
                message: format!("local request preparation failed: {e}"),
            })??
        };
        let (prompt, grammar, lazy_call_grammar, parse_tools) = prepared;
        let n_ctx = inner.n_ctx as usize;
        if prompt.len() >= n_ctx {
            return Err(ProviderError::ContextWindowExceeded {
                provider: inner.name().to_owned(),
                message: format!(
                    "the prompt has {} tokens; the context window of `{}` is {n_ctx}",
                    prompt.len(),
                    inner.config.model_name
                ),
            });
        }
        let max_tokens = request
            .max_tokens
            .or(inner.config.default_max_tokens)
            .unwrap_or(inner.n_ctx);
        let n = inner.requests.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let job = Job {
            prompt,
            max_tokens,
            sampling: inner.sampling(request),
            grammar,
            lazy_call_grammar,
            stops: request.stop.clone(),
            parse_tools,
            call_id_prefix: format!("call_{nanos:08x}{n:04x}_"),
            events: tx,
        };
        inner.stats.enqueue();
        if inner.jobs.send(job).is_err() {
            inner.stats.unqueue();
            return Err(ProviderError::Upstream {
                provider: inner.name().to_owned(),
                status: 500,
                message: "the local inference thread has stopped".to_owned(),
            });
        }
        // Dropping this stream drops `rx`; the inference thread sees the closed channel.
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Box::pin(stream))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Ok(vec![ModelInfo {
            id: self.inner.config.model_name.clone(),
            owned_by: Some(self.inner.config.provider_name.clone()),
            context_window: Some(self.inner.n_ctx),
        }])
    }
}
