//! Providers by name, routes by alias, and how a request is carried out: target order by
//! strategy, retries with backoff, circuit breakers, deadlines and the response cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use freeway_config::{
    CacheSettings, Config, ProviderConfig, ProviderKind, RouteConfig, RoutingSettings, Strategy,
};
use freeway_providers::anthropic::AnthropicProvider;
use freeway_providers::gemini::GeminiProvider;
use freeway_providers::openai::OpenAiProvider;
use freeway_types::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse, Metrics, Provider,
    ProviderError, TimeoutPhase,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tracing::{Instrument, Span};

use crate::cache::{self, CacheMode, CacheStats, CacheStatus, CachedAnswer, ResponseCache};
use crate::classify::Classifier;
use crate::health::{Health, InFlight, TargetHealth, TargetSnapshot};
use crate::metering::{
    Operation, StreamMeter, Tracked, call_span, operation, record_answer, record_embeddings,
};
use crate::models::ModelCatalog;
use crate::pricing::PriceTable;

mod route;

use route::{Lookup, Plan, Route, route_span};

/// Why a request found no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    ModelNotFound { model: String, message: String },
    /// Every target was skipped because its circuit is open.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The last target's failure, after every target was tried.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl GatewayError {
    pub fn status_code(&self) -> u16 {
        match self {
            GatewayError::ModelNotFound { .. } => 404,
            GatewayError::Unavailable { .. } => 503,
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
    /// The provider's `total_timeout_secs`: the longest one answer may take, streams included.
    pub total_timeout: Option<Duration>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

/// An answer and how it was obtained.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    /// The `provider/model` that gave it (for a cache hit: the one that gave it first).
    pub target: String,
    /// For `auto` routes: the tier chosen and why, as sent in `x-freeway-route`.
    pub route: Option<String>,
    /// Whether the cache was consulted and what it said; `None` when it was not eligible.
    pub cache: Option<CacheStatus>,
}

/// What a client asked of routing besides the request itself (from headers, in the server).
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// A tier of an `auto` route named by the client (`x-freeway-tier`).
    pub tier: Option<String>,
    pub cache: CacheMode,
    /// Whose cache entries these are (the tenant): answers are never shared across partitions.
    pub partition: Option<String>,
}

pub(crate) struct ProviderEntry {
    pub provider: Arc<dyn Provider>,
    pub models: Vec<String>,
    pub discover: bool,
    pub total_timeout: Option<Duration>,
}

/// A route's state for operators: `/admin/routes`, `freeway routes`.
#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    pub name: String,
    pub strategy: Strategy,
    /// Every target; for `auto` routes, those of all tiers.
    pub targets: Vec<String>,
    /// `weighted`: one weight per target.
    pub weights: Vec<u32>,
    /// `auto`: the tiers, cheapest first.
    pub tiers: Vec<freeway_config::TierConfig>,
}

impl From<&RouteConfig> for RouteSnapshot {
    fn from(c: &RouteConfig) -> Self {
        RouteSnapshot {
            name: c.name.clone(),
            strategy: c.strategy,
            targets: c.targets.clone(),
            weights: c.weights.clone(),
            tiers: c.tiers.clone(),
        }
    }
}

pub struct Gateway {
    providers: HashMap<String, ProviderEntry>,
    /// Provider names in configuration order, for stable listings.
    order: Vec<String>,
    routes: HashMap<String, Route>,
    route_order: Vec<String>,
    default_model: Option<String>,
    catalog: ModelCatalog,
    routing: RoutingSettings,
    health: Health,
    cache: Option<Arc<ResponseCache>>,
    pub(crate) metrics: Arc<Metrics>,
    /// What answers cost, for the cost counter; `None` counts none.
    pub(crate) prices: Option<Arc<PriceTable>>,
}

