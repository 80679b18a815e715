//! A handler that panics is a defect, but its call must still end as a gRPC answer and
//! be audited as one: without this step the call's stream is reset, the caller sees a
//! transport error, and its audit entry says CANCELLED. Here the panic becomes
//! INTERNAL (ErrorInfo reason `PANIC`), logged with where it happened.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::Service;

use crate::api::error::status;
use crate::domain::id_scan::mask_long_numbers;
use crate::middleware::{BoxFuture, HttpResponse, Step};

/// Turns a panic in the services inside it into an INTERNAL answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanic;

/// Polls the inner future, catching a panic as an `Err` with its payload.
struct Caught<F>(Pin<Box<F>>);

impl<F: Future> Future for Caught<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// A panic's message, masked: it may quote a value the code held.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    mask_long_numbers(&text)
}

fn answer(method: &str, payload: &(dyn Any + Send)) -> HttpResponse {
    tracing::error!(method, panic = %panic_message(payload), "a handler panicked");
    status(
        tonic::Code::Internal,
        "the service failed on this call (a defect, logged); nothing it did was committed \
         unless its answer said so. Report it with the request id",
        "PANIC",
        tonic_types::ErrorDetails::new(),
    )
    .into_http()
}

impl Step for CatchPanic {
    fn call<S, B>(&self, mut inner: S, req: http::Request<B>) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<http::Request<B>, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        let method = req.uri().path().to_string();
        let called = std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req)));
        Box::pin(async move {
            match called {
                Err(payload) => Ok(answer(&method, payload.as_ref())),
                Ok(future) => match Caught(Box::pin(future)).await {
                    Ok(result) => result,
                    Err(payload) => Ok(answer(&method, payload.as_ref())),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::StepLayer;
    use tower::{Layer, ServiceExt};

    #[tokio::test]
    async fn a_panic_in_a_handler_is_answered_internal() {
        let panicking = tower::service_fn(|req: http::Request<()>| async move {
            if req.uri().path() == "/sync" {
                panic!("failed on 11010519491231002X");
            }
            Ok::<HttpResponse, std::convert::Infallible>(http::Response::new(
                tonic::body::Body::empty(),
            ))
        });
        let service = StepLayer::new(CatchPanic).layer(panicking);
        let answered = service
            .clone()
            .oneshot(http::Request::builder().uri("/sync").body(()).unwrap())
            .await
            .unwrap();
        let status = tonic::Status::from_header_map(answered.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::Internal);
        let fine = service
            .oneshot(http::Request::builder().uri("/fine").body(()).unwrap())
            .await
            .unwrap();
        assert!(fine.headers().get("grpc-status").is_none());
        assert_eq!(
            panic_message(&"failed on 11010519491231002X"),
            "failed on 110105********002X"
        );
    }
}
