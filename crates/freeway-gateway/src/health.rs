//! What the gateway has observed of each target: its circuit breaker, requests in flight and a
//! decaying average of latency. The breaker and the load-balancing strategies read it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use freeway_config::BreakerSettings;

/// Weight of the newest observation in the latency average.
const LATENCY_ALPHA: f64 = 0.3;

/// The state of a target's circuit, as reported to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// The target is skipped without a network call until the cool-down ends.
    Open,
    /// The cool-down ended; one probe request is let through to decide.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// A point-in-time view of one target, for `/admin/routes` and metrics.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    pub target: String,
    pub circuit: CircuitState,
    pub consecutive_failures: u32,
    /// Successes and failures in the current error-rate window.
    pub window_successes: u32,
    pub window_failures: u32,
    pub in_flight: usize,
    /// Decaying average latency (time to the full answer or the first streamed event).
    pub latency: Option<Duration>,
    /// Until when an open circuit skips the target.
    pub open_for: Option<Duration>,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// `since`: when the probe was let through; another is allowed if it never reports back
    /// (its client went away) within a cool-down.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
struct Breaker {
    phase: Phase,
    consecutive: u32,
    window_start: Instant,
    successes: u32,
    failures: u32,
}

/// One target's record.
#[derive(Debug)]
pub(crate) struct TargetHealth {
    breaker: Mutex<Breaker>,
    in_flight: AtomicUsize,
    /// Microseconds; 0 until the first observation.
    latency_us: AtomicU64,
}

impl TargetHealth {
    fn new(now: Instant) -> Self {
        TargetHealth {
            breaker: Mutex::new(Breaker {
                phase: Phase::Closed,
                consecutive: 0,
                window_start: now,
                successes: 0,
                failures: 0,
            }),
            in_flight: AtomicUsize::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a request may go to this target now. An open circuit whose cool-down is over
    /// lets exactly one probe through.
    pub fn admit(&self, settings: &BreakerSettings, now: Instant) -> bool {
        if settings.failures == 0 {
            return true;
        }
        let mut b = self.breaker();
        match b.phase {
            Phase::Closed => true,
            Phase::Open { until } if now >= until => {
                b.phase = Phase::HalfOpen { since: now };
                true
            }
            Phase::Open { .. } => false,
            Phase::HalfOpen { since } if now >= since + settings.cooldown => {
                b.phase = Phase::HalfOpen { since: now };
                true
            }
            Phase::HalfOpen { .. } => false,
        }
    }

    /// The target answered (even with a client error: it is alive).
    pub fn succeeded(&self, settings: &BreakerSettings, now: Instant, latency: Option<Duration>) {
        if let Some(latency) = latency {
            self.observe_latency(latency);
        }
        let mut b = self.breaker();
        b.roll_window(settings, now);
        b.successes = b.successes.saturating_add(1);
        b.consecutive = 0;
        if !matches!(b.phase, Phase::Closed) {
            tracing::info!("circuit closed after a successful probe");
            b.phase = Phase::Closed;
        }
    }

    /// The target failed in a way that says something about it (a retryable failure).
    /// Returns whether this failure opened the circuit.
    pub fn failed(&self, settings: &BreakerSettings, now: Instant) -> bool {
        if settings.failures == 0 {
            return false;
        }
        let mut b = self.breaker();
        b.roll_window(settings, now);
        b.failures = b.failures.saturating_add(1);
        b.consecutive = b.consecutive.saturating_add(1);
        let open = match b.phase {
            Phase::HalfOpen { .. } => true,
            Phase::Open { .. } => false,
            Phase::Closed => {
                let seen = b.successes + b.failures;
                b.consecutive >= settings.failures
                    || (seen >= settings.min_requests
                        && f64::from(b.failures) / f64::from(seen) >= settings.error_rate)
            }
        };
        if open {
            b.phase = Phase::Open {
                until: now + settings.cooldown,
            };
        }
        open
    }

    fn observe_latency(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // A lost update under contention only drops one sample of an average.
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "an average of microseconds fits in f64 and back"
            )]
            let blended =
                (LATENCY_ALPHA * sample as f64 + (1.0 - LATENCY_ALPHA) * old as f64).round() as u64;
            blended.max(1)
        };
        self.latency_us.store(new, Ordering::Relaxed);
    }

    /// Decaying average latency in microseconds; 0 when never observed.
    pub fn latency_us(&self) -> u64 {
        self.latency_us.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn snapshot(&self, target: &str, settings: &BreakerSettings, now: Instant) -> TargetSnapshot {
        let b = self.breaker();
        let (circuit, open_for) = match b.phase {
            Phase::Closed => (CircuitState::Closed, None),
            Phase::Open { until } if until > now => (CircuitState::Open, Some(until - now)),
            Phase::Open { .. } | Phase::HalfOpen { .. } => (CircuitState::HalfOpen, None),
        };
        let windowed = now.duration_since(b.window_start) < settings.window;
        let latency = self.latency_us();
        TargetSnapshot {
            target: target.to_owned(),
            circuit,
            consecutive_failures: b.consecutive,
            window_successes: if windowed { b.successes } else { 0 },
            window_failures: if windowed { b.failures } else { 0 },
            in_flight: self.in_flight(),
            latency: (latency > 0).then(|| Duration::from_micros(latency)),
            open_for,
        }
    }
}

