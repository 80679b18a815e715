//! The domain's error: what a caller did wrong, independent of transport.

use std::fmt;

/// One thing wrong with one field of a request, e.g. `records[3].subject.enterprise`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, in proto field names with `[i]` for list items.
    pub field: String,
    /// The rule the value broke, in words the caller can act on.
    pub description: String,
}

/// One unmet condition for an operation that is otherwise well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// A stable machine code, e.g. `ANNUAL_REPORTS_NOT_FILED`.
    pub kind: String,
    /// What the condition is about, e.g. `enterprises/914403001922038216`.
    pub subject: String,
    /// The condition in words an officer can act on.
    pub description: String,
}

/// Collects field violations so one response names every bad field at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

/// Values checked one by one into `Option`s (see [`Violations::finish_all`]).
pub trait Checked {
    /// The values themselves.
    type Values;
    /// Every value, or `None` if any is missing.
    fn all(self) -> Option<Self::Values>;
}

macro_rules! checked_tuple {
    ($($value:ident),+) => {
        impl<$($value),+> Checked for ($(Option<$value>,)+) {
            type Values = ($($value,)+);
            #[allow(non_snake_case)]
            fn all(self) -> Option<Self::Values> {
                let ($($value,)+) = self;
                Some(($($value?,)+))
            }
        }
    };
}

checked_tuple!(A, B, C);
checked_tuple!(A, B, C, D);
checked_tuple!(A, B, C, D, E);

impl Violations {
    /// Records that `field` broke a rule.
    pub fn add(&mut self, field: impl Into<String>, description: impl fmt::Display) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.to_string(),
        });
    }

    /// The value of `result`, or `None` after recording its field violations (any other
    /// error is recorded against `request`), so a handler can check every field before
    /// answering.
    pub fn check<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Error::InvalidArgument(found)) => {
                self.0.extend(found);
                None
            }
            Err(other) => {
                self.add("request", other);
                None
            }
        }
    }

    /// Whether nothing was wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` if nothing was wrong, otherwise the collected violations.
    pub fn finish<T>(self, value: T) -> Result<T, Error> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    /// The values a handler checked field by field (a tuple of what [`Violations::check`]
    /// returned) if nothing was wrong, otherwise the collected violations. A value
    /// missing although no violation was recorded is reported against `request`, never
    /// passed on.
    pub fn finish_all<C: Checked>(mut self, checked: C) -> Result<C::Values, Error> {
        match checked.all() {
            Some(values) if self.0.is_empty() => Ok(values),
            missing => {
                if missing.is_none() && self.0.is_empty() {
                    self.add("request", "is incomplete");
                }
                Err(Error::InvalidArgument(self.0))
            }
        }
    }
}

/// A request the domain refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("purpose not permitted: {0}")]
    PurposeNotPermitted(String),
    #[error("failed precondition: {}", .0.iter().map(|v| v.description.as_str()).collect::<Vec<_>>().join("; "))]
    FailedPrecondition(Vec<PreconditionViolation>),
    #[error("already exists: {0}")]
    AlreadyExists(String),
}

impl Error {
    /// A single-field invalid-argument error.
    pub fn invalid(field: impl Into<String>, description: impl fmt::Display) -> Self {
        let mut v = Violations::default();
        v.add(field, description);
        Error::InvalidArgument(v.0)
    }
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishing_checked_values_passes_them_on_only_when_nothing_was_wrong() {
        let v = Violations::default();
        assert_eq!(
            v.finish_all((Some(1), Some("a"), Some(2.5))),
            Ok((1, "a", 2.5))
        );

        let mut v = Violations::default();
        let n = v.check::<i32>(Err(Error::invalid("n", "must be positive")));
        let err = v.finish_all((n, Some("a"), Some(2.5))).unwrap_err();
        assert_eq!(err, Error::invalid("n", "must be positive"));

        // A checker that lost a value without saying why is not trusted.
        let err = Violations::default()
            .finish_all((Some(1), None::<&str>, Some(2.5)))
            .unwrap_err();
        assert_eq!(err, Error::invalid("request", "is incomplete"));
    }
}
