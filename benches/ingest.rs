//! BatchSubmitRecords throughput: the real server in-process on an ephemeral port, a
//! client submitting 1,000-record batches over gRPC, on SQLite (a temp directory) and,
//! when `CREDIT_HUB_BENCH_DATABASE_URL` names a PostgreSQL database, on a fresh database
//! created beside it.
//!
//! cargo bench --bench ingest -- [BATCHES] [CONCURRENCY]

use std::time::Instant;

use credit_hub::cli::Bearer;
use credit_hub::domain::codes::{AgencyKind, EnterpriseKind, EnterpriseStatus, RoleKind};
use credit_hub::domain::enterprise::{Enterprise, Role};
use credit_hub::domain::ids::{IdNumber, PersonKeyer, PersonRef, Uscc};
use credit_hub::proto::v1 as pb;
use credit_hub::store::{NewAgency, Store};
use credit_hub::Server;

mod common;

const ENTERPRISES: u32 = 10_000;

fn uscc(n: u32) -> Uscc {
    Uscc::complete(&format!("91371002{:08}", 40_000_000 + n)).expect("valid prefix")
}

fn record(n: u32, batch: usize, i: usize) -> pb::Record {
    pb::Record {
        subject: Some(pb::Subject {
            subject: Some(pb::subject::Subject::Enterprise(uscc(n).resource_name())),
        }),
        kind: pb::RecordKind::AdministrativePenalty as i32,
        tier: pb::Tier::Moderate as i32,
        domain: pb::RegulatoryDomain::FoodProduction as i32,
        decision_date: "2026-05-20".into(),
        document_number: format!("威开市监罚〔2026〕{i}号"),
        deciding_authority: "威海经济技术开发区市场监督管理局".into(),
        summary: "生产不符合食品安全标准的食品".into(),
        provenance: Some(pb::Provenance {
            agency: String::new(),
            source_record_id: format!("B{batch}-{i}"),
            revision: 1,
        }),
        penalty_measures: vec![pb::PenaltyMeasure::Fine as i32],
        fine_amount_fen: 5_000_000,
        ..Default::default()
    }
}

async fn run(label: &str, store: Store, batches: usize, concurrency: usize) {
    store.migrate().await.expect("migrate");
    let keyer = PersonKeyer::new(b"bench-secret-0123456789".to_vec());
    // Each enterprise has its own synthetic legal representative, as in the registry.
    let rep = |n: u32| {
        let mut digits = format!("37100219800101{:03}", n % 1000).into_bytes();
        digits[12] = b'0' + (n / 1000 % 3) as u8; // day 01-21 spreads births
        let check = IdNumber::check_char(&digits);
        digits.push(check as u8);
        let id = IdNumber::parse(std::str::from_utf8(&digits).expect("ascii")).expect("valid");
        PersonRef::new(&keyer, format!("代表{n}"), &id)
    };
    for start in (0..ENTERPRISES).step_by(1000) {
        let batch = (start..start + 1000)
            .map(|n| Enterprise {
                uscc: uscc(n),
                display_name: format!("威海基准{n}有限公司"),
                former_names: vec![],
                kind: EnterpriseKind::LimitedLiabilityCompany,
                status: EnterpriseStatus::Operating,
                established: None,
                region_code: "371002".into(),
                industry_code: "C1391".into(),
                in_bankruptcy_restructuring: false,
                roles: vec![Role {
                    kind: RoleKind::LegalRepresentative,
                    person: rep(n),
                    start: None,
                    end: None,
                }],
                updated_at: 0,
            })
            .collect();
        store
            .upsert_enterprises(batch, credit_hub::api::today(), None, &|_| Vec::new())
            .await
            .expect("register");
    }
    // Statistics as autovacuum would have them on a running system.
    store.analyze().await.expect("analyze");
    let (_, token) = store
        .create_agency(NewAgency {
            display_name: "bench".into(),
            kind: AgencyKind::MarketRegulation,
            scopes: Default::default(),
            cert_subject: None,
        })
        .await
        .expect("agency");
    let server = Server::bind(store, keyer, "127.0.0.1:0")
        .await
        .expect("bind");
    let running = common::Running::start(server).await;
    let channel = running.channel.clone();
    let client = pb::record_service_client::RecordServiceClient::with_interceptor(
        channel,
        Bearer::new(&token).expect("token"),
    )
    .max_encoding_message_size(16 << 20);

    // Requests are built before the clock starts: the benchmark measures the service.
    let requests: Vec<pb::BatchSubmitRecordsRequest> = (0..batches)
        .map(|b| pb::BatchSubmitRecordsRequest {
            request_id: format!("bench-{b}"),
            records: (0..1000)
                .map(|i| record((b * 1000 + i) as u32 % ENTERPRISES, b, i))
                .collect(),
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut retries = 0;
    let mut queue = requests.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < concurrency {
            let Some(req) = queue.next() else { break };
            let mut c = client.clone();
            tasks.spawn(async move {
                let t = Instant::now();
                let retries = submit(&mut c, req).await;
                (t.elapsed(), retries)
            });
        }
        match tasks.join_next().await {
            Some(r) => {
                let (latency, tries) = r.expect("task");
                latencies.push(latency);
                retries += tries;
            }
            None => break,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{label}: {batches} batches x 1,000 records, concurrency {concurrency}: {:.0} records/s \
         ({:.2}s; batch latency p50 {:.0} ms, p99 {:.0} ms; {retries} retries after UNAVAILABLE or RESOURCE_EXHAUSTED)",
        (batches * 1000) as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
    );
    running.stop().await;
}

/// Most attempts at one batch.
const ATTEMPTS: u32 = 10;

/// Submits `req` as a partner's client should: an UNAVAILABLE answer (its write queue
/// full) or RESOURCE_EXHAUSTED (the service shedding load) is retried after the delay
/// its RetryInfo gives, with the same request_id, so a batch is never applied twice. Returns the
/// retries it took; a batch still refused after [`ATTEMPTS`] stops the benchmark.
async fn submit<T>(
    client: &mut pb::record_service_client::RecordServiceClient<T>,
    req: pb::BatchSubmitRecordsRequest,
) -> u32
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    use tonic_types::StatusExt;
    for attempt in 0..ATTEMPTS {
        match client.batch_submit_records(req.clone()).await {
            Ok(_) => return attempt,
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                ) =>
            {
                let delay = status
                    .get_details_retry_info()
                    .and_then(|r| r.retry_delay)
                    .unwrap_or(std::time::Duration::from_millis(100));
                tokio::time::sleep(delay).await;
            }
            Err(status) => panic!("batch refused: {status:?}"),
        }
    }
    panic!("batch still refused for now after {ATTEMPTS} attempts");
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(std::env::var("BENCH_LOG").unwrap_or_default())
            .init();
    }
    let args = common::args();
    let batches: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(50);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);

    common::on_each_backend("bench", |label, store| {
        run(label, store, batches, concurrency)
    })
    .await;
}
