//! Credit repair through the real server: check-up dates per tier, never-early and
//! listing-blocked penalties, the apply → interview → decide workflow and its effects,
//! working-day deadlines over a holiday, and screening for planted candidates.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{Datelike, Months, NaiveDate};
use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use pb::repair_service_client::RepairServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

impl TestApp {
    fn repair(&self) -> RepairServiceClient<Authed> {
        RepairServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer(AgencyKind::MarketRegulation),
        )
    }

    async fn file(&self, records: Vec<pb::Record>) -> Vec<pb::Record> {
        self.records(AgencyKind::MarketRegulation)
            .batch_submit_records(pb::BatchSubmitRecordsRequest {
                request_id: String::new(),
                records,
            })
            .await
            .expect("submit")
            .into_inner()
            .records
    }

    /// A record as market regulation reads it.
    async fn record(&self, name: &str) -> pb::Record {
        self.records(AgencyKind::MarketRegulation)
            .get_record(pb::GetRecordRequest { name: name.into() })
            .await
            .expect("get record")
            .into_inner()
            .record
            .expect("record")
    }

    async fn checkup(&self, n: u32) -> pb::CreditCheckupResponse {
        self.repair()
            .credit_checkup(pb::CreditCheckupRequest {
                enterprise: format!("enterprises/{}", uscc(n)),
            })
            .await
            .expect("checkup")
            .into_inner()
    }
}

fn days_ago(app: &TestApp, days: i64) -> NaiveDate {
    app.clock.today() - chrono::Duration::days(days)
}

/// A market-regulation penalty of `tier`, decided `days` ago, in `domain`.
fn fine(app: &TestApp, n: u32, source: &str, tier: pb::Tier, days: i64) -> pb::Record {
    pb::Record {
        tier: tier as i32,
        decision_date: days_ago(app, days).to_string(),
        document_number: format!("威开市监罚〔{source}〕号"),
        ..penalty(&uscc(n), source)
    }
}

/// A serious-dishonesty listing of enterprise `n`, decided `days` ago.
fn serious_listing(app: &TestApp, n: u32, source: &str, days: i64) -> pb::Record {
    pb::Record {
        kind: pb::RecordKind::SeriousDishonestyListing as i32,
        serious_listing_cause: pb::SeriousListingCause::SeriousViolation as i32,
        domain: pb::RegulatoryDomain::BusinessRegistration as i32,
        penalty_measures: vec![],
        fine_amount_fen: 0,
        tier: pb::Tier::Serious as i32,
        decision_date: days_ago(app, days).to_string(),
        document_number: format!("威开市监严〔{source}〕号"),
        ..penalty(&uscc(n), source)
    }
}

fn item<'a>(c: &'a pb::CreditCheckupResponse, record: &pb::Record) -> &'a pb::CheckupItem {
    c.items
        .iter()
        .find(|i| i.record == record.name)
        .unwrap_or_else(|| panic!("{} is in the check-up: {c:?}", record.name))
}

