//! `SpotCheckService`: the inspector register, plans drawn from a committed seed, public
//! verification of draws, joint inspections, and published results.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use tonic::{Request, Response, Status};

use super::convert::{
    bounded_list, date, enterprise_name, person_name_text, prose, required_enum, resource_id, text,
    timestamp,
};
use super::paging::{decode_token, next_page, page_size, size_within_bytes};
use super::public::PublicLimit;
use super::{batch_size, replayed, request_key, Shared};
use crate::audit::AuditNote;
use crate::auth::caller;
use crate::domain::agency::{Agency, Scope};
use crate::domain::codes::{Purpose, RecordKind, RegulatoryDomain, SpotCheckOutcome, Tier};
use crate::domain::grading::Grade;
use crate::domain::record::{
    check_consistency, default_publicity_end, Attributes, NewRecord, RecordContent, Subject,
};
use crate::domain::repair::WorkCalendar;
use crate::domain::spotcheck::{
    check_ratios, commitment, draw, merge, same_for_every_grade, Cycle, Drawn, DrawnPlan,
    InspectionItem, Inspector, Plan, Qualified, SpotCheckPolicy, SpotCheckResult, Target,
};
use crate::domain::{Error, PreconditionViolation, Violations};
use crate::proto::v1::{self as pb, spot_check_service_server::SpotCheckService};
use crate::store::{now_millis, CycleActivity, DrawSaved, Replay};

/// Most check items a plan may carry.
const MAX_ITEMS: usize = 50;
/// Most inspectors per visit.
const MAX_INSPECTORS_PER_VISIT: u32 = 10;
/// Most declared conflicts of interest one inspector lists.
const MAX_CONFLICTS: usize = 1_000;

/// The spot-check service.
#[derive(Clone)]
pub struct SpotCheckApi {
    state: Shared,
    policy: Arc<SpotCheckPolicy>,
    calendar: Arc<WorkCalendar>,
    public_calls: PublicLimit,
}

impl SpotCheckApi {
    pub fn new(
        state: Shared,
        policy: SpotCheckPolicy,
        calendar: WorkCalendar,
        public_rate: u32,
    ) -> Self {
        SpotCheckApi {
            state,
            policy: Arc::new(policy),
            calendar: Arc::new(calendar),
            public_calls: PublicLimit::new(public_rate),
        }
    }

    /// `plan` drawn from `population` less what `activity` excludes: the department's
    /// own targets and results this cycle, and anyone's for A grades. Checks without a
    /// visit only for a department that may read grades (`grades`): the mark is given
    /// to A-grade targets alone, so it would tell the others their grade; they visit
    /// every target.
    fn draw(
        &self,
        plan: &Plan,
        population: &[(String, Grade)],
        activity: &CycleActivity,
        inspectors: &[Qualified],
        grades: bool,
    ) -> Result<Drawn, Status> {
        let own: BTreeSet<&str> = activity
            .taken
            .iter()
            .filter(|(a, _)| *a == plan.agency_id)
            .map(|(_, u)| u.as_str())
            .collect();
        let anyone: BTreeSet<&str> = activity.taken.iter().map(|(_, u)| u.as_str()).collect();
        let mut eligible: BTreeMap<Grade, Vec<String>> = BTreeMap::new();
        for (uscc, grade) in population {
            if own.contains(uscc.as_str()) || (*grade == Grade::A && anyone.contains(uscc.as_str()))
            {
                continue;
            }
            eligible.entry(*grade).or_default().push(uscc.clone());
        }
        let no_visit = if grades {
            self.policy.non_on_site_domains.clone()
        } else {
            BTreeSet::new()
        };
        plan.draw(eligible, inspectors, &no_visit, now_millis())
            // The seed was stored by this service: unreadable, it is the server's fault
            // (reported as such), not the caller's.
            .ok_or_else(|| {
                crate::store::Error::Corrupt(format!(
                    "the stored seed of spot-check plan {} is unreadable",
                    plan.id
                ))
                .into()
            })
    }

    /// The answer to a draw of a plan already drawn: the plan as drawn, its targets
    /// noted as what the call shows.
    async fn as_drawn(
        &self,
        plan: Plan,
        note: &AuditNote,
        grades: bool,
    ) -> Result<Response<pb::DrawSpotCheckPlanResponse>, Status> {
        let targets = plan.drawn.as_ref().map_or(&[][..], |d| &d.targets[..]);
        note.replace_subjects(targets.iter().map(|t| format!("enterprises/{}", t.uscc)));
        note.count(targets.len());
        Ok(Response::new(pb::DrawSpotCheckPlanResponse {
            plan: Some(
                self.plan_out(&plan, self.state.clock.today(), grades)
                    .await?,
            ),
        }))
    }

