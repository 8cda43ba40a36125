//! Approvals asked in the chat: the runtime's question goes to the UI over a channel and the
//! answer comes back from a key. The `approval.requested` event and the question travel apart,
//! so a key may answer before the question arrives; [`Book`] matches the two in either order.

use std::collections::HashMap;

use freeway_agent::{ApprovalRequest, Approver, Decision};
use tokio::sync::{mpsc, oneshot};

/// A call the runtime waits on, with where its decision goes.
#[derive(Debug)]
pub struct Asked {
    pub call_id: String,
    pub reply: oneshot::Sender<Decision>,
}

/// The approver of the chat's turns: forwards each request to the UI.
pub struct Forward(pub mpsc::UnboundedSender<Asked>);

#[async_trait::async_trait]
impl Approver for Forward {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        let (reply, answer) = oneshot::channel();
        let asked = Asked {
            call_id: request.call_id.clone(),
            reply,
        };
        if self.0.send(asked).is_err() {
            return closed();
        }
        answer.await.unwrap_or_else(|_| closed())
    }
}

fn closed() -> Decision {
    Decision::Deny {
        reason: Some("the chat was closed before anyone answered".to_owned()),
    }
}

/// Questions waiting for a key, and keys that came before their question.
#[derive(Debug, Default)]
pub struct Book {
    waiting: HashMap<String, oneshot::Sender<Decision>>,
    early: HashMap<String, Decision>,
}

impl Book {
    pub fn asked(&mut self, asked: Asked) {
        match self.early.remove(&asked.call_id) {
            Some(decision) => {
                let _ = asked.reply.send(decision);
            }
            None => {
                self.waiting.insert(asked.call_id, asked.reply);
            }
        }
    }

    pub fn decide(&mut self, call_id: String, decision: Decision) {
        match self.waiting.remove(&call_id) {
            Some(reply) => {
                // The turn may have been aborted meanwhile: no one to tell, nothing to do.
                let _ = reply.send(decision);
            }
            None => {
                self.early.insert(call_id, decision);
            }
        }
    }

    /// Forgets everything at the end of a turn; a question left open is denied.
    pub fn clear(&mut self) {
        self.waiting.clear();
        self.early.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn request(call_id: &str) -> ApprovalRequest {
        ApprovalRequest {
            session_id: "s".into(),
            call_id: call_id.into(),
            name: "bash".into(),
            arguments: serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn a_key_answers_the_question_before_or_after_it_arrives() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let approver = Arc::new(Forward(tx));
        let mut book = Book::default();

        let first = tokio::spawn({
            let approver = approver.clone();
            async move { approver.decide(&request("a")).await }
        });
        book.asked(rx.recv().await.unwrap());
        book.decide("a".into(), Decision::Approve);
        assert_eq!(first.await.unwrap(), Decision::Approve);

        let no = Decision::Deny { reason: None };
        book.decide("b".into(), no.clone());
        let second = tokio::spawn({
            let approver = approver.clone();
            async move { approver.decide(&request("b")).await }
        });
        book.asked(rx.recv().await.unwrap());
        assert_eq!(second.await.unwrap(), no);

        let third = tokio::spawn(async move { approver.decide(&request("c")).await });
        book.asked(rx.recv().await.unwrap());
        book.clear();
        assert!(matches!(third.await.unwrap(), Decision::Deny { .. }));
    }
}
