//! Spot checks through the real server: ratios per grade, the committed seed and public
//! re-verification, cycle exclusions, joint visits across departments, conflicts of
//! interest, and published results that regrade.

use std::collections::BTreeSet;

use chrono::Datelike;
use credit_hub::cli::Bearer;
use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use pb::spot_check_service_client::SpotCheckServiceClient;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

/// Enterprises 100.. are graded A (no records); 200.. are D (a serious listing).
async fn population(app: &TestApp, a: u32, d: u32) {
    let mut all: Vec<pb::Enterprise> = (100..100 + a).map(|n| enterprise(n, ID_A)).collect();
    all.extend((200..200 + d).map(|n| enterprise(n, ID_B)));
    app.register(all).await;
    if d > 0 {
        let listings = (200..200 + d)
            .map(|n| pb::Record {
                kind: pb::RecordKind::SeriousDishonestyListing as i32,
                serious_listing_cause: pb::SeriousListingCause::SeriousViolation as i32,
                tier: pb::Tier::Serious as i32,
                domain: pb::RegulatoryDomain::BusinessRegistration as i32,
                penalty_measures: vec![],
                fine_amount_fen: 0,
                ..penalty(&uscc(n), &format!("listing-{n}"))
            })
            .collect();
        app.records(AgencyKind::MarketRegulation)
            .batch_submit_records(pb::BatchSubmitRecordsRequest {
                request_id: String::new(),
                records: listings,
            })
            .await
            .unwrap();
    }
}

fn cycle(app: &TestApp) -> String {
    let today = app.clock.today();
    format!("{}-Q{}", today.year(), (today.month() - 1) / 3 + 1)
}

fn client(app: &TestApp, bearer: Bearer) -> SpotCheckServiceClient<Authed> {
    SpotCheckServiceClient::with_interceptor(app.channel.clone(), bearer)
}

fn public(app: &TestApp) -> SpotCheckServiceClient<Channel> {
    SpotCheckServiceClient::new(app.channel.clone())
}

