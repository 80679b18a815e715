//! Surviving faults: PostgreSQL cut off and restored under load (through a fault-injecting
//! TCP proxy), and SIGTERM under load on the real binary.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use credit_hub::store::{NewAgency, Store};
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

/// A TCP proxy to PostgreSQL that can cut every connection and refuse new ones, then
/// let them through again; or lose the reply to one message: PostgreSQL gets and runs
/// it, and the connection drops before its answer reaches the client.
struct FaultProxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    /// Which reply to lose, until a message carries its marker.
    lose_reply_to: Arc<Mutex<Option<LostReply>>>,
    /// Replies lost so far.
    lost: Arc<AtomicUsize>,
}

impl FaultProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let lose_reply_to = Arc::new(Mutex::new(None));
        let lost = Arc::new(AtomicUsize::new(0));
        let (up2, cut2) = (up.clone(), cut.clone());
        let (marker, lost2) = (lose_reply_to.clone(), lost.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused: the database is "unreachable"
                    continue;
                }
                let upstream = upstream.clone();
                let mut cuts = cut2.subscribe();
                let (marker, lost) = (marker.clone(), lost2.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = relay(client, server, marker, lost) => {}
                        _ = cuts.changed() => {} // dropping both sockets cuts the link
                    }
                });
            }
        });
        FaultProxy {
            addr,
            up,
            cut,
            lose_reply_to,
            lost,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Loses the reply to the next message that contains `marker`.
    fn lose_reply_to(&self, marker: &str) {
        *self.lose_reply_to.lock().unwrap() = Some(LostReply {
            marker: marker.as_bytes().to_vec(),
            then: None,
        });
    }

    /// Loses the reply to the first `COMMIT` sent, on the same connection, with or after
    /// the next message that contains `marker`: the transaction commits unheard.
    fn lose_commit_reply_after(&self, marker: &str) {
        *self.lose_reply_to.lock().unwrap() = Some(LostReply {
            marker: marker.as_bytes().to_vec(),
            then: Some(b"COMMIT".to_vec()),
        });
    }

    fn replies_lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// The reply a [`FaultProxy`] loses: to the message holding `marker`, or to the first
/// one holding `then` from that message on.
struct LostReply {
    marker: Vec<u8>,
    then: Option<Vec<u8>>,
}

fn holds(chunk: &[u8], what: &[u8]) -> bool {
    chunk.windows(what.len()).any(|w| w == what)
}

/// Relays one connection both ways until either side closes. Once the client sends the
/// message whose reply is to be lost, the server's next bytes are dropped, and
/// returning closes both sockets.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    rule: Arc<Mutex<Option<LostReply>>>,
    lost: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let armed = AtomicBool::new(false);
    let requests = async {
        let mut buf = vec![0u8; 1 << 16];
        // This connection's rule, once one of its messages carried the marker.
        let mut mine: Option<LostReply> = None;
        loop {
            let n = from_client.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            let chunk = &buf[..n];
            if mine.is_none() {
                let mut rule = rule.lock().unwrap();
                if rule.as_ref().is_some_and(|r| holds(chunk, &r.marker)) {
                    mine = rule.take();
                }
            }
            if let Some(r) = &mine {
                if r.then.as_ref().is_none_or(|then| holds(chunk, then)) {
                    armed.store(true, Ordering::SeqCst);
                }
            }
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let replies = async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = from_server.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            if armed.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = replies => {}
    }
}

type Outcome = (Instant, Code, Duration);

/// Calls GetEnterprise in a loop with a 5 s deadline until stopped, noting each call's
/// start, code and duration.
fn load_loop(
    channel: Channel,
    token: String,
    name: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Outcome>> {
    tokio::spawn(async move {
        let mut client = pb::registry_service_client::RegistryServiceClient::with_interceptor(
            channel,
            credit_hub::cli::Bearer::new(&token).unwrap(),
        );
        let mut seen = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let mut req = tonic::Request::new(pb::GetEnterpriseRequest { name: name.clone() });
            req.set_timeout(Duration::from_secs(5));
            let started = Instant::now();
            let code = match client.get_enterprise(req).await {
                Ok(_) => Code::Ok,
                Err(e) => e.code(),
            };
            seen.push((started, code, started.elapsed()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    })
}

async fn readiness(channel: &Channel) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "readiness".into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(0)
}

async fn wait_for_readiness(
    channel: &Channel,
    want: tonic_health::pb::health_check_response::ServingStatus,
    within: Duration,
) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if readiness(channel).await == want as i32 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A server whose database connections all pass through a [`FaultProxy`], with a court
/// and a market-regulation bureau as callers; it stops when dropped.
struct ProxiedServer {
    proxy: FaultProxy,
    channel: Channel,
    /// The court's token.
    token: String,
    bureau: credit_hub::cli::Bearer,
    /// The same database, reached directly, to inspect what the server wrote.
    direct: Store,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl ProxiedServer {
    /// Connected through the proxy with `sslmode`: `prefer` negotiates TLS (this
    /// machine's PostgreSQL offers it), `disable` keeps the protocol readable for the
    /// proxy to find a marker in.
    async fn start(sslmode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (direct, url) = fresh_database(dir.path()).await;
        let (_, token) = direct
            .create_agency(NewAgency {
                display_name: "fault court".into(),
                kind: AgencyKind::Court,
                scopes: Default::default(),
                cert_subject: None,
            })
            .await
            .unwrap();
        let (_, bureau_token) = direct
            .create_agency(NewAgency {
                display_name: "fault bureau".into(),
                kind: AgencyKind::MarketRegulation,
                scopes: Default::default(),
                cert_subject: None,
            })
            .await
            .unwrap();
        let rest = url.split_once("@").unwrap().1; // host:port/db
        let (hostport, db) = rest.split_once('/').unwrap();
        let proxy = FaultProxy::start(hostport.to_string()).await;
        let user = url.split_once("://").unwrap().1.split_once('@').unwrap().0;
        let store = Store::open_postgres(
            &format!("postgres://{user}@{}/{db}?sslmode={sslmode}", proxy.addr),
            8,
        )
        .await
        .unwrap();
        let keyer = credit_hub::domain::ids::PersonKeyer::new(b"fault-secret-0123456789".to_vec());
        let (addr, stop) = serve_store(store, keyer, |s| s).await;
        let channel = channel_to(addr).await;
        assert!(
            wait_for_readiness(
                &channel,
                tonic_health::pb::health_check_response::ServingStatus::Serving,
                Duration::from_secs(10)
            )
            .await
        );
        let bureau = credit_hub::cli::Bearer::new(&bureau_token).unwrap();
        ProxiedServer {
            proxy,
            channel,
            token,
            bureau,
            direct,
            _stop: stop,
            _dir: dir,
        }
    }
}

impl ProxiedServer {
    /// The registry, called by the bureau.
    fn registry(&self) -> pb::registry_service_client::RegistryServiceClient<Authed> {
        pb::registry_service_client::RegistryServiceClient::with_interceptor(
            self.channel.clone(),
            self.bureau.clone(),
        )
    }

    /// The record service, called by the bureau.
    fn records(&self) -> pb::record_service_client::RecordServiceClient<Authed> {
        pb::record_service_client::RecordServiceClient::with_interceptor(
            self.channel.clone(),
            self.bureau.clone(),
        )
    }

    /// Asserts the audit chain, read directly, is whole.
    async fn assert_chain_whole(&self) {
        self.direct
            .verify_audit(&[])
            .await
            .unwrap()
            .expect("one unbroken chain");
    }
}

#[tokio::test]
async fn postgres_cut_off_fails_calls_fast_with_unavailable_and_the_service_recovers_by_itself() {
    if backend() != "postgres" {
        // The outage is a PostgreSQL one; the PostgreSQL run of the suite exercises it.
        eprintln!("PostgreSQL only: not run on {}", backend());
        return;
    }
    let served = ProxiedServer::start("prefer").await;
    let (proxy, channel, token) = (&served.proxy, served.channel.clone(), served.token.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let name = format!("enterprises/{}", uscc(1)); // unregistered: NOT_FOUND while up
    let loops: Vec<_> = (0..2)
        .map(|_| load_loop(channel.clone(), token.clone(), name.clone(), stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut_at = Instant::now();
    proxy.cut();
    // A sustained outage turns readiness NOT_SERVING.
    assert!(
        wait_for_readiness(
            &channel,
            tonic_health::pb::health_check_response::ServingStatus::NotServing,
            Duration::from_secs(12)
        )
        .await,
        "readiness did not turn NOT_SERVING"
    );
    // The process itself stays alive: liveness never fails over a database outage.
    let live = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "liveness".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        live,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restored_at = Instant::now();
    proxy.restore();
    assert!(
        wait_for_readiness(
            &channel,
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            Duration::from_secs(12)
        )
        .await,
        "readiness did not come back"
    );
    let settled_at = restored_at + Duration::from_secs(5);
    tokio::time::sleep_until(tokio::time::Instant::from_std(
        settled_at + Duration::from_secs(2),
    ))
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for l in loops {
        outcomes.extend(l.await.unwrap());
    }
    drop(served);

    let during: Vec<&Outcome> = outcomes
        .iter()
        .filter(|(start, _, _)| *start >= cut_at && *start < restored_at)
        .collect();
    assert!(!during.is_empty());
    for (_, code, took) in &during {
        assert!(
            matches!(code, Code::Unavailable | Code::NotFound),
            "during the outage a call answered {code:?}"
        );
        assert!(
            *took < Duration::from_secs(5),
            "a call took {took:?}, past its deadline"
        );
    }
    assert!(during.iter().any(|(_, c, _)| *c == Code::Unavailable));
    assert!(
        outcomes
            .iter()
            .all(|(_, c, _)| !matches!(c, Code::Unknown | Code::Internal | Code::DeadlineExceeded)),
        "{:?}",
        outcomes.iter().map(|o| o.1).collect::<Vec<_>>()
    );
    let after: Vec<&Outcome> = outcomes
        .iter()
        .filter(|(start, _, _)| *start >= settled_at)
        .collect();
    assert!(
        after.len() >= 10,
        "too few calls after recovery: {}",
        after.len()
    );
    let ok = after
        .iter()
        .filter(|(_, c, _)| *c == Code::NotFound)
        .count();
    assert!(
        ok * 100 >= after.len() * 99,
        "{ok} of {} answered after recovery",
        after.len()
    );
}

/// PostgreSQL commits a group of audit entries and the connection drops before the
/// writer hears so (the reply is lost). The writer must find that the group landed: the
/// call keeps its own answer, and its entry is in the chain once, not chained again by
/// the retry.
#[tokio::test]
async fn an_audit_group_whose_commit_reply_is_lost_is_chained_once() {
    if backend() != "postgres" {
        // Losing a reply takes a network between the server and its database.
        eprintln!("PostgreSQL only: not run on {}", backend());
        return;
    }
    let served = ProxiedServer::start("disable").await;
    let mut registry = served.registry();
    // An empty batch is refused before any database work, and its entry carries the
    // request id: once the token is known, the call's one database message is its
    // audit entry, the only one that holds the marker.
    let empty_batch = |request_id: &str| pb::BatchUpsertEnterprisesRequest {
        request_id: request_id.into(),
        enterprises: Vec::new(),
    };
    let warm = registry
        .batch_upsert_enterprises(empty_batch("warm-up"))
        .await;
    assert_eq!(warm.unwrap_err().code(), Code::InvalidArgument);

    let marker = format!("lost-reply-{}", uuid::Uuid::now_v7().simple());
    served.proxy.lose_reply_to(&marker);
    let answer = registry
        .batch_upsert_enterprises(empty_batch(&marker))
        .await;
    assert_eq!(
        answer.unwrap_err().code(),
        Code::InvalidArgument,
        "the call keeps its own answer"
    );
    assert_eq!(
        served.proxy.replies_lost(),
        1,
        "the append's reply was lost"
    );

    let filter = credit_hub::store::AuditFilter {
        method: Some("/credithub.v1.RegistryService/BatchUpsertEnterprises".into()),
        ..Default::default()
    };
    let entries = served.direct.list_audit(&filter, 0, 100).await.unwrap();
    let chained = entries
        .iter()
        .filter(|e| e.event.request_id == marker)
        .count();
    assert_eq!(chained, 1, "the call's entry is chained exactly once");
    served.assert_chain_whole().await;
}

/// A batch of records commits and the connection drops before the server hears so. The
/// caller is told to retry (UNAVAILABLE, not an unknown error); the records are there
/// once; the call's entry, saved with the write, is chained once; and the retry with
/// the same request id changes nothing.
#[tokio::test]
async fn a_write_whose_commit_reply_is_lost_is_kept_once_and_audited_once() {
    if backend() != "postgres" {
        // Losing a reply takes a network between the server and its database.
        eprintln!("PostgreSQL only: not run on {}", backend());
        return;
    }
    let served = ProxiedServer::start("disable").await;
    served
        .registry()
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises: vec![enterprise(1, ID_A)],
        })
        .await
        .unwrap();
    let mut records = served.records();
    let marker = format!("lost-commit-{}", uuid::Uuid::now_v7().simple());
    let batch = pb::BatchSubmitRecordsRequest {
        request_id: marker.clone(),
        records: vec![penalty(&uscc(1), "P-LOST-1")],
    };

    served.proxy.lose_commit_reply_after(&marker);
    let answer = records.batch_submit_records(batch.clone()).await;
    assert_eq!(
        served.proxy.replies_lost(),
        1,
        "the commit's reply was lost"
    );
    assert_eq!(
        answer.unwrap_err().code(),
        Code::Unavailable,
        "a write that may have landed is retried, and says so"
    );
    let kept = |n: usize| {
        let (store, subject) = (served.direct.clone(), format!("enterprises/{}", uscc(1)));
        async move {
            let filter = credit_hub::store::AuditFilter {
                subject: Some(subject),
                method: Some("/credithub.v1.RecordService/BatchSubmitRecords".into()),
                ..Default::default()
            };
            let entries = store.list_audit(&filter, 0, 100).await.unwrap();
            assert_eq!(entries.len(), n, "one audit entry per call: {entries:?}");
        }
    };
    kept(1).await;
    let list = pb::ListRecordsRequest {
        subject_enterprise: format!("enterprises/{}", uscc(1)),
        ..Default::default()
    };
    let landed = records
        .list_records(list.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(landed.records.len(), 1, "the write landed unheard");

    let retried = records
        .batch_submit_records(batch)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.records.len(), 1);
    let listed = records.list_records(list).await.unwrap().into_inner();
    assert_eq!(listed.records, landed.records, "the retry changed nothing");
    kept(2).await;
    served.assert_chain_whole().await;
}

/// A court agency's token in the database `database` names, made with the binary itself.
fn agency_token(bin: &str, database: &ProcessDatabase) -> String {
    let out = std::process::Command::new(bin)
        .args([
            "agency",
            "add",
            "--name",
            "sigterm court",
            "--kind",
            "court",
        ])
        .args(&database.args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `credit-hub serve` on `database` with `extra` flags, on a free port, and a channel
/// to it once it answers.
async fn serve_process(
    database: &ProcessDatabase,
    extra: &[&str],
) -> (tokio::process::Child, Channel) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", ""])
        .args(extra)
        .args(&database.args)
        .envs(database.envs.clone())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if let Ok(channel) = Channel::from_shared(addr.clone()).unwrap().connect().await {
            return (child, channel);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not start")
}

#[tokio::test]
async fn sigterm_under_load_fails_no_in_flight_call_and_exits_within_the_drain_bound() {
    let bin = env!("CARGO_BIN_EXE_credit-hub");
    let dir = tempfile::tempdir().unwrap();
    let database = process_database(dir.path()).await;
    let token = agency_token(bin, &database);
    let (mut child, channel) = serve_process(
        &database,
        &["--shutdown-announce-secs", "0.5", "--drain-secs", "5"],
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let name = format!("enterprises/{}", uscc(1));
    let loops: Vec<_> = (0..4)
        .map(|_| load_loop(channel.clone(), token.clone(), name.clone(), stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term_at = Instant::now();
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the server exits within the drain bound")
        .unwrap();
    let exited_in = term_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for l in loops {
        outcomes.extend(l.await.unwrap());
    }
    assert!(exit.success(), "{exit:?}");
    assert!(
        exited_in < Duration::from_secs(7),
        "exit took {exited_in:?}"
    );
    // Every call that started before SIGTERM (in flight or answered) was answered.
    let before: Vec<&Outcome> = outcomes.iter().filter(|(s, _, _)| *s < term_at).collect();
    assert!(before.len() >= 10, "load ran: {}", before.len());
    assert!(
        before.iter().all(|(_, c, _)| *c == Code::NotFound),
        "{before:?}"
    );
    // Calls during the announce window were still answered.
    assert!(outcomes
        .iter()
        .filter(|(s, _, _)| *s >= term_at && *s < term_at + Duration::from_millis(300))
        .all(|(_, c, _)| *c == Code::NotFound));
}

/// A statement stuck behind another session's lock is stopped by the server's
/// statement timeout: the call gets UNAVAILABLE with RetryInfo, not an answer after
/// the lock lifts (or never), and nothing is written; once the lock is gone the same
/// call succeeds.
#[tokio::test]
async fn a_statement_stuck_on_a_lock_is_stopped_by_the_statement_timeout() {
    if backend() != "postgres" {
        // PostgreSQL's statement_timeout; SQLite's lock waits end at its busy timeout.
        eprintln!("PostgreSQL only: not run on {}", backend());
        return;
    }
    let app = spawn_app().await;
    let store = Store::open_postgres_bounded(&app.db_url, 4, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    let (addr, stop) = serve_store(store, app.keyer.clone(), |s| s).await;
    let channel = channel_to(addr).await;
    let mut registry = pb::registry_service_client::RegistryServiceClient::with_interceptor(
        channel,
        app.bearer(AgencyKind::MarketRegulation),
    );
    let upsert = || pb::BatchUpsertEnterprisesRequest {
        request_id: "locked-out".into(),
        enterprises: vec![enterprise(1, ID_A)],
    };

    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE enterprises IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let started = Instant::now();
    let err = registry
        .batch_upsert_enterprises(upsert())
        .await
        .unwrap_err();
    let waited = started.elapsed();
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.get_details_retry_info().is_some(),
        "the caller is told when to retry: {err:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "stopped, not waited out: {waited:?}"
    );
    assert_eq!(
        app.store.count_enterprises().await.unwrap(),
        0,
        "nothing written"
    );

    let done = registry.batch_upsert_enterprises(upsert()).await.unwrap();
    assert_eq!(done.into_inner().enterprises.len(), 1);
    stop.send(()).ok();
}

/// Two `credit-hub serve` processes on one database, each under load, extend one audit
/// chain: every answered call is in it once, and `credit-hub audit verify` walks it whole,
/// with the checkpoints both processes signed with the shared key.
#[tokio::test]
async fn two_server_processes_under_load_extend_one_chain_that_verifies() {
    let bin = env!("CARGO_BIN_EXE_credit-hub");
    let dir = tempfile::tempdir().unwrap();
    let database = process_database(dir.path()).await;
    let token = agency_token(bin, &database);
    let mut servers = Vec::new();
    let mut channels = Vec::new();
    for _ in 0..2 {
        let (server, channel) = serve_process(&database, &["--audit-checkpoint-secs", "1"]).await;
        servers.push(server);
        channels.push(channel);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let name = format!("enterprises/{}", uscc(1));
    let loops: Vec<_> = (0..16)
        .map(|i| {
            load_loop(
                channels[i % 2].clone(),
                token.clone(),
                name.clone(),
                stop.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answered = 0;
    for l in loops {
        for (_, code, _) in l.await.unwrap() {
            // Not registered: every answer is NOT_FOUND, and each is audited.
            assert_eq!(code, Code::NotFound);
            answered += 1;
        }
    }
    for server in &mut servers {
        let pid = server.id().unwrap().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        assert!(server.wait().await.unwrap().success());
    }
    let out = std::process::Command::new(bin)
        .args(["audit", "verify"])
        .args(&database.args)
        .envs(database.envs.clone())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    // "audit chain intact: N entries, K signed checkpoints"
    let verdict = said
        .lines()
        .find(|l| l.starts_with("audit chain intact"))
        .unwrap_or_else(|| panic!("{said}"));
    let numbers: Vec<i64> = verdict
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (entries, checkpoints) = (numbers[0], numbers[1]);
    assert_eq!(entries, answered, "each answered call once: {said}");
    assert!(checkpoints >= 1, "{said}");
}
