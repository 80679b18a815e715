//! Spot-check planning at the district's scale: over the 50,000-enterprise demo, five
//! departments (20 inspectors each) create and draw a plan each for one cycle, then the
//! five plans are merged into joint visits, through the real server on an ephemeral
//! port. SQLite in a temporary directory, and PostgreSQL too when
//! `CREDIT_HUB_BENCH_DATABASE_URL` names a database (a fresh one is created beside it).
//!
//! cargo bench --bench spotcheck

use std::time::Instant;

use chrono::Datelike;
use credit_hub::cli::Bearer;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::ids::PersonKeyer;
use credit_hub::proto::v1 as pb;
use credit_hub::seed::{seed, SeedPlan};
use credit_hub::store::{NewAgency, Store};
use credit_hub::Server;
use pb::spot_check_service_client::SpotCheckServiceClient;

mod common;

const DOMAINS: [pb::RegulatoryDomain; 5] = [
    pb::RegulatoryDomain::FoodProduction,
    pb::RegulatoryDomain::ProductQuality,
    pb::RegulatoryDomain::Pricing,
    pb::RegulatoryDomain::Advertising,
    pb::RegulatoryDomain::Metrology,
];

async fn run(label: &str, store: Store) {
    store.migrate().await.expect("migrate");
    let keyer = PersonKeyer::new(b"bench-secret-0123456789".to_vec());
    let seeding = Instant::now();
    seed(
        &store,
        &keyer,
        SeedPlan::default(),
        credit_hub::api::today(),
        &|_, _| {},
    )
    .await
    .expect("seed");
    eprintln!("{label}: seeded in {:.1}s", seeding.elapsed().as_secs_f64());
    let mut tokens = Vec::new();
    for d in 0..DOMAINS.len() {
        let (_, token) = store
            .create_agency(NewAgency {
                display_name: format!("bench department {d}"),
                kind: AgencyKind::MarketRegulation,
                scopes: Default::default(),
                cert_subject: None,
            })
            .await
            .expect("agency");
        tokens.push(token);
    }
    let server = Server::bind(store, keyer, "127.0.0.1:0")
        .await
        .expect("bind");
    let running = common::Running::start(server).await;
    let clients: Vec<_> = tokens
        .iter()
        .map(|t| {
            SpotCheckServiceClient::with_interceptor(
                running.channel.clone(),
                Bearer::new(t).unwrap(),
            )
            .max_decoding_message_size(64 << 20)
        })
        .collect();
    let today = credit_hub::api::today();
    let cycle = format!("{}-Q{}", today.year(), (today.month() - 1) / 3 + 1);
    for (d, c) in clients.iter().enumerate() {
        c.clone()
            .batch_upsert_inspectors(pb::BatchUpsertInspectorsRequest {
                inspectors: (0..20)
                    .map(|i| pb::Inspector {
                        code: format!("d{d}-{i:02}"),
                        display_name: format!("检查员{d}-{i}"),
                        domains: DOMAINS.iter().map(|x| *x as i32).collect(),
                        conflicts: vec![],
                    })
                    .collect(),
            })
            .await
            .expect("inspectors");
    }
    let started = Instant::now();
    let mut plans = Vec::new();
    let mut targets = 0;
    for (d, c) in clients.iter().enumerate() {
        let created = c
            .clone()
            .create_spot_check_plan(pb::CreateSpotCheckPlanRequest {
                plan: Some(pb::SpotCheckPlan {
                    domain: DOMAINS[d] as i32,
                    cycle: cycle.clone(),
                    check_items: vec!["证照公示".into(), "经营场所".into()],
                    ..Default::default()
                }),
                request_id: uuid::Uuid::now_v7().simple().to_string(),
            })
            .await
            .expect("plan")
            .into_inner()
            .plan
            .unwrap();
        let drawn = c
            .clone()
            .draw_spot_check_plan(pb::DrawSpotCheckPlanRequest {
                name: created.name.clone(),
            })
            .await
            .expect("draw")
            .into_inner()
            .plan
            .unwrap();
        targets += drawn.targets.len();
        plans.push(created.name);
    }
    let drawn_in = started.elapsed();
    let merging = Instant::now();
    let merged = clients[0]
        .clone()
        .merge_plans(pb::MergePlansRequest { plans })
        .await
        .expect("merge")
        .into_inner();
    let merged_in = merging.elapsed();
    println!(
        "{label}: 5 plans over 50,000 enterprises created and drawn in {:.0} ms ({targets} targets), \
         merged in {:.0} ms: {} visits before, {} after, {} joint ({:.1}%); total {:.0} ms",
        drawn_in.as_secs_f64() * 1e3,
        merged_in.as_secs_f64() * 1e3,
        merged.visits_before,
        merged.visits_after,
        merged.joint_visits,
        merged.joint_share * 100.0,
        (drawn_in + merged_in).as_secs_f64() * 1e3,
    );
    running.stop().await;
}

#[tokio::main]
async fn main() {
    common::on_each_backend("spot", run).await;
}