/// The first day once `months` have run their course after a decision on `d`: the
/// Civil Code does not count the decision's own day (Art. 201), so the period's last
/// day is the corresponding day and the day after it is the first one past it.
fn after_months(d: NaiveDate, months: u32) -> String {
    d.checked_add_months(Months::new(months))
        .unwrap()
        .succ_opt()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn checkup_dates_follow_each_tier_and_heavy_penalties_are_never_repaired_early() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let revoked = pb::Record {
        penalty_measures: vec![
            pb::PenaltyMeasure::Fine as i32,
            pb::PenaltyMeasure::LicenseRevoked as i32,
        ],
        ..fine(&app, 1, "revoked", pb::Tier::Serious, 500)
    };
    // Each in a domain of its own: two in one would be a repeat violation, which rules
    // out early repair (tested below).
    use pb::RegulatoryDomain as D;
    let filed = app
        .file(
            [
                fine(&app, 1, "minor", pb::Tier::Minor, 20),
                fine(&app, 1, "moderate-old", pb::Tier::Moderate, 200),
                fine(&app, 1, "moderate-new", pb::Tier::Moderate, 30),
                fine(&app, 1, "serious", pb::Tier::Serious, 100),
                revoked,
            ]
            .into_iter()
            .zip([
                D::Pricing,
                D::Drugs,
                D::Cosmetics,
                D::Elevators,
                D::Metrology,
            ])
            .map(|(r, domain)| pb::Record {
                domain: domain as i32,
                ..r
            })
            .collect(),
        )
        .await;
    let c = app.checkup(1).await;
    use pb::Repairability as R;
    let minor = item(&c, &filed[0]);
    assert_eq!(minor.repairability, R::EndsByItself as i32);
    assert!(minor.requirements.is_empty());
    let old = item(&c, &filed[1]);
    assert_eq!(old.repairability, R::RepairableNow as i32);
    assert_eq!(
        old.repairable_from_date,
        after_months(days_ago(&app, 200), 3)
    );
    let new = item(&c, &filed[2]);
    assert_eq!(new.repairability, R::RepairableLater as i32);
    assert_eq!(
        new.repairable_from_date,
        after_months(days_ago(&app, 30), 3)
    );
    let serious = item(&c, &filed[3]);
    assert_eq!(serious.repairability, R::RepairableLater as i32);
    assert_eq!(
        serious.repairable_from_date,
        after_months(days_ago(&app, 100), 12)
    );
    assert!(serious
        .requirements
        .contains(&(pb::RepairRequirement::CreditInterview as i32)));
    let never = item(&c, &filed[4]);
    assert_eq!(never.repairability, R::NeverEarly as i32);
    assert!(never.reason.contains("LICENSE_REVOKED"), "{}", never.reason);
    assert!(never.repairable_from_date.is_empty());
    // Repairing the one item repairable today cannot hurt (the penalty cap is reached).
    assert!(c.score_after_repair >= c.current_score, "{c:?}");

    // Every heavier penalty Order 45 Art. 14 names is never repaired early.
    app.register(vec![enterprise(2, ID_B)]).await;
    use pb::PenaltyMeasure as M;
    let heavy = [
        M::QualificationDowngraded,
        M::LicenseRevoked,
        M::BusinessRestricted,
        M::ProductionSuspended,
        M::Closure,
        M::PracticeBan,
    ];
    let filed = app
        .file(
            heavy
                .iter()
                .map(|m| pb::Record {
                    penalty_measures: vec![M::Fine as i32, *m as i32],
                    ..fine(&app, 2, m.as_str_name(), pb::Tier::Serious, 500)
                })
                .collect(),
        )
        .await;
    let c = app.checkup(2).await;
    for (measure, record) in heavy.iter().zip(&filed) {
        assert_eq!(
            item(&c, record).repairability,
            R::NeverEarly as i32,
            "{measure:?}"
        );
    }

    // A penalty followed by another for the same kind of violation (the same domain)
    // is never repaired early either (Order 45 Art. 14); the later one may be.
    app.register(vec![enterprise(3, ID_B)]).await;
    let filed = app
        .file(vec![
            fine(&app, 3, "first", pb::Tier::Moderate, 200),
            fine(&app, 3, "again", pb::Tier::Moderate, 150),
        ])
        .await;
    let c = app.checkup(3).await;
    let first = item(&c, &filed[0]);
    assert_eq!(first.repairability, R::NeverEarly as i32);
    assert!(first.reason.contains("same kind"), "{}", first.reason);
    assert_eq!(item(&c, &filed[1]).repairability, R::RepairableNow as i32);
}

/// The check-up's "grade after repair" keeps what repairing this enterprise cannot
/// change: its legal representative also represents an enterprise graded D.
#[tokio::test]
async fn the_grade_after_repair_keeps_a_shared_representatives_d_enterprise() {
    let app = spawn_app().await;
    app.register(vec![enterprise(20, ID_A), enterprise(21, ID_A)])
        .await;
    app.file(vec![serious_listing(&app, 21, "listing-21", 30)])
        .await;
    let current = app.grade_of(20).await;
    assert!(
        has_reason(&current, "LEGAL_REPRESENTATIVE_REPRESENTS_D"),
        "{:?}",
        current.reasons
    );
    assert_ne!(current.grade, pb::Grade::A as i32);
    let checkup = app.checkup(20).await;
    assert!(checkup.items.is_empty(), "nothing of its own to repair");
    assert_eq!(
        (checkup.grade_after_repair, checkup.score_after_repair),
        (current.grade, current.score)
    );
}

