//! The usage ledger and its audit entries, written off the request path.
//!
//! A request hands its row to a writer and goes on. The writer batches rows into one
//! transaction. It runs on a thread of its own at idle CPU priority (`SCHED_IDLE` on Linux),
//! with a database connection of its own, opened from that thread so that SQLite's connection
//! thread inherits the priority. The kernel then takes the core from the writer the moment a
//! request's thread, the load generator or the upstream wakes, instead of letting the
//! transaction run out its time slice. At one connection's full rate this took freeway's p99
//! from about 0.6 ms to 0.33–0.45 ms (`bench/RESULTS.md`).
//!
//! An idle-priority thread gets next to no CPU while the machine is saturated. So once
//! [`OVERFLOW`] rows wait for it, further rows go to a second writer at normal priority on the
//! server's runtime, with larger batches. That bounds what waits for the idle writer; a server
//! saturated for long still builds a backlog at the rate it outruns the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use freeway_store::{Store, UsageRecord};
use tokio::sync::{Notify, mpsc, oneshot};

/// Rows per transaction at most, for the background writer and for the overflow one, which
/// only works when the machine is saturated and must keep up with it. A transaction costs
/// about six statements, each a round trip to SQLite's thread and back, whatever its size, so
/// small batches cost context switches: at 5,000 requests/s, 16-row batches took 29% of
/// freeway's CPU on the two writer threads, and 256-row ones cut freeway's CPU per request
/// from 130–160 µs to 108–118 µs. Larger batches used to raise the p99 at one connection's
/// full rate (0.6 ms at 256 rows against 0.3–0.6 at 16), because SQLite looked up each of a
/// statement's numbered parameters by a linear search; since inserts bind `?` instead, the
/// p99 is the same at 16 and at 256 rows (`bench/RESULTS.md`, 2026-12-07).
pub const BATCH: usize = 256;
const OVERFLOW_BATCH: usize = 512;
/// How long a writer waits for more rows after the first before it writes them. A
/// transaction costs the same six statements, each a round trip to the database thread, for
/// one row as for a full batch, so at a few requests a second writing each row alone spent more
/// CPU than serving the request (`bench/cpu.sh`). Readers on this instance never see the
/// delay: the usage and audit endpoints flush first.
const LINGER: Duration = Duration::from_millis(500);
/// Rows waiting for the idle-priority writer beyond which rows go to the normal-priority one.
const OVERFLOW: usize = 4096;

/// What the ledger writers have done since start-up, for `/metrics`.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Transactions, each holding one batch of rows.
    pub writes: AtomicU64,
    pub rows_written: AtomicU64,
    /// Rows given up on after five failed attempts (each also logged as an error).
    pub rows_dropped: AtomicU64,
    /// Rows handed to the normal-priority writer because the idle one was too far behind.
    pub rows_overflowed: AtomicU64,
}

/// The two writers and what they did.
pub struct Ledger {
    background: Lane,
    overflow: Lane,
    /// Rows waiting for the background writer beyond which the overflow one takes them.
    overflow_at: usize,
    pub stats: Arc<LedgerStats>,
}

impl Ledger {
    /// Starts the writers: the idle-priority one on a thread of its own, the overflow one on
    /// the current runtime.
    pub fn start(store: Store) -> Self {
        Self::start_with(store, OVERFLOW)
    }

    fn start_with(store: Store, overflow_at: usize) -> Self {
        let stats = Arc::<LedgerStats>::default();
        let (overflow, rx) = Lane::new(OVERFLOW_BATCH);
        tokio::spawn(write(
            store.clone(),
            rx,
            overflow.hurry.clone(),
            stats.clone(),
        ));
        let (background, rx) = Lane::new(BATCH);
        let (hurry, thread_stats) = (background.hurry.clone(), stats.clone());
        let spawned = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("freeway-ledger".into())
                    .spawn(move || {
                        lower_priority();
                        runtime.block_on(write_in_background(store, rx, hurry, thread_stats));
                    })
            });
        let background = match spawned {
            Ok(_) => background,
            Err(e) => {
                // The receiver went with the failed thread; the rows go to the other writer.
                tracing::warn!(error = %e, "could not start the background ledger writer");
                overflow.clone()
            }
        };
        Self {
            background,
            overflow,
            overflow_at,
            stats,
        }
    }

    pub fn record(&self, record: UsageRecord) {
        let lane = if self.background.hurry.queued.load(Ordering::Relaxed) < self.overflow_at {
            &self.background
        } else {
            self.stats.rows_overflowed.fetch_add(1, Ordering::Relaxed);
            &self.overflow
        };
        lane.record(record);
    }

    /// Waits until every row handed over so far is written.
    pub async fn flush(&self) {
        tokio::join!(self.background.flush(), self.overflow.flush());
    }
}

