//! The tower plumbing the server's middleware shares: a layer around a [`Step`] (what a
//! middleware does with one call) and the service that hands each call, with the inner
//! service it was polled ready for, to that step.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

/// A boxed, sendable future.
pub type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// What every service of the server is asked.
pub type HttpRequest = http::Request<tonic::body::Body>;

/// What every service of the server answers.
pub type HttpResponse = http::Response<tonic::body::Body>;

/// What a middleware does with one call: usually something before, `inner.call(req)`,
/// and something after.
pub trait Step: Clone + Send + Sync + 'static {
    fn call<S>(&self, inner: S, req: HttpRequest) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static;
}

/// The layer of a step.
#[derive(Clone)]
pub struct StepLayer<M>(M);

impl<M> StepLayer<M> {
    pub fn new(step: M) -> Self {
        StepLayer(step)
    }
}

impl<S, M: Clone> Layer<S> for StepLayer<M> {
    type Service = Stepped<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Stepped {
            inner,
            step: self.0.clone(),
        }
    }
}

/// The service a [`StepLayer`] produces.
#[derive(Clone)]
pub struct Stepped<S, M> {
    inner: S,
    step: M,
}

impl<S, M> Service<HttpRequest> for Stepped<S, M>
where
    S: Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    M: Step,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest) -> Self::Future {
        // The ready inner service is the one we were polled for; leave a clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.step.call(inner, req)
    }
}
