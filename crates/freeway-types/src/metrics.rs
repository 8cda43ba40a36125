//! What freeway counts, and the Prometheus text it is read as.
//!
//! One [`Metrics`] per server, made at start and handed to the gateway, the agent runtime and
//! the exec endpoint; `/metrics` renders it. Names follow the OpenTelemetry semantic
//! conventions where one exists (`gen_ai.client.operation.duration` is
//! `gen_ai_client_operation_duration_seconds` here, the unit a suffix as Prometheus writes it),
//! and are `freeway_*` where none does.
//!
//! Recording is lock-free once a series exists: a series is found under a read lock by the
//! hash of its label values (no allocation), then updated with atomics. Label values must come
//! from configuration (targets, routes, tools), never from what a client typed, and each
//! family holds at most [`MAX_SERIES`] series: past that, new label sets share one
//! `overflow` series rather than grow memory without bound.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Series per family beyond which new label sets are folded into one.
pub const MAX_SERIES: usize = 4096;

/// Request and call durations, in seconds: OpenTelemetry's GenAI buckets, from 10 ms to
/// 82 s, with finer ones below for a gateway whose own work takes microseconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
    10.24, 20.48, 40.96, 81.92,
];

/// Tokens per request: OpenTelemetry's GenAI buckets (powers of 4 up to 4^13).
pub const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// A value that only goes up; fractional for money.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1.0);
    }

    pub fn add(&self, v: f64) {
        add_f64(&self.0, v);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }

    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Observations counted into fixed buckets, with their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last one being `+Inf`.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum, v);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

fn add_f64(cell: &AtomicU64, v: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + v).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// The kinds of value a family holds, and how each renders.
pub trait Series: Send + Sync + 'static {
    const KIND: &'static str;
    /// Appended to the family name in the text format (`_total` for counters).
    const SUFFIX: &'static str = "";
    fn make(family: &FamilyInfo) -> Self;
    fn render(&self, out: &mut String, name: &str, labels: &str);
}

impl Series for Counter {
    const KIND: &'static str = "counter";
    const SUFFIX: &'static str = "_total";
    fn make(_: &FamilyInfo) -> Self {
        Counter::default()
    }
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let _ = writeln!(out, "{name}{} {}", braces(labels), self.get());
    }
}

impl Series for Gauge {
    const KIND: &'static str = "gauge";
    fn make(_: &FamilyInfo) -> Self {
        Gauge::default()
    }
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let _ = writeln!(out, "{name}{} {}", braces(labels), self.get());
    }
}

impl Series for Histogram {
    const KIND: &'static str = "histogram";
    fn make(family: &FamilyInfo) -> Self {
        Histogram::new(family.buckets)
    }
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
                    );
                }
            }
        }
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum());
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// A family's name, help, label names and (for histograms) buckets.
#[derive(Debug)]
pub struct FamilyInfo {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub buckets: &'static [f64],
}

type Shelf<S> = HashMap<u64, Vec<(Box<[Box<str>]>, Arc<S>)>, BuildHasherDefault<Prehashed>>;

/// Series of one kind under one name, one per set of label values.
pub struct Family<S> {
    info: FamilyInfo,
    series: RwLock<Shelf<S>>,
}

impl<S: Series> Family<S> {
    pub fn new(info: FamilyInfo) -> Self {
        Self {
            info,
            series: RwLock::new(HashMap::default()),
        }
    }

    /// The series for these label values (one per label name, in order), made on first use.
    pub fn with(&self, values: &[&str]) -> Arc<S> {
        debug_assert_eq!(values.len(), self.info.labels.len(), "{}", self.info.name);
        let hash = hash_of(values);
        {
            let shelf = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = find(&shelf, hash, values) {
                return found;
            }
        }
        let mut shelf = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = find(&shelf, hash, values) {
            return found;
        }
        let len: usize = shelf.values().map(Vec::len).sum();
        let (hash, key): (u64, Box<[Box<str>]>) = if len >= MAX_SERIES {
            let overflow = vec!["overflow"; values.len()];
            let hash = hash_of(&overflow);
            if let Some(found) = find(&shelf, hash, &overflow) {
                return found;
            }
            (hash, overflow.into_iter().map(Box::from).collect())
        } else {
            (hash, values.iter().map(|v| Box::from(*v)).collect())
        };
        let series = Arc::new(S::make(&self.info));
        shelf
            .entry(hash)
            .or_default()
            .push((key, Arc::clone(&series)));
        series
    }

