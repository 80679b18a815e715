//! Caller identity: a tower layer that resolves the bearer token of every call (except
//! health, reflection and the public certificate look-ups) to an [`Agency`] before any
//! handler runs, so no RPC can forget to authenticate. Scope checks happen in handlers
//! through [`caller`], before any resource is looked up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::{Request, Status};
use tower::Service;

use crate::api::error::status;
use crate::api::subjects::Subjects;
use crate::audit::AuditNote;
use crate::domain::agency::{Agency, Scope};
use crate::domain::ids::PersonKeyer;
use crate::middleware::{BoxFuture, HttpRequest, HttpResponse, Step};
use crate::peer::PeerPolicy;
use crate::quota::TokenBuckets;
use crate::store::Store;

/// The health and reflection methods this server serves: never shed nor paced, and
/// callable without a token. Matched whole: another path under `/grpc.health.` is
/// served nothing, and gets no such favour.
pub(crate) const HEALTH_AND_REFLECTION: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// gRPC methods callable without a token.
const PUBLIC_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/credithub.v1.CertificateService/VerifyCertificate",
    "/credithub.v1.CertificateService/ListIssuerKeys",
    "/credithub.v1.SpotCheckService/VerifyDraw",
    "/credithub.v1.SpotCheckService/ListPublishedResults",
];

/// The scope every non-public RPC needs, checked in the layer before any handler runs
/// (handlers check again through [`caller`]). An RPC missing here is refused, so a new
/// RPC cannot be served without a deliberate entry; a test walks the descriptor.
const METHOD_SCOPES: &[(&str, Scope)] = &[
    (
        "RegistryService/BatchUpsertEnterprises",
        Scope::RegistryWrite,
    ),
    ("RegistryService/GetEnterprise", Scope::RegistryRead),
    ("RegistryService/ListEnterprises", Scope::RegistryRead),
    ("RecordService/BatchSubmitRecords", Scope::RecordsWrite),
    ("RecordService/WithdrawRecord", Scope::RecordsWrite),
    ("RecordService/GetRecord", Scope::RecordsRead),
    ("RecordService/ListRecords", Scope::RecordsRead),
    ("RecordService/ListRecordRevisions", Scope::RecordsRead),
    ("GradeService/GetCreditGrade", Scope::GradesRead),
    ("GradeService/BatchGetCreditGrades", Scope::GradesRead),
    ("GradeService/ListGradeHistory", Scope::GradesRead),
    ("GradeService/WatchGradeChanges", Scope::GradesRead),
    ("GradeService/GetGradeDistribution", Scope::GradesRead),
    ("VettingService/CrossCheck", Scope::VettingRun),
    ("VettingService/GetVettingReport", Scope::VettingRun),
    ("VettingService/ListVettingReports", Scope::VettingRun),
    (
        "CertificateService/IssueCertificate",
        Scope::CertificatesIssue,
    ),
    (
        "CertificateService/GetCertificate",
        Scope::CertificatesIssue,
    ),
    (
        "CertificateService/ListCertificates",
        Scope::CertificatesIssue,
    ),
    (
        "CertificateService/RevokeCertificate",
        Scope::CertificatesRevoke,
    ),
    ("RepairService/CreditCheckup", Scope::RepairManage),
    ("RepairService/ApplyForRepair", Scope::RepairManage),
    ("RepairService/RecordCreditInterview", Scope::RepairManage),
    ("RepairService/DecideRepair", Scope::RepairManage),
    ("RepairService/GetRepairApplication", Scope::RepairManage),
    ("RepairService/ListRepairApplications", Scope::RepairManage),
    ("RepairService/ListRepairCandidates", Scope::RepairManage),
    (
        "SpotCheckService/BatchUpsertInspectors",
        Scope::SpotChecksManage,
    ),
    ("SpotCheckService/ListInspectors", Scope::SpotChecksManage),
    (
        "SpotCheckService/CreateSpotCheckPlan",
        Scope::SpotChecksManage,
    ),
    (
        "SpotCheckService/DrawSpotCheckPlan",
        Scope::SpotChecksManage,
    ),
    ("SpotCheckService/GetSpotCheckPlan", Scope::SpotChecksManage),
    ("SpotCheckService/MergePlans", Scope::SpotChecksManage),
    (
        "SpotCheckService/RecordSpotCheckResult",
        Scope::SpotChecksManage,
    ),
    ("AuditService/ListAuditEntries", Scope::AuditRead),
    ("AuditService/ExportAuditEntries", Scope::AuditRead),
];

