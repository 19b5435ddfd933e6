//! The send path to one line system, built from tower layers: a buffer (so every worker shares
//! one handle), a concurrency limit (`max_in_flight`), a rate limit (`rate_per_second`, when set)
//! and a safety timeout around the adapter's own timeouts.
//!
//! Invariant: every call ends in a [`DeliveryOutcome`], or in [`NotSent`] when the attempt got
//! its slot after this node fenced itself (the line system was not contacted). A layer failure
//! before the adapter was called is a `Retry`; the safety timeout firing means the document may
//! have left, so it is `Ambiguous`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tower::buffer::Buffer;
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use yimen_adapters::settings::Limits;
use yimen_adapters::{Adapter, DeliveryOutcome, DeliveryRequest};

type SendFuture = BoxFuture<'static, Result<DeliveryOutcome, BoxError>>;

/// An attempt that reached its turn in the send path but was not sent: the line system was not
/// contacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotSent(pub String);

/// A cloneable handle on one line system's send path.
#[derive(Clone)]
pub struct LineSender {
    service: Buffer<DeliveryRequest, SendFuture>,
    safety_timeout: Duration,
}

impl std::fmt::Debug for LineSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSender")
            .field("safety_timeout", &self.safety_timeout)
            .finish_non_exhaustive()
    }
}

impl LineSender {
    /// Builds the send path for an adapter that delivers; `None` for kinds that do not (jump).
    /// Must be called inside a tokio runtime (the buffer runs a worker task).
    pub fn new(adapter: Arc<dyn Adapter>, limits: &Limits) -> Option<Self> {
        let rate = (limits.rate_per_second > 0)
            .then(|| (u64::from(limits.rate_per_second), Duration::from_secs(1)));
        Self::with_limits(
            adapter,
            limits,
            limits.max_in_flight,
            rate,
            Arc::default(),
            Arc::default(),
        )
    }

    /// Like [`Self::new`] with this node's share of the system's limits: at most `max_in_flight`
    /// attempts at once and, when set, `rate = (n, per)`: `n` starts per `per`. `sending` counts
    /// the attempts past the limits, talking to the line system now. While `fenced` is set, an
    /// attempt whose turn comes is not sent ([`NotSent`]): a fenced node's part of the limits
    /// may already belong to the other nodes, so what it claimed ahead waits for them.
    pub fn with_limits(
        adapter: Arc<dyn Adapter>,
        limits: &Limits,
        max_in_flight: usize,
        rate: Option<(u64, Duration)>,
        sending: Arc<AtomicUsize>,
        fenced: Arc<AtomicBool>,
    ) -> Option<Self> {
        adapter.as_deliver()?;
        let safety_timeout = limits.connect_timeout() + limits.request_timeout() * 2;
        let rate = rate.map(|(n, per)| tower::limit::RateLimitLayer::new(n.max(1), per));
        let inner = ServiceBuilder::new()
            .concurrency_limit(max_in_flight.max(1))
            .option_layer(rate)
            .timeout(safety_timeout)
            .service_fn(move |request: DeliveryRequest| {
                let adapter = adapter.clone();
                if fenced.load(Ordering::Acquire) {
                    let not_sent = NotSent(
                        "not sent: this node is fenced (its heartbeat could not be stored), so \
                         the other nodes may hold the system's whole limit"
                            .to_owned(),
                    );
                    return async move { Err::<DeliveryOutcome, BoxError>(Box::new(not_sent)) }
                        .boxed();
                }
                let sending = Sending::start(&sending);
                async move {
                    let _sending = sending;
                    let outcome = match adapter.as_deliver() {
                        Some(deliver) => deliver.deliver(&request).await,
                        None => DeliveryOutcome::Rejected {
                            reason: "adapter cannot deliver".to_owned(),
                            excerpt: String::new(),
                        },
                    };
                    Ok::<_, BoxError>(outcome)
                }
                .boxed()
            });
        let boxed = BoxService::new(inner);
        let service = Buffer::new(boxed, max_in_flight.max(1) * 2);
        Some(Self {
            service,
            safety_timeout,
        })
    }

    /// Sends one attempt through the limits and classifies layer failures.
    pub fn send(
        &self,
        request: DeliveryRequest,
    ) -> BoxFuture<'static, Result<DeliveryOutcome, NotSent>> {
        // Boxed with an explicit `Send` so callers' futures stay `Send` (the buffer's error
        // conversion otherwise trips higher-ranked lifetime inference).
        let safety_timeout = self.safety_timeout;
        Box::pin(
            self.service
                .clone()
                .oneshot(request)
                .map(move |result| match result {
                    Err(error) => match error.downcast::<NotSent>() {
                        Ok(not_sent) => Err(*not_sent),
                        Err(error) => Ok(classify(Err(error), safety_timeout)),
                    },
                    ok => Ok(classify(ok, safety_timeout)),
                }),
        )
    }
}

/// One attempt past the limits; counted until it ends (or is dropped on the safety timeout).
struct Sending(Arc<AtomicUsize>);

