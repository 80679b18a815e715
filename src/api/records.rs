//! `RecordService`: agencies file, revise and withdraw credit records; readers list them.

use std::collections::HashMap;

use chrono::NaiveDate;
use tonic::{Request, Response, Status};

use super::convert::{
    enterprise_name, filter_enum, id_number, record_in, record_out, record_status_filter,
    resource_id, ID_IN_TEXT,
};
use super::paging::{decode_token, next_page, page_size, size_within_bytes};
use super::subjects::noting_on_refusal;
use super::{batch_size, replayed, request_key, Shared};
use crate::audit::AuditNote;
use crate::auth::caller;
use crate::domain::agency::Scope;
use crate::domain::codes::RecordKind;
use crate::domain::id_scan::{contains_id_number, contains_old_id_number};
use crate::domain::record::{check_consistency, check_filer, Record};
use crate::domain::{Error, Violations};
use crate::proto::v1::{self as pb, record_service_server::RecordService};
use crate::store::{RecordFilter, Replay, RevisionPlace, SubmitResult};

/// The record service.
#[derive(Debug, Clone)]
pub struct RecordApi {
    state: Shared,
}

impl RecordApi {
    /// Serves records from shared state.
    pub fn new(state: Shared) -> Self {
        RecordApi { state }
    }
}

fn submit_response(result: &SubmitResult, today: NaiveDate) -> pb::BatchSubmitRecordsResponse {
    pb::BatchSubmitRecordsResponse {
        records: result
            .records
            .iter()
            .map(|r| record_out(r, today))
            .collect(),
        outcomes: result.outcomes.iter().map(|o| o.number()).collect(),
    }
}

