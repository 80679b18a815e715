//! gRPC services: each handler checks the caller's scope, parses the request into domain
//! values, calls the store, and converts back. Errors become statuses in `error`.

mod audit;
pub mod certificates;
pub mod codec;
pub mod convert;
pub mod error;
mod grades;
pub mod paging;
pub mod public;
mod records;
mod registry;
mod repair;
mod spotcheck;
mod streaming;
pub mod subjects;
mod vetting;

use std::sync::Arc;

use chrono::{FixedOffset, NaiveDate, Utc};
use prost::Message;

use crate::domain::agency::{Agency, PurposePolicy, Scope};
use crate::domain::codes::Purpose;
use crate::domain::ids::PersonKeyer;
use crate::domain::request_id::request_id_problem;
use crate::domain::Error;
use crate::store::{RequestKey, Store};

pub use audit::AuditApi;
pub use certificates::{CertificateApi, CertificateSettings};
pub use grades::GradeApi;
pub use records::RecordApi;
pub use registry::RegistryApi;
pub use repair::RepairApi;
pub use spotcheck::SpotCheckApi;
pub use vetting::VettingApi;

/// Most items a batch request may carry (AIP-231/233).
pub const MAX_BATCH: usize = 1_000;

/// What every service shares.
#[derive(Debug, Clone)]
pub struct State {
    pub store: Store,
    pub keyer: PersonKeyer,
    pub clock: Clock,
    /// Which purposes each kind of agency may declare.
    pub purposes: PurposePolicy,
    /// Which gateways are trusted to say who their callers are.
    pub peers: crate::peer::PeerPolicy,
    /// True once the server drains for shutdown: open streams then end, so the drain
    /// does not wait on them (a watch would never end on its own).
    pub draining: tokio::sync::watch::Receiver<bool>,
}

impl State {
    /// Whether a call made for `purpose` shows `agency` grades: it needs the grades scope
    /// and a kind of agency that may declare the purpose, as a grade look-up would.
    /// Calls that show grades on the side (a repair checkup, a spot-check plan) answer
    /// without them otherwise.
    pub fn shows_grades(&self, agency: &Agency, purpose: Purpose) -> bool {
        agency.scopes.contains(&Scope::GradesRead)
            && self.purposes.permit(agency.kind, purpose).is_ok()
    }
}

/// The service's calendar: China Standard Time, shiftable by whole days so tests can
/// watch publicity windows end without waiting for them.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_days: Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    /// Today's date on this clock.
    pub fn today(&self) -> NaiveDate {
        let offset = self.offset_days.load(std::sync::atomic::Ordering::Relaxed);
        today() + chrono::Duration::days(offset)
    }

    /// Moves this clock (and every holder of a clone) forward by `days`.
    pub fn advance_days(&self, days: i64) {
        self.offset_days
            .fetch_add(days, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Shared state handle.
pub type Shared = Arc<State>;

/// Today's date in China Standard Time, the calendar every publicity window is kept in.
pub fn today() -> NaiveDate {
    let cst = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    Utc::now().with_timezone(&cst).date_naive()
}

/// The China Standard Time date of an instant in milliseconds since the Unix epoch.
pub fn china_date(millis: i64) -> Option<NaiveDate> {
    let cst = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    chrono::DateTime::from_timestamp_millis(millis).map(|t| t.with_timezone(&cst).date_naive())
}

/// Checks a batch's size: at least one item, at most [`MAX_BATCH`].
pub fn batch_size(field: &str, len: usize) -> Result<(), Error> {
    match len {
        0 => Err(Error::invalid(field, "must hold at least one item")),
        n if n > MAX_BATCH => Err(Error::invalid(
            field,
            format!("holds {n} items; at most {MAX_BATCH} per call"),
        )),
        _ => Ok(()),
    }
}

/// The idempotency key of a write that carries a `request_id`, if it does.
pub fn request_key<M: Message>(
    state: &State,
    agency_id: &str,
    method: &'static str,
    request_id: &str,
    request: &M,
) -> Result<Option<RequestKey>, Error> {
    if request_id.is_empty() {
        return Ok(None);
    }
    if let Some(problem) = request_id_problem(request_id) {
        return Err(Error::invalid("request_id", problem));
    }
    Ok(Some(RequestKey {
        agency_id: agency_id.to_string(),
        method,
        request_id: request_id.to_string(),
        request_digest: state.keyer.digest(&request.encode_to_vec()),
    }))
}

/// Decodes a stored response of a replayed request.
pub fn replayed<M: Message + Default>(bytes: &[u8]) -> Result<M, tonic::Status> {
    M::decode(bytes).map_err(|e| {
        tracing::error!(error = %e, "stored response does not decode");
        tonic::Status::internal("stored response is unreadable")
    })
}
