//! Overload. Load shedding: at most a fixed number of calls are handled at once across all
//! connections; beyond that a new call is refused at once with RESOURCE_EXHAUSTED and
//! RetryInfo (DESIGN.md §3: the server's capacity is the exhausted resource; UNAVAILABLE
//! means the database is down) rather than queueing until every caller's deadline has passed. Health and
//! reflection are never shed, so probes keep seeing the truth under load. (A call
//! counts until its response starts; an open stream does not hold a place.) Shed calls
//! are counted and summarised in the audit log, one entry per method and interval.
//!
//! And a queue for writes: a burst of writes waits here, holding no database
//! connection, for one of the store's write slots, instead of exhausting the pool and
//! failing after its short acquire timeout (which is there to fail fast while the
//! database is away, not under load).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::Service;

use crate::api::error::status;
use crate::audit::UNKNOWN_METHOD;
use crate::domain::audit::AuditEvent;
use crate::middleware::{BoxFuture, HttpRequest, HttpResponse, Step};

/// Default limit of calls handled at once.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 1_024;

/// Paths never shed: the served health and reflection methods, matched whole.
pub(crate) fn exempt(path: &str) -> bool {
    crate::auth::HEALTH_AND_REFLECTION.contains(&path)
}

/// The step (wrap it in a `StepLayer`); wraps every service.
#[derive(Clone)]
pub struct LoadShed {
    permits: Arc<Semaphore>,
    shed: ShedTally,
}

impl LoadShed {
    /// Handles at most `max` calls at once, counting the calls it refuses in `shed`.
    pub fn new(max: usize, shed: ShedTally) -> Self {
        LoadShed {
            permits: Arc::new(Semaphore::new(max.max(1))),
            shed,
        }
    }
}

/// The calls refused for overload since the last look, by method. A shed call gets no
/// entry of its own in the audit log (writing one per refusal would feed the overload),
/// but it is accounted for: the server appends one summary entry per method and
/// interval from this tally (see [`ShedTally::take`]).
#[derive(Clone, Default)]
pub struct ShedTally(Arc<std::sync::Mutex<BTreeMap<String, i64>>>);

impl ShedTally {
    /// Counts one refused call to `path`; a path the service does not serve is counted
    /// under [`UNKNOWN_METHOD`], so no caller chooses what the log says.
    fn count(&self, path: &str) {
        let method = if crate::auth::is_served(path) {
            path
        } else {
            UNKNOWN_METHOD
        };
        if let Ok(mut tally) = self.0.lock() {
            *tally.entry(method.to_string()).or_default() += 1;
        }
    }

    /// The calls refused since the last take, by method, and a fresh count.
    pub fn take(&self) -> BTreeMap<String, i64> {
        self.0
            .lock()
            .map(|mut tally| std::mem::take(&mut *tally))
            .unwrap_or_default()
    }
}

/// How often the calls refused for overload are summarised in the audit log.
pub const SHED_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The `request_id` of a summary entry of refused calls, whose `result_count` is how
/// many calls to its method were refused since the previous one.
pub const SHED_SUMMARY_ID: &str = "load-shed-summary";

/// Appends, every `every`, the summary entries of the calls refused for overload (see
/// [`write_shed_summary`]). Runs until aborted; the server then writes a last summary.
pub async fn summarise_shed_calls(
    tally: ShedTally,
    audit: crate::audit::AuditLog,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        write_shed_summary(&tally, &audit).await;
    }
}

/// Appends one entry per method whose calls were refused for overload since the last
/// summary: outcome RESOURCE_EXHAUSTED, `request_id` [`SHED_SUMMARY_ID`], the refused
/// calls as `result_count`. A summary that cannot be written is logged and its count
/// kept for the next.
pub async fn write_shed_summary(tally: &ShedTally, audit: &crate::audit::AuditLog) {
    for (method, refused) in tally.take() {
        let event = AuditEvent {
            time: crate::store::now_millis(),
            agency: String::new(),
            method: method.clone(),
            request_id: SHED_SUMMARY_ID.to_string(),
            subjects: Vec::new(),
            purpose: None,
            case_reference: String::new(),
            outcome: "RESOURCE_EXHAUSTED".to_string(),
            result_count: refused,
        };
        if let Err(e) = audit.record(event).await {
            tracing::warn!(%method, refused, error = %e.message(), "cannot write the load-shed summary; kept for the next");
            if let Ok(mut t) = tally.0.lock() {
                *t.entry(method).or_default() += refused;
            }
        }
    }
}

impl Step for LoadShed {
    fn call<S>(&self, mut inner: S, req: HttpRequest) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
    {
        if exempt(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.shed.count(req.uri().path());
            let refusal = status(
                tonic::Code::ResourceExhausted,
                "the service is at capacity; retry shortly",
                "OVERLOADED",
                tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(200))),
            );
            return Box::pin(async move { Ok(refusal.into_http()) });
        };
        Box::pin(async move {
            let response = inner.call(req).await;
            drop(permit);
            response
        })
    }
}

