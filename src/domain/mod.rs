//! Pure domain logic: identifiers, records, enterprises, agencies, grading, vetting and
//! certificates. No I/O, no tonic, no sqlx, so every rule is testable on its own.

pub mod agency;
pub mod audit;
pub mod certificate;
pub mod codes;
pub mod data_integrity;
pub mod enterprise;
pub mod error;
pub mod grading;
pub mod id_scan;
pub mod ids;
pub mod jcs;
pub mod record;

pub mod repair;
pub mod request_id;
pub mod spotcheck;
pub mod vetting;

pub use error::{Error, FieldViolation, PreconditionViolation, Violations};
