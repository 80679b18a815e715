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

impl FieldViolation {
    /// The violation that stands for `count` more not listed.
    pub fn unlisted(count: usize) -> Self {
        FieldViolation {
            field: "request".into(),
            description: format!("{count} more violations not listed{UNLISTED_TAIL}"),
        }
    }

    /// How many violations this one stands for: more than one only for
    /// [`FieldViolation::unlisted`].
    pub fn stands_for(&self) -> usize {
        self.description
            .strip_suffix(UNLISTED_TAIL)
            .and_then(|d| d.strip_suffix(" more violations not listed"))
            .filter(|_| self.field == "request")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
}

const UNLISTED_TAIL: &str = "; fix these and resubmit";

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

/// Collects field violations so one response names every bad field at once, up to
/// [`MAX_LISTED`]: past that they are counted, not kept, so a request holding millions of
/// bad items costs no more memory than one holding a hundred.
#[derive(Debug, Default)]
pub struct Violations {
    listed: Vec<FieldViolation>,
    unlisted: usize,
}

/// Most field violations one error lists; the rest are summed up in one more.
pub const MAX_LISTED: usize = 100;

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
        if self.listed.len() < MAX_LISTED {
            self.listed.push(FieldViolation {
                field: field.into(),
                description: description.to_string(),
            });
        } else {
            self.unlisted += 1;
        }
    }

    fn extend(&mut self, found: Vec<FieldViolation>) {
        for f in found {
            if self.listed.len() < MAX_LISTED {
                self.listed.push(f);
            } else {
                self.unlisted += 1;
            }
        }
    }

    /// The listed violations, and one more that counts those past [`MAX_LISTED`].
    fn into_list(mut self) -> Vec<FieldViolation> {
        if self.unlisted > 0 {
            self.listed.push(FieldViolation::unlisted(self.unlisted));
        }
        self.listed
    }

    /// The value of `result`, or `None` after recording its field violations (any other
    /// error is recorded against `request`), so a handler can check every field before
    /// answering.
    pub fn check<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Error::InvalidArgument(found)) => {
                self.extend(found);
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
        self.listed.is_empty()
    }

    /// `Ok(value)` if nothing was wrong, otherwise the collected violations.
    pub fn finish<T>(self, value: T) -> Result<T, Error> {
        if self.listed.is_empty() {
            Ok(value)
        } else {
            Err(Error::InvalidArgument(self.into_list()))
        }
    }

    /// The values a handler checked field by field (a tuple of what [`Violations::check`]
    /// returned) if nothing was wrong, otherwise the collected violations. A value
    /// missing although no violation was recorded is reported against `request`, never
    /// passed on.
    pub fn finish_all<C: Checked>(mut self, checked: C) -> Result<C::Values, Error> {
        match checked.all() {
            Some(values) if self.listed.is_empty() => Ok(values),
            missing => {
                if missing.is_none() && self.listed.is_empty() {
                    self.add("request", "is incomplete");
                }
                Err(Error::InvalidArgument(self.into_list()))
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
    #[error("failed precondition: {}", joined(.0.iter().map(|v| v.description.clone())))]
    FailedPrecondition(Vec<PreconditionViolation>),
    #[error("already exists: {0}")]
    AlreadyExists(String),
}

impl Error {
    /// A single-field invalid-argument error.
    pub fn invalid(field: impl Into<String>, description: impl fmt::Display) -> Self {
        let mut v = Violations::default();
        v.add(field, description);
        Error::InvalidArgument(v.into_list())
    }
}

fn describe(violations: &[FieldViolation]) -> String {
    joined(
        violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description)),
    )
}

/// Most items an error's message spells out; its details list the rest.
const MESSAGE_ITEMS: usize = 10;

/// The first [`MESSAGE_ITEMS`] of `items` joined, and how many more there are.
fn joined(items: impl ExactSizeIterator<Item = String>) -> String {
    let more = items.len().saturating_sub(MESSAGE_ITEMS);
    let mut text = items.take(MESSAGE_ITEMS).collect::<Vec<_>>().join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
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

    #[test]
    fn violations_past_the_listed_bound_are_counted_not_kept() {
        let mut v = Violations::default();
        for i in 0..MAX_LISTED + 250 {
            v.add(format!("xs[{i}]"), "is required");
        }
        let Err(Error::InvalidArgument(found)) = v.finish(()) else {
            panic!("refused")
        };
        assert_eq!(found.len(), MAX_LISTED + 1);
        let last = found.last().expect("summary");
        assert_eq!(last.stands_for(), 250);
        assert_eq!(found[0].stands_for(), 1);
        let message = Error::InvalidArgument(found).to_string();
        assert!(
            message.contains("xs[9]: is required; and 91 more"),
            "{message}"
        );
        assert!(!message.contains("xs[10]"));
    }
}
