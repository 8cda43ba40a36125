//! Rate limits and budgets per key and per team: requests per minute, tokens per minute and
//! spend per day or month.
//!
//! Minute limits use a sliding window estimated from two fixed windows (the previous minute's
//! count, weighted by how much of it still overlaps, plus the current one's), which is what
//! Cloudflare and most gateways do: smooth, O(1) and exact at the edges that matter.
//! Tokens are known only after an answer, so a request is admitted while the token window is
//! below its limit and its tokens are added when it settles.
//!
//! Spend starts from the usage ledger the first time a subject is seen in a period and grows
//! with every settled request. Counters live in this process by default, or in Redis
//! (`[limits] url = "redis://…"`) so that every instance enforces the same limits. If Redis
//! fails, requests are admitted and the failure is logged: limits must not take the gateway down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use freeway_store::{Limits, SpendOwner, Store, period_end_ms, period_start_ms};
use tokio::sync::OnceCell;

const MINUTE_MS: i64 = 60_000;
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// One thing limits apply to: a key or a team.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `key:<id>` or `team:<id>`.
    pub id: &'a str,
    pub owner: SpendOwner<'a>,
    pub limits: &'a Limits,
}

/// How much of a minute limit is left (for `x-ratelimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window has room again (the current minute's end).
    pub reset: Duration,
}

/// The tightest request and token windows among a request's subjects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Requests,
    Tokens,
    Budget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Admit(Quota),
    /// A budget is spent and says to use a cheaper route instead.
    Downgrade {
        route: String,
        quota: Quota,
    },
    Refuse {
        exceeded: Exceeded,
        message: String,
        retry_after: Duration,
        quota: Quota,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    minute: i64,
    requests: u64,
    prev_requests: u64,
    tokens: u64,
    prev_tokens: u64,
}

impl Window {
    fn roll(&mut self, minute: i64) {
        if minute == self.minute {
            return;
        }
        let (r, t) = if minute == self.minute + 1 {
            (self.requests, self.tokens)
        } else {
            (0, 0)
        };
        *self = Window {
            minute,
            requests: 0,
            prev_requests: r,
            tokens: 0,
            prev_tokens: t,
        };
    }
}

#[derive(Debug, Default)]
struct Counters {
    window: Window,
    /// (period start, nanos spent in it)
    spend: Option<(i64, i64)>,
}

enum Backend {
    Memory(Mutex<HashMap<String, Counters>>),
    Redis {
        client: redis::Client,
        connection: OnceCell<redis::aio::ConnectionManager>,
    },
}

pub struct Limiter {
    backend: Backend,
    store: Option<Store>,
    pub(crate) errors: AtomicU64,
}

/// The sliding-window estimate: the previous minute weighted by its overlap, plus this one.
fn estimate(prev: u64, cur: u64, now_ms: i64) -> u64 {
    let into = now_ms.rem_euclid(MINUTE_MS) as f64 / MINUTE_MS as f64;
    (prev as f64 * (1.0 - into)).floor() as u64 + cur
}

fn reset(now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(MINUTE_MS - now_ms.rem_euclid(MINUTE_MS)).unwrap_or(0))
}

fn tighter(a: Option<Remaining>, b: Remaining) -> Option<Remaining> {
    match a {
        Some(a) if a.remaining <= b.remaining => Some(a),
        _ => Some(b),
    }
}

fn usd(nanos: i64) -> String {
    format!("{:.4}", nanos as f64 / 1e9)
}

impl Limiter {
    /// Counters in this process; spend starts from `store`'s ledger when there is one.
    pub fn memory(store: Option<Store>) -> Self {
        Self {
            backend: Backend::Memory(Mutex::new(HashMap::new())),
            store,
            errors: AtomicU64::new(0),
        }
    }

