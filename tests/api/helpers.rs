//! Spawns the real server on an ephemeral port over a fresh database per test: a temp
//! SQLite directory, or (with `CREDIT_HUB_TEST_BACKEND=postgres`) a new PostgreSQL
//! database created beside `CREDIT_HUB_TEST_DATABASE_URL`.

use std::collections::HashMap;
use std::time::Duration;

use credit_hub::api::Clock;
use credit_hub::cli::Bearer;
use std::collections::BTreeSet;

use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::ids::PersonKeyer;
use credit_hub::proto::v1 as pb;
use credit_hub::store::{NewAgency, Store};
use credit_hub::{Server, ShutdownPolicy};
use sqlx::Connection;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Authed = InterceptedService<Channel, Bearer>;

pub struct TestApp {
    pub addr: String,
    pub channel: Channel,
    pub store: Store,
    pub tokens: HashMap<AgencyKind, String>,
    pub agency_ids: HashMap<AgencyKind, String>,
    pub clock: Clock,
    /// The database's URL, for tools and tests that open it directly.
    pub db_url: String,
    /// The SQLite data directory (unused on PostgreSQL).
    pub data_dir: std::path::PathBuf,
    pub keyer: PersonKeyer,
    /// Where the server serves Prometheus `/metrics`.
    pub metrics_addr: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}

/// Which backend the suite runs on.
pub fn backend() -> String {
    std::env::var("CREDIT_HUB_TEST_BACKEND").unwrap_or_else(|_| "sqlite".into())
}

/// A fresh, migrated store for one test.
pub async fn fresh_store(dir: &std::path::Path) -> Store {
    fresh_database(dir).await.0
}

/// A fresh, migrated store for one test, and the database's URL for tools that open it
/// themselves (`sqlite://…/credit-hub.db` or `postgres://…`).
pub async fn fresh_database(dir: &std::path::Path) -> (Store, String) {
    let (store, url) = match backend().as_str() {
        "sqlite" => (
            Store::open_sqlite(dir).await.expect("open sqlite"),
            format!("sqlite://{}", dir.join("credit-hub.db").display()),
        ),
        "postgres" => {
            let admin = std::env::var("CREDIT_HUB_TEST_DATABASE_URL")
                .expect("CREDIT_HUB_TEST_DATABASE_URL must name a PostgreSQL database when CREDIT_HUB_TEST_BACKEND=postgres");
            let (base, db) = admin.rsplit_once('/').expect("URL ends with /database");
            let name = format!("{db}_{}", uuid::Uuid::now_v7().simple());
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("PostgreSQL must be reachable for the postgres suite");
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
                .expect("create test database");
            conn.close().await.ok();
            let url = format!("{base}/{name}");
            (
                Store::open_postgres(&url, 8).await.expect("open postgres"),
                url,
            )
        }
        other => panic!("unknown CREDIT_HUB_TEST_BACKEND {other:?}"),
    };
    store.migrate().await.expect("migrate");
    (store, url)
}

/// The person-key secret of every test server.
pub const TEST_HMAC_KEY: &str = "test-secret-0123456789abcdef";

/// The flags that point a `credit-hub` process at a database: `--database-url URL` and
/// the tests' person-key secret on PostgreSQL, `--data-dir DIR` on SQLite (whose
/// secret lives in the directory).
pub fn storage_flags(db_url: &str, data_dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    if backend() == "postgres" {
        ["--database-url", db_url, "--hmac-key", TEST_HMAC_KEY]
            .map(Into::into)
            .to_vec()
    } else {
        vec!["--data-dir".into(), data_dir.into()]
    }
}

/// A database for `credit-hub` processes a test starts itself: the flags that name it,
/// and the environment a server on it needs (on PostgreSQL its secrets are not kept in
/// a data directory, so they come from here).
pub struct ProcessDatabase {
    pub args: Vec<std::ffi::OsString>,
    pub envs: Vec<(&'static str, std::ffi::OsString)>,
}

/// A fresh, migrated database of the suite's backend (SQLite files and key files go
/// under `dir`).
pub async fn process_database(dir: &std::path::Path) -> ProcessDatabase {
    let (store, url) = fresh_database(dir).await;
    store.close().await;
    let mut envs = Vec::new();
    if backend() == "postgres" {
        std::fs::create_dir_all(dir).unwrap();
        for (var, file, byte) in [
            ("CREDIT_HUB_CERT_KEY_FILE", "cert-signing.key", "11"),
            ("CREDIT_HUB_AUDIT_KEY_FILE", "audit-signing.key", "22"),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, byte.repeat(32)).unwrap();
            envs.push((var, path.into_os_string()));
        }
    }
    ProcessDatabase {
        args: storage_flags(&url, dir),
        envs,
    }
}