    /// The plan `name` if it belongs to `agency`'s department.
    async fn own_plan(&self, field: &str, name: &str, agency: &Agency) -> Result<Plan, Status> {
        let id = resource_id(field, "spotCheckPlans", name)?;
        let plan = self
            .state
            .store
            .spot_check_plan(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("spotCheckPlans/{id}")))?;
        if plan.agency_id != agency.id {
            return Err(Error::PermissionDenied(format!(
                "{} belongs to agencies/{}; only its department may change it",
                plan.resource_name(),
                plan.agency_id
            ))
            .into());
        }
        Ok(plan)
    }

    /// FAILED_PRECONDITION (PLAN_TOO_LARGE) when `drawn` would make a plan too large
    /// for one answer: a draw never changes, so one saved so could never be read. Nothing is saved and the seed stays
    /// secret; with the ratios lowered or the population narrowed it draws anew.
    async fn fits_one_answer(
        &self,
        plan: &Plan,
        drawn: &Drawn,
        today: NaiveDate,
    ) -> Result<(), Status> {
        let mut preview = plan.clone();
        preview.drawn = Some(drawn.clone());
        let bytes = prost::Message::encoded_len(&self.plan_out(&preview, today, true).await?);
        if bytes <= ANSWER_BYTES {
            return Ok(());
        }
        self.state.store.mark_plan_too_large(&plan.id).await?;
        Err(Error::FailedPrecondition(vec![PreconditionViolation {
            kind: "PLAN_TOO_LARGE".into(),
            subject: plan.resource_name(),
            description: format!(
                "its {} targets would take {bytes} bytes, more than the {ANSWER_BYTES} one answer carries: a new plan with lower ratios, a narrower population (region, industry) or fewer inspectors per visit",
                drawn.targets.len()
            ),
        }])
        .into())
    }

    /// The proto form of `plan`, with result and overdue marks as of `today`.
    /// A plan as sent; targets' grades only to a caller with the grades scope (grades
    /// are never shown to others, and the per-grade counts are public anyway).
    async fn plan_out(
        &self,
        plan: &Plan,
        today: NaiveDate,
        grades: bool,
    ) -> Result<pb::SpotCheckPlan, Status> {
        let recorded: BTreeSet<String> = match &plan.drawn {
            Some(_) => self
                .state
                .store
                .plan_results(&plan.id)
                .await?
                .into_iter()
                .collect(),
            None => BTreeSet::new(),
        };
        let deadline = self
            .calendar
            .add_working_days(plan.cycle.end, self.policy.publish_working_days);
        let mut targets: Vec<&Target> = plan.drawn.iter().flat_map(|d| &d.targets).collect();
        if !grades {
            // Drawn grade by grade, the targets in draw order would tell their grades
            // (with the plan's eligible counts) to a caller who may not read them.
            targets.sort_by(|a, b| a.uscc.cmp(&b.uscc));
        }
        let targets: Vec<pb::SpotCheckTarget> = targets
            .into_iter()
            .map(|t| {
                let result_recorded = recorded.contains(&t.uscc);
                pb::SpotCheckTarget {
                    enterprise: format!("enterprises/{}", t.uscc),
                    grade: if grades { t.grade.number() } else { 0 },
                    // Only A-grade targets get the mark: it is a grade too.
                    non_on_site: grades && t.non_on_site,
                    inspectors: t.inspectors.clone(),
                    result_recorded,
                    overdue: !result_recorded && today > deadline,
                }
            })
            .collect();
        Ok(pb::SpotCheckPlan {
            name: plan.resource_name(),
            department: format!("agencies/{}", plan.agency_id),
            domain: plan.domain.number(),
            cycle: plan.cycle.label.clone(),
            region_code: plan.region_code.clone(),
            industry_code: plan.industry_code.clone(),
            ratios: plan
                .ratios
                .iter()
                .map(|(g, r)| pb::GradeRatio {
                    grade: g.number(),
                    ratio: *r,
                })
                .collect(),
            inspectors_per_visit: plan.inspectors_per_visit as i32,
            check_items: plan.check_items.clone(),
            state: if plan.drawn.is_some() {
                pb::SpotCheckPlanState::Drawn
            } else {
                pb::SpotCheckPlanState::Created
            } as i32,
            seed_commitment: plan.seed_commitment.clone(),
            // The seed is revealed only by the draw.
            seed: if plan.drawn.is_some() {
                plan.seed.clone()
            } else {
                String::new()
            },
            create_time: Some(timestamp(plan.created_at)),
            draw_time: plan.drawn.as_ref().map(|d| timestamp(d.drawn_at)),
            // Per grade only for callers shown grades: a narrow population's counts
            // would tell the others who has which grade.
            eligible: plan
                .drawn
                .as_ref()
                .filter(|_| grades)
                .map(|d| grade_counts(d.eligible.iter().map(|(g, v)| (*g, v.len()))))
                .unwrap_or_default(),
            eligible_total: plan.drawn.as_ref().map_or(0, |d| {
                d.eligible.values().map(Vec::len).sum::<usize>() as i32
            }),
            overdue_count: targets.iter().filter(|t| t.overdue).count() as i32,
            targets,
        })
    }
}

fn grade_counts(counts: impl Iterator<Item = (Grade, usize)>) -> Vec<pb::GradeCount> {
    counts
        .map(|(g, n)| pb::GradeCount {
            grade: g.number(),
            count: n as i32,
        })
        .collect()
}

