//! Holding a session for one turn: in this process by a set of running sessions, and against
//! every other instance on the same database by a lease in the store, renewed while the turn
//! runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freeway_store::{Scope, SessionLease, Store, StoreError, now_ms};

use super::AgentError;

/// How long a turn's lease on its session lasts unless renewed: how soon a session whose
/// instance died mid-turn can run again elsewhere.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a running turn renews its lease.
const LEASE_RENEW: Duration = Duration::from_secs(10);

/// A session held for one turn, from [`super::Runtime::claim`]: in this process and, through a
/// lease in the store, against every other instance on the same database.
pub struct Claim {
    local: LocalClaim,
    lease: SessionLease,
    store: Store,
    released: bool,
}

impl Claim {
    /// Adds the store's lease to a session held in this process: `Busy` while another
    /// instance's lease on it is live.
    pub(super) async fn take(
        local: LocalClaim,
        store: &Store,
        scope: Scope<'_>,
    ) -> Result<Self, AgentError> {
        let lease = store
            .take_lease(scope, &local.id, LEASE_TTL)
            .await
            .map_err(|e| match e {
                StoreError::Busy { .. } => AgentError::Busy(local.id.clone()),
                e => AgentError::Store(e),
            })?;
        Ok(Claim {
            local,
            lease,
            store: store.clone(),
            released: false,
        })
    }

    pub fn session_id(&self) -> &str {
        &self.local.id
    }

    /// Renews the lease until it cannot: returns once another holder has it, or once it lapsed
    /// while the store could not be reached.
    pub(super) async fn keep(&mut self) {
        loop {
            tokio::time::sleep(LEASE_RENEW).await;
            match self.store.renew_lease(&mut self.lease, LEASE_TTL).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(session = %self.lease.session_id, error = %e, "could not renew a session's lease");
                    if now_ms() >= self.lease.until_ms {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the session back at once, here and in the store (without this, dropping the
    /// claim does it in the background). Done before the turn says it is idle, so a client
    /// that sends the next message on `session.idle` finds the session free.
    pub(super) async fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        self.local.free();
        if let Err(e) = self.store.release_lease(&self.lease).await {
            tracing::warn!(session = %self.local.id, error = %e, "could not release a session's lease; it lapses by itself");
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (store, lease) = (self.store.clone(), self.lease.clone());
            handle.spawn(async move { store.release_lease(&lease).await });
        }
    }
}

/// Marks a session as running in this process for as long as it lives.
pub(super) struct LocalClaim {
    set: Arc<Mutex<HashSet<String>>>,
    id: String,
    held: bool,
}

impl LocalClaim {
    pub(super) fn take(set: &Arc<Mutex<HashSet<String>>>, id: &str) -> Result<Self, AgentError> {
        let mut running = set
            .lock()
            .map_err(|_| AgentError::Invalid("the runtime's state is poisoned".to_owned()))?;
        if !running.insert(id.to_owned()) {
            return Err(AgentError::Busy(id.to_owned()));
        }
        Ok(LocalClaim {
            set: set.clone(),
            id: id.to_owned(),
            held: true,
        })
    }

    fn free(&mut self) {
        if std::mem::take(&mut self.held)
            && let Ok(mut running) = self.set.lock()
        {
            running.remove(&self.id);
        }
    }
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        self.free();
    }
}
