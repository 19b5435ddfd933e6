//! The send path to one line system, built from tower layers: a buffer (so every worker shares
//! one handle), a concurrency limit (`max_in_flight`), a rate limit (`rate_per_second`, when set)
//! and a safety timeout around the adapter's own timeouts.
//!
//! Invariant: every call ends in a [`DeliveryOutcome`]. A layer failure before the adapter was
//! called is a `Retry`; the safety timeout firing means the document may have left, so it is
//! `Ambiguous`.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tower::buffer::Buffer;
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use yimen_adapters::settings::Limits;
use yimen_adapters::{Adapter, DeliveryOutcome, DeliveryRequest};

type SendFuture = BoxFuture<'static, Result<DeliveryOutcome, BoxError>>;

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
        adapter.as_deliver()?;
        let safety_timeout = limits.connect_timeout() + limits.request_timeout() * 2;
        let rate = (limits.rate_per_second > 0).then(|| {
            tower::limit::RateLimitLayer::new(
                u64::from(limits.rate_per_second),
                Duration::from_secs(1),
            )
        });
        let inner = ServiceBuilder::new()
            .concurrency_limit(limits.max_in_flight.max(1))
            .option_layer(rate)
            .timeout(safety_timeout)
            .service_fn(move |request: DeliveryRequest| {
                let adapter = adapter.clone();
                async move {
                    let outcome = match adapter.as_deliver() {
                        Some(deliver) => deliver.deliver(&request).await,
                        None => DeliveryOutcome::Rejected {
                            reason: "adapter cannot deliver".to_owned(),
                            excerpt: String::new(),
                        },
                    };
                    Ok::<_, BoxError>(outcome)
                }
            });
        let boxed = BoxService::new(inner);
        let service = Buffer::new(boxed, limits.max_in_flight.max(1) * 2);
        Some(Self {
            service,
            safety_timeout,
        })
    }

    /// Sends one attempt through the limits and classifies layer failures.
    pub fn send(&self, request: DeliveryRequest) -> BoxFuture<'static, DeliveryOutcome> {
        // Boxed with an explicit `Send` so callers' futures stay `Send` (the buffer's error
        // conversion otherwise trips higher-ranked lifetime inference).
        let safety_timeout = self.safety_timeout;
        Box::pin(
            self.service
                .clone()
                .oneshot(request)
                .map(move |result| classify(result, safety_timeout)),
        )
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
