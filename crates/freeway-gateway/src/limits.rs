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
//! with every settled request.
//!
//! Every decision is made on counters in this process, under one lock, with no I/O. With
//! `[limits] url = "redis://…"` the counters are also shared by every instance: what this one
//! counts is pushed to Redis in the background every [`SYNC_EVERY`] (one pipeline for every
//! active subject), and the reply brings back what all instances counted. So a limit holds
//! across instances to within what they admit in one sync interval, and a request never waits
//! on Redis, except the first one of a subject this instance has not seen for [`STALE_AFTER`],
//! which reads its counters first. If Redis fails, each instance goes on enforcing the limits
//! on its own counts and the failure is logged: limits must not take the gateway down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::Duration;

use freeway_store::{Limits, SpendOwner, Store, period_end_ms, period_start_ms};
use tokio::sync::{Notify, OnceCell};

const MINUTE_MS: i64 = 60_000;
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How often counts made here are pushed to Redis (and others' counts read back).
pub const SYNC_EVERY: Duration = Duration::from_millis(10);
/// A subject's view older than this is read from Redis before it decides anything.
pub const STALE_AFTER: Duration = Duration::from_secs(1);
/// Spend counters outlive their period by a day, so a late settle still finds them.
const SPEND_GRACE_MS: i64 = 86_400_000;

/// One thing limits apply to: a key or a team.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `key:<id>` or `team:<id>`.
    pub id: &'a str,
    pub owner: SpendOwner<'a>,
    pub limits: &'a Limits,
}

impl Subject<'_> {
    fn windowed(&self) -> bool {
        self.limits.rpm.is_some() || self.limits.tpm.is_some()
    }

    fn spend_key(&self, now_ms: i64) -> String {
        let start = period_start_ms(self.limits.budget_period, now_ms);
        format!("fw:spend:{}:{start}", self.id)
    }

    /// The budget period's start and when its Redis counter may go.
    fn period(&self, now_ms: i64) -> (i64, i64) {
        let p = self.limits.budget_period;
        (
            period_start_ms(p, now_ms),
            period_end_ms(p, now_ms) + SPEND_GRACE_MS,
        )
    }
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

/// Counted here and not yet in Redis, for one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delta {
    minute: i64,
    requests: i64,
    tokens: i64,
}

/// Spend in one budget period (nanos).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spend {
    start: i64,
    /// When its Redis counter may go.
    expire_ms: i64,
    nanos: i64,
    /// The counter exists in Redis, so deltas can be added to it there.
    shared: bool,
}

#[derive(Debug, Default)]
struct Counters {
    /// What decisions read: the last totals from Redis plus what is pending here.
    window: Window,
    spend: Option<Spend>,
    /// Redis only: counts not yet pushed.
    pending: Vec<Delta>,
    pending_spend: i64,
    /// Redis only: when the view last came from Redis (0: never).
    synced_ms: i64,
    /// Redis only: listed in [`State::dirty`].
    dirty: bool,
}

impl Counters {
    fn count(&mut self, minute: i64, requests: i64, tokens: i64) {
        self.pending.retain(|d| d.minute >= minute - 1);
        match self.pending.iter_mut().find(|d| d.minute == minute) {
            Some(d) => {
                d.requests += requests;
                d.tokens += tokens;
            }
            None => self.pending.push(Delta {
                minute,
                requests,
                tokens,
            }),
        }
    }

    fn pending_at(&self, minute: i64) -> (i64, i64) {
        self.pending
            .iter()
            .find(|d| d.minute == minute)
            .map_or((0, 0), |d| (d.requests, d.tokens))
    }