pub async fn spawn_app() -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, db_url) = fresh_database(dir.path()).await;
    let keyer = PersonKeyer::new(TEST_HMAC_KEY.as_bytes().to_vec());
    let mut tokens = HashMap::new();
    let mut agency_ids = HashMap::new();
    for kind in AgencyKind::ALL {
        let (agency, token) = store
            .create_agency(NewAgency {
                display_name: format!("test {}", kind.label()),
                kind: *kind,
                scopes: Default::default(),
                cert_subject: None,
            })
            .await
            .expect("create agency");
        tokens.insert(*kind, token);
        agency_ids.insert(*kind, agency.id);
    }
    let clock = Clock::default();
    let server = Server::bind(store.clone(), keyer.clone(), "127.0.0.1:0")
        .await
        .expect("bind")
        .with_clock(clock.clone())
        .regrade_every(Duration::from_millis(100))
        .metrics("127.0.0.1:0")
        .await
        .expect("bind metrics");
    let metrics_addr = server.metrics_addr().expect("metrics bound");
    let addr = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(
        async {
            rx.await.ok();
        },
        ShutdownPolicy {
            announce: Duration::ZERO,
            drain: Duration::from_secs(5),
        },
    ));
    let channel = Channel::from_shared(addr.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    // Answered only once the server has started serving, after it registered its
    // certificate key: a test that starts replicas next finds that key in place.
    pb::certificate_service_client::CertificateServiceClient::new(channel.clone())
        .list_issuer_keys(pb::ListIssuerKeysRequest {})
        .await
        .expect("the server serves");
    TestApp {
        addr,
        channel,
        store,
        tokens,
        agency_ids,
        clock,
        db_url,
        data_dir: dir.path().to_path_buf(),
        keyer,
        metrics_addr,
        shutdown: Some(tx),
        _dir: dir,
    }
}

/// Another server on the test's database, as a second replica or process would run:
/// its own pool, configured by `configure`. Returns its address and its stop switch.
pub async fn another_server(
    app: &TestApp,
    configure: impl FnOnce(Server) -> Server,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    serve_store(app.open_again().await, app.keyer.clone(), configure).await
}

/// `store` served on an ephemeral port by a server of its own, configured by
/// `configure`. Returns its address and its stop switch.
pub async fn serve_store(
    store: Store,
    keyer: PersonKeyer,
    configure: impl FnOnce(Server) -> Server,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = configure(Server::bind(store, keyer, "127.0.0.1:0").await.unwrap());
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(
        async {
            stopped.await.ok();
        },
        ShutdownPolicy::default(),
    ));
    (addr, stop)
}

