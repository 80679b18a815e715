//! The gRPC server: every service on one port with health, reflection and
//! authentication, and a bounded graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::api::{
    AuditApi, CertificateApi, CertificateSettings, Clock, GradeApi, RecordApi, RegistryApi,
    RepairApi, SpotCheckApi, State, VettingApi,
};
use crate::audit::{Audit, AuditLog, AuditSettings};
use crate::auth::Authenticate;
use crate::domain::agency::PurposePolicy;
use crate::domain::ids::PersonKeyer;
use crate::domain::repair::{RepairPolicy, WorkCalendar};
use crate::domain::spotcheck::SpotCheckPolicy;
use crate::domain::vetting::VettingPolicy;
use crate::metrics::{Metrics, Observe};
use crate::middleware::{HttpResponse, StepLayer};
use crate::overload::{LoadShed, WriteQueue, DEFAULT_MAX_CONCURRENT_CALLS};
use crate::pace::BodyPace;
use crate::peer::PeerPolicy;
use crate::proto::v1::{
    audit_service_server::AuditServiceServer, certificate_service_server::CertificateServiceServer,
    grade_service_server::GradeServiceServer, record_service_server::RecordServiceServer,
    registry_service_server::RegistryServiceServer, repair_service_server::RepairServiceServer,
    spot_check_service_server::SpotCheckServiceServer,
    vetting_service_server::VettingServiceServer,
};
use crate::store::Store;

/// The named health service that is SERVING only while the database is migrated and
/// reachable; Kubernetes readiness probes ask for it.
pub const READINESS: &str = "readiness";

/// The named health service that is SERVING while the process runs, whatever the
/// database does; Kubernetes liveness probes ask for it, so a database outage never
/// restarts pods (they recover by themselves when it returns).
pub const LIVENESS: &str = "liveness";

/// How long a client connection lives before the server asks the client to reconnect
/// (HTTP/2 GOAWAY, in-flight calls finish): after a scale-out, clients spread over the
/// new replicas within this time.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// How the server shuts down.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownPolicy {
    /// Time between reporting NOT_SERVING and refusing new connections, so load
    /// balancers stop routing here first.
    pub announce: Duration,
    /// Longest wait for in-flight calls once new connections are refused.
    pub drain: Duration,
}

impl Default for ShutdownPolicy {
    fn default() -> Self {
        ShutdownPolicy {
            announce: Duration::from_millis(500),
            drain: Duration::from_secs(20),
        }
    }
}

/// The server's TLS material, PEM-encoded.
#[derive(Clone)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: Vec<u8>,
    /// Its private key.
    pub key: Vec<u8>,
    /// CA certificates that sign agencies' client certificates. Clients without a
    /// certificate are still accepted (they authenticate by token); a certificate not
    /// signed by one of these fails the handshake.
    pub client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &"[redacted]")
            .field("client_ca", &self.client_ca.as_ref().map(Vec::len))
            .finish()
    }
}

