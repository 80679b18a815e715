use std::time::Duration;

use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::grading::{Model, ModelSet};
use credit_hub::proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::helpers::*;

const A: i32 = pb::Grade::A as i32;
const B: i32 = pb::Grade::B as i32;
const D: i32 = pb::Grade::D as i32;

fn submit(records: Vec<pb::Record>) -> pb::BatchSubmitRecordsRequest {
    pb::BatchSubmitRecordsRequest {
        request_id: String::new(),
        records,
    }
}

fn court_debtor_on_enterprise(n: u32, source: &str) -> pb::Record {
    let mut r = debtor(person("unused", ID_A), source);
    r.subject = Some(pb::Subject {
        subject: Some(pb::subject::Subject::Enterprise(format!(
            "enterprises/{}",
            uscc(n)
        ))),
    });
    r
}

/// The tax bureau's watch of the general model from `cursor`.
fn watch_request(cursor: &str) -> pb::WatchGradeChangesRequest {
    pb::WatchGradeChangesRequest {
        cursor: cursor.into(),
        model: "general".into(),
        purpose: pb::Purpose::TaxAdministration as i32,
    }
}

async fn watch(app: &TestApp, cursor: &str) -> tonic::Streaming<pb::WatchGradeChangesResponse> {
    app.grades(AgencyKind::Tax)
        .watch_grade_changes(watch_request(cursor))
        .await
        .unwrap()
        .into_inner()
}

async fn next_change(
    stream: &mut tonic::Streaming<pb::WatchGradeChangesResponse>,
) -> pb::GradeChange {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a change arrives")
        .expect("stream open")
        .expect("no error")
        .change
        .unwrap()
}

/// Files a penalty on enterprise 1; `stream` must show its grade change next.
async fn penalize_and_see_it_streamed(
    app: &TestApp,
    stream: &mut tonic::Streaming<pb::WatchGradeChangesResponse>,
) {
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")]))
        .await
        .unwrap();
    let change = next_change(stream).await;
    assert_eq!(change.enterprise, format!("enterprises/{}", uscc(1)));
}

#[tokio::test]
async fn grades_follow_records_as_they_are_filed_and_withdrawn() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    assert_eq!(app.grade_of(1).await.grade, A, "a clean enterprise is A");

    let filed = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")]))
        .await
        .unwrap()
        .into_inner();
    let penalty_name = filed.records[0].name.clone();
    let g = app.grade_of(1).await;
    assert_eq!(g.grade, B, "one moderate penalty makes it B");
    assert!(
        g.reasons
            .iter()
            .any(|r| r.records == vec![penalty_name.clone()]),
        "{:?}",
        g.reasons
    );

    let mut stream = watch(&app, "").await;
    let court = app
        .records(AgencyKind::Court)
        .batch_submit_records(submit(vec![court_debtor_on_enterprise(1, "C-1")]))
        .await
        .unwrap()
        .into_inner();
    let debtor_name = court.records[0].name.clone();
    assert_eq!(
        app.grade_of(1).await.grade,
        D,
        "a dishonest judgment debtor is D at once"
    );
    let change = next_change(&mut stream).await;
    assert_eq!(change.enterprise, format!("enterprises/{}", uscc(1)));
    assert_eq!((change.previous_grade, change.grade), (B, D));
    assert_eq!(change.cause, pb::GradeChangeCause::RecordSubmitted as i32);
    assert_eq!(change.cause_record, debtor_name);

    app.records(AgencyKind::Court)
        .withdraw_record(pb::WithdrawRecordRequest {
            name: debtor_name,
            reason: "已履行".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        app.grade_of(1).await.grade,
        B,
        "withdrawal restores the grade"
    );
    let change = next_change(&mut stream).await;
    assert_eq!((change.previous_grade, change.grade), (D, B));
    assert_eq!(change.cause, pb::GradeChangeCause::RecordWithdrawn as i32);

    let history = app.grade_history(1).await;
    let grades: Vec<i32> = history.iter().map(|c| c.grade).collect();
    assert_eq!(
        grades,
        vec![B, D, B, A],
        "newest first, back to the first grade"
    );
}

/// Waits (at most 5 s) for enterprise `n`'s grade to become `want`; returns the last seen.
async fn grade_becomes(app: &TestApp, n: u32, want: i32) -> i32 {
    let mut grade = app.grade_of(n).await.grade;
    for _ in 0..100 {
        if grade == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        grade = app.grade_of(n).await.grade;
    }
    grade
}

#[tokio::test]
async fn a_regrade_dated_before_a_windows_end_leaves_that_end_to_be_graded_again() {
    let app = spawn_app().await;
    app.register(vec![enterprise(3, ID_A)]).await;
    let before_end = app.clock.today();
    let mut r = penalty(&uscc(3), "P-STALE");
    // Decided long enough ago that an end tomorrow keeps Order 107's 3 months.
    r.decision_date = date_days_ago(200);
    r.publicity_end_date = (before_end + chrono::Duration::days(1)).to_string();
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![r]))
        .await
        .unwrap();
    assert_eq!(app.grade_of(3).await.grade, B);
    app.clock.advance_days(2);
    assert_eq!(
        grade_becomes(&app, 3, A).await,
        A,
        "the window's end was graded"
    );

    // A regrade that began before the end and finishes after the scheduler graded it
    // (a reclassify started before midnight) counts the record again, as of its date.
    app.store.reclassify(before_end, &|_| {}).await.unwrap();
    assert_eq!(app.grade_of(3).await.grade, B);
    assert_eq!(
        grade_becomes(&app, 3, A).await,
        A,
        "the end is graded again rather than left counted for good"
    );
}