/// Assembles a [`Gateway`] from providers built elsewhere (tests, the embedded model).
#[derive(Default)]
pub struct GatewayBuilder {
    providers: Vec<(String, ProviderEntry)>,
    routes: Vec<RouteConfig>,
    default_model: Option<String>,
    routing: RoutingSettings,
    cache: Option<CacheSettings>,
    metrics: Option<Arc<Metrics>>,
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
                total_timeout: None,
            },
        ));
        self
    }

    /// Bounds every answer of the provider added last, a whole stream included.
    pub fn total_timeout(mut self, timeout: Option<Duration>) -> Self {
        if let Some((_, entry)) = self.providers.last_mut() {
            entry.total_timeout = timeout;
        }
        self
    }

    /// A plain route with the `[routing]` defaults.
    pub fn route(self, name: &str, targets: Vec<String>, strategy: Strategy) -> Self {
        self.route_config(RouteConfig {
            name: name.to_owned(),
            targets,
            strategy,
            weights: Vec::new(),
            tiers: Vec::new(),
            classifier: freeway_config::ClassifierConfig::default(),
            retries: None,
            deadline: None,
            attempt_timeout: None,
            cache: None,
        })
    }

    pub fn route_config(mut self, route: RouteConfig) -> Self {
        self.routes.push(route);
        self
    }

    pub fn default_model(mut self, model: Option<String>) -> Self {
        self.default_model = model;
        self
    }

    /// Retry, deadline and breaker defaults (without: [`RoutingSettings::default`]).
    pub fn routing(mut self, routing: RoutingSettings) -> Self {
        self.routing = routing;
        self
    }

    /// The response cache (without: none).
    pub fn cache(mut self, cache: CacheSettings) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Where the gateway counts what it does (without: a registry of its own).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn build(self) -> Result<Gateway, String> {
        let mut routes = HashMap::new();
        let mut route_order = Vec::new();
        for config in self.routes {
            let classifier = match config.strategy {
                Strategy::Auto => Some(
                    Classifier::new(config.classifier.clone())
                        .map_err(|e| format!("route `{}`: {e}", config.name))?,
                ),
                _ => None,
            };
            route_order.push(config.name.clone());
            routes.insert(
                config.name.clone(),
                Route {
                    config,
                    classifier,
                    next: AtomicUsize::new(0),
                },
            );
        }
        let cache = match &self.cache {
            Some(settings) => ResponseCache::new(settings)?.map(Arc::new),
            None => None,
        };
        // Every route target is reported from the start, not only once it was first used.
        let health = Health::default();
        for route in routes.values() {
            for target in &route.config.targets {
                health.get(target);
            }
        }
        Ok(Gateway {
            order: self.providers.iter().map(|(n, _)| n.clone()).collect(),
            providers: self.providers.into_iter().collect(),
            route_order,
            routes,
            default_model: self.default_model,
            catalog: ModelCatalog::default(),
            routing: self.routing,
            health,
            cache,
            metrics: self.metrics.unwrap_or_default(),
            prices: None,
        })
    }
}

