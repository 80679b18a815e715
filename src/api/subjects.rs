//! Whom a request names, read without judging it: for the audit entry of a call refused
//! before its handler looked at the request (an agency without the scope), so that "who
//! tried to look at this enterprise" finds the refused attempts too.

use tonic::Status;

use super::convert::enterprise_name;
use crate::audit::AuditNote;
use crate::domain::ids::{IdNumber, PersonKeyer, Uscc};
use crate::proto::v1 as pb;

/// Most subjects one refused call notes: a 1,000-item batch names at most 1,000, and a
/// cross-check's 10,000 candidates are noted by its handler once it is allowed.
const MAX_NOTED: usize = 1_000;

/// The audit subjects (`enterprises/{uscc}`, `persons/{key}`) a request names. What
/// does not parse is skipped: the call is refused whatever it holds.
pub trait Subjects {
    /// The subjects, at most [`MAX_NOTED`]; none for a request that names nobody.
    fn subjects(&self, _keyer: &PersonKeyer) -> Vec<String> {
        Vec::new()
    }
}

fn enterprise(name: &str) -> Option<String> {
    enterprise_name("", name).ok().map(|u| u.resource_name())
}

fn uscc(code: &str) -> Option<String> {
    Uscc::parse(code).ok().map(|u| u.resource_name())
}

fn person(keyer: &PersonKeyer, id_number: &str) -> Option<String> {
    IdNumber::parse(id_number)
        .ok()
        .map(|id| format!("persons/{}", keyer.key(&id).as_str()))
}

/// The distinct subjects, the first [`MAX_NOTED`] in order: repeats do not push the
/// others out.
fn bounded(subjects: impl Iterator<Item = Option<String>>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    for s in subjects.flatten() {
        if seen.len() == MAX_NOTED {
            break;
        }
        seen.insert(s);
    }
    seen.into_iter().collect()
}

impl Subjects for pb::BatchUpsertEnterprisesRequest {
    fn subjects(&self, _: &PersonKeyer) -> Vec<String> {
        bounded(self.enterprises.iter().map(|e| uscc(&e.uscc)))
    }
}

impl Subjects for pb::BatchSubmitRecordsRequest {
    fn subjects(&self, keyer: &PersonKeyer) -> Vec<String> {
        bounded(self.records.iter().map(|r| {
            match r.subject.as_ref().and_then(|s| s.subject.as_ref())? {
                pb::subject::Subject::Enterprise(name) => enterprise(name),
                pb::subject::Subject::Person(p) => person(keyer, &p.id_number),
            }
        }))
    }
}

impl Subjects for pb::BatchGetCreditGradesRequest {
    fn subjects(&self, _: &PersonKeyer) -> Vec<String> {
        bounded(self.names.iter().map(|n| enterprise(n)))
    }
}

impl Subjects for pb::CrossCheckRequest {
    fn subjects(&self, keyer: &PersonKeyer) -> Vec<String> {
        bounded(self.candidates.iter().map(|c| person(keyer, &c.id_number)))
    }
}

/// Requests that name one enterprise in the given field (`enterprises/{uscc}`).
macro_rules! names_an_enterprise {
    ($($request:ident . $field:ident),* $(,)?) => {
        $(impl Subjects for pb::$request {
            fn subjects(&self, _: &PersonKeyer) -> Vec<String> {
                bounded(std::iter::once(enterprise(&self.$field)))
            }
        })*
    };
}

names_an_enterprise!(
    GetEnterpriseRequest.name,
    GetCreditGradeRequest.name,
    ListGradeHistoryRequest.name,
    IssueCertificateRequest.enterprise,
    ListCertificatesRequest.enterprise,
    CreditCheckupRequest.enterprise,
    ApplyForRepairRequest.enterprise,
    ListRepairApplicationsRequest.enterprise,
    RecordSpotCheckResultRequest.enterprise,
);

/// Requests filtered by a subject: an enterprise or a person's ID number.
macro_rules! filters_by_subject {
    ($($request:ident),* $(,)?) => {
        $(impl Subjects for pb::$request {
            fn subjects(&self, keyer: &PersonKeyer) -> Vec<String> {
                bounded(
                    [
                        enterprise(&self.subject_enterprise),
                        person(keyer, &self.subject_person_id_number),
                    ]
                    .into_iter(),
                )
            }
        })*
    };
}

filters_by_subject!(
    ListRecordsRequest,
    ListAuditEntriesRequest,
    ExportAuditEntriesRequest
);

/// Requests that name their subjects only through a stored resource (a record, a
/// certificate, a report, a plan) or name none: the handler notes them once allowed.
macro_rules! names_nobody {
    ($($request:ident),* $(,)?) => {
        $(impl Subjects for pb::$request {})*
    };
}

names_nobody!(
    ListEnterprisesRequest,
    WithdrawRecordRequest,
    GetRecordRequest,
    ListRecordRevisionsRequest,
    WatchGradeChangesRequest,
    GetGradeDistributionRequest,
    GetVettingReportRequest,
    ListVettingReportsRequest,
    GetCertificateRequest,
    RevokeCertificateRequest,
    GetRepairApplicationRequest,
    RecordCreditInterviewRequest,
    DecideRepairRequest,
    ListRepairCandidatesRequest,
    CreateSpotCheckPlanRequest,
    DrawSpotCheckPlanRequest,
    GetSpotCheckPlanRequest,
    MergePlansRequest,
    BatchUpsertInspectorsRequest,
    ListInspectorsRequest,
);

/// Runs a handler's `checks` of `body`; when they refuse the call, its audit entry
/// names whom the request named, since the checks may stop before noting anyone.
pub fn noting_on_refusal<T: Subjects, R>(
    note: &AuditNote,
    body: &T,
    keyer: &PersonKeyer,
    checks: impl FnOnce() -> Result<R, Status>,
) -> Result<R, Status> {
    checks().inspect_err(|_| {
        note.replace_subjects(body.subjects(keyer));
    })
}