#[tokio::test]
async fn a_record_whose_publicity_ends_regrades_its_subject_without_a_new_submission() {
    let app = spawn_app().await;
    app.register(vec![enterprise(2, ID_A)]).await;
    let mut r = penalty(&uscc(2), "P-END");
    r.decision_date = date_days_ago(200);
    r.publicity_end_date = (app.clock.today() + chrono::Duration::days(1)).to_string();
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![r]))
        .await
        .unwrap();
    assert_eq!(app.grade_of(2).await.grade, B);

    app.clock.advance_days(2);
    let mut grade = B;
    for _ in 0..100 {
        grade = app.grade_of(2).await.grade;
        if grade == A {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        grade, A,
        "the scheduler regraded the enterprise when the window ended"
    );
    let history = app
        .grades(AgencyKind::Court)
        .list_grade_history(pb::ListGradeHistoryRequest {
            name: format!("enterprises/{}", uscc(2)),
            purpose: pb::Purpose::JudicialEnforcement as i32,
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        history.changes[0].cause,
        pb::GradeChangeCause::PublicityEnded as i32
    );
    assert!(!history.next_page_token.is_empty());
}

#[tokio::test]
async fn a_dishonest_legal_representative_marks_every_enterprise_he_represents() {
    let app = spawn_app().await;
    app.register(vec![
        enterprise(3, ID_A),
        enterprise(4, ID_A),
        enterprise(5, ID_B),
    ])
    .await;
    app.records(AgencyKind::Court)
        .batch_submit_records(submit(vec![debtor(person("张伟", ID_A), "C-P")]))
        .await
        .unwrap();
    for n in [3, 4] {
        let g = app.grade_of(n).await;
        assert!(
            g.reasons
                .iter()
                .any(|r| r.code == "LEGAL_REPRESENTATIVE_DISHONEST_DEBTOR"),
            "enterprise {n}: {:?}",
            g.reasons
        );
        let change = &app.grade_history(n).await[0];
        assert_eq!(
            change.cause,
            pb::GradeChangeCause::RelatedPartyChanged as i32,
            "a record about the representative, not the enterprise"
        );
    }
    assert!(app.grade_of(5).await.reasons.is_empty());

    // The same person now also represents an enterprise that is itself graded D.
    let filed = app
        .records(AgencyKind::Court)
        .batch_submit_records(submit(vec![court_debtor_on_enterprise(4, "C-E")]))
        .await
        .unwrap()
        .into_inner();
    let change = &app.grade_history(3).await[0];
    assert_eq!(
        (change.cause, change.cause_record.as_str()),
        (
            pb::GradeChangeCause::RelatedPartyChanged as i32,
            filed.records[0].name.as_str()
        ),
        "the record about the other enterprise is named as the cause"
    );
    let g = app.grade_of(3).await;
    assert!(
        g.reasons
            .iter()
            .any(|r| r.code == "LEGAL_REPRESENTATIVE_REPRESENTS_D"),
        "{:?}",
        g.reasons
    );
}

/// A batch holding a penalty and a serious-dishonesty listing on one enterprise: the
/// enterprises sharing its legal representative change because of the listing, and
/// their history names it, whatever the records' order.
#[tokio::test]
async fn a_related_partys_change_names_the_record_that_reached_it() {
    let app = spawn_app().await;
    app.register(vec![enterprise(3, ID_A), enterprise(4, ID_A)])
        .await;
    let mut listing = market_record(
        4,
        pb::RecordKind::SeriousDishonestyListing,
        "L-4",
        &date_days_ago(1),
    );
    listing.serious_listing_cause = pb::SeriousListingCause::SeriousViolation as i32;
    let filed = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![penalty(&uscc(4), "P-4"), listing]))
        .await
        .unwrap()
        .into_inner();
    assert!(has_reason(
        &app.grade_of(3).await,
        "LEGAL_REPRESENTATIVE_REPRESENTS_D"
    ));
    let change = &app.grade_history(3).await[0];
    assert_eq!(
        (change.cause, change.cause_record.as_str()),
        (
            pb::GradeChangeCause::RelatedPartyChanged as i32,
            filed.records[1].name.as_str()
        )
    );
}

#[tokio::test]
async fn a_watcher_resumes_from_its_cursor_with_no_gap_and_no_duplicate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(6, ID_A), enterprise(7, ID_B)])
        .await;
    let mut first = watch(&app, "").await;
    let mut mr = app.records(AgencyKind::MarketRegulation);
    mr.batch_submit_records(submit(vec![penalty(&uscc(6), "P-6")]))
        .await
        .unwrap();
    let seen = next_change(&mut first).await;
    drop(first);

    // Changes happen while the watcher is away.
    mr.batch_submit_records(submit(vec![penalty(&uscc(7), "P-7")]))
        .await
        .unwrap();
    app.records(AgencyKind::Court)
        .batch_submit_records(submit(vec![court_debtor_on_enterprise(6, "C-6")]))
        .await
        .unwrap();

    let mut resumed = watch(&app, &seen.cursor).await;
    let a = next_change(&mut resumed).await;
    let b = next_change(&mut resumed).await;
    assert_eq!(a.enterprise, format!("enterprises/{}", uscc(7)));
    assert_eq!(
        (b.enterprise.clone(), b.grade),
        (format!("enterprises/{}", uscc(6)), D)
    );
    let seq = |c: &pb::GradeChange| c.cursor.parse::<i64>().unwrap();
    assert!(seq(&seen) < seq(&a) && seq(&a) < seq(&b));
    assert!(
        tokio::time::timeout(Duration::from_millis(700), resumed.next())
            .await
            .is_err(),
        "nothing more"
    );

    let err = app
        .grades(AgencyKind::Tax)
        .watch_grade_changes(pb::WatchGradeChangesRequest {
            cursor: "not-a-cursor".into(),
            purpose: pb::Purpose::TaxAdministration as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["cursor"]);
}