    /// Takes what Redis answered (`None`: it did not) as the view, plus what is still pending.
    fn apply(&mut self, remote: &Remote, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        self.synced_ms = now_ms;
        match remote.window {
            Some(w) => {
                let (r, t) = self.pending_at(minute);
                let (pr, pt) = self.pending_at(minute - 1);
                let add = |a: u64, b: i64| a.saturating_add_signed(b);
                self.window = Window {
                    minute,
                    requests: add(w.requests, r),
                    prev_requests: add(w.prev_requests, pr),
                    tokens: add(w.tokens, t),
                    prev_tokens: add(w.prev_tokens, pt),
                };
            }
            None => self.window.roll(minute),
        }
        match remote.spend {
            Some(s) if s.shared => {
                let pending = match self.spend {
                    Some(old) if old.start == s.start => self.pending_spend,
                    _ => 0,
                };
                self.pending_spend = pending;
                self.spend = Some(Spend {
                    nanos: s.nanos + pending,
                    ..s
                });
            }
            // A baseline from the ledger, which already holds what was settled before.
            Some(s) => {
                self.pending_spend = 0;
                self.spend = Some(s);
            }
            None => {}
        }
    }
}

/// A subject's counters as Redis holds them.
#[derive(Debug, Default)]
struct Remote {
    window: Option<Window>,
    spend: Option<Spend>,
}

struct Redis {
    client: redis::Client,
    connection: OnceCell<redis::aio::ConnectionManager>,
    wake: Arc<Notify>,
    task: Once,
}

#[derive(Default)]
struct State {
    counters: HashMap<String, Counters>,
    /// Redis only: the subjects touched since the last sync.
    dirty: Vec<String>,
}

impl State {
    fn entry(&mut self, id: &str) -> &mut Counters {
        if !self.counters.contains_key(id) {
            self.counters.insert(id.to_owned(), Counters::default());
        }
        match self.counters.get_mut(id) {
            Some(c) => c,
            None => unreachable!("inserted above"),
        }
    }

    /// Marks `id` for the next sync.
    fn touch(&mut self, id: &str) {
        let c = self.entry(id);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id.to_owned());
        }
    }
}

struct Shared {
    state: Mutex<State>,
    redis: Option<Redis>,
    errors: AtomicU64,
    /// When a Redis failure was last logged (ms), so an outage logs once in a while.
    warned_ms: AtomicI64,
}

pub struct Limiter {
    shared: Arc<Shared>,
    store: Option<Store>,
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

fn window_keys(id: &str, minute: i64) -> [String; 4] {
    [
        format!("fw:rl:{id}:r:{minute}"),
        format!("fw:rl:{id}:r:{}", minute - 1),
        format!("fw:rl:{id}:t:{minute}"),
        format!("fw:rl:{id}:t:{}", minute - 1),
    ]
}

/// Adds the reads of one subject's counters to `pipe`: five values, see [`read_remote`].
fn push_reads(pipe: &mut redis::Pipeline, id: &str, minute: i64, spend_key: Option<&str>) {
    for k in window_keys(id, minute) {
        pipe.cmd("GET").arg(k);
    }
    match spend_key {
        Some(k) => pipe.cmd("GET").arg(k),
        // Keeps every subject at five values.
        None => pipe.cmd("ECHO").arg(""),
    };
}

fn read_remote(values: &[redis::Value], minute: i64, period: Option<(i64, i64)>) -> Remote {
    let n = |i: usize| -> Option<i64> {
        values
            .get(i)
            .and_then(|v| redis::from_redis_value_ref::<Option<i64>>(v).ok())
            .flatten()
    };
    let u = |i: usize| n(i).and_then(|x| u64::try_from(x).ok()).unwrap_or(0);
    Remote {
        window: Some(Window {
            minute,
            requests: u(0),
            prev_requests: u(1),
            tokens: u(2),
            prev_tokens: u(3),
        }),
        spend: period.and_then(|(start, expire_ms)| {
            n(4).map(|nanos| Spend {
                start,
                expire_ms,
                nanos,
                shared: true,
            })
        }),
    }
}

impl Limiter {
    /// Counters in this process; spend starts from `store`'s ledger when there is one.
    pub fn memory(store: Option<Store>) -> Self {
        Self::with(None, store)
    }

