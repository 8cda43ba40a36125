//! Providers by name, routes by alias, and fallback.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use freeway_config::{Config, ProviderConfig, ProviderKind, Strategy};
use freeway_providers::anthropic::AnthropicProvider;
use freeway_providers::gemini::GeminiProvider;
use freeway_providers::openai::OpenAiProvider;
use freeway_types::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse, Provider,
    ProviderError,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use crate::models::ModelCatalog;

/// Why a request found no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    ModelNotFound { model: String, message: String },
    /// The last target's failure, after every target was tried.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl GatewayError {
    pub fn status_code(&self) -> u16 {
        match self {
            GatewayError::ModelNotFound { .. } => 404,
            GatewayError::Provider(e) => e.status_code(),
        }
    }
}

/// One concrete model at one provider.
#[derive(Clone)]
pub struct Target {
    /// `provider/model`, as clients write it.
    pub id: String,
    pub provider: Arc<dyn Provider>,
    /// The model as the provider names it.
    pub model: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

/// An answer and the target that gave it.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub target: String,
}

pub(crate) struct ProviderEntry {
    pub provider: Arc<dyn Provider>,
    pub models: Vec<String>,
    pub discover: bool,
}

struct Route {
    targets: Vec<String>,
    strategy: Strategy,
    next: AtomicUsize,
}

pub struct Gateway {
    providers: HashMap<String, ProviderEntry>,
    /// Provider names in configuration order, for stable listings.
    order: Vec<String>,
    routes: HashMap<String, Route>,
    route_order: Vec<String>,
    default_model: Option<String>,
    catalog: ModelCatalog,
}

/// Assembles a [`Gateway`] from providers built elsewhere (tests, the embedded model).
#[derive(Default)]
pub struct GatewayBuilder {
    providers: Vec<(String, ProviderEntry)>,
    routes: Vec<(String, Route)>,
    default_model: Option<String>,
}

impl GatewayBuilder {
    pub fn provider(
        mut self,
        provider: Arc<dyn Provider>,
        models: Vec<String>,
        discover: bool,
    ) -> Self {
        self.providers.push((
            provider.name().to_owned(),
            ProviderEntry {
                provider,
                models,
                discover,
            },
        ));
        self
    }

    pub fn route(mut self, name: &str, targets: Vec<String>, strategy: Strategy) -> Self {
        self.routes.push((
            name.to_owned(),
            Route {
                targets,
                strategy,
                next: AtomicUsize::new(0),
            },
        ));
        self
    }

    pub fn default_model(mut self, model: Option<String>) -> Self {
        self.default_model = model;
        self
    }

    pub fn build(self) -> Gateway {
        Gateway {
            order: self.providers.iter().map(|(n, _)| n.clone()).collect(),
            providers: self.providers.into_iter().collect(),
            route_order: self.routes.iter().map(|(n, _)| n.clone()).collect(),
            routes: self.routes.into_iter().collect(),
            default_model: self.default_model,
            catalog: ModelCatalog::default(),
        }
    }
}

