//! Cross-checking candidates for public roles (信用联查互证): what counts as a finding,
//! how a versioned policy turns findings into a verdict per purpose, and the result kept
//! in a report. Evidence gathering is the store's; this module only judges it.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::codes::{RecordKind, RoleKind, Tier, Verdict, VettingPurpose};
use super::grading::Grade;

/// Roles that ended longer ago than this no longer link a person to an enterprise.
pub const ROLE_LOOKBACK_YEARS: u32 = 3;

/// Most candidates one cross-check may carry.
pub const MAX_CANDIDATES: usize = 10_000;

/// What a finding is about, as a stable code for machines and policies.
pub fn finding_code(kind: RecordKind, about_person: bool) -> Option<&'static str> {
    use RecordKind::*;
    Some(match (kind, about_person) {
        (DishonestJudgmentDebtor, true) => "DISHONEST_JUDGMENT_DEBTOR",
        (ConsumptionRestriction, true) => "CONSUMPTION_RESTRICTION",
        (MajorTaxViolation, true) => "TAX_VIOLATION",
        (SocialSecuritySeriousDishonesty | SocialSecurityArrears, true) => {
            "SOCIAL_SECURITY_DISHONESTY"
        }
        (EducationViolation, true) => "EDUCATION_VIOLATION",
        (SeriousDishonestyListing, false) => "ENTERPRISE_SERIOUS_DISHONESTY",
        (AbnormalOperationsListing, false) => "ENTERPRISE_ABNORMAL_OPERATIONS",
        (SocialSecuritySeriousDishonesty, false) => "ENTERPRISE_SOCIAL_SECURITY_DISHONESTY",
        (SocialSecurityArrears, false) => "ENTERPRISE_SOCIAL_SECURITY_ARREARS",
        (MajorTaxViolation, false) => "ENTERPRISE_MAJOR_TAX_VIOLATION",
        (DishonestJudgmentDebtor, false) => "ENTERPRISE_DISHONEST_JUDGMENT_DEBTOR",
        (ConsumptionRestriction, false) => "ENTERPRISE_CONSUMPTION_RESTRICTION",
        _ => return None,
    })
}

/// Record kinds that can give a finding about a linked or declared enterprise.
pub const ENTERPRISE_FINDING_KINDS: &[RecordKind] = &[
    RecordKind::SeriousDishonestyListing,
    RecordKind::AbnormalOperationsListing,
    RecordKind::SocialSecuritySeriousDishonesty,
    RecordKind::SocialSecurityArrears,
    RecordKind::MajorTaxViolation,
    RecordKind::DishonestJudgmentDebtor,
    RecordKind::ConsumptionRestriction,
];

/// The registry knows the candidate's ID number under another name.
pub const IDENTITY_MISMATCH: &str = "IDENTITY_MISMATCH";
/// A declared enterprise is not in the registry.
pub const DECLARED_ENTERPRISE_UNKNOWN: &str = "DECLARED_ENTERPRISE_UNKNOWN";

/// How the candidate is linked to an enterprise in a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The registered role, if the registry links them (None: declared only).
    pub role: Option<RoleKind>,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    /// The candidate declared the enterprise.
    pub declared: bool,
}

/// An enterprise on an evidence path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceEnterprise {
    pub uscc: String,
    pub display_name: String,
    /// Its general-model grade, if graded.
    pub grade: Option<Grade>,
}

/// A record on an evidence path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub id: String,
    pub kind: RecordKind,
    pub tier: Tier,
    pub agency_id: String,
    pub document_number: String,
    pub decision_date: NaiveDate,
    pub publicity_end: NaiveDate,
}

/// One finding: the evidence path person → role → enterprise → record, as far as it
/// goes, with the verdict the policy gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub verdict: Verdict,
    /// A sentence for the officer, in Chinese.
    pub description: String,
    pub link: Option<Link>,
    pub enterprise: Option<EvidenceEnterprise>,
    pub record: Option<EvidenceRecord>,
}

/// The outcome for one candidate, as streamed and as kept in the report. Holds the
/// masked ID only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateResult {
    pub index: usize,
    /// The candidate's person key, so that reading a report is audited against the
    /// persons in it; never sent to callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_key: Option<String>,
    pub name: String,
    pub masked_id: String,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// Why an INVALID candidate could not be checked.
    pub invalid_reasons: Vec<String>,
    /// The USCCs the candidate declared, so that replaying or reading the report is
    /// audited against them as the check was (a clear result says something about
    /// them too); never sent to callers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared: Vec<String>,
}

