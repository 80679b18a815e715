//! Callers: agencies, their kinds and the scopes that gate each operation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::codes::{code_enum, AgencyKind, Purpose};
use super::Error;

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
        RepairManage = 10 => "repair:manage",
        SpotChecksManage = 11 => "spotchecks:manage",
    }
}

impl Scope {
    /// The one agency kind whose calls this scope can serve, where the services check
    /// the caller's kind too: granting it to another kind would only make its calls
    /// fail later.
    pub fn only_for(self) -> Option<AgencyKind> {
        match self {
            Scope::RegistryWrite | Scope::CertificatesIssue | Scope::CertificatesRevoke => {
                Some(AgencyKind::MarketRegulation)
            }
            Scope::VettingRun => Some(AgencyKind::VettingOffice),
            _ => None,
        }
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
                RepairManage,
                SpotChecksManage,
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
    /// Requests per second it may make; None means the server's default.
    pub rate_limit: Option<u32>,
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

/// Which purposes each kind of agency may declare (configuration, see
/// `policies/purposes.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposePolicy {
    allowed: BTreeMap<AgencyKind, BTreeSet<Purpose>>,
}

impl PurposePolicy {
    /// The policy shipped in `policies/purposes.toml`.
    pub fn builtin() -> Self {
        Self::parse(include_str!("../../policies/purposes.toml"))
            .expect("the shipped purpose policy is valid")
    }

    /// Reads a policy: agency kind codes mapped to lists of purpose codes. Errors name
    /// the unknown kind or purpose.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, Vec<String>> = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut allowed = BTreeMap::new();
        for (kind, purposes) in raw {
            let kind_code = kind.clone();
            let kind = AgencyKind::from_code(&kind).ok_or_else(|| {
                format!(
                    "unknown agency kind {kind:?}; one of {}",
                    AgencyKind::ALL
                        .iter()
                        .map(|k| k.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let purposes = purposes
                .iter()
                .map(|p| {
                    Purpose::from_code(p)
                        .ok_or_else(|| format!("{kind_code}: unknown purpose {p:?}"))
                })
                .collect::<Result<BTreeSet<_>, _>>()?;
            allowed.insert(kind, purposes);
        }
        Ok(PurposePolicy { allowed })
    }

    /// Whether an agency of `kind` may declare `purpose`; refused with the purposes it
    /// may declare.
    pub fn permit(&self, kind: AgencyKind, purpose: Purpose) -> Result<(), Error> {
        let allowed = self.allowed.get(&kind);
        if allowed.is_some_and(|a| a.contains(&purpose)) {
            return Ok(());
        }
        let listed: Vec<&str> = allowed.into_iter().flatten().map(|p| p.code()).collect();
        Err(Error::PurposeNotPermitted(format!(
            "a {} agency may not declare purpose {}; it may declare: {}",
            kind.code(),
            purpose.code(),
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        )))
    }
}

#[cfg(test)]
mod purpose_tests {
    use super::*;

    #[test]
    fn the_builtin_policy_limits_each_kind_to_its_own_work() {
        let p = PurposePolicy::builtin();
        assert!(p
            .permit(AgencyKind::Court, Purpose::JudicialEnforcement)
            .is_ok());
        assert!(matches!(
            p.permit(AgencyKind::Court, Purpose::TaxAdministration),
            Err(Error::PurposeNotPermitted(_))
        ));
        for purpose in Purpose::ALL {
            assert!(p.permit(AgencyKind::MarketRegulation, *purpose).is_ok());
        }
    }

    #[test]
    fn a_policy_naming_an_unknown_purpose_is_refused() {
        let e = PurposePolicy::parse("COURT = [\"JUDICIAL_ENFORCEMENT\", \"GOSSIP\"]").unwrap_err();
        assert!(e.contains("GOSSIP"), "{e}");
        assert!(PurposePolicy::parse("ARMY = []")
            .unwrap_err()
            .contains("ARMY"));
    }
}