/// The provider of a remote protocol (one pooled HTTP client); `None` for the embedded model,
/// which the binary loads.
pub fn remote_provider(p: &ProviderConfig) -> Result<Option<Arc<dyn Provider>>, String> {
    Ok(Some(match &p.kind {
        ProviderKind::OpenAi {
            settings, quirks, ..
        } => Arc::new(OpenAiProvider::new(settings, *quirks).map_err(|e| e.to_string())?),
        ProviderKind::Anthropic {
            settings,
            default_max_tokens,
        } => Arc::new(
            AnthropicProvider::new(settings, *default_max_tokens).map_err(|e| e.to_string())?,
        ),
        ProviderKind::Gemini { settings } => {
            Arc::new(GeminiProvider::new(settings).map_err(|e| e.to_string())?)
        }
        ProviderKind::Local { .. } => return Ok(None),
    }))
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
        let mut builder = Self::builder()
            .default_model(config.default_model.clone())
            .routing(config.routing.clone())
            .cache(config.cache.clone());
        for p in &config.providers {
            let provider = match remote_provider(p)? {
                Some(provider) => provider,
                None => local(p)?,
            };
            builder = builder
                .provider(provider, p.models.clone(), p.discover_models)
                .total_timeout(p.total_timeout);
        }
        for r in &config.routes {
            builder = builder.route_config(r.clone());
        }
        builder.build()
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// Prices answers for the `freeway_cost_usd` counter.
    pub fn with_prices(mut self, prices: Arc<PriceTable>) -> Self {
        self.prices = Some(prices);
        self
    }

    /// The configured provider names, in configuration order.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// What this gateway (and the server around it) counts.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The targets a model name may be served by, in the order they would be tried now.
    ///
    /// A name is, in this order: a route alias; `default`; `provider/model` (the model part may
    /// itself contain `/`, as OpenRouter's do); or a bare model that exactly one provider lists.
    pub fn resolve(&self, model: &str) -> Result<Vec<Target>, GatewayError> {
        self.plan(model, None, &RequestOptions::default())
            .map(|p| p.targets)
    }

    /// A complete answer from the first target that gives one.
    pub async fn complete(
        &self,
        model: &str,
        request: ChatRequest,
    ) -> Result<Served<ChatResponse>, GatewayError> {
        self.complete_with(model, request, &RequestOptions::default())
            .await
    }

    pub async fn complete_with(
        &self,
        model: &str,
        request: ChatRequest,
        options: &RequestOptions,
    ) -> Result<Served<ChatResponse>, GatewayError> {
        let span = route_span(model);
        self.complete_routed(model, request, options, &span)
            .instrument(span.clone())
            .await
    }

    async fn complete_routed(
        &self,
        model: &str,
        request: ChatRequest,
        options: &RequestOptions,
        span: &Span,
    ) -> Result<Served<ChatResponse>, GatewayError> {
        let (plan, lookup) = self.route(model, &request, options, span).await?;
        let (key, status) = match lookup {
            Lookup::Hit(answer) => {
                return Ok(Served {
                    value: answer.response.clone(),
                    target: answer.target.clone(),
                    route: plan.decision,
                    cache: Some(CacheStatus::Hit),
                });
            }
            Lookup::Miss(key) => (Some(key), Some(CacheStatus::Miss)),
            Lookup::Skip => (None, None),
        };
        let attempt = self
            .attempt(&plan, request, Operation::Chat, |target, request| {
                target.provider.complete(request)
            })
            .await?;
        self.count_usage(&attempt.target, &attempt.value.usage);
        record_answer(&attempt.span, &attempt.value);
        if let (Some(key), Some(cache)) = (key, &self.cache) {
            let answer = CachedAnswer {
                target: attempt.target.id.clone(),
                response: attempt.value.clone(),
            };
            cache.store(key, answer);
        }
        Ok(Served {
            value: attempt.value,
            target: attempt.target.id,
            route: plan.decision,
            cache: status,
        })
    }

    /// A stream from the first target whose first event arrives. Until then a retryable failure
    /// moves on to the next target; after it, failures travel inside the stream.
    pub async fn stream(
        &self,
        model: &str,
        request: ChatRequest,
    ) -> Result<Served<ChatStream>, GatewayError> {
        self.stream_with(model, request, &RequestOptions::default())
            .await
    }

    pub async fn stream_with(
        &self,
        model: &str,
        request: ChatRequest,
        options: &RequestOptions,
    ) -> Result<Served<ChatStream>, GatewayError> {
        let span = route_span(model);
        self.stream_routed(model, request, options, &span)
            .instrument(span.clone())
            .await
    }

    async fn stream_routed(
        &self,
        model: &str,
        request: ChatRequest,
        options: &RequestOptions,
        span: &Span,
    ) -> Result<Served<ChatStream>, GatewayError> {
        let (plan, lookup) = self.route(model, &request, options, span).await?;
        let (key, status) = match lookup {
            Lookup::Hit(answer) => {
                return Ok(Served {
                    value: cache::replay(&answer.response),
                    target: answer.target.clone(),
                    route: plan.decision,
                    cache: Some(CacheStatus::Hit),
                });
            }
            Lookup::Miss(key) => (Some(key), Some(CacheStatus::Miss)),
            Lookup::Skip => (None, None),
        };
        let attempt = self
            .attempt(&plan, request, Operation::Stream, |target, request| {
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
            .await?;
        let mut ends = attempt.deadline;
        if let Some(total) = attempt.target.total_timeout {
            ends = ends.min(attempt.started + total);
        }
        let tracked = Tracked {
            inner: attempt.value,
            health: attempt.health,
            breaker: self.routing.breaker.clone(),
            provider: attempt.target.provider.name().to_owned(),
            deadline: Box::pin(tokio::time::sleep_until(ends.into())),
            _in_flight: attempt.in_flight,
            done: false,
            meter: Some(StreamMeter {
                metrics: self.metrics.clone(),
                prices: self.prices.clone(),
                target: attempt.target.clone(),
                started: attempt.started,
                usage: None,
                error: None,
                finished: false,
                span: attempt.span,
            }),
        };
        let mut value: ChatStream = Box::pin(tracked);
        if let (Some(key), Some(cache)) = (key, &self.cache) {
            value = Box::pin(cache::Filling::new(
                value,
                cache.clone(),
                key,
                attempt.target.id.clone(),
            ));
        }
        Ok(Served {
            value,
            target: attempt.target.id,
            route: plan.decision,
            cache: status,
        })
    }

    pub async fn embed(
        &self,
        model: &str,
        request: EmbeddingRequest,
    ) -> Result<Served<EmbeddingResponse>, GatewayError> {
        let plan = self.plan(model, None, &RequestOptions::default())?;
        let attempt = self
            .attempt(&plan, request, Operation::Embeddings, |target, request| {
                target.provider.embed(request)
            })
            .await?;
        self.count_usage(&attempt.target, &attempt.value.usage);
        record_embeddings(&attempt.span, &attempt.value);
        Ok(Served {
            value: attempt.value,
            target: attempt.target.id,
            route: plan.decision,
            cache: None,
        })
    }

    /// The one loop that carries out a plan: each target in turn, skipping open circuits;
    /// retryable failures retried on the same target with backoff (honoring `Retry-After`)
    /// up to the retry count, then the next target; all within the deadline.
    async fn attempt<R, T>(
        &self,
        plan: &Plan,
        mut request: R,
        op: Operation,
        call: impl for<'a> Fn(&'a Target, &'a R) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<Attempt<T>, GatewayError>
    where
        R: Addressed,
    {
        let breaker = &self.routing.breaker;
        let deadline = Instant::now() + plan.deadline;
        let mut last: Option<ProviderError> = None;
        let mut skipped: Vec<&str> = Vec::new();
        // The last target given up on, for the fallback counter.
        let mut passed: Option<&str> = None;
        for target in &plan.targets {
            let health = self.health.get(&target.id);
            if !health.admit(breaker, Instant::now()) {
                tracing::debug!(target = %target.id, "circuit open: skipped");
                skipped.push(&target.id);
                passed = Some(&target.id);
                continue;
            }
            if let Some(from) = passed {
                self.metrics.fallbacks.with(&[from, &target.id]).inc();
            }
            request.set_model(&target.model);
            let mut retry = 0;
            loop {
                let started = Instant::now();
                let Some(remaining) = deadline
                    .checked_duration_since(started)
                    .filter(|d| !d.is_zero())
                else {
                    return Err(deadline_passed(target, last));
                };
                let limit = [plan.attempt_timeout, target.total_timeout]
                    .into_iter()
                    .flatten()
                    .fold(remaining, Duration::min);
                let in_flight = health.begin();
                let span = call_span(op, target, retry);
                let call = call(target, &request).instrument(span.clone());
                let result = match tokio::time::timeout(limit, call).await {
                    Ok(result) => result,
                    Err(_) => Err(ProviderError::Timeout {
                        provider: target.provider.name().to_owned(),
                        phase: TimeoutPhase::Total,
                    }),
                };
                let took = started.elapsed();
                match &result {
                    // A stream's call ends with its last event: its first is counted here.
                    Ok(_) if op == Operation::Stream => self
                        .metrics
                        .time_to_first_token
                        .with(&[target.provider.system(), &target.model, &target.id])
                        .observe_duration(took),
                    Ok(_) => operation(&self.metrics, op, target, "").observe_duration(took),
                    Err(e) => {
                        span.record("error.type", e.metric_label());
                        operation(&self.metrics, op, target, e.metric_label())
                            .observe_duration(took);
                    }
                }
                let e = match result {
                    Ok(value) => {
                        health.succeeded(breaker, Instant::now(), Some(took));
                        return Ok(Attempt {
                            value,
                            target: target.clone(),
                            started,
                            deadline,
                            health,
                            in_flight,
                            span,
                        });
                    }
                    // Not the target's fault, and no other target would do better. The
                    // target answered, so its circuit counts it as alive.
                    Err(e) if !e.is_retryable() => {
                        if !matches!(e, ProviderError::Cancelled) {
                            health.succeeded(breaker, Instant::now(), None);
                        }
                        return Err(e.into());
                    }
                    Err(e) => e,
                };
                drop(in_flight);
                let opened = health.failed(breaker, Instant::now());
                let wait = backoff(retry, e.retry_after(), &self.routing);
                let again = !opened
                    && retry < plan.retries
                    && wait.is_some_and(|w| Instant::now() + w < deadline);
                tracing::warn!(
                    target = %target.id,
                    error = %e,
                    retry = again,
                    circuit_opened = opened,
                    "target failed"
                );
                last = Some(e);
                match wait {
                    Some(wait) if again => {
                        self.metrics.retries.with(&[&target.id]).inc();
                        tokio::time::sleep(wait).await;
                        retry += 1;
                    }
                    _ => break,
                }
            }
            passed = Some(&target.id);
        }
        if let Some(e) = last {
            return Err(e.into());
        }
        if !skipped.is_empty() {
            let retry_after = Some(breaker.cooldown);
            return Err(GatewayError::Unavailable {
                message: format!(
                    "every target is unavailable: the circuit of {} is open after repeated \
                     failures; it will be probed again within {} s",
                    skipped.join(", "),
                    breaker.cooldown.as_secs().max(1)
                ),
                retry_after,
            });
        }
        Err(GatewayError::ModelNotFound {
            model: String::new(),
            message: "the route has no targets".to_owned(),
        })
    }

    /// Every route target's circuit, load and latency as observed so far (and any other
    /// target that served a request), sorted by id.
    pub fn target_health(&self) -> Vec<TargetSnapshot> {
        self.health.snapshot(&self.routing.breaker)
    }

    /// The configured routes, in configuration order.
    pub fn routes(&self) -> Vec<RouteSnapshot> {
        self.route_order
            .iter()
            .filter_map(|name| self.routes.get(name))
            .map(|r| RouteSnapshot::from(&r.config))
            .collect()
    }

    /// Cache counters, when a cache is configured.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
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

/// A successful attempt, with what must outlive it for streams.
struct Attempt<T> {
    value: T,
    target: Target,
    /// When the successful attempt began.
    started: Instant,
    /// When the whole request must be over (a stream too).
    deadline: Instant,
    health: Arc<TargetHealth>,
    in_flight: InFlight,
    /// The successful call's span, open until its answer is recorded (a stream's end).
    span: Span,
}

/// How long to wait before retry number `retry + 1`: the provider's `Retry-After` if it gave
/// one, else exponential backoff with full jitter. `None` when the provider asks for longer
/// than `retry_max`: better to move on to the next target than to wait.
fn backoff(
    retry: u32,
    retry_after: Option<Duration>,
    routing: &RoutingSettings,
) -> Option<Duration> {
    if let Some(after) = retry_after {
        return (after <= routing.retry_max).then_some(after);
    }
    let ceiling = routing
        .retry_base
        .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(routing.retry_max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Some(Duration::from_nanos(fastrand::u64(0..=nanos)))
}

fn deadline_passed(target: &Target, last: Option<ProviderError>) -> GatewayError {
    last.unwrap_or_else(|| ProviderError::Timeout {
        provider: target.provider.name().to_owned(),
        phase: TimeoutPhase::Total,
    })
    .into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honors_retry_after() {
        let routing = RoutingSettings {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..RoutingSettings::default()
        };
        for retry in 0..6 {
            let ceiling = Duration::from_millis(100 * (1 << retry)).min(Duration::from_secs(1));
            for _ in 0..50 {
                let d = backoff(retry, None, &routing).unwrap();
                assert!(d <= ceiling, "{d:?} > {ceiling:?}");
            }
        }
        let after = Duration::from_millis(700);
        assert_eq!(backoff(0, Some(after), &routing), Some(after));
        assert_eq!(backoff(0, Some(Duration::from_secs(5)), &routing), None);
    }
}
