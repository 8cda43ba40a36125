//! Routing: what a model name resolves to (a route alias, `default`, `provider/model`, a bare
//! model), in which order the targets are tried under the route's strategy, with which retries
//! and deadlines, and what the response cache holds for the request. [`Gateway`]'s calls in
//! `registry.rs` carry the resulting [`Plan`] out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use freeway_config::{RouteConfig, Strategy};
use freeway_types::ChatRequest;
use tracing::Span;
use tracing::field::Empty;

use super::{Gateway, GatewayError, RequestOptions, Target};
use crate::cache::{CacheKey, CacheMode, CachedAnswer};
use crate::classify::Classifier;

pub(super) struct Route {
    pub(super) config: RouteConfig,
    pub(super) classifier: Option<Classifier>,
    pub(super) next: AtomicUsize,
}

/// How one request is carried out.
pub(super) struct Plan {
    pub(super) targets: Vec<Target>,
    pub(super) retries: u32,
    pub(super) deadline: Duration,
    pub(super) attempt_timeout: Option<Duration>,
    /// The `auto` decision, explained.
    pub(super) decision: Option<String>,
    pub(super) route_cache: Option<bool>,
}

impl Gateway {
    pub(super) fn plan(
        &self,
        model: &str,
        request: Option<&ChatRequest>,
        options: &RequestOptions,
    ) -> Result<Plan, GatewayError> {
        let defaults = |targets| Plan {
            targets,
            retries: self.routing.retries,
            deadline: self.routing.deadline,
            attempt_timeout: self.routing.attempt_timeout,
            decision: None,
            route_cache: None,
        };
        if let Some(route) = self.routes.get(model) {
            let (targets, decision) = self.route_targets(route, request, options)?;
            let c = &route.config;
            return Ok(Plan {
                retries: c.retries.unwrap_or(self.routing.retries),
                deadline: c.deadline.unwrap_or(self.routing.deadline),
                attempt_timeout: c.attempt_timeout.or(self.routing.attempt_timeout),
                decision,
                route_cache: c.cache,
                ..defaults(targets)
            });
        }
        if model == "default" {
            return match &self.default_model {
                Some(d) if d != "default" => self.plan(d, request, options),
                _ => Err(GatewayError::ModelNotFound {
                    model: model.to_owned(),
                    message: "no default model is configured: set `default_model` in freeway.toml"
                        .to_owned(),
                }),
            };
        }
        if model.contains('/') {
            return self.target(model).map(|t| defaults(vec![t]));
        }
        let listed: Vec<&str> = self
            .order
            .iter()
            .filter(|name| self.providers[*name].models.iter().any(|m| m == model))
            .map(String::as_str)
            .collect();
        match listed.as_slice() {
            [provider] => self
                .target(&format!("{provider}/{model}"))
                .map(|t| defaults(vec![t])),
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

    /// A route's targets in the order its strategy says to try them.
    pub(super) fn route_targets(
        &self,
        route: &Route,
        request: Option<&ChatRequest>,
        options: &RequestOptions,
    ) -> Result<(Vec<Target>, Option<String>), GatewayError> {
        let c = &route.config;
        let ids: Vec<&String> = match (&route.classifier, request) {
            (Some(classifier), Some(request)) => {
                let d = classifier.decide(&c.name, &c.tiers, request, options.tier.as_deref());
                // The chosen tier first; if all of it fails, more capable tiers, then cheaper.
                let order = (d.tier..c.tiers.len()).chain((0..d.tier).rev());
                let mut ids: Vec<&String> = Vec::new();
                for t in order {
                    for id in &c.tiers[t].targets {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                let targets = ids
                    .into_iter()
                    .map(|t| self.target(t))
                    .collect::<Result<_, _>>()?;
                return Ok((targets, Some(d.explanation)));
            }
            _ => c.targets.iter().collect(),
        };
        let mut targets = ids
            .into_iter()
            .map(|t| self.target(t))
            .collect::<Result<Vec<_>, _>>()?;
        if targets.len() < 2 {
            return Ok((targets, None));
        }
        match c.strategy {
            Strategy::Fallback | Strategy::Auto => {}
            Strategy::RoundRobin => {
                let start = route.next.fetch_add(1, Ordering::Relaxed) % targets.len();
                targets.rotate_left(start);
            }
            Strategy::Weighted => {
                let total: u64 = c.weights.iter().map(|w| u64::from(*w)).sum();
                if total > 0 {
                    let mut pick = fastrand::u64(0..total);
                    let first = c
                        .weights
                        .iter()
                        .position(|w| {
                            let w = u64::from(*w);
                            if pick < w {
                                true
                            } else {
                                pick -= w;
                                false
                            }
                        })
                        .unwrap_or(0);
                    let chosen = targets.remove(first);
                    targets.insert(0, chosen);
                }
            }
            Strategy::LeastLatency => {
                // Unmeasured targets (0) go first so each gets measured.
                targets.sort_by_cached_key(|t| self.health.get(&t.id).latency_us());
            }
            Strategy::LeastBusy => {
                // Rotate first so that ties are shared out rather than always won by the first.
                let start = route.next.fetch_add(1, Ordering::Relaxed) % targets.len();
                targets.rotate_left(start);
                targets.sort_by_cached_key(|t| self.health.get(&t.id).in_flight());
            }
        }
        Ok((targets, None))
    }

    pub(super) fn target(&self, id: &str) -> Result<Target, GatewayError> {
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
            total_timeout: entry.total_timeout,
        })
    }

    pub(super) fn not_found(&self, model: &str, detail: &str) -> GatewayError {
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

    /// The plan of a chat request and what the cache holds for it, both told to its span.
    pub(super) async fn route(
        &self,
        model: &str,
        request: &ChatRequest,
        options: &RequestOptions,
        span: &Span,
    ) -> Result<(Plan, Lookup), GatewayError> {
        let plan = self.plan(model, Some(request), options)?;
        record_plan(span, &plan);
        let lookup = self.cache_lookup(model, request, &plan, options).await;
        record_cache(span, &lookup);
        Ok((plan, lookup))
    }

    pub(super) async fn cache_lookup(
        &self,
        model: &str,
        request: &ChatRequest,
        plan: &Plan,
        options: &RequestOptions,
    ) -> Lookup {
        let Some(cache) = &self.cache else {
            return Lookup::Skip;
        };
        if plan.route_cache == Some(false) || options.cache == CacheMode::Bypass {
            return Lookup::Skip;
        }
        let deterministic = request.temperature == Some(0.0);
        if !(deterministic || plan.route_cache == Some(true) || options.cache == CacheMode::Use) {
            return Lookup::Skip;
        }
        let Some(key) = CacheKey::new(options.partition.as_deref(), model, request) else {
            return Lookup::Skip;
        };
        if options.cache == CacheMode::Refresh {
            return Lookup::Miss(key);
        }
        match cache.get(&key).await {
            Some(answer) => Lookup::Hit(answer),
            None => Lookup::Miss(key),
        }
    }
}

pub(super) enum Lookup {
    Hit(Arc<CachedAnswer>),
    Miss(CacheKey),
    Skip,
}

/// The span of one request's way through the gateway: plan, cache, then each call.
pub(super) fn route_span(model: &str) -> Span {
    tracing::info_span!(target: freeway_telemetry::TARGET, "route",
        otel.name = %format!("route {model}"),
        freeway.model = model,
        freeway.targets = Empty,
        freeway.route.decision = Empty,
        freeway.cache = Empty,
    )
}

fn record_plan(span: &Span, plan: &Plan) {
    if span.is_disabled() {
        return;
    }
    let targets: Vec<&str> = plan.targets.iter().map(|t| t.id.as_str()).collect();
    span.record("freeway.targets", targets.join(","));
    if let Some(decision) = &plan.decision {
        span.record("freeway.route.decision", decision.as_str());
    }
}

fn record_cache(span: &Span, lookup: &Lookup) {
    let status = match lookup {
        Lookup::Hit(_) => "hit",
        Lookup::Miss(_) => "miss",
        Lookup::Skip => return,
    };
    span.record("freeway.cache", status);
}
