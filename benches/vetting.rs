//! CrossCheck throughput and time to the first result: 10,000 candidates (the legal
//! representatives of the first demo enterprises, plus one malformed ID in every 100)
//! against the demo data seeded in-process, through the real server on an ephemeral
//! port. SQLite in a temporary directory, and PostgreSQL too when
//! `CREDIT_HUB_BENCH_DATABASE_URL` names a database (a fresh one is created beside it).
//!
//! cargo bench --bench vetting -- [CANDIDATES]

use std::time::Instant;

use credit_hub::cli::Bearer;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::ids::PersonKeyer;
use credit_hub::proto::v1 as pb;
use credit_hub::seed::{demo_representative, seed, SeedPlan};
use credit_hub::store::{NewAgency, Store};
use credit_hub::Server;
use tokio_stream::StreamExt;

mod common;

async fn run(label: &str, store: Store, candidates: usize) {
    store.migrate().await.expect("migrate");
    let keyer = PersonKeyer::new(b"bench-secret-0123456789".to_vec());
    let plan = SeedPlan::default();
    let seeding = Instant::now();
    seed(&store, &keyer, plan, credit_hub::api::today(), &|_, _| {})
        .await
        .expect("seed");
    store.analyze().await.expect("analyze");
    eprintln!("{label}: seeded in {:.1}s", seeding.elapsed().as_secs_f64());
    let (_, token) = store
        .create_agency(NewAgency {
            display_name: "bench office".into(),
            kind: AgencyKind::VettingOffice,
            scopes: Default::default(),
            cert_subject: None,
        })
        .await
        .expect("agency");
    // CREDIT_HUB_BENCH_AUDIT=off measures the check without its audit entry.
    let audit = credit_hub::audit::AuditSettings {
        enabled: std::env::var("CREDIT_HUB_BENCH_AUDIT").as_deref() != Ok("off"),
        ..Default::default()
    };
    let server = Server::bind(store, keyer, "127.0.0.1:0")
        .await
        .expect("bind")
        .audit(audit);
    let running = common::Running::start(server).await;
    let channel = running.channel.clone();
    let mut client = pb::vetting_service_client::VettingServiceClient::with_interceptor(
        channel,
        Bearer::new(&token).expect("token"),
    )
    .max_encoding_message_size(16 << 20)
    .max_decoding_message_size(16 << 20);

    let request = pb::CrossCheckRequest {
        purpose: pb::VettingPurpose::VillageCommitteeCandidate as i32,
        case_reference: "bench".into(),
        candidates: (0..candidates)
            .map(|i| {
                let (name, id) = demo_representative(plan.seed, i % plan.enterprises);
                pb::Candidate {
                    name,
                    // Every hundredth row carries a typo, as real lists do.
                    id_number: if i % 100 == 99 {
                        format!("{}0000000000", &id[..8])
                    } else {
                        id
                    },
                    declared_enterprises: vec![],
                }
            })
            .collect(),
        request_id: String::new(),
    };
    let started = Instant::now();
    let mut stream = client
        .cross_check(request)
        .await
        .expect("accepted")
        .into_inner();
    let accepted = started.elapsed();
    let mut first = None;
    let mut results = 0;
    let mut summary = None;
    while let Some(message) = stream.next().await {
        match message.expect("stream").event {
            Some(pb::cross_check_response::Event::Result(_)) => {
                first.get_or_insert_with(|| started.elapsed());
                results += 1;
            }
            Some(pb::cross_check_response::Event::Summary(s)) => summary = Some(s),
            None => {}
        }
    }
    let elapsed = started.elapsed();
    let s = summary.expect("summary");
    println!(
        "{label}: {results} candidates in {:.2}s: {:.0} candidates/s, accepted after {:.1} ms, \
         first result after {:.1} ms (clear {}, review {}, adverse {}, invalid {})",
        elapsed.as_secs_f64(),
        results as f64 / elapsed.as_secs_f64(),
        accepted.as_secs_f64() * 1e3,
        first.expect("a result").as_secs_f64() * 1e3,
        s.clear_count,
        s.review_count,
        s.adverse_count,
        s.invalid_count,
    );
    running.stop().await;
}

#[tokio::main]
async fn main() {
    let args = common::args();
    let candidates: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);

    common::on_each_backend("vet", |label, store| run(label, store, candidates)).await;
}