/// Plan `name` as `caller` reads it.
async fn get_plan(caller: &mut SpotCheckServiceClient<Authed>, name: &str) -> pb::SpotCheckPlan {
    caller
        .get_spot_check_plan(pb::GetSpotCheckPlanRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap()
}

/// The results published for `plan`, as anyone reads them (no token).
async fn published_results(app: &TestApp, plan: &str) -> Vec<pb::PublishedResult> {
    public(app)
        .list_published_results(pb::ListPublishedResultsRequest {
            plan: plan.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results
}

/// A second department: another market-regulation office.
async fn second_department(app: &TestApp) -> Bearer {
    agency_with(
        app,
        BTreeSet::from([
            Scope::SpotChecksManage,
            Scope::RecordsRead,
            Scope::GradesRead,
        ]),
        AgencyKind::MarketRegulation,
    )
    .await
}

/// Sampling ratios for grade A and grade D (`a` at most `d`: riskier grades are checked
/// at least as often); B and C, which the test populations do not have, sample as A.
fn ratios(a: f64, d: f64) -> Vec<pb::GradeRatio> {
    [
        (pb::Grade::A, a),
        (pb::Grade::B, a),
        (pb::Grade::C, a),
        (pb::Grade::D, d),
    ]
    .into_iter()
    .map(|(g, r)| pb::GradeRatio {
        grade: g as i32,
        ratio: r,
    })
    .collect()
}

async fn plan_and_draw(
    app: &TestApp,
    c: &mut SpotCheckServiceClient<Authed>,
    domain: pb::RegulatoryDomain,
    ratios: Vec<pb::GradeRatio>,
    per_visit: i32,
) -> pb::SpotCheckPlan {
    plan_and_draw_in(c, domain, ratios, per_visit, cycle(app)).await
}

/// A plan for `domain` in `cycle`, created but not drawn.
async fn create_plan(
    c: &mut SpotCheckServiceClient<Authed>,
    domain: pb::RegulatoryDomain,
    ratios: Vec<pb::GradeRatio>,
    per_visit: i32,
    cycle: String,
) -> pb::SpotCheckPlan {
    c.create_spot_check_plan(pb::CreateSpotCheckPlanRequest {
        plan: Some(pb::SpotCheckPlan {
            domain: domain as i32,
            cycle,
            ratios,
            inspectors_per_visit: per_visit,
            check_items: vec!["营业执照公示".into(), "经营场所".into()],
            ..Default::default()
        }),
        request_id: uuid::Uuid::now_v7().simple().to_string(),
    })
    .await
    .expect("create plan")
    .into_inner()
    .plan
    .unwrap()
}

/// [`plan_and_draw`] in `cycle`.
async fn plan_and_draw_in(
    c: &mut SpotCheckServiceClient<Authed>,
    domain: pb::RegulatoryDomain,
    ratios: Vec<pb::GradeRatio>,
    per_visit: i32,
    cycle: String,
) -> pb::SpotCheckPlan {
    let created = create_plan(c, domain, ratios, per_visit, cycle).await;
    assert_eq!(created.state, pb::SpotCheckPlanState::Created as i32);
    assert!(
        created.seed.is_empty(),
        "the seed stays secret until the draw"
    );
    assert_eq!(created.seed_commitment.len(), 64);
    let drawn = c
        .draw_spot_check_plan(pb::DrawSpotCheckPlanRequest {
            name: created.name.clone(),
        })
        .await
        .expect("draw")
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(drawn.seed_commitment, created.seed_commitment);
    assert_eq!(
        hex::encode(Sha256::digest(drawn.seed.as_bytes())),
        created.seed_commitment
    );
    drawn
}

fn grades_of(plan: &pb::SpotCheckPlan, grade: pb::Grade) -> usize {
    plan.targets
        .iter()
        .filter(|t| t.grade == grade as i32)
        .count()
}

#[tokio::test]
async fn a_draw_follows_the_ratios_and_anyone_can_verify_it_from_the_published_inputs() {
    let app = spawn_app().await;
    population(&app, 40, 10).await;
    let mut market = client(&app, app.bearer(AgencyKind::MarketRegulation));
    staff(&mut market, &[pb::RegulatoryDomain::Advertising]).await;
    let plan = plan_and_draw(
        &app,
        &mut market,
        pb::RegulatoryDomain::Advertising,
        ratios(0.25, 0.5),
        1,
    )
    .await;
    // 0.25 × 40 = 10 and 0.5 × 10 = 5 (counts are ratio × eligible, rounded half up).
    assert_eq!(grades_of(&plan, pb::Grade::A), 10);
    assert_eq!(grades_of(&plan, pb::Grade::D), 5);
    // A-grade targets in a domain that allows it are checked without a visit.
    assert!(plan
        .targets
        .iter()
        .all(|t| t.non_on_site == (t.grade == pb::Grade::A as i32)));
    let verified = public(&app)
        .verify_draw(pb::VerifyDrawRequest {
            name: plan.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        verified.seed_matches_commitment && verified.targets_match,
        "{verified:?}"
    );
    assert_eq!(verified.seed, plan.seed);
    // Anyone may verify, so the answer counts all grades together.
    assert_eq!(verified.drawn_total as usize, plan.targets.len());
    let eligible: i32 = plan.eligible.iter().map(|e| e.count).sum();
    assert_eq!(verified.eligible_total, eligible);
    assert_eq!(plan.eligible_total, eligible);

    // A department that may plan spot checks but not read grades does not see this
    // plan's targets: drawn with ratios that differ by grade, they would tell it who
    // has which grade.
    let planner = agency_with(
        &app,
        BTreeSet::from([Scope::SpotChecksManage]),
        AgencyKind::MarketRegulation,
    )
    .await;
    let mut planner = client(&app, planner);
    let err = planner
        .get_spot_check_plan(pb::GetSpotCheckPlanRequest {
            name: plan.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    // Another plan over the same population draws another list.
    let second_dept = second_department(&app).await;
    let mut second = client(&app, second_dept);
    staff(&mut second, &[pb::RegulatoryDomain::Pricing]).await;
    let other = plan_and_draw(
        &app,
        &mut second,
        pb::RegulatoryDomain::Pricing,
        ratios(0.0, 0.5),
        1,
    )
    .await;
    assert_ne!(other.seed, plan.seed);
    // In draw order: 5 of 10 in order come out alike for two seeds once in 30,240
    // (as a set, once in 252: too often for a test).
    let d_of = |p: &pb::SpotCheckPlan| -> Vec<String> {
        p.targets
            .iter()
            .filter(|t| t.grade == pb::Grade::D as i32)
            .map(|t| t.enterprise.clone())
            .collect()
    };
    assert_eq!(d_of(&other).len(), 5);
    assert_ne!(d_of(&other), d_of(&plan), "two seeds gave the same draw");
    // Nor does merging them show it the targets.
    let err = planner
        .merge_plans(pb::MergePlansRequest {
            plans: vec![plan.name.clone(), other.name.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // A plan is drawn once: drawing it again shows the same draw.
    let again = market
        .draw_spot_check_plan(pb::DrawSpotCheckPlanRequest {
            name: plan.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(again.seed, plan.seed);
    assert_eq!(again.targets, plan.targets);
}

#[tokio::test]
async fn a_grade_a_enterprise_inspected_this_cycle_is_never_drawn_again() {
    let app = spawn_app().await;
    population(&app, 12, 6).await;
    let mut first = client(&app, app.bearer(AgencyKind::MarketRegulation));
    staff(
        &mut first,
        &[
            pb::RegulatoryDomain::FoodProduction,
            pb::RegulatoryDomain::Pricing,
        ],
    )
    .await;
    let all = plan_and_draw(
        &app,
        &mut first,
        pb::RegulatoryDomain::FoodProduction,
        ratios(1.0, 1.0),
        1,
    )
    .await;
    assert_eq!(all.targets.len(), 18);
    // The same department this cycle: everything it drew is excluded.
    let again = plan_and_draw(
        &app,
        &mut first,
        pb::RegulatoryDomain::Pricing,
        ratios(1.0, 1.0),
        1,
    )
    .await;
    assert!(again.targets.is_empty(), "{:?}", again.targets);
    // The year holds this quarter: its plan excludes what the quarter's plan drew.
    let year = plan_and_draw_in(
        &mut first,
        pb::RegulatoryDomain::Pricing,
        ratios(1.0, 1.0),
        1,
        app.clock.today().year().to_string(),
    )
    .await;
    assert!(year.targets.is_empty(), "{:?}", year.targets);
    // Another department: no A-grade enterprise twice in a cycle; D-grade ones may be.
    let mut second = client(&app, second_department(&app).await);
    staff(&mut second, &[pb::RegulatoryDomain::Pricing]).await;
    let other = plan_and_draw(
        &app,
        &mut second,
        pb::RegulatoryDomain::Pricing,
        ratios(1.0, 1.0),
        1,
    )
    .await;
    assert_eq!(grades_of(&other, pb::Grade::A), 0);
    assert_eq!(grades_of(&other, pb::Grade::D), 6);
    let eligible_a = other
        .eligible
        .iter()
        .find(|e| e.grade == pb::Grade::A as i32)
        .map_or(0, |e| e.count);
    assert_eq!(eligible_a, 0);
}

async fn register_inspectors(
    c: &mut SpotCheckServiceClient<Authed>,
    prefix: &str,
    conflicts: Vec<String>,
) {
    c.batch_upsert_inspectors(pb::BatchUpsertInspectorsRequest {
        inspectors: vec![
            pb::Inspector {
                code: format!("{prefix}-1"),
                display_name: format!("{prefix} 检查员甲"),
                domains: vec![
                    pb::RegulatoryDomain::FoodProduction as i32,
                    pb::RegulatoryDomain::Pricing as i32,
                ],
                conflicts,
            },
            pb::Inspector {
                code: format!("{prefix}-2"),
                display_name: format!("{prefix} 检查员乙"),
                domains: vec![
                    pb::RegulatoryDomain::FoodProduction as i32,
                    pb::RegulatoryDomain::Pricing as i32,
                ],
                conflicts: vec![],
            },
        ],
    })
    .await
    .expect("register inspectors");
}

/// Registers three inspectors of the caller's department qualified in `domains`, none
/// with a conflict: enough for any visit of the tests' plans.
async fn staff(c: &mut SpotCheckServiceClient<Authed>, domains: &[pb::RegulatoryDomain]) {
    c.batch_upsert_inspectors(pb::BatchUpsertInspectorsRequest {
        inspectors: (1..=3)
            .map(|n| pb::Inspector {
                code: format!("s-{n}"),
                display_name: format!("检查员{n}"),
                domains: domains.iter().map(|d| *d as i32).collect(),
                conflicts: vec![],
            })
            .collect(),
    })
    .await
    .expect("register inspectors");
}

#[tokio::test]
async fn merging_two_departments_plans_reduces_visits_and_reports_the_joint_share() {
    let app = spawn_app().await;
    population(&app, 0, 10).await;
    let mut first = client(&app, app.bearer(AgencyKind::MarketRegulation));
    let mut second = client(&app, second_department(&app).await);
    register_inspectors(&mut first, "m1", vec![]).await;
    register_inspectors(&mut second, "m2", vec![]).await;
    let p1 = plan_and_draw(
        &app,
        &mut first,
        pb::RegulatoryDomain::FoodProduction,
        ratios(0.0, 1.0),
        1,
    )
    .await;
    let p2 = plan_and_draw(
        &app,
        &mut second,
        pb::RegulatoryDomain::Pricing,
        ratios(0.0, 0.5),
        1,
    )
    .await;
    let merged = first
        .merge_plans(pb::MergePlansRequest {
            plans: vec![p1.name.clone(), p2.name.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.visits_before, 15);
    assert_eq!(merged.visits_after, 10);
    assert_eq!(merged.joint_visits, 5);
    assert!((merged.joint_share - 0.5).abs() < 1e-9);
    for v in merged.visits.iter().filter(|v| v.departments.len() == 2) {
        assert_eq!(v.check_items.len(), 4);
        // Each department sends one of its own inspectors.
        assert!(
            v.inspectors.iter().any(|i| i.contains("/inspectors/m1-")),
            "{v:?}"
        );
        assert!(
            v.inspectors.iter().any(|i| i.contains("/inspectors/m2-")),
            "{v:?}"
        );
    }
    let reversed = first
        .merge_plans(pb::MergePlansRequest {
            plans: vec![p2.name.clone(), p1.name.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reversed, merged,
        "the order plans are named in changes nothing"
    );
    // The answer names the enterprises to be visited: so does each call's audit entry.
    let visited: BTreeSet<String> = merged.visits.iter().map(|v| v.enterprise.clone()).collect();
    let entries = app
        .audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.SpotCheckService/MergePlans".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(entries.len(), 2);
    for e in &entries {
        let subjects: BTreeSet<String> = e.subjects.iter().cloned().collect();
        assert_eq!(subjects, visited, "{e:?}");
    }
    let err = first
        .merge_plans(pb::MergePlansRequest {
            plans: vec![p1.name.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["plans"]);
}

/// Joint visits carry every department's check items: merging plans whose answer would
/// pass the 16 MiB a client accepts is refused, saying to merge fewer.
#[tokio::test]
async fn a_merge_too_large_for_one_answer_is_refused() {
    let app = spawn_app().await;
    // 300 joint visits of 60 KB each.
    population(&app, 0, 300).await;
    let mut names = Vec::new();
    for (n, bearer) in [
        app.bearer(AgencyKind::MarketRegulation),
        second_department(&app).await,
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = client(&app, bearer);
        register_inspectors(&mut c, &format!("d{n}"), vec![]).await;
        // 50 items of 200 characters (600 bytes each): 30 KB a department per visit.
        let items = (0..50)
            .map(|i| format!("{n}-{i:02}{}", "查".repeat(195)))
            .collect();
        let plan = c
            .create_spot_check_plan(pb::CreateSpotCheckPlanRequest {
                plan: Some(pb::SpotCheckPlan {
                    domain: [
                        pb::RegulatoryDomain::FoodProduction,
                        pb::RegulatoryDomain::Pricing,
                    ][n] as i32,
                    cycle: cycle(&app),
                    ratios: ratios(0.0, 1.0),
                    inspectors_per_visit: 1,
                    check_items: items,
                    ..Default::default()
                }),
                request_id: uuid::Uuid::now_v7().simple().to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .plan
            .unwrap();
        c.draw_spot_check_plan(pb::DrawSpotCheckPlanRequest {
            name: plan.name.clone(),
        })
        .await
        .unwrap();
        names.push(plan.name);
    }
    let err = client(&app, app.bearer(AgencyKind::MarketRegulation))
        .merge_plans(pb::MergePlansRequest { plans: names })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.get_details_error_info().map(|i| i.reason),
        Some("ANSWER_TOO_LARGE".to_string())
    );
}

#[tokio::test]
async fn no_inspector_is_drawn_for_an_enterprise_he_declared_a_conflict_with() {
    let app = spawn_app().await;
    population(&app, 0, 10).await;
    let conflicted = format!("enterprises/{}", uscc(203));
    let mut market = client(&app, app.bearer(AgencyKind::MarketRegulation));
    register_inspectors(&mut market, "m", vec![conflicted.clone()]).await;
    let created = create_plan(
        &mut market,
        pb::RegulatoryDomain::FoodProduction,
        ratios(0.0, 1.0),
        2,
        cycle(&app),
    )
    .await;
    let draw = pb::DrawSpotCheckPlanRequest {
        name: created.name.clone(),
    };
    // Every D enterprise is drawn at ratio 1.0, the conflicted one included, and with
    // its one inspector conflicted it lacks the second a visit needs: nothing is
    // drawn for good while a visit is short.
    let err = market.draw_spot_check_plan(draw.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let short: Vec<(String, String)> = err
        .get_details_precondition_failure()
        .unwrap()
        .violations
        .into_iter()
        .map(|v| (v.r#type, v.subject))
        .collect();
    // The refusal names no target: a draw not kept shows nothing it drew.
    assert_eq!(
        short,
        [("INSPECTORS_UNAVAILABLE".to_string(), created.name.clone())]
    );
    assert!(
        err.message().contains("1 of the 10 targets"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains(&uscc(203)), "{}", err.message());
    assert_eq!(
        get_plan(&mut market, &created.name).await.state,
        pb::SpotCheckPlanState::Created as i32
    );
    // Nor can the department trade that draw for a fresh seed: another plan of the
    // domain and cycle waits until this one is drawn; another domain does not.
    let again_in = |domain: pb::RegulatoryDomain, cycle: String| pb::CreateSpotCheckPlanRequest {
        plan: Some(pb::SpotCheckPlan {
            domain: domain as i32,
            cycle,
            ratios: ratios(0.0, 1.0),
            inspectors_per_visit: 1,
            check_items: vec!["经营场所".into()],
            ..Default::default()
        }),
        request_id: uuid::Uuid::now_v7().simple().to_string(),
    };
    let again = |domain| again_in(domain, cycle(&app));
    // The quarter's own label, or the year it falls in (they share days).
    let year = app.clock.today().year().to_string();
    for request in [
        again(pb::RegulatoryDomain::FoodProduction),
        again_in(pb::RegulatoryDomain::FoodProduction, year),
    ] {
        let err = market.create_spot_check_plan(request).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        let pending = &err.get_details_precondition_failure().unwrap().violations[0];
        assert_eq!(
            (pending.r#type.as_str(), pending.subject.as_str()),
            ("PLAN_NOT_DRAWN", created.name.as_str())
        );
    }
    market
        .create_spot_check_plan(again(pb::RegulatoryDomain::Pricing))
        .await
        .unwrap();

    // A third inspector joins: the draw goes through, the conflicted one stays away.
    market
        .batch_upsert_inspectors(pb::BatchUpsertInspectorsRequest {
            inspectors: vec![pb::Inspector {
                code: "m-3".into(),
                display_name: "m 检查员丙".into(),
                domains: vec![pb::RegulatoryDomain::FoodProduction as i32],
                conflicts: vec![],
            }],
        })
        .await
        .unwrap();
    let plan = market
        .draw_spot_check_plan(draw)
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(plan.targets.len(), 10);
    for t in &plan.targets {
        assert_eq!(t.inspectors.len(), 2, "{t:?}");
        if t.enterprise == conflicted {
            assert!(
                !t.inspectors.contains(&"m-1".to_string()),
                "the conflicted inspector stays away"
            );
        }
    }
    // Drawn, it holds nothing back.
    market
        .create_spot_check_plan(again(pb::RegulatoryDomain::FoodProduction))
        .await
        .unwrap();
    let listed = market
        .list_inspectors(pb::ListInspectorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .inspectors;
    assert_eq!(listed[0].conflicts, [conflicted]);
}

/// Market regulation's drawn food-production plan over four A-grade enterprises: two
/// targets, one inspector each.
async fn food_plan_of_two(app: &TestApp) -> (SpotCheckServiceClient<Authed>, pb::SpotCheckPlan) {
    population(app, 4, 0).await;
    let mut market = client(app, app.bearer(AgencyKind::MarketRegulation));
    register_inspectors(&mut market, "m", vec![]).await;
    let plan = plan_and_draw(
        app,
        &mut market,
        pb::RegulatoryDomain::FoodProduction,
        ratios(0.5, 0.5),
        1,
    )
    .await;
    (market, plan)
}

/// A result recorded long after the inspection (past the 3 months a pass is shown) is
/// still published, for its whole window from the day it was recorded.
#[tokio::test]
async fn a_result_recorded_late_is_still_published_for_its_window() {
    let app = spawn_app().await;
    let (mut market, plan) = food_plan_of_two(&app).await;
    let inspected = app.clock.today();
    app.clock.advance_days(100);
    market
        .record_spot_check_result(pb::RecordSpotCheckResultRequest {
            plan: plan.name.clone(),
            enterprise: plan.targets[0].enterprise.clone(),
            outcome: pb::SpotCheckOutcome::Passed as i32,
            items: vec![pb::InspectionItem {
                item: "经营场所".into(),
                passed: true,
                finding: String::new(),
            }],
            inspection_date: inspected.to_string(),
        })
        .await
        .unwrap();
    let published = published_results(&app, &plan.name).await;
    assert_eq!(published.len(), 1, "{published:?}");
    app.clock.advance_days(80);
    assert_eq!(published_results(&app, &plan.name).await.len(), 1);
    app.clock.advance_days(20);
    assert!(published_results(&app, &plan.name).await.is_empty());
}

#[tokio::test]
async fn a_problems_found_result_lowers_the_grade_and_is_published_without_inspectors() {
    let app = spawn_app().await;
    let (mut market, plan) = food_plan_of_two(&app).await;
    assert_eq!(plan.targets.len(), 2);
    let target = plan.targets[0].enterprise.clone();
    let n: u32 = (100..104)
        .find(|n| format!("enterprises/{}", uscc(*n)) == target)
        .unwrap();
    let before = app.grade_of(n).await;
    let result = |outcome: pb::SpotCheckOutcome, passed: bool| pb::RecordSpotCheckResultRequest {
        plan: plan.name.clone(),
        enterprise: target.clone(),
        outcome: outcome as i32,
        items: vec![pb::InspectionItem {
            item: "经营场所".into(),
            passed,
            finding: if passed {
                String::new()
            } else {
                "未按规定公示许可证".into()
            },
        }],
        inspection_date: app.clock.today().to_string(),
    };
    let err = market
        .record_spot_check_result(result(pb::SpotCheckOutcome::Passed, false))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["outcome"]);
    // Backdated before the draw, a failed check would start outside its publicity
    // window and never count: refused.
    let err = market
        .record_spot_check_result(pb::RecordSpotCheckResultRequest {
            inspection_date: "2023-03-01".into(),
            ..result(pb::SpotCheckOutcome::ProblemsFound, false)
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["inspection_date"]);
    // A finding naming someone by a first-generation (15-digit) ID number: refused,
    // as a record's summary would be (findings are published).
    let mut named = result(pb::SpotCheckOutcome::ProblemsFound, false);
    named.items[0].finding = "负责人（身份证110105491231001）未到场".into();
    let err = market.record_spot_check_result(named).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["items[0].finding"]);
    // Sent twice at once (a client retrying before the first answer came): one result.
    let (mut first, mut again) = (market.clone(), market.clone());
    let (recorded, twin) = tokio::join!(
        first.record_spot_check_result(result(pb::SpotCheckOutcome::ProblemsFound, false)),
        again.record_spot_check_result(result(pb::SpotCheckOutcome::ProblemsFound, false)),
    );
    let (recorded, twin) = (recorded.unwrap().into_inner(), twin.unwrap().into_inner());
    assert_eq!(recorded, twin);
    assert!(recorded.record.starts_with("records/"));
    let after = app.grade_of(n).await;
    assert!(after.score < before.score, "{before:?} -> {after:?}");
    // The same result again (its answer was lost) gets the stored one back.
    let retried = market
        .record_spot_check_result(result(pb::SpotCheckOutcome::ProblemsFound, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, recorded);
    assert_eq!(app.grade_of(n).await, after, "the retry changed nothing");
    // A different one is refused: results are never rewritten.
    let err = market
        .record_spot_check_result(pb::RecordSpotCheckResultRequest {
            outcome: pb::SpotCheckOutcome::Passed as i32,
            ..result(pb::SpotCheckOutcome::Passed, true)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.get_details_precondition_failure().unwrap().violations[0].r#type,
        "RESULT_ALREADY_RECORDED"
    );
    let outsider = format!("enterprises/{}", uscc(999));
    let err = market
        .record_spot_check_result(pb::RecordSpotCheckResultRequest {
            enterprise: outsider,
            ..result(pb::SpotCheckOutcome::Passed, true)
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.get_details_precondition_failure().unwrap().violations[0].r#type,
        "NOT_A_TARGET"
    );

    let published = published_results(&app, &plan.name).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].enterprise, target);
    assert_eq!(
        published[0].outcome,
        pb::SpotCheckOutcome::ProblemsFound as i32
    );
    assert!(!published[0].published_late);
    let shown = format!("{published:?}");
    assert!(
        !shown.contains("m-1") && !shown.contains("m-2") && !shown.contains("检查员"),
        "{shown}"
    );
    let reread = get_plan(&mut market, &plan.name).await;
    let t = reread
        .targets
        .iter()
        .find(|t| t.enterprise == target)
        .unwrap();
    assert!(t.result_recorded);
    assert_eq!(reread.overdue_count, 0);

    // Its record withdrawn (as a repaired or expired one), the result is no longer
    // published.
    app.records(AgencyKind::MarketRegulation)
        .withdraw_record(pb::WithdrawRecordRequest {
            name: recorded.record.clone(),
            reason: "抽查结果录入错误".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let published = published_results(&app, &plan.name).await;
    assert!(published.is_empty(), "{published:?}");
}

/// A department whose kind may not declare SPOT_CHECK_PLANNING (the shipped policy gives
/// it to market regulation) draws and reads its plan without the targets' grades, even
/// holding the grades scope, as a grade look-up with that purpose would be refused.
#[tokio::test]
async fn a_department_that_may_not_plan_by_grade_sees_its_targets_without_grades() {
    let app = spawn_app().await;
    population(&app, 4, 2).await;
    let education = agency_with(
        &app,
        BTreeSet::from([Scope::SpotChecksManage, Scope::GradesRead]),
        AgencyKind::Education,
    )
    .await;
    let mut c = client(&app, education);
    staff(&mut c, &[pb::RegulatoryDomain::Education]).await;
    let plan = plan_and_draw(
        &app,
        &mut c,
        pb::RegulatoryDomain::Education,
        ratios(1.0, 1.0),
        1,
    )
    .await;
    assert_eq!(plan.targets.len(), 6);
    // How many were eligible, but not per grade: in a narrow population that would
    // tell who has which grade.
    assert_eq!(plan.eligible_total, 6);
    assert!(plan.eligible.is_empty(), "{:?}", plan.eligible);
    // Ratios that differ by grade would draw exactly the enterprises of one grade.
    let err = c
        .create_spot_check_plan(pb::CreateSpotCheckPlanRequest {
            plan: Some(pb::SpotCheckPlan {
                domain: pb::RegulatoryDomain::Education as i32,
                cycle: cycle(&app),
                ratios: ratios(0.0, 1.0),
                check_items: vec!["经营场所".into()],
                ..Default::default()
            }),
            request_id: uuid::Uuid::now_v7().simple().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["plan.ratios"]);
    let read = get_plan(&mut c, &plan.name).await;
    for p in [&plan, &read] {
        assert!(
            p.targets
                .iter()
                .all(|t| t.grade == pb::Grade::Unspecified as i32),
            "{:?}",
            p.targets
        );
        // Nor does their order tell: they were drawn grade by grade, and are listed
        // by enterprise.
        let names: Vec<&String> = p.targets.iter().map(|t| &t.enterprise).collect();
        assert!(names.is_sorted(), "{names:?}");
    }
}

/// Plans of one cycle drawn at the same moment still exclude each other's targets: no
/// enterprise is drawn twice by one department in a cycle, however the draws interleave.
#[tokio::test]
async fn plans_drawn_at_once_exclude_each_others_targets() {
    let app = spawn_app().await;
    population(&app, 12, 6).await;
    let mut market = client(&app, app.bearer(AgencyKind::MarketRegulation));
    staff(
        &mut market,
        &[
            pb::RegulatoryDomain::FoodProduction,
            pb::RegulatoryDomain::Pricing,
            pb::RegulatoryDomain::ProductQuality,
            pb::RegulatoryDomain::Advertising,
        ],
    )
    .await;
    let mut names = Vec::new();
    for domain in [
        pb::RegulatoryDomain::FoodProduction,
        pb::RegulatoryDomain::Pricing,
        pb::RegulatoryDomain::ProductQuality,
        pb::RegulatoryDomain::Advertising,
    ] {
        let created = create_plan(&mut market, domain, ratios(1.0, 1.0), 1, cycle(&app)).await;
        names.push(created.name);
    }
    let draws: Vec<_> = names
        .into_iter()
        .map(|name| {
            let mut c = market.clone();
            tokio::spawn(async move {
                c.draw_spot_check_plan(pb::DrawSpotCheckPlanRequest { name })
                    .await
                    .expect("draw")
                    .into_inner()
                    .plan
                    .unwrap()
            })
        })
        .collect();
    let mut drawn = Vec::new();
    for d in draws {
        drawn.extend(d.await.unwrap().targets.into_iter().map(|t| t.enterprise));
    }
    let distinct: BTreeSet<&String> = drawn.iter().collect();
    assert_eq!(distinct.len(), drawn.len(), "drawn twice: {drawn:?}");
    assert_eq!(drawn.len(), 18, "every enterprise drawn once: {drawn:?}");
}

/// However many conflicts its inspectors declare, a page of the register fits in what
/// a gRPC client accepts by default (4 MiB), and the pages together hold them all.
#[tokio::test]
async fn a_page_of_inspectors_fits_a_default_client() {
    let app = spawn_app().await;
    let mut market = client(&app, app.bearer(AgencyKind::MarketRegulation));
    let conflicts: Vec<String> = (0..1_000)
        .map(|n| format!("enterprises/{}", uscc(n)))
        .collect();
    for batch in 0..4 {
        market
            .batch_upsert_inspectors(pb::BatchUpsertInspectorsRequest {
                inspectors: (0..25)
                    .map(|i| pb::Inspector {
                        code: format!("i-{batch}-{i:02}"),
                        display_name: "检查员".into(),
                        domains: vec![pb::RegulatoryDomain::Pricing as i32],
                        conflicts: conflicts.clone(),
                    })
                    .collect(),
            })
            .await
            .expect("register inspectors");
    }
    let mut reader = pb::spot_check_service_client::SpotCheckServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::MarketRegulation),
    )
    .max_decoding_message_size(4 * 1024 * 1024);
    let (mut seen, mut pages, mut token) = (0, 0, String::new());
    loop {
        let page = reader
            .list_inspectors(pb::ListInspectorsRequest {
                page_size: 1_000,
                page_token: token,
            })
            .await
            .expect("a page within 4 MiB")
            .into_inner();
        seen += page.inspectors.len();
        pages += 1;
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, 100);
    assert!(pages > 1, "one page of {seen} inspectors");
}

/// Copies of one plan request at once (a client retrying before the first answer
/// came) create one plan, and every copy gets its answer.
#[tokio::test]
async fn copies_of_one_plan_request_at_once_create_one_plan() {
    let app = spawn_app().await;
    let market = client(&app, app.bearer(AgencyKind::MarketRegulation));
    let request = pb::CreateSpotCheckPlanRequest {
        plan: Some(pb::SpotCheckPlan {
            domain: pb::RegulatoryDomain::Pricing as i32,
            cycle: cycle(&app),
            ratios: ratios(0.05, 0.5),
            inspectors_per_visit: 1,
            check_items: vec!["明码标价".into()],
            ..Default::default()
        }),
        request_id: "plan-once".into(),
    };
    at_once(|| {
        let (mut c, request) = (market.clone(), request.clone());
        async move { c.create_spot_check_plan(request).await }
    })
    .await;
    assert_eq!(
        count_sql(&app, "SELECT COUNT(*) FROM spot_check_plans").await,
        1
    );
}

/// A draw never changes: drawing a drawn plan again (a retry whose answer was lost), or
/// copies of the draw sent at once, answer with the one draw made.
#[tokio::test]
async fn drawing_a_plan_again_answers_with_its_one_draw() {
    let app = spawn_app().await;
    population(&app, 20, 5).await;
    let mut market = client(&app, app.bearer(AgencyKind::MarketRegulation));
    staff(&mut market, &[pb::RegulatoryDomain::Pricing]).await;
    let plan = create_plan(
        &mut market,
        pb::RegulatoryDomain::Pricing,
        ratios(0.25, 0.5),
        1,
        cycle(&app),
    )
    .await;
    let draw = pb::DrawSpotCheckPlanRequest {
        name: plan.name.clone(),
    };
    let drawn = at_once(|| {
        let (mut c, request) = (market.clone(), draw.clone());
        async move { c.draw_spot_check_plan(request).await }
    })
    .await
    .plan
    .unwrap();
    assert!(!drawn.targets.is_empty());
    let again = market
        .draw_spot_check_plan(draw)
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(again, drawn);
}

/// A plan belongs to a current cycle: one that ended, or one more than a year ahead, is
/// refused naming `plan.cycle`; a plan whose cycle ends before it is drawn is not drawn.
#[tokio::test]
async fn a_plan_is_for_a_current_cycle_and_is_not_drawn_once_it_ended() {
    let app = spawn_app().await;
    population(&app, 4, 1).await;
    let mut market = client(&app, app.bearer(AgencyKind::MarketRegulation));
    staff(&mut market, &[pb::RegulatoryDomain::Pricing]).await;
    let year = app.clock.today().year();
    for cycle in ["1999".to_string(), format!("{}-Q1", year + 2)] {
        let err = market
            .create_spot_check_plan(pb::CreateSpotCheckPlanRequest {
                plan: Some(pb::SpotCheckPlan {
                    domain: pb::RegulatoryDomain::Pricing as i32,
                    cycle: cycle.clone(),
                    check_items: vec!["经营场所".into()],
                    ..Default::default()
                }),
                request_id: uuid::Uuid::now_v7().simple().to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{cycle}: {err:?}");
        assert_eq!(violated_fields(&err), ["plan.cycle"], "{cycle}");
    }
    // A plan needs a request id: a retry without one would create a second plan.
    let err = market
        .create_spot_check_plan(pb::CreateSpotCheckPlanRequest {
            plan: Some(pb::SpotCheckPlan {
                domain: pb::RegulatoryDomain::Pricing as i32,
                cycle: year.to_string(),
                check_items: vec!["经营场所".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["request_id"]);
    let plan = create_plan(
        &mut market,
        pb::RegulatoryDomain::Pricing,
        ratios(0.25, 0.5),
        1,
        cycle(&app),
    )
    .await;
    app.clock.advance_days(100);
    let err = market
        .draw_spot_check_plan(pb::DrawSpotCheckPlanRequest {
            name: plan.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.get_details_error_info().map(|i| i.reason),
        Some("CYCLE_ENDED".to_string())
    );
    assert!(get_plan(&mut market, &plan.name).await.targets.is_empty());
}