#[tokio::test]
async fn batch_lookups_keep_input_order_and_distribution_counts_every_enterprise() {
    let app = spawn_app().await;
    app.register((10..15).map(|n| enterprise(n, ID_B)).collect())
        .await;
    app.records(AgencyKind::Court)
        .batch_submit_records(submit(vec![court_debtor_on_enterprise(12, "C-12")]))
        .await
        .unwrap();
    let names: Vec<String> = [14, 12, 10]
        .iter()
        .map(|n| format!("enterprises/{}", uscc(*n)))
        .collect();
    let got = app
        .grades(AgencyKind::Education)
        .batch_get_credit_grades(pb::BatchGetCreditGradesRequest {
            names: names.clone(),
            model: "education".into(),
            purpose: pb::Purpose::EducationAdministration as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .grades;
    assert_eq!(
        got.iter().map(|g| g.enterprise.clone()).collect::<Vec<_>>(),
        names
    );
    // All five share a legal representative, so the D enterprise marks the others.
    assert_eq!(
        got.iter().map(|g| g.grade).collect::<Vec<_>>(),
        vec![B, D, B]
    );
    assert!(got[0]
        .reasons
        .iter()
        .any(|r| r.code == "LEGAL_REPRESENTATIVE_REPRESENTS_D"));
    assert!(got.iter().all(|g| g.model == "education"));

    let d = app
        .grades(AgencyKind::MarketRegulation)
        .get_grade_distribution(pb::GetGradeDistributionRequest {
            model: String::new(),
            group_by_region: true,
            group_by_industry: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.total_enterprises, 5);
    let d_rows: i64 = d
        .rows
        .iter()
        .filter(|r| r.grade == D)
        .map(|r| r.enterprise_count)
        .sum();
    assert_eq!(d_rows, 1);
    assert!(d
        .rows
        .iter()
        .all(|r| r.region_code == "371002" && r.industry_section == "C"));

    // A deregistered enterprise is no longer a market entity to report on.
    let mut gone = enterprise(45, ID_B);
    gone.status = pb::EnterpriseStatus::Deregistered as i32;
    app.register(vec![gone]).await;
    let d = app
        .grades(AgencyKind::MarketRegulation)
        .get_grade_distribution(pb::GetGradeDistributionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.total_enterprises, 5);
}

#[tokio::test]
async fn grade_lookups_need_the_scope_a_purpose_and_a_known_model() {
    let app = spawn_app().await;
    app.register(vec![enterprise(20, ID_A)]).await;
    let request = |purpose: i32, model: &str| pb::GetCreditGradeRequest {
        name: format!("enterprises/{}", uscc(20)),
        model: model.into(),
        purpose,
        case_reference: String::new(),
    };
    let err = app
        .grades(AgencyKind::VettingOffice)
        .get_credit_grade(request(pb::Purpose::CandidateVetting as i32, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut court = app.grades(AgencyKind::Court);
    let err = court
        .get_credit_grade(request(0, "no-such-model"))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, vec!["model", "purpose"]);
    let err = court
        .get_credit_grade(pb::GetCreditGradeRequest {
            name: format!("enterprises/{}", uscc(21)),
            purpose: pb::Purpose::JudicialEnforcement as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// Starts `serve` on `models`, which must refuse to start; what it said.
async fn refused_start(dir: &std::path::Path, models: &std::path::Path) -> String {
    let database = process_database(&dir.join("data")).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(&database.args)
        .envs(database.envs)
        .arg("--models-dir")
        .arg(models)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_bad_model_file_stops_startup_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/general.toml"),
        models.join("general.toml"),
    )
    .unwrap();
    std::fs::write(
        models.join("broken.toml"),
        "name = \"broken\"\nversion = \"1\"\ndescription = \"x\"\n[thresholds]\na = 95\nb = 80\nc = 60\n\n[[points]]\ncode = \"X\"\nkind = \"NOT_A_KIND\"\npoints = -1\ndescription = \"x\"\n",
    )
    .unwrap();
    let stderr = refused_start(dir.path(), &models).await;
    assert!(stderr.contains("broken.toml:11:"), "{stderr}");
    assert!(stderr.contains("NOT_A_KIND"), "{stderr}");

    // Two files naming the same model: the second is named at its `name` line.
    std::fs::remove_file(models.join("broken.toml")).unwrap();
    let general = std::fs::read_to_string(models.join("general.toml")).unwrap();
    std::fs::write(models.join("twin.toml"), &general).unwrap();
    let name_line = general.lines().position(|l| l.starts_with("name")).unwrap() + 1;
    let stderr = refused_start(dir.path(), &models).await;
    assert!(
        stderr.contains(&format!("twin.toml:{name_line}:")),
        "{stderr}"
    );
    assert!(stderr.contains("already used by"), "{stderr}");
}

/// The shipped models with the general model's text changed by `edit`.
fn models_with_general(edit: impl Fn(&str) -> String) -> ModelSet {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut models = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.file_stem().is_some_and(|s| s == "general") {
                text = edit(&text);
            }
            models.push(Model::parse(&path.display().to_string(), &text).unwrap());
        }
    }
    ModelSet::new(models).unwrap()
}

#[tokio::test]
async fn reclassify_confirms_unchanged_grades_and_records_the_ones_a_new_model_changes() {
    let app = spawn_app().await;
    // More enterprises than one reclassify page, so pages run side by side.
    for first in [1, 551] {
        app.register((first..first + 550).map(|n| enterprise(n, ID_A)).collect())
            .await;
    }
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![penalty(&uscc(7), "P-7")]))
        .await
        .unwrap();
    assert_eq!(app.grade_of(7).await.grade, B);
    let history_before = app.grade_history(7).await;

    // A new version that grades exactly as the old one did.
    let same = app.store.clone().with_models(models_with_general(|t| {
        t.replace("version = \"2026.3\"", "version = \"2026.4\"")
    }));
    let seen = std::sync::Mutex::new(Vec::new());
    let (done, changes) = same
        .reclassify(credit_hub::api::today(), &|n| seen.lock().unwrap().push(n))
        .await
        .unwrap();
    assert_eq!(done, 1100);
    assert_eq!(changes, 0, "no grade or score changed, so no history");
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&1100),
        "progress reaches the end"
    );
    for n in [1, 7, 600, 1100] {
        let g = app.grade_of(n).await;
        assert_eq!(
            g.model_version, "2026.4",
            "enterprise {n} confirmed by the new version"
        );
    }
    assert_eq!(app.grade_of(7).await.grade, B);
    assert_eq!(app.grade_history(7).await, history_before);

    // A version that deducts less for a moderate penalty lifts the penalized one to A.
    let lenient = app.store.clone().with_models(models_with_general(|t| {
        t.replace("version = \"2026.3\"", "version = \"2026.5\"")
            .replace("points = -8\n", "points = -3\n")
    }));
    let (done, changes) = lenient
        .reclassify(credit_hub::api::today(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        (done, changes),
        (1100, 1),
        "only the penalized enterprise changes"
    );
    let g = app.grade_of(7).await;
    assert_eq!(
        (g.grade, g.score, g.model_version.as_str()),
        (A, 97, "2026.5")
    );
    let history = app.grade_history(7).await;
    assert_eq!(history.len(), history_before.len() + 1);
    let newest = &history[0];
    assert_eq!(newest.cause, pb::GradeChangeCause::ModelChanged as i32);
    assert_eq!((newest.previous_grade, newest.grade), (B, A));
    assert_eq!(newest.model_version, "2026.5");
    assert_eq!(app.grade_of(600).await.model_version, "2026.5");
}

/// On PostgreSQL writes run side by side: each must grade with the records the others
/// committed, or the last to finish keeps a grade blind to theirs.
#[tokio::test]
async fn records_filed_side_by_side_about_one_enterprise_all_count_in_its_grade() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut filed = Vec::new();
    for round in 0..3 {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..6 {
            let mut client = app.records(AgencyKind::MarketRegulation);
            let record = penalty(&uscc(1), &format!("P-{round}-{i}"));
            calls.spawn(async move {
                client
                    .batch_submit_records(submit(vec![record]))
                    .await
                    .expect("submit")
                    .into_inner()
                    .records
                    .remove(0)
                    .name
            });
        }
        filed.extend(calls.join_all().await);
    }
    let grade = app.grade_of(1).await;
    let mut counted: Vec<&String> = grade.reasons.iter().flat_map(|r| &r.records).collect();
    counted.sort();
    let mut expected: Vec<&String> = filed.iter().collect();
    expected.sort();
    assert_eq!(counted, expected);
}