/// Counts per verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    pub clear: usize,
    pub review: usize,
    pub adverse: usize,
    pub invalid: usize,
}

impl VerdictCounts {
    /// Counts `verdict` once.
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Clear => self.clear += 1,
            Verdict::Review => self.review += 1,
            Verdict::Adverse => self.adverse += 1,
            Verdict::Invalid => self.invalid += 1,
        }
    }
}

/// A stored cross-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VettingReport {
    pub id: String,
    pub agency_id: String,
    pub purpose: VettingPurpose,
    pub case_reference: String,
    pub policy_version: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub counts: VerdictCounts,
    pub results: Vec<CandidateResult>,
}

impl VettingReport {
    /// The resource name `vettingReports/{id}`.
    pub fn resource_name(&self) -> String {
        format!("vettingReports/{}", self.id)
    }
}

/// A registered role of a person, as the cross-check needs it.
#[derive(Debug, Clone)]
pub struct RoleRow {
    pub uscc: String,
    pub role: RoleKind,
    /// The name the registry holds for the person.
    pub person_name: String,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// Everything the cross-check of a group of candidates may cite.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Active records about each person, by person key.
    pub person_records: HashMap<String, Vec<EvidenceRecord>>,
    /// The name each of those records gives its person, by record id.
    pub person_record_names: HashMap<String, String>,
    /// Each person's roles (current and ended), by person key.
    pub roles: HashMap<String, Vec<RoleRow>>,
    /// Registered enterprises among those linked or declared, by USCC.
    pub enterprises: HashMap<String, EvidenceEnterprise>,
    /// Active listings about those enterprises, by USCC.
    pub enterprise_records: HashMap<String, Vec<EvidenceRecord>>,
}

/// One policy rule: findings with `finding`'s code (and, if given, one of `roles`)
/// get `verdict`, or the verdict `purposes` names for the check's purpose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    finding: String,
    #[serde(default)]
    roles: Vec<RoleKind>,
    verdict: Verdict,
    #[serde(default)]
    purposes: BTreeMap<VettingPurpose, Verdict>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: String,
    /// Verdict for a finding no rule matches.
    unmatched: Verdict,
    #[serde(rename = "rule")]
    rules: Vec<Rule>,
}

/// Which findings give which verdict, per purpose; versioned, from
/// `models/vetting/*.toml`.
#[derive(Debug, Clone)]
pub struct VettingPolicy {
    file: PolicyFile,
}

/// Every finding code a policy may name.
pub const FINDING_CODES: &[&str] = &[
    "DISHONEST_JUDGMENT_DEBTOR",
    "CONSUMPTION_RESTRICTION",
    "TAX_VIOLATION",
    "SOCIAL_SECURITY_DISHONESTY",
    "EDUCATION_VIOLATION",
    "ENTERPRISE_SERIOUS_DISHONESTY",
    "ENTERPRISE_ABNORMAL_OPERATIONS",
    "ENTERPRISE_SOCIAL_SECURITY_DISHONESTY",
    "ENTERPRISE_SOCIAL_SECURITY_ARREARS",
    "ENTERPRISE_MAJOR_TAX_VIOLATION",
    "ENTERPRISE_DISHONEST_JUDGMENT_DEBTOR",
    "ENTERPRISE_CONSUMPTION_RESTRICTION",
    IDENTITY_MISMATCH,
    DECLARED_ENTERPRISE_UNKNOWN,
];

impl VettingPolicy {
    /// The shipped default policy.
    pub fn builtin() -> Self {
        Self::parse(include_str!("../../models/vetting/default.toml"))
            .expect("the shipped vetting policy is valid")
    }

