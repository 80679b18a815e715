//! Every RPC of the contract, through the real server. The first byte of an input picks
//! a method from the contract's descriptor (so a new RPC is fuzzed without editing this
//! file); the rest is sent as its request message, by an agency holding every scope, to
//! a server running in this process over a temporary SQLite directory with its audit
//! log on. Whatever the bytes, the answer must be a precise status: UNKNOWN, INTERNAL or
//! no answer at all is a crash.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use credit_hub::cli::Bearer;
use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::ids::PersonKeyer;
use credit_hub::store::{NewAgency, Store};
use credit_hub::{Server, ShutdownPolicy};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How long one call may take before the server counts as hung.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

struct Harness {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    bearer: Bearer,
    /// (path, server streaming) of every RPC in the contract.
    rpcs: Vec<(String, bool)>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // In memory where the machine has it: the audit log and every write sync to
        // disk, which would otherwise bound the fuzzer to a few dozen calls a second.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        let (channel, bearer) = runtime.block_on(async {
            let store = Store::open_sqlite(dir.path()).await.expect("open sqlite");
            store.migrate().await.expect("migrate");
            let (_, token) = store
                .create_agency(NewAgency {
                    display_name: "fuzz, every scope".into(),
                    kind: AgencyKind::MarketRegulation,
                    scopes: Scope::ALL.iter().copied().collect(),
                    cert_subject: None,
                })
                .await
                .expect("create agency");
            let keyer = PersonKeyer::new(b"fuzz-secret-0123456789abcdef".to_vec());
            let server = Server::bind(store, keyer, "127.0.0.1:0")
                .await
                .expect("bind");
            let addr = format!("http://{}", server.local_addr());
            let policy = ShutdownPolicy {
                announce: Duration::ZERO,
                drain: Duration::from_secs(1),
            };
            tokio::spawn(server.run(std::future::pending(), policy));
            let channel = Channel::from_shared(addr)
                .expect("address")
                .connect()
                .await
                .expect("connect");
            (channel, Bearer::new(&token).expect("token"))
        });
        let set = prost_types::FileDescriptorSet::decode(credit_hub::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor");
        let rpcs = set
            .file
            .iter()
            .filter(|f| f.package() == "credithub.v1")
            .flat_map(|f| &f.service)
            .flat_map(|s| {
                s.method.iter().map(move |m| {
                    (
                        format!("/credithub.v1.{}/{}", s.name(), m.name()),
                        m.server_streaming(),
                    )
                })
            })
            .collect();
        Harness {
            runtime,
            channel,
            bearer,
            rpcs,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let (path, streaming) = &h.rpcs[usize::from(which) % h.rpcs.len()];
    let body = Bytes::copy_from_slice(body);
    let code = h.runtime.block_on(async {
        tokio::time::timeout(ANSWER_WITHIN, call(h, path, *streaming, body))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within {ANSWER_WITHIN:?}"))
    });
    assert!(
        !matches!(code, Code::Unknown | Code::Internal),
        "{path} answered {code:?}"
    );
});

async fn call(h: &Harness, path: &str, streaming: bool, body: Bytes) -> Code {
    let mut grpc = tonic::client::Grpc::new(h.channel.clone());
    if grpc.ready().await.is_err() {
        panic!("{path}: the server stopped accepting calls");
    }
    let (metadata, extensions, ()) =
        tonic::service::Interceptor::call(&mut h.bearer.clone(), tonic::Request::new(()))
            .expect("bearer")
            .into_parts();
    let req = tonic::Request::from_parts(metadata, extensions, body);
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    if streaming {
        match grpc.server_streaming(req, path, RawCodec).await {
            // A watch stays open: its first message (or error) is the answer.
            Ok(mut s) => {
                match tokio::time::timeout(Duration::from_millis(20), s.get_mut().message()).await {
                    Ok(Err(e)) => e.code(),
                    _ => Code::Ok,
                }
            }
            Err(e) => e.code(),
        }
    } else {
        grpc.unary(req, path, RawCodec)
            .await
            .err()
            .map_or(Code::Ok, |e| e.code())
    }
}

/// Sends and receives raw message bytes, so that any bytes at all can be sent.
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