impl Sending {
    fn start(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter.clone())
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn classify(
    result: Result<DeliveryOutcome, BoxError>,
    safety_timeout: Duration,
) -> DeliveryOutcome {
    match result {
        Ok(outcome) => outcome,
        Err(error) if error.is::<tower::timeout::error::Elapsed>() => DeliveryOutcome::Ambiguous {
            reason: format!("no answer within {safety_timeout:?}"),
        },
        Err(error) => DeliveryOutcome::Retry {
            after: None,
            reason: format!("dispatcher: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::time::Instant;
    use yimen_adapters::{Deliver, Health, Payload, Receipt, StatusQueryError};

    use super::*;

    /// A line system that takes everything after `work`, recording start times and the
    /// largest number of sends at once.
    #[derive(Debug, Default)]
    struct Recorder {
        work: Duration,
        starts: Mutex<Vec<Instant>>,
        running: AtomicUsize,
        most: AtomicUsize,
    }

    #[async_trait]
    impl Adapter for Recorder {
        fn kind(&self) -> &'static str {
            "recorder"
        }
        async fn health(&self) -> Health {
            Health::Up
        }
        fn as_deliver(&self) -> Option<&dyn Deliver> {
            Some(self)
        }
    }

    #[async_trait]
    impl Deliver for Recorder {
        async fn deliver(&self, _request: &DeliveryRequest) -> DeliveryOutcome {
            self.starts.lock().unwrap().push(Instant::now());
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.work).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            DeliveryOutcome::Delivered(Receipt {
                receipt_number: None,
                raw_status: None,
                excerpt: String::new(),
            })
        }
        async fn find_by_key(&self, _key: &str) -> Result<Option<Receipt>, StatusQueryError> {
            Ok(None)
        }
    }

    fn request(n: u32) -> DeliveryRequest {
        DeliveryRequest {
            delivery_id: format!("d{n}"),
            case_id: "c".to_owned(),
            attempt: 1,
            idempotency_key: format!("k{n}"),
            payload: Payload {
                content_type: "application/json".to_owned(),
                body: bytes::Bytes::from_static(b"{}"),
                extension: "json".to_owned(),
                fields: Vec::new(),
            },
            materials: Vec::new(),
        }
    }

    async fn send_all(sender: &LineSender, n: u32) -> Vec<DeliveryOutcome> {
        futures::future::join_all((0..n).map(|i| sender.send(request(i))))
            .await
            .into_iter()
            .map(|sent| sent.expect("not fenced"))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_in_flight_than_the_limit() {
        let adapter = Arc::new(Recorder {
            work: Duration::from_secs(1),
            ..Recorder::default()
        });
        let limits = Limits {
            max_in_flight: 2,
            ..Limits::default()
        };
        let sender = LineSender::new(adapter.clone(), &limits).unwrap();
        let outcomes = send_all(&sender, 6).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, DeliveryOutcome::Delivered(_)))
        );
        assert_eq!(adapter.most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn starts_no_more_than_the_rate_per_second() {
        let adapter = Arc::new(Recorder::default());
        let limits = Limits {
            rate_per_second: 2,
            ..Limits::default()
        };
        let sender = LineSender::new(adapter.clone(), &limits).unwrap();
        let began = Instant::now();
        send_all(&sender, 6).await;
        let starts = adapter.starts.lock().unwrap().clone();
        assert_eq!(starts.len(), 6);
        for (i, start) in starts.iter().enumerate() {
            let second = (i / 2) as u64;
            assert!(
                start.duration_since(began) >= Duration::from_secs(second),
                "send {i} started at {:?}",
                start.duration_since(began)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_past_the_safety_timeout_is_ambiguous() {
        let adapter = Arc::new(Recorder {
            work: Duration::from_secs(3600),
            ..Recorder::default()
        });
        let sender = LineSender::new(adapter, &Limits::default()).unwrap();
        let outcome = sender.send(request(1)).await.unwrap();
        assert!(
            matches!(outcome, DeliveryOutcome::Ambiguous { .. }),
            "{outcome:?}"
        );
    }

    /// Attempts queued for a slot when the node fences itself are not sent once their turn
    /// comes; the one already talking to the line system finishes.
    #[tokio::test(start_paused = true)]
    async fn attempts_whose_turn_comes_while_fenced_are_not_sent() {
        let adapter = Arc::new(Recorder {
            work: Duration::from_secs(1),
            ..Recorder::default()
        });
        let limits = Limits {
            max_in_flight: 1,
            ..Limits::default()
        };
        let fenced = Arc::new(AtomicBool::new(false));
        let sender = LineSender::with_limits(
            adapter.clone(),
            &limits,
            1,
            None,
            Arc::default(),
            fenced.clone(),
        )
        .unwrap();
        let first = tokio::spawn(sender.send(request(1)));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let queued = tokio::spawn(sender.send(request(2)));
        tokio::time::sleep(Duration::from_millis(10)).await;
        fenced.store(true, Ordering::Release);
        assert!(matches!(
            first.await.unwrap(),
            Ok(DeliveryOutcome::Delivered(_))
        ));
        let not_sent = queued.await.unwrap().unwrap_err();
        assert!(not_sent.0.contains("fenced"), "{not_sent}");
        assert_eq!(
            adapter.starts.lock().unwrap().len(),
            1,
            "the second never started"
        );

        fenced.store(false, Ordering::Release);
        assert!(matches!(
            sender.send(request(3)).await,
            Ok(DeliveryOutcome::Delivered(_))
        ));
    }
}