    /// Counters shared by every instance through Redis.
    pub fn redis(url: &str, store: Option<Store>) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("limits.url: {e}"))?;
        Ok(Self::with(
            Some(Redis {
                client,
                connection: OnceCell::new(),
                wake: Arc::new(Notify::new()),
                task: Once::new(),
            }),
            store,
        ))
    }

    fn with(redis: Option<Redis>, store: Option<Store>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                redis,
                errors: AtomicU64::new(0),
                warned_ms: AtomicI64::new(0),
            }),
            store,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.shared.redis {
            None => "memory",
            Some(_) => "redis",
        }
    }

    /// Failures of the counter backend so far (each left the decision to this instance).
    pub fn errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// Decides whether a request may go ahead, counting it against every request window.
    pub async fn admit(&self, subjects: &[Subject<'_>], now_ms: i64) -> Verdict {
        if subjects.iter().all(|s| s.limits.is_unlimited()) {
            return Verdict::Admit(Quota::default());
        }
        self.load(subjects, now_ms).await;
        let shared = self.shared.redis.is_some();
        let verdict = decide(&mut self.shared.lock(), subjects, now_ms, shared);
        self.wake();
        verdict
    }

    /// Adds what an admitted request used once its answer is known. Never waits on I/O.
    pub fn settle(&self, subjects: &[Subject<'_>], tokens: u64, cost_nanos: i64, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let shared = self.shared.redis.is_some();
        {
            let mut state = self.shared.lock();
            for s in subjects.iter().filter(|s| !s.limits.is_unlimited()) {
                let c = state.entry(s.id);
                c.window.roll(minute);
                c.window.tokens += tokens;
                let start = period_start_ms(s.limits.budget_period, now_ms);
                let spent = match &mut c.spend {
                    Some(spend) if spend.start == start => {
                        spend.nanos += cost_nanos;
                        cost_nanos
                    }
                    _ => 0,
                };
                if shared {
                    c.count(minute, 0, i64::try_from(tokens).unwrap_or(i64::MAX));
                    c.pending_spend += spent;
                    state.touch(s.id);
                }
            }
        }
        self.wake();
    }

    /// Pushes what this instance counted to Redis now and reads back every instance's totals
    /// (the background task does this every [`SYNC_EVERY`]; tests and shutdown call it).
    pub async fn sync(&self, now_ms: i64) {
        self.shared.sync(now_ms).await;
    }

    /// Makes sure every limited subject has counters to decide on: spend from the ledger,
    /// and with Redis, a view no older than [`STALE_AFTER`].
    async fn load(&self, subjects: &[Subject<'_>], now_ms: i64) {
        let redis = self.shared.redis.is_some();
        let stale_ms = STALE_AFTER.as_millis() as i64;
        let stale: Vec<&Subject<'_>> = {
            let state = self.shared.lock();
            subjects
                .iter()
                .filter(|s| !s.limits.is_unlimited())
                .filter(|s| {
                    let c = state.counters.get(s.id);
                    let start = period_start_ms(s.limits.budget_period, now_ms);
                    let spend_known = s.limits.budget_nanos.is_none()
                        || c.and_then(|c| c.spend).is_some_and(|sp| sp.start == start);
                    !spend_known || (redis && c.is_none_or(|c| now_ms - c.synced_ms > stale_ms))
                })
                .collect()
        };
        if stale.is_empty() {
            return;
        }
        let mut remotes = match redis {
            true => self.shared.read(&stale, now_ms).await,
            false => stale.iter().map(|_| Remote::default()).collect(),
        };
        for (s, remote) in stale.iter().zip(&mut remotes) {
            if s.limits.budget_nanos.is_some() && remote.spend.is_none() {
                let share = remote.window.is_some();
                remote.spend = Some(self.baseline(s, now_ms, share).await);
            }
        }
        let mut state = self.shared.lock();
        for (s, remote) in stale.iter().zip(&remotes) {
            let c = state.entry(s.id);
            if redis {
                c.apply(remote, now_ms);
            } else if let Some(spend) = remote.spend
                && c.spend.is_none_or(|old| old.start != spend.start)
            {
                c.spend = Some(spend);
            }
        }
    }

    /// Spend so far in the period from the ledger. With `share`, also made the shared counter
    /// in Redis unless another instance made it first (then that one is returned).
    async fn baseline(&self, s: &Subject<'_>, now_ms: i64, share: bool) -> Spend {
        let (start, expire_ms) = s.period(now_ms);
        let nanos = self.ledger(s, start).await;
        let local = Spend {
            start,
            expire_ms,
            nanos,
            shared: false,
        };
        if !share {
            return local;
        }
        let k = s.spend_key(now_ms);
        let mut set = redis::pipe();
        set.cmd("SET").arg(&k).arg(nanos).arg("NX").ignore();
        set.cmd("PEXPIREAT").arg(&k).arg(expire_ms).ignore();
        set.cmd("GET").arg(&k);
        match self.shared.query::<(Option<i64>,)>(&set).await {
            Some((Some(nanos),)) => Spend {
                nanos,
                shared: true,
                ..local
            },
            _ => local,
        }
    }

    async fn ledger(&self, s: &Subject<'_>, since: i64) -> i64 {
        let Some(store) = &self.store else { return 0 };
        match store.spend_since(s.owner, since).await {
            Ok(n) => n,
            Err(e) => {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, subject = s.id, "could not read spend from the ledger");
                0
            }
        }
    }

    /// Tells the sync task there is something to push (starting it the first time).
    fn wake(&self) {
        let Some(redis) = &self.shared.redis else {
            return;
        };
        redis.task.call_once(|| {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(sync_loop(Arc::downgrade(&self.shared), redis.wake.clone()));
            }
        });
        redis.wake.notify_one();
    }
}

