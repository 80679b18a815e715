//! Calls any RPC with raw request bytes: a codec that sends and receives messages as
//! they are, so any bytes at all can be sent. Shared by the hostile-input test and the
//! `rpcs` fuzz target (`fuzz/fuzz_targets/rpcs.rs` includes this file).

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use credit_hub::cli::Bearer;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Calls `path` with `body` as its request message and returns the answer's code. A
/// server-streaming call answers with its first message or error; a stream still open
/// after `first_within` (a watch waiting for changes) counts as OK.
pub async fn call(
    channel: Channel,
    bearer: Bearer,
    path: &str,
    streaming: bool,
    body: Bytes,
    first_within: Duration,
) -> Code {
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
        match grpc.server_streaming(req, path, RawCodec).await {
            Ok(mut s) => match tokio::time::timeout(first_within, s.get_mut().message()).await {
                Ok(Err(e)) => e.code(),
                _ => Code::Ok,
            },
            Err(e) => e.code(),
        }
    } else {
        grpc.unary(req, path, RawCodec)
            .await
            .err()
            .map_or(Code::Ok, |e| e.code())
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
