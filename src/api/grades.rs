//! `GradeService`: credit grades for agencies with the grades scope. Grades are an
//! internal supervision tool and never public.

use std::collections::BTreeSet;
use std::time::Duration;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::convert::{case_reference_text, enterprise_name, timestamp};
use super::paging::{decode_token, next_page, page_size};
use super::subjects::noting_on_refusal;
use super::{batch_size, Shared};
use crate::audit::{AuditLog, AuditNote, Disclosure};
use crate::auth::caller;
use crate::domain::agency::{Agency, Scope};
use crate::domain::audit::AuditEvent;
use crate::domain::codes::Purpose;
use crate::domain::grading::{GradeChange, StoredGrade, DEFAULT_MODEL};
use crate::domain::ids::Uscc;
use crate::domain::{Error, PreconditionViolation, Violations};
use crate::proto::v1::{self as pb, grade_service_server::GradeService};

/// History entries sent to a watcher per database read.
const WATCH_PAGE: usize = 500;
/// The full method name the watch stream's disclosure entries carry.
const WATCH_METHOD: &str = "/credithub.v1.GradeService/WatchGradeChanges";
/// How often a watcher looks for changes written by other replicas.
const WATCH_POLL: Duration = Duration::from_millis(500);

/// The grade service.
#[derive(Debug, Clone)]
pub struct GradeApi {
    state: Shared,
}

impl GradeApi {
    /// Serves grades from shared state.
    pub fn new(state: Shared) -> Self {
        GradeApi { state }
    }

    /// The refusal for an enterprise that has no grade under `model`: NOT_FOUND when
    /// it does not exist; FAILED_PRECONDITION (`NOT_GRADED`) when it does, which is
    /// the case only for a model added since the last `credit-hub reclassify`.
    async fn no_grade(&self, uscc: &Uscc, model: &str) -> Status {
        match self.state.store.get_enterprise(uscc).await {
            Ok(Some(_)) => Error::FailedPrecondition(vec![PreconditionViolation {
                kind: "NOT_GRADED".into(),
                subject: uscc.resource_name(),
                description: format!(
                    "not yet graded under model {model}: the model was added after the last \
                     `credit-hub reclassify`, which grades every enterprise under it"
                ),
            }])
            .into(),
            Ok(None) => Error::NotFound(uscc.resource_name()).into(),
            Err(e) => e.into(),
        }
    }

    /// Notes the declared purpose and case reference for the audit log, then checks
    /// that the caller's kind of agency may declare that purpose.
    fn permit(
        &self,
        note: &AuditNote,
        agency: &Agency,
        purpose: Purpose,
        case_reference: &str,
    ) -> Result<(), Error> {
        note.purpose(Some(purpose), case_reference);
        self.state.purposes.permit(agency.kind, purpose)
    }

    /// The model a request names (default `general`); an unknown one is refused.
    fn model(&self, field: &str, name: &str) -> Result<String, Error> {
        let name = if name.is_empty() { DEFAULT_MODEL } else { name };
        match self.state.store.models().get(name) {
            Some(m) => Ok(m.name.clone()),
            None => Err(Error::invalid(
                field,
                format!(
                    "unknown model {}; one of {}",
                    crate::domain::id_scan::quoted(name),
                    self.state.store.models().names().join(", ")
                ),
            )),
        }
    }
}

/// Records that a drain ended a watch, waiting at most a second: the drain has a bound,
/// and the client must still hear SHUTTING_DOWN (retryable) before it passes.
async fn ended_by_drain(disclosure: &crate::audit::Disclosure) {
    let status = shutting_down();
    if tokio::time::timeout(std::time::Duration::from_secs(1), disclosure.ended(&status))
        .await
        .is_err()
    {
        tracing::warn!("the end of a watch by the drain could not be audited in time");
    }
}

/// The end of a watch when the server drains: UNAVAILABLE, to resume from the last
/// cursor received (on another replica, or on this one once it is back).
fn shutting_down() -> Status {
    crate::api::error::status(
        tonic::Code::Unavailable,
        "the server is shutting down; reconnect and resume from the last cursor received",
        "SHUTTING_DOWN",
        tonic_types::ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(100))),
    )
}