/// Methods that write in a database transaction, which wait for a write slot.
pub const WRITE_METHODS: &[&str] = &[
    "/credithub.v1.RegistryService/BatchUpsertEnterprises",
    "/credithub.v1.RecordService/BatchSubmitRecords",
    "/credithub.v1.RecordService/WithdrawRecord",
    "/credithub.v1.CertificateService/IssueCertificate",
    "/credithub.v1.CertificateService/RevokeCertificate",
    "/credithub.v1.RepairService/ApplyForRepair",
    "/credithub.v1.RepairService/RecordCreditInterview",
    "/credithub.v1.RepairService/DecideRepair",
    "/credithub.v1.SpotCheckService/BatchUpsertInspectors",
    "/credithub.v1.SpotCheckService/CreateSpotCheckPlan",
    "/credithub.v1.SpotCheckService/DrawSpotCheckPlan",
    "/credithub.v1.SpotCheckService/MergePlans",
    "/credithub.v1.SpotCheckService/RecordSpotCheckResult",
];

/// Longest a write waits for a slot when its caller set no deadline (a deadline
/// ends the wait sooner, as DEADLINE_EXCEEDED).
pub const MAX_WRITE_WAIT: Duration = Duration::from_secs(30);

/// Default most writes of one agency arriving or waiting for a slot at once.
pub const DEFAULT_MAX_QUEUED_WRITES_PER_AGENCY: usize = 64;

/// The step (wrap it in a `StepLayer`) that queues writes for the store's write slots;
/// inside authentication (refused callers never queue) and inside the audit layer
/// (whose deadline ends the wait). A write's request body is read whole before it
/// waits for a slot: SQLite has one, and a partner uploading a large batch slowly (as
/// slowly as the body pace allows, minutes for the largest) must not hold every other
/// partner's writes back meanwhile. Each arriving or waiting write holds one of the
/// calls the load shedder admits, and its body in memory, so one agency may have only
/// so many at once: beyond that its writes are refused at once, and a burst of one
/// partner's batches cannot crowd the others' calls out.
#[derive(Clone)]
pub struct WriteQueue {
    slots: Arc<Semaphore>,
    per_agency: usize,
    waiting: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
}

impl WriteQueue {
    /// At most `slots` writes at once, and `per_agency` of one agency arriving or
    /// waiting.
    pub fn new(slots: usize, per_agency: usize) -> Self {
        WriteQueue {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            per_agency: per_agency.max(1),
            waiting: Arc::default(),
        }
    }

    /// Counts a write of `agency` as waiting, unless `per_agency` already are: then
    /// None. The count drops with the returned place.
    fn wait_place(&self, agency: &str) -> Option<WaitPlace> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let n = waiting.entry(agency.to_string()).or_default();
        if *n >= self.per_agency {
            return None;
        }
        *n += 1;
        Some(WaitPlace {
            waiting: self.waiting.clone(),
            agency: agency.to_string(),
        })
    }
}

/// A write's place among its agency's waiting writes.
struct WaitPlace {
    waiting: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    agency: String,
}

impl Drop for WaitPlace {
    fn drop(&mut self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waiting.get_mut(&self.agency) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(&self.agency);
            }
        }
    }
}

/// RESOURCE_EXHAUSTED (OVERLOADED) for a write that cannot wait for a slot.
fn writes_overloaded(message: &str) -> HttpResponse {
    status(
        tonic::Code::ResourceExhausted,
        message,
        "OVERLOADED",
        tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    )
    .into_http()
}

/// The request with its body read to the end and held in memory, or the status the
/// body was refused with on the way (the body pace's, or the peer's reset).
async fn read_whole(req: HttpRequest) -> Result<HttpRequest, tonic::Status> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(http::Request::from_parts(
        parts,
        tonic::body::Body::new(http_body_util::Full::new(bytes)),
    ))
}

impl Step for WriteQueue {
    fn call<S>(&self, mut inner: S, req: HttpRequest) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
    {
        // A call refused for its scope writes nothing: it takes no slot.
        if !WRITE_METHODS.contains(&req.uri().path())
            || req
                .extensions()
                .get::<crate::auth::ScopeRefusal>()
                .is_some()
        {
            return Box::pin(inner.call(req));
        }
        let agency = req
            .extensions()
            .get::<crate::domain::agency::Agency>()
            .map_or_else(String::new, |a| a.id.clone());
        let Some(place) = self.wait_place(&agency) else {
            let refusal = writes_overloaded(&format!(
                "{} of this agency's writes are already arriving or waiting for the \
                 database; retry shortly with the same request_id",
                self.per_agency
            ));
            return Box::pin(async move { Ok(refusal) });
        };
        let slots = self.slots.clone();
        Box::pin(async move {
            let req = match read_whole(req).await {
                Ok(req) => req,
                Err(refusal) => return Ok(refusal.into_http()),
            };
            let Ok(Ok(slot)) = tokio::time::timeout(MAX_WRITE_WAIT, slots.acquire_owned()).await
            else {
                return Ok(writes_overloaded(
                    "too many writes are waiting; retry shortly with the same request_id",
                ));
            };
            drop(place);
            let response = inner.call(req).await;
            drop(slot);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queued_write_is_a_method_the_service_has() {
        for path in WRITE_METHODS {
            assert!(crate::auth::is_served(path), "{path}");
            assert!(!crate::auth::is_public(path), "{path}");
        }
    }
}