    /// The series for these label values, if it was ever recorded.
    pub fn get(&self, values: &[&str]) -> Option<Arc<S>> {
        let shelf = self.series.read().unwrap_or_else(|e| e.into_inner());
        find(&shelf, hash_of(values), values)
    }

    /// `# HELP`, `# TYPE` and every series, sorted by label values so scrapes are stable.
    pub fn render(&self, out: &mut String) {
        let shelf = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(&[Box<str>], &Arc<S>)> = shelf
            .values()
            .flatten()
            .map(|(k, s)| (k.as_ref(), s))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        let name = format!("{}{}", self.info.name, S::SUFFIX);
        let name = name.as_str();
        let _ = writeln!(out, "# HELP {name} {}", self.info.help);
        let _ = writeln!(out, "# TYPE {name} {}", S::KIND);
        let mut labels = String::new();
        for (values, series) in all {
            labels.clear();
            for (i, (label, value)) in self.info.labels.iter().zip(values.iter()).enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                let _ = write!(labels, "{label}=\"");
                escape_into(&mut labels, value);
                labels.push('"');
            }
            series.render(out, name, &labels);
        }
    }
}

fn find<S>(shelf: &Shelf<S>, hash: u64, values: &[&str]) -> Option<Arc<S>> {
    shelf.get(&hash)?.iter().find_map(|(k, s)| {
        (k.len() == values.len() && k.iter().zip(values).all(|(a, b)| a.as_ref() == *b))
            .then(|| Arc::clone(s))
    })
}

fn hash_of(values: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    values.hash(&mut h);
    h.finish()
}

/// The map's keys are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Everything freeway counts. Gauges of state the gateway holds anyway (circuits, in-flight
/// requests, the cache) are read from it when `/metrics` renders, not kept twice.
pub struct Metrics {
    /// `http.server.request.duration`: every HTTP request freeway answered.
    pub http_requests: Family<Histogram>,
    /// `gen_ai.client.operation.duration`: each call to a provider, a stream until its end.
    pub operation_duration: Family<Histogram>,
    /// `gen_ai.server.time_to_first_token`, as seen from freeway: a provider's first event.
    pub time_to_first_token: Family<Histogram>,
    /// `gen_ai.client.token.usage`: tokens per answer, input and output.
    pub token_usage: Family<Histogram>,
    pub cost: Family<Counter>,
    pub retries: Family<Counter>,
    pub fallbacks: Family<Counter>,
    pub active_streams: Family<Gauge>,
    pub agent_steps: Family<Counter>,
    pub tool_runs: Family<Counter>,
    pub exec_runs: Family<Counter>,
}