fn result_out(r: &SpotCheckResult, name: &str, today: NaiveDate) -> pb::PublishedResult {
    // Due dates are China dates: so is the publishing day compared with them.
    let published = super::china_date(r.published_at).unwrap_or(today);
    pb::PublishedResult {
        plan: format!("spotCheckPlans/{}", r.plan_id),
        department: format!("agencies/{}", r.agency_id),
        enterprise: format!("enterprises/{}", r.uscc),
        enterprise_display_name: name.to_string(),
        outcome: r.outcome.number(),
        items: r
            .items
            .iter()
            .map(|i| pb::InspectionItem {
                item: i.item.clone(),
                passed: i.passed,
                finding: i.finding.clone(),
            })
            .collect(),
        inspection_date: r.inspection_date.to_string(),
        publish_time: Some(timestamp(r.published_at)),
        publish_due_date: r.publish_due.to_string(),
        published_late: published > r.publish_due,
    }
}

/// Parses an inspector of the register.
fn inspector_in(v: &mut Violations, path: &str, i: &pb::Inspector) -> Option<Inspector> {
    let code = text(v, &format!("{path}.code"), &i.code, true, 64);
    let name = person_name_text(
        v,
        &format!("{path}.display_name"),
        &i.display_name,
        true,
        100,
    );
    let mut domains = Vec::new();
    if i.domains.is_empty() {
        v.add(
            format!("{path}.domains"),
            "must name at least one domain the inspector may inspect",
        );
    }
    let given = bounded_list(
        v,
        &format!("{path}.domains"),
        &i.domains,
        RegulatoryDomain::ALL.len(),
    );
    for (j, d) in given.iter().enumerate() {
        if let Some(d) = required_enum(
            v,
            &format!("{path}.domains[{j}]"),
            *d,
            RegulatoryDomain::from_number,
        ) {
            domains.push(d);
        }
    }
    let mut conflicts = Vec::new();
    let given = bounded_list(v, &format!("{path}.conflicts"), &i.conflicts, MAX_CONFLICTS);
    for (j, c) in given.iter().enumerate() {
        if let Some(u) = v.check(enterprise_name(&format!("{path}.conflicts[{j}]"), c)) {
            conflicts.push(u.as_str().to_string());
        }
    }
    Some(Inspector {
        code: code?,
        display_name: name?,
        domains,
        conflicts,
    })
}

/// Largest plan or merge answer sent: what a client set as the contract advises (a
/// 16 MiB receive limit) accepts. Neither is paginated; a plan, once drawn, is kept.
const ANSWER_BYTES: usize = crate::MAX_MESSAGE_BYTES - 1024;

/// FAILED_PRECONDITION when a visit of `drawn` got fewer inspectors than the plan
/// needs, or a check without a visit (video, documents) got none (none qualified for
/// its domain, or all declared a conflict with the enterprise): a draw never changes,
/// so one saved so would leave those checks unstaffed for good. Nothing is saved, and the answer names no target: a draw not
/// kept must not show what it drew (the seed stays secret, and the same seed draws the
/// same targets once inspectors are added or qualified and the plan is drawn again).
fn understaffed(plan: &Plan, drawn: &Drawn) -> Result<(), Status> {
    let need = plan.inspectors_per_visit as usize;
    let short = drawn
        .targets
        .iter()
        .filter(|t| t.inspectors.len() < if t.non_on_site { 1 } else { need })
        .count();
    if short == 0 {
        return Ok(());
    }
    Err(Error::FailedPrecondition(vec![PreconditionViolation {
        kind: "INSPECTORS_UNAVAILABLE".into(),
        subject: plan.resource_name(),
        description: format!(
            "{short} of the {} targets drawn would have fewer inspectors than a check needs ({need} for a visit, 1 for a check without one; qualified for {}, with no declared conflict with the enterprise); add or qualify inspectors, then draw again: the same targets are drawn",
            drawn.targets.len(),
            plan.domain.code()
        ),
    }])
    .into())
}

#[tonic::async_trait]
impl SpotCheckService for SpotCheckApi {
    async fn batch_upsert_inspectors(
        &self,
        req: Request<pb::BatchUpsertInspectorsRequest>,
    ) -> Result<Response<pb::BatchUpsertInspectorsResponse>, Status> {
        let agency = caller(&req, Scope::SpotChecksManage, &self.state.keyer)?;
        let r = req.get_ref();
        batch_size("inspectors", r.inspectors.len())?;
        let mut v = Violations::default();
        let mut seen = BTreeMap::new();
        let mut parsed = Vec::with_capacity(r.inspectors.len());
        for (i, given) in r.inspectors.iter().enumerate() {
            let path = format!("inspectors[{i}]");
            if let Some(first) = seen.insert(given.code.trim().to_string(), i) {
                v.add(
                    format!("{path}.code"),
                    format!("repeats inspectors[{first}].code"),
                );
            }
            if let Some(ins) = inspector_in(&mut v, &path, given) {
                parsed.push(ins);
            }
        }
        v.finish(())?;
        // Noted before the write (see `AuditNote`).
        AuditNote::of(&req).count(parsed.len());
        self.state
            .store
            .upsert_inspectors(&agency.id, &parsed)
            .await?;
        Ok(Response::new(pb::BatchUpsertInspectorsResponse {
            count: parsed.len() as i32,
        }))
    }

