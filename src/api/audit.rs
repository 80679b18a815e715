//! `AuditService`: the audit log for supervisors holding the `audit:read` scope.

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::convert::{enterprise_name, id_number, resource_id, timestamp};
use super::paging::{decode_token, next_page, page_size, size_within_bytes};
use super::Shared;
use crate::audit::{AuditLog, AuditNote, Disclosure};
use crate::auth::caller;
use crate::domain::agency::Scope;
use crate::domain::audit::AuditEntry;
use crate::domain::audit::AuditEvent;
use crate::domain::{Error, Violations};
use crate::proto::v1::{self as pb, audit_service_server::AuditService};
use crate::store::AuditFilter;

/// Entries read per database round trip while exporting.
const EXPORT_PAGE: usize = 1_000;

/// The method whose pages are logged as they are sent.
const EXPORT_METHOD: &str = "/credithub.v1.AuditService/ExportAuditEntries";

/// The audit service.
#[derive(Debug, Clone)]
pub struct AuditApi {
    state: Shared,
}

impl AuditApi {
    /// Serves the audit log from shared state.
    pub fn new(state: Shared) -> Self {
        AuditApi { state }
    }

    /// The store filter for a request's filter fields, every bad field named.
    fn filter(
        &self,
        agency: &str,
        enterprise: &str,
        person_id: &str,
        method: &str,
        start: Option<&prost_types::Timestamp>,
        end: Option<&prost_types::Timestamp>,
    ) -> Result<AuditFilter, Error> {
        let mut v = Violations::default();
        let mut filter = AuditFilter::default();
        if !agency.is_empty() {
            filter.agency = v.check(resource_id("agency", "agencies", agency).map(str::to_string));
        }
        let enterprise = (!enterprise.is_empty())
            .then(|| v.check(enterprise_name("subject_enterprise", enterprise)))
            .flatten();
        let person = (!person_id.is_empty())
            .then(|| id_number(&mut v, "subject_person_id_number", person_id))
            .flatten();
        filter.subject = match (enterprise, person) {
            (Some(_), Some(_)) => {
                v.add(
                    "subject_person_id_number",
                    "give either subject_enterprise or subject_person_id_number, not both",
                );
                None
            }
            (Some(u), None) => Some(u.resource_name()),
            (None, Some(id)) => Some(format!("persons/{}", self.state.keyer.key(&id).as_str())),
            (None, None) => None,
        };
        if !method.is_empty() {
            if method == crate::audit::UNKNOWN_METHOD
                || method.starts_with('/')
                    && method.len() <= 200
                    && method.matches('/').count() == 2
                    && method.bytes().all(|b| b.is_ascii_graphic())
            {
                filter.method = Some(method.to_string());
            } else {
                v.add(
                    "method",
                    "must be a full gRPC method, e.g. /credithub.v1.GradeService/GetCreditGrade, or unknown",
                );
            }
        }
        // Milliseconds of a time within 0001-01-01 ..= 9999-12-31 (what protobuf's
        // Timestamp allows) with nanos in range; anything else is refused, never left
        // to overflow.
        const SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
        let mut millis = |field: &str, t: &prost_types::Timestamp| {
            if SECONDS.contains(&t.seconds) && (0..1_000_000_000).contains(&t.nanos) {
                Some(t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
            } else {
                v.add(
                    field,
                    "must be a valid time between 0001-01-01 and 9999-12-31 (nanos 0 to 999,999,999)",
                );
                None
            }
        };
        filter.start = start.and_then(|t| millis("start_time", t));
        filter.end = end.and_then(|t| millis("end_time", t));
        if let (Some(s), Some(e)) = (filter.start, filter.end) {
            if s > e {
                v.add("start_time", "must not be after end_time");
            }
        }
        v.finish(filter)
    }
}

fn entry_out(e: &AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        name: format!("auditEntries/{}", e.seq),
        sequence: e.seq,
        time: Some(timestamp(e.event.time)),
        agency: if e.event.agency.is_empty() {
            String::new()
        } else {
            format!("agencies/{}", e.event.agency)
        },
        method: e.event.method.clone(),
        request_id: e.event.request_id.clone(),
        subjects: e.event.subjects.clone(),
        purpose: e.event.purpose.map_or(0, |p| p.number()),
        case_reference: e.event.case_reference.clone(),
        outcome: e.event.outcome.clone(),
        result_count: e.event.result_count,
        previous_hash: e.previous_hash.clone(),
        hash: e.hash.clone(),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_entries(
        &self,
        req: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        caller(&req, Scope::AuditRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.into_inner();
        let limit = page_size(body.page_size)?;
        let filter = self.filter(
            &body.agency,
            &body.subject_enterprise,
            &body.subject_person_id_number,
            &body.method,
            body.start_time.as_ref(),
            body.end_time.as_ref(),
        )?;
        note.subjects(filter.subject.clone());
        let query = format!("{filter:?}");
        let after: i64 = decode_token(&query, &body.page_token)?.unwrap_or(0);
        let mut page = self
            .state
            .store
            .list_audit(&filter, after, limit + 1)
            .await?;
        let limit = size_within_bytes(&page, limit, |e| prost::Message::encoded_len(&entry_out(e)));
        let next_page_token = next_page(&mut page, limit, &query, |e| e.seq);
        note.count(page.len());
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: page.iter().map(entry_out).collect(),
            next_page_token,
        }))
    }

    async fn export_audit_entries(
        &self,
        req: Request<pb::ExportAuditEntriesRequest>,
    ) -> Result<Response<BoxStream<pb::ExportAuditEntriesResponse>>, Status> {
        let agency = caller(&req, Scope::AuditRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let audit_log = req.extensions().get::<AuditLog>().cloned();
        let mut admission = crate::auth::StreamAdmission::of(
            &req,
            self.state.store.clone(),
            &agency,
            Scope::AuditRead,
        );
        let deadline = super::streaming::deadline_of(&req);
        let body = req.into_inner();
        let filter = self.filter(
            &body.agency,
            &body.subject_enterprise,
            &body.subject_person_id_number,
            &body.method,
            body.start_time.as_ref(),
            body.end_time.as_ref(),
        )?;
        note.subjects(filter.subject.clone());
        // What the stream discloses is logged page by page, before each page: the
        // call's own entry, written when this handler returns, cannot count it.
        let disclosure = Disclosure::new(
            audit_log,
            AuditEvent {
                time: 0,
                agency: agency.id.clone(),
                method: EXPORT_METHOD.to_string(),
                request_id: note.noted_request_id(),
                subjects: Vec::new(),
                purpose: None,
                case_reference: String::new(),
                outcome: "OK".into(),
                result_count: 0,
            },
        );
        let store = self.state.store.clone();
        let answer = disclosure.clone();
        Ok(super::streaming::answer(
            EXPORT_PAGE,
            deadline,
            answer,
            move |tx| async move {
                let mut after = 0;
                loop {
                    // An export of the whole log takes a while: a revoked agency does not
                    // receive the rest.
                    if let Some(status) = admission.refused().await {
                        disclosure.end_stream(&tx, status).await;
                        return;
                    }
                    let page = match store.list_audit(&filter, after, EXPORT_PAGE).await {
                        Ok(page) => page,
                        Err(e) => {
                            disclosure.end_stream(&tx, Status::from(e)).await;
                            return;
                        }
                    };
                    if !page.is_empty() {
                        let subjects = filter.subject.iter().cloned();
                        if !disclosure.admit(&tx, subjects, page.len()).await {
                            return;
                        }
                    }
                    for entry in &page {
                        after = entry.seq;
                        let msg = pb::ExportAuditEntriesResponse {
                            entry: Some(entry_out(entry)),
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return; // the reader went away
                        }
                    }
                    if page.len() < EXPORT_PAGE {
                        return;
                    }
                }
            },
        ))
    }
}