impl TlsFiles {
    fn config(&self) -> tonic::transport::ServerTlsConfig {
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key));
        if let Some(ca) = &self.client_ca {
            config = config
                .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                .client_auth_optional(true);
        }
        config
    }
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
    regrade_every: Duration,
    audit: AuditSettings,
    default_rate: Option<u32>,
    max_concurrent_calls: usize,
    max_queued_writes_per_agency: usize,
    shed_summary_every: Duration,
    body_pace: BodyPace,
    tls: Option<TlsFiles>,
    peers: PeerPolicy,
    vetting: VettingPolicy,
    certificates: CertificateSettings,
    repair: RepairPolicy,
    calendar: WorkCalendar,
    spotcheck: SpotCheckPolicy,
    metrics_listener: Option<TcpListener>,
    max_connection_age: Duration,
    /// Tells open streams that the server drains (see [`State::draining`]).
    draining: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Binds `listen` (port 0 picks a free port) over a migrated store.
    pub async fn bind(store: Store, keyer: PersonKeyer, listen: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let (draining, draining_seen) = tokio::sync::watch::channel(false);
        Ok(Server {
            listener,
            state: Arc::new(State {
                store,
                keyer,
                clock: Clock::default(),
                purposes: PurposePolicy::builtin(),
                peers: PeerPolicy::default(),
                draining: draining_seen,
            }),
            regrade_every: Duration::from_secs(60),
            audit: AuditSettings::default(),
            default_rate: None,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            max_queued_writes_per_agency: crate::overload::DEFAULT_MAX_QUEUED_WRITES_PER_AGENCY,
            shed_summary_every: crate::overload::SHED_SUMMARY_EVERY,
            body_pace: BodyPace::default(),
            tls: None,
            peers: PeerPolicy::default(),
            vetting: VettingPolicy::builtin(),
            certificates: CertificateSettings::default(),
            repair: RepairPolicy::builtin(),
            calendar: WorkCalendar::builtin(),
            spotcheck: SpotCheckPolicy::builtin(),
            metrics_listener: None,
            max_connection_age: DEFAULT_MAX_CONNECTION_AGE,
            draining,
        })
    }

    /// Uses `clock` for every date (tests move it to end publicity windows).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        let mut state = State::clone(&self.state);
        state.clock = clock;
        self.state = Arc::new(state);
        self
    }

    /// Which purposes each kind of agency may declare (default: the shipped policy).
    pub fn purposes(mut self, policy: PurposePolicy) -> Self {
        let mut state = State::clone(&self.state);
        state.purposes = policy;
        self.state = Arc::new(state);
        self
    }

    /// How often the server regrades enterprises whose records' publicity ended.
    pub fn regrade_every(mut self, interval: Duration) -> Self {
        self.regrade_every = interval;
        self
    }

    /// How the audit log runs (on, with a per-process key, unless told otherwise).
    pub fn audit(mut self, settings: AuditSettings) -> Self {
        self.audit = settings;
        self
    }

    /// Requests per second for agencies without their own limit (None: unlimited).
    pub fn default_rate_limit(mut self, rate: Option<u32>) -> Self {
        self.default_rate = rate;
        self
    }

    /// Most calls handled at once; more are refused with RESOURCE_EXHAUSTED (health
    /// and reflection are never refused).
    pub fn max_concurrent_calls(mut self, max: usize) -> Self {
        self.max_concurrent_calls = max;
        self
    }

    /// Most writes of one agency arriving (their request bodies are read before they
    /// wait) or waiting for a database write slot at once; more are refused with
    /// RESOURCE_EXHAUSTED (OVERLOADED).
    pub fn max_queued_writes_per_agency(mut self, max: usize) -> Self {
        self.max_queued_writes_per_agency = max;
        self
    }

    /// How fast, and how long, request bodies must be (see [`crate::pace`]).
    pub fn request_body_pace(mut self, pace: BodyPace) -> Self {
        self.body_pace = pace;
        self
    }

    /// How often the calls refused for overload are summarised in the audit log.
    pub fn shed_summary_every(mut self, every: Duration) -> Self {
        self.shed_summary_every = every;
        self
    }

    /// Serves TLS (HTTP/2 over TLS 1.2/1.3) instead of plaintext HTTP/2.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Which gateways may forward their callers' client certificates.
    pub fn peers(mut self, peers: PeerPolicy) -> Self {
        let mut state = State::clone(&self.state);
        state.peers = peers.clone();
        self.state = Arc::new(state);
        self.peers = peers;
        self
    }

    /// The policy that judges cross-checks (default: the shipped one).
    pub fn vetting_policy(mut self, policy: VettingPolicy) -> Self {
        self.vetting = policy;
        self
    }

    /// How certificates are signed (default: a key made up for this process).
    pub fn certificates(mut self, settings: CertificateSettings) -> Self {
        self.certificates = settings;
        self
    }

    /// The credit-repair rules and the working-day calendar (default: the shipped ones).
    pub fn repair(mut self, policy: RepairPolicy, calendar: WorkCalendar) -> Self {
        self.repair = policy;
        self.calendar = calendar;
        self
    }

    /// The spot-check defaults (default: the shipped ones).
    pub fn spotcheck_policy(mut self, policy: SpotCheckPolicy) -> Self {
        self.spotcheck = policy;
        self
    }

    /// Serves Prometheus `/metrics` on `listen` (its own port; port 0 picks one).
    pub async fn metrics(mut self, listen: &str) -> anyhow::Result<Self> {
        self.metrics_listener = Some(
            TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen for metrics on {listen}"))?,
        );
        Ok(self)
    }

    /// The address `/metrics` is served on, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// How long a client connection may live (see [`DEFAULT_MAX_CONNECTION_AGE`]).
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = age;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes, then announces NOT_SERVING, stops accepting,
    /// and drains in-flight calls within the policy's bound.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        policy: ShutdownPolicy,
    ) -> anyhow::Result<()> {
        // No max_connection_age_grace: with one, tonic (0.14) sends no GOAWAY at the
        // age but closes the connection outright after age + grace, cutting whatever
        // is in flight; without, it sends GOAWAY and lets in-flight calls finish.
        let mut builder =
            tonic::transport::Server::builder().max_connection_age(self.max_connection_age);
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(tls.config())
                .context("invalid TLS certificate, key or client CA")?;
        }
        let (reporter, health) = tonic_health::server::health_reporter();
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        reporter
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        // Known but not ready until the first database check passes: a probe or a
        // watch that arrives before it hears NOT_SERVING, never NOT_FOUND.
        for service in ["", READINESS] {
            reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        let store = self.state.store.clone();
        // New certificates are signed with the configured key from now on; keys it
        // replaces stay listed so what they signed keeps verifying.
        // Replicas rolled out together all register at once: one that finds the
        // database busy past its lock timeout waits and tries again rather than exit.
        let public_key = crate::api::certificates::signing_public_key(&self.certificates);
        let mut attempt = 0;
        let signs = loop {
            attempt += 1;
            match store
                .register_issuer_key(&self.certificates.key_id, &public_key)
                .await
            {
                Err(crate::store::Error::Unavailable(e)) if attempt < 10 => {
                    tracing::warn!(error = %e, attempt, "the database is busy; registering the signing key again shortly");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                other => break other.context("cannot register the certificate signing key")?,
            }
        };
        if !signs {
            tracing::warn!(
                key_id = %self.certificates.key_id,
                "the certificate signing key was retired by a newer one; this server verifies certificates but issues none until it is given the current key"
            );
        }
        let (audit, audit_writer) = AuditLog::start(store.clone(), self.audit.clone());
        let readiness = tokio::spawn(watch_readiness(
            store.clone(),
            audit.clone(),
            reporter.clone(),
        ));
        let scheduler = tokio::spawn(regrade_due(
            store.clone(),
            self.state.clock.clone(),
            self.regrade_every,
        ));

        let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
        // Without TCP_NODELAY a response split over several frames waits for the
        // client's delayed ACK: about 40 ms of nothing.
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let metrics = Metrics::default();
        let metrics_task = self.metrics_listener.map(|listener| {
            tokio::spawn(crate::metrics::serve(
                listener,
                metrics.clone(),
                store.clone(),
                audit.clone(),
                self.state.clock.clone(),
            ))
        });
        let shed = crate::overload::ShedTally::default();
        let shed_summaries = tokio::spawn(crate::overload::summarise_shed_calls(
            shed.clone(),
            audit.clone(),
            self.shed_summary_every,
        ));
        let last_shed_summary = (shed.clone(), audit.clone());
        let pace = self.body_pace;
        let serve = builder
            .layer(tower::util::MapRequestLayer::new(move |req| pace.pace(req)))
            .layer(StepLayer::new(Observe::new(metrics)))
            .layer(StepLayer::new(LoadShed::new(
                self.max_concurrent_calls,
                shed,
            )))
            .layer(StepLayer::new(Audit::new(audit)))
            .layer(StepLayer::new(crate::catch_panic::CatchPanic))
            .layer(StepLayer::new(
                Authenticate::new(store.clone(), self.default_rate).with_peers(self.peers),
            ))
            .layer(StepLayer::new(WriteQueue::new(
                store.write_slots(),
                self.max_queued_writes_per_agency,
            )))
            .layer(tower::util::MapResponseLayer::new(
                crate::api::codec::framing_errors as fn(HttpResponse) -> HttpResponse,
            ))
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                RegistryServiceServer::new(RegistryApi::new(self.state.clone()))
                    .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .add_service(
                RecordServiceServer::new(RecordApi::new(self.state.clone()))
                    .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .add_service(
                GradeServiceServer::new(GradeApi::new(self.state.clone()))
                    .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .add_service(
                VettingServiceServer::new(VettingApi::new(self.state.clone(), self.vetting))
                    .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .add_service(
                CertificateServiceServer::new(CertificateApi::new(
                    self.state.clone(),
                    self.certificates.clone(),
                ))
                .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .add_service(
                RepairServiceServer::new(RepairApi::new(
                    self.state.clone(),
                    self.repair,
                    self.calendar.clone(),
                ))
                .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .add_service(
                SpotCheckServiceServer::new(SpotCheckApi::new(
                    self.state.clone(),
                    self.spotcheck,
                    self.calendar,
                    self.certificates.public_rate,
                ))
                .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .add_service(
                AuditServiceServer::new(AuditApi::new(self.state.clone()))
                    .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(incoming, async {
                stopped.await.ok();
            });
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => {
                readiness.abort();
                scheduler.abort();
                shed_summaries.abort();
                if let Some(m) = &metrics_task {
                    m.abort();
                }
                return result.context("server failed");
            }
            () = shutdown => {}
        }

        tracing::info!("shutdown requested; reporting NOT_SERVING");
        // Awaited, so that a check already under way cannot report SERVING after the
        // NOT_SERVING below.
        readiness.abort();
        let _ = readiness.await;
        scheduler.abort();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(READINESS, ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(LIVENESS, ServingStatus::NotServing)
            .await;
        tokio::time::sleep(policy.announce).await;
        let _ = stop_accepting.send(());
        // Streams that would run until their client leaves (grade watches) end now,
        // telling the client to resume elsewhere, so the drain waits only for calls.
        let _ = self.draining.send(true);
        // So do health watches (they were just told NOT_SERVING): a status cleared
        // ends the streams that watch it. No new connection can ask any more.
        let mut reporter = reporter;
        for service in ["", READINESS, LIVENESS] {
            reporter.clear_service_status(service).await;
        }
        match tokio::time::timeout(policy.drain, serve).await {
            Ok(Ok(())) => tracing::info!("drained in-flight calls; exiting"),
            Ok(Err(e)) => tracing::warn!(error = %e, "server ended with an error while draining"),
            Err(_) => {
                tracing::warn!(bound = ?policy.drain, "drain bound reached; dropping remaining calls")
            }
        }
        // The metrics task holds an audit handle: let it go so the writer can end. The
        // calls refused since the last summary of them get theirs.
        if let Some(m) = metrics_task {
            m.abort();
            let _ = m.await;
        }
        shed_summaries.abort();
        let _ = shed_summaries.await;
        let (shed, audit) = last_shed_summary;
        crate::overload::write_shed_summary(&shed, &audit).await;
        drop(audit);
        audit_writer.finish(AUDIT_FINISH).await;
        if tokio::time::timeout(STORE_CLOSE, store.close())
            .await
            .is_err()
        {
            tracing::warn!(bound = ?STORE_CLOSE, "database connections still in use at exit");
        }
        Ok(())
    }
}

/// How long an exiting server waits for the audit writer's last group and checkpoint.
const AUDIT_FINISH: Duration = Duration::from_secs(5);

/// How long the readiness check waits for the database before calling it unready.
const READINESS_CHECK: Duration = Duration::from_secs(2);

/// How long an exiting server waits for the database pools to close (for connections
/// still held by calls dropped at the drain bound) before exiting regardless.
const STORE_CLOSE: Duration = Duration::from_secs(5);

/// Keeps the readiness service in step with the database and the audit writer: a
/// replica whose writer has stopped refuses every audited call, so traffic should go
/// to the others.
async fn watch_readiness(store: Store, audit: AuditLog, reporter: HealthReporter) {
    loop {
        // Bounded: a database that stopped answering (a black-holed primary) leaves a
        // query hanging until TCP gives up, and readiness must turn NOT_SERVING first.
        let ready = audit.running()
            && tokio::time::timeout(READINESS_CHECK, async {
                matches!(store.is_migrated().await, Ok(true)) && store.ping().await.is_ok()
            })
            .await
            .unwrap_or(false);
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status(READINESS, status).await;
        reporter.set_service_status("", status).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Regrades, at each interval, the subjects of records whose publicity window ended.
async fn regrade_due(store: Store, clock: Clock, interval: Duration) {
    loop {
        match store.regrade_due(clock.today()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "regraded after publicity windows ended"),
            Err(e) => tracing::warn!(error = ?e, "regrading ended publicity windows failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
