//! Evidence for cross-checks, read for many candidates at once (records about the
//! persons, their roles, their enterprises' names, grades and listings), and the stored
//! vetting reports.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use sqlx::Row;

use super::sql::{fetch_json, in_json, json_keys, placeholders, select_json};
use super::{stored_code, Error, Result, Store};
use crate::domain::codes::{RecordKind, RoleKind, Tier, VettingPurpose};
use crate::domain::grading::DEFAULT_MODEL;
use crate::domain::ids::Uscc;
use crate::domain::vetting::{
    CandidateResult, Evidence, EvidenceEnterprise, EvidenceRecord, RoleRow, VerdictCounts,
    VettingReport, ENTERPRISE_FINDING_KINDS,
};

/// person_key, uscc, role, person_name, start_date, end_date.
type RoleTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// A record as [`RECORD_EXPRS`] reads it.
type RecordTuple = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

const RECORD_EXPRS: &[&str] = &[
    "subject_key",
    "id",
    "kind",
    "tier",
    "agency_id",
    "document_number",
    "decision_date",
    "publicity_end_date",
    // The name a record about a person gives them (empty for an enterprise's).
    "COALESCE(person_name, '')",
];

fn date(text: &str) -> Result<NaiveDate> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("stored date {text:?}")))
}

/// The subject's key, the record, and the name it gives its person.
fn evidence_record(row: RecordTuple) -> Result<(String, EvidenceRecord, String)> {
    let (key, id, kind, tier, agency_id, document_number, decision, publicity_end, name) = row;
    Ok((
        key,
        EvidenceRecord {
            id,
            kind: stored_code(&kind, RecordKind::from_code)?,
            tier: stored_code(&tier, Tier::from_code)?,
            agency_id,
            document_number,
            decision_date: date(&decision)?,
            publicity_end: date(&publicity_end)?,
        },
        name,
    ))
}

/// What became of a finished cross-check's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedReport {
    Saved,
    /// The agency's `request_id` already names a stored report; this one was not kept.
    RequestTaken,
}

impl Store {
    /// The evidence about `persons` (person keys) and the enterprises they are linked to
    /// by a role that is current or ended after `linked_since`, plus `declared` USCCs.
    /// Only records still active on `today` count.
    pub async fn vetting_evidence(
        &self,
        persons: &[&str],
        declared: &[&str],
        today: NaiveDate,
        linked_since: NaiveDate,
    ) -> Result<Evidence> {
        let b = self.backend;
        let mut evidence = Evidence::default();
        let today_text = today.to_string();
        if !persons.is_empty() {
            let rows: Vec<RecordTuple> = fetch_json(
                &self.read,
                &select_json(
                    b,
                    RECORD_EXPRS,
                    &format!(
                        "records WHERE subject_type = 'person' AND status = 'ACTIVE' \
                         AND publicity_end_date > {} AND {}",
                        placeholders(b, 1, 1),
                        in_json(b, "subject_key", 2)
                    ),
                ),
                vec![
                    today_text.clone().into(),
                    json_keys(persons.iter().copied()),
                ],
            )
            .await?;
            for row in rows {
                let (key, record, name) = evidence_record(row)?;
                evidence.person_record_names.insert(record.id.clone(), name);
                evidence.person_records.entry(key).or_default().push(record);
            }
            let roles: Vec<RoleTuple> = fetch_json(
                &self.read,
                &select_json(
                    b,
                    &[
                        "person_key",
                        "uscc",
                        "role",
                        "person_name",
                        "start_date",
                        "end_date",
                    ],
                    &format!("enterprise_roles WHERE {}", in_json(b, "person_key", 1)),
                ),
                vec![json_keys(persons.iter().copied())],
            )
            .await?;
            for (key, uscc, role, person_name, start, end) in roles {
                let end = end.as_deref().map(date).transpose()?;
                if end.is_some_and(|e| e < linked_since) {
                    continue;
                }
                evidence.roles.entry(key).or_default().push(RoleRow {
                    uscc,
                    role: stored_code(&role, RoleKind::from_code)?,
                    person_name,
                    start: start.as_deref().map(date).transpose()?,
                    end,
                });
            }
        }
        let usccs: BTreeSet<&str> = evidence
            .roles
            .values()
            .flatten()
            .map(|r| r.uscc.as_str())
            .chain(declared.iter().copied())
            .collect();
        if usccs.is_empty() {
            return Ok(evidence);
        }
        let names: Vec<(String, String)> = fetch_json(
            &self.read,
            &select_json(
                b,
                &["uscc", "display_name"],
                &format!("enterprises WHERE {}", in_json(b, "uscc", 1)),
            ),
            vec![json_keys(usccs.iter().copied())],
        )
        .await?;
        let registered: Vec<Uscc> = names
            .iter()
            .filter_map(|(u, _)| Uscc::parse(u).ok())
            .collect();
        let grades = self
            .grades(&registered.iter().collect::<Vec<_>>(), DEFAULT_MODEL)
            .await?;
        let grade_of: HashMap<&str, _> = registered
            .iter()
            .zip(&grades)
            .map(|(u, g)| (u.as_str(), g.as_ref().map(|g| g.graded.grade)))
            .collect();
        for (uscc, display_name) in &names {
            evidence.enterprises.insert(
                uscc.clone(),
                EvidenceEnterprise {
                    uscc: uscc.clone(),
                    display_name: display_name.clone(),
                    grade: grade_of.get(uscc.as_str()).copied().flatten(),
                },
            );
        }
        let kinds: Vec<String> = ENTERPRISE_FINDING_KINDS
            .iter()
            .map(|k| format!("'{}'", k.code()))
            .collect();
        let rows: Vec<RecordTuple> = fetch_json(
            &self.read,
            &select_json(
                b,
                RECORD_EXPRS,
                &format!(
                    "records WHERE subject_type = 'enterprise' AND status = 'ACTIVE' \
                     AND kind IN ({}) AND publicity_end_date > {} AND {}",
                    kinds.join(", "),
                    placeholders(b, 1, 1),
                    in_json(b, "subject_key", 2)
                ),
            ),
            vec![
                today_text.into(),
                json_keys(names.iter().map(|(u, _)| u.as_str())),
            ],
        )
        .await?;
        for row in rows {
            let (key, record, _) = evidence_record(row)?;
            evidence
                .enterprise_records
                .entry(key)
                .or_default()
                .push(record);
        }
        // The queries aggregate rows in whatever order the plan visits them; findings
        // follow this order, so fix it: the same check answers alike on both backends.
        for records in evidence
            .person_records
            .values_mut()
            .chain(evidence.enterprise_records.values_mut())
        {
            records.sort_by(|a, b| (a.decision_date, &a.id).cmp(&(b.decision_date, &b.id)));
        }
        for roles in evidence.roles.values_mut() {
            roles.sort_by(|a, b| {
                (&a.uscc, a.role.code(), a.start, a.end).cmp(&(
                    &b.uscc,
                    b.role.code(),
                    b.start,
                    b.end,
                ))
            });
        }
        Ok(evidence)
    }

