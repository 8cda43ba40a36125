//! Stored responses are written after the answer, not before it: a database write (1.5 ms
//! on SQLite, a round trip on PostgreSQL) is not the client's to wait for.
//!
//! Until its write is done a response is held here, so this instance reads its own writes:
//! `GET`, `input_items` and `previous_response_id` find it at once, and `DELETE` waits for
//! the write before deleting. Another instance on the same database sees it once written,
//! a few milliseconds later. A write that fails is logged; the response is then not kept.
//! Shutdown waits for the writes in flight ([`Pending::flush`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use freeway_store::{NewResponse, Scope, Store, StoredResponse};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio_util::task::TaskTracker;

/// Responses written to the store in the background, and readable until they are.
#[derive(Default)]
pub struct Pending {
    writes: Mutex<HashMap<String, Write>>,
    tracker: TaskTracker,
}

struct Write {
    response: Arc<StoredResponse>,
    done: Shared<BoxFuture<'static, ()>>,
}

impl Pending {
    /// Starts writing `new`; readable through [`Pending::get`] from now on.
    pub fn save(self: &Arc<Self>, store: Store, new: NewResponse) {
        let response = Arc::new(StoredResponse::created_now(&new));
        let this = Arc::clone(self);
        let done = async move {
            if let Err(e) = store.put_response(&new).await {
                tracing::error!(error = %e, id = %new.id, "could not store a response");
            }
            this.lock().remove(&new.id);
        }
        .boxed()
        .shared();
        // In the map before the write can finish and take it out again.
        self.lock().insert(
            response.id.clone(),
            Write {
                response,
                done: done.clone(),
            },
        );
        self.tracker.spawn(done);
    }

    /// The response if it is still being written and `scope` may see it.
    pub fn get(&self, scope: Scope<'_>, id: &str) -> Option<Arc<StoredResponse>> {
        let writes = self.lock();
        let response = &writes.get(id)?.response;
        let visible = match scope {
            Scope::All => true,
            Scope::Team(team) => response.team_id.as_deref() == Some(team),
        };
        visible.then(|| Arc::clone(response))
    }

    /// Waits until the response `id`, if it is being written, is in the store.
    pub async fn written(&self, id: &str) {
        let done = self.lock().get(id).map(|w| w.done.clone());
        if let Some(done) = done {
            done.await;
        }
    }

    /// Waits for every write in flight; later saves still run.
    pub async fn flush(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Write>> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_response(id: &str, team: Option<&str>) -> NewResponse {
        NewResponse {
            id: id.into(),
            team_id: team.map(str::to_owned),
            key_id: None,
            model: "m".into(),
            previous_id: None,
            body: "{}".into(),
            conversation: "[]".into(),
            input_items: "[]".into(),
        }
    }

    #[tokio::test]
    async fn a_response_is_readable_while_written_and_in_the_store_after() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let pending = Arc::new(Pending::default());
        pending.save(store.clone(), new_response("resp_1", None));
        assert!(pending.get(Scope::All, "resp_1").is_some());
        // Team scopes see only their own team's responses, here as in the store.
        assert!(pending.get(Scope::Team("team_x"), "resp_1").is_none());
        pending.written("resp_1").await;
        assert!(pending.get(Scope::All, "resp_1").is_none());
        assert_eq!(
            store.response(Scope::All, "resp_1").await.unwrap().id,
            "resp_1"
        );
    }

    #[tokio::test]
    async fn flush_waits_for_every_write() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let pending = Arc::new(Pending::default());
        for i in 0..20 {
            pending.save(store.clone(), new_response(&format!("resp_{i}"), None));
        }
        pending.flush().await;
        for i in 0..20 {
            store
                .response(Scope::All, &format!("resp_{i}"))
                .await
                .unwrap();
        }
        // Saving after a flush still works.
        pending.save(store.clone(), new_response("resp_late", None));
        pending.flush().await;
        store.response(Scope::All, "resp_late").await.unwrap();
    }
}