    async fn list_inspectors(
        &self,
        req: Request<pb::ListInspectorsRequest>,
    ) -> Result<Response<pb::ListInspectorsResponse>, Status> {
        let agency = caller(&req, Scope::SpotChecksManage, &self.state.keyer)?;
        let r = req.get_ref();
        let size = page_size(r.page_size)?;
        let query = format!("inspectors?agency={}", agency.id);
        let after: Option<String> = decode_token(&query, &r.page_token)?;
        let mut found = self
            .state
            .store
            .list_inspectors(&agency.id, after.as_deref(), size + 1)
            .await?;
        let mut inspectors: Vec<pb::Inspector> = found
            .iter()
            .map(|i| pb::Inspector {
                code: i.code.clone(),
                display_name: i.display_name.clone(),
                domains: i.domains.iter().map(|d| d.number()).collect(),
                conflicts: i
                    .conflicts
                    .iter()
                    .map(|u| format!("enterprises/{u}"))
                    .collect(),
            })
            .collect();
        // Each may list a thousand conflicts.
        let size = size_within_bytes(&inspectors, size, prost::Message::encoded_len);
        let next_page_token = next_page(&mut found, size, &query, |i| i.code.clone());
        inspectors.truncate(found.len());
        AuditNote::of(&req).count(found.len());
        Ok(Response::new(pb::ListInspectorsResponse {
            inspectors,
            next_page_token,
        }))
    }

