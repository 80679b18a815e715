//! Server-streaming answers. A task produces the messages; the answer ends when the task
//! does, with INTERNAL when it panics, and with DEADLINE_EXCEEDED when the caller's
//! deadline passes. A stream's deadline covers the whole stream, not only its first
//! message: past it the task's work (a page being read, a wait for grade changes) is
//! dropped, as a unary call's is, and the end is audited.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::audit::{CallDeadline, Disclosure};

/// The deadline the caller of `req` set, if any (the audit step reads `grpc-timeout`).
pub fn deadline_of<T>(req: &Request<T>) -> Option<CallDeadline> {
    req.extensions().get::<CallDeadline>().copied()
}

/// Answers with a stream whose messages `produce` sends on the channel it is given
/// (`capacity` messages may wait unread). `disclosure` records how the stream ended
/// when a panic or the deadline ends it.
pub fn answer<T, F, Fut>(
    capacity: usize,
    deadline: Option<CallDeadline>,
    disclosure: Disclosure,
    produce: F,
) -> Response<BoxStream<T>>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(capacity);
    let work = produce(tx.clone());
    let ended = disclosure.clone();
    crate::catch_panic::spawn_stream(tx, disclosure, async move {
        match deadline {
            None => work.await,
            Some(d) => {
                let cut = tokio::select! {
                    // The deadline first when both are ready: the answer's side ends
                    // the stream then, which can wake the work too (its reader gone).
                    biased;
                    _ = tokio::time::sleep_until(d.end().into()) => true,
                    _ = work => tokio::time::Instant::now() >= d.end().into(),
                };
                if cut {
                    ended.ended(&d.exceeded()).await;
                }
            }
        }
    });
    Response::new(Box::pin(UntilDeadline {
        inner: tokio_stream::wrappers::ReceiverStream::new(rx),
        deadline: deadline.map(|d| (Box::pin(tokio::time::sleep_until(d.end().into())), d)),
        done: false,
    }))
}

/// The answer's side of the deadline: it ends with DEADLINE_EXCEEDED at once, even when
/// messages the caller has not read yet fill the channel (the task could not say so),
/// unless the task had already finished: then what it sent is the whole answer, and is
/// delivered.
struct UntilDeadline<T> {
    inner: tokio_stream::wrappers::ReceiverStream<Result<T, Status>>,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, CallDeadline)>,
    done: bool,
}

impl<T> Stream for UntilDeadline<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let finished = self.inner.as_ref().is_closed();
        if let Some((sleep, d)) = &mut self.deadline {
            if !finished && sleep.as_mut().poll(cx).is_ready() {
                let status = d.exceeded();
                self.done = true;
                return Poll::Ready(Some(Err(status)));
            }
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}
