//! Load shedding: at most a fixed number of calls are handled at once across all
//! connections; beyond that a new call is refused at once with RESOURCE_EXHAUSTED and
//! RetryInfo (DESIGN.md §3: the server's capacity is the exhausted resource; UNAVAILABLE
//! means the database is down) rather than queueing until every caller's deadline has passed. Health and
//! reflection are never shed, so probes keep seeing the truth under load. (A call
//! counts until its response starts; an open stream does not hold a place.)

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::Service;

use crate::api::error::status;
use crate::middleware::{BoxFuture, HttpResponse, Step};

/// Default limit of calls handled at once.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 1_024;

/// Paths never shed.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// The step (wrap it in a `StepLayer`); wraps every service.
#[derive(Clone)]
pub struct LoadShed {
    permits: Arc<Semaphore>,
}

impl LoadShed {
    /// Handles at most `max` calls at once.
    pub fn new(max: usize) -> Self {
        LoadShed {
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl Step for LoadShed {
    fn call<S, B>(&self, mut inner: S, req: http::Request<B>) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<http::Request<B>, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        if exempt(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let refusal = status(
                tonic::Code::ResourceExhausted,
                "the service is at capacity; retry shortly",
                "OVERLOADED",
                tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(200))),
            );
            return Box::pin(async move { Ok(refusal.into_http()) });
        };
        Box::pin(async move {
            let response = inner.call(req).await;
            drop(permit);
            response
        })
    }
}