    /// Parses and checks a policy file; the error names the line and the reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start].lines().count().max(1))
                .unwrap_or(1);
            format!("line {line}: {}", e.message())
        })?;
        if file.version.trim().is_empty() {
            return Err("version must not be empty".into());
        }
        if file.unmatched == Verdict::Invalid {
            return Err("unmatched: INVALID is only for malformed input".into());
        }
        for (i, rule) in file.rules.iter().enumerate() {
            if !FINDING_CODES.contains(&rule.finding.as_str()) {
                return Err(format!(
                    "rule {}: unknown finding {:?}; one of {}",
                    i + 1,
                    rule.finding,
                    FINDING_CODES.join(", ")
                ));
            }
            if rule.verdict == Verdict::Invalid
                || rule.purposes.values().any(|v| *v == Verdict::Invalid)
            {
                return Err(format!(
                    "rule {}: INVALID is only for malformed input",
                    i + 1
                ));
            }
        }
        Ok(VettingPolicy { file })
    }

    /// The policy's version, named in every result.
    pub fn version(&self) -> &str {
        &self.file.version
    }

    /// Orders policy versions part by part (`2026.10` after `2026.9`): numeric parts as
    /// numbers, any other part as text.
    pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
        let key = |v: &str| -> Vec<(u64, String)> {
            v.split('.')
                .map(|p| match p.parse::<u64>() {
                    Ok(n) => (n, String::new()),
                    Err(_) => (u64::MAX, p.to_string()),
                })
                .collect()
        };
        key(a).cmp(&key(b))
    }

    /// The verdict for a finding `code` reached through `role` (None: about the
    /// person, or a declared enterprise without a registered role), for `purpose`.
    /// The first matching rule decides.
    pub fn judge(&self, purpose: VettingPurpose, code: &str, role: Option<RoleKind>) -> Verdict {
        self.file
            .rules
            .iter()
            .find(|r| {
                r.finding == code
                    && (r.roles.is_empty() || role.is_some_and(|role| r.roles.contains(&role)))
            })
            .map(|r| r.purposes.get(&purpose).copied().unwrap_or(r.verdict))
            .unwrap_or(self.file.unmatched)
    }
}

/// A candidate that passed validation, ready to be checked.
#[derive(Debug, Clone)]
pub struct Checked<'a> {
    pub index: usize,
    pub name: &'a str,
    pub masked_id: &'a str,
    pub person_key: &'a str,
    /// USCCs the candidate declared, deduplicated.
    pub declared: &'a [String],
}

/// Whether two writings of a name are the same name: agencies differ in spacing,
/// full-width forms and the separator of a transliterated name (阿依古丽·买买提,
/// 阿依古丽•买买提, 阿依古丽.买买提, 阿依古丽买买提), none of which makes another person.
pub fn same_name(a: &str, b: &str) -> bool {
    fn normal(name: &str) -> impl Iterator<Item = char> + '_ {
        // Name separators go too: courts and registries often write a transliterated
        // name (阿依古丽·买买提) without its dot. So do characters drawn as nothing.
        name.chars()
            .filter(|c| {
                !c.is_whitespace()
                    && !super::id_scan::invisible(*c)
                    && !matches!(c, '·' | '•' | '‧' | '・' | '･' | '∙' | '⋅' | '.' | '．')
            })
            .map(|c| match c {
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
                c => c,
            })
            .map(|c| c.to_ascii_lowercase())
    }
    normal(a).eq(normal(b))
}