/// One writer's queue, and how to wake it early.
#[derive(Clone)]
struct Lane {
    tx: mpsc::UnboundedSender<Message>,
    hurry: Arc<Hurry>,
}

impl Lane {
    fn new(batch: usize) -> (Self, mpsc::UnboundedReceiver<Message>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hurry = Arc::new(Hurry {
            batch,
            ..Hurry::default()
        });
        (Self { tx, hurry }, rx)
    }

    fn record(&self, record: UsageRecord) {
        let queued = self.hurry.queued.fetch_add(1, Ordering::Relaxed) + 1;
        if self.tx.send(Message::Record(record)).is_err() {
            tracing::error!("the ledger writer has stopped; a usage row was not recorded");
        } else if queued >= self.hurry.batch {
            self.hurry.notify.notify_one();
        }
    }

    async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.hurry.flushes.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Message::Flush(tx)).is_ok() {
            self.hurry.notify.notify_one();
            let _ = rx.await;
        }
    }
}

enum Message {
    Record(UsageRecord),
    Flush(oneshot::Sender<()>),
}

/// Tells a lingering writer to write now: a batch is full, or someone flushes. The writer
/// does not listen to the channel while it lingers, so a row on its way wakes no one.
#[derive(Default)]
struct Hurry {
    /// Rows per transaction at most.
    batch: usize,
    /// Rows sent and not yet taken from the channel. Counted before the send, so the writer's
    /// decrement never comes first.
    queued: AtomicUsize,
    /// Flushes sent and not yet taken: one behind a full batch must not wait out a linger.
    flushes: AtomicUsize,
    notify: Notify,
}

impl Hurry {
    fn may_linger(&self) -> bool {
        self.queued.load(Ordering::Relaxed) < self.batch
            && self.flushes.load(Ordering::Relaxed) == 0
    }
}

/// The background writer, on its thread: with a connection opened from there, so that it
/// runs at the thread's priority. It ends when the [`Ledger`] is dropped.
async fn write_in_background(
    store: Store,
    rx: mpsc::UnboundedReceiver<Message>,
    hurry: Arc<Hurry>,
    stats: Arc<LedgerStats>,
) {
    let own = store.sibling().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the ledger writer shares the server's connections");
        None
    });
    write(own.clone().unwrap_or(store), rx, hurry, stats).await;
    if let Some(own) = own {
        own.close().await;
    }
}

/// Makes the calling thread, and the threads it spawns from now on, run only on CPU time
/// nothing else wants. Lowering one's own priority needs no privilege.
#[allow(
    unsafe_code,
    reason = "sched_setscheduler has no safe wrapper in the standard library"
)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the ledger writer keeps normal priority"
            );
        }
    }
}