/// On PostgreSQL a person's new role and a record about that person can be filed side
/// by side: whichever commits last must still grade the enterprise with both.
#[tokio::test]
async fn a_role_and_a_record_about_its_holder_filed_side_by_side_both_count() {
    let app = spawn_app().await;
    let n = 16;
    app.register((0..n).map(|i| enterprise(100 + i, ID_A)).collect())
        .await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..n {
        let holder = synthetic_id(i);
        let record = debtor(person("王芳", &holder), &format!("D-{i}"));
        let mut court = app.records(AgencyKind::Court);
        calls.spawn(async move {
            court
                .batch_submit_records(submit(vec![record]))
                .await
                .expect("file the record");
        });
        let mut registry = app.registry(AgencyKind::MarketRegulation);
        calls.spawn(async move {
            registry
                .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
                    request_id: String::new(),
                    enterprises: vec![enterprise(100 + i, &holder)],
                })
                .await
                .expect("hand over the role");
        });
    }
    calls.join_all().await;
    for i in 0..n {
        let grade = app.grade_of(100 + i).await;
        assert!(
            has_reason(&grade, "LEGAL_REPRESENTATIVE_DISHONEST_DEBTOR"),
            "enterprise {i} graded without its new representative's record: {:?}",
            grade.reasons
        );
    }
}

