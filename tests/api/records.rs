use std::collections::BTreeSet;

use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

fn submit(records: Vec<pb::Record>, request_id: &str) -> pb::BatchSubmitRecordsRequest {
    pb::BatchSubmitRecordsRequest {
        request_id: request_id.into(),
        records,
    }
}

#[tokio::test]
async fn the_same_batch_submitted_twice_leaves_one_copy() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    let batch = vec![penalty(&uscc(1), "P-1"), penalty(&uscc(1), "P-2")];

    let first = client
        .batch_submit_records(submit(batch.clone(), "req-1"))
        .await
        .unwrap()
        .into_inner();
    let replay = client
        .batch_submit_records(submit(batch.clone(), "req-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, replay, "a retry returns the first response");
    let again = client
        .batch_submit_records(submit(batch, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcomes, vec![pb::SubmitOutcome::Unchanged as i32; 2]);
    assert_eq!(app.store.count_records().await.unwrap(), 2);
    assert_eq!(first.outcomes, vec![pb::SubmitOutcome::Created as i32; 2]);
    assert_eq!(
        first.records.iter().map(|r| &r.name).collect::<Vec<_>>(),
        again.records.iter().map(|r| &r.name).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_batch_with_one_bad_record_writes_nothing() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut bad = penalty(&uscc(1), "P-2");
    bad.decision_date = "2026-02-30".into();
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(
            vec![penalty(&uscc(1), "P-1"), bad, penalty(&uscc(1), "P-3")],
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["records[1].decision_date"]);
    assert_eq!(app.store.count_records().await.unwrap(), 0);

    // Spot-check results' records have ids of their own, which no batch may take.
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(
            vec![penalty(&uscc(1), "spotcheck-1-91371002777777775G")],
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        vec!["records[0].provenance.source_record_id"]
    );
    assert_eq!(app.store.count_records().await.unwrap(), 0);
}

#[tokio::test]
async fn records_about_unregistered_enterprises_are_refused() {
    let app = spawn_app().await;
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![penalty(&uscc(77), "P-1")], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["records[0].subject.enterprise"]);
}

#[tokio::test]
async fn a_higher_revision_replaces_the_record_and_keeps_the_old_one_in_history() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    let first = client
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")], ""))
        .await
        .unwrap()
        .into_inner();
    let name = first.records[0].name.clone();

    let mut revised = penalty(&uscc(1), "P-1");
    revised.provenance.as_mut().unwrap().revision = 2;
    revised.fine_amount_fen = 9_000_000;
    let second = client
        .batch_submit_records(submit(vec![revised], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.outcomes, vec![pb::SubmitOutcome::Revised as i32]);
    assert_eq!(
        second.records[0].name, name,
        "a record keeps its name across revisions"
    );
    assert_eq!(second.records[0].fine_amount_fen, 9_000_000);

    let stale = client
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stale.outcomes, vec![pb::SubmitOutcome::Stale as i32]);
    assert_eq!(stale.records[0].provenance.as_ref().unwrap().revision, 2);
    // A stale revision is passed over whatever it is about, even an enterprise the
    // registry does not hold.
    let elsewhere = client
        .batch_submit_records(submit(vec![penalty(&uscc(2), "P-1")], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(elsewhere.outcomes, vec![pb::SubmitOutcome::Stale as i32]);

    let history = client
        .list_record_revisions(pb::ListRecordRevisionsRequest {
            name: name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let revisions: Vec<i64> = history
        .revisions
        .iter()
        .map(|r| r.provenance.as_ref().unwrap().revision)
        .collect();
    assert_eq!(revisions, vec![2, 1]);
    assert_eq!(history.revisions[1].fine_amount_fen, 5_000_000);
    assert_eq!(app.store.count_records().await.unwrap(), 1);
}

#[tokio::test]
async fn reusing_a_revision_for_different_content_is_refused() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    client
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")], ""))
        .await
        .unwrap();
    let mut changed = penalty(&uscc(1), "P-1");
    changed.summary = "另一件事".into();
    let err = client
        .batch_submit_records(submit(vec![changed], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        vec!["records[0].provenance.revision"]
    );
}

/// Penalty measures are a set: a retry that lists them in another order is the same
/// revision, not different content.
#[tokio::test]
async fn the_same_revision_with_its_measures_listed_otherwise_is_unchanged() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    let mut first = penalty(&uscc(1), "P-1");
    first.penalty_measures = vec![
        pb::PenaltyMeasure::Confiscation as i32,
        pb::PenaltyMeasure::Fine as i32,
    ];
    let created = client
        .batch_submit_records(submit(vec![first.clone()], ""))
        .await
        .unwrap()
        .into_inner();
    first.penalty_measures.reverse();
    let again = client
        .batch_submit_records(submit(vec![first], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcomes, vec![pb::SubmitOutcome::Unchanged as i32]);
    assert_eq!(created.records, again.records);
    assert_eq!(app.store.count_records().await.unwrap(), 1);
}

/// A record filed without a publicity end got the default of its day. Sent again
/// unchanged after the default moved (here: stored with another end than today's
/// default), it is the same record, not a reuse of its revision for new content.
#[tokio::test]
async fn the_same_revision_sent_again_after_its_default_window_changed_is_unchanged() {
    let app = spawn_app().await;
    let mut court = app.records(AgencyKind::Court);
    let mut filed_then = debtor(person("王磊", ID_A), "C-9");
    let decided = chrono::NaiveDate::parse_from_str(&filed_then.decision_date, "%Y-%m-%d").unwrap();
    filed_then.publicity_end_date = (decided + chrono::Months::new(36)).to_string();
    let created = court
        .batch_submit_records(submit(vec![filed_then], ""))
        .await
        .unwrap()
        .into_inner();
    let again = court
        .batch_submit_records(submit(vec![debtor(person("王磊", ID_A), "C-9")], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcomes, vec![pb::SubmitOutcome::Unchanged as i32]);
    assert_eq!(created.records, again.records, "kept as filed");
    // A different end given explicitly is new content for the same revision.
    let mut other = debtor(person("王磊", ID_A), "C-9");
    other.publicity_end_date = (decided + chrono::Months::new(30)).to_string();
    let err = court
        .batch_submit_records(submit(vec![other], ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["records[0].provenance.revision"]);
}

#[tokio::test]
async fn reusing_a_request_id_for_another_request_is_refused() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    client
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")], "req-9"))
        .await
        .unwrap();
    let err = client
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-2")], "req-9"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["request_id"]);
    assert_eq!(app.store.count_records().await.unwrap(), 1);
}

#[tokio::test]
async fn tax_bureau_cannot_file_court_records() {
    let app = spawn_app().await;
    let err = app
        .records(AgencyKind::Tax)
        .batch_submit_records(submit(vec![debtor(person("王磊", ID_A), "C-1")], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("records[0]"), "{}", err.message());
    assert_eq!(app.store.count_records().await.unwrap(), 0);
}

#[tokio::test]
async fn a_court_lists_a_person_who_is_found_by_id_number_and_shown_masked() {
    let app = spawn_app().await;
    let mut court = app.records(AgencyKind::Court);
    let filed = court
        .batch_submit_records(submit(vec![debtor(person("王磊", ID_A), "C-1")], ""))
        .await
        .unwrap()
        .into_inner();
    let Some(pb::subject::Subject::Person(p)) = filed.records[0].subject.clone().unwrap().subject
    else {
        panic!("person subject expected")
    };
    assert_eq!(p.masked_id_number, "110105********002X");
    assert!(p.id_number.is_empty());

    let found = app
        .records(AgencyKind::Tax)
        .list_records(pb::ListRecordsRequest {
            subject_person_id_number: ID_A.to_lowercase(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.records.len(), 1);
    let none = app
        .records(AgencyKind::Tax)
        .list_records(pb::ListRecordsRequest {
            subject_person_id_number: ID_B.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.records.is_empty());
}

/// A minor is never listed as a dishonest judgment debtor (SPC 2017): a listing decided
/// on or before the person's 18th birthday is refused (full years count from the day
/// after it), one the day after accepted.
#[tokio::test]
async fn a_minor_is_never_listed_as_a_dishonest_judgment_debtor() {
    let app = spawn_app().await;
    let born = credit_hub::api::today() - chrono::Duration::days(20 * 365);
    let mut digits = format!("990101{}001", born.format("%Y%m%d"));
    digits.push(credit_hub::domain::ids::IdNumber::check_char(
        digits.as_bytes(),
    ));
    let eighteen = born
        .checked_add_months(chrono::Months::new(18 * 12))
        .unwrap();
    let listing = |decided: chrono::NaiveDate, source: &str| pb::Record {
        decision_date: decided.to_string(),
        ..debtor(person("王小磊", &digits), source)
    };
    let mut court = app.records(AgencyKind::Court);
    let err = court
        .batch_submit_records(submit(vec![listing(eighteen, "C-minor")], ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["records[0].subject.person"]);
    assert!(err.message().contains("under 18"), "{err:?}");
    assert!(!err.message().contains(&digits[6..14]), "{err:?}");
    court
        .batch_submit_records(submit(
            vec![listing(eighteen + chrono::Duration::days(1), "C-adult")],
            "",
        ))
        .await
        .expect("listed the day after the person's 18th birthday");
}

#[tokio::test]
async fn penalties_cannot_be_filed_against_persons() {
    let app = spawn_app().await;
    let mut r = penalty(&uscc(1), "P-1");
    r.subject = Some(pb::Subject {
        subject: Some(pb::subject::Subject::Person(person("王磊", ID_A))),
    });
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![r], ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["records[0].subject.person"]);
}

#[tokio::test]
async fn only_the_filing_agency_withdraws_and_the_withdrawal_is_kept() {
    let app = spawn_app().await;
    let filed = app
        .records(AgencyKind::Court)
        .batch_submit_records(submit(vec![debtor(person("王磊", ID_A), "C-1")], ""))
        .await
        .unwrap()
        .into_inner();
    let name = filed.records[0].name.clone();

    let err = app
        .records(AgencyKind::MarketRegulation)
        .withdraw_record(pb::WithdrawRecordRequest {
            name: name.clone(),
            reason: "错误".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let mut court = app.records(AgencyKind::Court);
    let err = court
        .withdraw_record(pb::WithdrawRecordRequest {
            name: name.clone(),
            reason: " ".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["reason"]);

    let withdrawn = court
        .withdraw_record(pb::WithdrawRecordRequest {
            name: name.clone(),
            reason: "已履行完毕".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(withdrawn.status, pb::RecordStatus::Withdrawn as i32);
    assert_eq!(withdrawn.withdrawal_reason, "已履行完毕");
    let again = |reason: &str| pb::WithdrawRecordRequest {
        name: name.clone(),
        reason: reason.into(),
        request_id: String::new(),
    };
    // The same withdrawal again is a retry; another reason is not silently dropped.
    court.withdraw_record(again("已履行完毕")).await.unwrap();
    let err = court.withdraw_record(again("系误录")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("已履行完毕"), "{}", err.message());
    let got = court
        .get_record(pb::GetRecordRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(got.status, pb::RecordStatus::Withdrawn as i32);
    let history = court
        .list_record_revisions(pb::ListRecordRevisionsRequest {
            name,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let statuses: Vec<i32> = history.revisions.iter().map(|r| r.status).collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0], pb::RecordStatus::Withdrawn as i32);
}

#[tokio::test]
async fn listing_records_filters_by_subject_kind_and_status_and_pages() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_A)])
        .await;
    let mut batch = Vec::new();
    for i in 0..12 {
        let mut r = penalty(&uscc(1 + i % 2), &format!("P-{i}"));
        // Distinct dates, all inside the last year (so none has expired).
        r.decision_date = date_days_ago(1 + 7 * i64::from(i));
        batch.push(r);
    }
    let mut old = penalty(&uscc(1), "OLD");
    old.decision_date = "2020-01-01".into();
    old.tier = pb::Tier::Minor as i32;
    batch.push(old);
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(batch, ""))
        .await
        .unwrap();

    let mut client = app.records(AgencyKind::Court);
    let mut dates = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_records(pb::ListRecordsRequest {
                subject_enterprise: format!("enterprises/{}", uscc(1)),
                page_size: 4,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        dates.extend(page.records.iter().map(|r| r.decision_date.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(dates.len(), 7);
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest decision first");

    let expired = client
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            status: pb::RecordStatus::Expired as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expired.records.len(), 1);
    assert_eq!(
        expired.records[0]
            .provenance
            .as_ref()
            .unwrap()
            .source_record_id,
        "OLD"
    );
    let licences = client
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            kind: pb::RecordKind::AdministrativeLicense as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(licences.records.is_empty());
}

#[tokio::test]
async fn batches_over_a_thousand_records_are_refused() {
    let app = spawn_app().await;
    let records = (0..1001)
        .map(|i| penalty(&uscc(1), &format!("P-{i}")))
        .collect();
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(records, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["records"]);
}

#[tokio::test]
async fn publicity_end_defaults_by_tier_and_warnings_are_never_published() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut moderate = penalty(&uscc(1), "P-1");
    moderate.decision_date = "2026-05-20".into();
    let mut warning = penalty(&uscc(1), "W-1");
    warning.decision_date = "2026-05-20".into();
    warning.tier = pb::Tier::Minor as i32;
    warning.penalty_measures = vec![pb::PenaltyMeasure::Warning as i32];
    warning.fine_amount_fen = 0;
    let out = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![moderate, warning], ""))
        .await
        .unwrap()
        .into_inner();
    // Published through 2027-05-20, a year counted from the day after the decision
    // (Civil Code Art. 201-202); the date is the first day it no longer counts.
    assert_eq!(out.records[0].publicity_end_date, "2027-05-21");
    assert_eq!(out.records[1].publicity_end_date, "2026-05-20");
    assert_eq!(out.records[1].status, pb::RecordStatus::Expired as i32);

    // An agency may end publicity sooner than Order 107's longest, never later.
    let mut shorter = penalty(&uscc(1), "P-2");
    shorter.decision_date = "2026-05-20".into();
    shorter.publicity_end_date = "2026-11-20".into();
    let mut longer = shorter.clone();
    longer.provenance.as_mut().unwrap().source_record_id = "P-3".into();
    longer.publicity_end_date = "2027-05-22".into();
    let mut published_warning = longer.clone();
    published_warning
        .provenance
        .as_mut()
        .unwrap()
        .source_record_id = "W-2".into();
    published_warning.tier = pb::Tier::Minor as i32;
    published_warning.penalty_measures = vec![pb::PenaltyMeasure::Warning as i32];
    published_warning.fine_amount_fen = 0;
    let mut market = app.records(AgencyKind::MarketRegulation);
    let err = market
        .batch_submit_records(submit(vec![shorter.clone(), longer, published_warning], ""))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        [
            "records[1].publicity_end_date",
            "records[2].publicity_end_date"
        ]
    );
    let details = format!("{:?}", err.get_details_bad_request().unwrap());
    assert!(
        details.contains("must not be after 2027-05-21 (published through 2027-05-20)"),
        "{details}"
    );
    assert!(
        details.contains("warnings alone is not published"),
        "{details}"
    );
    // Decided before Order 107 came into force (2025-12-25), a penalty keeps the end
    // its own rules gave.
    let mut older = penalty(&uscc(1), "P-4");
    older.decision_date = "2025-06-20".into();
    older.publicity_end_date = "2028-06-20".into();
    let out = market
        .batch_submit_records(submit(vec![shorter, older], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.records[0].publicity_end_date, "2026-11-20");
    assert_eq!(out.records[1].publicity_end_date, "2028-06-20");

    // Nor sooner than Order 107's shortest: 3 months for a moderate item, a year for a
    // serious-dishonesty listing; the last day of those is still allowed.
    let mut brief = penalty(&uscc(1), "P-5");
    brief.decision_date = "2026-05-20".into();
    brief.publicity_end_date = "2026-08-20".into();
    let mut three_months = brief.clone();
    three_months.provenance.as_mut().unwrap().source_record_id = "P-6".into();
    three_months.publicity_end_date = "2026-08-21".into();
    let listing = |source: &str, end: &str| pb::Record {
        serious_listing_cause: pb::SeriousListingCause::SeriousViolation as i32,
        publicity_end_date: end.into(),
        ..market_record(
            1,
            pb::RecordKind::SeriousDishonestyListing,
            source,
            "2026-05-20",
        )
    };
    let err = market
        .batch_submit_records(submit(
            vec![
                brief,
                three_months.clone(),
                listing("L-1", "2026-05-21"),
                listing("L-2", "2027-05-21"),
            ],
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        [
            "records[0].publicity_end_date",
            "records[2].publicity_end_date"
        ]
    );
    let details = format!("{:?}", err.get_details_bad_request().unwrap());
    assert!(
        details.contains("must not be before 2026-08-21 (published through 2026-08-20)"),
        "{details}"
    );
    assert!(details.contains("at least 1 year"), "{details}");
    market
        .batch_submit_records(submit(vec![three_months, listing("L-2", "2027-05-21")], ""))
        .await
        .unwrap();

    // A record whose end was defaulted under the earlier counting (here given as that
    // day, 2027-05-20) keeps it when corrected without an end: a new summary moves no
    // window. A correction that changes what the default depends on gets today's.
    let mut filed_then = penalty(&uscc(1), "P-7");
    filed_then.decision_date = "2026-05-20".into();
    filed_then.publicity_end_date = "2027-05-20".into();
    market
        .batch_submit_records(submit(vec![filed_then.clone()], ""))
        .await
        .unwrap();
    let mut corrected = pb::Record {
        summary: "更正：生产经营不符合食品安全标准的食品".into(),
        publicity_end_date: String::new(),
        ..filed_then
    };
    corrected.provenance.as_mut().unwrap().revision = 2;
    let mut raised = pb::Record {
        tier: pb::Tier::Serious as i32,
        ..corrected.clone()
    };
    raised.provenance.as_mut().unwrap().revision = 3;
    for (revision, end) in [(corrected, "2027-05-20"), (raised, "2029-05-21")] {
        let out = market
            .batch_submit_records(submit(vec![revision], ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.records[0].publicity_end_date, end);
    }
}

/// `credit-hub records list` as a script uses it: `--json`, one record per line; and
/// what it told its user on stderr.
async fn records_list_cli(
    app: &TestApp,
    subject: &str,
    limit: &str,
) -> (Vec<serde_json::Value>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["records", "list", "--json", "--subject", subject])
        .args(["--limit", limit])
        .args(["--addr", &app.addr])
        .args(["--token", &app.tokens[&AgencyKind::Court]])
        .output()
        .await
        .expect("run credit-hub");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "records list failed: {stderr}");
    let records = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (records, stderr.into_owned())
}

/// The CLI walks every page of a list (200 records a page here) and stops at `--limit`,
/// even in the middle of a page, saying so when records are left unshown.
#[tokio::test]
async fn the_cli_lists_records_across_pages_up_to_its_limit() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let batch = (0..450)
        .map(|i| penalty(&uscc(1), &format!("P-{i}")))
        .collect();
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(batch, "many"))
        .await
        .unwrap();

    let (all, told) = records_list_cli(&app, &uscc(1), "1000").await;
    assert_eq!(all.len(), 450);
    assert!(!told.contains("more records exist"), "{told}");
    let sources: std::collections::BTreeSet<_> = all
        .iter()
        .map(|r| r["source_record_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources.len(), 450, "each record once, none repeated");
    let (limited, told) = records_list_cli(&app, &uscc(1), "230").await;
    assert_eq!(limited, all[..230], "the first 230, in the same order");
    assert!(
        told.contains("more records exist than the 230 shown"),
        "{told}"
    );
    let (exact, told) = records_list_cli(&app, &uscc(1), "450").await;
    assert_eq!(exact, all);
    assert!(
        !told.contains("more records exist"),
        "nothing is left: {told}"
    );
    // Scripts may ask for JSON through the environment, spelt as they spell booleans.
    for on in ["1", "true", "yes"] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
            .args(["records", "list", "--subject", &uscc(1), "--limit", "2"])
            .args(["--addr", &app.addr])
            .args(["--token", &app.tokens[&AgencyKind::Court]])
            .env("CREDIT_HUB_JSON", on)
            .output()
            .await
            .expect("run credit-hub");
        assert!(output.status.success(), "CREDIT_HUB_JSON={on}: {output:?}");
        let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines, all[..2], "CREDIT_HUB_JSON={on}");
    }
}

#[tokio::test]
async fn listing_records_names_one_subject() {
    let app = spawn_app().await;
    let err = app
        .records(AgencyKind::MarketRegulation)
        .list_records(pb::ListRecordsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["subject_enterprise"]);
}

#[tokio::test]
async fn a_revision_about_another_enterprise_regrades_the_one_it_left() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_B)])
        .await;
    let clean = app.grade_of(1).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    client
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")], ""))
        .await
        .unwrap();
    assert!(app.grade_of(1).await.score < clean.score);

    // The bureau filed it against the wrong enterprise and corrects the subject.
    let mut moved = penalty(&uscc(2), "P-1");
    moved.provenance.as_mut().unwrap().revision = 2;
    let revised = client
        .batch_submit_records(submit(vec![moved], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revised.outcomes, vec![pb::SubmitOutcome::Revised as i32]);
    let left = app.grade_of(1).await;
    assert_eq!((left.grade, left.score), (clean.grade, clean.score));
    assert!(
        left.reasons.iter().all(|r| r.records.is_empty()),
        "{left:?}"
    );
    assert!(app.grade_of(2).await.score < clean.score);
}

#[tokio::test]
async fn revisions_are_bounded_and_document_details_are_optional() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    let mut huge = penalty(&uscc(1), "P-1");
    huge.provenance.as_mut().unwrap().revision = i64::MAX;
    let err = client
        .batch_submit_records(submit(vec![huge], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        vec!["records[0].provenance.revision"]
    );
    assert_eq!(app.store.count_records().await.unwrap(), 0);

    let mut highest = penalty(&uscc(1), "P-1");
    highest.provenance.as_mut().unwrap().revision = (1 << 53) - 1;
    highest.document_number.clear();
    highest.deciding_authority.clear();
    let filed = client
        .batch_submit_records(submit(vec![highest.clone()], ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filed.records[0].document_number, "");
    highest.summary = "内容更正".into();
    let err = client
        .batch_submit_records(submit(vec![highest], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        vec!["records[0].provenance.revision"]
    );
}

#[tokio::test]
async fn a_withdrawal_retried_with_its_request_id_answers_the_same_and_the_id_is_not_reused() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    let filed = client
        .batch_submit_records(submit(
            vec![penalty(&uscc(1), "P-1"), penalty(&uscc(1), "P-2")],
            "",
        ))
        .await
        .unwrap()
        .into_inner()
        .records;
    let withdraw = |name: &str| pb::WithdrawRecordRequest {
        name: name.into(),
        reason: "处罚决定已被复议撤销".into(),
        request_id: "withdraw-1".into(),
    };
    let first = client
        .withdraw_record(withdraw(&filed[0].name))
        .await
        .unwrap()
        .into_inner();
    let retried = client
        .withdraw_record(withdraw(&filed[0].name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retried, "a retry returns the first response");

    let err = client
        .withdraw_record(withdraw(&filed[1].name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["request_id"]);
    let other = client
        .get_record(pb::GetRecordRequest {
            name: filed[1].name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(other.status, pb::RecordStatus::Active as i32);
}

#[tokio::test]
async fn list_records_are_serious_by_definition() {
    let app = spawn_app().await;
    let mut debtor = debtor(person("王强", ID_B), "D-1");
    debtor.tier = pb::Tier::Moderate as i32;
    let err = app
        .records(AgencyKind::Court)
        .batch_submit_records(submit(vec![debtor], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["records[0].tier"]);
    assert_eq!(app.store.count_records().await.unwrap(), 0);
}

/// Revision pages continue from the last version shown: a withdrawal arriving between
/// pages (a newer version) neither repeats a version on the next page nor hides one.
/// A token that is not a place in the history is refused.
#[tokio::test]
async fn revision_pages_neither_repeat_nor_skip_when_a_version_arrives_between_them() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);
    let first = penalty(&uscc(1), "P-1");
    let mut second = first.clone();
    second.provenance.as_mut().unwrap().revision = 2;
    second.summary = "复查后更正处罚事由".into();
    let mut name = String::new();
    for r in [first, second] {
        name = client
            .batch_submit_records(submit(vec![r], ""))
            .await
            .unwrap()
            .into_inner()
            .records[0]
            .name
            .clone();
    }
    let page = |token: String| pb::ListRecordRevisionsRequest {
        name: name.clone(),
        page_size: 1,
        page_token: token,
    };
    let one = client
        .list_record_revisions(page(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.revisions[0].provenance.as_ref().unwrap().revision, 2);
    client
        .withdraw_record(pb::WithdrawRecordRequest {
            name: name.clone(),
            reason: "重复录入".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let two = client
        .list_record_revisions(page(one.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(two.revisions.len(), 1);
    let shown = two.revisions[0].provenance.as_ref().unwrap().revision;
    assert_eq!(shown, 1, "the second page repeated a version");
    assert_eq!(two.revisions[0].status, pb::RecordStatus::Active as i32);

    let id = name.trim_start_matches("records/");
    let err = client
        .list_record_revisions(page(credit_hub::api::paging::encode_token(id, &2u64)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["page_token"]);
}

/// A request id is up to 128 characters, counted as characters: Chinese ones too.
#[tokio::test]
async fn a_request_id_of_128_chinese_characters_is_accepted_and_129_refused() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut records = app.records(AgencyKind::MarketRegulation);
    let done = records
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-1")], &"号".repeat(128)))
        .await
        .unwrap();
    assert_eq!(done.into_inner().records.len(), 1);
    let err = records
        .batch_submit_records(submit(vec![penalty(&uscc(1), "P-2")], &"号".repeat(129)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["request_id"]);
}

/// A full batch with every text at its longest is over gRPC's default 4 MiB: it is
/// taken, and its response (which echoes the records) reaches the client.
#[tokio::test]
async fn a_full_batch_of_records_at_their_longest_is_accepted() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let records: Vec<pb::Record> = (0..1000)
        .map(|i| {
            let mut r = penalty(&uscc(1), &format!("LONG-{i}"));
            r.summary = "长".repeat(1000);
            r.document_number = "号".repeat(200);
            r.deciding_authority = "局".repeat(200);
            r
        })
        .collect();
    let request = submit(records, "longest");
    assert!(prost::Message::encoded_len(&request) > 4 << 20);
    let done = app
        .records(AgencyKind::MarketRegulation)
        .max_decoding_message_size(credit_hub::MAX_MESSAGE_BYTES)
        .batch_submit_records(request)
        .await
        .unwrap();
    assert_eq!(done.into_inner().records.len(), 1000);
}

/// A burst of writes far beyond the database's connections (400 one-record batches at
/// once) queues for write slots and is answered in full, instead of half of it failing
/// UNAVAILABLE after the pool's acquire timeout. (One agency may have only 64 waiting:
/// the rest are told to retry shortly, RESOURCE_EXHAUSTED with RetryInfo, and do.)
#[tokio::test]
async fn a_burst_of_writes_queues_and_every_one_is_answered() {
    let app = spawn_app().await;
    let n = 400u32;
    app.register((1..=n).map(|i| enterprise(i, ID_A)).collect())
        .await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 1..=n {
        let mut client = app.records(AgencyKind::MarketRegulation);
        calls.spawn(async move {
            let request = submit(
                vec![penalty(&uscc(i), &format!("B-{i}"))],
                &format!("b-{i}"),
            );
            loop {
                match client.batch_submit_records(request.clone()).await {
                    Err(e) if e.code() == Code::ResourceExhausted => {
                        let wait = e
                            .get_details_retry_info()
                            .and_then(|r| r.retry_delay)
                            .expect("told when to retry");
                        tokio::time::sleep(wait).await;
                    }
                    answer => return answer.map_err(|e| format!("{:?} {}", e.code(), e.message())),
                }
            }
        });
    }
    let failed: Vec<String> = calls
        .join_all()
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed[0]
    );
    assert_eq!(app.store.count_records().await.unwrap(), i64::from(n));
}

/// `credit-hub records submit` names a refused record by its file line (blank lines
/// included), prints each violation once, writes nothing of the batch, and submits the
/// corrected file.
#[tokio::test]
async fn the_cli_names_a_refused_record_by_its_file_line() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let line = |source: &str, date: &str| {
        format!(
            r#"{{"source_record_id":"{source}","subject_enterprise":"enterprises/{}","kind":"ADMINISTRATIVE_PENALTY","tier":"MODERATE","domain":"PRICING","decision_date":"{date}","document_number":"罚〔2026〕{source}号","deciding_authority":"市场监督管理局","penalty_measures":["FINE"],"fine_amount_fen":100}}"#,
            uscc(1)
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("penalties.jsonl");
    let run = |file: std::path::PathBuf| {
        let (addr, token) = (
            app.addr.clone(),
            app.tokens[&AgencyKind::MarketRegulation].clone(),
        );
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
                .args(["records", "submit"])
                .arg(&file)
                .args(["--addr", &addr, "--token", &token])
                .env_remove("RUST_BACKTRACE")
                .output()
                .await
                .expect("run credit-hub")
        }
    };
    let good = line("1", "2026-10-01");
    std::fs::write(
        &file,
        format!(
            "{good}\n\n{}\n{}\n",
            line("2", "2026-10-02"),
            line("3", "2026-13-01")
        ),
    )
    .unwrap();
    let out = run(file.clone()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let expected = format!("{}:4: records[2].decision_date", file.display());
    assert_eq!(stderr.matches(&expected).count(), 1, "{stderr}");
    assert!(stderr.contains("lines 1-4"), "{stderr}");
    assert_eq!(app.store.count_records().await.unwrap(), 0);

    std::fs::write(&file, format!("{good}\n\n{}\n", line("2", "2026-10-02"))).unwrap();
    let out = run(file.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.store.count_records().await.unwrap(), 2);

    // A line older than what is stored is passed over and named on stderr, also when
    // stderr is not a terminal (here a pipe), where no progress bar is drawn.
    let revised = good.replacen('{', r#"{"revision":2,"#, 1);
    std::fs::write(&file, format!("{revised}\n")).unwrap();
    assert!(run(file.clone()).await.status.success());
    std::fs::write(&file, format!("\n{good}\n")).unwrap();
    let out = run(file.clone()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let expected = format!(
        "{}:2: stale: revision 1 is older than the stored revision 2",
        file.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

/// Penalty measures belong to administrative penalties: on a dishonest-debtor record a
/// lone WARNING would have made it expire the day it was filed (warnings are never
/// published), so it would never have counted. A measure listed twice is refused too,
/// and a fine amount without a FINE measure or the other way round, and another kind's
/// cause or year.
#[tokio::test]
async fn measures_belong_to_penalties_and_are_listed_once() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut warned = debtor(person("李四", ID_B), "D-1");
    warned.penalty_measures = vec![pb::PenaltyMeasure::Warning as i32];
    let err = app
        .records(AgencyKind::Court)
        .batch_submit_records(submit(vec![warned], ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["records[0].penalty_measures"]);

    let mut twice = penalty(&uscc(1), "P-1");
    twice.penalty_measures = vec![
        pb::PenaltyMeasure::Fine as i32,
        pb::PenaltyMeasure::Confiscation as i32,
        pb::PenaltyMeasure::Fine as i32,
    ];
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![twice], ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["records[0].penalty_measures[2]"]);

    // A fine amount goes with a FINE measure, and a FINE measure with its amount.
    let mut unfined = penalty(&uscc(1), "P-2");
    unfined.penalty_measures = vec![pb::PenaltyMeasure::Confiscation as i32];
    let mut amountless = penalty(&uscc(1), "P-3");
    amountless.fine_amount_fen = 0;
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![unfined, amountless], ""))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["records[0].fine_amount_fen", "records[1].fine_amount_fen"]
    );

    // Each kind's details on that kind alone.
    let mut caused = penalty(&uscc(1), "P-4");
    caused.abnormal_cause = pb::AbnormalCause::FalseInformation as i32;
    caused.report_year = 2025;
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(vec![caused], ""))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["records[0].abnormal_cause", "records[0].report_year"]
    );
    let listed = app
        .records(AgencyKind::Court)
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(listed.is_empty(), "nothing written: {listed:?}");
}

/// A page of full-length records asked for 1,000 at a time stops short of the 4 MiB a
/// gRPC client accepts by default, and its token leads on to the rest.
#[tokio::test]
async fn a_page_stops_under_four_mib_and_leads_on_to_the_rest() {
    let app = spawn_app().await;
    app.register(vec![enterprise(7, ID_A)]).await;
    let long = "生".repeat(credit_hub::domain::record::MAX_TEXT_CHARS);
    let batch = (0..1000)
        .map(|i| pb::Record {
            summary: long.clone(),
            ..penalty(&uscc(7), &format!("LONG-{i}"))
        })
        .collect();
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(submit(batch, ""))
        .await
        .unwrap();
    let mut client = app.records(AgencyKind::MarketRegulation);
    let (mut token, mut seen, mut pages) = (String::new(), BTreeSet::new(), 0);
    loop {
        let page = client
            .list_records(pb::ListRecordsRequest {
                subject_enterprise: format!("enterprises/{}", uscc(7)),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("a page within the client's default limit")
            .into_inner();
        assert!(prost::Message::encoded_len(&page) < 4 * 1024 * 1024);
        pages += 1;
        seen.extend(page.records.into_iter().map(|r| r.name));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(pages > 1, "the first page was cut short");
    assert_eq!(seen.len(), 1000, "every record, once");
}

/// `credit-hub records submit` waits out the agency's quota (RESOURCE_EXHAUSTED with
/// RetryInfo) rather than stopping half way through a file.
#[tokio::test]
async fn the_cli_waits_out_the_agencys_quota() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let (agency, token) = app
        .store
        .create_agency(credit_hub::store::NewAgency {
            display_name: "限速测试局".into(),
            kind: AgencyKind::MarketRegulation,
            scopes: BTreeSet::from([credit_hub::domain::agency::Scope::RecordsWrite]),
            cert_subject: None,
        })
        .await
        .unwrap();
    app.store
        .set_agency_rate_limit(&agency.id, Some(1))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.jsonl");
    let lines: Vec<String> = (0..1001)
        .map(|i| {
            format!(
                r#"{{"source_record_id":"Q-{i}","subject_enterprise":"enterprises/{}","kind":"ADMINISTRATIVE_PENALTY","tier":"MINOR","domain":"PRICING","decision_date":"2026-10-01","document_number":"罚〔2026〕{i}号","deciding_authority":"市场监督管理局","penalty_measures":["FINE"],"fine_amount_fen":100}}"#,
                uscc(1)
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["records", "submit"])
        .arg(&file)
        .args(["--addr", &app.addr, "--token", &token])
        .output()
        .await
        .expect("run credit-hub");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.store.count_records().await.unwrap(), 1001);
}
