//! `VettingService`: cross-checks of candidates for vetting offices, streamed one
//! candidate at a time in input order, and the reports they leave.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{case_reference_text, id_number, person_name_text, resource_id, timestamp};
use super::paging::{decode_token, next_page, page_size};
use super::subjects::noting_on_refusal;
use super::Shared;
use crate::audit::{AuditLog, AuditNote, Disclosure};
use crate::auth::caller;
use crate::domain::agency::Scope;
use crate::domain::audit::AuditEvent;
use crate::domain::codes::{AgencyKind, Purpose, Verdict, VettingPurpose};
use crate::domain::id_scan::mask_long_numbers;
use crate::domain::ids::Uscc;
use crate::domain::request_id::request_id_problem;
use crate::domain::vetting::{
    cross_check, CandidateResult, Checked, Finding, VerdictCounts, VettingPolicy, VettingReport,
    MAX_CANDIDATES, ROLE_LOOKBACK_YEARS,
};
use crate::domain::{Error, Violations};
use crate::proto::v1::{self as pb, vetting_service_server::VettingService};
use crate::store::{now_millis, SavedReport, Store};

/// Candidates checked with the first database round, so the first result comes fast.
const FIRST_GROUP: usize = 32;
/// Candidates checked per database round after the first.
const GROUP: usize = 500;

/// The vetting service.
#[derive(Debug, Clone)]
pub struct VettingApi {
    state: Shared,
    policy: Arc<VettingPolicy>,
}

impl VettingApi {
    /// Serves cross-checks judged by `policy`.
    pub fn new(state: Shared, policy: VettingPolicy) -> Self {
        VettingApi {
            state,
            policy: Arc::new(policy),
        }
    }
}

/// A candidate as parsed: checkable, or INVALID with the reasons.
enum Parsed {
    Valid {
        name: String,
        masked_id: String,
        person_key: String,
        declared: Vec<String>,
    },
    Invalid {
        name: String,
        masked_id: String,
        reasons: Vec<String>,
    },
}

/// Most reasons an INVALID candidate's result lists (then how many more there were).
const MAX_REASONS: usize = 5;

/// Parses candidate `index`; a malformed field makes this candidate INVALID, never the
/// whole request.
fn parse_candidate(state: &super::State, index: usize, c: &pb::Candidate) -> Parsed {
    let mut v = Violations::default();
    let name = person_name_text(&mut v, "name", &c.name, true, 100);
    let id = id_number(&mut v, "id_number", &c.id_number);
    let mut declared = BTreeSet::new();
    if c.declared_enterprises.len() > 100 {
        v.add("declared_enterprises", "at most 100 per candidate");
    } else {
        for (i, d) in c.declared_enterprises.iter().enumerate() {
            let d = d.trim();
            let d = d.strip_prefix("enterprises/").unwrap_or(d);
            match Uscc::parse(d) {
                Ok(u) => {
                    declared.insert(u.as_str().to_string());
                }
                Err(e) => v.add(
                    format!("declared_enterprises[{i}]"),
                    format!("invalid unified social credit code: {e}"),
                ),
            }
        }
    }
    let masked_id = id
        .as_ref()
        .map(|id| id.masked().as_str().to_string())
        .unwrap_or_default();
    match (v.finish(()), name, id) {
        (Ok(()), Some(name), Some(id)) => Parsed::Valid {
            name,
            masked_id,
            person_key: state.keyer.key(&id).as_str().to_string(),
            declared: declared.into_iter().collect(),
        },
        (result, name, _) => {
            let mut reasons: Vec<String> = match result {
                Err(Error::InvalidArgument(violations)) => violations
                    .into_iter()
                    .map(|v| format!("candidates[{index}].{}: {}", v.field, v.description))
                    .collect(),
                _ => vec![format!("candidates[{index}]: invalid")],
            };
            // Bounded: a hundred bad declared codes per candidate over ten thousand
            // candidates would make a report nobody could read back.
            if reasons.len() > MAX_REASONS {
                let more = reasons.len() - MAX_REASONS;
                reasons.truncate(MAX_REASONS);
                reasons.push(format!("candidates[{index}]: {more} more problems"));
            }
            Parsed::Invalid {
                // A refused name is echoed to the office and kept in its report, so any
                // ID number (or most of one) typed into it is masked first.
                // Masked before it is cut to length, so the cut cannot leave a
                // number just short of what masking looks for.
                name: name
                    .unwrap_or_else(|| mask_long_numbers(&c.name).chars().take(100).collect()),
                masked_id,
                reasons,
            }
        }
    }
}

