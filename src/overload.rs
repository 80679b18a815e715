//! Load shedding: at most a fixed number of calls are handled at once across all
//! connections; beyond that a new call is refused at once with UNAVAILABLE and
//! RetryInfo rather than queueing until every caller's deadline has passed. Health and
//! reflection are never shed, so probes keep seeing the truth under load. (A call
//! counts until its response starts; an open stream does not hold a place.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::api::error::status;

/// Default limit of calls handled at once.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 1_024;

/// Paths never shed.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// The layer; wraps every service.
#[derive(Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    /// Handles at most `max` calls at once.
    pub fn new(max: usize) -> Self {
        ShedLayer {
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            permits: self.permits.clone(),
        }
    }
}

/// The service the layer produces.
#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Shed<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if exempt(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let refusal = status(
                tonic::Code::Unavailable,
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