    /// Counters in Redis, shared by every instance.
    pub fn redis(url: &str, store: Option<Store>) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("limits.url: {e}"))?;
        Ok(Self {
            backend: Backend::Redis {
                client,
                connection: OnceCell::new(),
            },
            store,
            errors: AtomicU64::new(0),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    /// Failures of the counter backend so far (each admitted the request).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Decides whether a request may go ahead, counting it against every request window.
    pub async fn admit(&self, subjects: &[Subject<'_>], now_ms: i64) -> Verdict {
        if subjects.iter().all(|s| s.limits.is_unlimited()) {
            return Verdict::Admit(Quota::default());
        }
        let mut spent = Vec::with_capacity(subjects.len());
        for s in subjects {
            spent.push(match s.limits.budget_nanos {
                Some(_) => self.spent(s, now_ms).await,
                None => 0,
            });
        }
        let windows = match self.count_request(subjects, now_ms).await {
            Some(w) => w,
            None => return Verdict::Admit(Quota::default()),
        };

        let mut quota = Quota::default();
        let mut refusal: Option<(Exceeded, String, Duration)> = None;
        let mut downgrade = None;
        for ((s, w), spent) in subjects.iter().zip(&windows).zip(&spent) {
            if let Some(rpm) = s.limits.rpm {
                // `requests` already includes this one.
                let used = estimate(w.prev_requests, w.requests, now_ms);
                let r = Remaining {
                    limit: rpm,
                    remaining: rpm.saturating_sub(used),
                    reset: reset(now_ms),
                };
                quota.requests = tighter(quota.requests, r);
                if used > rpm && refusal.is_none() {
                    refusal = Some((
                        Exceeded::Requests,
                        format!("{} is over its limit of {rpm} requests per minute", s.id),
                        reset(now_ms),
                    ));
                }
            }
            if let Some(tpm) = s.limits.tpm {
                let used = estimate(w.prev_tokens, w.tokens, now_ms);
                let r = Remaining {
                    limit: tpm,
                    remaining: tpm.saturating_sub(used),
                    reset: reset(now_ms),
                };
                quota.tokens = tighter(quota.tokens, r);
                if used >= tpm && refusal.is_none() {
                    refusal = Some((
                        Exceeded::Tokens,
                        format!("{} is over its limit of {tpm} tokens per minute", s.id),
                        reset(now_ms),
                    ));
                }
            }
            let Some(budget) = s.limits.budget_nanos else {
                continue;
            };
            if *spent < budget || refusal.is_some() {
                continue;
            }
            let period = s.limits.budget_period;
            match s
                .limits
                .on_exceed
                .as_deref()
                .and_then(|a| a.strip_prefix("route:"))
            {
                // A later subject's hard limit still refuses.
                Some(route) => downgrade = downgrade.or(Some(route.to_owned())),
                None => {
                    let until = period_end_ms(period, now_ms) - now_ms;
                    refusal = Some((
                        Exceeded::Budget,
                        format!(
                            "{} has spent ${} of its ${} {} budget",
                            s.id,
                            usd(*spent),
                            usd(budget),
                            period.as_str()
                        ),
                        Duration::from_millis(u64::try_from(until).unwrap_or(0)),
                    ));
                }
            }
        }
        match (refusal, downgrade) {
            (Some((exceeded, message, retry_after)), _) => {
                if exceeded != Exceeded::Budget {
                    // A refused request does not use up the window.
                    self.uncount_request(subjects, now_ms).await;
                }
                Verdict::Refuse {
                    exceeded,
                    message,
                    retry_after,
                    quota,
                }
            }
            (None, Some(route)) => Verdict::Downgrade { route, quota },
            (None, None) => Verdict::Admit(quota),
        }
    }

    /// Adds what an admitted request used once its answer is known.
    pub async fn settle(
        &self,
        subjects: &[Subject<'_>],
        tokens: u64,
        cost_nanos: i64,
        now_ms: i64,
    ) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        match &self.backend {
            Backend::Memory(map) => {
                let Ok(mut map) = map.lock() else { return };
                for s in subjects.iter().filter(|s| !s.limits.is_unlimited()) {
                    let c = map.entry(s.id.to_owned()).or_default();
                    c.window.roll(minute);
                    c.window.tokens += tokens;
                    let start = period_start_ms(s.limits.budget_period, now_ms);
                    if let Some((p, spent)) = &mut c.spend
                        && *p == start
                    {
                        *spent += cost_nanos;
                    }
                }
            }
            Backend::Redis { .. } => {
                let mut pipe = redis::pipe();
                let mut any = false;
                for s in subjects {
                    if s.limits.tpm.is_some() && tokens > 0 {
                        let k = format!("fw:rl:{}:t:{minute}", s.id);
                        pipe.cmd("INCRBY").arg(&k).arg(tokens).ignore();
                        pipe.cmd("PEXPIRE").arg(&k).arg(2 * MINUTE_MS).ignore();
                        any = true;
                    }
                    if s.limits.budget_nanos.is_some() && cost_nanos != 0 {
                        let start = period_start_ms(s.limits.budget_period, now_ms);
                        let k = format!("fw:spend:{}:{start}", s.id);
                        // `admit` created the counter from the ledger (SET NX) before this.
                        pipe.cmd("INCRBY").arg(&k).arg(cost_nanos).ignore();
                        pipe.cmd("PEXPIREAT")
                            .arg(&k)
                            .arg(period_end_ms(s.limits.budget_period, now_ms) + 86_400_000)
                            .ignore();
                        any = true;
                    }
                }
                if any {
                    self.redis_query::<()>(&pipe).await;
                }
            }
        }
    }

    /// Nanos spent in the current period, starting from the ledger.
    async fn spent(&self, s: &Subject<'_>, now_ms: i64) -> i64 {
        let start = period_start_ms(s.limits.budget_period, now_ms);
        match &self.backend {
            Backend::Memory(map) => {
                if let Ok(map) = map.lock()
                    && let Some((p, spent)) = map.get(s.id).and_then(|c| c.spend)
                    && p == start
                {
                    return spent;
                }
                let baseline = self.ledger(s, start).await;
                let Ok(mut map) = map.lock() else {
                    return baseline;
                };
                let c = map.entry(s.id.to_owned()).or_default();
                match c.spend {
                    Some((p, spent)) if p == start => spent,
                    _ => {
                        c.spend = Some((start, baseline));
                        baseline
                    }
                }
            }
            Backend::Redis { .. } => {
                let k = format!("fw:spend:{}:{start}", s.id);
                let mut get = redis::pipe();
                get.cmd("GET").arg(&k);
                match self.redis_query::<(Option<i64>,)>(&get).await {
                    Some((Some(spent),)) => spent,
                    Some((None,)) => {
                        let baseline = self.ledger(s, start).await;
                        let mut set = redis::pipe();
                        set.cmd("SET").arg(&k).arg(baseline).arg("NX").ignore();
                        set.cmd("PEXPIREAT")
                            .arg(&k)
                            .arg(period_end_ms(s.limits.budget_period, now_ms) + 86_400_000)
                            .ignore();
                        set.cmd("GET").arg(&k);
                        self.redis_query::<(Option<i64>,)>(&set)
                            .await
                            .and_then(|(v,)| v)
                            .unwrap_or(baseline)
                    }
                    None => 0,
                }
            }
        }
    }

    async fn ledger(&self, s: &Subject<'_>, since: i64) -> i64 {
        let Some(store) = &self.store else { return 0 };
        match store.spend_since(s.owner, since).await {
            Ok(n) => n,
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, subject = s.id, "could not read spend from the ledger");
                0
            }
        }
    }

    /// Counts one request in every subject's window and returns the windows after it.
    async fn count_request(&self, subjects: &[Subject<'_>], now_ms: i64) -> Option<Vec<Window>> {
        let minute = now_ms.div_euclid(MINUTE_MS);
        match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().ok()?;
                Some(
                    subjects
                        .iter()
                        .map(|s| {
                            if s.limits.rpm.is_none() && s.limits.tpm.is_none() {
                                return Window::default();
                            }
                            let c = map.entry(s.id.to_owned()).or_default();
                            c.window.roll(minute);
                            c.window.requests += 1;
                            c.window
                        })
                        .collect(),
                )
            }
            Backend::Redis { .. } => {
                let mut pipe = redis::pipe();
                for s in subjects {
                    let r = format!("fw:rl:{}:r:{minute}", s.id);
                    let t = format!("fw:rl:{}:t:{minute}", s.id);
                    if s.limits.rpm.is_some() {
                        pipe.cmd("INCR").arg(&r);
                        pipe.cmd("PEXPIRE").arg(&r).arg(2 * MINUTE_MS).ignore();
                    } else {
                        pipe.cmd("GET").arg(&r);
                    }
                    pipe.cmd("GET")
                        .arg(format!("fw:rl:{}:r:{}", s.id, minute - 1));
                    pipe.cmd("GET").arg(&t);
                    pipe.cmd("GET")
                        .arg(format!("fw:rl:{}:t:{}", s.id, minute - 1));
                }
                let values: Vec<Option<i64>> = self.redis_query(&pipe).await?;
                let n = |v: Option<&Option<i64>>| {
                    v.copied()
                        .flatten()
                        .and_then(|x| u64::try_from(x).ok())
                        .unwrap_or(0)
                };
                Some(
                    values
                        .chunks(4)
                        .map(|c| Window {
                            minute,
                            requests: n(c.first()),
                            prev_requests: n(c.get(1)),
                            tokens: n(c.get(2)),
                            prev_tokens: n(c.get(3)),
                        })
                        .collect(),
                )
            }
        }
    }

    async fn uncount_request(&self, subjects: &[Subject<'_>], now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        match &self.backend {
            Backend::Memory(map) => {
                let Ok(mut map) = map.lock() else { return };
                for s in subjects
                    .iter()
                    .filter(|s| s.limits.rpm.is_some() || s.limits.tpm.is_some())
                {
                    if let Some(c) = map.get_mut(s.id)
                        && c.window.minute == minute
                    {
                        c.window.requests = c.window.requests.saturating_sub(1);
                    }
                }
            }
            Backend::Redis { .. } => {
                let mut pipe = redis::pipe();
                for s in subjects.iter().filter(|s| s.limits.rpm.is_some()) {
                    pipe.cmd("DECR")
                        .arg(format!("fw:rl:{}:r:{minute}", s.id))
                        .ignore();
                }
                self.redis_query::<()>(&pipe).await;
            }
        }
    }

    async fn redis_query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let Backend::Redis { client, connection } = &self.backend else {
            return None;
        };
        let conn = connection
            .get_or_try_init(|| async {
                tokio::time::timeout(REDIS_TIMEOUT * 4, client.get_connection_manager())
                    .await
                    .map_err(|_| "timed out connecting".to_owned())?
                    .map_err(|e| e.to_string())
            })
            .await;
        let mut conn = match conn {
            Ok(c) => c.clone(),
            Err(e) => {
                self.redis_failed(&e);
                return None;
            }
        };
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.redis_failed(&e.to_string());
                None
            }
            Err(_) => {
                self.redis_failed("timed out");
                None
            }
        }
    }

    fn redis_failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            error,
            "rate-limit counters (redis) unavailable; admitting the request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u64>, tpm: Option<u64>) -> Limits {
        Limits {
            rpm,
            tpm,
            ..Limits::default()
        }
    }

    const T0: i64 = 1_796_121_000_000; // on a minute boundary

    #[tokio::test]
    async fn requests_per_minute_slide() {
        let l = Limiter::memory(None);
        let lim = limits(Some(3), None);
        let s = [Subject {
            id: "key:a",
            owner: SpendOwner::Key("a"),
            limits: &lim,
        }];
        for i in 0..3 {
            let v = l.admit(&s, T0 + i).await;
            let Verdict::Admit(q) = v else {
                panic!("{v:?}")
            };
            assert_eq!(q.requests.unwrap().remaining, 2 - i as u64);
        }
        let v = l.admit(&s, T0 + 10).await;
        assert!(
            matches!(
                v,
                Verdict::Refuse {
                    exceeded: Exceeded::Requests,
                    ..
                }
            ),
            "{v:?}"
        );
        // Half way into the next minute, half of the previous minute's 3 still count (1).
        assert!(matches!(
            l.admit(&s, T0 + MINUTE_MS + 30_000).await,
            Verdict::Admit(_)
        ));
        assert!(matches!(
            l.admit(&s, T0 + MINUTE_MS + 30_001).await,
            Verdict::Admit(_)
        ));
        assert!(matches!(
            l.admit(&s, T0 + MINUTE_MS + 30_002).await,
            Verdict::Refuse { .. }
        ));
        // Two minutes later the slate is clean.
        assert!(matches!(
            l.admit(&s, T0 + 3 * MINUTE_MS).await,
            Verdict::Admit(_)
        ));
    }

    #[tokio::test]
    async fn tokens_count_once_settled() {
        let l = Limiter::memory(None);
        let lim = limits(None, Some(100));
        let s = [Subject {
            id: "team:t",
            owner: SpendOwner::Team("t"),
            limits: &lim,
        }];
        assert!(matches!(l.admit(&s, T0).await, Verdict::Admit(_)));
        l.settle(&s, 120, 0, T0 + 5).await;
        let v = l.admit(&s, T0 + 6).await;
        assert!(
            matches!(
                v,
                Verdict::Refuse {
                    exceeded: Exceeded::Tokens,
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[tokio::test]
    async fn budgets_refuse_or_downgrade() {
        let l = Limiter::memory(None);
        let hard = Limits {
            budget_nanos: Some(1_000),
            ..Limits::default()
        };
        let soft = Limits {
            budget_nanos: Some(1_000),
            on_exceed: Some("route:cheap".into()),
            ..Limits::default()
        };
        let s = [Subject {
            id: "key:h",
            owner: SpendOwner::Key("h"),
            limits: &hard,
        }];
        assert!(matches!(l.admit(&s, T0).await, Verdict::Admit(_)));
        l.settle(&s, 10, 1_000, T0).await;
        let v = l.admit(&s, T0 + 1).await;
        let Verdict::Refuse {
            exceeded,
            message,
            retry_after,
            ..
        } = v
        else {
            panic!("{v:?}")
        };
        assert_eq!(exceeded, Exceeded::Budget);
        assert!(message.contains("key:h has spent $0.0000"), "{message}");
        assert!(retry_after > Duration::from_secs(3600));

        let s = [Subject {
            id: "key:s",
            owner: SpendOwner::Key("s"),
            limits: &soft,
        }];
        l.admit(&s, T0).await;
        l.settle(&s, 10, 2_000, T0).await;
        assert_eq!(
            l.admit(&s, T0 + 1).await,
            Verdict::Downgrade {
                route: "cheap".into(),
                quota: Quota::default()
            }
        );
    }

    /// The same limits hold across instances: two limiters on one Redis share the windows.
    #[tokio::test]
    async fn redis_counters_are_shared() {
        let url = std::env::var("FREEWAY_TEST_REDIS").unwrap_or("redis://127.0.0.1:6379/".into());
        let a = Limiter::redis(&url, None).unwrap();
        let b = Limiter::redis(&url, None).unwrap();
        let id = format!("key:test-{}", freeway_types::random_id(""));
        let lim = Limits {
            rpm: Some(2),
            tpm: Some(50),
            budget_nanos: Some(500),
            ..Limits::default()
        };
        let s = [Subject {
            id: &id,
            owner: SpendOwner::Key("x"),
            limits: &lim,
        }];
        let now = now();
        assert!(matches!(a.admit(&s, now).await, Verdict::Admit(_)));
        assert!(matches!(b.admit(&s, now).await, Verdict::Admit(_)));
        let v = a.admit(&s, now).await;
        assert!(
            matches!(
                v,
                Verdict::Refuse {
                    exceeded: Exceeded::Requests,
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(a.errors(), 0, "redis must be reachable for this test");

        let id2 = format!("{id}-b");
        let s = [Subject {
            id: &id2,
            owner: SpendOwner::Key("x"),
            limits: &lim,
        }];
        assert!(matches!(a.admit(&s, now).await, Verdict::Admit(_)));
        b.settle(&s, 10, 600, now).await;
        let v = a.admit(&s, now).await;
        assert!(
            matches!(
                v,
                Verdict::Refuse {
                    exceeded: Exceeded::Budget,
                    ..
                }
            ),
            "{v:?}"
        );
    }

    fn now() -> i64 {
        freeway_store::now_ms()
    }
}
