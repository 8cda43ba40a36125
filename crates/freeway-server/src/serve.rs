//! The accept loop: HTTP/1.1 and HTTP/2 (h2c) connections served by hyper, each on a task of
//! its own, shut down gracefully.
//!
//! It does what `axum::serve` does, with one difference that matters on a small machine: each
//! connection's future runs inside [`InlineWakes`]. hyper wakes a connection's own task while
//! that task is running: the request body's channel, read by the handler inside the
//! connection's future, wakes the connection's dispatcher, which is the same task, even when
//! the body is complete. tokio treats a task woken during its own poll as one that yielded: it
//! goes to the back of the run queue and a sleeping worker is woken to steal it. On two cores
//! that was one futex wake, one context switch and one idle worker's round trip per request,
//! for nothing. `InlineWakes` notices such a wake and polls the future again at once instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use axum::Router;
use futures_util::task::AtomicWaker;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits for the open
/// connections to finish the requests they are serving.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(InlineWakes::new(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// An accept error: per-connection ones (the peer went away) are ignored; running out of file
/// descriptors or memory is logged and waited out rather than spun on.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Most times a future is polled again at once when it wakes itself during its own poll,
/// before it yields to the scheduler like any other task.
const MAX_INLINE_POLLS: u32 = 16;

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// Polls `F` again, at once, when it wakes itself while being polled, rather than letting the
/// wake reschedule the task (see the module's documentation). Wakes from anywhere else, or
/// that come after the poll, wake the task as usual.
pub struct InlineWakes<F> {
    future: Pin<Box<F>>,
    waker: Arc<Inline>,
    /// `waker` as a `Waker`, made once.
    inner_waker: Waker,
}

struct Inline {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Inline {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // While the future is being polled, note the wake: the poll loop sees it when the
        // poll returns. Otherwise (or if the loop has just finished), wake the task.
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.task.wake(),
        }
    }
}

impl<F: Future> InlineWakes<F> {
    pub fn new(future: F) -> Self {
        let waker = Arc::new(Inline {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        Self {
            future: Box::pin(future),
            inner_waker: Waker::from(waker.clone()),
            waker,
        }
    }
}

impl<F: Future> Future for InlineWakes<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.waker.task.register(cx.waker());
        let mut inner = Context::from_waker(&this.inner_waker);
        for _ in 0..MAX_INLINE_POLLS {
            this.waker.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(output) = this.future.as_mut().poll(&mut inner) {
                this.waker.state.store(IDLE, Ordering::Release);
                return Poll::Ready(output);
            }
            // Still POLLING: nobody woke the future, and from now on a wake goes to the task.
            if this
                .waker
                .state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
            // WOKEN during the poll: poll again.
        }
        // A future that keeps waking itself yields like any other.
        this.waker.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes that reach the task.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls `future` once inside `InlineWakes` with a task waker that counts the wakes
    /// reaching it.
    fn poll_once<F: Future>(future: F) -> (Poll<F::Output>, Arc<Count>, InlineWakes<F>) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut future = InlineWakes::new(future);
        let polled = Pin::new(&mut future).poll(&mut Context::from_waker(&waker));
        (polled, count, future)
    }

    #[test]
    fn a_wake_during_the_poll_polls_again_without_waking_the_task() {
        let mut polls = 0;
        let future = std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        let (polled, count, _) = poll_once(future);
        assert_eq!(polled, Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_wake_after_the_poll_wakes_the_task() {
        let stored = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let keep = stored.clone();
        let future = std::future::poll_fn(move |cx| {
            *keep.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        });
        let (polled, count, _future) = poll_once(future);
        assert!(polled.is_pending());
        let inner = stored.lock().unwrap().take().unwrap();
        std::thread::spawn(move || inner.wake()).join().unwrap();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
    }

    /// The loop serves HTTP/1.1 with bodies, and a cancelled token lets an answer in flight
    /// finish before `serve` returns.
    #[tokio::test]
    async fn serves_and_shuts_down_gracefully() {
        use axum::routing::post;
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let started_tx = Arc::new(std::sync::Mutex::new(Some(started_tx)));
        let router = Router::new()
            .route("/echo", post(|body: String| async move { body }))
            .route(
                "/slow",
                post(move || {
                    let started_tx = started_tx.clone();
                    async move {
                        if let Some(tx) = started_tx.lock().unwrap().take() {
                            let _ = tx.send(());
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "done"
                    }
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, router, shutdown.clone()));
        freeway_providers::transport::install_tls_provider();
        let client = reqwest::Client::new();

        let echoed = client
            .post(format!("{base}/echo"))
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(echoed.status(), 200);
        assert_eq!(echoed.text().await.unwrap(), "hello");

        let slow = tokio::spawn({
            let client = client.clone();
            let url = format!("{base}/slow");
            async move { client.post(url).send().await.unwrap().text().await.unwrap() }
        });
        started_rx.await.unwrap();
        shutdown.cancel();
        assert_eq!(slow.await.unwrap(), "done");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once its connections are done")
            .unwrap();
        assert!(client.post(format!("{base}/echo")).send().await.is_err());
    }

    #[test]
    fn a_future_that_always_wakes_itself_still_yields() {
        let future = std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        let (polled, count, _future) = poll_once(future);
        assert!(polled.is_pending());
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
    }
}
