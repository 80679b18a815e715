//! Overload. Load shedding: at most a fixed number of calls are handled at once across all
//! connections; beyond that a new call is refused at once with RESOURCE_EXHAUSTED and
//! RetryInfo (DESIGN.md §3: the server's capacity is the exhausted resource; UNAVAILABLE
//! means the database is down) rather than queueing until every caller's deadline has passed. Health and
//! reflection are never shed, so probes keep seeing the truth under load. (A call
//! counts until its response starts; an open stream does not hold a place.)
//!
//! And a queue for writes: a burst of writes waits here, holding no database
//! connection, for one of the store's write slots, instead of exhausting the pool and
//! failing after its short acquire timeout (which is there to fail fast while the
//! database is away, not under load).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::Service;

use crate::api::error::status;
use crate::middleware::{BoxFuture, HttpResponse, Step};

/// Default limit of calls handled at once.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 1_024;

/// Paths never shed.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// The step (wrap it in a `StepLayer`); wraps every service.
#[derive(Clone)]
pub struct LoadShed {
    permits: Arc<Semaphore>,
}

impl LoadShed {
    /// Handles at most `max` calls at once.
    pub fn new(max: usize) -> Self {
        LoadShed {
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl Step for LoadShed {
    fn call<S, B>(&self, mut inner: S, req: http::Request<B>) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<http::Request<B>, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        if exempt(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
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

/// The step (wrap it in a `StepLayer`) that queues writes for the store's write slots;
/// inside authentication (refused callers never queue) and inside the audit layer
/// (whose deadline ends the wait).
#[derive(Clone)]
pub struct WriteQueue {
    slots: Arc<Semaphore>,
}

impl WriteQueue {
    /// At most `slots` writes at once.
    pub fn new(slots: usize) -> Self {
        WriteQueue {
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }
}

impl Step for WriteQueue {
    fn call<S, B>(&self, mut inner: S, req: http::Request<B>) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<http::Request<B>, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        if !WRITE_METHODS.contains(&req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let slots = self.slots.clone();
        Box::pin(async move {
            let Ok(Ok(slot)) = tokio::time::timeout(MAX_WRITE_WAIT, slots.acquire_owned()).await
            else {
                return Ok(status(
                    tonic::Code::ResourceExhausted,
                    "too many writes are waiting; retry shortly with the same request_id",
                    "OVERLOADED",
                    tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                )
                .into_http());
            };
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