/// A channel to a server started by [`serve_store`] or [`another_server`].
pub async fn channel_to(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A bearer for a new agency of `kind` holding exactly `scopes`.
pub async fn agency_with(app: &TestApp, scopes: BTreeSet<Scope>, kind: AgencyKind) -> Bearer {
    let (_, token) = app
        .store
        .create_agency(NewAgency {
            display_name: format!("scoped {scopes:?}"),
            kind,
            scopes,
            cert_subject: None,
        })
        .await
        .unwrap();
    Bearer::new(&token).unwrap()
}

impl TestApp {
    /// The test's database opened again, with its own pool, as another process would.
    pub async fn open_again(&self) -> Store {
        if backend() == "postgres" {
            Store::open_postgres(&self.db_url, 8).await.unwrap()
        } else {
            Store::open_sqlite(&self.data_dir).await.unwrap()
        }
    }

    /// The flags that point a `credit-hub` process at this test's database.
    pub fn storage_flags(&self) -> Vec<std::ffi::OsString> {
        storage_flags(&self.db_url, &self.data_dir)
    }

    pub fn bearer(&self, kind: AgencyKind) -> Bearer {
        Bearer::new(&self.tokens[&kind]).unwrap()
    }

    pub fn registry(
        &self,
        kind: AgencyKind,
    ) -> pb::registry_service_client::RegistryServiceClient<Authed> {
        pb::registry_service_client::RegistryServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer(kind),
        )
    }

    pub fn records(
        &self,
        kind: AgencyKind,
    ) -> pb::record_service_client::RecordServiceClient<Authed> {
        pb::record_service_client::RecordServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer(kind),
        )
    }

    pub fn grades(&self, kind: AgencyKind) -> pb::grade_service_client::GradeServiceClient<Authed> {
        pb::grade_service_client::GradeServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer(kind),
        )
    }

    /// Enterprise `n` from the registry, as an agency of `kind` sees it.
    pub async fn enterprise_as(&self, kind: AgencyKind, n: u32) -> pb::Enterprise {
        self.registry(kind)
            .get_enterprise(pb::GetEnterpriseRequest {
                name: format!("enterprises/{}", uscc(n)),
            })
            .await
            .unwrap()
            .into_inner()
            .enterprise
            .unwrap()
    }

    /// The general-model grade of enterprise `n` as the court sees it.
    pub async fn grade_of(&self, n: u32) -> pb::CreditGrade {
        self.grades(AgencyKind::Court)
            .get_credit_grade(pb::GetCreditGradeRequest {
                name: format!("enterprises/{}", uscc(n)),
                purpose: pb::Purpose::JudicialEnforcement as i32,
                ..Default::default()
            })
            .await
            .expect("grade")
            .into_inner()
            .grade
            .expect("grade present")
    }

    /// Enterprise `n`'s grade history under the general model, newest first (one page).
    pub async fn grade_history(&self, n: u32) -> Vec<pb::GradeChange> {
        self.grades(AgencyKind::Court)
            .list_grade_history(pb::ListGradeHistoryRequest {
                name: format!("enterprises/{}", uscc(n)),
                purpose: pb::Purpose::JudicialEnforcement as i32,
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
            .changes
    }

    /// The audit entries `request` selects (first page), as a supervisor holding the
    /// audit scope lists them.
    /// The outcomes of the audit entries `request` finds, oldest first.
    pub async fn audit_outcomes(&self, request: pb::ListAuditEntriesRequest) -> Vec<String> {
        self.audit_entries(request)
            .await
            .into_iter()
            .map(|e| e.outcome)
            .collect()
    }

    pub async fn audit_entries(&self, request: pb::ListAuditEntriesRequest) -> Vec<pb::AuditEntry> {
        let auditor = agency_with(
            self,
            BTreeSet::from([Scope::AuditRead]),
            AgencyKind::MarketRegulation,
        )
        .await;
        pb::audit_service_client::AuditServiceClient::with_interceptor(
            self.channel.clone(),
            auditor,
        )
        .list_audit_entries(request)
        .await
        .expect("list audit entries")
        .into_inner()
        .entries
    }

    /// Registers enterprises through the API as market regulation.
    pub async fn register(&self, enterprises: Vec<pb::Enterprise>) {
        self.registry(AgencyKind::MarketRegulation)
            .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
                request_id: String::new(),
                enterprises,
            })
            .await
            .expect("register enterprises");
    }

    /// Files `records` as the test agency of `kind` (no request id).
    pub async fn submit(&self, kind: AgencyKind, records: Vec<pb::Record>) {
        self.records(kind)
            .batch_submit_records(pb::BatchSubmitRecordsRequest {
                request_id: String::new(),
                records,
            })
            .await
            .expect("submit records");
    }
}

// ---- fixtures -------------------------------------------------------------------

/// The documented example ID number (GB 11643), the only real-format one in fixtures.
pub const ID_A: &str = "11010519491231002X";
/// A synthetic checksum-valid number: its address code 990102 belongs to no region.
pub const ID_B: &str = "990102188001010011";

/// A checksum-valid synthetic ID number made from a number below 1,000 (born
/// 1980-01-01), so tests get as many people as they need. Its address code 990105
/// belongs to no region, so the number is no one's.
pub fn synthetic_id(n: u32) -> String {
    let mut digits = format!("99010519800101{n:03}");
    digits.push(credit_hub::domain::ids::IdNumber::check_char(
        digits.as_bytes(),
    ));
    digits
}

/// The date `days` before today, "YYYY-MM-DD": fixtures dated relative to the day the
/// suite runs stay inside their publicity windows and period limits.
pub fn date_days_ago(days: i64) -> String {
    (credit_hub::api::today() - chrono::Duration::days(days)).to_string()
}

/// A valid USCC made from a number, so tests get as many as they need.
pub fn uscc(n: u32) -> String {
    credit_hub::domain::ids::Uscc::complete(&format!("91371002{:08}", 30_000_000 + n))
        .unwrap()
        .as_str()
        .to_string()
}

pub fn person(name: &str, id: &str) -> pb::Person {
    pb::Person {
        name: name.into(),
        id_number: id.into(),
        masked_id_number: String::new(),
    }
}

pub fn enterprise(n: u32, rep_id: &str) -> pb::Enterprise {
    pb::Enterprise {
        uscc: uscc(n),
        display_name: format!("威海测试{n}有限公司"),
        kind: pb::EnterpriseKind::LimitedLiabilityCompany as i32,
        status: pb::EnterpriseStatus::Operating as i32,
        established_date: "2015-03-02".into(),
        region_code: "371002".into(),
        industry_code: "C1391".into(),
        legal_representative: Some(person("张伟", rep_id)),
        ..Default::default()
    }
}

