//! Callers: agencies, their kinds and the scopes that gate each operation.

use std::collections::BTreeSet;
use std::fmt;

use super::codes::{code_enum, AgencyKind};

code_enum! {
    /// A permission an agency holds. Checked before the resource is looked up, so a caller
    /// without it cannot learn whether something exists.
    pub enum Scope {
        RegistryRead = 1 => "registry:read",
        RegistryWrite = 2 => "registry:write",
        RecordsRead = 3 => "records:read",
        RecordsWrite = 4 => "records:write",
        GradesRead = 5 => "grades:read",
        VettingRun = 6 => "vetting:run",
        CertificatesIssue = 7 => "certificates:issue",
        CertificatesRevoke = 8 => "certificates:revoke",
        AuditRead = 9 => "audit:read",
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl AgencyKind {
    /// The scopes an agency of this kind gets when none are named at creation.
    /// `audit:read` is never a default: supervisors are granted it explicitly.
    pub fn default_scopes(self) -> BTreeSet<Scope> {
        use Scope::*;
        let scopes: &[Scope] = match self {
            AgencyKind::MarketRegulation => &[
                RegistryRead,
                RegistryWrite,
                RecordsRead,
                RecordsWrite,
                GradesRead,
                CertificatesIssue,
                CertificatesRevoke,
            ],
            AgencyKind::Court
            | AgencyKind::Tax
            | AgencyKind::SocialSecurity
            | AgencyKind::Education => &[RegistryRead, RecordsRead, RecordsWrite, GradesRead],
            AgencyKind::VettingOffice => &[RegistryRead, VettingRun],
        };
        scopes.iter().copied().collect()
    }

    /// A short lowercase label used in agency ids and the demo token file.
    pub fn label(self) -> &'static str {
        match self {
            AgencyKind::MarketRegulation => "market-regulation",
            AgencyKind::Court => "court",
            AgencyKind::Tax => "tax",
            AgencyKind::SocialSecurity => "social-security",
            AgencyKind::Education => "education",
            AgencyKind::VettingOffice => "vetting-office",
        }
    }

    /// Parses a label as given on the command line (`court`, `market-regulation`, ...).
    pub fn from_label(label: &str) -> Option<Self> {
        AgencyKind::ALL.iter().copied().find(|k| k.label() == label)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    /// The id in `agencies/{id}`.
    pub id: String,
    pub display_name: String,
    pub kind: AgencyKind,
    pub scopes: BTreeSet<Scope>,
}

impl Agency {
    /// The resource name `agencies/{id}`.
    pub fn resource_name(&self) -> String {
        format!("agencies/{}", self.id)
    }

    /// Refuses unless the agency holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), super::Error> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(super::Error::PermissionDenied(format!(
                "agency {} lacks the {scope} scope",
                self.id
            )))
        }
    }

    /// Refuses unless the agency is of `kind`.
    pub fn require_kind(&self, kind: AgencyKind, what: &str) -> Result<(), super::Error> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(super::Error::PermissionDenied(format!(
                "only {} agencies may {what}",
                kind.label()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for kind in AgencyKind::ALL {
            assert_eq!(AgencyKind::from_label(kind.label()), Some(*kind));
        }
    }

    #[test]
    fn vetting_offices_cannot_write_records_by_default() {
        assert!(!AgencyKind::VettingOffice
            .default_scopes()
            .contains(&Scope::RecordsWrite));
    }
}