impl Breaker {
    fn roll_window(&mut self, settings: &BreakerSettings, now: Instant) {
        if now.duration_since(self.window_start) >= settings.window {
            self.window_start = now;
            self.successes = 0;
            self.failures = 0;
        }
    }
}

/// Decrements the target's in-flight count when dropped (a finished or abandoned request).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<TargetHealth>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every target's record, created on first use.
#[derive(Debug, Default)]
pub(crate) struct Health {
    targets: RwLock<HashMap<String, Arc<TargetHealth>>>,
}

impl Health {
    pub fn get(&self, target: &str) -> Arc<TargetHealth> {
        if let Some(h) = self
            .targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
        {
            return h.clone();
        }
        self.targets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(target.to_owned())
            .or_insert_with(|| Arc::new(TargetHealth::new(Instant::now())))
            .clone()
    }

    /// Every target seen so far, sorted by id.
    pub fn snapshot(&self, settings: &BreakerSettings) -> Vec<TargetSnapshot> {
        let now = Instant::now();
        let targets = self.targets.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = targets
            .iter()
            .map(|(id, h)| h.snapshot(id, settings, now))
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }

    #[test]
    fn consecutive_failures_open_then_one_probe_closes() {
        let s = settings();
        let t0 = Instant::now();
        let h = TargetHealth::new(t0);
        assert!(!h.failed(&s, t0));
        assert!(!h.failed(&s, t0));
        assert!(h.failed(&s, t0), "the third consecutive failure opens");
        assert!(!h.admit(&s, t0 + Duration::from_secs(29)));
        let after = t0 + Duration::from_secs(30);
        assert!(h.admit(&s, after), "cool-down over: one probe");
        assert!(!h.admit(&s, after), "only one probe at a time");
        h.succeeded(&s, after, None);
        assert!(h.admit(&s, after));
        assert_eq!(h.snapshot("t", &s, after).circuit, CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cool_down() {
        let s = settings();
        let t0 = Instant::now();
        let h = TargetHealth::new(t0);
        for _ in 0..3 {
            h.failed(&s, t0);
        }
        let probe = t0 + Duration::from_secs(31);
        assert!(h.admit(&s, probe));
        assert!(h.failed(&s, probe));
        assert!(!h.admit(&s, probe + Duration::from_secs(29)));
        assert!(h.admit(&s, probe + Duration::from_secs(30)));
    }

    #[test]
    fn an_error_rate_over_the_window_opens_without_consecutive_failures() {
        let s = settings();
        let t0 = Instant::now();
        let h = TargetHealth::new(t0);
        // Alternate: never 3 in a row, but half of 10 requests fail.
        for i in 0..9 {
            if i % 2 == 0 {
                h.succeeded(&s, t0, None);
            } else {
                assert!(!h.failed(&s, t0));
            }
        }
        assert!(h.failed(&s, t0), "5 of 10 failed");
    }

    #[test]
    fn the_window_forgets_old_outcomes() {
        let s = settings();
        let t0 = Instant::now();
        let h = TargetHealth::new(t0);
        for _ in 0..9 {
            h.succeeded(&s, t0, None);
        }
        let later = t0 + Duration::from_secs(61);
        let snap = h.snapshot("t", &s, later);
        assert_eq!((snap.window_successes, snap.window_failures), (0, 0));
    }

    #[test]
    fn a_probe_that_never_reports_does_not_wedge_the_circuit() {
        let s = settings();
        let t0 = Instant::now();
        let h = TargetHealth::new(t0);
        for _ in 0..3 {
            h.failed(&s, t0);
        }
        let probe = t0 + Duration::from_secs(30);
        assert!(h.admit(&s, probe));
        assert!(h.admit(&s, probe + Duration::from_secs(30)));
    }

    #[test]
    fn latency_is_a_decaying_average_and_in_flight_counts_guards() {
        let s = settings();
        let h = Arc::new(TargetHealth::new(Instant::now()));
        h.succeeded(&s, Instant::now(), Some(Duration::from_millis(100)));
        assert_eq!(h.latency_us(), 100_000);
        h.succeeded(&s, Instant::now(), Some(Duration::from_millis(200)));
        assert_eq!(h.latency_us(), 130_000);
        let a = h.begin();
        let b = h.begin();
        assert_eq!(h.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(h.in_flight(), 0);
    }

    #[test]
    fn a_disabled_breaker_always_admits() {
        let s = BreakerSettings {
            failures: 0,
            ..settings()
        };
        let t0 = Instant::now();
        let h = TargetHealth::new(t0);
        for _ in 0..100 {
            assert!(!h.failed(&s, t0));
        }
        assert!(h.admit(&s, t0));
    }
}