#[tonic::async_trait]
impl RecordService for RecordApi {
    async fn batch_submit_records(
        &self,
        req: Request<pb::BatchSubmitRecordsRequest>,
    ) -> Result<Response<pb::BatchSubmitRecordsResponse>, Status> {
        let agency = caller(&req, Scope::RecordsWrite, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.into_inner();
        note.request_id(&body.request_id);
        let (key, day, batch) = noting_on_refusal(&note, &body, &self.state.keyer, || {
            batch_size("records", body.records.len())?;
            // Filing rights come before content: a tax bureau learns nothing more than that
            // it may not file court records.
            for (i, r) in body.records.iter().enumerate() {
                if let Some(kind) = RecordKind::from_number(r.kind) {
                    check_filer(kind, agency.kind)
                        .map_err(|why| Error::PermissionDenied(format!("records[{i}]: {why}")))?;
                }
            }
            let key = request_key(
                &self.state,
                &agency.id,
                "BatchSubmitRecords",
                &body.request_id,
                &body,
            )?;
            let day = self.state.clock.today();
            let mut v = Violations::default();
            let mut seen: HashMap<&str, usize> = HashMap::new();
            let mut batch = Vec::with_capacity(body.records.len());
            for (i, r) in body.records.iter().enumerate() {
                let path = format!("records[{i}]");
                if let Some(p) = &r.provenance {
                    if let Some(first) = seen.insert(p.source_record_id.trim(), i) {
                        v.add(
                            format!("{path}.provenance.source_record_id"),
                            format!(
                            "repeats records[{first}]; submit each source record once per batch"
                        ),
                        );
                    }
                }
                if let Some(mut new) = record_in(&mut v, &self.state.keyer, &path, r) {
                    // Checked as given, so that a violation names the item as listed.
                    check_consistency(&path, &new.content, day, &mut v);
                    new.content = new.content.normalised();
                    batch.push(new);
                }
            }
            Ok((key, day, v.finish(batch)?))
        })?;
        note.subjects(batch.iter().map(|r| r.content.subject.audit_name()))
            .count(batch.len());
        let response = match self
            .state
            .store
            .submit_records(&agency, batch, day, key, &|result| {
                prost::Message::encode_to_vec(&submit_response(result, day))
            })
            .await?
        {
            Replay::Fresh(result) => submit_response(&result, day),
            Replay::Replayed(bytes) => replayed(&bytes)?,
        };
        Ok(Response::new(response))
    }

    async fn withdraw_record(
        &self,
        req: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        let agency = caller(&req, Scope::RecordsWrite, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.get_ref();
        note.request_id(&body.request_id);
        let mut v = Violations::default();
        let id = match resource_id("name", "records", &body.name) {
            Ok(id) => Some(id),
            Err(_) => {
                v.add("name", "must be a resource name records/{id}");
                None
            }
        };
        let reason = body.reason.trim();
        if reason.is_empty() {
            v.add("reason", "is required: say why the record is withdrawn");
        } else if reason.chars().count() > 1_000 || reason.chars().any(|c| c.is_control()) {
            v.add("reason", "must be at most 1,000 printable characters");
        } else if contains_id_number(reason) || contains_old_id_number(reason) {
            v.add("reason", ID_IN_TEXT);
        }
        let key = v.check(request_key(
            &self.state,
            &agency.id,
            "WithdrawRecord",
            &body.request_id,
            body,
        ));
        let (id, key) = v.finish((id, key))?;
        let (id, key) = (id.unwrap_or_default(), key.flatten());
        // Noted before the write (see `AuditNote`).
        if let Some(record) = self.state.store.get_record(id).await? {
            note.subject(record.content.subject.audit_name()).count(1);
        }
        let today = self.state.clock.today();
        let respond = |record: &Record| pb::WithdrawRecordResponse {
            record: Some(record_out(record, today)),
        };
        let response = match self
            .state
            .store
            .withdraw_record(&agency, id, reason, today, key, &|record| {
                prost::Message::encode_to_vec(&respond(record))
            })
            .await?
        {
            Replay::Fresh(record) => respond(&record),
            Replay::Replayed(bytes) => replayed(&bytes)?,
        };
        Ok(Response::new(response))
    }

    async fn get_record(
        &self,
        req: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::GetRecordResponse>, Status> {
        caller(&req, Scope::RecordsRead, &self.state.keyer)?;
        let id = resource_id("name", "records", &req.get_ref().name)?;
        let record = self
            .state
            .store
            .get_record(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("records/{id}")))?;
        AuditNote::of(&req)
            .subject(record.content.subject.audit_name())
            .count(1);
        Ok(Response::new(pb::GetRecordResponse {
            record: Some(record_out(&record, self.state.clock.today())),
        }))
    }

    async fn list_records(
        &self,
        req: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        caller(&req, Scope::RecordsRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.into_inner();
        let (limit, subject_key) = noting_on_refusal(&note, &body, &self.state.keyer, || {
            let limit = page_size(body.page_size)?;
            let subject_key = match (
                body.subject_enterprise.is_empty(),
                body.subject_person_id_number.is_empty(),
            ) {
                // Not an open listing of every record of every agency: a caller asks about
                // one subject, and its audit entry names that subject.
                (true, true) => {
                    return Err(Error::invalid(
                        "subject_enterprise",
                        "is required: give subject_enterprise or subject_person_id_number",
                    )
                    .into())
                }
                (false, true) => enterprise_name("subject_enterprise", &body.subject_enterprise)?
                    .as_str()
                    .to_string(),
                (true, false) => {
                    let mut v = Violations::default();
                    let id = id_number(
                        &mut v,
                        "subject_person_id_number",
                        &body.subject_person_id_number,
                    );
                    let id = v.finish(id)?.expect("parsed when no violation");
                    self.state.keyer.key(&id).as_str().to_string()
                }
                (false, false) => {
                    return Err(Error::invalid(
                        "subject_person_id_number",
                        "give either subject_enterprise or subject_person_id_number, not both",
                    )
                    .into())
                }
            };
            Ok((limit, subject_key))
        })?;
        if body.subject_enterprise.is_empty() {
            note.subject(format!("persons/{subject_key}"));
        } else {
            note.subject(format!("enterprises/{subject_key}"));
        }
        let filter = RecordFilter {
            subject_key,
            kind: filter_enum("kind", body.kind, RecordKind::from_number)?,
            status: record_status_filter(body.status)?,
        };
        let query = format!("{filter:?}");
        let after: Option<(NaiveDate, String)> = decode_token(&query, &body.page_token)?;
        let day = self.state.clock.today();
        let mut page = self
            .state
            .store
            .list_records(&filter, day, after, limit + 1)
            .await?;
        let limit = size_within_bytes(&page, limit, |r| {
            prost::Message::encoded_len(&record_out(r, day))
        });
        let next_page_token = next_page(&mut page, limit, &query, |last| {
            (last.content.decision_date, last.id.clone())
        });
        note.subjects(page.iter().map(|r| r.content.subject.audit_name()))
            .count(page.len());
        Ok(Response::new(pb::ListRecordsResponse {
            records: page.iter().map(|r| record_out(r, day)).collect(),
            next_page_token,
        }))
    }

    async fn list_record_revisions(
        &self,
        req: Request<pb::ListRecordRevisionsRequest>,
    ) -> Result<Response<pb::ListRecordRevisionsResponse>, Status> {
        caller(&req, Scope::RecordsRead, &self.state.keyer)?;
        let req_note = AuditNote::of(&req);
        let body = req.into_inner();
        let id = resource_id("name", "records", &body.name)?.to_string();
        let limit = page_size(body.page_size)?;
        let after: Option<RevisionPlace> = decode_token(&id, &body.page_token)?;
        if self.state.store.get_record(&id).await?.is_none() {
            return Err(Error::NotFound(format!("records/{id}")).into());
        }
        let mut page = self
            .state
            .store
            .list_record_revisions(&id, after.as_ref(), limit + 1)
            .await?;
        let day = self.state.clock.today();
        let limit = size_within_bytes(&page, limit, |(_, r)| {
            prost::Message::encoded_len(&record_out(r, day))
        });
        let next_page_token = next_page(&mut page, limit, &id, |(place, _)| place.clone());
        // A revision may have moved the record to another subject: every subject the
        // page shows is named.
        let mut subjects: Vec<String> = page
            .iter()
            .map(|(_, r)| r.content.subject.audit_name())
            .collect();
        subjects.sort();
        subjects.dedup();
        req_note.subjects(subjects).count(page.len());
        let page: Vec<Record> = page.into_iter().map(|(_, r)| r).collect();
        Ok(Response::new(pb::ListRecordRevisionsResponse {
            revisions: page.iter().map(|r| record_out(r, day)).collect(),
            next_page_token,
        }))
    }
}