/// A registry update that changes no role (a name, a status) runs beside grading writes
/// in flight; one that changes roles waits for them (PostgreSQL's roles lock: a grading
/// write holds it shared). Both take effect.
#[tokio::test]
async fn a_registry_update_without_role_changes_runs_beside_grading_writes() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_A)])
        .await;
    // A grading write in flight holds the roles lock shared; SQLite has no such lock
    // (its one writer serialises every write), so there this test only checks results.
    let holder = if backend() == "postgres" {
        use sqlx::{Connection, Executor};
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
        conn.execute("BEGIN").await.unwrap();
        conn.execute("SELECT pg_advisory_xact_lock_shared(728305)")
            .await
            .unwrap();
        Some(conn)
    } else {
        None
    };
    let upsert = |e: pb::Enterprise| {
        let mut registry = app.registry(AgencyKind::MarketRegulation);
        async move {
            registry
                .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
                    request_id: String::new(),
                    enterprises: vec![e],
                })
                .await
        }
    };
    let mut renamed = enterprise(1, ID_A);
    renamed.display_name = "济南新名称食品有限公司".into();
    tokio::time::timeout(Duration::from_secs(30), upsert(renamed))
        .await
        .expect("a rename does not wait for grading writes in flight")
        .unwrap();

    let handed_over = tokio::spawn(upsert(enterprise(2, ID_B)));
    if let Some(mut conn) = holder {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !handed_over.is_finished(),
            "a role change waits for grading writes in flight"
        );
        sqlx::Executor::execute(&mut conn, "COMMIT").await.unwrap();
    }
    handed_over.await.unwrap().unwrap();
    assert_eq!(
        app.enterprise_as(AgencyKind::Court, 1).await.display_name,
        "济南新名称食品有限公司"
    );
    let representative = app
        .enterprise_as(AgencyKind::Court, 2)
        .await
        .legal_representative
        .unwrap();
    assert_eq!(representative.masked_id_number, "990102********0011");
}

/// A watcher mirrors every enterprise's grade changes: whose grades it was shown is in
/// the audit log, entry by entry as the stream sends them.
#[tokio::test]
async fn what_a_watch_stream_shows_is_in_the_audit_log_under_the_enterprise() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut stream = watch(&app, "").await;
    penalize_and_see_it_streamed(&app, &mut stream).await;

    let entries = app
        .audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            method: "/credithub.v1.GradeService/WatchGradeChanges".into(),
            ..Default::default()
        })
        .await;
    assert!(!entries.is_empty(), "the disclosure is logged");
    assert!(entries.iter().all(|e| e.result_count >= 1), "{entries:?}");
    assert_eq!(
        entries[0].agency,
        format!("agencies/{}", app.agency_ids[&AgencyKind::Tax])
    );
    assert_eq!(entries[0].purpose, pb::Purpose::TaxAdministration as i32);
    // Each carries the call's request id, as the call's own entry does.
    let all = app
        .audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.GradeService/WatchGradeChanges".into(),
            ..Default::default()
        })
        .await;
    assert!(
        all.len() > entries.len(),
        "the call's own entry too: {all:?}"
    );
    assert!(!all[0].request_id.is_empty());
    assert!(
        all.iter().all(|e| e.request_id == all[0].request_id),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_case_reference_past_128_characters_is_refused() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let request = |case_reference: String| pb::GetCreditGradeRequest {
        name: format!("enterprises/{}", uscc(1)),
        purpose: pb::Purpose::JudicialEnforcement as i32,
        case_reference,
        ..Default::default()
    };
    let mut court = app.grades(AgencyKind::Court);
    court
        .get_credit_grade(request("案".repeat(128)))
        .await
        .expect("128 characters are fine");
    let err = court
        .get_credit_grade(request("案".repeat(129)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["case_reference"]);
    // What is checked is what the audit log keeps: trimmed, whatever padding it came with
    // (128 characters and megabytes of spaces would otherwise pass into the chain).
    court
        .get_credit_grade(request(format!("  (2026)鲁1002执7号{}", " ".repeat(4_000))))
        .await
        .expect("padding is trimmed");
    let kept: Vec<String> = app
        .audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.GradeService/GetCreditGrade".into(),
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|e| e.case_reference)
        .filter(|c| c.contains("执7号"))
        .collect();
    assert_eq!(kept, ["(2026)鲁1002执7号"]);
}

/// A legal representative leaves the enterprise graded D: the other enterprise he
/// still represents loses the related-party reason that enterprise gave it.
#[tokio::test]
async fn replacing_a_legal_representative_regrades_what_he_still_represents() {
    let app = spawn_app().await;
    app.register(vec![enterprise(6, ID_A), enterprise(7, ID_A)])
        .await;
    app.records(AgencyKind::Court)
        .batch_submit_records(submit(vec![court_debtor_on_enterprise(6, "C-6")]))
        .await
        .unwrap();
    let related = |g: &pb::CreditGrade| has_reason(g, "LEGAL_REPRESENTATIVE_REPRESENTS_D");
    assert!(related(&app.grade_of(7).await));

    // Enterprise 6 appoints someone else.
    app.register(vec![enterprise(6, ID_B)]).await;
    let after = app.grade_of(7).await;
    assert!(!related(&after), "{:?}", after.reasons);
    assert_eq!(after.grade, A);
}

/// A court corrects a judgment-debtor listing into a consumption restriction: the
/// enterprise is no longer D, and neither is the reason it gave a related enterprise.
#[tokio::test]
async fn a_revision_that_is_no_longer_a_listing_regrades_related_enterprises() {
    let app = spawn_app().await;
    app.register(vec![enterprise(8, ID_A), enterprise(9, ID_A)])
        .await;
    let mut court = app.records(AgencyKind::Court);
    let listing = court_debtor_on_enterprise(8, "C-8");
    court
        .batch_submit_records(submit(vec![listing.clone()]))
        .await
        .unwrap();
    let related = |g: &pb::CreditGrade| has_reason(g, "LEGAL_REPRESENTATIVE_REPRESENTS_D");
    assert!(related(&app.grade_of(9).await));

    let mut corrected = listing;
    corrected.kind = pb::RecordKind::ConsumptionRestriction as i32;
    corrected.provenance.as_mut().unwrap().revision = 2;
    court
        .batch_submit_records(submit(vec![corrected]))
        .await
        .unwrap();
    assert_ne!(app.grade_of(8).await.grade, D);
    let after = app.grade_of(9).await;
    assert!(!related(&after), "{:?}", after.reasons);
}