const UPSTREAM_LABELS: &[&str] = &[
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "freeway_target",
    "error_type",
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let info = |name, help, labels, buckets| FamilyInfo {
            name,
            help,
            labels,
            buckets,
        };
        Self {
            http_requests: Family::new(info(
                "http_server_request_duration_seconds",
                "Time to answer each HTTP request (to the last byte of a stream), by route and status.",
                &[
                    "http_request_method",
                    "http_route",
                    "http_response_status_code",
                ],
                DURATION_BUCKETS,
            )),
            operation_duration: Family::new(info(
                "gen_ai_client_operation_duration_seconds",
                "Time of each provider call, a stream until its last event; error_type is empty on success.",
                UPSTREAM_LABELS,
                DURATION_BUCKETS,
            )),
            time_to_first_token: Family::new(info(
                "gen_ai_server_time_to_first_token_seconds",
                "Time from sending a streamed request to a provider to its first event.",
                &[
                    "gen_ai_provider_name",
                    "gen_ai_request_model",
                    "freeway_target",
                ],
                DURATION_BUCKETS,
            )),
            token_usage: Family::new(info(
                "gen_ai_client_token_usage",
                "Tokens of each answer a provider gave, by gen_ai_token_type (input or output).",
                &[
                    "gen_ai_provider_name",
                    "gen_ai_request_model",
                    "freeway_target",
                    "gen_ai_token_type",
                ],
                TOKEN_BUCKETS,
            )),
            cost: Family::new(info(
                "freeway_cost_usd",
                "What the answers cost at the configured and shipped prices, in US dollars.",
                &["freeway_target"],
                &[],
            )),
            retries: Family::new(info(
                "freeway_retries",
                "Calls repeated on the same target after a retryable failure.",
                &["freeway_target"],
                &[],
            )),
            fallbacks: Family::new(info(
                "freeway_fallbacks",
                "Requests that moved on from a failed or open-circuit target to the next one.",
                &["freeway_from_target", "freeway_to_target"],
                &[],
            )),
            active_streams: Family::new(info(
                "freeway_active_streams",
                "Streamed answers being sent to clients now, by HTTP route.",
                &["http_route"],
                &[],
            )),
            agent_steps: Family::new(info(
                "freeway_agent_steps",
                "Model calls agents made, by agent.",
                &["freeway_agent"],
                &[],
            )),
            tool_runs: Family::new(info(
                "freeway_agent_tool_runs",
                "Tool calls agents ran, by tool and outcome (ok, error, denied).",
                &["freeway_tool", "outcome"],
                &[],
            )),
            exec_runs: Family::new(info(
                "freeway_exec_runs",
                "Runs of /v1/exec by outcome (ok, failed, timeout, error).",
                &["outcome"],
                &[],
            )),
        }
    }

    /// Every family, in the order `/metrics` shows them.
    pub fn render(&self, out: &mut String) {
        self.http_requests.render(out);
        self.operation_duration.render(out);
        self.time_to_first_token.render(out);
        self.token_usage.render(out);
        self.cost.render(out);
        self.retries.render(out);
        self.fallbacks.render(out);
        self.active_streams.render(out);
        self.agent_steps.render(out);
        self.tool_runs.render(out);
        self.exec_runs.render(out);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let family: Family<Histogram> = Family::new(FamilyInfo {
            name: "t_seconds",
            help: "A test.",
            labels: &["route"],
            buckets: &[0.125, 1.0],
        });
        let h = family.with(&["/a"]);
        h.observe(0.0625);
        h.observe(0.5);
        h.observe(4.0);
        // A bucket's bound is inclusive.
        family.with(&["/a"]).observe(0.125);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_seconds A test.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{route=\"/a\",le=\"0.125\"} 2\n\
             t_seconds_bucket{route=\"/a\",le=\"1\"} 3\n\
             t_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n\
             t_seconds_sum{route=\"/a\"} 4.6875\n\
             t_seconds_count{route=\"/a\"} 4\n"
        );
    }

    #[test]
    fn counters_are_per_label_set_sorted_and_escaped() {
        let family: Family<Counter> = Family::new(FamilyInfo {
            name: "t",
            help: "A test.",
            labels: &["a", "b"],
            buckets: &[],
        });
        family.with(&["y", "1"]).inc();
        family.with(&["x", "say \"hi\"\n\\"]).add(2.5);
        family.with(&["y", "1"]).inc();
        assert_eq!(family.get(&["y", "1"]).unwrap().get(), 2.0);
        assert!(family.get(&["y", "2"]).is_none());
        let mut out = String::new();
        family.render(&mut out);
        let lines: Vec<&str> = out.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "t_total{a=\"x\",b=\"say \\\"hi\\\"\\n\\\\\"} 2.5",
                "t_total{a=\"y\",b=\"1\"} 2",
            ]
        );
    }

    #[test]
    fn label_sets_past_the_cap_share_one_overflow_series() {
        let family: Family<Counter> = Family::new(FamilyInfo {
            name: "t",
            help: "A test.",
            labels: &["v"],
            buckets: &[],
        });
        for i in 0..MAX_SERIES + 10 {
            family.with(&[&i.to_string()]).inc();
        }
        assert_eq!(family.get(&["overflow"]).unwrap().get(), 10.0);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(out.lines().count(), 2 + MAX_SERIES + 1);
    }

    #[test]
    fn gauges_go_both_ways() {
        let g = Gauge::default();
        g.add(3);
        g.add(-1);
        assert_eq!(g.get(), 2);
        let mut out = String::new();
        g.render(&mut out, "g", "");
        assert_eq!(out, "g 2\n");
    }
}