/// Checks a look-up's case reference: optional, at most 128 printable characters. The
/// checked (trimmed) value is what goes into the audit log, never the raw one.
fn check_case_reference(v: &mut Violations, value: &str) -> String {
    case_reference_text(v, "case_reference", value, false, 128).unwrap_or_default()
}

/// Checks the declared purpose of a look-up: required and known.
pub fn purpose(number: i32) -> Result<Purpose, Error> {
    match Purpose::from_number(number) {
        Some(p) => Ok(p),
        None if number == 0 => Err(Error::invalid(
            "purpose",
            "is required: declare why you look this up",
        )),
        None => Err(Error::invalid(
            "purpose",
            format!("{number} is not a known purpose"),
        )),
    }
}

fn grade_out(g: &StoredGrade) -> pb::CreditGrade {
    pb::CreditGrade {
        name: format!("{}/creditGrades/{}", g.uscc.resource_name(), g.model),
        enterprise: g.uscc.resource_name(),
        grade: g.graded.grade.number(),
        score: g.graded.score,
        reasons: g
            .graded
            .reasons
            .iter()
            .map(|r| pb::GradeReason {
                code: r.code.clone(),
                records: r
                    .record_ids
                    .iter()
                    .map(|id| format!("records/{id}"))
                    .collect(),
                points: r.points,
                description: r.description.clone(),
            })
            .collect(),
        model: g.model.clone(),
        model_version: g.model_version.clone(),
        compute_time: Some(timestamp(g.computed_at)),
    }
}

fn change_out(c: &GradeChange) -> pb::GradeChange {
    pb::GradeChange {
        enterprise: c.uscc.resource_name(),
        model: c.model.clone(),
        previous_grade: c.previous.map_or(0, |p| p.0.number()),
        grade: c.grade.number(),
        previous_score: c.previous.map_or(0, |p| p.1),
        score: c.score,
        cause: c.cause.number(),
        cause_record: c
            .cause_record
            .as_ref()
            .map(|id| format!("records/{id}"))
            .unwrap_or_default(),
        model_version: c.model_version.clone(),
        change_time: Some(timestamp(c.changed_at)),
        cursor: c.seq.to_string(),
    }
}

fn parse_cursor(cursor: &str) -> Result<i64, Error> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            Error::invalid(
                "cursor",
                "is not a cursor this service issued; use one from a GradeChange, or none",
            )
        })
}

