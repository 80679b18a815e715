//! Every RPC of the contract, through the real server. The first byte of an input picks
//! a method from the contract's descriptor (so a new RPC is fuzzed without editing this
//! file); the rest is sent as its request message, by an agency holding every scope, to
//! a server running in this process over a temporary SQLite directory with its audit
//! log on. Whatever the bytes, the answer must be a precise status: UNKNOWN, INTERNAL or
//! no answer at all is a crash.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use credit_hub::cli::Bearer;
use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::ids::PersonKeyer;
use credit_hub::store::{NewAgency, Store};
use credit_hub::{Server, ShutdownPolicy};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::transport::Channel;
use tonic::Code;

#[path = "../../tests/api/raw.rs"]
mod raw;

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
            let bearer = Bearer::new(&token).expect("token");
            register_known_enterprise(channel.clone(), bearer.clone()).await;
            (channel, bearer)
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

/// The enterprise (and legal representative) that `fuzz/rpcs.dict` names, registered so
/// that inputs naming it reach the handlers' paths past "not found".
async fn register_known_enterprise(channel: Channel, bearer: Bearer) {
    use credit_hub::proto::v1 as pb;
    let mut registry =
        pb::registry_service_client::RegistryServiceClient::with_interceptor(channel, bearer);
    registry
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises: vec![pb::Enterprise {
                uscc: "91371002100000083T".into(),
                display_name: "威海模糊测试有限公司".into(),
                kind: pb::EnterpriseKind::LimitedLiabilityCompany as i32,
                status: pb::EnterpriseStatus::Operating as i32,
                established_date: "2015-03-02".into(),
                region_code: "371002".into(),
                industry_code: "C1391".into(),
                legal_representative: Some(pb::Person {
                    name: "张伟".into(),
                    id_number: "11010519491231002X".into(),
                    masked_id_number: String::new(),
                }),
                ..Default::default()
            }],
        })
        .await
        .expect("register the known enterprise");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let (path, streaming) = &h.rpcs[usize::from(which) % h.rpcs.len()];
    let body = Bytes::copy_from_slice(body);
    let code = h.runtime.block_on(async {
        tokio::time::timeout(
            ANSWER_WITHIN,
            raw::call(
                h.channel.clone(),
                h.bearer.clone(),
                path,
                *streaming,
                body,
                Duration::from_millis(20),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer within {ANSWER_WITHIN:?}"))
        .code()
    });
    assert!(
        !matches!(code, Code::Unknown | Code::Internal),
        "{path} answered {code:?}"
    );
});
