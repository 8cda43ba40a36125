//! `[[routes]]`, `[routing]` and `[cache]`: where requests go and how hard we try.

use std::collections::HashSet;
use std::time::Duration;

use super::Cx;
use crate::error::suggest;
use crate::raw::{RawCache, RawClassifier, RawPrice, RawRateLimits, RawRoute, RawRouting, S};
use crate::runtime::{
    BreakerSettings, CLASSIFIER_FEATURES, CacheSettings, ClassifierConfig, PriceOverride,
    RouteConfig, RoutingSettings, Strategy, TierConfig,
};

const STRATEGIES: [&str; 6] = [
    "fallback",
    "round_robin",
    "weighted",
    "least_latency",
    "least_busy",
    "auto",
];

impl Cx<'_> {
    pub(super) fn route(
        &mut self,
        r: &RawRoute,
        providers: &[&str],
        names: &mut HashSet<String>,
    ) -> Option<RouteConfig> {
        let name = r.name.get_ref().clone();
        let key = |field: &str| format!("routes.{name}.{field}");
        if name.is_empty() || name.contains('/') {
            self.error(
                r.name.span(),
                "routes.name",
                format!(
                    "`{name}` is not a valid route name: it must be non-empty and contain no `/`"
                ),
            );
            return None;
        }
        if providers.contains(&name.as_str()) || !names.insert(name.clone()) {
            self.error(
                r.name.span(),
                key("name"),
                format!("the name `{name}` is already taken"),
            );
            return None;
        }
        let strategy = self.strategy(r.strategy.as_ref(), &key("strategy"))?;

        let mut tiers = Vec::new();
        let mut targets = Vec::new();
        if strategy == Strategy::Auto {
            if let Some(t) = &r.targets {
                self.error(
                    t.span(),
                    key("targets"),
                    "an `auto` route takes its targets from its `[[routes.tiers]]`, not `targets`",
                );
            }
            tiers = self.tiers(r, providers, &key("tiers"));
            for tier in &tiers {
                for t in &tier.targets {
                    if !targets.contains(t) {
                        targets.push(t.clone());
                    }
                }
            }
            if tiers.is_empty() {
                return None;
            }
        } else {
            if !r.tiers.is_empty() || r.classifier.is_some() {
                let span = r.strategy.as_ref().map_or(r.name.span(), |s| s.span());
                self.error(
                    span,
                    key("tiers"),
                    "`tiers` and `classifier` only apply to routes with strategy = \"auto\"",
                );
            }
            let Some(raw_targets) = &r.targets else {
                self.error(r.name.span(), key("targets"), "a route needs `targets`");
                return None;
            };
            targets = self.targets(raw_targets, providers, &key("targets"))?;
        }

        let weights = match (&r.weights, strategy) {
            (Some(w), Strategy::Weighted) => {
                let weights: Vec<u32> = w.get_ref().iter().map(|x| *x.get_ref()).collect();
                if weights.len() != targets.len() {
                    self.error(
                        w.span(),
                        key("weights"),
                        format!(
                            "{} weights for {} targets: give one weight per target",
                            weights.len(),
                            targets.len()
                        ),
                    );
                } else if weights.iter().all(|w| *w == 0) {
                    self.error(
                        w.span(),
                        key("weights"),
                        "at least one weight must be above 0",
                    );
                }
                weights
            }
            (None, Strategy::Weighted) => {
                let span = r.strategy.as_ref().map_or(r.name.span(), |s| s.span());
                self.error(
                    span,
                    key("weights"),
                    "strategy `weighted` needs `weights`, one per target",
                );
                Vec::new()
            }
            (Some(w), _) => {
                self.error(
                    w.span(),
                    key("weights"),
                    "`weights` only apply to routes with strategy = \"weighted\"",
                );
                Vec::new()
            }
            (None, _) => Vec::new(),
        };

        let classifier = match &r.classifier {
            Some(c) => self.classifier(c, &key("classifier")),
            None => ClassifierConfig::default(),
        };
        Some(RouteConfig {
            name: name.clone(),
            targets,
            strategy,
            weights,
            tiers,
            classifier,
            retries: r.retries.as_ref().map(|v| *v.get_ref()),
            deadline: r
                .deadline_secs
                .as_ref()
                .map(|v| self.seconds(Some(v), &key("deadline_secs"), 600.0)),
            attempt_timeout: r
                .attempt_timeout_secs
                .as_ref()
                .map(|v| self.seconds(Some(v), &key("attempt_timeout_secs"), 60.0)),
            cache: r.cache.as_ref().map(|v| *v.get_ref()),
        })
    }

    fn strategy(&mut self, value: Option<&S<String>>, key: &str) -> Option<Strategy> {
        let Some(value) = value else {
            return Some(Strategy::Fallback);
        };
        Some(match value.get_ref().as_str() {
            "fallback" => Strategy::Fallback,
            "round_robin" => Strategy::RoundRobin,
            "weighted" => Strategy::Weighted,
            "least_latency" => Strategy::LeastLatency,
            "least_busy" => Strategy::LeastBusy,
            "auto" => Strategy::Auto,
            s => {
                let hint = suggest(s, STRATEGIES)
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                self.error(
                    value.span(),
                    key,
                    format!(
                        "unknown strategy `{s}`{hint}; expected one of {}",
                        STRATEGIES.join(", ")
                    ),
                );
                return None;
            }
        })
    }

    /// Concrete `provider/model` targets (routes of routes are not supported).
    fn targets(
        &mut self,
        raw: &S<Vec<S<String>>>,
        providers: &[&str],
        key: &str,
    ) -> Option<Vec<String>> {
        if raw.get_ref().is_empty() {
            self.error(raw.span(), key, "a route needs at least one target");
            return None;
        }
        let mut targets = Vec::new();
        for t in raw.get_ref() {
            if !t.get_ref().contains('/') {
                self.error(
                    t.span(),
                    key,
                    format!("`{}` is not `provider/model`", t.get_ref()),
                );
            } else if self.model_ref(t, key, providers, &HashSet::new()) {
                targets.push(t.get_ref().clone());
            }
        }
        Some(targets)
    }

    fn tiers(&mut self, r: &RawRoute, providers: &[&str], key: &str) -> Vec<TierConfig> {
        if r.tiers.is_empty() {
            let span = r.strategy.as_ref().map_or(r.name.span(), |s| s.span());
            self.error(
                span,
                key,
                "an `auto` route needs `[[routes.tiers]]`, cheapest first, each with `name`, \
                 `targets` and (all but the last) `max_score`",
            );
            return Vec::new();
        }
        let mut tiers = Vec::new();
        let mut names = HashSet::new();
        let mut previous: Option<u32> = None;
        let last = r.tiers.len() - 1;
        for (i, t) in r.tiers.iter().enumerate() {
            let name = t.name.get_ref().clone();
            if !names.insert(name.clone()) {
                self.error(
                    t.name.span(),
                    key,
                    format!("tier `{name}` is defined twice"),
                );
            }
            let max_score = t.max_score.as_ref().map(|m| *m.get_ref());
            match (max_score, i == last) {
                (None, false) => self.error(
                    t.name.span(),
                    format!("{key}.{name}.max_score"),
                    "every tier but the last needs `max_score`: the highest score it takes",
                ),
                (Some(m), _) if previous.is_some_and(|p| m <= p) => {
                    let span = t.max_score.as_ref().map_or(0..0, |m| m.span());
                    self.error(
                        span,
                        format!("{key}.{name}.max_score"),
                        "tiers go from the cheapest to the most capable: each `max_score` must \
                         be above the previous tier's",
                    );
                }
                _ => {}
            }
            previous = max_score.or(previous);
            let targets = self
                .targets(&t.targets, providers, &format!("{key}.{name}.targets"))
                .unwrap_or_default();
            tiers.push(TierConfig {
                name,
                targets,
                max_score,
            });
        }
        tiers
    }

    fn classifier(&mut self, c: &RawClassifier, key: &str) -> ClassifierConfig {
        let mut out = ClassifierConfig::default();
        if let Some(v) = &c.long_prompt_tokens {
            out.long_prompt_tokens = *v.get_ref();
        }
        if let Some(v) = &c.very_long_prompt_tokens {
            out.very_long_prompt_tokens = *v.get_ref();
        }
        if let Some(v) = &c.deep_conversation_messages {
            out.deep_conversation_messages = usize::try_from(*v.get_ref()).unwrap_or(usize::MAX);
        }
        if let Some(v) = &c.long_output_tokens {
            out.long_output_tokens = *v.get_ref();
        }
        if let Some(cues) = &c.reasoning_cues {
            out.reasoning_cues = cues
                .get_ref()
                .iter()
                .map(|c| c.get_ref().trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
        }
        for (feature, points) in &c.points {
            match out.points.iter_mut().find(|(f, _)| f == feature) {
                Some(entry) => entry.1 = *points.get_ref(),
                None => {
                    let hint = suggest(feature, CLASSIFIER_FEATURES)
                        .map(|h| format!(" (did you mean `{h}`?)"))
                        .unwrap_or_default();
                    self.error(
                        points.span(),
                        format!("{key}.points"),
                        format!(
                            "unknown feature `{feature}`{hint}; features are {}",
                            CLASSIFIER_FEATURES.join(", ")
                        ),
                    );
                }
            }
        }
        out
    }

    pub(super) fn routing(&mut self, r: &RawRouting) -> RoutingSettings {
        let d = RoutingSettings::default();
        let b = BreakerSettings::default();
        let error_rate = match &r.breaker_error_rate {
            Some(v) if !(0.0..=1.0).contains(v.get_ref()) || *v.get_ref() == 0.0 => {
                self.error(
                    v.span(),
                    "routing.breaker_error_rate",
                    "must be a ratio above 0 and at most 1, such as 0.5",
                );
                b.error_rate
            }
            Some(v) => *v.get_ref(),
            None => b.error_rate,
        };
        RoutingSettings {
            retries: r.retries.as_ref().map_or(d.retries, |v| *v.get_ref()),
            retry_base: millis(r.retry_base_ms.as_ref(), d.retry_base),
            retry_max: millis(r.retry_max_ms.as_ref(), d.retry_max),
            deadline: self.seconds(
                r.deadline_secs.as_ref(),
                "routing.deadline_secs",
                d.deadline.as_secs_f64(),
            ),
            attempt_timeout: r
                .attempt_timeout_secs
                .as_ref()
                .map(|v| self.seconds(Some(v), "routing.attempt_timeout_secs", 60.0)),
            breaker: BreakerSettings {
                failures: r
                    .breaker_failures
                    .as_ref()
                    .map_or(b.failures, |v| *v.get_ref()),
                error_rate,
                min_requests: r
                    .breaker_min_requests
                    .as_ref()
                    .map_or(b.min_requests, |v| *v.get_ref()),
                window: self.seconds(
                    r.breaker_window_secs.as_ref(),
                    "routing.breaker_window_secs",
                    b.window.as_secs_f64(),
                ),
                cooldown: self.seconds(
                    r.breaker_cooldown_secs.as_ref(),
                    "routing.breaker_cooldown_secs",
                    b.cooldown.as_secs_f64(),
                ),
            },
        }
    }

    pub(super) fn limits_url(&mut self, l: &RawRateLimits) -> String {
        let Some(raw) = &l.url else {
            return "memory".to_owned();
        };
        let url = self.resolve(raw, "limits.url").unwrap_or_default();
        if url.starts_with("rediss://") {
            self.error(
                raw.span(),
                "limits.url",
                "TLS to Redis (rediss://) is not built in: use redis:// on a private network \
                 or a TLS-terminating proxy such as stunnel",
            );
        } else if !(url == "memory" || url.starts_with("redis://")) {
            self.error(
                raw.span(),
                "limits.url",
                format!("`{url}` is neither `memory` nor redis://…"),
            );
        }
        url
    }

    pub(super) fn prices(&mut self, prices: &[RawPrice]) -> Vec<PriceOverride> {
        let mut out = Vec::with_capacity(prices.len());
        for (i, p) in prices.iter().enumerate() {
            let mut ok = true;
            let fields = [
                ("input", Some(&p.input)),
                ("output", Some(&p.output)),
                ("cached_input", p.cached_input.as_ref()),
                ("cache_write", p.cache_write.as_ref()),
            ];
            for (name, value) in fields {
                if let Some(v) = value
                    && !(v.get_ref().is_finite() && *v.get_ref() >= 0.0)
                {
                    self.error(
                        v.span(),
                        format!("prices[{i}].{name}"),
                        "a price is USD per million tokens: a number of 0 or more",
                    );
                    ok = false;
                }
            }
            if p.model.get_ref().trim().is_empty() {
                self.error(
                    p.model.span(),
                    format!("prices[{i}].model"),
                    "must name a model",
                );
                ok = false;
            }
            if ok {
                out.push(PriceOverride {
                    model: p.model.get_ref().trim().to_owned(),
                    input: *p.input.get_ref(),
                    output: *p.output.get_ref(),
                    cached_input: p.cached_input.as_ref().map(|v| *v.get_ref()),
                    cache_write: p.cache_write.as_ref().map(|v| *v.get_ref()),
                });
            }
        }
        out
    }

    pub(super) fn cache(&mut self, c: &RawCache) -> CacheSettings {
        let d = CacheSettings::default();
        let url = match &c.url {
            Some(url) => self.resolve(url, "cache.url").unwrap_or_default(),
            None => d.url.clone(),
        };
        let span = c.url.as_ref().map_or(0..0, |u| u.span());
        if url.starts_with("rediss://") {
            self.error(
                span,
                "cache.url",
                "TLS to Redis (rediss://) is not built in: use redis:// on a private network \
                 or a TLS-terminating proxy such as stunnel",
            );
        } else if !(url == "memory" || url == "off" || url.starts_with("redis://")) {
            self.error(
                span,
                "cache.url",
                format!("`{url}` is neither `memory`, `off` nor redis://…"),
            );
        }
        CacheSettings {
            url,
            ttl: self.seconds(c.ttl_secs.as_ref(), "cache.ttl_secs", d.ttl.as_secs_f64()),
            max_bytes: c.max_bytes.as_ref().map_or(d.max_bytes, |v| *v.get_ref()),
        }
    }
}

fn millis(value: Option<&S<u64>>, default: Duration) -> Duration {
    value.map_or(default, |v| Duration::from_millis(*v.get_ref()))
}
