//! The one mapping from domain and storage errors to gRPC statuses (AIP-193), with
//! `ErrorInfo` and the details a caller needs. Internal causes are logged, never sent.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain;
use crate::domain::id_scan::{contains_id_number_loosely, mask_id_numbers_loosely};
use crate::store;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "credithub";

/// Longest status message sent, in bytes. Error texts may quote input, and the message
/// travels twice in the trailers (as `grpc-message`, percent-encoded, and inside
/// `grpc-status-details-bin`): HTTP/2 clients drop trailers past 16 KiB by default
/// (hyper's and grpc-go's limit, grpcio's is lower), and the caller would then see a
/// reset stream instead of the error.
const MAX_MESSAGE_BYTES: usize = 600;
/// Longest field path or description sent, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 300;
/// Bytes of violations (fields and descriptions) one error carries; the rest are counted
/// in one more. With the message this keeps the trailers under ~8 KiB.
const DETAILS_BUDGET: usize = 3_000;

/// `text` with any ID number in it masked (an error may quote what the caller sent, and
/// no response carries a full ID number), its groups also joined by dashes, dots or
/// slashes (masking a document number that reads as one costs an error message
/// little), cut to at most `max` bytes at a character boundary, marked when cut.
fn bounded(text: String, max: usize) -> String {
    let text = if contains_id_number_loosely(&text) {
        mask_id_numbers_loosely(&text)
    } else {
        text
    };
    if text.len() <= max {
        return text;
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Violations as `(subject, description)` pairs within [`DETAILS_BUDGET`]; those past it
/// are counted (with those the domain had counted already) in a last pair.
fn within_budget<T>(
    items: Vec<T>,
    mut parts: impl FnMut(T) -> (String, String),
    stands_for: impl Fn(&T) -> usize,
) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut used = 0;
    let mut omitted = 0;
    for item in items {
        if used >= DETAILS_BUDGET {
            omitted += stands_for(&item);
            continue;
        }
        let (a, b) = parts(item);
        let (a, b) = (
            bounded(a, MAX_DESCRIPTION_BYTES),
            bounded(b, MAX_DESCRIPTION_BYTES),
        );
        used += a.len() + b.len();
        kept.push((a, b));
    }
    if omitted > 0 {
        let summary = domain::FieldViolation::unlisted(omitted);
        kept.push((summary.field, summary.description));
    }
    kept
}

/// A status with `ErrorInfo { reason, domain: "credithub" }` and further details.
pub fn status(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    mut details: ErrorDetails,
) -> Status {
    details.set_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new());
    Status::with_error_details(code, bounded(message.into(), MAX_MESSAGE_BYTES), details)
}

impl From<domain::Error> for Status {
    fn from(e: domain::Error) -> Self {
        let message = e.to_string();
        match e {
            domain::Error::InvalidArgument(violations) => {
                let mut d = ErrorDetails::new();
                let listed = within_budget(
                    violations,
                    |v| (v.field, v.description),
                    domain::FieldViolation::stands_for,
                );
                for (field, description) in listed {
                    d.add_bad_request_violation(field, description);
                }
                status(Code::InvalidArgument, message, "INVALID_FIELD", d)
            }
            domain::Error::NotFound(name) => {
                // ResourceInfo names what was missing, so a client working through a
                // list (say, a batch of grade look-ups) can tell which item it was.
                let name = bounded(name, MAX_DESCRIPTION_BYTES);
                let kind = name.split('/').next().unwrap_or_default().to_string();
                let mut d = ErrorDetails::new();
                d.set_resource_info(kind, name, "", "not found");
                status(Code::NotFound, message, "NOT_FOUND", d)
            }
            domain::Error::PermissionDenied(_) => status(
                Code::PermissionDenied,
                message,
                "PERMISSION_DENIED",
                ErrorDetails::new(),
            ),
            domain::Error::PurposeNotPermitted(_) => status(
                Code::PermissionDenied,
                message,
                "PURPOSE_NOT_PERMITTED",
                ErrorDetails::new(),
            ),
            domain::Error::FailedPrecondition(violations) => {
                // The reason a client switches on: the condition itself when there is
                // one kind (`NOT_GRADED`, `ALREADY_REVOKED`), else the generic one.
                let reason = match violations.first() {
                    Some(first) if violations.iter().all(|v| v.kind == first.kind) => {
                        first.kind.clone()
                    }
                    _ => "PRECONDITION_FAILED".to_string(),
                };
                let mut d = ErrorDetails::new();
                let mut kinds = Vec::new();
                let listed = within_budget(
                    violations,
                    |v| {
                        kinds.push(v.kind);
                        (v.subject, v.description)
                    },
                    |_| 1,
                );
                let mut kinds = kinds.into_iter();
                for (subject, description) in listed {
                    // The count of those left out is about the request as a whole.
                    let kind = kinds.next().unwrap_or_else(|| "MORE_NOT_LISTED".into());
                    d.add_precondition_failure_violation(kind, subject, description);
                }
                status(Code::FailedPrecondition, message, &reason, d)
            }
            domain::Error::AlreadyExists(_) => status(
                Code::AlreadyExists,
                message,
                "ALREADY_EXISTS",
                ErrorDetails::new(),
            ),
        }
    }
}

impl From<store::Error> for Status {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Domain(d) => d.into(),
            store::Error::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                status(
                    Code::Unavailable,
                    "the credit database is unavailable; retry shortly",
                    "DATABASE_UNAVAILABLE",
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                )
            }
            store::Error::Corrupt(what) => {
                tracing::error!(%what, "stored data is damaged");
                status(
                    Code::DataLoss,
                    "stored data is damaged and cannot be read; the error is logged for the operator",
                    "STORED_DATA_DAMAGED",
                    ErrorDetails::new(),
                )
            }
            other => {
                tracing::error!(error = ?other, "storage failure");
                status(
                    Code::Internal,
                    "internal storage error",
                    "STORAGE_FAILURE",
                    ErrorDetails::new(),
                )
            }
        }
    }
}