/// A connection past its maximum age is asked to reconnect (HTTP/2 GOAWAY), never cut:
/// a watch stream open on it keeps receiving changes.
#[tokio::test]
async fn a_watch_stream_outlives_its_connections_maximum_age() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let (addr, _stop) =
        another_server(&app, |s| s.max_connection_age(Duration::from_millis(300))).await;
    let channel = channel_to(addr).await;
    let mut stream = pb::grade_service_client::GradeServiceClient::with_interceptor(
        channel,
        app.bearer(AgencyKind::Tax),
    )
    .watch_grade_changes(watch_request(""))
    .await
    .unwrap()
    .into_inner();
    // Past the connection's age and any grace after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    penalize_and_see_it_streamed(&app, &mut stream).await;
}

#[tokio::test]
async fn a_watch_cursor_ahead_of_the_history_is_refused() {
    let app = spawn_app().await;
    let err = app
        .grades(AgencyKind::Tax)
        .watch_grade_changes(watch_request("999999999"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["cursor"]);
}

/// `credit-hub grade --file` checks every code first and names a bad one by its line,
/// printing no grade; a good file prints one grade per code; an unregistered one is
/// named and passed over.
#[tokio::test]
async fn the_grade_cli_names_a_bad_line_before_looking_anything_up() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_A)])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let mut bad = uscc(2);
    bad.replace_range(17.., if bad.ends_with('0') { "1" } else { "0" });
    std::fs::write(&list, format!("{}\n\n# next\n{bad}\n", uscc(1))).unwrap();
    let run = |list: std::path::PathBuf| {
        let (addr, token) = (app.addr.clone(), app.tokens[&AgencyKind::Court].clone());
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
                .args([
                    "grade",
                    "--json",
                    "--purpose",
                    "judicial-enforcement",
                    "--file",
                ])
                .arg(&list)
                .args(["--addr", &addr, "--token", &token])
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(list.clone()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing looked up");
    assert!(
        stderr.contains(&format!("{}:4: check character", list.display())),
        "{stderr}"
    );

    std::fs::write(&list, format!("{}\nenterprises/{}\n", uscc(1), uscc(2))).unwrap();
    let out = run(list.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grades: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(grades.len(), 2);
    assert_eq!(grades[1]["enterprise"], format!("enterprises/{}", uscc(2)));

    // A valid code nobody registered: named on stderr, the others still printed in
    // order, and the command fails.
    // (Written in lower case, which the service accepts and names back in upper case.)
    std::fs::write(
        &list,
        format!("{}\n{}\n{}\n", uscc(1), uscc(3).to_lowercase(), uscc(2)),
    )
    .unwrap();
    let out = run(list).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}: not in the registry", uscc(3))),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 3 enterprises have no grade"),
        "{stderr}"
    );
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["enterprise"].to_string())
        .collect();
    assert_eq!(
        printed,
        vec![
            format!("\"enterprises/{}\"", uscc(1)),
            format!("\"enterprises/{}\"", uscc(2))
        ]
    );
}

/// How `stream` ends (within 15 s): its error, or None when it just closes.
async fn stream_end(
    stream: &mut tonic::Streaming<pb::WatchGradeChangesResponse>,
) -> Option<tonic::Status> {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends")
}

/// A watch outlives the call that authenticated it: once its agency is revoked, the
/// stream ends UNAUTHENTICATED (within the token cache's lifetime) instead of going on
/// receiving every grade change.
#[tokio::test]
async fn a_revoked_agencys_watch_ends() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let watcher = app.store.list_agencies().await.unwrap();
    let tax = watcher
        .iter()
        .find(|l| l.agency.kind == AgencyKind::Tax)
        .expect("the tax agency")
        .agency
        .id
        .clone();
    let mut stream = watch(&app, "").await;
    app.store.revoke_agency(&tax).await.unwrap();
    let ended = stream_end(&mut stream).await;
    let status = ended.expect("with an error");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // The audit log shows the stream opened, and how it ended.
    let outcomes = app
        .audit_outcomes(pb::ListAuditEntriesRequest {
            agency: format!("agencies/{tax}"),
            method: "/credithub.v1.GradeService/WatchGradeChanges".into(),
            ..Default::default()
        })
        .await;
    assert!(
        outcomes.iter().any(|o| o == "OK") && outcomes.iter().any(|o| o == "UNAUTHENTICATED"),
        "{outcomes:?}"
    );

    // So does one opened with a token since rotated (a leaked one replaced).
    let (agency, token) = app
        .store
        .create_agency(credit_hub::store::NewAgency {
            display_name: "轮换税务局".into(),
            kind: AgencyKind::Tax,
            scopes: [credit_hub::domain::agency::Scope::GradesRead].into(),
            cert_subject: None,
        })
        .await
        .unwrap();
    let mut stream = pb::grade_service_client::GradeServiceClient::with_interceptor(
        app.channel.clone(),
        credit_hub::cli::Bearer::new(&token).unwrap(),
    )
    .watch_grade_changes(watch_request(""))
    .await
    .unwrap()
    .into_inner();
    app.store.rotate_agency_token(&agency.id).await.unwrap();
    let ended = stream_end(&mut stream).await;
    assert_eq!(ended.expect("with an error").code(), Code::Unauthenticated);
}

