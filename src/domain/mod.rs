//! Pure domain logic: identifiers, records, enterprises, agencies, grading. No I/O, no
//! tonic, no sqlx, so every rule is testable on its own.

pub mod agency;
pub mod audit;
pub mod codes;
pub mod enterprise;
pub mod error;
pub mod grading;
pub mod ids;
pub mod record;
pub mod vetting;

pub use error::{Error, FieldViolation, PreconditionViolation, Violations};