fn date_text(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// A finding as sent to a caller; `grades` says whether the caller may read grades
/// (the grades scope): otherwise an enterprise's grade is left unspecified.
fn finding_out(f: &Finding, grades: bool) -> pb::Finding {
    let link = f.link.as_ref();
    pb::Finding {
        code: f.code.clone(),
        verdict: f.verdict.number(),
        description: f.description.clone(),
        role: link.and_then(|l| l.role).map_or(0, |r| r.number()),
        role_start_date: date_text(link.and_then(|l| l.start)),
        role_end_date: date_text(link.and_then(|l| l.end)),
        declared: link.is_some_and(|l| l.declared),
        enterprise: f.enterprise.as_ref().map(|e| pb::EvidenceEnterprise {
            enterprise: format!("enterprises/{}", e.uscc),
            uscc: e.uscc.clone(),
            display_name: e.display_name.clone(),
            grade: e.grade.filter(|_| grades).map_or(0, |g| g.number()),
        }),
        record: f.record.as_ref().map(|r| pb::EvidenceRecord {
            record: format!("records/{}", r.id),
            kind: r.kind.number(),
            agency: format!("agencies/{}", r.agency_id),
            document_number: r.document_number.clone(),
            decision_date: r.decision_date.to_string(),
            publicity_end_date: r.publicity_end.to_string(),
            tier: r.tier.number(),
        }),
    }
}

fn result_out(r: &CandidateResult, grades: bool) -> pb::CandidateResult {
    pb::CandidateResult {
        index: r.index as i32,
        name: r.name.clone(),
        masked_id_number: r.masked_id.clone(),
        verdict: r.verdict.number(),
        findings: r.findings.iter().map(|f| finding_out(f, grades)).collect(),
        invalid_reasons: r.invalid_reasons.clone(),
    }
}

fn summary_out(report: &VettingReport) -> pb::CrossCheckSummary {
    let c = report.counts;
    pb::CrossCheckSummary {
        report: report.resource_name(),
        policy_version: report.policy_version.clone(),
        clear_count: c.clear as i32,
        review_count: c.review as i32,
        adverse_count: c.adverse as i32,
        invalid_count: c.invalid as i32,
        create_time: Some(timestamp(report.created_at)),
    }
}

fn report_out(report: &VettingReport, grades: bool) -> pb::VettingReport {
    pb::VettingReport {
        name: report.resource_name(),
        purpose: report.purpose.number(),
        case_reference: report.case_reference.clone(),
        policy_version: report.policy_version.clone(),
        agency: format!("agencies/{}", report.agency_id),
        create_time: Some(timestamp(report.created_at)),
        summary: Some(summary_out(report)),
        results: report
            .results
            .iter()
            .map(|r| result_out(r, grades))
            .collect(),
    }
}

type Sender = mpsc::Sender<Result<pb::CrossCheckResponse, Status>>;

/// The full method name cross-check entries carry.
const CROSS_CHECK: &str = "/credithub.v1.VettingService/CrossCheck";

fn event(e: pb::cross_check_response::Event) -> Result<pb::CrossCheckResponse, Status> {
    Ok(pb::CrossCheckResponse { event: Some(e) })
}

/// What a running cross-check needs besides its candidates.
struct Job {
    store: Store,
    policy: Arc<VettingPolicy>,
    report: VettingReport,
    /// The request's id and digest, if it carried a request_id.
    request: Option<(String, String)>,
    today: chrono::NaiveDate,
    /// Whether the caller may read grades (see [`finding_out`]).
    grades: bool,
    /// Whether the caller may still receive the results (a revoked office does not).
    admission: crate::auth::StreamAdmission,
}

/// Checks the candidates group by group, sending each result as soon as its group is
/// judged, then stores the report and sends the summary. Stops as soon as the caller
/// goes away; a check that did not finish leaves no report.
async fn run(mut job: Job, disclosure: Disclosure, candidates: Vec<Parsed>, tx: Sender) {
    let linked_since = job
        .today
        .checked_sub_months(chrono::Months::new(12 * ROLE_LOOKBACK_YEARS))
        .unwrap_or(job.today);
    let mut start = 0;
    let mut group = FIRST_GROUP;
    while start < candidates.len() {
        if let Some(status) = job.admission.refused().await {
            disclosure.end_stream(&tx, status).await;
            return;
        }
        let end = (start + group).min(candidates.len());
        let slice = &candidates[start..end];
        let persons: Vec<&str> = slice
            .iter()
            .filter_map(|p| match p {
                Parsed::Valid { person_key, .. } => Some(person_key.as_str()),
                Parsed::Invalid { .. } => None,
            })
            .collect();
        let declared: Vec<&str> = slice
            .iter()
            .flat_map(|p| match p {
                Parsed::Valid { declared, .. } => declared.as_slice(),
                Parsed::Invalid { .. } => &[],
            })
            .map(String::as_str)
            .collect();
        let evidence = tokio::select! {
            evidence = job.store.vetting_evidence(&persons, &declared, job.today, linked_since) => evidence,
            () = tx.closed() => return,
        };
        let evidence = match evidence {
            Ok(e) => e,
            Err(e) => {
                disclosure.end_stream(&tx, e.into()).await;
                return;
            }
        };
        let results: Vec<CandidateResult> = slice
            .iter()
            .enumerate()
            .map(|(offset, parsed)| {
                let index = start + offset;
                match parsed {
                    Parsed::Valid {
                        name,
                        masked_id,
                        person_key,
                        declared,
                    } => cross_check(
                        &job.policy,
                        job.report.purpose,
                        &Checked {
                            index,
                            name,
                            masked_id,
                            person_key,
                            declared,
                        },
                        &evidence,
                    ),
                    Parsed::Invalid {
                        name,
                        masked_id,
                        reasons,
                    } => CandidateResult {
                        index,
                        person_key: None,
                        name: name.clone(),
                        masked_id: masked_id.clone(),
                        verdict: Verdict::Invalid,
                        findings: Vec::new(),
                        invalid_reasons: reasons.clone(),
                        declared: Vec::new(),
                    },
                }
            })
            .collect();
        // Everyone checked, every declared enterprise, and every enterprise the results
        // reveal (found through a person's roles): a search for any of them finds this
        // check, as it finds a replay of it and a reading of its report.
        let subjects = disclosed_subjects(&results);
        if !disclosure.admit(&tx, subjects, slice.len()).await {
            return;
        }
        for result in results {
            job.report.counts.add(result.verdict);
            let out = event(pb::cross_check_response::Event::Result(result_out(
                &result, job.grades,
            )));
            job.report.results.push(result);
            if tx.send(out).await.is_err() {
                return;
            }
        }
        start = end;
        group = GROUP;
    }
    job.report.created_at = now_millis();
    let request = job
        .request
        .as_ref()
        .map(|(id, digest)| (id.as_str(), digest.as_str()));
    let summary = match job.store.save_vetting_report(&job.report, request).await {
        Ok(SavedReport::Saved) => Ok(summary_out(&job.report)),
        Ok(SavedReport::RequestTaken) => first_attempt(&job).await,
        Err(e) => Err(e.into()),
    };
    let summary = summary.and_then(|s| event(pb::cross_check_response::Event::Summary(s)));
    if let Err(status) = &summary {
        disclosure.ended(status).await;
    }
    let _ = tx.send(summary).await;
}

/// The summary to end a check with whose `request_id` a concurrent attempt stored a
/// report under first. The same check (a retry) that came to the same results: that
/// report. A different check that reused the id, or the same one whose evidence
/// changed between the two attempts (a record filed meanwhile): its results are
/// already shown and audited, and differ from the stored report's, so it is kept as a
/// report of its own, without the id, rather than summed up as another.
async fn first_attempt(job: &Job) -> Result<pb::CrossCheckSummary, Status> {
    let (id, digest) = job
        .request
        .as_ref()
        .expect("only a request id can be taken");
    match job
        .store
        .vetting_report_by_request(&job.report.agency_id, id)
        .await?
    {
        Some((stored, stored_digest))
            if &stored_digest == digest && stored.results == job.report.results =>
        {
            Ok(summary_out(&stored))
        }
        Some(_) => {
            job.store.save_vetting_report(&job.report, None).await?;
            Ok(summary_out(&job.report))
        }
        None => Err(crate::store::Error::Corrupt(format!(
            "request id {id} was taken, but no report holds it"
        ))
        .into()),
    }
}

/// What `results` disclose, as audit subjects: the persons checked, the enterprises
/// they declared, and those the findings name (found through a person's roles).
fn disclosed_subjects(results: &[CandidateResult]) -> BTreeSet<String> {
    let mut subjects = BTreeSet::new();
    for r in results {
        subjects.extend(r.person_key.iter().map(|k| format!("persons/{k}")));
        subjects.extend(r.declared.iter().map(|u| format!("enterprises/{u}")));
        subjects.extend(
            r.findings
                .iter()
                .filter_map(|f| f.enterprise.as_ref())
                .map(|e| format!("enterprises/{}", e.uscc)),
        );
    }
    subjects
}

/// Streams a stored report again, for a retried request, recording each group's
/// subjects before sending it as a fresh check does.
async fn replay(report: VettingReport, grades: bool, disclosure: Disclosure, tx: Sender) {
    for group in report.results.chunks(GROUP) {
        let subjects = disclosed_subjects(group);
        if !disclosure.admit(&tx, subjects, group.len()).await {
            return;
        }
        for r in group {
            if tx
                .send(event(pb::cross_check_response::Event::Result(result_out(
                    r, grades,
                ))))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let _ = tx
        .send(event(pb::cross_check_response::Event::Summary(
            summary_out(&report),
        )))
        .await;
}

#[tonic::async_trait]
impl VettingService for VettingApi {
    async fn cross_check(
        &self,
        req: Request<pb::CrossCheckRequest>,
    ) -> Result<Response<BoxStream<pb::CrossCheckResponse>>, Status> {
        let agency = caller(&req, Scope::VettingRun, &self.state.keyer)?;
        // Grades are for agencies with the grades scope only, here too.
        let grades = agency.scopes.contains(&Scope::GradesRead);
        let note = AuditNote::of(&req);
        let audit_log = req.extensions().get::<AuditLog>().cloned();
        let admission = crate::auth::StreamAdmission::of(
            &req,
            self.state.store.clone(),
            &agency,
            Scope::VettingRun,
        );
        let deadline = super::streaming::deadline_of(&req);
        let r = req.into_inner();
        let (purpose, case_reference) = noting_on_refusal(&note, &r, &self.state.keyer, || {
            agency.require_kind(AgencyKind::VettingOffice, "run cross-checks")?;
            let mut v = Violations::default();
            let purpose = VettingPurpose::from_number(r.purpose);
            if purpose.is_none() {
                let codes: Vec<_> = VettingPurpose::ALL
                    .iter()
                    .map(|p| format!("VETTING_PURPOSE_{}", p.code()))
                    .collect();
                v.add(
                    "purpose",
                    format!("is required: one of {}", codes.join(", ")),
                );
            }
            let case_reference =
                case_reference_text(&mut v, "case_reference", &r.case_reference, true, 128);
            match r.candidates.len() {
                0 => v.add("candidates", "must hold at least one candidate"),
                n if n > MAX_CANDIDATES => v.add(
                    "candidates",
                    format!("holds {n} candidates; at most {MAX_CANDIDATES} per cross-check"),
                ),
                _ => {}
            }
            if let Some(problem) = request_id_problem(&r.request_id) {
                v.add("request_id", problem);
            }
            v.finish(())?;
            // Both are present once the violations above are empty.
            let purpose = purpose.ok_or_else(|| Error::invalid("purpose", "is required"))?;
            let case_reference =
                case_reference.ok_or_else(|| Error::invalid("case_reference", "is required"))?;
            note.purpose(Some(Purpose::CandidateVetting), &case_reference);
            self.state
                .purposes
                .permit(agency.kind, Purpose::CandidateVetting)?;
            note.request_id(&r.request_id);
            Ok((purpose, case_reference))
        })?;

        let parsed: Vec<Parsed> = r
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| parse_candidate(&self.state, i, c))
            .collect();
        // The call's own entry counts the candidates; who was checked is recorded group
        // by group, each entry durable before that group's results are sent, so the
        // first results need not wait for an entry naming all 10,000 persons.
        note.count(parsed.len());
        let disclosure = Disclosure::new(
            audit_log,
            AuditEvent {
                time: 0,
                agency: agency.id.clone(),
                method: CROSS_CHECK.to_string(),
                request_id: note.noted_request_id(),
                subjects: Vec::new(),
                purpose: Some(Purpose::CandidateVetting),
                case_reference: case_reference.clone(),
                outcome: "OK".into(),
                result_count: 0,
            },
        );

        let request = (!r.request_id.is_empty()).then(|| {
            let digest = self.state.keyer.digest(&prost::Message::encode_to_vec(&r));
            (r.request_id.clone(), digest)
        });
        if let Some((id, digest)) = &request {
            if let Some((stored, stored_digest)) = self
                .state
                .store
                .vetting_report_by_request(&agency.id, id)
                .await?
            {
                if &stored_digest != digest {
                    return Err(Error::invalid(
                        "request_id",
                        format!(
                            "{} was already used for a different cross-check ({}); use a new request_id",
                            id,
                            stored.resource_name()
                        ),
                    )
                    .into());
                }
                let answer = disclosure.clone();
                return Ok(super::streaming::answer(64, deadline, answer, move |tx| {
                    replay(stored, grades, disclosure, tx).in_current_span()
                }));
            }
        }
        let job = Job {
            store: self.state.store.clone(),
            policy: self.policy.clone(),
            report: VettingReport {
                id: uuid::Uuid::now_v7().simple().to_string(),
                agency_id: agency.id.clone(),
                purpose,
                case_reference,
                policy_version: self.policy.version().to_string(),
                created_at: 0,
                counts: VerdictCounts::default(),
                results: Vec::with_capacity(parsed.len()),
            },
            request,
            today: self.state.clock.today(),
            grades,
            admission,
        };
        // The check outlives the handler; its log lines keep the call's request id.
        let answer = disclosure.clone();
        Ok(super::streaming::answer(64, deadline, answer, move |tx| {
            run(job, disclosure, parsed, tx).in_current_span()
        }))
    }

    async fn get_vetting_report(
        &self,
        req: Request<pb::GetVettingReportRequest>,
    ) -> Result<Response<pb::GetVettingReportResponse>, Status> {
        let agency = caller(&req, Scope::VettingRun, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let id = resource_id("name", "vettingReports", &req.get_ref().name)?;
        let report = self
            .state
            .store
            .vetting_report(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("vettingReports/{id}")))?;
        // Noted before the checks: a refused attempt at a report is an attempt at the
        // persons in it.
        note.subjects(disclosed_subjects(&report.results));
        // Another office's report is answered as one that does not exist: a different
        // answer would confirm to anyone holding the scope that someone was vetted
        // under that id. (The attempt is still logged with the persons in it.)
        if report.agency_id != agency.id {
            return Err(Error::NotFound(format!("vettingReports/{id}")).into());
        }
        // Reading a report again discloses what the cross-check did, for the same
        // purpose and case: bound and audited as that purpose.
        note.purpose(Some(Purpose::CandidateVetting), &report.case_reference);
        self.state
            .purposes
            .permit(agency.kind, Purpose::CandidateVetting)?;
        note.count(report.results.len());
        Ok(Response::new(pb::GetVettingReportResponse {
            report: Some(report_out(
                &report,
                self.state.shows_grades(&agency, Purpose::CandidateVetting),
            )),
        }))
    }

    async fn list_vetting_reports(
        &self,
        req: Request<pb::ListVettingReportsRequest>,
    ) -> Result<Response<pb::ListVettingReportsResponse>, Status> {
        let agency = caller(&req, Scope::VettingRun, &self.state.keyer)?;
        let r = req.get_ref();
        let size = page_size(r.page_size)?;
        let query = format!("vettingReports?agency={}", agency.id);
        let before: Option<String> = decode_token(&query, &r.page_token)?;
        let mut reports = self
            .state
            .store
            .list_vetting_reports(&agency.id, before.as_deref(), size + 1)
            .await?;
        let next_page_token = next_page(&mut reports, size, &query, |last| last.id.clone());
        AuditNote::of(&req).count(reports.len());
        Ok(Response::new(pb::ListVettingReportsResponse {
            reports: reports
                .iter()
                .map(|r| report_out(r, agency.scopes.contains(&Scope::GradesRead)))
                .collect(),
            next_page_token,
        }))
    }
}
