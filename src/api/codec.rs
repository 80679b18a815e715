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
        let message = bytes::Buf::chunk(buf);
        if message.len() == bytes::Buf::remaining(buf) {
            if let Some(field) = crowded_field(message, NESTING_SCANNED) {
                return Err(malformed(format!(
                    "field {field} of the message, or of a message in it, repeats more than \
                     {MAX_REPEATS} times: no list in this contract holds more"
                )));
            }
        }
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

/// Ten times the longest list of the contract (a cross-check's 10,000 candidates): a
/// list a little too long still reaches its handler, whose error names the field and
/// its bound, while an empty item's decoded size bounds what one message can cost.
const MAX_REPEATS: usize = 100_000;

/// How deep into nested messages [`crowded_field`] looks.
const NESTING_SCANNED: u8 = 2;

/// A field that occurs more than [`MAX_REPEATS`] times in `message` or in a message
/// nested in it, read from the wire format alone, before decoding: an empty element
/// costs two bytes on the wire and hundreds once decoded, so 16 MiB of them would
/// decode to gigabytes before any handler could count them. A length-delimited field
/// is looked into only when its bytes read as a message (a string's do not).
fn crowded_field(message: &[u8], depth: u8) -> Option<u32> {
    let mut counts: Vec<(u32, usize)> = Vec::new();
    let mut nested: Vec<&[u8]> = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let (key, n) = varint(rest)?;
        rest = &rest[n..];
        let field = u32::try_from(key >> 3).ok().filter(|f| *f > 0)?;
        let skip = match key & 7 {
            0 => varint(rest)?.1,
            1 => 8,
            2 => {
                let (len, n) = varint(rest)?;
                let end = n.checked_add(usize::try_from(len).ok()?)?;
                if depth > 0 && end <= rest.len() {
                    nested.push(&rest[n..end]);
                }
                end
            }
            5 => 4,
            _ => return None,
        };
        rest = rest.get(skip..)?;
        match counts.iter_mut().find(|(f, _)| *f == field) {
            Some((_, count)) => {
                *count += 1;
                if *count > MAX_REPEATS {
                    return Some(field);
                }
            }
            None => counts.push((field, 1)),
        }
    }
    nested
        .into_iter()
        .find_map(|inner| crowded_field(inner, depth - 1))
}

/// A base-128 varint at the start of `bytes`, and how many bytes it took.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
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
    fn a_field_repeated_past_any_list_is_found_before_decoding() {
        use prost::Message;
        let empty = crate::proto::v1::Record::default();
        let batch = |n: usize| crate::proto::v1::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![empty.clone(); n],
        };
        assert_eq!(crowded_field(&batch(MAX_REPEATS).encode_to_vec(), 2), None);
        assert_eq!(
            crowded_field(&batch(MAX_REPEATS + 1).encode_to_vec(), 2),
            Some(2)
        );
        // Nested: one enterprise with too many roles.
        let enterprise = crate::proto::v1::Enterprise {
            roles: vec![Default::default(); MAX_REPEATS + 1],
            ..Default::default()
        };
        let upsert = crate::proto::v1::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises: vec![enterprise],
        };
        assert!(crowded_field(&upsert.encode_to_vec(), 2).is_some());
        // Text is not mistaken for a message, and garbage is left to prost.
        let names = crate::proto::v1::BatchGetCreditGradesRequest {
            names: vec!["案".repeat(3_000); 3],
            ..Default::default()
        };
        assert_eq!(crowded_field(&names.encode_to_vec(), 2), None);
        assert_eq!(crowded_field(&[0xff, 0xff, 0xff], 2), None);
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
