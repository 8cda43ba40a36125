//! Who says yes before a tool changes files or runs a command.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use freeway_config::Approval;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::tool::ToolKind;

/// Whether `mode` asks the user before a call of `kind`.
pub fn needs_approval(mode: Approval, kind: ToolKind) -> bool {
    match mode {
        Approval::FullAuto => false,
        Approval::AutoEdit => kind == ToolKind::Execute,
        Approval::Suggest => kind != ToolKind::Read,
    }
}

/// A call waiting for the user.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub session_id: String,
    pub call_id: String,
    pub name: String,
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny { reason: Option<String> },
}

#[async_trait::async_trait]
pub trait Approver: Send + Sync + 'static {
    async fn decide(&self, request: &ApprovalRequest) -> Decision;
}

/// Says no to everything, with a reason the model passes on (headless runs with no one to ask).
pub struct DenyAll(pub String);

#[async_trait::async_trait]
impl Approver for DenyAll {
    async fn decide(&self, _: &ApprovalRequest) -> Decision {
        Decision::Deny {
            reason: Some(self.0.clone()),
        }
    }
}

/// Says yes to everything (`--yes`).
pub struct ApproveAll;

#[async_trait::async_trait]
impl Approver for ApproveAll {
    async fn decide(&self, _: &ApprovalRequest) -> Decision {
        Decision::Approve
    }
}

/// Decisions that arrive from elsewhere (an HTTP call, a terminal key): each request waits on a
/// slot keyed by session and call id until [`Pending::resolve`] fills it or the wait times out.
pub struct Pending {
    slots: Mutex<HashMap<(String, String), oneshot::Sender<Decision>>>,
    timeout: Duration,
}

impl Pending {
    pub fn new(timeout: Duration) -> Self {
        Pending {
            slots: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// Delivers a decision; false when nothing waits for that call.
    pub fn resolve(&self, session_id: &str, call_id: &str, decision: Decision) -> bool {
        let slot = self
            .slots
            .lock()
            .map(|mut s| s.remove(&(session_id.to_owned(), call_id.to_owned())))
            .ok()
            .flatten();
        slot.is_some_and(|tx| tx.send(decision).is_ok())
    }

    /// The calls of a session that wait for a decision.
    pub fn waiting(&self, session_id: &str) -> Vec<String> {
        self.slots.lock().map_or_else(
            |_| Vec::new(),
            |s| {
                s.keys()
                    .filter(|(sid, _)| sid == session_id)
                    .map(|(_, c)| c.clone())
                    .collect()
            },
        )
    }
}

#[async_trait::async_trait]
impl Approver for Pending {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        let (tx, rx) = oneshot::channel();
        let key = (request.session_id.clone(), request.call_id.clone());
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(key.clone(), tx);
        }
        let decision = tokio::time::timeout(self.timeout, rx).await;
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&key);
        }
        match decision {
            Ok(Ok(d)) => d,
            _ => Decision::Deny {
                reason: Some(format!(
                    "no one approved the call within {} s",
                    self.timeout.as_secs()
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn modes_ask_for_what_they_promise() {
        use Approval::*;
        use ToolKind::*;
        assert!(!needs_approval(FullAuto, Execute));
        assert!(!needs_approval(AutoEdit, Edit));
        assert!(needs_approval(AutoEdit, Execute));
        assert!(needs_approval(Suggest, Edit));
        assert!(!needs_approval(Suggest, Read));
    }

    #[tokio::test]
    async fn a_pending_call_gets_the_decision_given_for_it() {
        let pending = Arc::new(Pending::new(Duration::from_secs(5)));
        let request = ApprovalRequest {
            session_id: "s".into(),
            call_id: "c".into(),
            name: "bash".into(),
            arguments: Value::Null,
        };
        let waiter = {
            let pending = pending.clone();
            tokio::spawn(async move { pending.decide(&request).await })
        };
        while pending.waiting("s").is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(!pending.resolve("s", "other", Decision::Approve));
        assert!(pending.resolve("s", "c", Decision::Approve));
        assert_eq!(waiter.await.ok(), Some(Decision::Approve));
    }
}