    /// Stores a finished cross-check; [`SavedReport::RequestTaken`] when the agency
    /// already stored a report under the same `request_id` (a retry that ran alongside
    /// the first attempt), and nothing was stored.
    pub async fn save_vetting_report(
        &self,
        report: &VettingReport,
        request: Option<(&str, &str)>,
    ) -> Result<SavedReport> {
        let results = serde_json::to_string(&report.results)
            .map_err(|e| Error::Corrupt(format!("vetting results: {e}")))?;
        let saved = sqlx::query(
            "INSERT INTO vetting_reports (id, agency_id, request_id, purpose, case_reference, \
             policy_version, created_at, clear_count, review_count, adverse_count, invalid_count, \
             results, request_digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&report.id)
        .bind(&report.agency_id)
        .bind(request.map(|(id, _)| id))
        .bind(report.purpose.code())
        .bind(&report.case_reference)
        .bind(&report.policy_version)
        .bind(report.created_at)
        .bind(report.counts.clear as i64)
        .bind(report.counts.review as i64)
        .bind(report.counts.adverse as i64)
        .bind(report.counts.invalid as i64)
        .bind(results)
        .bind(request.map(|(_, digest)| digest))
        .execute(&self.write)
        .await;
        match saved {
            Ok(_) => Ok(SavedReport::Saved),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && request.is_some() => {
                Ok(SavedReport::RequestTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The report `id`, with its results.
    pub async fn vetting_report(&self, id: &str) -> Result<Option<VettingReport>> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS}, results FROM vetting_reports WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(|r| report_from_row(r, true)).transpose()
    }

    /// The report agency `agency_id` stored under `request_id`, with its results and
    /// the digest of the request that made it.
    pub async fn vetting_report_by_request(
        &self,
        agency_id: &str,
        request_id: &str,
    ) -> Result<Option<(VettingReport, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS}, results, request_digest FROM vetting_reports \
             WHERE agency_id = $1 AND request_id = $2"
        ))
        .bind(agency_id)
        .bind(request_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref()
            .map(|r| {
                let digest: Option<String> = r.try_get("request_digest")?;
                Ok((report_from_row(r, true)?, digest.unwrap_or_default()))
            })
            .transpose()
    }

    /// One page of agency `agency_id`'s reports, newest first, before report id
    /// `before`; without their results (read one report for those).
    pub async fn list_vetting_reports(
        &self,
        agency_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VettingReport>> {
        let sql = format!(
            "SELECT {REPORT_COLUMNS} FROM vetting_reports WHERE agency_id = $1 {} \
             ORDER BY id DESC LIMIT $2",
            if before.is_some() { "AND id < $3" } else { "" }
        );
        let mut query = sqlx::query(&sql).bind(agency_id).bind(limit as i64);
        if let Some(before) = before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(&self.read).await?;
        rows.iter().map(|r| report_from_row(r, false)).collect()
    }
}

const REPORT_COLUMNS: &str = "id, agency_id, purpose, case_reference, policy_version, created_at, \
     clear_count, review_count, adverse_count, invalid_count";

fn report_from_row(row: &sqlx::any::AnyRow, with_results: bool) -> Result<VettingReport> {
    let purpose: String = row.try_get("purpose")?;
    let count = |c: &str| -> Result<usize> { Ok(row.try_get::<i64, _>(c)?.max(0) as usize) };
    let results: Vec<CandidateResult> = if with_results {
        let text: String = row.try_get("results")?;
        serde_json::from_str(&text).map_err(|e| Error::Corrupt(format!("vetting results: {e}")))?
    } else {
        Vec::new()
    };
    Ok(VettingReport {
        id: row.try_get("id")?,
        agency_id: row.try_get("agency_id")?,
        purpose: stored_code(&purpose, VettingPurpose::from_code)?,
        case_reference: row.try_get("case_reference")?,
        policy_version: row.try_get("policy_version")?,
        created_at: row.try_get("created_at")?,
        counts: VerdictCounts {
            clear: count("clear_count")?,
            review: count("review_count")?,
            adverse: count("adverse_count")?,
            invalid: count("invalid_count")?,
        },
        results,
    })
}
