//! Group commit for intake: many concurrent `insert_case` calls share one transaction.
//!
//! One writer task takes the first waiting request, then every request already queued behind
//! it (up to `max_batch`), and stores them with one [`Store::insert_cases`] call: one fsync for
//! the batch. No timer: a lone request is written at once; under load, requests pile up while
//! the previous batch commits, and the next batch takes them all. Each caller gets its own
//! outcome only after the batch committed, so `Ok` still means durable.
//!
//! A request may carry an [`AfterCommit`] hook: the writer task runs it with the stored case and
//! its outcome right after the commit, before answering, so what must follow a commit (handing
//! deliveries claimed at intake to the dispatcher) happens even if the caller stopped waiting.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{InsertOutcome, NewCase, Store, StoreError};

type Reply = oneshot::Sender<Result<InsertOutcome, StoreError>>;

/// Runs in the writer task after the case's batch committed, with the case (given back, so its
/// payloads need no copy) and what the store did with it. Dropped unrun when the case was not
/// stored (a failed batch or a refused case).
pub type AfterCommit = Box<dyn FnOnce(NewCase, &InsertOutcome) + Send>;

type Request = (NewCase, Option<AfterCommit>, Reply);

/// A handle to the intake writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct IntakeBatcher {
    requests: mpsc::Sender<Request>,
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
        self.insert_then(case, None).await
    }

    /// Stores one case through the next batch and runs `after` once it committed (see
    /// [`AfterCommit`]); returns once that batch committed.
    pub async fn insert_then(
        &self,
        case: NewCase,
        after: Option<AfterCommit>,
    ) -> Result<InsertOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((case, after, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run_writer(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Request>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut cases = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        let mut rest = Vec::with_capacity(batch.len());
        for (case, after, reply) in batch.drain(..) {
            cases.push(case);
            rest.push((after, reply));
        }
        let size = cases.len();
        match store.insert_cases(&cases).await {
            Ok(outcomes) => {
                tracing::debug!(size, "intake batch committed");
                for ((case, (after, reply)), outcome) in cases.drain(..).zip(rest).zip(outcomes) {
                    if let (Some(after), Ok(outcome)) = (after, &outcome) {
                        after(case, outcome);
                    }
                    // A caller that gave up waiting does not undo the commit; nothing to do.
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, size, "intake batch failed");
                cases.clear();
                let detail = error.to_string();
                for (_, reply) in rest {
                    let _ = reply.send(Err(StoreError::BatchFailed {
                        detail: detail.clone(),
                    }));
                }
            }
        }
    }
}