async fn write(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Message>,
    hurry: Arc<Hurry>,
    stats: Arc<LedgerStats>,
) {
    let mut batch = Vec::with_capacity(hurry.batch);
    let mut waiting = Vec::new();
    while let Some(mut message) = rx.recv().await {
        // Linger for company unless someone is waiting or a batch is already queued. A hurry
        // left over from while the last batch was written ends the wait at once: one early
        // write, no harm.
        if matches!(message, Message::Record(_)) && hurry.may_linger() {
            let _ = tokio::time::timeout(LINGER, hurry.notify.notified()).await;
        }
        // Take what is queued, up to a full batch; rows that arrive while it is written form
        // the next one.
        loop {
            match message {
                Message::Record(r) => {
                    hurry.queued.fetch_sub(1, Ordering::Relaxed);
                    batch.push(r);
                }
                Message::Flush(done) => {
                    hurry.flushes.fetch_sub(1, Ordering::Relaxed);
                    waiting.push(done);
                }
            }
            if batch.len() == hurry.batch {
                break;
            }
            match rx.try_recv() {
                Ok(next) => message = next,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            write_batch(&store, &batch, &stats).await;
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// One transaction, retried a few times before the rows are given up on.
async fn write_batch(store: &Store, batch: &[UsageRecord], stats: &LedgerStats) {
    let rows = batch.len() as u64;
    let mut attempt = 0;
    loop {
        let Err(e) = store.record_usage(batch).await else {
            stats.writes.fetch_add(1, Ordering::Relaxed);
            stats.rows_written.fetch_add(rows, Ordering::Relaxed);
            return;
        };
        attempt += 1;
        if attempt == 5 {
            tracing::error!(error = %e, rows, "could not write usage rows; dropped them");
            stats.rows_dropped.fetch_add(rows, Ordering::Relaxed);
            return;
        }
        tracing::warn!(error = %e, attempt, "could not write usage rows; retrying");
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize) -> UsageRecord {
        UsageRecord {
            at: 1_000 + i as i64,
            request_id: format!("req-{i}"),
            team_id: None,
            key_id: None,
            endpoint: "chat",
            model: "up/m".into(),
            target: Some("up/m".into()),
            status: 200,
            input_tokens: 1,
            output_tokens: 1,
            cached_tokens: 0,
            cost_nanos: 0,
            estimated: false,
            cache_hit: false,
            latency_ms: 1,
        }
    }

    async fn ledger_rows(store: &Store) -> Vec<String> {
        sqlx::query_scalar("SELECT request_id FROM usage_ledger ORDER BY at")
            .fetch_all(store.pool())
            .await
            .unwrap()
    }

    /// The scheduling policy of each of this process's threads whose name starts with `prefix`
    /// (`/proc/<tid>/sched` prints it; 5 is `SCHED_IDLE`).
    fn policies(prefix: &str) -> Vec<u32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !comm.starts_with(prefix) {
                continue;
            }
            let sched = std::fs::read_to_string(dir.join("sched")).unwrap_or_default();
            if let Some(line) = sched.lines().find(|l| l.starts_with("policy")) {
                found.push(line.rsplit(' ').next().unwrap().trim().parse().unwrap());
            }
        }
        found
    }

    #[tokio::test]
    async fn rows_are_written_by_an_idle_priority_thread_and_its_own_connection() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let store = Store::open(&url).await.unwrap();
        let ledger = Ledger::start(store.clone());
        for i in 0..3 {
            ledger.record(row(i));
        }
        ledger.flush().await;
        assert_eq!(ledger_rows(&store).await, ["req-0", "req-1", "req-2"]);
        assert_eq!(ledger.stats.rows_overflowed.load(Ordering::Relaxed), 0);
        #[cfg(target_os = "linux")]
        {
            // Other tests of this binary may have writers running too.
            let ledgers = policies("freeway-ledger");
            assert!(
                !ledgers.is_empty() && ledgers.iter().all(|&p| p == 5),
                "{ledgers:?}"
            );
            // The connection thread the writer opened inherited its priority; the server's
            // own connection threads did not.
            let mut sqlite = policies("sqlx-sqlite-wor");
            sqlite.sort_unstable();
            assert_eq!(sqlite.last(), Some(&5), "{sqlite:?}");
            assert_eq!(sqlite.first(), Some(&0), "{sqlite:?}");
        }
    }

    #[tokio::test]
    async fn rows_beyond_the_backlog_limit_go_to_the_overflow_writer() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let ledger = Ledger::start_with(store.clone(), 4);
        for i in 0..10 {
            ledger.record(row(i));
        }
        // The background writer lingers for company with its first row taken, so four or five
        // rows reach it and the rest overflow.
        let overflowed = ledger.stats.rows_overflowed.load(Ordering::Relaxed);
        assert!((5..=6).contains(&overflowed), "{overflowed}");
        ledger.flush().await;
        assert_eq!(ledger.stats.rows_written.load(Ordering::Relaxed), 10);
        let mut rows = ledger_rows(&store).await;
        rows.sort();
        let mut want: Vec<String> = (0..10).map(|i| format!("req-{i}")).collect();
        want.sort();
        assert_eq!(rows, want);
    }
}
