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
use crate::middleware::{BoxFuture, HttpRequest, HttpResponse, Step};

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

/// The INTERNAL answer of a call that panicked.
pub fn panicked() -> tonic::Status {
    status(
        tonic::Code::Internal,
        "the service failed on this call (a defect, logged with its request id); a write \
         may have been applied: retry it with the same request_id",
        "PANIC",
        tonic_types::ErrorDetails::new(),
    )
}

fn answer(method: &str, call: &str, payload: &(dyn Any + Send)) -> HttpResponse {
    tracing::error!(method, request_id = call, panic = %panic_message(payload), "a handler panicked");
    panicked().into_http()
}

/// Runs `body` (a stream's producing task); if it panics, the stream ends with the
/// [`panicked`] answer on `tx` rather than as if it were complete, and `disclosure`
/// records that end.
pub fn spawn_stream<T: Send + 'static>(
    tx: tokio::sync::mpsc::Sender<Result<T, tonic::Status>>,
    disclosure: crate::audit::Disclosure,
    body: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(payload) = Caught(Box::pin(body)).await {
            tracing::error!(panic = %panic_message(payload.as_ref()), "a stream's task panicked");
            disclosure.end_stream(&tx, panicked()).await;
        }
    });
}

impl Step for CatchPanic {
    fn call<S>(&self, mut inner: S, req: HttpRequest) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
    {
        // The path is the caller's text unless the service serves it.
        let path = req.uri().path();
        let method = if crate::auth::required_scope(path).is_some() || crate::auth::is_public(path)
        {
            path.to_string()
        } else {
            "unknown".to_string()
        };
        let call = req
            .extensions()
            .get::<crate::metrics::CallId>()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        let called = std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req)));
        Box::pin(async move {
            match called {
                Err(payload) => Ok(answer(&method, &call, payload.as_ref())),
                Ok(future) => match Caught(Box::pin(future)).await {
                    Ok(result) => result,
                    Err(payload) => Ok(answer(&method, &call, payload.as_ref())),
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
        let panicking = tower::service_fn(|req: HttpRequest| async move {
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
            .oneshot(
                http::Request::builder()
                    .uri("/sync")
                    .body(tonic::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = tonic::Status::from_header_map(answered.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::Internal);
        let fine = service
            .oneshot(
                http::Request::builder()
                    .uri("/fine")
                    .body(tonic::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(fine.headers().get("grpc-status").is_none());
        assert_eq!(
            panic_message(&"failed on 11010519491231002X"),
            "failed on 110105********002X"
        );
    }

    /// A disclosure outside the audit layer: it records nothing.
    fn detached() -> crate::audit::Disclosure {
        crate::audit::Disclosure::new(
            None,
            crate::domain::audit::AuditEvent {
                time: 0,
                agency: String::new(),
                method: String::new(),
                request_id: String::new(),
                subjects: Vec::new(),
                purpose: None,
                case_reference: String::new(),
                outcome: "OK".into(),
                result_count: 0,
            },
        )
    }

    /// A stream whose task panics ends INTERNAL, not as if it were complete; one whose
    /// task finishes ends cleanly.
    #[tokio::test]
    async fn a_panicking_stream_ends_internal() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<u32, tonic::Status>>(4);
        let sender = tx.clone();
        spawn_stream(tx, detached(), async move {
            sender.send(Ok(1)).await.unwrap();
            panic!("mid-stream");
        });
        assert_eq!(rx.recv().await.unwrap().unwrap(), 1);
        let end = rx.recv().await.unwrap().unwrap_err();
        assert_eq!(end.code(), tonic::Code::Internal);
        assert!(rx.recv().await.is_none());

        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<u32, tonic::Status>>(4);
        let sender = tx.clone();
        spawn_stream(tx, detached(), async move {
            sender.send(Ok(2)).await.unwrap();
        });
        assert_eq!(rx.recv().await.unwrap().unwrap(), 2);
        assert!(rx.recv().await.is_none(), "a finished stream ends cleanly");
    }
}
