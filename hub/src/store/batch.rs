//! Group commit for intake: many concurrent `insert_case` calls share one transaction.
//!
//! One writer task takes the first waiting request, then every request already queued behind
//! it (up to `max_batch`), and stores them with one [`Store::insert_cases`] call: one fsync for
//! the batch. No timer: a lone request is written at once; under load, requests pile up while
//! the previous batch commits, and the next batch takes them all. Each caller gets its own
//! outcome only after the batch committed, so `Ok` still means durable.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{InsertOutcome, NewCase, Store, StoreError};

type Reply = oneshot::Sender<Result<InsertOutcome, StoreError>>;

/// A handle to the intake writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct IntakeBatcher {
    requests: mpsc::Sender<(NewCase, Reply)>,
}

impl IntakeBatcher {
    /// Starts the writer task on `store`, batching up to `max_batch` cases per transaction.
    /// The task ends when every handle is dropped.
    pub fn spawn(store: Arc<dyn Store>, max_batch: usize) -> (Self, JoinHandle<()>) {
        let max_batch = max_batch.max(1);
        let (requests, receiver) = mpsc::channel(max_batch * 4);
        let task = tokio::spawn(run_writer(store, receiver, max_batch));
        (Self { requests }, task)
    }

    /// Stores one case through the next batch; returns once that batch committed.
    pub async fn insert(&self, case: NewCase) -> Result<InsertOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((case, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run_writer(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<(NewCase, Reply)>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        let (cases, replies): (Vec<NewCase>, Vec<Reply>) = batch.drain(..).unzip();
        let size = cases.len();
        match store.insert_cases(cases).await {
            Ok(outcomes) => {
                tracing::debug!(size, "intake batch committed");
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that gave up waiting does not undo the commit; nothing to do.
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, size, "intake batch failed");
                let detail = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::BatchFailed {
                        detail: detail.clone(),
                    }));
                }
            }
        }
    }
}