/// The decision, on this process's counters; counts the request if it goes ahead.
fn decide(state: &mut State, subjects: &[Subject<'_>], now_ms: i64, shared: bool) -> Verdict {
    let minute = now_ms.div_euclid(MINUTE_MS);
    let mut quota = Quota::default();
    let mut refusal: Option<(Exceeded, String, Duration)> = None;
    let mut downgrade = None;
    for s in subjects.iter().filter(|s| !s.limits.is_unlimited()) {
        let c = state.entry(s.id);
        c.window.roll(minute);
        let w = c.window;
        if let Some(rpm) = s.limits.rpm {
            // Counting this one.
            let used = estimate(w.prev_requests, w.requests + 1, now_ms);
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
        let start = period_start_ms(s.limits.budget_period, now_ms);
        let spent = c
            .spend
            .filter(|sp| sp.start == start)
            .map_or(0, |sp| sp.nanos);
        if spent < budget || refusal.is_some() {
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
                        usd(spent),
                        usd(budget),
                        period.as_str()
                    ),
                    Duration::from_millis(u64::try_from(until).unwrap_or(0)),
                ));
            }
        }
    }
    if let Some((exceeded, message, retry_after)) = refusal {
        // A refused request does not use up any window.
        return Verdict::Refuse {
            exceeded,
            message,
            retry_after,
            quota,
        };
    }
    for s in subjects.iter().filter(|s| !s.limits.is_unlimited()) {
        let c = state.entry(s.id);
        if s.windowed() {
            c.window.requests += 1;
            if shared {
                c.count(minute, 1, 0);
            }
        }
        // Read back at the next sync, so its view follows every instance's.
        if shared {
            state.touch(s.id);
        }
    }
    match downgrade {
        Some(route) => Verdict::Downgrade { route, quota },
        None => Verdict::Admit(quota),
    }
}

/// Pushes counts every [`SYNC_EVERY`] while there are any; ends with its limiter.
async fn sync_loop(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        // Wakes now and then to notice that the limiter is gone.
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        tokio::time::sleep(SYNC_EVERY).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.sync(freeway_store::now_ms()).await;
    }
}