/// An abnormal-list entry for a missed annual report is repaired by filing the report:
/// until the filing is on record no waiting period makes it repairable.
#[tokio::test]
async fn a_missed_annual_report_listing_waits_for_the_report() {
    let app = spawn_app().await;
    app.register(vec![enterprise(30, ID_A)]).await;
    let year = app.clock.today().year() - 2;
    let listed = app
        .file(vec![abnormal(
            30,
            "abnormal-30",
            &days_ago(&app, 200).to_string(),
            year,
            pb::AbnormalCause::AnnualReportNotFiled,
        )])
        .await;
    let waiting = app.checkup(30).await;
    let it = item(&waiting, &listed[0]);
    assert_eq!(it.repairability, pb::Repairability::RepairableLater as i32);
    assert!(it.repairable_from_date.is_empty(), "{it:?}");
    assert!(
        it.reason
            .contains(&format!("filing the {year} annual report")),
        "{}",
        it.reason
    );
    let err = app
        .repair()
        .apply_for_repair(application(30, &[&listed[0]], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    app.file(vec![filing(
        30,
        "filing-30",
        year,
        &days_ago(&app, 5).to_string(),
    )])
    .await;
    // The reports that fell due while it stood listed are owed too.
    let later = years_owed_after(year, app.clock.today());
    if !later.is_empty() {
        let still = app.checkup(30).await;
        let it = item(&still, &listed[0]);
        assert_eq!(it.repairability, pb::Repairability::RepairableLater as i32);
        assert!(
            it.reason.contains(&later.start().to_string()),
            "{}",
            it.reason
        );
        app.file(filings(30, later, &days_ago(&app, 5).to_string()))
            .await;
    }
    let cured = app.checkup(30).await;
    assert_eq!(
        item(&cured, &listed[0]).repairability,
        pb::Repairability::RepairableNow as i32
    );

    // A listing must name the year it missed: without it, which filing cures it would be
    // a guess.
    app.register(vec![enterprise(31, ID_A)]).await;
    let unnamed = pb::Record {
        report_year: 0,
        ..abnormal(
            31,
            "abnormal-31",
            &days_ago(&app, 200).to_string(),
            year,
            pb::AbnormalCause::AnnualReportNotFiled,
        )
    };
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![unnamed],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["records[0].report_year"]);
}

/// Grades are internal to supervision: a repair desk without grades:read gets the
/// check-up's items but no grade.
#[tokio::test]
async fn the_checkup_shows_grades_only_to_callers_that_may_read_them() {
    let app = spawn_app().await;
    app.register(vec![enterprise(32, ID_A)]).await;
    let with_grades = app.checkup(32).await;
    assert_eq!(with_grades.current_grade, pb::Grade::A as i32);
    assert_eq!(with_grades.grade_after_repair, pb::Grade::A as i32);
    let desk = agency_with(
        &app,
        BTreeSet::from([Scope::RepairManage]),
        AgencyKind::MarketRegulation,
    )
    .await;
    // Without the grades scope; and with it, but of a kind of agency that may not look
    // grades up for credit repair (as GetCreditGrade with that purpose would refuse).
    let other_kind = agency_with(
        &app,
        BTreeSet::from([Scope::RepairManage, Scope::GradesRead]),
        AgencyKind::Tax,
    )
    .await;
    for caller in [desk, other_kind] {
        let without = RepairServiceClient::with_interceptor(app.channel.clone(), caller)
            .credit_checkup(pb::CreditCheckupRequest {
                enterprise: format!("enterprises/{}", uscc(32)),
            })
            .await
            .expect("checkup")
            .into_inner();
        assert_eq!(
            (
                without.current_grade,
                without.current_score,
                without.grade_after_repair,
                without.score_after_repair
            ),
            (
                pb::Grade::Unspecified as i32,
                0,
                pb::Grade::Unspecified as i32,
                0
            )
        );
        assert_eq!(without.items, with_grades.items);
    }

    // The CLI says so rather than printing the empty grade as a score of 0.
    let (_, token) = app
        .store
        .create_agency(credit_hub::store::NewAgency {
            display_name: "修复窗口".into(),
            kind: AgencyKind::MarketRegulation,
            scopes: BTreeSet::from([Scope::RepairManage]),
            cert_subject: None,
        })
        .await
        .unwrap();
    for json in [false, true] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"));
        command
            .args(["repair", "checkup", &uscc(32)])
            .args(["--addr", &app.addr, "--token", &token]);
        if json {
            command.arg("--json");
        }
        let out = command.output().await.expect("run credit-hub");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if json {
            let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert!(v["grades"].is_null(), "{stdout}");
        } else {
            assert!(stdout.contains("grades are not shown"), "{stdout}");
            assert!(!stdout.contains("UNSPECIFIED"), "{stdout}");
        }
    }
}