/// The scope `path` (`/credithub.v1.Service/Method`) needs, if it is a known RPC.
pub fn required_scope(path: &str) -> Option<Scope> {
    let method = path.strip_prefix("/credithub.v1.")?;
    METHOD_SCOPES
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, s)| *s)
}

/// Whether `path` (`/package.Service/Method`) needs no token.
pub fn is_public(path: &str) -> bool {
    PUBLIC_METHODS.contains(&path)
}

/// Whether `path` is a method this service serves: one with a scope or a public one.
pub fn is_served(path: &str) -> bool {
    required_scope(path).is_some() || is_public(path)
}

/// How long a resolved token (or certificate) is trusted, or a refused one refused,
/// without asking the database again. A revoked token stops working, and a newly
/// registered certificate refused just before starts working, within this time on
/// every replica.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Agencies recently resolved, by token hash (never by the token itself), and tokens
/// recently found to name none: a partner retrying with a revoked token in a loop, or
/// a flood of bad tokens, is answered from memory instead of costing a database read
/// (and a pooled connection) each.
#[derive(Clone, Default)]
struct TokenCache(Arc<Mutex<CacheInner>>);

#[derive(Default)]
struct CacheInner {
    map: HashMap<String, Resolved>,
    /// When expired entries were last swept out of a full map.
    swept: Option<Instant>,
}

/// What a token or certificate named (None: no active agency), and when that was read.
type Resolved = (Option<Agency>, Instant);

/// Most entries the cache holds before it sweeps out expired ones; while it is still
/// full, refusals are not remembered (so a flood of distinct bad tokens cannot grow it
/// without end). Sweeps happen at most once a second, so a full cache costs a flood
/// no scan per call.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

impl TokenCache {
    /// `Some(agency)` or `Some(None)` (known to name no agency) while fresh; `None`
    /// when the database must be asked.
    fn get(&self, hash: &str) -> Option<Option<Agency>> {
        let inner = self.0.lock().expect("token cache lock");
        inner
            .map
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(a, _)| a.clone())
    }

    /// Remembers what a read begun at `asked` found. The entry is stamped with when the
    /// read began, and never replaces one from a later read: of two lookups racing a
    /// revocation, the one that began before it must not outlive the one after it.
    fn put(&self, hash: String, agency: Option<Agency>, asked: Instant) {
        let mut inner = self.0.lock().expect("token cache lock");
        if inner.map.get(&hash).is_some_and(|(_, at)| *at > asked) {
            return;
        }
        if inner.map.len() >= TOKEN_CACHE_ENTRIES {
            let now = Instant::now();
            if inner
                .swept
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
            {
                inner
                    .map
                    .retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
                inner.swept = Some(now);
            }
            if inner.map.len() >= TOKEN_CACHE_ENTRIES && agency.is_none() {
                return;
            }
        }
        inner.map.insert(hash, (agency, asked));
    }
}

/// Per-agency request rates: agencies never share a bucket.
#[derive(Clone, Default)]
struct Quotas {
    /// Requests per second for agencies without their own limit; None: unlimited.
    default_rate: Option<u32>,
    buckets: TokenBuckets<String>,
}

impl Quotas {
    /// Takes one request from `agency`'s bucket, or says how long until one is free.
    fn take(&self, agency: &Agency) -> Result<(), Duration> {
        match agency.rate_limit.or(self.default_rate).filter(|r| *r > 0) {
            Some(rate) => self.buckets.take(agency.id.clone(), rate),
            None => Ok(()),
        }
    }
}

/// RESOURCE_EXHAUSTED with when to retry and which quota was exceeded.
fn over_quota(agency: &Agency, retry: Duration) -> Status {
    let mut details = tonic_types::ErrorDetails::with_retry_info(Some(retry));
    details.add_quota_failure_violation(
        agency.resource_name(),
        "requests per second for this agency exceeded; retry after the given delay",
    );
    status(
        tonic::Code::ResourceExhausted,
        format!(
            "{} is over its request rate; retry in {} ms",
            agency.resource_name(),
            retry.as_millis().max(1)
        ),
        "RATE_LIMITED",
        details,
    )
}