/// A watch's deadline covers the whole stream: changes arrive until it passes, then the
/// server ends the stream DEADLINE_EXCEEDED and audits that end (a tonic client does not
/// cut a stream's body itself, so only the server can).
#[tokio::test]
async fn a_watch_ends_at_its_callers_deadline() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut request = tonic::Request::new(watch_request(""));
    // Long enough that the change arrives first even on a busy machine.
    request.set_timeout(Duration::from_secs(6));
    let opened = std::time::Instant::now();
    let mut stream = app
        .grades(AgencyKind::Tax)
        .watch_grade_changes(request)
        .await
        .unwrap()
        .into_inner();
    penalize_and_see_it_streamed(&app, &mut stream).await;
    let status = stream_end(&mut stream).await.expect("with an error");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("6000 ms"), "{status:?}");
    assert!(opened.elapsed() >= Duration::from_millis(5900));
    let outcomes = app
        .audit_outcomes(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.GradeService/WatchGradeChanges".into(),
            ..Default::default()
        })
        .await;
    assert!(
        outcomes.iter().any(|o| o == "OK") && outcomes.iter().any(|o| o == "DEADLINE_EXCEEDED"),
        "{outcomes:?}"
    );
}

/// An enterprise with no grade under a model (one added since the last reclassify) is
/// told apart from one that does not exist: FAILED_PRECONDITION naming it, not
/// NOT_FOUND, alone or in a batch.
#[tokio::test]
async fn an_enterprise_not_yet_graded_under_a_model_is_not_called_missing() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_B)])
        .await;
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    sqlx::query("DELETE FROM credit_grades WHERE model = 'education' AND uscc = $1")
        .bind(uscc(1).to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();

    let mut court = app.grades(AgencyKind::Court);
    let one = |n: u32| pb::GetCreditGradeRequest {
        name: format!("enterprises/{}", uscc(n)),
        model: "education".into(),
        purpose: pb::Purpose::JudicialEnforcement as i32,
        ..Default::default()
    };
    let err = court.get_credit_grade(one(1)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("reclassify"), "{}", err.message());
    let unmet = {
        use tonic_types::StatusExt;
        err.get_details_precondition_failure()
            .expect("precondition failure")
            .violations
    };
    assert_eq!(unmet[0].r#type, "NOT_GRADED");
    assert_eq!(unmet[0].subject, format!("enterprises/{}", uscc(1)));
    let err = court.get_credit_grade(one(21)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(court.get_credit_grade(one(2)).await.is_ok());

    let err = court
        .batch_get_credit_grades(pb::BatchGetCreditGradesRequest {
            names: vec![
                format!("enterprises/{}", uscc(2)),
                format!("enterprises/{}", uscc(1)),
            ],
            model: "education".into(),
            purpose: pb::Purpose::JudicialEnforcement as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}

/// A watch would run until its client leaves: on shutdown the server ends it, telling
/// the client to resume from its cursor, so the drain does not wait out its bound on it.
/// A health watch ends too, after it was told NOT_SERVING.
#[tokio::test]
async fn a_watch_ends_when_the_server_shuts_down() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_types::StatusExt;
    let app = spawn_app().await;
    let (addr, stop) = another_server(&app, |s| s).await;
    let channel = channel_to(addr).await;
    let mut watch = pb::grade_service_client::GradeServiceClient::with_interceptor(
        channel.clone(),
        app.bearer(AgencyKind::Tax),
    )
    .watch_grade_changes(watch_request(""))
    .await
    .expect("a watch")
    .into_inner();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    // Readiness is known from the first call the server answers: NOT_SERVING until
    // its first database check, never NOT_FOUND.
    let first = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "readiness".into(),
        })
        .await
        .expect("readiness is registered before the server answers anything")
        .into_inner()
        .status;
    assert!(
        [
            ServingStatus::NotServing as i32,
            ServingStatus::Serving as i32
        ]
        .contains(&first),
        "{first}"
    );
    let mut health = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "readiness".into(),
        })
        .await
        .expect("a health watch")
        .into_inner();
    stop.send(()).unwrap();
    let mut last = None;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(update) = health.message().await.expect("a clean end") {
            last = Some(update.status);
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the health watch ends well before the drain bound"
    );
    assert_eq!(last, Some(ServingStatus::NotServing as i32));
    let ended = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the watch ends well before the drain bound");
    let status = ended.expect_err("ended by the server");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("SHUTTING_DOWN".to_string())
    );
    assert!(status.get_details_retry_info().is_some());
    // The log says how the stream ended, not only that it opened.
    let outcomes: Vec<String> = app
        .audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.GradeService/WatchGradeChanges".into(),
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert!(outcomes.iter().any(|o| o == "UNAVAILABLE"), "{outcomes:?}");
}

