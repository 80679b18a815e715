//! Request bodies must keep pace. A call holds one of the server's call slots (see
//! [`crate::overload`]) from its headers until its response starts, and tonic reads the
//! body in between. Unbounded, a sender that trickles its body, never ends it, or keeps
//! sending messages after the one a unary call carries, holds its slot for as long as it
//! likes: a thousand such streams (the public RPCs need no token to open them) would
//! shut out every agency. So a body has a grace period plus time in proportion to what
//! it has sent, is one message long, and a public RPC's message is short. Every RPC of the service takes one
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

/// The ErrorInfo reason of a request whose body arrived too slowly.
pub const REQUEST_TOO_SLOW: &str = "REQUEST_TOO_SLOW";

/// Default time any request body has, whatever its size.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Default slowest average rate, in bytes per second, past the grace period: 64 kbit/s.
pub const DEFAULT_MIN_RATE: u64 = 8 * 1024;

/// Longest request message of an RPC anyone may call without a token: the largest is a
/// certificate to verify (at most 256 KiB) with its envelope. A caller nobody knows
/// holds a call slot for as little time as its requests need.
pub const PUBLIC_MAX_MESSAGE_BYTES: u64 = 512 * 1024;

/// How fast, and how long, a request body must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPace {
    /// Time any body has, whatever its size, from when the server first reads it.
    pub grace: Duration,
    /// Each byte received gives the body `1 / min_rate` seconds more.
    pub min_rate: u64,
    /// The longest message (a public RPC's: at most [`PUBLIC_MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: u64,
}

impl Default for BodyPace {
    fn default() -> Self {
        BodyPace {
            grace: DEFAULT_GRACE,
            min_rate: DEFAULT_MIN_RATE,
            max_message_bytes: crate::MAX_MESSAGE_BYTES as u64,
        }
    }
}

/// Bytes of the gRPC prefix before each message: a flag and a 4-byte length.
const PREFIX: usize = 5;

impl BodyPace {
    /// The request with its body held to this pace (health and reflection as they are).
    pub fn pace(self, req: http::Request<Body>) -> http::Request<Body> {
        let path = req.uri().path();
        if crate::overload::exempt(path) {
            return req;
        }
        let max_message_bytes = if crate::auth::is_public(path) {
            self.max_message_bytes.min(PUBLIC_MAX_MESSAGE_BYTES)
        } else {
            self.max_message_bytes
        };
        req.map(|inner| {
            Body::new(Paced {
                inner,
                pace: self,
                max_message_bytes,
                started: None,
                received: 0,
                prefix: Vec::with_capacity(PREFIX),
                length: None,
                timer: None,
                done: false,
            })
        })
    }

    /// When a body first read at `started` that has sent `received` bytes runs out of
    /// time.
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
            REQUEST_TOO_SLOW,
            tonic_types::ErrorDetails::new(),
        )
    }
}

/// The refusal of a body that goes on after its one message.
fn past_its_message(length: u64) -> Status {
    status(
        Code::InvalidArgument,
        format!(
            "the request body goes on after its message of {length} bytes: a call carries \
             one request message"
        ),
        "MALFORMED_REQUEST",
        tonic_types::ErrorDetails::new(),
    )
}

/// The refusal of a message longer than the method accepts (tonic's own code for it).
fn too_large(length: u64, max: u64) -> Status {
    status(
        Code::OutOfRange,
        format!("the request message is {length} bytes; this method accepts at most {max}"),
        "MESSAGE_TOO_LARGE",
        tonic_types::ErrorDetails::new(),
    )
}

/// A request body held to a [`BodyPace`]. Its clock starts when the server first reads
/// it (until then HTTP/2 flow control holds its sender); its timer is made only when the body first waits for
/// the network: most bodies arrive with their headers and never need one.
struct Paced {
    inner: Body,
    pace: BodyPace,
    max_message_bytes: u64,
    started: Option<Instant>,
    received: u64,
    /// The message's gRPC prefix, as far as it has arrived.
    prefix: Vec<u8>,
    /// The message's length, once its prefix has arrived.
    length: Option<u64>,
    timer: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl Paced {
    /// Counts `data`; a refusal if the body now goes past its one message or announces
    /// a message longer than the method accepts.
    fn count(&mut self, data: &[u8]) -> Option<Status> {
        if self.length.is_none() {
            let wanted = PREFIX - self.prefix.len();
            self.prefix
                .extend_from_slice(&data[..wanted.min(data.len())]);
            if self.prefix.len() == PREFIX {
                let length = u64::from(u32::from_be_bytes(
                    self.prefix[1..PREFIX].try_into().expect("four bytes"),
                ));
                if length > self.max_message_bytes {
                    return Some(too_large(length, self.max_message_bytes));
                }
                self.length = Some(length);
            }
        }
        self.received += data.len() as u64;
        match self.length {
            Some(length) if self.received > PREFIX as u64 + length => {
                Some(past_its_message(length))
            }
            _ => None,
        }
    }
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
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(refusal) = this.count(data) {
                        this.done = true;
                        return Poll::Ready(Some(Err(refusal)));
                    }
                    if let Some(timer) = &mut this.timer {
                        timer
                            .as_mut()
                            .reset(this.pace.deadline(started, this.received));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(end_or_error) => {
                this.done = true;
                Poll::Ready(end_or_error)
            }
            Poll::Pending => {
                let deadline = this.pace.deadline(started, this.received);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    let refusal = this.pace.too_slow(this.received, started.elapsed());
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
            max_message_bytes: 100,
        };
        let start = Instant::now();
        assert_eq!(pace.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(
            pace.deadline(start, 2_500),
            start + Duration::from_millis(12_500)
        );
    }
}