/// Builds the embedded model's provider; supplied by the binary so that this crate does not
/// compile an inference engine.
pub type LocalLoader<'a> = &'a dyn Fn(&ProviderConfig) -> Result<Arc<dyn Provider>, String>;

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// Creates every configured provider (one pooled HTTP client each).
    pub fn from_config(config: &Config, local: LocalLoader<'_>) -> Result<Self, String> {
        let mut builder = Self::builder().default_model(config.default_model.clone());
        for p in &config.providers {
            let provider: Arc<dyn Provider> = match &p.kind {
                ProviderKind::OpenAi {
                    settings, quirks, ..
                } => Arc::new(OpenAiProvider::new(settings, *quirks).map_err(|e| e.to_string())?),
                ProviderKind::Anthropic {
                    settings,
                    default_max_tokens,
                } => Arc::new(
                    AnthropicProvider::new(settings, *default_max_tokens)
                        .map_err(|e| e.to_string())?,
                ),
                ProviderKind::Gemini { settings } => {
                    Arc::new(GeminiProvider::new(settings).map_err(|e| e.to_string())?)
                }
                ProviderKind::Local { .. } => local(p)?,
            };
            builder = builder.provider(provider, p.models.clone(), p.discover_models);
        }
        for r in &config.routes {
            builder = builder.route(&r.name, r.targets.clone(), r.strategy);
        }
        Ok(builder.build())
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// The targets to try for a model name, in order.
    ///
    /// A name is, in this order: a route alias; `default`; `provider/model` (the model part may
    /// itself contain `/`, as OpenRouter's do); or a bare model that exactly one provider lists.
    pub fn resolve(&self, model: &str) -> Result<Vec<Target>, GatewayError> {
        if let Some(route) = self.routes.get(model) {
            let mut targets = route
                .targets
                .iter()
                .map(|t| self.target(t))
                .collect::<Result<Vec<_>, _>>()?;
            if route.strategy == Strategy::RoundRobin && !targets.is_empty() {
                let start = route.next.fetch_add(1, Ordering::Relaxed) % targets.len();
                targets.rotate_left(start);
            }
            return Ok(targets);
        }
        if model == "default" {
            return match &self.default_model {
                Some(d) if d != "default" => self.resolve(d),
                _ => Err(GatewayError::ModelNotFound {
                    model: model.to_owned(),
                    message: "no default model is configured: set `default_model` in freeway.toml"
                        .to_owned(),
                }),
            };
        }
        if model.contains('/') {
            return self.target(model).map(|t| vec![t]);
        }
        let listed: Vec<&str> = self
            .order
            .iter()
            .filter(|name| self.providers[*name].models.iter().any(|m| m == model))
            .map(String::as_str)
            .collect();
        match listed.as_slice() {
            [provider] => self.target(&format!("{provider}/{model}")).map(|t| vec![t]),
            [] => Err(self.not_found(model, "")),
            several => Err(self.not_found(
                model,
                &format!(
                    "; several providers offer it, pick one: {}",
                    several
                        .iter()
                        .map(|p| format!("{p}/{model}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    fn target(&self, id: &str) -> Result<Target, GatewayError> {
        let Some((provider, model)) = id.split_once('/').filter(|(_, m)| !m.is_empty()) else {
            return Err(self.not_found(id, ""));
        };
        let Some(entry) = self.providers.get(provider) else {
            return Err(self.not_found(id, &format!("; there is no provider named `{provider}`")));
        };
        Ok(Target {
            id: id.to_owned(),
            provider: entry.provider.clone(),
            model: model.to_owned(),
        })
    }

    fn not_found(&self, model: &str, detail: &str) -> GatewayError {
        let mut known: Vec<&str> = self.route_order.iter().map(String::as_str).collect();
        known.extend(self.order.iter().map(String::as_str));
        GatewayError::ModelNotFound {
            model: model.to_owned(),
            message: format!(
                "The model `{model}` does not exist{detail}. Address models as `<provider>/<model>` \
                 or by a route name (providers and routes: {}); GET /v1/models lists them.",
                known.join(", ")
            ),
        }
    }

    /// A complete answer from the first target that gives one.
    pub async fn complete(
        &self,
        model: &str,
        request: ChatRequest,
    ) -> Result<Served<ChatResponse>, GatewayError> {
        self.first_success(model, request, |target, request| {
            target.provider.complete(request)
        })
        .await
    }

    /// A stream from the first target whose first event arrives. Until then a retryable failure
    /// moves on to the next target; after it, failures travel inside the stream.
    pub async fn stream(
        &self,
        model: &str,
        request: ChatRequest,
    ) -> Result<Served<ChatStream>, GatewayError> {
        self.first_success(model, request, |target, request| {
            Box::pin(async move {
                let mut stream = target.provider.stream(request).await?;
                match stream.next().await {
                    Some(Err(e)) => Err(e),
                    Some(Ok(first)) => {
                        let head = futures_util::stream::iter([Ok(first)]);
                        Ok(Box::pin(head.chain(stream)) as ChatStream)
                    }
                    None => Ok(Box::pin(futures_util::stream::empty()) as ChatStream),
                }
            })
        })
        .await
    }

    pub async fn embed(
        &self,
        model: &str,
        request: EmbeddingRequest,
    ) -> Result<Served<EmbeddingResponse>, GatewayError> {
        self.first_success(model, request, |target, request| {
            target.provider.embed(request)
        })
        .await
    }

    /// The one fallback loop: each target in turn, moving on only after a retryable failure.
    async fn first_success<R, T>(
        &self,
        model: &str,
        mut request: R,
        call: impl for<'a> Fn(&'a Target, &'a R) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<Served<T>, GatewayError>
    where
        R: Addressed,
    {
        let targets = self.resolve(model)?;
        let mut last = None;
        for target in &targets {
            request.set_model(&target.model);
            match call(target, &request).await {
                Ok(value) => {
                    return Ok(Served {
                        value,
                        target: target.id.clone(),
                    });
                }
                Err(e) => {
                    let retry = e.is_retryable();
                    tracing::warn!(target = %target.id, error = %e, fallback = retry, "target failed");
                    if !retry {
                        return Err(e.into());
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.map_or_else(|| self.not_found(model, ""), GatewayError::Provider))
    }

    pub(crate) fn providers_in_order(&self) -> impl Iterator<Item = (&str, &ProviderEntry)> {
        self.order
            .iter()
            .map(|name| (name.as_str(), &self.providers[name]))
    }

    pub(crate) fn route_names(&self) -> impl Iterator<Item = &str> {
        self.route_order.iter().map(String::as_str)
    }

    pub(crate) fn catalog(&self) -> &ModelCatalog {
        &self.catalog
    }
}

/// A request that names the model it is for.
trait Addressed {
    fn set_model(&mut self, model: &str);
}

impl Addressed for ChatRequest {
    fn set_model(&mut self, model: &str) {
        self.model.clear();
        self.model.push_str(model);
    }
}

impl Addressed for EmbeddingRequest {
    fn set_model(&mut self, model: &str) {
        self.model.clear();
        self.model.push_str(model);
    }
}
