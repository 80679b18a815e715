//! `RepairService`: the credit check-up, repair applications through interview and
//! decision, and screening for enterprises that could apply.

use std::sync::Arc;

use chrono::NaiveDate;
use tonic::{Request, Response, Status};

use super::convert::{
    date, enterprise_name, filter_enum, person_name_text, prose, required_enum, resource_id, text,
    timestamp,
};
use super::paging::{decode_token, next_page, page_size, size_within_bytes};
use super::subjects::noting_on_refusal;
use super::{replayed, request_key, Shared};
use crate::audit::AuditNote;
use crate::auth::caller;
use crate::domain::agency::Scope;
use crate::domain::codes::{AgencyKind, Purpose, RecordKind, RecordStatus, RegulatoryDomain};
use crate::domain::grading::{grade, Fact, GradeInput, DEFAULT_MODEL};
use crate::domain::ids::Uscc;
use crate::domain::record::Record;
use crate::domain::repair::{
    assess, Assessment, Interview, RepairApplication, RepairPolicy, RepairRequirement, RepairState,
    Repairability, WorkCalendar,
};
use crate::domain::{Error, PreconditionViolation, Violations};
use crate::proto::v1::{self as pb, repair_service_server::RepairService};
use crate::store::{now_millis, RepairFilter, Replay};

/// Most records one application may name.
const MAX_RECORDS: usize = 100;
/// Enterprises screened per database round.
const POOL_BATCH: usize = 200;

/// The repair service.
#[derive(Clone)]
pub struct RepairApi {
    state: Shared,
    policy: Arc<RepairPolicy>,
    calendar: Arc<WorkCalendar>,
}

impl RepairApi {
    pub fn new(state: Shared, policy: RepairPolicy, calendar: WorkCalendar) -> Self {
        RepairApi {
            state,
            policy: Arc::new(policy),
            calendar: Arc::new(calendar),
        }
    }

    fn assess(
        &self,
        r: &Record,
        all: &[Record],
        restructuring: bool,
        today: NaiveDate,
    ) -> Option<Assessment> {
        assess(&self.policy, r, all, restructuring, today)
    }
}