/// The step (wrap it in a `StepLayer`); wraps every service on the server.
#[derive(Clone)]
pub struct Authenticate {
    store: Store,
    cache: TokenCache,
    quotas: Quotas,
    peers: Arc<PeerPolicy>,
}

impl Authenticate {
    /// Authenticates against the agencies in `store`; agencies without their own rate
    /// limit get `default_rate` requests per second (None: unlimited).
    pub fn new(store: Store, default_rate: Option<u32>) -> Self {
        Authenticate {
            store,
            cache: TokenCache::default(),
            quotas: Quotas {
                default_rate,
                ..Quotas::default()
            },
            peers: Arc::new(PeerPolicy::default()),
        }
    }

    /// Which gateways may forward their callers' client certificates.
    pub fn with_peers(mut self, peers: PeerPolicy) -> Self {
        self.peers = Arc::new(peers);
        self
    }
}

impl Step for Authenticate {
    fn call<S>(&self, mut inner: S, mut req: HttpRequest) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
    {
        let store = self.store.clone();
        let cache = self.cache.clone();
        let quotas = self.quotas.clone();
        let peers = self.peers.clone();
        Box::pin(async move {
            if is_public(req.uri().path()) {
                return inner.call(req).await;
            }
            let scoped = authenticate(&store, &cache, &peers, req.extensions(), req.headers())
                .await
                .and_then(|agency| {
                    if let Some(note) = req.extensions().get::<AuditNote>() {
                        note.agency(&agency.id);
                    }
                    // The path is the caller's text: not echoed, whatever it holds.
                    let scope = required_scope(req.uri().path()).ok_or_else(|| {
                        status(
                            tonic::Code::Unimplemented,
                            "no such method in this service's contract; list them with \
                             gRPC reflection",
                            "UNKNOWN_METHOD",
                            tonic_types::ErrorDetails::new(),
                        )
                    })?;
                    // Counted before the scope: a call refused for it costs its body's
                    // decoding (below), so it is held to the agency's rate like any.
                    quotas
                        .take(&agency)
                        .map_err(|retry| over_quota(&agency, retry))?;
                    Ok((
                        agency.clone(),
                        agency.require(scope).err().map(Status::from),
                    ))
                });
            match scoped {
                Ok((agency, None)) => {
                    req.extensions_mut().insert(agency);
                    inner.call(req).await
                }
                // Refused for its scope, the call still reaches its handler, which
                // notes whom the request names (see `caller`) and answers with this
                // refusal before reading anything. A body that does not decode never
                // reaches it: the refusal is answered regardless of what came back.
                Ok((agency, Some(refused))) => {
                    let path = req.uri().path().to_string();
                    let checked = Arc::new(AtomicBool::new(false));
                    req.extensions_mut().insert(agency);
                    req.extensions_mut().insert(ScopeRefusal {
                        refusal: refused.clone(),
                        checked: checked.clone(),
                    });
                    let answered = inner.call(req).await?;
                    let denied = answered
                        .headers()
                        .get("grpc-status")
                        .is_some_and(|s| s.as_bytes() == b"7");
                    // A body that decodes reaches the handler, whose first act must be
                    // `caller`; one that answered without asking is a defect to fix.
                    if !checked.load(Ordering::SeqCst) && answered_by_handler(&answered) {
                        SCOPE_UNCHECKED.fetch_add(1, Ordering::SeqCst);
                        tracing::error!(method = %path, "a handler answered a call refused for its scope without checking its caller");
                    }
                    Ok(if denied {
                        answered
                    } else {
                        refused.into_http()
                    })
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// A stream outlives its call's authentication: an agency revoked, stripped of the
/// stream's scope, or whose token was rotated must stop receiving it within the time a
/// new call would take to notice (the token cache's lifetime). Kept by the stream's
/// task and asked before each page it sends.
pub struct StreamAdmission {
    store: Store,
    /// The token the stream was opened with, if any (else a client certificate).
    token: Option<String>,
    agency: String,
    scope: Scope,
    /// When the agency was last read (successfully or not).
    checked: tokio::time::Instant,
    /// When it was last read successfully: a stream is never served much longer
    /// than that without a check.
    confirmed: tokio::time::Instant,
}

impl StreamAdmission {
    /// The admission of the stream `req` opens for `agency`, which needs `scope`.
    pub fn of<T>(req: &Request<T>, store: Store, agency: &Agency, scope: Scope) -> Self {
        StreamAdmission {
            store,
            token: req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .map(str::to_string),
            agency: agency.id.clone(),
            scope,
            checked: tokio::time::Instant::now(),
            confirmed: tokio::time::Instant::now(),
        }
    }

    /// None while the agency may still receive the stream (read again at most once
    /// per [`TOKEN_CACHE_TTL`]); else the status that ends it.
    pub async fn refused(&mut self) -> Option<Status> {
        if self.checked.elapsed() < TOKEN_CACHE_TTL {
            return None;
        }
        self.checked = tokio::time::Instant::now();
        let now = match &self.token {
            Some(t) => self
                .store
                .agency_by_token(t)
                .await
                .map(|a| a.filter(|a| a.id == self.agency)),
            None => self.store.active_agency(&self.agency).await,
        };
        match now {
            Ok(Some(a)) if a.scopes.contains(&self.scope) => {
                self.confirmed = self.checked;
                None
            }
            Ok(Some(_)) => Some(Status::from(crate::domain::Error::PermissionDenied(format!(
                "the agency no longer holds the {} scope; the stream ends",
                self.scope.code()
            )))),
            Ok(None) => Some(unauthenticated(
                "the token or agency this stream was opened with was revoked or replaced; the stream ends",
            )),
            // A database that could not answer once ends no stream (a check whose
            // results were sent would be lost): asked again at the next page. One
            // that cannot answer for three cache lifetimes ends it: a revocation
            // must not go unnoticed for long.
            Err(e) if self.confirmed.elapsed() < 3 * TOKEN_CACHE_TTL => {
                tracing::warn!(error = %e, "cannot re-check a stream's agency; trying again at the next page");
                self.checked = self.confirmed;
                None
            }
            Err(e) => Some(Status::from(e)),
        }
    }
}

pub(crate) fn unauthenticated(message: &str) -> Status {
    status(
        tonic::Code::Unauthenticated,
        message,
        "UNAUTHENTICATED",
        tonic_types::ErrorDetails::new(),
    )
}

/// The agency behind a call: by its client certificate (direct, or forwarded by a
/// trusted gateway), by its bearer token, or by both when they agree. A certificate
/// that names no agency is refused even alongside a good token, so a stolen token
/// cannot ride on someone else's connection.
async fn authenticate(
    store: &Store,
    cache: &TokenCache,
    peers: &PeerPolicy,
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
) -> Result<Agency, Status> {
    let by_certificate = match peers
        .presented(extensions, headers)
        .map_err(|e| unauthenticated(&e.to_string()))?
    {
        Some(names) => Some(agency_by_certificate(store, cache, &names).await?),
        None => None,
    };
    let by_token = match headers.get(http::header::AUTHORIZATION) {
        Some(value) => Some(agency_by_token(store, cache, value).await?),
        None => None,
    };
    match (by_certificate, by_token) {
        (Some(cert), Some(token)) if cert.id != token.id => Err(unauthenticated(
            "the client certificate and the bearer token belong to different agencies",
        )),
        (Some(agency), _) | (None, Some(agency)) => Ok(agency),
        (None, None) => Err(unauthenticated(
            "missing credentials: send metadata `authorization: Bearer <token>` or connect with a registered client certificate",
        )),
    }
}

/// The token of an `authorization: Bearer <token>` value; None for any other value.
pub fn bearer_token(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

async fn agency_by_token(
    store: &Store,
    cache: &TokenCache,
    value: &http::HeaderValue,
) -> Result<Agency, Status> {
    let token = value
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or_else(|| unauthenticated("authorization metadata must be `Bearer <token>`"))?;
    // A string that is no token this service issues costs neither a database read nor
    // a place in the token cache.
    if !crate::store::token_shaped(token) {
        return Err(unauthenticated("unknown or revoked token"));
    }
    let hash = crate::store::token_hash(token);
    let found = match cache.get(&hash) {
        Some(cached) => cached,
        None => {
            let asked = Instant::now();
            let found = store.agency_by_token(token).await?;
            cache.put(hash, found.clone(), asked);
            found
        }
    };
    found.ok_or_else(|| unauthenticated("unknown or revoked token"))
}

async fn agency_by_certificate(
    store: &Store,
    cache: &TokenCache,
    names: &[String],
) -> Result<Agency, Status> {
    // Certificate names share the token cache under a prefix no token hash can have.
    let key = format!("cert:{}", names.join("\n"));
    let found = match cache.get(&key) {
        Some(cached) => cached,
        None => {
            let asked = Instant::now();
            let found = store.agency_by_certificate(names).await?;
            cache.put(key, found.clone(), asked);
            found
        }
    };
    match found {
        Some(agency) => Ok(agency),
        None => {
            let mut shown: String = names[0].chars().take(100).collect();
            if names.len() > 1 {
                shown.push_str(&format!(" and {} other name(s)", names.len() - 1));
            }
            Err(unauthenticated(&format!(
                "the client certificate ({shown}) is not registered to an active agency"
            )))
        }
    }
}

/// A call from an agency without the scope its method needs: the refusal its handler
/// answers with once it has noted whom the request names, and whether it asked.
#[derive(Debug, Clone)]
pub struct ScopeRefusal {
    refusal: Status,
    checked: Arc<AtomicBool>,
}

/// Calls refused for their scope whose handler answered without calling [`caller`]
/// (always 0 unless a handler is wrong; the access test checks it).
static SCOPE_UNCHECKED: AtomicU64 = AtomicU64::new(0);

/// How many calls refused for their scope were answered by a handler that did not call
/// [`caller`] first, since the process started.
pub fn scope_unchecked_calls() -> u64 {
    SCOPE_UNCHECKED.load(Ordering::SeqCst)
}

/// Whether `answer` came from a handler: a response begun, or an error the service's
/// own error mapping made (it always carries ErrorInfo). Refusals of the body before
/// any handler ran (not protobuf, too large, too slow, an unknown encoding) do not.
fn answered_by_handler(answer: &HttpResponse) -> bool {
    use tonic_types::StatusExt;
    match answer.headers().get("grpc-status").map(|s| s.as_bytes()) {
        None | Some(b"0") => true,
        Some(_) => Status::from_header_map(answer.headers())
            .and_then(|s| s.get_details_error_info())
            .is_some_and(|info| {
                info.reason != crate::api::codec::MALFORMED_REQUEST
                    && info.reason != crate::pace::REQUEST_TOO_SLOW
            }),
    }
}

/// The authenticated agency of a call, after checking it holds `scope`. Refused for
/// its scope, the call's audit entry first notes the subjects the request names.
pub fn caller<T: Subjects>(
    req: &Request<T>,
    scope: Scope,
    keyer: &PersonKeyer,
) -> Result<Agency, Status> {
    if let Some(refused) = req.extensions().get::<ScopeRefusal>() {
        refused.checked.store(true, Ordering::SeqCst);
        if let Some(note) = req.extensions().get::<AuditNote>() {
            note.subjects(req.get_ref().subjects(keyer));
        }
        return Err(refused.refusal.clone());
    }
    let agency = req
        .extensions()
        .get::<Agency>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
    agency.require(scope)?;
    Ok(agency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_tokens_are_remembered_but_cannot_grow_the_cache_without_end() {
        let cache = TokenCache::default();
        assert!(cache.get("unknown").is_none(), "not yet asked");
        cache.put("unknown".into(), None, Instant::now());
        assert_eq!(cache.get("unknown"), Some(None), "known to name no agency");

        // A flood of distinct bad tokens fills it once; past that, refusals are not kept.
        for i in 0..TOKEN_CACHE_ENTRIES * 2 {
            cache.put(format!("bad-{i}"), None, Instant::now());
        }
        assert_eq!(cache.0.lock().unwrap().map.len(), TOKEN_CACHE_ENTRIES);
    }

    /// Two lookups race a revocation: the one begun after it finds nothing, the one
    /// begun before it still finds the agency, and returns last. The later read stands.
    #[test]
    fn a_read_begun_earlier_does_not_replace_a_later_one() {
        let cache = TokenCache::default();
        let before = Instant::now();
        let after = before + Duration::from_millis(1);
        cache.put("token".into(), None, after);
        let court = Agency {
            id: "court".into(),
            display_name: "法院".into(),
            kind: crate::domain::codes::AgencyKind::Court,
            scopes: Default::default(),
            rate_limit: None,
        };
        cache.put("token".into(), Some(court), before);
        assert_eq!(cache.get("token"), Some(None), "still revoked");
    }
}
