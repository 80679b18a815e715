//! The one mapping from domain and storage errors to gRPC statuses (AIP-193), with
//! `ErrorInfo` and the details a caller needs. Internal causes are logged, never sent.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain;
use crate::store;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "credithub";

/// Longest status message sent; error texts may quote input, and a 100,000-character
/// field quoted back would not fit in the response's headers.
const MAX_MESSAGE_CHARS: usize = 1_000;
/// Longest violation description sent.
const MAX_DESCRIPTION_CHARS: usize = 300;
/// Most field violations listed; the rest are counted in one more.
const MAX_VIOLATIONS: usize = 100;

/// `text` cut to `max` characters, marked when cut.
fn bounded(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A status with `ErrorInfo { reason, domain: "credithub" }` and further details.
pub fn status(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    mut details: ErrorDetails,
) -> Status {
    details.set_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new());
    Status::with_error_details(code, bounded(message.into(), MAX_MESSAGE_CHARS), details)
}

impl From<domain::Error> for Status {
    fn from(e: domain::Error) -> Self {
        let message = e.to_string();
        match e {
            domain::Error::InvalidArgument(violations) => {
                let mut d = ErrorDetails::new();
                let more = violations.len().saturating_sub(MAX_VIOLATIONS);
                for v in violations.into_iter().take(MAX_VIOLATIONS) {
                    d.add_bad_request_violation(
                        bounded(v.field, MAX_DESCRIPTION_CHARS),
                        bounded(v.description, MAX_DESCRIPTION_CHARS),
                    );
                }
                if more > 0 {
                    d.add_bad_request_violation(
                        "request",
                        format!("{more} more violations not listed; fix these and resubmit"),
                    );
                }
                status(Code::InvalidArgument, message, "INVALID_FIELD", d)
            }
            domain::Error::NotFound(_) => {
                status(Code::NotFound, message, "NOT_FOUND", ErrorDetails::new())
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
                let mut d = ErrorDetails::new();
                for v in violations {
                    d.add_precondition_failure_violation(v.kind, v.subject, v.description);
                }
                status(Code::FailedPrecondition, message, "PRECONDITION_FAILED", d)
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