/// Judges one candidate on the evidence gathered for its group.
pub fn cross_check(
    policy: &VettingPolicy,
    purpose: VettingPurpose,
    candidate: &Checked<'_>,
    evidence: &Evidence,
) -> CandidateResult {
    let mut findings = Vec::new();
    let finding = |code: &str,
                   link: Option<Link>,
                   enterprise: Option<EvidenceEnterprise>,
                   record: Option<EvidenceRecord>| {
        let role = link.as_ref().and_then(|l| l.role);
        Finding {
            code: code.to_string(),
            verdict: policy.judge(purpose, code, role),
            description: describe(code, link.as_ref(), enterprise.as_ref()),
            link,
            enterprise,
            record,
        }
    };
    for record in evidence
        .person_records
        .get(candidate.person_key)
        .into_iter()
        .flatten()
    {
        if let Some(code) = finding_code(record.kind, true) {
            let mut found = finding(code, None, None, Some(record.clone()));
            // The ID number matches but the name does not (rows shifted in the
            // officer's file, say): the record may be about someone else, so it
            // is put before an officer, never held against the candidate alone.
            if let Some(other) = evidence
                .person_record_names
                .get(&record.id)
                .filter(|n| !same_name(n, candidate.name))
            {
                found.verdict = found.verdict.min(Verdict::Review);
                found.description.push_str(&format!(
                    "（记录中的姓名为{other}，与申报姓名不一致，请核实身份）"
                ));
            }
            findings.push(found);
        }
    }
    let roles = evidence
        .roles
        .get(candidate.person_key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // Same ID, other name: one finding per name the registry or a record holds.
    let record_names = evidence
        .person_records
        .get(candidate.person_key)
        .into_iter()
        .flatten()
        .filter_map(|r| evidence.person_record_names.get(&r.id));
    let mut other_names: Vec<&str> = roles
        .iter()
        .map(|r| &r.person_name)
        .chain(record_names)
        .map(String::as_str)
        .filter(|n| !same_name(n, candidate.name))
        .collect();
    other_names.sort_unstable();
    other_names.dedup();
    for other in other_names {
        let mut mismatch = finding(IDENTITY_MISMATCH, None, None, None);
        mismatch
            .description
            .push_str(&format!("（登记姓名：{other}）"));
        findings.push(mismatch);
    }
    // Every linked enterprise through each of its roles, then declared ones not linked.
    let mut links: Vec<(String, Link)> = roles
        .iter()
        .map(|r| {
            (
                r.uscc.clone(),
                Link {
                    role: Some(r.role),
                    start: r.start,
                    end: r.end,
                    declared: candidate.declared.contains(&r.uscc),
                },
            )
        })
        .collect();
    for uscc in candidate.declared {
        if !links.iter().any(|(u, _)| u == uscc) {
            links.push((
                uscc.clone(),
                Link {
                    role: None,
                    start: None,
                    end: None,
                    declared: true,
                },
            ));
        }
    }
    // Roles registered under another name (the ID number matches, the name does
    // not): the role may be someone else's.
    let other_name_roles: Vec<(&str, RoleKind, &str)> = roles
        .iter()
        .filter(|r| !same_name(&r.person_name, candidate.name))
        .map(|r| (r.uscc.as_str(), r.role, r.person_name.as_str()))
        .collect();
    for (uscc, link) in links {
        let Some(enterprise) = evidence.enterprises.get(&uscc) else {
            if link.role.is_none() {
                let stub = EvidenceEnterprise {
                    uscc: uscc.clone(),
                    display_name: String::new(),
                    grade: None,
                };
                findings.push(finding(
                    DECLARED_ENTERPRISE_UNKNOWN,
                    Some(link),
                    Some(stub),
                    None,
                ));
            }
            continue;
        };
        for record in evidence.enterprise_records.get(&uscc).into_iter().flatten() {
            if let Some(code) = finding_code(record.kind, false) {
                let mut found = finding(
                    code,
                    Some(link.clone()),
                    Some(enterprise.clone()),
                    Some(record.clone()),
                );
                // Decided after the candidate's role ended: it may still concern
                // conduct from the tenure (a listing for years of missed reports), so
                // an officer weighs it, but it is never held against him alone. (Not
                // when he declares the enterprise his: he says the tie stands.)
                if let Some(end) = link
                    .end
                    .filter(|end| !link.declared && record.decision_date > *end)
                {
                    found.verdict = found.verdict.min(Verdict::Review);
                    found.description.push_str(&format!(
                        "（该决定作出于其任职结束（{end}）之后，请核实是否涉及其任职期间）"
                    ));
                }
                // Reached only through a role registered under another name: as
                // for a record about him under another name, put before an officer,
                // never held against the candidate alone.
                if let Some((_, _, other)) = other_name_roles.iter().find(|(u, role, _)| {
                    !link.declared && *u == uscc.as_str() && link.role == Some(*role)
                }) {
                    found.verdict = found.verdict.min(Verdict::Review);
                    found.description.push_str(&format!(
                        "（该企业登记的任职人姓名为{other}，与申报姓名不一致，请核实身份）"
                    ));
                }
                findings.push(found);
            }
        }
    }
    CandidateResult {
        index: candidate.index,
        person_key: Some(candidate.person_key.to_string()),
        name: candidate.name.to_string(),
        masked_id: candidate.masked_id.to_string(),
        verdict: overall(&findings),
        findings,
        invalid_reasons: Vec::new(),
        declared: candidate.declared.to_vec(),
    }
}

/// The candidate's verdict: the worst of its findings', CLEAR without any.
pub fn overall(findings: &[Finding]) -> Verdict {
    findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Clear)
}