fn date_text(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn application_out(a: &RepairApplication, today: NaiveDate) -> pb::RepairApplication {
    pb::RepairApplication {
        name: a.resource_name(),
        enterprise: a.uscc.resource_name(),
        records: a.records.iter().map(|r| format!("records/{r}")).collect(),
        commitment_letter_reference: a.commitment_letter_reference.clone(),
        proof_references: a.proof_references.clone(),
        state: a.state.number(),
        agency: format!("agencies/{}", a.agency_id),
        accept_time: Some(timestamp(a.accepted_at)),
        decision_deadline_date: a.deadline.to_string(),
        overdue: a.overdue(today),
        interview_required: a.interview_required,
        interview: a.interview.as_ref().map(|i| pb::CreditInterview {
            interview_date: i.date.to_string(),
            officer: i.officer.clone(),
            outcome: i.outcome.clone(),
        }),
        decision_reason: a.decision_reason.clone().unwrap_or_default(),
        decide_time: a.decided_at.map(timestamp),
        decided_by: a
            .decided_by
            .as_ref()
            .map(|d| format!("agencies/{d}"))
            .unwrap_or_default(),
    }
}

fn item_out(r: &Record, a: &Assessment) -> pb::CheckupItem {
    let c = &r.content;
    pb::CheckupItem {
        record: r.resource_name(),
        kind: c.kind.number(),
        tier: c.tier.number(),
        domain: c.domain.number(),
        document_number: c.document_number.clone(),
        decision_date: c.decision_date.to_string(),
        publicity_end_date: c.publicity_end.to_string(),
        repairability: a.repairability.number(),
        repairable_from_date: date_text(a.from),
        requirements: a.requirements.iter().map(|q| q.number()).collect(),
        reason: a.reason.clone(),
    }
}

/// Why a named record cannot go into an application now.
fn not_repairable(r: &Record, a: Option<&Assessment>) -> PreconditionViolation {
    let description = match a {
        None => format!(
            "{} is not an active negative record the market-regulation bureau repairs",
            r.resource_name()
        ),
        Some(a) => match a.from {
            Some(from) if a.repairability == Repairability::RepairableLater => {
                format!(
                    "{} can be repaired from {from}: {}",
                    r.resource_name(),
                    a.reason
                )
            }
            _ => format!(
                "{} cannot be repaired by application: {}",
                r.resource_name(),
                a.reason
            ),
        },
    };
    PreconditionViolation {
        kind: "NOT_REPAIRABLE_NOW".into(),
        subject: r.resource_name(),
        description,
    }
}

/// How a write on an application answers: the application as it now stands, or, for a
/// retried request, the response the first attempt gave.
struct Reply<M> {
    wrap: fn(Option<pb::RepairApplication>) -> M,
    today: NaiveDate,
}

impl<M: prost::Message + Default> Reply<M> {
    fn encode(&self, a: &RepairApplication) -> Vec<u8> {
        (self.wrap)(Some(application_out(a, self.today))).encode_to_vec()
    }

    fn answer(&self, replay: Replay<RepairApplication>) -> Result<M, Status> {
        match replay {
            Replay::Fresh(a) => Ok((self.wrap)(Some(application_out(&a, self.today)))),
            Replay::Replayed(bytes) => replayed(&bytes),
        }
    }
}

#[tonic::async_trait]
impl RepairService for RepairApi {
    async fn credit_checkup(
        &self,
        req: Request<pb::CreditCheckupRequest>,
    ) -> Result<Response<pb::CreditCheckupResponse>, Status> {
        let agency = caller(&req, Scope::RepairManage, &self.state.keyer)?;
        // Grades are internal to supervision: a repair desk without grades:read, or of
        // a kind that may not look grades up for credit repair, sees the items and what
        // repair would change about them, not the grade.
        let sees_grades = self.state.shows_grades(&agency, Purpose::CreditRepair);
        let uscc = enterprise_name("enterprise", &req.get_ref().enterprise)?;
        let note = AuditNote::of(&req);
        note.purpose(Some(Purpose::CreditRepair), "")
            .subject(uscc.resource_name());
        let store = &self.state.store;
        let enterprise = store
            .get_enterprise(&uscc)
            .await?
            .ok_or_else(|| Error::NotFound(uscc.resource_name()))?;
        let today = self.state.clock.today();
        let records = store.records_about_key(uscc.as_str()).await?;
        let restructuring = enterprise.in_bankruptcy_restructuring;
        let mut items: Vec<(&Record, Assessment)> = records
            .iter()
            .filter_map(|r| {
                self.assess(r, &records, restructuring, today)
                    .map(|a| (r, a))
            })
            .collect();
        items.sort_by_key(|(r, _)| (r.content.decision_date, r.id.clone()));
        // Repairable today but already applied for: the officer is told it awaits a
        // decision, instead of being advised to apply again (which is refused).
        for app in store.open_repair_applications(&uscc).await? {
            for (r, a) in items.iter_mut() {
                if a.repairability == Repairability::RepairableNow && app.records.contains(&r.id) {
                    a.repairability = Repairability::Applied;
                    a.reason = format!(
                        "Already applied for: {} (accepted {}, decision due by {}) awaits a decision (修复申请已受理，待决定).",
                        app.resource_name(),
                        app.accepted_date,
                        app.deadline
                    );
                }
            }
        }

        // The grade once everything repairable today (or applied for) is repaired.
        let model = store
            .models()
            .get(DEFAULT_MODEL)
            .ok_or_else(|| Error::NotFound(format!("models/{DEFAULT_MODEL}")))?;
        let repairable: Vec<&str> = items
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a.repairability,
                    Repairability::RepairableNow | Repairability::Applied
                )
            })
            .map(|(r, _)| r.id.as_str())
            .collect();
        let own: Vec<Fact> = records
            .iter()
            .map(|r| {
                let mut f = Fact::from(r);
                if repairable.contains(&r.id.as_str()) {
                    f.status = RecordStatus::Repaired;
                }
                f
            })
            .collect();
        let rep: Vec<Fact> = match enterprise.legal_representative() {
            Some(role) => {
                // Read (to weigh the related-party rules), so noted.
                note.subject(format!("persons/{}", role.person.key.as_str()));
                store
                    .records_about_key(role.person.key.as_str())
                    .await?
                    .iter()
                    .map(Fact::from)
                    .collect()
            }
            None => Vec::new(),
        };
        let current = store
            .grades(&[&uscc], DEFAULT_MODEL)
            .await?
            .pop()
            .flatten()
            .map(|g| g.graded);
        // Repairing this enterprise's records leaves other enterprises' D grades, and
        // so a shared legal representative's reason, as they are.
        let represented_hard_d = current
            .as_ref()
            .map(|g| g.represented_hard_d(model))
            .unwrap_or_default();
        let after = grade(
            model,
            GradeInput {
                own: &own,
                legal_representative: &rep,
                represented_hard_d: &represented_hard_d,
                today,
            },
        );
        note.count(items.len());
        Ok(Response::new(pb::CreditCheckupResponse {
            enterprise: uscc.resource_name(),
            enterprise_display_name: enterprise.display_name.clone(),
            in_bankruptcy_restructuring: restructuring,
            items: items.iter().map(|(r, a)| item_out(r, a)).collect(),
            current_grade: current
                .as_ref()
                .filter(|_| sees_grades)
                .map_or(0, |g| g.grade.number()),
            current_score: current
                .as_ref()
                .filter(|_| sees_grades)
                .map_or(0, |g| g.score),
            grade_after_repair: if sees_grades { after.grade.number() } else { 0 },
            score_after_repair: if sees_grades { after.score } else { 0 },
        }))
    }

    async fn apply_for_repair(
        &self,
        req: Request<pb::ApplyForRepairRequest>,
    ) -> Result<Response<pb::ApplyForRepairResponse>, Status> {
        let agency = caller(&req, Scope::RepairManage, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let uscc = v.check(enterprise_name("enterprise", &r.enterprise));
        // Noted before any refusal: an auditor asks who acted on this enterprise.
        if let Some(u) = &uscc {
            note.subject(u.resource_name());
        }
        match r.records.len() {
            0 => v.add("records", "must name at least one record to repair"),
            n if n > MAX_RECORDS => {
                return Err(Error::invalid(
                    "records",
                    format!("names {n} records; at most {MAX_RECORDS}"),
                )
                .into())
            }
            _ => {}
        }
        let mut ids: Vec<String> = Vec::new();
        for (i, name) in r.records.iter().enumerate() {
            if let Some(id) = v.check(resource_id(&format!("records[{i}]"), "records", name)) {
                if ids.iter().any(|x| x == id) {
                    v.add(format!("records[{i}]"), "repeats an earlier record");
                } else {
                    ids.push(id.to_string());
                }
            }
        }
        let letter = text(
            &mut v,
            "commitment_letter_reference",
            &r.commitment_letter_reference,
            true,
            200,
        );
        if r.proof_references.len() > 20 {
            v.add("proof_references", "at most 20 references");
        }
        let proofs: Vec<String> = r
            .proof_references
            .iter()
            .enumerate()
            .filter_map(|(i, p)| text(&mut v, &format!("proof_references[{i}]"), p, true, 200))
            .collect();
        let key = v.check(request_key(
            &self.state,
            &agency.id,
            "ApplyForRepair",
            &r.request_id,
            r,
        ));
        let (uscc, letter, key) = v.finish_all((uscc, letter, key))?;
        note.purpose(Some(Purpose::CreditRepair), "")
            .request_id(&r.request_id);
        let store = &self.state.store;
        // A retry gets the first answer, even once the application it made was decided
        // and its records no longer pass the checks below.
        if let Some(key) = &key {
            if let Some(bytes) = store.replayed_response(key).await? {
                let first: pb::ApplyForRepairResponse = replayed(&bytes)?;
                note.count(first.application.as_ref().map_or(0, |a| a.records.len()));
                return Ok(Response::new(first));
            }
        }
        let enterprise = store
            .get_enterprise(&uscc)
            .await?
            .ok_or_else(|| Error::NotFound(uscc.resource_name()))?;
        let today = self.state.clock.today();
        let records = store.records_about_key(uscc.as_str()).await?;
        let mut v = Violations::default();
        let mut unmet = Vec::new();
        let mut requirements = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let Some(record) = records.iter().find(|x| &x.id == id) else {
                v.add(
                    format!("records[{i}]"),
                    format!(
                        "records/{id} is not a record about {}",
                        uscc.resource_name()
                    ),
                );
                continue;
            };
            match self.assess(
                record,
                &records,
                enterprise.in_bankruptcy_restructuring,
                today,
            ) {
                Some(a) if a.repairability == Repairability::RepairableNow => {
                    requirements.extend(a.requirements)
                }
                other => unmet.push(not_repairable(record, other.as_ref())),
            }
        }
        if requirements.contains(&RepairRequirement::ProofOfPerformance) && proofs.is_empty() {
            v.add(
                "proof_references",
                "is required: these records need proof of performance",
            );
        }
        v.finish(())?;
        if !unmet.is_empty() {
            return Err(Error::FailedPrecondition(unmet).into());
        }
        let applied: Vec<&Record> = records.iter().filter(|r| ids.contains(&r.id)).collect();
        let deadline = self
            .calendar
            .add_working_days(today, self.policy.decision_days(&applied));
        let app = RepairApplication {
            id: uuid::Uuid::now_v7().simple().to_string(),
            uscc,
            records: ids,
            commitment_letter_reference: letter,
            proof_references: proofs,
            state: RepairState::Accepted,
            agency_id: agency.id.clone(),
            accepted_at: now_millis(),
            accepted_date: today,
            deadline,
            interview_required: requirements.contains(&RepairRequirement::CreditInterview),
            interview: None,
            decision_reason: None,
            decided_at: None,
            decided_by: None,
        };
        let reply = Reply {
            wrap: |application| pb::ApplyForRepairResponse { application },
            today,
        };
        // Noted before the write (see `AuditNote`).
        note.count(app.records.len());
        let response = reply.answer(
            store
                .insert_repair_application(&app, key.as_ref(), &|a| reply.encode(a))
                .await?,
        )?;
        Ok(Response::new(response))
    }

    async fn record_credit_interview(
        &self,
        req: Request<pb::RecordCreditInterviewRequest>,
    ) -> Result<Response<pb::RecordCreditInterviewResponse>, Status> {
        let agency = caller(&req, Scope::RepairManage, &self.state.keyer)?;
        // The interview is the bureau's step towards its own decision.
        agency.require_kind(AgencyKind::MarketRegulation, "record credit interviews")?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let today = self.state.clock.today();
        let mut v = Violations::default();
        let id = v.check(resource_id("name", "repairApplications", &r.name).map(String::from));
        let given = r.interview.clone().unwrap_or_default();
        let held = date(
            &mut v,
            "interview.interview_date",
            &given.interview_date,
            true,
        )
        .flatten();
        if held.is_some_and(|d| d > today) {
            v.add(
                "interview.interview_date",
                format!("must not be in the future (today is {today})"),
            );
        }
        let officer = person_name_text(&mut v, "interview.officer", &given.officer, true, 100);
        let outcome = prose(&mut v, "interview.outcome", &given.outcome, true, 1_000);
        let key = v.check(request_key(
            &self.state,
            &agency.id,
            "RecordCreditInterview",
            &r.request_id,
            r,
        ));
        let (id, held, officer, outcome, key) = v.finish_all((id, held, officer, outcome, key))?;
        note.purpose(Some(Purpose::CreditRepair), "")
            .request_id(&r.request_id)
            .count(1);
        // Noted before the write (see `AuditNote`).
        if let Some(a) = self.state.store.repair_application(&id).await? {
            note.subject(a.uscc.resource_name());
        }
        let interview = Interview {
            date: held,
            officer,
            outcome,
        };
        let reply = Reply {
            wrap: |application| pb::RecordCreditInterviewResponse { application },
            today,
        };
        let response = reply.answer(
            self.state
                .store
                .record_credit_interview(&id, &interview, key.as_ref(), &|a| reply.encode(a))
                .await?,
        )?;
        Ok(Response::new(response))
    }

    async fn decide_repair(
        &self,
        req: Request<pb::DecideRepairRequest>,
    ) -> Result<Response<pb::DecideRepairResponse>, Status> {
        let agency = caller(&req, Scope::RepairManage, &self.state.keyer)?;
        agency.require_kind(AgencyKind::MarketRegulation, "decide credit repair")?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let today = self.state.clock.today();
        let mut v = Violations::default();
        let id = v.check(resource_id("name", "repairApplications", &r.name).map(String::from));
        let decision = required_enum(&mut v, "decision", r.decision, |n| {
            pb::RepairDecision::try_from(n).ok()
        });
        let reason = prose(&mut v, "reason", &r.reason, true, 1_000);
        let key = v.check(request_key(
            &self.state,
            &agency.id,
            "DecideRepair",
            &r.request_id,
            r,
        ));
        let (id, decision, reason, key) = v.finish_all((id, decision, reason, key))?;
        note.purpose(Some(Purpose::CreditRepair), "")
            .request_id(&r.request_id);
        let store = &self.state.store;
        let app = store
            .repair_application(&id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("repairApplications/{id}")))?;
        note.subject(app.uscc.resource_name());
        let restructuring = store
            .get_enterprise(&app.uscc)
            .await?
            .is_some_and(|e| e.in_bankruptcy_restructuring);
        let policy = self.policy.clone();
        let check = move |app: &RepairApplication, all: &[Record]| {
            let mut unmet = Vec::new();
            // What the records need now: a revision since the application (a penalty
            // raised to serious, say) may need an interview or proof it did not.
            let mut requirements = Vec::new();
            for id in &app.records {
                match all.iter().find(|r| &r.id == id) {
                    Some(r) => {
                        let a = assess(&policy, r, all, restructuring, today);
                        match a {
                            Some(a) if a.repairability == Repairability::RepairableNow => {
                                requirements.extend(a.requirements)
                            }
                            other => unmet.push(not_repairable(r, other.as_ref())),
                        }
                    }
                    None => unmet.push(PreconditionViolation {
                        kind: "RECORD_GONE".into(),
                        subject: format!("records/{id}"),
                        description: format!("records/{id} is no longer about this enterprise"),
                    }),
                }
            }
            let interview = app.interview_required
                || requirements.contains(&RepairRequirement::CreditInterview);
            if interview && app.interview.is_none() {
                unmet.push(PreconditionViolation {
                    kind: "INTERVIEW_NOT_RECORDED".into(),
                    subject: app.resource_name(),
                    description: "These records need a credit interview (信用约谈) before approval; record it with RecordCreditInterview".into(),
                });
            }
            if requirements.contains(&RepairRequirement::ProofOfPerformance)
                && app.proof_references.is_empty()
            {
                unmet.push(PreconditionViolation {
                    kind: "PROOF_NOT_GIVEN".into(),
                    subject: app.resource_name(),
                    description: "These records now need proof of performance, which the application did not give; the enterprise applies again with it".into(),
                });
            }
            if unmet.is_empty() {
                Ok(())
            } else {
                Err(unmet)
            }
        };
        let reply = Reply {
            wrap: |application| pb::DecideRepairResponse { application },
            today,
        };
        let approve = decision == pb::RepairDecision::Approve;
        // Noted before the write (see `AuditNote`).
        note.count(app.records.len());
        let response = reply.answer(
            store
                .decide_repair(
                    &id,
                    approve,
                    &reason,
                    &agency.id,
                    today,
                    &check,
                    key.as_ref(),
                    &|a| reply.encode(a),
                )
                .await?,
        )?;
        Ok(Response::new(response))
    }

    async fn get_repair_application(
        &self,
        req: Request<pb::GetRepairApplicationRequest>,
    ) -> Result<Response<pb::GetRepairApplicationResponse>, Status> {
        caller(&req, Scope::RepairManage, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        note.purpose(Some(Purpose::CreditRepair), "");
        let id = resource_id("name", "repairApplications", &req.get_ref().name)?;
        let app = self
            .state
            .store
            .repair_application(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("repairApplications/{id}")))?;
        note.subject(app.uscc.resource_name()).count(1);
        Ok(Response::new(pb::GetRepairApplicationResponse {
            application: Some(application_out(&app, self.state.clock.today())),
        }))
    }

    async fn list_repair_applications(
        &self,
        req: Request<pb::ListRepairApplicationsRequest>,
    ) -> Result<Response<pb::ListRepairApplicationsResponse>, Status> {
        caller(&req, Scope::RepairManage, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let (size, uscc, state, query, before) =
            noting_on_refusal(&note, r, &self.state.keyer, || {
                let size = page_size(r.page_size)?;
                let uscc: Option<Uscc> = if r.enterprise.is_empty() {
                    None
                } else {
                    Some(enterprise_name("enterprise", &r.enterprise)?)
                };
                let state = filter_enum("state", r.state, RepairState::from_number)?;
                let query = format!(
                    "repairApplications?enterprise={}&state={}",
                    r.enterprise, r.state
                );
                let before: Option<String> = decode_token(&query, &r.page_token)?;
                Ok((size, uscc, state, query, before))
            })?;
        // Asked about one enterprise, the entry names it even when nothing is found.
        if let Some(u) = &uscc {
            note.subject(u.resource_name());
        }
        let filter = RepairFilter {
            uscc: uscc.as_ref().map(|u| u.as_str().to_string()),
            state,
        };
        let mut found = self
            .state
            .store
            .list_repair_applications(&filter, before.as_deref(), size + 1)
            .await?;
        let today = self.state.clock.today();
        let size = size_within_bytes(&found, size, |a| {
            prost::Message::encoded_len(&application_out(a, today))
        });
        let next_page_token = next_page(&mut found, size, &query, |a| a.id.clone());
        if uscc.is_none() {
            note.subjects(found.iter().map(|a| a.uscc.resource_name()));
        }
        note.count(found.len());
        Ok(Response::new(pb::ListRepairApplicationsResponse {
            applications: found.iter().map(|a| application_out(a, today)).collect(),
            next_page_token,
        }))
    }

    async fn list_repair_candidates(
        &self,
        req: Request<pb::ListRepairCandidatesRequest>,
    ) -> Result<Response<pb::ListRepairCandidatesResponse>, Status> {
        caller(&req, Scope::RepairManage, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        note.purpose(Some(Purpose::CreditRepair), "");
        let r = req.get_ref();
        let size = page_size(r.page_size)?;
        let region = r.region_code.trim();
        if !region.is_empty() && !crate::domain::enterprise::is_region_code(region) {
            return Err(Error::invalid(
                "region_code",
                "must be a 6-digit administrative division code",
            )
            .into());
        }
        let domain = filter_enum("domain", r.domain, RegulatoryDomain::from_number)?;
        let query = format!("repairCandidates?region={region}&domain={}", r.domain);
        let mut after: Option<String> = decode_token(&query, &r.page_token)?;
        let today = self.state.clock.today();
        let kinds: Vec<RecordKind> = self.policy.kinds.iter().copied().collect();
        let mut candidates = Vec::new();
        let mut exhausted = false;
        while candidates.len() <= size && !exhausted {
            let pool = self
                .state
                .store
                .repair_pool(
                    &kinds,
                    (!region.is_empty()).then_some(region),
                    domain.map(|d| d.code()),
                    after.as_deref(),
                    today,
                    POOL_BATCH,
                )
                .await?;
            exhausted = pool.len() < POOL_BATCH;
            for entry in pool {
                after = Some(entry.uscc.as_str().to_string());
                let ready: Vec<&Record> = entry
                    .records
                    .iter()
                    .filter(|rec| domain.is_none_or(|d| rec.content.domain == d))
                    // Already applied for: nothing to guide the enterprise to.
                    .filter(|rec| !entry.applied_for.contains(&rec.id))
                    .filter(|rec| {
                        self.assess(
                            rec,
                            &entry.records,
                            entry.in_bankruptcy_restructuring,
                            today,
                        )
                        .is_some_and(|a| a.repairability == Repairability::RepairableNow)
                    })
                    .collect();
                if ready.is_empty() {
                    continue;
                }
                candidates.push(pb::RepairCandidate {
                    enterprise: entry.uscc.resource_name(),
                    enterprise_display_name: entry.display_name.clone(),
                    region_code: entry.region_code.clone(),
                    repairable_records: ready.iter().map(|rec| rec.resource_name()).collect(),
                    serious_listing_removable: ready
                        .iter()
                        .any(|rec| rec.content.kind == RecordKind::SeriousDishonestyListing),
                });
                if candidates.len() > size {
                    break;
                }
            }
        }
        let size = size_within_bytes(&candidates, size, prost::Message::encoded_len);
        let next_page_token = next_page(&mut candidates, size, &query, |c| {
            c.enterprise.trim_start_matches("enterprises/").to_string()
        });
        note.subjects(candidates.iter().map(|c| c.enterprise.clone()));
        note.count(candidates.len());
        Ok(Response::new(pb::ListRepairCandidatesResponse {
            candidates,
            next_page_token,
        }))
    }
}