/// What one sync takes out of a subject's counters.
struct Outgoing {
    id: String,
    deltas: Vec<Delta>,
    /// The spend counted here since the last sync; a counter that is not in Redis yet (Redis
    /// was down when the subject was loaded) is made there from this instance's total.
    spend: Option<(Spend, i64)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The counters are plain numbers: a panic elsewhere cannot leave them half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the counters of `subjects` from Redis (`window: None` where it did not answer).
    async fn read(&self, subjects: &[&Subject<'_>], now_ms: i64) -> Vec<Remote> {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let mut pipe = redis::pipe();
        for s in subjects {
            let spend = s.limits.budget_nanos.map(|_| s.spend_key(now_ms));
            push_reads(&mut pipe, s.id, minute, spend.as_deref());
        }
        let values: Option<Vec<redis::Value>> = self.query(&pipe).await;
        subjects
            .iter()
            .enumerate()
            .map(|(i, s)| match &values {
                Some(v) => read_remote(
                    v.get(i * 5..i * 5 + 5).unwrap_or_default(),
                    minute,
                    s.limits.budget_nanos.map(|_| s.period(now_ms)),
                ),
                None => Remote::default(),
            })
            .collect()
    }

    async fn sync(&self, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let outgoing: Vec<Outgoing> = {
            let mut state = self.lock();
            let ids = std::mem::take(&mut state.dirty);
            ids.into_iter()
                .filter_map(|id| {
                    let c = state.counters.get_mut(&id)?;
                    c.dirty = false;
                    let spend = c.spend.map(|s| (s, c.pending_spend));
                    c.pending_spend = 0;
                    Some(Outgoing {
                        deltas: std::mem::take(&mut c.pending),
                        spend,
                        id,
                    })
                })
                .collect()
        };
        if outgoing.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for o in &outgoing {
            for d in o.deltas.iter().filter(|d| d.minute >= minute - 1) {
                let [r, _, t, _] = window_keys(&o.id, d.minute);
                for (k, n) in [(r, d.requests), (t, d.tokens)] {
                    if n != 0 {
                        pipe.cmd("INCRBY").arg(&k).arg(n).ignore();
                        pipe.cmd("PEXPIRE").arg(&k).arg(2 * MINUTE_MS).ignore();
                    }
                }
            }
            let spend_key = o
                .spend
                .map(|(s, _)| format!("fw:spend:{}:{}", o.id, s.start));
            match (&spend_key, o.spend) {
                // The key was made with its expiry (`baseline`); INCRBY keeps it.
                (Some(k), Some((s, n))) if s.shared && n != 0 => {
                    pipe.cmd("INCRBY").arg(k).arg(n).ignore();
                }
                (Some(k), Some((s, _))) if !s.shared => {
                    pipe.cmd("SET").arg(k).arg(s.nanos).arg("NX").ignore();
                    pipe.cmd("PEXPIREAT").arg(k).arg(s.expire_ms).ignore();
                }
                _ => {}
            }
            push_reads(&mut pipe, &o.id, minute, spend_key.as_deref());
        }
        let values: Option<Vec<redis::Value>> = self.query(&pipe).await;
        let mut state = self.lock();
        for (i, o) in outgoing.into_iter().enumerate() {
            let Some(c) = state.counters.get_mut(&o.id) else {
                continue;
            };
            match &values {
                Some(v) => {
                    let remote = read_remote(
                        v.get(i * 5..i * 5 + 5).unwrap_or_default(),
                        minute,
                        o.spend.map(|(s, _)| (s.start, s.expire_ms)),
                    );
                    c.apply(&remote, now_ms);
                }
                // Nothing reached Redis: keep the counts for the next sync.
                None => {
                    for d in o.deltas {
                        c.count(d.minute, d.requests, d.tokens);
                    }
                    if let Some((sent, n)) = o.spend
                        && c.spend.is_some_and(|s| s.start == sent.start)
                    {
                        c.pending_spend += n;
                    }
                    state.touch(&o.id);
                }
            }
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let redis = self.redis.as_ref()?;
        let conn = redis
            .connection
            .get_or_try_init(|| async {
                tokio::time::timeout(REDIS_TIMEOUT * 4, redis.client.get_connection_manager())
                    .await
                    .map_err(|_| "timed out connecting".to_owned())?
                    .map_err(|e| e.to_string())
            })
            .await;
        let mut conn = match conn {
            Ok(c) => c.clone(),
            Err(e) => {
                self.failed(&e);
                return None;
            }
        };
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("timed out");
                None
            }
        }
    }

    fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = freeway_store::now_ms();
        let last = self.warned_ms.load(Ordering::Relaxed);
        if now - last < 10_000
            || self
                .warned_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        tracing::warn!(
            error,
            "rate-limit counters (redis) unavailable; this instance enforces limits on its own counts"
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
        l.settle(&s, 120, 0, T0 + 5);
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
        l.settle(&s, 10, 1_000, T0);
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
        l.settle(&s, 10, 2_000, T0);
        assert_eq!(
            l.admit(&s, T0 + 1).await,
            Verdict::Downgrade {
                route: "cheap".into(),
                quota: Quota::default()
            }
        );
    }

    fn redis_url() -> String {
        std::env::var("FREEWAY_TEST_REDIS").unwrap_or("redis://127.0.0.1:6379/".into())
    }

    /// The same limits hold across instances: two limiters on one Redis share the windows
    /// once they have synced.
    #[tokio::test]
    async fn redis_counters_are_shared() {
        let a = Limiter::redis(&redis_url(), None).unwrap();
        let b = Limiter::redis(&redis_url(), None).unwrap();
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
        a.sync(now).await;
        // b pushes its count and reads back a's.
        b.sync(now).await;
        let v = b.admit(&s, now).await;
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

        // Spend settled on one instance stops the other.
        let id2 = format!("{id}-b");
        let budget = Limits {
            budget_nanos: Some(500),
            ..Limits::default()
        };
        let s = [Subject {
            id: &id2,
            owner: SpendOwner::Key("x"),
            limits: &budget,
        }];
        assert!(matches!(a.admit(&s, now).await, Verdict::Admit(_)));
        assert!(matches!(b.admit(&s, now).await, Verdict::Admit(_)));
        b.settle(&s, 10, 600, now);
        b.sync(now).await;
        a.sync(now).await;
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

        // A new instance reads the shared totals before its first decision.
        let c = Limiter::redis(&redis_url(), None).unwrap();
        let v = c.admit(&s, now).await;
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

    /// Counts reach Redis without anyone asking: the background sync pushes them.
    #[tokio::test]
    async fn counts_are_pushed_in_the_background() {
        let a = Limiter::redis(&redis_url(), None).unwrap();
        let id = format!("key:test-{}", freeway_types::random_id(""));
        let lim = limits(Some(100), Some(10_000));
        let s = [Subject {
            id: &id,
            owner: SpendOwner::Key("x"),
            limits: &lim,
        }];
        let now = now();
        for _ in 0..3 {
            assert!(matches!(a.admit(&s, now).await, Verdict::Admit(_)));
        }
        a.settle(&s, 42, 0, now);
        let minute = now.div_euclid(MINUTE_MS);
        let mut conn = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut seen = (None, None);
        for _ in 0..500 {
            seen = redis::pipe()
                .cmd("GET")
                .arg(format!("fw:rl:{id}:r:{minute}"))
                .cmd("GET")
                .arg(format!("fw:rl:{id}:t:{minute}"))
                .query_async::<(Option<i64>, Option<i64>)>(&mut conn)
                .await
                .unwrap();
            if seen == (Some(3), Some(42)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, (Some(3), Some(42)));
    }

    /// Without Redis, an instance still enforces limits on what it counted itself.
    #[tokio::test]
    async fn redis_down_falls_back_to_local_counts() {
        let l = Limiter::redis("redis://127.0.0.1:1/", None).unwrap();
        let lim = limits(Some(2), None);
        let s = [Subject {
            id: "key:offline",
            owner: SpendOwner::Key("offline"),
            limits: &lim,
        }];
        assert!(matches!(l.admit(&s, T0).await, Verdict::Admit(_)));
        assert!(matches!(l.admit(&s, T0 + 1).await, Verdict::Admit(_)));
        l.sync(T0 + 2).await;
        assert!(matches!(
            l.admit(&s, T0 + 3).await,
            Verdict::Refuse {
                exceeded: Exceeded::Requests,
                ..
            }
        ));
        assert!(l.errors() > 0);
    }

    fn now() -> i64 {
        freeway_store::now_ms()
    }
}