/// The officer's sentence for a finding.
pub fn describe(
    code: &str,
    link: Option<&Link>,
    enterprise: Option<&EvidenceEnterprise>,
) -> String {
    let what = match code {
        "DISHONEST_JUDGMENT_DEBTOR" => "本人为失信被执行人",
        "CONSUMPTION_RESTRICTION" => "本人被限制高消费",
        "TAX_VIOLATION" => "本人为重大税收违法失信主体",
        "SOCIAL_SECURITY_DISHONESTY" => "本人有社会保险领域失信记录",
        "EDUCATION_VIOLATION" => "本人有教育领域违规记录",
        "ENTERPRISE_SERIOUS_DISHONESTY" => "企业被列入严重违法失信名单",
        "ENTERPRISE_ABNORMAL_OPERATIONS" => "企业被列入经营异常名录",
        "ENTERPRISE_SOCIAL_SECURITY_DISHONESTY" => "企业为社会保险领域严重失信主体",
        "ENTERPRISE_SOCIAL_SECURITY_ARREARS" => "企业欠缴社会保险费",
        "ENTERPRISE_MAJOR_TAX_VIOLATION" => "企业为重大税收违法失信主体",
        "ENTERPRISE_DISHONEST_JUDGMENT_DEBTOR" => "企业为失信被执行人",
        "ENTERPRISE_CONSUMPTION_RESTRICTION" => "企业被限制消费",
        IDENTITY_MISMATCH => "登记信息中该身份证号对应的姓名与申报姓名不一致",
        DECLARED_ENTERPRISE_UNKNOWN => "申报的企业未在登记信息中找到",
        other => other,
    };
    let role = link.map(|l| match l.role {
        Some(RoleKind::LegalRepresentative) => "担任法定代表人的",
        Some(RoleKind::Shareholder) => "担任股东的",
        Some(RoleKind::Executive) => "担任高级管理人员的",
        None => "申报的",
    });
    match (role, enterprise) {
        (Some(role), Some(e)) => format!("{role}{}（{}）：{what}", e.display_name, e.uscc),
        (None, Some(e)) => format!("{}（{}）：{what}", e.display_name, e.uscc),
        _ => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_versions_compare_part_by_part() {
        use std::cmp::Ordering::*;
        let c = VettingPolicy::compare_versions;
        assert_eq!(c("2026.10", "2026.9"), Greater);
        assert_eq!(c("2026.2", "2026.2"), Equal);
        assert_eq!(c("2027.1", "2026.12"), Greater);
        assert_eq!(c("2026.1", "2026.1.1"), Less);
    }

    #[test]
    fn a_name_written_with_other_spacing_or_separators_is_the_same_name() {
        assert!(same_name("阿依古丽·买买提", "阿依古丽•买买提"));
        assert!(same_name("阿依古丽.买买提", " 阿依古丽 · 买买提 "));
        assert!(
            same_name("阿依古丽·买买提", "阿依古丽买买提"),
            "the dot left out"
        );
        assert!(same_name("张\u{3000}伟", "张伟"));
        assert!(
            same_name("张\u{ad}伟\u{200b}", "张伟"),
            "invisible characters"
        );
        assert!(same_name("ＪＯＨＮ　ＳＭＩＴＨ", "John Smith"));
        assert!(!same_name("李四", "李娜"));
        assert!(!same_name("张伟", "张玮"));
    }

    /// An enterprise listed as seriously dishonest in social security is not one that
    /// merely owes contributions, and is weighed as a serious listing.
    #[test]
    fn social_security_dishonesty_is_not_reported_as_arrears() {
        use RecordKind::*;
        assert_eq!(
            finding_code(SocialSecuritySeriousDishonesty, false),
            Some("ENTERPRISE_SOCIAL_SECURITY_DISHONESTY")
        );
        assert_eq!(
            finding_code(SocialSecurityArrears, false),
            Some("ENTERPRISE_SOCIAL_SECURITY_ARREARS")
        );
        let p = VettingPolicy::builtin();
        assert_eq!(
            p.judge(
                VettingPurpose::NonPublicEconomyRepresentative,
                "ENTERPRISE_SOCIAL_SECURITY_DISHONESTY",
                Some(RoleKind::LegalRepresentative)
            ),
            Verdict::Adverse
        );
    }

    #[test]
    fn the_default_policy_follows_the_published_defaults() {
        let p = VettingPolicy::builtin();
        for purpose in VettingPurpose::ALL {
            assert_eq!(
                p.judge(*purpose, "DISHONEST_JUDGMENT_DEBTOR", None),
                Verdict::Adverse
            );
            assert_eq!(
                p.judge(
                    *purpose,
                    "ENTERPRISE_SOCIAL_SECURITY_ARREARS",
                    Some(RoleKind::LegalRepresentative)
                ),
                Verdict::Review
            );
        }
        let rep = Some(RoleKind::LegalRepresentative);
        assert_eq!(
            p.judge(
                VettingPurpose::NonPublicEconomyRepresentative,
                "ENTERPRISE_SERIOUS_DISHONESTY",
                rep
            ),
            Verdict::Adverse
        );
        assert_eq!(
            p.judge(
                VettingPurpose::VillageCommitteeCandidate,
                "ENTERPRISE_SERIOUS_DISHONESTY",
                rep
            ),
            Verdict::Review
        );
        assert_eq!(
            p.judge(VettingPurpose::Other, IDENTITY_MISMATCH, None),
            Verdict::Review
        );
    }

    #[test]
    fn a_bad_policy_names_its_line_or_rule() {
        let err = VettingPolicy::parse("version = \"1\"\nunmatched = \"MAYBE\"\nrule = []\n")
            .unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = VettingPolicy::parse(
            "version = \"1\"\nunmatched = \"REVIEW\"\n[[rule]]\nfinding = \"NOPE\"\nverdict = \"CLEAR\"\n",
        )
        .unwrap_err();
        assert!(err.contains("rule 1: unknown finding"), "{err}");
    }

    /// A listing decided after the candidate left the enterprise is put before an
    /// officer (it may concern his tenure), never held against him alone; one decided
    /// while he held the role counts as the policy says.
    #[test]
    fn a_listing_decided_after_the_role_ended_is_at_most_review() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let listing = |id: &str, decided: &str| EvidenceRecord {
            id: id.into(),
            kind: RecordKind::SeriousDishonestyListing,
            tier: Tier::Serious,
            agency_id: "a".into(),
            document_number: String::new(),
            decision_date: d(decided),
            publicity_end: d("2099-01-01"),
        };
        let mut evidence = Evidence::default();
        evidence.roles.insert(
            "key".into(),
            vec![RoleRow {
                uscc: "E".into(),
                role: RoleKind::LegalRepresentative,
                person_name: "张伟".into(),
                start: Some(d("2020-01-01")),
                end: Some(d("2024-03-01")),
            }],
        );
        evidence.enterprises.insert(
            "E".into(),
            EvidenceEnterprise {
                uscc: "E".into(),
                display_name: "某公司".into(),
                grade: None,
            },
        );
        let candidate = Checked {
            index: 0,
            name: "张伟",
            masked_id: "",
            person_key: "key",
            declared: &[],
        };
        let policy = VettingPolicy::builtin();
        let purpose = VettingPurpose::NonPublicEconomyRepresentative;
        for (decided, verdict) in [
            ("2024-02-01", Verdict::Adverse),
            ("2024-03-01", Verdict::Adverse),
            ("2025-06-01", Verdict::Review),
        ] {
            evidence
                .enterprise_records
                .insert("E".into(), vec![listing("r", decided)]);
            let result = cross_check(&policy, purpose, &candidate, &evidence);
            assert_eq!(result.verdict, verdict, "decided {decided}");
            assert_eq!(
                result.findings[0].description.contains("任职结束"),
                verdict == Verdict::Review
            );
            // Declared his, the enterprise's listing counts as the policy says.
            let declared = ["E".to_string()];
            let mine = Checked {
                declared: &declared,
                ..candidate.clone()
            };
            let result = cross_check(&policy, purpose, &mine, &evidence);
            assert_eq!(
                result.verdict,
                Verdict::Adverse,
                "declared, decided {decided}"
            );
        }
    }

    #[test]
    fn the_worst_finding_decides() {
        let f = |verdict| Finding {
            code: "X".into(),
            verdict,
            description: String::new(),
            link: None,
            enterprise: None,
            record: None,
        };
        assert_eq!(overall(&[]), Verdict::Clear);
        assert_eq!(
            overall(&[f(Verdict::Review), f(Verdict::Adverse), f(Verdict::Clear)]),
            Verdict::Adverse
        );
    }
}