/// A watcher that reads nothing, its window and the server's buffer full, still learns
/// why its stream ended: UNAVAILABLE, never a clean end that a mirror would take for
/// "nothing more to come".
#[tokio::test]
async fn a_watch_that_reads_nothing_still_ends_unavailable_on_shutdown() {
    let app = spawn_app().await;
    // 10,000 first grades (2,000 enterprises under 5 models), about 1 MB: more than
    // the client's window and the server's send buffer hold.
    let enterprises = 2_000;
    for first in [1, 1_001] {
        app.register(
            (first..first + 1_000)
                .map(|n| enterprise(n, ID_A))
                .collect(),
        )
        .await;
    }
    let count = enterprises * 5;
    let (addr, stop) = another_server(&app, |s| s).await;
    // A 1 KiB window: a few changes fill it, and the server's buffers fill behind it.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut watch = pb::grade_service_client::GradeServiceClient::with_interceptor(
        channel,
        app.bearer(AgencyKind::Tax),
    )
    .watch_grade_changes(pb::WatchGradeChangesRequest {
        model: String::new(),
        ..watch_request("0")
    })
    .await
    .expect("a watch")
    .into_inner();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    // Past the server's announcement (half a second of NOT_SERVING) into its drain.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (received, end) = tokio::time::timeout(Duration::from_secs(10), async {
        let mut received = 0;
        loop {
            match watch.message().await {
                Ok(Some(_)) => received += 1,
                Ok(None) => return (received, None),
                Err(status) => return (received, Some(status)),
            }
        }
    })
    .await
    .expect("the watch ends well before the drain bound");
    assert!(
        received < count,
        "the drain ended the stream before its backlog: {received}"
    );
    let status = end.expect("the stream ends with a status, not cleanly");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// An abnormal-operations listing stands until its cause is cured: one filed without an
/// end date four years ago, never cured, still holds the enterprise at C at best, and
/// a repair or withdrawal is what ends it.
#[tokio::test]
async fn an_uncured_abnormal_listing_still_counts_years_later() {
    let app = spawn_app().await;
    app.register(vec![enterprise(5, ID_B)]).await;
    let decided = date_days_ago(4 * 365 + 30);
    let year: i32 = decided[..4].parse::<i32>().unwrap() - 2;
    let mut market = app.records(AgencyKind::MarketRegulation);
    let filed = market
        .batch_submit_records(submit(vec![abnormal(
            5,
            "AB-old",
            &decided,
            year,
            pb::AbnormalCause::AnnualReportNotFiled,
        )]))
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(filed[0].publicity_end_date, "9999-12-31");
    assert_eq!(filed[0].status, pb::RecordStatus::Active as i32);
    let grade = app.grade_of(5).await;
    assert!(grade.grade >= pb::Grade::C as i32, "{grade:?}");
    assert!(has_reason(&grade, "ABNORMAL_OPERATIONS_LIST"), "{grade:?}");
    market
        .withdraw_record(pb::WithdrawRecordRequest {
            name: filed[0].name.clone(),
            reason: "已补报年度报告，移出经营异常名录".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let grade = app.grade_of(5).await;
    assert_eq!(grade.grade, pb::Grade::A as i32, "{grade:?}");
}

/// A court's dishonest-debtor listing without an end date runs the SPC's two years
/// (causes 2–6); one listed until the debtor performs (cause 1) carries "9999-12-31" and
/// counts until the court withdraws it, however long that takes.
#[tokio::test]
async fn a_debtor_listed_until_performance_stays_d_past_two_years() {
    let app = spawn_app().await;
    app.register(vec![enterprise(6, ID_A), enterprise(7, ID_B)])
        .await;
    let three_years_ago = date_days_ago(3 * 365 + 10);
    let mut by_period = court_debtor_on_enterprise(6, "DEBTOR-2Y");
    by_period.decision_date = three_years_ago.clone();
    let mut until_performed = court_debtor_on_enterprise(7, "DEBTOR-CAUSE-1");
    until_performed.decision_date = three_years_ago;
    until_performed.publicity_end_date = "9999-12-31".into();
    let mut court = app.records(AgencyKind::Court);
    let filed = court
        .batch_submit_records(submit(vec![by_period, until_performed]))
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(
        filed[0].status,
        pb::RecordStatus::Expired as i32,
        "{filed:?}"
    );
    assert_eq!(
        filed[1].status,
        pb::RecordStatus::Active as i32,
        "{filed:?}"
    );
    assert_eq!(filed[1].publicity_end_date, "9999-12-31");
    assert_eq!(app.grade_of(6).await.grade, A, "two years have passed");
    let listed = app.grade_of(7).await;
    assert_eq!(listed.grade, D, "{listed:?}");

    court
        .withdraw_record(pb::WithdrawRecordRequest {
            name: filed[1].name.clone(),
            reason: "被执行人已履行生效法律文书确定的义务".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(app.grade_of(7).await.grade, A, "performed and withdrawn");
}

/// Every replica runs the scheduler: two passes over the same ended windows at once
/// regrade each record once between them, not once each.
#[tokio::test]
async fn two_regrade_passes_at_once_share_the_ended_windows() {
    let app = spawn_app().await;
    let n = 30;
    app.register((1..=n).map(|i| enterprise(i, ID_A)).collect())
        .await;
    let ends = app.clock.today() + chrono::Duration::days(1);
    let records = (1..=n)
        .map(|i| {
            let mut r = penalty(&uscc(i), &format!("P-DUE-{i}"));
            r.decision_date = date_days_ago(200);
            r.publicity_end_date = ends.to_string();
            r
        })
        .collect();
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(records))
        .await
        .unwrap();
    // Past the windows' end for these passes only: the server's own scheduler, on the
    // test's clock, sees none of them due.
    let later = ends + chrono::Duration::days(1);
    let other = app.open_again().await;
    let (a, b) = tokio::join!(app.store.regrade_due(later), other.regrade_due(later));
    assert_eq!(a.unwrap() + b.unwrap(), n as usize);
    other.close().await;
}
