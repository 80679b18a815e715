//! Market entities in the registry and the people who run or own them.

use chrono::NaiveDate;

use super::codes::{EnterpriseKind, EnterpriseStatus, RoleKind};
use super::ids::{PersonRef, Uscc};

/// A person's role in an enterprise over a period; `end` is `None` while current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub kind: RoleKind,
    pub person: PersonRef,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// A registered market entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enterprise {
    pub uscc: Uscc,
    pub display_name: String,
    pub former_names: Vec<String>,
    pub kind: EnterpriseKind,
    pub status: EnterpriseStatus,
    pub established: Option<NaiveDate>,
    /// Six-digit administrative division code (GB/T 2260).
    pub region_code: String,
    /// National economic industry code (GB/T 4754), e.g. `C1391`.
    pub industry_code: String,
    pub in_bankruptcy_restructuring: bool,
    /// Every role, current and ended; the current legal representative is among them.
    pub roles: Vec<Role>,
    /// Milliseconds since the Unix epoch; 0 for an enterprise not yet stored.
    pub updated_at: i64,
}

impl Enterprise {
    /// The current legal representative, if the registry knows one.
    pub fn legal_representative(&self) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| r.kind == RoleKind::LegalRepresentative && r.end.is_none())
    }
}

/// Whether `code` looks like a GB/T 2260 division code: six digits, not all zero.
pub fn is_region_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) && code != "000000"
}

/// Whether `code` looks like a GB/T 4754 industry code: a section letter A-T, then
/// up to four digits (`C`, `C13`, `C139`, `C1391`).
pub fn is_industry_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 5
        && (b'A'..=b'T').contains(&bytes[0])
        && bytes[1..].iter().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_checked() {
        assert!(is_region_code("371091"));
        assert!(!is_region_code("37109"));
        assert!(is_industry_code("C1391"));
        assert!(!is_industry_code("Z1391"));
        assert!(!is_industry_code("c13"));
    }
}