pub fn penalty(uscc: &str, source: &str) -> pb::Record {
    pb::Record {
        subject: Some(pb::Subject {
            subject: Some(pb::subject::Subject::Enterprise(format!(
                "enterprises/{uscc}"
            ))),
        }),
        kind: pb::RecordKind::AdministrativePenalty as i32,
        tier: pb::Tier::Moderate as i32,
        domain: pb::RegulatoryDomain::FoodProduction as i32,
        // Relative to today, so the record stays inside its one-year publicity window
        // whenever the suite runs.
        decision_date: date_days_ago(30),
        document_number: "威开市监罚〔2026〕12号".into(),
        deciding_authority: "威海经济技术开发区市场监督管理局".into(),
        summary: "生产不符合食品安全标准的食品".into(),
        provenance: Some(pb::Provenance {
            agency: String::new(),
            source_record_id: source.into(),
            revision: 1,
        }),
        penalty_measures: vec![pb::PenaltyMeasure::Fine as i32],
        fine_amount_fen: 5_000_000,
        ..Default::default()
    }
}

pub fn debtor(person: pb::Person, source: &str) -> pb::Record {
    pb::Record {
        subject: Some(pb::Subject {
            subject: Some(pb::subject::Subject::Person(person)),
        }),
        kind: pb::RecordKind::DishonestJudgmentDebtor as i32,
        tier: pb::Tier::Serious as i32,
        domain: pb::RegulatoryDomain::JudicialEnforcement as i32,
        decision_date: date_days_ago(60),
        document_number: "(2026)鲁1002执123号".into(),
        deciding_authority: "威海市环翠区人民法院".into(),
        provenance: Some(pb::Provenance {
            agency: String::new(),
            source_record_id: source.into(),
            revision: 1,
        }),
        ..Default::default()
    }
}

/// The field paths of a status's BadRequest violations.
/// Whether a reason with `code` is among the grade's.
pub fn has_reason(g: &pb::CreditGrade, code: &str) -> bool {
    g.reasons.iter().any(|r| r.code == code)
}

pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// A market-regulation record of `kind` about enterprise `n`, decided on `date`.
pub fn market_record(n: u32, kind: pb::RecordKind, source: &str, date: &str) -> pb::Record {
    pb::Record {
        kind: kind as i32,
        tier: pb::Tier::Serious as i32,
        domain: pb::RegulatoryDomain::BusinessRegistration as i32,
        decision_date: date.into(),
        document_number: format!("威开市监〔{source}〕号"),
        penalty_measures: vec![],
        fine_amount_fen: 0,
        ..penalty(&uscc(n), source)
    }
}

/// An abnormal-operations listing of enterprise `n` for `cause`; a listing for a
/// missed annual report names `year`'s report (other causes have no year).
pub fn abnormal(
    n: u32,
    source: &str,
    date: &str,
    year: i32,
    cause: pb::AbnormalCause,
) -> pb::Record {
    pb::Record {
        abnormal_cause: cause as i32,
        report_year: if cause == pb::AbnormalCause::AnnualReportNotFiled {
            year
        } else {
            0
        },
        tier: pb::Tier::Moderate as i32,
        ..market_record(n, pb::RecordKind::AbnormalOperationsListing, source, date)
    }
}

/// An annual-report filing of enterprise `n` for `year`.
pub fn filing(n: u32, source: &str, year: i32, date: &str) -> pb::Record {
    pb::Record {
        report_year: year,
        tier: pb::Tier::Minor as i32,
        ..market_record(n, pb::RecordKind::AnnualReportFiling, source, date)
    }
}

/// Filings of enterprise `n`, dated `date`, for each of `years` (source ids
/// `f-{n}-{year}`).
pub fn filings(n: u32, years: impl IntoIterator<Item = i32>, date: &str) -> Vec<pb::Record> {
    years
        .into_iter()
        .map(|y| filing(n, &format!("f-{n}-{y}"), y, date))
        .collect()
}

/// The years after `year` through the latest annual report already late `today`: those
/// that fell due while an enterprise listed for missing `year`'s stood listed, which
/// its cure needs filed as well.
pub fn years_owed_after(year: i32, today: chrono::NaiveDate) -> std::ops::RangeInclusive<i32> {
    year + 1..=credit_hub::domain::record::latest_late_report_year(today)
}

/// The number one SQL query answers, read straight from the test's database.
pub async fn count_sql(app: &TestApp, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.ok();
    n
}

/// Sends six copies of one call at once; every copy must succeed with the same answer,
/// which it returns.
pub async fn at_once<R, F, Fut>(call: F) -> R
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>> + Send + 'static,
    R: PartialEq + std::fmt::Debug + Send + 'static,
{
    let handles: Vec<_> = (0..6).map(|_| tokio::spawn(call())).collect();
    let mut answers = Vec::new();
    for h in handles {
        let answer = h.await.unwrap();
        answers.push(
            answer
                .expect("every copy gets the first answer")
                .into_inner(),
        );
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    answers.remove(0)
}
