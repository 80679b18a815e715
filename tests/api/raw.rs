//! Calls any RPC with raw request bytes: a codec that sends and receives messages as
//! they are, so any bytes at all can be sent. Shared by the hostile-input test and the
//! `rpcs` fuzz target (`fuzz/fuzz_targets/rpcs.rs` includes this file).

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use credit_hub::cli::Bearer;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The call ended with this code (a stream: after its last message).
    Ended(Code),
    /// A server stream sent nothing for the allowed quiet time and stayed open (a
    /// watch waiting for changes).
    Open,
}

impl Answer {
    /// The code it ended with; an open stream has failed nothing so far.
    pub fn code(self) -> Code {
        match self {
            Answer::Ended(code) => code,
            Answer::Open => Code::Ok,
        }
    }
}

/// Calls `path` with `body` as its request message. A server stream is read to its
/// end, each message within `quiet` of the one before, or left once it is quiet for
/// that long.
pub async fn call(
    channel: Channel,
    bearer: Bearer,
    path: &str,
    streaming: bool,
    body: Bytes,
    quiet: Duration,
) -> Answer {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    if grpc.ready().await.is_err() {
        panic!("{path}: the server stopped accepting calls");
    }
    let (metadata, extensions, ()) =
        tonic::service::Interceptor::call(&mut { bearer }, tonic::Request::new(()))
            .expect("a bearer token is always valid metadata")
            .into_parts();
    let req = tonic::Request::from_parts(metadata, extensions, body);
    let path = http::uri::PathAndQuery::try_from(path).expect("an RPC path");
    if streaming {
        let mut stream = match grpc.server_streaming(req, path, RawCodec).await {
            Ok(s) => s.into_inner(),
            Err(e) => return Answer::Ended(e.code()),
        };
        loop {
            match tokio::time::timeout(quiet, stream.message()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => return Answer::Ended(Code::Ok),
                Ok(Err(e)) => return Answer::Ended(e.code()),
                Err(_) => return Answer::Open,
            }
        }
    } else {
        Answer::Ended(
            grpc.unary(req, path, RawCodec)
                .await
                .err()
                .map_or(Code::Ok, |e| e.code()),
        )
    }
}

#[derive(Default, Clone)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
