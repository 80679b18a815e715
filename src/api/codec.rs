//! The protobuf codec of every generated service and client: prost's, except that a
//! request that is not a valid protobuf message is the caller's fault and is answered
//! INVALID_ARGUMENT (prost's codec says INTERNAL, as if the server had failed); and the
//! step that does the same for the gRPC framing around the message, which tonic checks
//! before any codec sees it.

use std::marker::PhantomData;

use crate::middleware::HttpResponse;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Prost encoding; decoding failures become INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec(PhantomData)
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstDecoder::default())
    }
}

/// prost's decoder with its errors reclassified.
#[derive(Debug)]
pub struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| {
            if e.code() == Code::Internal {
                malformed(format!(
                    "the message is not valid protobuf for this method: {}",
                    e.message()
                ))
            } else {
                e
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// A request the caller built wrong.
/// The ErrorInfo reason of a request refused before its handler saw it: its bytes
/// are no message of the method, or not gRPC framing.
pub const MALFORMED_REQUEST: &str = "MALFORMED_REQUEST";

fn malformed(message: String) -> Status {
    super::error::status(
        Code::InvalidArgument,
        message,
        MALFORMED_REQUEST,
        tonic_types::ErrorDetails::new(),
    )
}

/// Answers INVALID_ARGUMENT where tonic refused a request's gRPC framing as INTERNAL: a
/// body with no message, a message cut short of the length its prefix gives, a prefix
/// flag that is neither 0 nor 1. A compressed flag without `grpc-encoding` stays
/// INTERNAL, as the gRPC specification requires. A plain map of every response (a
/// `tower::util::MapResponseLayer`), so that calls pay no future of their own for it.
pub fn framing_errors(response: HttpResponse) -> HttpResponse {
    match framing_fault(response.headers()) {
        Some(what) => malformed(format!(
            "the request is not a well-formed gRPC call: {what}"
        ))
        .into_http(),
        None => response,
    }
}

/// What was wrong with a request's framing, from the trailers-only INTERNAL answer tonic
/// gave it; None for any other answer.
fn framing_fault(headers: &http::HeaderMap) -> Option<&'static str> {
    if headers.get("grpc-status")?.as_bytes() != b"13" {
        return None;
    }
    let status = Status::from_header_map(headers)?;
    let message = status.message();
    if message == "Missing request message." {
        Some("the body carries no message")
    } else if message == "Unexpected EOF decoding stream." {
        Some("the body ends before the message its length prefix announces")
    } else if message.starts_with("protocol error: received message with invalid compression flag")
    {
        Some("a message's compressed flag is neither 0 nor 1")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Status) -> http::HeaderMap {
        status.into_http::<tonic::body::Body>().headers().clone()
    }

    #[test]
    fn tonics_framing_refusals_are_recognised_and_nothing_else() {
        for message in [
            "Missing request message.",
            "Unexpected EOF decoding stream.",
            "protocol error: received message with invalid compression flag: 7 (valid flags are 0 and 1), while sending request",
        ] {
            assert!(framing_fault(&answer(Status::internal(message))).is_some(), "{message}");
        }
        for status in [
            Status::internal("protocol error: received message with compressed-flag but no grpc-encoding was specified"),
            Status::internal("internal storage error"),
            Status::invalid_argument("Missing request message."),
        ] {
            assert_eq!(framing_fault(&answer(status.clone())), None, "{status:?}");
        }
    }
}