#[tonic::async_trait]
impl GradeService for GradeApi {
    async fn get_credit_grade(
        &self,
        req: Request<pb::GetCreditGradeRequest>,
    ) -> Result<Response<pb::GetCreditGradeResponse>, Status> {
        let agency = caller(&req, Scope::GradesRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.get_ref();
        let mut v = Violations::default();
        let uscc = v.check(enterprise_name("name", &body.name));
        let model = v.check(self.model("model", &body.model));
        let declared = v.check(purpose(body.purpose));
        let case_reference = check_case_reference(&mut v, &body.case_reference);
        if let Some(u) = &uscc {
            note.subject(u.resource_name());
        }
        let (uscc, model, declared) = v.finish((uscc, model, declared))?;
        let (uscc, model) = (uscc.expect("checked"), model.expect("checked"));
        self.permit(&note, &agency, declared.expect("checked"), &case_reference)?;
        let grade = self
            .state
            .store
            .grades(&[&uscc], &model)
            .await?
            .pop()
            .flatten();
        let Some(grade) = grade else {
            return Err(self.no_grade(&uscc, &model).await);
        };
        note.count(1);
        Ok(Response::new(pb::GetCreditGradeResponse {
            grade: Some(grade_out(&grade)),
        }))
    }

    async fn batch_get_credit_grades(
        &self,
        req: Request<pb::BatchGetCreditGradesRequest>,
    ) -> Result<Response<pb::BatchGetCreditGradesResponse>, Status> {
        let agency = caller(&req, Scope::GradesRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.get_ref();
        noting_on_refusal(&note, body, &self.state.keyer, || {
            Ok(batch_size("names", body.names.len())?)
        })?;
        let mut v = Violations::default();
        let model = v.check(self.model("model", &body.model));
        let declared = v.check(purpose(body.purpose));
        let case_reference = check_case_reference(&mut v, &body.case_reference);
        let usccs: Vec<Uscc> = body
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| v.check(enterprise_name(&format!("names[{i}]"), name)))
            .collect();
        note.subjects(usccs.iter().map(Uscc::resource_name));
        let (model, declared) = v.finish((model, declared))?;
        let model = model.expect("checked");
        self.permit(&note, &agency, declared.expect("checked"), &case_reference)?;
        let refs: Vec<&Uscc> = usccs.iter().collect();
        let found = self.state.store.grades(&refs, &model).await?;
        let mut grades = Vec::with_capacity(found.len());
        for (u, g) in usccs.iter().zip(found) {
            match g {
                Some(g) => grades.push(grade_out(&g)),
                None => return Err(self.no_grade(u, &model).await),
            }
        }
        note.count(grades.len());
        Ok(Response::new(pb::BatchGetCreditGradesResponse { grades }))
    }

    async fn list_grade_history(
        &self,
        req: Request<pb::ListGradeHistoryRequest>,
    ) -> Result<Response<pb::ListGradeHistoryResponse>, Status> {
        let agency = caller(&req, Scope::GradesRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.into_inner();
        let mut v = Violations::default();
        let uscc = v.check(enterprise_name("name", &body.name));
        let model = v.check(self.model("model", &body.model));
        let declared = v.check(purpose(body.purpose));
        let case_reference = check_case_reference(&mut v, &body.case_reference);
        let limit = v.check(page_size(body.page_size));
        if let Some(u) = &uscc {
            note.subject(u.resource_name());
        }
        let (uscc, model, limit, declared) = v.finish((uscc, model, limit, declared))?;
        let (uscc, model, limit) = (
            uscc.expect("checked"),
            model.expect("checked"),
            limit.expect("checked"),
        );
        self.permit(&note, &agency, declared.expect("checked"), &case_reference)?;
        let query = format!("{uscc}/{model}");
        let before: Option<i64> = decode_token(&query, &body.page_token)?;
        let mut page = self
            .state
            .store
            .grade_history(&uscc, &model, before, limit + 1)
            .await?;
        if page.is_empty()
            && before.is_none()
            && self.state.store.get_enterprise(&uscc).await?.is_none()
        {
            return Err(Error::NotFound(uscc.resource_name()).into());
        }
        let next_page_token = next_page(&mut page, limit, &query, |c| c.seq);
        note.count(page.len());
        Ok(Response::new(pb::ListGradeHistoryResponse {
            changes: page.iter().map(change_out).collect(),
            next_page_token,
        }))
    }

    async fn watch_grade_changes(
        &self,
        req: Request<pb::WatchGradeChangesRequest>,
    ) -> Result<Response<BoxStream<pb::WatchGradeChangesResponse>>, Status> {
        let agency = caller(&req, Scope::GradesRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let audit_log = req.extensions().get::<AuditLog>().cloned();
        let mut admission = crate::auth::StreamAdmission::of(
            &req,
            self.state.store.clone(),
            &agency,
            Scope::GradesRead,
        );
        let deadline = super::streaming::deadline_of(&req);
        let body = req.into_inner();
        let mut v = Violations::default();
        let model = if body.model.is_empty() {
            None
        } else {
            v.check(self.model("model", &body.model))
        };
        let declared = v.check(purpose(body.purpose));
        let cursor = if body.cursor.is_empty() {
            None
        } else {
            v.check(parse_cursor(&body.cursor))
        };
        let declared = v.finish(declared)?;
        self.permit(&note, &agency, declared.expect("checked"), "")?;
        let store = self.state.store.clone();
        // Subscribe before reading the starting point so nothing written in between is
        // missed.
        let mut events = store.grade_events();
        let latest = store.latest_grade_change().await?;
        let mut after = match cursor {
            // Ahead of every change here: from another deployment, or from before a
            // restore. Waiting for history to reach it would silently skip what lies
            // in between.
            Some(c) if c > latest => {
                return Err(Error::invalid(
                    "cursor",
                    format!(
                        "is ahead of this service's grade history (latest change {latest}); resume from a cursor received here, or start without one"
                    ),
                )
                .into())
            }
            Some(c) => c,
            None => latest,
        };
        // Whose grades the stream shows is logged page by page, before each page.
        let disclosure = Disclosure::new(
            audit_log,
            AuditEvent {
                time: 0,
                agency: agency.id.clone(),
                method: WATCH_METHOD.to_string(),
                request_id: note.noted_request_id(),
                subjects: Vec::new(),
                purpose: declared,
                case_reference: String::new(),
                outcome: "OK".into(),
                result_count: 0,
            },
        );
        let mut draining = self.state.draining.clone();
        let answer = disclosure.clone();
        Ok(super::streaming::answer(
            64,
            deadline,
            answer,
            move |tx| async move {
                loop {
                    let drained = *draining.borrow_and_update();
                    if drained {
                        ended_by_drain(&disclosure).await;
                        // Not awaited: a watcher that stopped reading must not hold the
                        // drain (nor, through this task, the audit log) any longer.
                        let _ = tx.try_send(Err(shutting_down()));
                        return;
                    }
                    if let Some(status) = admission.refused().await {
                        disclosure.end_stream(&tx, status).await;
                        return;
                    }
                    let page = match store
                        .grade_changes_after(after, model.as_deref(), WATCH_PAGE)
                        .await
                    {
                        Ok(page) => page,
                        Err(e) => {
                            disclosure.end_stream(&tx, Status::from(e)).await;
                            return;
                        }
                    };
                    if !page.is_empty() {
                        let subjects: BTreeSet<String> =
                            page.iter().map(|c| c.uscc.resource_name()).collect();
                        if !disclosure.admit(&tx, subjects, page.len()).await {
                            return;
                        }
                    }
                    for change in &page {
                        after = change.seq;
                        let msg = pb::WatchGradeChangesResponse {
                            change: Some(change_out(change)),
                        };
                        // A change goes out only while two places are free, so one always
                        // stays for the status that ends the stream: a watcher that stopped
                        // reading still learns why it ended. Its full buffer blocks this
                        // wait; the drain ends it.
                        // Some(drained) when the stream must end: the watcher went away,
                        // or the server drains.
                        let ended = tokio::select! {
                            permits = tx.reserve_many(2) => match permits {
                                Ok(mut permits) => {
                                    permits.next().expect("two reserved").send(Ok(msg));
                                    None
                                }
                                Err(_) => Some(false),
                            },
                            _ = draining.wait_for(|d| *d) => Some(true),
                        };
                        match ended {
                            None => {}
                            Some(false) => return,
                            Some(true) => {
                                ended_by_drain(&disclosure).await;
                                let _ = tx.try_send(Err(shutting_down()));
                                return;
                            }
                        }
                    }
                    if page.len() == WATCH_PAGE {
                        continue;
                    }
                    tokio::select! {
                        _ = events.changed() => {}
                        _ = tokio::time::sleep(WATCH_POLL) => {}
                        // The sender goes with the server: gone, it is as good as drained
                        // (and `changed` would otherwise answer at once, forever).
                        changed = draining.changed() => if changed.is_err() {
                            ended_by_drain(&disclosure).await;
                            let _ = tx.try_send(Err(shutting_down()));
                            return;
                        },
                        _ = tx.closed() => return,
                    }
                }
            },
        ))
    }

    async fn get_grade_distribution(
        &self,
        req: Request<pb::GetGradeDistributionRequest>,
    ) -> Result<Response<pb::GetGradeDistributionResponse>, Status> {
        caller(&req, Scope::GradesRead, &self.state.keyer)?;
        let body = req.get_ref();
        let model = self.model("model", &body.model)?;
        let version = self
            .state
            .store
            .models()
            .get(&model)
            .map(|m| m.version.clone())
            .unwrap_or_default();
        let rows = self
            .state
            .store
            .grade_distribution(&model, body.group_by_region, body.group_by_industry)
            .await?;
        let total = rows.iter().map(|r| r.3).sum();
        Ok(Response::new(pb::GetGradeDistributionResponse {
            model,
            model_version: version,
            rows: rows
                .into_iter()
                .map(|(region_code, industry_section, grade, enterprise_count)| {
                    pb::GradeDistributionRow {
                        region_code,
                        industry_section,
                        grade: grade.number(),
                        enterprise_count,
                    }
                })
                .collect(),
            total_enterprises: total,
        }))
    }
}
