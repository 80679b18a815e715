//! Certificates issued per second and verified per second (online through the public
//! RPC, and offline in-process), through the real server on an ephemeral port over
//! seeded demo data. SQLite in a temporary directory, and PostgreSQL too when
//! `CREDIT_HUB_BENCH_DATABASE_URL` names a database (a fresh one is created beside it).
//!
//! cargo bench --bench certificates -- [CERTIFICATES] [CONCURRENCY]

use std::sync::Arc;
use std::time::Instant;

use credit_hub::api::CertificateSettings;
use credit_hub::cli::Bearer;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::data_integrity;
use credit_hub::domain::ids::PersonKeyer;
use credit_hub::proto::v1 as pb;
use credit_hub::seed::{seed, SeedPlan};
use credit_hub::store::{EnterpriseFilter, NewAgency, Store};
use credit_hub::Server;
use pb::certificate_service_client::CertificateServiceClient;

mod common;

/// Runs `total` calls of `call(i)` with `concurrency` in flight; returns calls per second.
async fn rate<F, Fut>(total: usize, concurrency: usize, call: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    call(i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn run(label: &str, store: Store, total: usize, concurrency: usize) {
    store.migrate().await.expect("migrate");
    let keyer = PersonKeyer::new(b"bench-secret-0123456789".to_vec());
    let plan = SeedPlan {
        seed: 1,
        enterprises: 5_000,
        records: 5_000,
    };
    seed(&store, &keyer, plan, credit_hub::api::today(), &|_, _| {})
        .await
        .expect("seed");
    store.analyze().await.expect("analyze");
    let usccs: Vec<String> = store
        .list_enterprises(&EnterpriseFilter::default(), None, 1_000)
        .await
        .expect("enterprises")
        .into_iter()
        .map(|e| e.uscc.as_str().to_string())
        .collect();
    let (_, token) = store
        .create_agency(NewAgency {
            display_name: "bench bureau".into(),
            kind: AgencyKind::MarketRegulation,
            scopes: Default::default(),
            cert_subject: None,
        })
        .await
        .expect("agency");
    let settings = CertificateSettings {
        public_rate: 1_000_000,
        ..CertificateSettings::default()
    };
    let public_key = settings.signing_key.verifying_key();
    let server = Server::bind(store, keyer, "127.0.0.1:0")
        .await
        .expect("bind")
        .certificates(settings);
    let running = common::Running::start(server).await;
    let channel = running.channel.clone();
    let issuer =
        CertificateServiceClient::with_interceptor(channel.clone(), Bearer::new(&token).unwrap());
    let today = credit_hub::api::today();
    let documents = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let usccs = Arc::new(usccs);
    let issued = {
        let documents = documents.clone();
        rate(total, concurrency, move |i| {
            let mut issuer = issuer.clone();
            let usccs = usccs.clone();
            let documents = documents.clone();
            async move {
                let cert = issuer
                    .issue_certificate(pb::IssueCertificateRequest {
                        enterprise: format!("enterprises/{}", usccs[i % usccs.len()]),
                        kind: pb::CertificateKind::CreditStatus as i32,
                        period_start_date: (today - chrono::Duration::days(3 * 365)).to_string(),
                        period_end_date: today.to_string(),
                        request_id: format!("bench-{i}"),
                    })
                    .await
                    .expect("issue")
                    .into_inner()
                    .certificate
                    .expect("certificate");
                documents.lock().unwrap().push(cert.document);
            }
        })
        .await
    };
    let documents: Arc<Vec<String>> = Arc::new(std::mem::take(&mut documents.lock().unwrap()));
    let verifier = CertificateServiceClient::new(channel);
    let verified = {
        let documents = documents.clone();
        rate(total, concurrency, move |i| {
            let mut verifier = verifier.clone();
            let document = documents[i].clone();
            async move {
                let r = verifier
                    .verify_certificate(pb::VerifyCertificateRequest { document })
                    .await
                    .expect("verify")
                    .into_inner();
                assert_eq!(r.result, pb::VerificationResult::Valid as i32, "{r:?}");
            }
        })
        .await
    };
    let started = Instant::now();
    for document in documents.iter() {
        let doc: serde_json::Value = serde_json::from_str(document).expect("json");
        data_integrity::verify(&doc, |_| Some(public_key)).expect("valid");
    }
    let offline = documents.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "{label}: {total} certificates, {concurrency} in flight: issued {issued:.0}/s, \
         verified online {verified:.0}/s, verified offline (one core) {offline:.0}/s"
    );
    running.stop().await;
}

#[tokio::main]
async fn main() {
    let args = common::args();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    common::on_each_backend("cert", |label, store| run(label, store, total, concurrency)).await;
}