#[tokio::test]
async fn a_penalty_held_while_on_the_abnormal_list_waits_until_the_listing_ends() {
    let app = spawn_app().await;
    app.register(vec![enterprise(2, ID_A)]).await;
    let listing_end = app.clock.today() + chrono::Duration::days(40);
    let listing = pb::Record {
        kind: pb::RecordKind::AbnormalOperationsListing as i32,
        abnormal_cause: pb::AbnormalCause::UnreachableAddress as i32,
        domain: pb::RegulatoryDomain::BusinessRegistration as i32,
        penalty_measures: vec![],
        fine_amount_fen: 0,
        decision_date: days_ago(&app, 100).to_string(),
        publicity_end_date: listing_end.to_string(),
        document_number: "威开市监异〔2026〕7号".into(),
        ..penalty(&uscc(2), "abnormal")
    };
    let filed = app
        .file(vec![
            fine(&app, 2, "held", pb::Tier::Moderate, 200),
            listing,
        ])
        .await;
    let c = app.checkup(2).await;
    let held = item(&c, &filed[0]);
    assert_eq!(
        held.repairability,
        pb::Repairability::RepairableLater as i32
    );
    assert_eq!(held.repairable_from_date, listing_end.to_string());
    assert!(
        held.reason.contains("abnormal-operations list"),
        "{}",
        held.reason
    );
    // Applying for it now names why not.
    let err = app
        .repair()
        .apply_for_repair(pb::ApplyForRepairRequest {
            enterprise: format!("enterprises/{}", uscc(2)),
            records: vec![filed[0].name.clone()],
            commitment_letter_reference: "承诺书-2".into(),
            proof_references: vec!["缴款凭证-2".into()],
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let v = err.get_details_precondition_failure().unwrap().violations;
    assert_eq!(v[0].r#type, "NOT_REPAIRABLE_NOW");
    assert!(v[0].description.contains(&listing_end.to_string()));
}

fn application(n: u32, records: &[&pb::Record], request_id: &str) -> pb::ApplyForRepairRequest {
    pb::ApplyForRepairRequest {
        enterprise: format!("enterprises/{}", uscc(n)),
        records: records.iter().map(|r| r.name.clone()).collect(),
        commitment_letter_reference: format!("承诺书-{n}"),
        proof_references: vec![format!("缴款凭证-{n}")],
        request_id: request_id.into(),
    }
}

/// The credit interview of application `name`, held today by `officer`.
fn interview(app: &TestApp, name: &str, officer: &str) -> pb::RecordCreditInterviewRequest {
    pb::RecordCreditInterviewRequest {
        name: name.into(),
        interview: Some(pb::CreditInterview {
            interview_date: app.clock.today().to_string(),
            officer: officer.into(),
            outcome: "企业已整改并承诺守信经营".into(),
        }),
        request_id: String::new(),
    }
}

fn decide(name: &str, decision: pb::RepairDecision, request_id: &str) -> pb::DecideRepairRequest {
    pb::DecideRepairRequest {
        name: name.into(),
        decision: decision as i32,
        reason: "已履行处罚并作出信用承诺".into(),
        request_id: request_id.into(),
    }
}

/// A decision checks what the records need as they stand: a revision since the
/// application that raised a moderate penalty to serious needs the credit interview the
/// moderate one did not.
#[tokio::test]
async fn a_penalty_raised_to_serious_after_the_application_needs_its_interview() {
    let app = spawn_app().await;
    app.register(vec![enterprise(4, ID_A)]).await;
    let filed = app
        .file(vec![fine(&app, 4, "raised", pb::Tier::Moderate, 200)])
        .await;
    let mut repair = app.repair();
    let applied = repair
        .apply_for_repair(application(4, &[&filed[0]], "apply-4"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert!(!applied.interview_required);
    let mut raised = fine(&app, 4, "raised", pb::Tier::Serious, 400);
    raised.provenance.as_mut().unwrap().revision = 2;
    app.file(vec![raised]).await;
    let err = repair
        .decide_repair(decide(&applied.name, pb::RepairDecision::Approve, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let unmet: Vec<String> = err
        .get_details_precondition_failure()
        .unwrap()
        .violations
        .iter()
        .map(|v| v.r#type.clone())
        .collect();
    assert_eq!(unmet, ["INTERVIEW_NOT_RECORDED"]);
}

#[tokio::test]
async fn apply_interview_approve_repairs_the_records_changes_the_grade_and_a_watcher_sees_it() {
    let app = spawn_app().await;
    app.register(vec![enterprise(3, ID_A)]).await;
    let filed = app
        .file(vec![fine(&app, 3, "serious-old", pb::Tier::Serious, 400)])
        .await;
    let before = app.grade_of(3).await;
    let checkup = app.checkup(3).await;
    assert_eq!(checkup.current_score, before.score);
    assert!(
        checkup.score_after_repair > checkup.current_score,
        "{checkup:?}"
    );
    let mut watcher = app
        .grades(AgencyKind::Tax)
        .watch_grade_changes(pb::WatchGradeChangesRequest {
            cursor: String::new(),
            model: "general".into(),
            purpose: pb::Purpose::TaxAdministration as i32,
        })
        .await
        .unwrap()
        .into_inner();

    let mut repair = app.repair();
    let app_ = repair
        .apply_for_repair(application(3, &[&filed[0]], "apply-3"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(app_.state, pb::RepairState::Accepted as i32);
    assert!(app_.interview_required);
    assert!(!app_.decision_deadline_date.is_empty());
    // The same records cannot be in two open applications, and the check-up says the
    // record awaits a decision instead of advising to apply.
    let err = repair
        .apply_for_repair(application(3, &[&filed[0]], "apply-3-again"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let pending = app.checkup(3).await;
    assert_eq!(
        pending.items[0].repairability,
        pb::Repairability::Applied as i32
    );
    assert!(
        pending.items[0].reason.contains(&app_.name),
        "{:?}",
        pending.items[0]
    );
    assert_eq!(pending.score_after_repair, checkup.score_after_repair);

    let err = repair
        .decide_repair(decide(&app_.name, pb::RepairDecision::Approve, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.get_details_precondition_failure().unwrap().violations[0].r#type,
        "INTERVIEW_NOT_RECORDED"
    );
    let interviewed = repair
        .record_credit_interview(interview(&app, &app_.name, "王科长"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(interviewed.state, pb::RepairState::Interviewed as i32);
    // The interview on record is never replaced; the same one again changes nothing.
    let interview = |officer: &str| interview(&app, &app_.name, officer);
    let err = repair
        .record_credit_interview(interview("李科长"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.get_details_precondition_failure().unwrap().violations[0].r#type,
        "ALREADY_INTERVIEWED"
    );
    assert!(err.message().contains("王科长"), "{err:?}");
    let again = repair
        .record_credit_interview(interview("王科长"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(again, interviewed);
    let approved = repair
        .decide_repair(decide(&app_.name, pb::RepairDecision::Approve, "decide-3"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(approved.state, pb::RepairState::Approved as i32);

    let record = app.record(&filed[0].name).await;
    assert_eq!(record.status, pb::RecordStatus::Repaired as i32);
    // A late retry of the application gets its first answer, though its record is
    // repaired now and would no longer pass the checks.
    let retried = repair
        .apply_for_repair(application(3, &[&filed[0]], "apply-3"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(retried, app_);
    let after = app.grade_of(3).await;
    assert!(after.score > before.score, "{before:?} -> {after:?}");
    let change = tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("a change arrives")
        .unwrap()
        .unwrap()
        .change
        .unwrap();
    assert_eq!(change.enterprise, format!("enterprises/{}", uscc(3)));
    assert_eq!(change.cause, pb::GradeChangeCause::RecordRepaired as i32);

    // Every step is in the audit log.
    let entries = app
        .audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(3)),
            ..Default::default()
        })
        .await;
    let methods: BTreeSet<&str> = entries.iter().map(|e| e.method.as_str()).collect();
    for step in ["ApplyForRepair", "RecordCreditInterview", "DecideRepair"] {
        assert!(
            methods.contains(format!("/credithub.v1.RepairService/{step}").as_str()),
            "{step} audited: {methods:?}"
        );
    }

    // The filer corrects its record afterwards: the repair decision stands.
    let mut corrected = fine(&app, 3, "serious-old", pb::Tier::Serious, 400);
    corrected.summary = "生产不符合食品安全标准的食品（更正）".into();
    corrected.provenance.as_mut().unwrap().revision = 2;
    let revised = app.file(vec![corrected]).await;
    assert_eq!(revised[0].name, filed[0].name);
    assert_eq!(revised[0].status, pb::RecordStatus::Repaired as i32);
    assert_eq!(app.grade_of(3).await.score, after.score);

    // A revision that changes what the decision weighed (here the measures: a licence
    // revoked, never repairable early) is a record no one decided on: active again.
    let mut heavier = fine(&app, 3, "serious-old", pb::Tier::Serious, 400);
    heavier.penalty_measures = vec![
        pb::PenaltyMeasure::Fine as i32,
        pb::PenaltyMeasure::LicenseRevoked as i32,
    ];
    heavier.provenance.as_mut().unwrap().revision = 3;
    let revised = app.file(vec![heavier]).await;
    assert_eq!(revised[0].status, pb::RecordStatus::Active as i32);
    assert!(app.grade_of(3).await.score < after.score);
}

#[tokio::test]
async fn rejecting_leaves_everything_unchanged_and_only_market_regulation_decides() {
    let app = spawn_app().await;
    app.register(vec![enterprise(4, ID_A)]).await;
    let filed = app
        .file(vec![fine(&app, 4, "moderate-old", pb::Tier::Moderate, 200)])
        .await;
    let before = app.grade_of(4).await;
    let mut repair = app.repair();
    let open = repair
        .apply_for_repair(application(4, &[&filed[0]], ""))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert!(!open.interview_required);
    let court = agency_with(
        &app,
        BTreeSet::from([Scope::RepairManage]),
        AgencyKind::Court,
    )
    .await;
    let mut court = RepairServiceClient::with_interceptor(app.channel.clone(), court);
    let err = court
        .decide_repair(decide(&open.name, pb::RepairDecision::Approve, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Nor may it record the interview such a decision rests on.
    let err = court
        .record_credit_interview(interview(&app, &open.name, "李法官"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let rejected = repair
        .decide_repair(decide(&open.name, pb::RepairDecision::Reject, ""))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(rejected.state, pb::RepairState::Rejected as i32);
    let record = app.record(&filed[0].name).await;
    assert_eq!(record.status, pb::RecordStatus::Active as i32);
    let after = app.grade_of(4).await;
    assert_eq!((after.grade, after.score), (before.grade, before.score));
    let err = repair
        .decide_repair(decide(&open.name, pb::RepairDecision::Approve, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = repair
        .decide_repair(pb::DecideRepairRequest {
            name: open.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["decision", "reason"]);
}

#[tokio::test]
async fn a_deadline_spanning_national_day_lands_on_the_right_working_day() {
    let app = spawn_app().await;
    // Move the service's calendar to Tuesday 29 September 2026.
    let target: NaiveDate = "2026-09-29".parse().unwrap();
    app.clock
        .advance_days((target - app.clock.today()).num_days());
    assert_eq!(app.clock.today(), target);
    app.register(vec![enterprise(5, ID_A)]).await;
    let filed = app
        .file(vec![fine(&app, 5, "moderate", pb::Tier::Moderate, 200)])
        .await;
    let open = app
        .repair()
        .apply_for_repair(application(5, &[&filed[0]], ""))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    // 30 Sep; 1–7 Oct off; 8, 9, Saturday 10 (worked), 12, 13, 14 Oct.
    assert_eq!(open.decision_deadline_date, "2026-10-14");
    assert!(!open.overdue);
    app.clock.advance_days(16);
    let later = app
        .repair()
        .get_repair_application(pb::GetRepairApplicationRequest {
            name: open.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert!(later.overdue);
}

#[tokio::test]
async fn screening_finds_exactly_the_planted_candidates() {
    let app = spawn_app().await;
    let mut other_region = enterprise(13, ID_B);
    other_region.region_code = "371082".into();
    app.register(vec![
        enterprise(10, ID_A),
        enterprise(11, ID_A),
        enterprise(12, ID_B),
        other_region,
        enterprise(14, ID_B),
    ])
    .await;
    let listing = serious_listing(&app, 11, "listing-11", 400);
    let heavy = pb::Record {
        penalty_measures: vec![
            pb::PenaltyMeasure::Fine as i32,
            pb::PenaltyMeasure::PracticeBan as i32,
        ],
        ..fine(&app, 14, "heavy-14", pb::Tier::Serious, 500)
    };
    app.file(vec![
        fine(&app, 10, "ready-10", pb::Tier::Moderate, 200),
        listing,
        fine(&app, 12, "young-12", pb::Tier::Moderate, 30),
        fine(&app, 13, "ready-13", pb::Tier::Moderate, 200),
        heavy,
    ])
    .await;
    let list = |region: &str, domain: pb::RegulatoryDomain| pb::ListRepairCandidatesRequest {
        region_code: region.into(),
        domain: domain as i32,
        ..Default::default()
    };
    let mut repair = app.repair();
    let found = |c: Vec<pb::RepairCandidate>| -> BTreeSet<String> {
        c.into_iter().map(|c| c.enterprise).collect()
    };
    let all = repair
        .list_repair_candidates(list("", pb::RegulatoryDomain::Unspecified))
        .await
        .unwrap()
        .into_inner()
        .candidates;
    let removable: Vec<bool> = all.iter().map(|c| c.serious_listing_removable).collect();
    assert_eq!(
        found(all),
        [10, 11, 13]
            .map(|n| format!("enterprises/{}", uscc(n)))
            .into()
    );
    assert_eq!(removable.iter().filter(|r| **r).count(), 1);
    let local = repair
        .list_repair_candidates(list("371002", pb::RegulatoryDomain::Unspecified))
        .await
        .unwrap()
        .into_inner()
        .candidates;
    assert_eq!(
        found(local),
        [10, 11].map(|n| format!("enterprises/{}", uscc(n))).into()
    );
    let food = repair
        .list_repair_candidates(list("", pb::RegulatoryDomain::FoodProduction))
        .await
        .unwrap()
        .into_inner()
        .candidates;
    assert_eq!(
        found(food),
        [10, 13].map(|n| format!("enterprises/{}", uscc(n))).into()
    );
    // Pages of one walk the same set.
    let mut seen = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = repair
            .list_repair_candidates(pb::ListRepairCandidatesRequest {
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(found(page.candidates));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 3);

    // Once its record is applied for, an enterprise has nothing left to be guided to.
    let ready = app
        .file(vec![fine(&app, 10, "ready-10", pb::Tier::Moderate, 200)])
        .await;
    repair
        .apply_for_repair(application(10, &[&ready[0]], ""))
        .await
        .unwrap();
    let left = repair
        .list_repair_candidates(list("", pb::RegulatoryDomain::Unspecified))
        .await
        .unwrap()
        .into_inner()
        .candidates;
    assert_eq!(
        found(left),
        [11, 13].map(|n| format!("enterprises/{}", uscc(n))).into()
    );
}

/// On PostgreSQL decisions run side by side: an approval and a rejection of one
/// application arriving together must not both be taken.
#[tokio::test]
async fn two_decisions_arriving_together_on_one_application_take_one() {
    let app = spawn_app().await;
    let ns: Vec<u32> = (60..66).collect();
    app.register(ns.iter().map(|&n| enterprise(n, ID_A)).collect())
        .await;
    for &n in &ns {
        let filed = app
            .file(vec![fine(
                &app,
                n,
                &format!("m-{n}"),
                pb::Tier::Moderate,
                200,
            )])
            .await;
        let open = app
            .repair()
            .apply_for_repair(application(n, &[&filed[0]], ""))
            .await
            .unwrap()
            .into_inner()
            .application
            .unwrap();
        let (mut a, mut b) = (app.repair(), app.repair());
        let (approve, reject) = tokio::join!(
            a.decide_repair(decide(&open.name, pb::RepairDecision::Approve, "")),
            b.decide_repair(decide(&open.name, pb::RepairDecision::Reject, "")),
        );
        let record = app.record(&filed[0].name).await;
        match (approve, reject) {
            (Ok(_), Err(e)) => {
                assert_eq!(e.code(), Code::FailedPrecondition);
                assert_eq!(record.status, pb::RecordStatus::Repaired as i32);
            }
            (Err(e), Ok(_)) => {
                assert_eq!(e.code(), Code::FailedPrecondition);
                assert_eq!(record.status, pb::RecordStatus::Active as i32);
            }
            both => panic!("exactly one decision is taken: {both:?}"),
        }
    }
}

/// Listings follow their cure, not an Order 107 tier: an abnormal-operations listing of
/// any tier is repairable once its cause is cured, with no waiting period, and a
/// serious-dishonesty listing after three years on the abnormal list over missed annual
/// reports waits for every missed report to be filed.
#[tokio::test]
async fn listings_are_repaired_by_curing_their_cause_whatever_their_tier() {
    let app = spawn_app().await;
    app.register(vec![enterprise(40, ID_A), enterprise(41, ID_A)])
        .await;
    let minor = pb::Record {
        tier: pb::Tier::Minor as i32,
        ..abnormal(
            40,
            "ab-40",
            &days_ago(&app, 10).to_string(),
            0,
            pb::AbnormalCause::UnreachableAddress,
        )
    };
    let listed = app.file(vec![minor]).await;
    assert_eq!(
        item(&app.checkup(40).await, &listed[0]).repairability,
        pb::Repairability::RepairableNow as i32,
        "a minor-tier listing neither ends by itself nor waits"
    );
    // Its removal is decided within the list's own 5 working days (SAIC Order 68),
    // sooner than a penalty's 7 applied for the same day.
    app.register(vec![enterprise(42, ID_B)]).await;
    let fined = app
        .file(vec![fine(&app, 42, "fine-42", pb::Tier::Moderate, 200)])
        .await;
    let mut repair = app.repair();
    let deadline = |a: pb::ApplyForRepairResponse| a.application.unwrap().decision_deadline_date;
    let listing_due = deadline(
        repair
            .apply_for_repair(application(40, &[&listed[0]], ""))
            .await
            .unwrap()
            .into_inner(),
    );
    let penalty_due = deadline(
        repair
            .apply_for_repair(application(42, &[&fined[0]], ""))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(listing_due < penalty_due, "{listing_due} vs {penalty_due}");

    let year = app.clock.today().year() - 4;
    let abnormal_listing = abnormal(
        41,
        "ab-41",
        &days_ago(&app, 1200).to_string(),
        year,
        pb::AbnormalCause::AnnualReportNotFiled,
    );
    let serious = pb::Record {
        serious_listing_cause: pb::SeriousListingCause::AbnormalListThreeYears as i32,
        ..market_record(
            41,
            pb::RecordKind::SeriousDishonestyListing,
            "sl-41",
            &days_ago(&app, 400).to_string(),
        )
    };
    let listed = app.file(vec![abnormal_listing, serious]).await;
    let waiting = app.checkup(41).await;
    let it = item(&waiting, &listed[1]);
    assert_eq!(it.repairability, pb::Repairability::RepairableLater as i32);
    assert!(it.reason.contains(&year.to_string()), "{}", it.reason);
    app.file(
        [filing(
            41,
            "filing-41",
            year,
            &days_ago(&app, 5).to_string(),
        )]
        .into_iter()
        .chain(filings(
            41,
            years_owed_after(year, app.clock.today()),
            &days_ago(&app, 5).to_string(),
        ))
        .collect(),
    )
    .await;
    assert_eq!(
        item(&app.checkup(41).await, &listed[1]).repairability,
        pb::Repairability::RepairableNow as i32
    );
}

/// Copies of one request at once (a client retrying before the first answer came):
/// applying, recording the interview and deciding each happen once, and every copy
/// gets the first copy's answer.
#[tokio::test]
async fn copies_of_one_repair_request_at_once_all_get_its_answer() {
    let app = spawn_app().await;
    app.register(vec![enterprise(7, ID_A)]).await;
    let filed = app
        .file(vec![fine(&app, 7, "serious-7", pb::Tier::Serious, 400)])
        .await;
    let repair = app.repair();
    let apply = application(7, &[&filed[0]], "apply-once");
    let applied = at_once(|| {
        let (mut c, r) = (repair.clone(), apply.clone());
        async move { c.apply_for_repair(r).await }
    })
    .await;
    let name = applied.application.unwrap().name;
    let interview = pb::RecordCreditInterviewRequest {
        request_id: "interview-once".into(),
        ..interview(&app, &name, "王科长")
    };
    at_once(|| {
        let (mut c, r) = (repair.clone(), interview.clone());
        async move { c.record_credit_interview(r).await }
    })
    .await;
    let decision = decide(&name, pb::RepairDecision::Approve, "decide-once");
    let decided = at_once(|| {
        let (mut c, r) = (repair.clone(), decision.clone());
        async move { c.decide_repair(r).await }
    })
    .await;
    assert_eq!(
        decided.application.unwrap().state,
        pb::RepairState::Approved as i32
    );
}

/// A serious-dishonesty listing removed on repair was in force only until then: a
/// credit-status certificate over a period after the removal does not state it, one
/// over a period that includes it states it as repaired, with the day it was removed.
#[tokio::test]
async fn a_listing_removed_on_repair_is_stated_only_for_periods_it_was_in_force() {
    let app = spawn_app().await;
    app.register(vec![enterprise(50, ID_A)]).await;
    let listed = app
        .file(vec![serious_listing(&app, 50, "listing-50", 400)])
        .await;
    let mut repair = app.repair();
    let applied = repair
        .apply_for_repair(application(50, &[&listed[0]], "apply-50"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    if applied.interview_required {
        repair
            .record_credit_interview(interview(&app, &applied.name, "王科长"))
            .await
            .unwrap();
    }
    repair
        .decide_repair(decide(
            &applied.name,
            pb::RepairDecision::Approve,
            "decide-50",
        ))
        .await
        .unwrap();
    let removed = app.clock.today();
    app.clock.advance_days(30);

    let after = serious_dishonesty_since(&app, removed + chrono::Duration::days(1), "after").await;
    assert_eq!(after["listingsInPeriod"], serde_json::json!([]), "{after}");
    assert_eq!(after["listedOnIssueDate"], false);
    let across =
        serious_dishonesty_since(&app, removed - chrono::Duration::days(10), "across").await;
    let stated = &across["listingsInPeriod"][0];
    assert_eq!(stated["record"], listed[0].name.as_str(), "{across}");
    assert_eq!(stated["repaired"], true);
    assert_eq!(stated["removedOn"], removed.to_string());
}

/// The serious-dishonesty part of a credit-status certificate for enterprise 50 over
/// `start` to today.
async fn serious_dishonesty_since(
    app: &TestApp,
    start: NaiveDate,
    request_id: &str,
) -> serde_json::Value {
    let cert = pb::certificate_service_client::CertificateServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::MarketRegulation),
    )
    .issue_certificate(pb::IssueCertificateRequest {
        enterprise: format!("enterprises/{}", uscc(50)),
        kind: pb::CertificateKind::CreditStatus as i32,
        period_start_date: start.to_string(),
        period_end_date: app.clock.today().to_string(),
        request_id: request_id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .certificate
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&cert.document).unwrap();
    doc["credentialSubject"]["seriousDishonesty"].clone()
}
