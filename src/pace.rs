//! Request bodies must keep pace. A call holds one of the server's call slots (see
//! [`crate::overload`]) from its headers until its response starts, and tonic reads the
//! body in between. Unbounded, a sender that trickles its body, never ends it, or keeps
//! sending messages after the one a unary call carries, holds its slot for as long as it
//! likes: a thousand such streams (the public RPCs need no token to open them) would
//! shut out every agency. So a body has a grace period plus time in proportion to what
//! it has sent, and is at most one message long. Every RPC of the service takes one
//! request message; health and reflection (whose streams may stay open, and which hold no
//! slot) are left as they are.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::{Code, Status};

use crate::api::error::status;

/// Default time any request body has, whatever its size.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Default slowest average rate, in bytes per second, past the grace period: 64 kbit/s.
pub const DEFAULT_MIN_RATE: u64 = 8 * 1024;

/// How fast, and how long, a request body must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPace {
    /// Time any body has, whatever its size.
    pub grace: Duration,
    /// Each byte received gives the body `1 / min_rate` seconds more.
    pub min_rate: u64,
    /// The longest body: the largest message with its 5-byte gRPC prefix.
    pub max_bytes: u64,
}

impl Default for BodyPace {
    fn default() -> Self {
        BodyPace {
            grace: DEFAULT_GRACE,
            min_rate: DEFAULT_MIN_RATE,
            max_bytes: crate::MAX_MESSAGE_BYTES as u64 + 5,
        }
    }
}

impl BodyPace {
    /// The request with its body held to this pace (health and reflection as they are).
    pub fn pace(self, req: http::Request<Body>) -> http::Request<Body> {
        if crate::overload::exempt(req.uri().path()) {
            return req;
        }
        let started = Instant::now();
        req.map(|inner| {
            Body::new(Paced {
                inner,
                pace: self,
                started,
                received: 0,
                timer: None,
                done: false,
            })
        })
    }

    /// When a body that began at `started` and has sent `received` bytes runs out of time.
    fn deadline(&self, started: Instant, received: u64) -> Instant {
        /// Far enough: a configured grace of centuries must not overflow the clock.
        const LONGEST: Duration = Duration::from_secs(365 * 86_400);
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate.max(1) as f64);
        started + self.grace.saturating_add(earned).min(LONGEST)
    }

    fn too_slow(&self, received: u64, elapsed: Duration) -> Status {
        status(
            Code::DeadlineExceeded,
            format!(
                "the request body arrived too slowly: {received} bytes in {:.1} s; a body \
                 may take {:.1} s plus 1 s for every {} bytes it has sent",
                elapsed.as_secs_f64(),
                self.grace.as_secs_f64(),
                self.min_rate
            ),
            "REQUEST_TOO_SLOW",
            tonic_types::ErrorDetails::new(),
        )
    }

    fn too_long(&self) -> Status {
        status(
            Code::InvalidArgument,
            format!(
                "the request body goes on past {} bytes: a call carries one request \
                 message of at most {} bytes",
                self.max_bytes,
                self.max_bytes.saturating_sub(5)
            ),
            "MALFORMED_REQUEST",
            tonic_types::ErrorDetails::new(),
        )
    }
}

/// A request body held to a [`BodyPace`]. Its timer is made only when the body first
/// waits for the network: most bodies arrive with their headers and never need one.
struct Paced {
    inner: Body,
    pace: BodyPace,
    started: Instant,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.pace.max_bytes {
                        this.done = true;
                        return Poll::Ready(Some(Err(this.pace.too_long())));
                    }
                    if let Some(timer) = &mut this.timer {
                        timer
                            .as_mut()
                            .reset(this.pace.deadline(this.started, this.received));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(end_or_error) => {
                this.done = true;
                Poll::Ready(end_or_error)
            }
            Poll::Pending => {
                let deadline = this.pace.deadline(this.started, this.received);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    let refusal = this.pace.too_slow(this.received, this.started.elapsed());
                    return Poll::Ready(Some(Err(refusal)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_buys_time_past_the_grace() {
        let pace = BodyPace {
            grace: Duration::from_secs(10),
            min_rate: 1_000,
            max_bytes: 100,
        };
        let start = Instant::now();
        assert_eq!(pace.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(
            pace.deadline(start, 2_500),
            start + Duration::from_millis(12_500)
        );
    }
}