    async fn create_spot_check_plan(
        &self,
        req: Request<pb::CreateSpotCheckPlanRequest>,
    ) -> Result<Response<pb::CreateSpotCheckPlanResponse>, Status> {
        let agency = caller(&req, Scope::SpotChecksManage, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let given = r.plan.clone().unwrap_or_default();
        let mut v = Violations::default();
        let domain = required_enum(
            &mut v,
            "plan.domain",
            given.domain,
            RegulatoryDomain::from_number,
        );
        let today = self.state.clock.today();
        let cycle = match Cycle::parse(given.cycle.trim()) {
            Ok(c) => Some(c),
            Err(e) => {
                v.add("plan.cycle", e);
                None
            }
        };
        // A plan for a cycle that ended, or one far ahead, would be matched against the
        // wrong cycle's draws and results, and be overdue at once or never. Checked
        // after a retry's stored answer is looked for: a plan created in time stays
        // its own request's answer once its cycle has ended.
        let untimely = cycle.as_ref().and_then(|c| {
            if c.end < today {
                Some(format!("cycle {} has ended (today is {today})", c.label))
            } else if c.start > today + chrono::Months::new(12) {
                Some(format!(
                    "cycle {} begins more than a year ahead (today is {today})",
                    c.label
                ))
            } else {
                None
            }
        });
        let region = given.region_code.trim().to_string();
        if !region.is_empty() && !crate::domain::enterprise::is_region_code(&region) {
            v.add(
                "plan.region_code",
                "must be a 6-digit administrative division code",
            );
        }
        let industry = given.industry_code.trim().to_string();
        if !industry.is_empty() && !crate::domain::enterprise::is_industry_code(&industry) {
            v.add(
                "plan.industry_code",
                "must be a GB/T 4754 code prefix such as C or C13",
            );
        }
        let mut ratios = BTreeMap::new();
        if given.ratios.is_empty() {
            ratios = self.policy.ratios.clone();
        } else {
            let ratios_given = bounded_list(&mut v, "plan.ratios", &given.ratios, Grade::ALL.len());
            for (i, gr) in ratios_given.iter().enumerate() {
                if let Some(g) = required_enum(
                    &mut v,
                    &format!("plan.ratios[{i}].grade"),
                    gr.grade,
                    Grade::from_number,
                ) {
                    if ratios.insert(g, gr.ratio).is_some() {
                        v.add(
                            format!("plan.ratios[{i}].grade"),
                            format!("grade {} is given twice", g.code()),
                        );
                    }
                }
            }
            if let Err((_, e)) = check_ratios(&ratios) {
                v.add("plan.ratios", e);
            }
            // Ratios of its own choosing per grade (say, all of D and nothing else)
            // would tell a department that may not read grades which enterprises have
            // which: it may give one ratio for every grade, or take the configured ones.
            if !same_for_every_grade(&ratios)
                && !self.state.shows_grades(&agency, Purpose::SpotCheckPlanning)
            {
                v.add(
                    "plan.ratios",
                    "must give every grade the same ratio, or be left empty for the \
                     configured ones: ratios that differ by grade are chosen only by an \
                     agency that may read grades for spot-check planning (the grades:read \
                     scope and the SPOT_CHECK_PLANNING purpose)",
                );
            }
        }
        let per_visit = match given.inspectors_per_visit {
            0 => self.policy.inspectors_per_visit,
            n if n < 0 || n as u32 > MAX_INSPECTORS_PER_VISIT => {
                v.add(
                    "plan.inspectors_per_visit",
                    format!("must be 1 to {MAX_INSPECTORS_PER_VISIT}"),
                );
                1
            }
            n => n as u32,
        };
        let check_items: &[String] =
            if given.check_items.is_empty() || given.check_items.len() > MAX_ITEMS {
                v.add(
                    "plan.check_items",
                    format!("must list 1 to {MAX_ITEMS} check items"),
                );
                &[]
            } else {
                &given.check_items
            };
        let items: Vec<String> = check_items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                prose(&mut v, &format!("plan.check_items[{i}]"), item, true, 200)
            })
            .collect();
        // Required: a plan created again after a lost answer would be a second plan,
        // drawn apart from the first, and its targets inspected twice as often.
        if r.request_id.is_empty() {
            v.add(
                "request_id",
                "is required: a retry with the same id returns the first plan, where one \
                 without would create a second",
            );
        }
        let key = v.check(request_key(
            &self.state,
            &agency.id,
            "CreateSpotCheckPlan",
            &r.request_id,
            r,
        ));
        note.purpose(Some(Purpose::SpotCheckPlanning), "")
            .request_id(&r.request_id);
        if let Some(why) = untimely {
            if let Some(Some(key)) = &key {
                if let Some(bytes) = self.state.store.replayed_response(key).await? {
                    return Ok(Response::new(replayed(&bytes)?));
                }
            }
            v.add("plan.cycle", why);
        }
        let (domain, cycle, key) = v.finish_all((domain, cycle, key))?;
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let seed = hex::encode(seed);
        let plan = Plan {
            id: uuid::Uuid::now_v7().simple().to_string(),
            agency_id: agency.id.clone(),
            domain,
            cycle,
            region_code: region,
            industry_code: industry,
            ratios,
            inspectors_per_visit: per_visit,
            check_items: items,
            seed_commitment: commitment(&seed),
            seed,
            created_at: now_millis(),
            drawn: None,
        };
        // Not drawn yet: no targets, so no grades to withhold.
        let out = self.plan_out(&plan, today, true).await?;
        let encode = move |_: &Plan| {
            prost::Message::encode_to_vec(&pb::CreateSpotCheckPlanResponse {
                plan: Some(out.clone()),
            })
        };
        let response = match self
            .state
            .store
            .insert_spot_check_plan(&plan, today, key.as_ref(), &encode)
            .await?
        {
            Replay::Fresh(p) => pb::CreateSpotCheckPlanResponse {
                plan: Some(self.plan_out(&p, today, true).await?),
            },
            Replay::Replayed(bytes) => replayed(&bytes)?,
        };
        Ok(Response::new(response))
    }

    async fn draw_spot_check_plan(
        &self,
        req: Request<pb::DrawSpotCheckPlanRequest>,
    ) -> Result<Response<pb::DrawSpotCheckPlanResponse>, Status> {
        let agency = caller(&req, Scope::SpotChecksManage, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        note.purpose(Some(Purpose::SpotCheckPlanning), "");
        let mut plan = self.own_plan("name", &req.get_ref().name, &agency).await?;
        let store = &self.state.store;
        let grades = self.state.shows_grades(&agency, Purpose::SpotCheckPlanning);
        if plan.drawn.is_some() {
            // A draw cannot change: drawing again (a retry whose answer was lost)
            // answers with the draw as it was made.
            return self.as_drawn(plan, &note, grades).await;
        }
        let today = self.state.clock.today();
        if plan.cycle.end < today {
            return Err(Error::FailedPrecondition(vec![PreconditionViolation {
                kind: "CYCLE_ENDED".into(),
                subject: plan.resource_name(),
                description: format!(
                    "cycle {} ended on {}: plan a current cycle instead",
                    plan.cycle.label, plan.cycle.end
                ),
            }])
            .into());
        }
        let population = store
            .spot_check_population(&plan.region_code, &plan.industry_code)
            .await?;
        let inspectors: Vec<_> = store
            .inspectors_of(&plan.agency_id)
            .await?
            .iter()
            .map(|i| i.qualified(&plan.agency_id))
            .collect();
        // Drawn again if another plan of the cycle is drawn meanwhile: its targets
        // must be excluded too. Each round loses only to a draw that committed, so
        // this ends; the bound is for safety.
        let mut rounds = 0;
        let drawn = loop {
            rounds += 1;
            let activity = store.cycle_activity(&plan.cycle).await?;
            let drawn = self.draw(&plan, &population, &activity, &inspectors, grades)?;
            understaffed(&plan, &drawn)?;
            self.fits_one_answer(&plan, &drawn, today).await?;
            // Noted before the write (see `AuditNote`).
            note.replace_subjects(
                drawn
                    .targets
                    .iter()
                    .map(|t| format!("enterprises/{}", t.uscc)),
            );
            note.count(drawn.targets.len());
            match store.save_draw(&plan, &drawn, &activity).await? {
                DrawSaved::Saved => break drawn,
                DrawSaved::Redraw => {}
                DrawSaved::AlreadyDrawn => {
                    // A copy of this call drew it first: its draw is the answer.
                    let plan = self.own_plan("name", &req.get_ref().name, &agency).await?;
                    return self.as_drawn(plan, &note, grades).await;
                }
            }
            if rounds == 10 {
                return Err(Error::FailedPrecondition(vec![PreconditionViolation {
                    kind: "DRAW_CONTENDED".into(),
                    subject: plan.resource_name(),
                    description: "other plans of this cycle kept being drawn at the same time; draw this one again".into(),
                }])
                .into());
            }
        };
        plan.drawn = Some(drawn);
        Ok(Response::new(pb::DrawSpotCheckPlanResponse {
            plan: Some(
                self.plan_out(&plan, self.state.clock.today(), grades)
                    .await?,
            ),
        }))
    }

    async fn get_spot_check_plan(
        &self,
        req: Request<pb::GetSpotCheckPlanRequest>,
    ) -> Result<Response<pb::GetSpotCheckPlanResponse>, Status> {
        let agency = caller(&req, Scope::SpotChecksManage, &self.state.keyer)?;
        let id = resource_id("name", "spotCheckPlans", &req.get_ref().name)?;
        let plan = self
            .state
            .store
            .spot_check_plan(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("spotCheckPlans/{id}")))?;
        let note = AuditNote::of(&req);
        note.purpose(Some(Purpose::SpotCheckPlanning), "");
        let grades = self.state.shows_grades(&agency, Purpose::SpotCheckPlanning);
        // Drawn with ratios that differ by grade, another department's targets tell
        // which enterprises have which grade: only for those who may read grades.
        if !grades && plan.agency_id != agency.id && !same_for_every_grade(&plan.ratios) {
            return Err(Error::PermissionDenied(format!(
                "{} is another department's, drawn with ratios that differ by grade: its targets are shown only to an agency that may read grades for spot-check planning (the grades:read scope and the SPOT_CHECK_PLANNING purpose)",
                plan.resource_name()
            ))
            .into());
        }
        let targets = plan.drawn.as_ref().map_or(&[][..], |d| &d.targets[..]);
        note.subjects(targets.iter().map(|t| format!("enterprises/{}", t.uscc)))
            .count(targets.len());
        Ok(Response::new(pb::GetSpotCheckPlanResponse {
            plan: Some(
                self.plan_out(&plan, self.state.clock.today(), grades)
                    .await?,
            ),
        }))
    }

    async fn verify_draw(
        &self,
        req: Request<pb::VerifyDrawRequest>,
    ) -> Result<Response<pb::VerifyDrawResponse>, Status> {
        self.public_calls.admit(&req, &self.state.peers)?;
        let id = resource_id("name", "spotCheckPlans", &req.get_ref().name)?;
        let plan = self
            .state
            .store
            .spot_check_plan(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("spotCheckPlans/{id}")))?;
        let Some(drawn) = &plan.drawn else {
            return Err(Error::FailedPrecondition(vec![PreconditionViolation {
                kind: "NOT_DRAWN".into(),
                subject: plan.resource_name(),
                description: "the plan has not been drawn yet; only its seed commitment is public"
                    .into(),
            }])
            .into());
        };
        let redrawn = plan
            .seed_bytes()
            .map(|seed| draw(&seed, &drawn.eligible, &plan.ratios))
            .unwrap_or_default();
        let stored: Vec<(String, Grade)> = drawn
            .targets
            .iter()
            .map(|t| (t.uscc.clone(), t.grade))
            .collect();
        Ok(Response::new(pb::VerifyDrawResponse {
            seed_matches_commitment: commitment(&plan.seed) == plan.seed_commitment,
            targets_match: redrawn == stored,
            seed: plan.seed.clone(),
            seed_commitment: plan.seed_commitment.clone(),
            eligible_total: drawn.eligible.values().map(Vec::len).sum::<usize>() as i32,
            drawn_total: redrawn.len() as i32,
        }))
    }

    async fn merge_plans(
        &self,
        req: Request<pb::MergePlansRequest>,
    ) -> Result<Response<pb::MergePlansResponse>, Status> {
        let agency = caller(&req, Scope::SpotChecksManage, &self.state.keyer)?;
        let grades = self.state.shows_grades(&agency, Purpose::SpotCheckPlanning);
        let r = req.get_ref();
        let mut v = Violations::default();
        if r.plans.len() < 2 || r.plans.len() > 100 {
            return Err(
                Error::invalid("plans", "must name 2 to 100 drawn plans of one cycle").into(),
            );
        }
        let mut ids = Vec::new();
        for (i, name) in r.plans.iter().enumerate() {
            if let Some(id) = v.check(resource_id(&format!("plans[{i}]"), "spotCheckPlans", name)) {
                if ids.iter().any(|x: &String| x == id) {
                    v.add(format!("plans[{i}]"), "repeats an earlier plan");
                } else {
                    ids.push(id.to_string());
                }
            }
        }
        v.finish(())?;
        let store = &self.state.store;
        let plans = store.spot_check_plans(&ids).await?;
        // As GetSpotCheckPlan: another department's plan drawn by grade would tell a
        // caller that may not read grades who has which.
        if let Some(p) = plans
            .iter()
            .find(|p| !grades && p.agency_id != agency.id && !same_for_every_grade(&p.ratios))
        {
            return Err(Error::PermissionDenied(format!(
                "{} is another department's, drawn with ratios that differ by grade: it is merged only by an agency that may read grades for spot-check planning (the grades:read scope and the SPOT_CHECK_PLANNING purpose)",
                p.resource_name()
            ))
            .into());
        }
        let mut unmet = Vec::new();
        for p in &plans {
            if p.drawn.is_none() {
                unmet.push(PreconditionViolation {
                    kind: "NOT_DRAWN".into(),
                    subject: p.resource_name(),
                    description: format!(
                        "{} has not been drawn; draw it before merging",
                        p.resource_name()
                    ),
                });
            }
            if p.cycle.label != plans[0].cycle.label {
                unmet.push(PreconditionViolation {
                    kind: "OTHER_CYCLE".into(),
                    subject: p.resource_name(),
                    description: format!(
                        "{} is for cycle {}, not {}; only one cycle's plans merge",
                        p.resource_name(),
                        p.cycle.label,
                        plans[0].cycle.label
                    ),
                });
            }
        }
        if !unmet.is_empty() {
            return Err(Error::FailedPrecondition(unmet).into());
        }
        let mut inspectors = Vec::new();
        let departments: BTreeSet<&str> = plans.iter().map(|p| p.agency_id.as_str()).collect();
        for d in departments {
            inspectors.extend(store.inspectors_of(d).await?.iter().map(|i| i.qualified(d)));
        }
        let drawn: Vec<DrawnPlan> = plans
            .iter()
            .filter_map(|p| {
                Some(DrawnPlan {
                    id: p.id.clone(),
                    department: p.agency_id.clone(),
                    domain: p.domain,
                    check_items: p.check_items.clone(),
                    targets: p
                        .drawn
                        .as_ref()?
                        .targets
                        .iter()
                        .map(|t| (t.uscc.clone(), t.non_on_site))
                        .collect(),
                    seed: p.seed_bytes()?,
                })
            })
            .collect();
        let k = plans
            .iter()
            .map(|p| p.inspectors_per_visit)
            .max()
            .unwrap_or(1) as usize;
        let merged = merge(&drawn, &inspectors, k);
        let note = AuditNote::of(&req);
        note.purpose(Some(Purpose::SpotCheckPlanning), "");
        // The answer names every enterprise to be visited, and who will visit it.
        note.subjects(
            merged
                .visits
                .iter()
                .map(|v| format!("enterprises/{}", v.uscc)),
        );
        note.count(merged.visits.len());
        let response = pb::MergePlansResponse {
            joint_share: merged.joint_share(),
            visits_before: merged.visits_before as i32,
            visits_after: merged.visits.len() as i32,
            joint_visits: merged.joint_visits as i32,
            visits: merged
                .visits
                .into_iter()
                .map(|v| pb::JointVisit {
                    enterprise: format!("enterprises/{}", v.uscc),
                    plans: v
                        .plans
                        .iter()
                        .map(|p| format!("spotCheckPlans/{p}"))
                        .collect(),
                    departments: v
                        .departments
                        .iter()
                        .map(|d| format!("agencies/{d}"))
                        .collect(),
                    check_items: v.check_items,
                    inspectors: v.inspectors,
                    non_on_site: grades && v.non_on_site,
                })
                .collect(),
        };
        let bytes = prost::Message::encoded_len(&response);
        if bytes > ANSWER_BYTES {
            return Err(Error::FailedPrecondition(vec![PreconditionViolation {
                kind: "ANSWER_TOO_LARGE".into(),
                subject: "plans".into(),
                description: format!(
                    "the joint visits of these plans take {bytes} bytes, more than the {ANSWER_BYTES} one answer carries: merge fewer plans at a time"
                ),
            }])
            .into());
        }
        Ok(Response::new(response))
    }

    async fn record_spot_check_result(
        &self,
        req: Request<pb::RecordSpotCheckResultRequest>,
    ) -> Result<Response<pb::RecordSpotCheckResultResponse>, Status> {
        let agency = caller(&req, Scope::SpotChecksManage, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let today = self.state.clock.today();
        let mut v = Violations::default();
        let uscc = v.check(enterprise_name("enterprise", &r.enterprise));
        let outcome = required_enum(&mut v, "outcome", r.outcome, SpotCheckOutcome::from_number);
        let inspected = date(&mut v, "inspection_date", &r.inspection_date, true).flatten();
        if inspected.is_some_and(|d| d > today) {
            v.add(
                "inspection_date",
                format!("must not be in the future (today is {today})"),
            );
        }
        let given_items: &[pb::InspectionItem] = if r.items.is_empty() || r.items.len() > MAX_ITEMS
        {
            v.add(
                "items",
                format!("must list 1 to {MAX_ITEMS} inspected items"),
            );
            &[]
        } else {
            &r.items
        };
        let mut items = Vec::new();
        for (i, it) in given_items.iter().enumerate() {
            let item = prose(&mut v, &format!("items[{i}].item"), &it.item, true, 200);
            let finding = prose(
                &mut v,
                &format!("items[{i}].finding"),
                &it.finding,
                !it.passed,
                1_000,
            );
            if let (Some(item), Some(finding)) = (item, finding) {
                items.push(InspectionItem {
                    item,
                    passed: it.passed,
                    finding,
                });
            }
        }
        match outcome {
            Some(SpotCheckOutcome::Passed) if r.items.iter().any(|i| !i.passed) => {
                v.add("outcome", "PASSED contradicts an item that did not pass")
            }
            Some(SpotCheckOutcome::ProblemsFound) if r.items.iter().all(|i| i.passed) => v.add(
                "outcome",
                "PROBLEMS_FOUND needs at least one item that did not pass",
            ),
            _ => {}
        }
        let (uscc, outcome, inspected) = v.finish_all((uscc, outcome, inspected))?;
        note.subject(uscc.resource_name()).count(1);
        let plan = self.own_plan("plan", &r.plan, &agency).await?;
        let is_target = plan
            .drawn
            .as_ref()
            .is_some_and(|d| d.targets.iter().any(|t| t.uscc == uscc.as_str()));
        // An inspection happens after its target was drawn: an earlier date would also
        // put the result's publicity window in the past, so a failed check would
        // never count.
        let drawn_on = plan
            .drawn
            .as_ref()
            .and_then(|d| super::china_date(d.drawn_at));
        if let Some(drawn_on) = drawn_on.filter(|d| inspected < *d) {
            return Err(Error::invalid(
                "inspection_date",
                format!("must not be before the plan was drawn ({drawn_on})"),
            )
            .into());
        }
        if !is_target {
            return Err(Error::FailedPrecondition(vec![PreconditionViolation {
                kind: "NOT_A_TARGET".into(),
                subject: uscc.resource_name(),
                description: format!(
                    "{} was not drawn by {}; only drawn targets are inspected under a plan",
                    uscc.resource_name(),
                    plan.resource_name()
                ),
            }])
            .into());
        }
        let tier = match outcome {
            SpotCheckOutcome::Passed => Tier::Minor,
            SpotCheckOutcome::ProblemsFound | SpotCheckOutcome::NotFoundAtAddress => Tier::Moderate,
        };
        let content = RecordContent {
            subject: Subject::Enterprise(uscc.clone()),
            kind: RecordKind::SpotCheckResult,
            tier,
            domain: plan.domain,
            decision_date: inspected,
            document_number: format!("双随机抽查 {}", plan.resource_name()),
            deciding_authority: agency.display_name.clone(),
            summary: items
                .iter()
                .map(|i| {
                    if i.passed {
                        format!("{}：合格", i.item)
                    } else {
                        format!("{}：{}", i.item, i.finding)
                    }
                })
                .collect::<Vec<_>>()
                .join("；")
                .chars()
                .take(crate::domain::record::MAX_TEXT_CHARS)
                .collect(),
            // Published from the day it is recorded: a result recorded after its window
            // would have ended from the inspection date would otherwise never be shown.
            publicity_end: default_publicity_end(
                RecordKind::SpotCheckResult,
                tier,
                inspected.max(today),
                &[],
            ),
            attributes: Attributes {
                spot_check_outcome: Some(outcome),
                ..Default::default()
            },
        };
        let mut v = Violations::default();
        check_consistency("result", &content, today, &mut v);
        v.finish(())?;
        let result = SpotCheckResult {
            plan_id: plan.id.clone(),
            uscc: uscc.as_str().to_string(),
            agency_id: agency.id.clone(),
            outcome,
            items,
            inspection_date: inspected,
            published_at: now_millis(),
            publish_due: self
                .calendar
                .add_working_days(inspected, self.policy.publish_working_days),
            record_id: String::new(),
        };
        let record = NewRecord {
            source_record_id: format!(
                "{}{}-{}",
                super::convert::SPOT_CHECK_PREFIX,
                plan.id,
                uscc.as_str()
            ),
            revision: 1,
            // Its window runs from the day it is recorded: a retry on a later day is
            // the same result.
            publicity_end_defaulted: true,
            content,
        };
        let enterprise = self
            .state
            .store
            .get_enterprise(&uscc)
            .await?
            .ok_or_else(|| Error::NotFound(uscc.resource_name()))?;
        let (stored, result) = self
            .state
            .store
            .record_spot_check_result(&agency, record, &result, today)
            .await?;
        Ok(Response::new(pb::RecordSpotCheckResultResponse {
            result: Some(result_out(&result, &enterprise.display_name, today)),
            record: stored.resource_name(),
        }))
    }

    async fn list_published_results(
        &self,
        req: Request<pb::ListPublishedResultsRequest>,
    ) -> Result<Response<pb::ListPublishedResultsResponse>, Status> {
        self.public_calls.admit(&req, &self.state.peers)?;
        let r = req.get_ref();
        let size = page_size(r.page_size)?;
        let plan = if r.plan.is_empty() {
            None
        } else {
            Some(resource_id("plan", "spotCheckPlans", &r.plan)?.to_string())
        };
        let uscc = if r.enterprise.is_empty() {
            None
        } else {
            Some(enterprise_name("enterprise", &r.enterprise)?)
        };
        let query = format!(
            "publishedResults?plan={}&enterprise={}",
            r.plan, r.enterprise
        );
        let after: Option<(i64, String, String)> = decode_token(&query, &r.page_token)?;
        let today = self.state.clock.today();
        let mut found = self
            .state
            .store
            .published_results(
                plan.as_deref(),
                uscc.as_ref().map(|u| u.as_str()),
                after,
                size + 1,
                today,
            )
            .await?;
        let size = size_within_bytes(&found, size, |(x, name)| {
            prost::Message::encoded_len(&result_out(x, name, today))
        });
        let next_page_token = next_page(&mut found, size, &query, |(x, _)| {
            (x.published_at, x.plan_id.clone(), x.uscc.clone())
        });
        Ok(Response::new(pb::ListPublishedResultsResponse {
            results: found
                .iter()
                .map(|(x, name)| result_out(x, name, today))
                .collect(),
            next_page_token,
        }))
    }
}
