//! Cross-checks for vetting offices: planted persons, enterprises and records from
//! several agencies, and the verdicts, evidence paths and reports they give.

use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::ids::IdNumber;
use credit_hub::proto::v1 as pb;
use credit_hub::store::NewAgency;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::helpers::*;

/// A checksum-valid ID number from 17 leading digits; tests use the address codes 99xxxx,
/// which belong to no region, so no such number is anyone's.
fn valid_id(first17: &str) -> String {
    format!("{first17}{}", IdNumber::check_char(first17.as_bytes()))
}

/// A listing or arrears record about enterprise `n`.
fn about_enterprise(n: u32, kind: pb::RecordKind, source: &str) -> pb::Record {
    let mut r = penalty(&uscc(n), source);
    r.kind = kind as i32;
    r.tier = pb::Tier::Serious as i32;
    r.penalty_measures.clear();
    r.fine_amount_fen = 0;
    match kind {
        pb::RecordKind::SeriousDishonestyListing => {
            r.domain = pb::RegulatoryDomain::BusinessRegistration as i32;
            r.serious_listing_cause = pb::SeriousListingCause::SeriousViolation as i32;
            r.document_number = "威开市监严列〔2026〕3号".into();
        }
        _ => {
            r.domain = pb::RegulatoryDomain::SocialSecurity as i32;
            r.document_number = "威开人社欠〔2026〕8号".into();
        }
    }
    r
}

fn candidate(name: &str, id: &str, declared: &[String]) -> pb::Candidate {
    pb::Candidate {
        name: name.into(),
        id_number: id.into(),
        declared_enterprises: declared.to_vec(),
    }
}

fn vetting(
    app: &TestApp,
    kind: AgencyKind,
) -> pb::vetting_service_client::VettingServiceClient<Authed> {
    pb::vetting_service_client::VettingServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(kind),
    )
}

/// Runs a cross-check and collects the streamed results and the summary.
async fn run(
    client: &mut pb::vetting_service_client::VettingServiceClient<Authed>,
    request: pb::CrossCheckRequest,
) -> Result<(Vec<pb::CandidateResult>, pb::CrossCheckSummary), tonic::Status> {
    let mut stream = client.cross_check(request).await?.into_inner();
    let mut results = Vec::new();
    let mut summary = None;
    while let Some(message) = stream.next().await {
        match message?.event {
            Some(pb::cross_check_response::Event::Result(r)) => {
                assert!(summary.is_none(), "no result after the summary");
                results.push(r);
            }
            Some(pb::cross_check_response::Event::Summary(s)) => summary = Some(s),
            None => panic!("empty stream message"),
        }
    }
    Ok((results, summary.expect("the stream ends with a summary")))
}

/// The vetting office's results for `candidates` (a check without a request id).
async fn check(
    app: &TestApp,
    purpose: pb::VettingPurpose,
    case_reference: &str,
    candidates: Vec<pb::Candidate>,
) -> Vec<pb::CandidateResult> {
    let request = pb::CrossCheckRequest {
        purpose: purpose as i32,
        case_reference: case_reference.into(),
        candidates,
        request_id: String::new(),
    };
    run(&mut vetting(app, AgencyKind::VettingOffice), request)
        .await
        .expect("cross-check")
        .0
}

fn verdict(r: &pb::CandidateResult) -> pb::Verdict {
    pb::Verdict::try_from(r.verdict).unwrap()
}

#[tokio::test]
async fn cross_checks_give_verdicts_with_evidence_paths_and_private_reports() {
    let app = spawn_app().await;
    let id_c = valid_id("99010319850315002");
    let id_d = valid_id("99010319900720003");
    let id_e = valid_id("99010319951111004");
    app.register(vec![
        enterprise(1, ID_A),
        {
            let mut e = enterprise(2, &id_c);
            e.legal_representative = Some(person("王芳", &id_c));
            e
        },
        {
            let mut e = enterprise(3, &id_d);
            e.legal_representative = Some(person("赵强", &id_d));
            e
        },
    ])
    .await;
    app.submit(
        AgencyKind::Court,
        vec![debtor(person("李娜", ID_B), "court-7")],
    )
    .await;
    app.submit(
        AgencyKind::MarketRegulation,
        vec![about_enterprise(
            2,
            pb::RecordKind::SeriousDishonestyListing,
            "sd-2",
        )],
    )
    .await;
    app.submit(
        AgencyKind::SocialSecurity,
        vec![about_enterprise(
            3,
            pb::RecordKind::SocialSecurityArrears,
            "ss-3",
        )],
    )
    .await;

    let typo = format!(
        "{}{}",
        &ID_A[..17],
        if ID_A.ends_with('X') { '1' } else { 'X' }
    );
    let candidates = vec![
        candidate("张伟", ID_A, &[]),
        candidate("李娜", ID_B, &[]),
        candidate("王芳", &id_c, &[]),
        candidate("张三", &typo, &[]),
        candidate("王五", ID_A, &[]),
        candidate("赵强", &id_d, &[]),
        candidate("孙丽", &id_e, &[uscc(1), uscc(99)]),
    ];
    let request = pb::CrossCheckRequest {
        purpose: pb::VettingPurpose::NonPublicEconomyRepresentative as i32,
        case_reference: "2026-统战-009".into(),
        candidates: candidates.clone(),
        request_id: "npe-1".into(),
    };
    let mut office = vetting(&app, AgencyKind::VettingOffice);
    let (results, summary) = run(&mut office, request.clone()).await.unwrap();

    // One result per candidate, in input order.
    assert_eq!(
        results.iter().map(|r| r.index).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    let verdicts: Vec<_> = results.iter().map(verdict).collect();
    use pb::Verdict::*;
    assert_eq!(
        verdicts,
        [Clear, Adverse, Adverse, Invalid, Review, Review, Review],
        "{results:#?}"
    );
    assert!(results[0].findings.is_empty());

    // The debtor: ADVERSE citing the court's record.
    let debt = &results[1].findings[0];
    assert_eq!(debt.code, "DISHONEST_JUDGMENT_DEBTOR");
    let record = debt.record.as_ref().unwrap();
    assert_eq!(
        record.agency,
        format!("agencies/{}", app.agency_ids[&AgencyKind::Court])
    );
    assert_eq!(record.document_number, "(2026)鲁1002执123号");
    assert_eq!(
        record.decision_date,
        date_days_ago(60),
        "the debtor fixture's"
    );
    assert!(!record.publicity_end_date.is_empty());

    // The legal representative of a seriously dishonest enterprise: the full path.
    let listed = &results[2].findings[0];
    assert_eq!(listed.code, "ENTERPRISE_SERIOUS_DISHONESTY");
    assert_eq!(listed.verdict, Adverse as i32);
    assert_eq!(listed.role, pb::RoleKind::LegalRepresentative as i32);
    let e = listed.enterprise.as_ref().unwrap();
    assert_eq!(e.uscc, uscc(2));
    assert_eq!(e.display_name, "威海测试2有限公司");
    assert_eq!(
        e.grade,
        pb::Grade::Unspecified as i32,
        "a vetting office without the grades scope is shown no grade"
    );
    let r = listed.record.as_ref().unwrap();
    assert_eq!(r.kind, pb::RecordKind::SeriousDishonestyListing as i32);
    assert_eq!(r.document_number, "威开市监严列〔2026〕3号");
    assert!(
        listed.description.contains("法定代表人"),
        "{}",
        listed.description
    );

    // One typo sinks only its own row.
    assert!(results[3].findings.is_empty());
    assert!(
        results[3].invalid_reasons[0].contains("candidates[3].id_number")
            && results[3].invalid_reasons[0].contains("check character"),
        "{:?}",
        results[3].invalid_reasons
    );
    // Same ID, another name in the registry.
    assert_eq!(results[4].findings[0].code, "IDENTITY_MISMATCH");
    assert!(results[4].findings[0].description.contains("张伟"));
    // Social-security arrears of the enterprise the candidate represents.
    assert_eq!(
        results[5].findings[0].code,
        "ENTERPRISE_SOCIAL_SECURITY_ARREARS"
    );
    // A declared enterprise that is registered and clean adds nothing; an unknown one
    // is put before an officer.
    assert_eq!(results[6].findings.len(), 1, "{:?}", results[6].findings);
    assert_eq!(results[6].findings[0].code, "DECLARED_ENTERPRISE_UNKNOWN");
    assert!(results[6].findings[0].declared);

    assert_eq!(
        (
            summary.clear_count,
            summary.review_count,
            summary.adverse_count,
            summary.invalid_count
        ),
        (1, 3, 2, 1)
    );
    assert_eq!(
        summary.policy_version,
        credit_hub::domain::vetting::VettingPolicy::builtin().version(),
        "the shipped policy judged it"
    );
    assert!(summary.report.starts_with("vettingReports/"));

    // Masked IDs only, everywhere in the answer.
    let shown = format!("{results:?}{summary:?}");
    for id in [
        ID_A,
        ID_B,
        id_c.as_str(),
        id_d.as_str(),
        id_e.as_str(),
        typo.as_str(),
    ] {
        assert!(!shown.contains(id), "a response holds a full ID number");
    }
    assert_eq!(
        results[0].masked_id_number,
        format!("{}********{}", &ID_A[..6], &ID_A[14..])
    );

    // The same request again replays the report instead of running a second check.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (again, summary_again) = run(&mut office, request.clone()).await.unwrap();
    assert_eq!(summary_again.report, summary.report);
    assert!(summary.create_time.is_some());
    assert_eq!(
        summary_again.create_time, summary.create_time,
        "the replay states when its verdicts were made"
    );
    assert_eq!(again, results);
    // Reusing the request_id for another request is refused.
    let err = run(
        &mut office,
        pb::CrossCheckRequest {
            case_reference: "2026-统战-010".into(),
            ..request
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["request_id"]);

    // Another purpose, another policy outcome for the same evidence.
    let (village, _) = run(
        &mut office,
        pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::VillageCommitteeCandidate as i32,
            case_reference: "2026-组织-017".into(),
            candidates: vec![candidates[2].clone()],
            request_id: String::new(),
        },
    )
    .await
    .unwrap();
    assert_eq!(verdict(&village[0]), Review);

    // The report: whole for its office, refused to anyone else.
    let report = office
        .get_vetting_report(pb::GetVettingReportRequest {
            name: summary.report.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.results, results);
    assert_eq!(report.case_reference, "2026-统战-009");
    // Read again for the cross-check's purpose and case, and audited so.
    let reads = app
        .audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.VettingService/GetVettingReport".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].purpose, pb::Purpose::CandidateVetting as i32);
    assert_eq!(reads[0].case_reference, "2026-统战-009");
    // A declared enterprise that came back clean was disclosed all the same: the
    // check, its replay and the report's reading are each found under it.
    let declared_clean: Vec<String> = app
        .audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            ..Default::default()
        })
        .await
        .into_iter()
        .filter(|e| e.outcome == "OK")
        .map(|e| e.method)
        .collect();
    let count = |m: &str| declared_clean.iter().filter(|x| x.ends_with(m)).count();
    assert_eq!(
        (count("/CrossCheck"), count("/GetVettingReport")),
        (2, 1),
        "{declared_clean:?}"
    );
    assert_eq!(
        report.agency,
        format!("agencies/{}", app.agency_ids[&AgencyKind::VettingOffice])
    );
    let listed = office
        .list_vetting_reports(pb::ListVettingReportsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].name, summary.report, "newest first");

    let (_, other_token) = app
        .store
        .create_agency(NewAgency {
            display_name: "另一区组织部".into(),
            kind: AgencyKind::VettingOffice,
            scopes: Default::default(),
            cert_subject: None,
        })
        .await
        .unwrap();
    let mut other = pb::vetting_service_client::VettingServiceClient::with_interceptor(
        app.channel.clone(),
        credit_hub::cli::Bearer::new(&other_token).unwrap(),
    );
    // Another office's report is answered as a missing one would be: nothing says it
    // exists.
    let err = other
        .get_vetting_report(pb::GetVettingReportRequest {
            name: summary.report.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let missing_name = format!("vettingReports/{}", "0".repeat(32));
    let missing = other
        .get_vetting_report(pb::GetVettingReportRequest {
            name: missing_name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.message().replace(&summary.report, "X"),
        missing.message().replace(&missing_name, "X")
    );
    let none = other
        .list_vetting_reports(pb::ListVettingReportsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert!(none.is_empty());

    // Only vetting offices run cross-checks.
    let err = run(
        &mut vetting(&app, AgencyKind::Court),
        pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::Other as i32,
            case_reference: "x".into(),
            candidates: vec![candidates[0].clone()],
            request_id: String::new(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Nothing stored holds a full ID number, reports included.
    for (table, column, value) in app.store.dump_text_columns().await.unwrap() {
        for id in [
            ID_A,
            ID_B,
            id_c.as_str(),
            id_d.as_str(),
            id_e.as_str(),
            typo.as_str(),
        ] {
            assert!(
                !value.contains(id),
                "{table}.{column} holds a full ID number"
            );
        }
    }
}

/// Who was checked is in the audit log, in the cross-check's own entries (recorded group
/// by group before the group's results leave), findable by the person's ID number.
#[tokio::test]
async fn every_checked_person_is_in_the_audit_log_under_the_cross_check() {
    let app = spawn_app().await;
    app.register(vec![enterprise(60, ID_A), enterprise(61, ID_B)])
        .await;
    // Enterprise 61, which ID_B represents but nobody declares, has a finding to show.
    app.submit(
        AgencyKind::MarketRegulation,
        vec![abnormal(
            61,
            "AB-61",
            &date_days_ago(10),
            0,
            pb::AbnormalCause::UnreachableAddress,
        )],
    )
    .await;
    let mut office = vetting(&app, AgencyKind::VettingOffice);
    let (results, _) = run(
        &mut office,
        pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::VillageCommitteeCandidate as i32,
            case_reference: "联审〔2026〕9号".into(),
            candidates: (0..40)
                .map(|i| {
                    candidate(
                        &format!("候选人{i}"),
                        if i == 39 { ID_B } else { ID_A },
                        &[uscc(60)],
                    )
                })
                .collect(),
            request_id: String::new(),
        },
    )
    .await
    .unwrap();
    assert_eq!(results.len(), 40);
    for id in [ID_A, ID_B] {
        let entries = app
            .audit_entries(pb::ListAuditEntriesRequest {
                subject_person_id_number: id.into(),
                method: "/credithub.v1.VettingService/CrossCheck".into(),
                ..Default::default()
            })
            .await;
        assert!(!entries.is_empty(), "no cross-check entry names {id}");
        assert!(entries.iter().all(|e| e.case_reference == "联审〔2026〕9号"
            && e.purpose == pb::Purpose::CandidateVetting as i32
            && e.agency
                .ends_with(&app.agency_ids[&AgencyKind::VettingOffice])));
    }
    // The declared enterprise is named too.
    let entries = app
        .audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(60)),
            method: "/credithub.v1.VettingService/CrossCheck".into(),
            ..Default::default()
        })
        .await;
    assert!(!entries.is_empty());
    // So is the one the results revealed through a person's role.
    assert!(results
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.enterprise.as_ref().is_some_and(|e| e.uscc == uscc(61))));
    let entries = app
        .audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(61)),
            method: "/credithub.v1.VettingService/CrossCheck".into(),
            ..Default::default()
        })
        .await;
    assert!(!entries.is_empty(), "the revealed enterprise is named");
}

#[tokio::test]
async fn a_malformed_cross_check_request_is_refused_field_by_field() {
    let app = spawn_app().await;
    let mut office = vetting(&app, AgencyKind::VettingOffice);
    let err = run(
        &mut office,
        pb::CrossCheckRequest {
            purpose: 0,
            case_reference: " ".into(),
            candidates: vec![],
            request_id: String::new(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        ["purpose", "case_reference", "candidates"]
    );
    let err = run(
        &mut office,
        pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::Other as i32,
            case_reference: "长".repeat(129),
            candidates: vec![candidate("张伟", ID_A, &[]); 10_001],
            request_id: String::new(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["case_reference", "candidates"]);
}

/// Runs `credit-hub vet` on `file`, writing into `out`; returns (stdout, stderr). Awaited,
/// not blocking: the server under test shares this test's runtime.
async fn vet_cli(app: &TestApp, file: &std::path::Path, out: &std::path::Path) -> (String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["vet", file.to_str().unwrap()])
        .args(["--purpose", "village-committee", "--case", "2026-组织-017"])
        .args(["--addr", &app.addr, "--out-dir", out.to_str().unwrap()])
        .args(["--token", &app.tokens[&AgencyKind::VettingOffice]])
        .output()
        .await
        .expect("run credit-hub");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "vet failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The one file with extension `ext` in `dir`.
fn written(dir: &std::path::Path, ext: &str) -> Vec<u8> {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read(&files[0]).unwrap()
}

#[tokio::test]
async fn the_officers_cli_reads_gbk_and_utf8_bom_files_to_the_same_report() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    app.submit(
        AgencyKind::Court,
        vec![debtor(person("李娜", ID_B), "court-7")],
    )
    .await;
    let typo = format!("{}0", &ID_B[..17]);
    let text = format!(
        "姓名,身份证号,申报企业\r\n张伟,{ID_A},\r\n李娜,{ID_B},{}\r\n王五,{typo},\r\n",
        uscc(1)
    );
    let dir = tempfile::tempdir().unwrap();
    let gbk = dir.path().join("gbk.csv");
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    std::fs::write(&gbk, &bytes).unwrap();
    let bom = dir.path().join("bom.csv");
    std::fs::write(&bom, [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat()).unwrap();
    let (out_a, out_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&out_a).unwrap();
    std::fs::create_dir_all(&out_b).unwrap();

    let (stdout_a, stderr_a) = vet_cli(&app, &gbk, &out_a).await;
    let (stdout_b, stderr_b) = vet_cli(&app, &bom, &out_b).await;
    let (csv_a, csv_b) = (written(&out_a, "csv"), written(&out_b, "csv"));
    assert_eq!(csv_a, csv_b, "the same candidates give the same report");
    let csv = String::from_utf8(csv_a).unwrap();
    assert!(csv.starts_with('\u{feff}'), "Excel needs the BOM");
    assert!(
        csv.contains("李娜") && csv.contains("失信被执行人"),
        "{csv}"
    );
    let html = String::from_utf8(written(&out_a, "html")).unwrap();
    assert!(
        html.contains("李娜") && html.contains("(2026)鲁1002执123号"),
        "{html}"
    );

    // Nothing the CLI prints or writes holds a full ID number, typo included.
    for output in [&stdout_a, &stderr_a, &stdout_b, &stderr_b, &csv, &html] {
        for id in [ID_A, ID_B, typo.as_str()] {
            assert!(!output.contains(id), "CLI output holds a full ID number");
        }
    }
    // Both runs are on record as reports of the office.
    let reports = vetting(&app, AgencyKind::VettingOffice)
        .list_vetting_reports(pb::ListVettingReportsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert_eq!(reports.len(), 2);
}

#[tokio::test]
async fn an_office_with_the_grades_scope_sees_the_grade_on_the_evidence_path() {
    let app = spawn_app().await;
    app.register(vec![enterprise(2, ID_A)]).await;
    app.submit(
        AgencyKind::MarketRegulation,
        vec![about_enterprise(
            2,
            pb::RecordKind::SeriousDishonestyListing,
            "listing-2",
        )],
    )
    .await;
    let bearer = agency_with(
        &app,
        std::collections::BTreeSet::from([Scope::VettingRun, Scope::GradesRead]),
        AgencyKind::VettingOffice,
    )
    .await;
    let mut office = pb::vetting_service_client::VettingServiceClient::with_interceptor(
        app.channel.clone(),
        bearer,
    );
    let (results, _) = run(
        &mut office,
        pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::NonPublicEconomyRepresentative as i32,
            case_reference: "统战〔2026〕9号".into(),
            candidates: vec![candidate("张伟", ID_A, &[])],
            request_id: String::new(),
        },
    )
    .await
    .unwrap();
    let e = results[0].findings[0].enterprise.as_ref().unwrap();
    assert_eq!(e.grade, pb::Grade::D as i32, "the listing makes it D");
}

/// A retry sent while the first attempt is still running (the officer's client timed
/// out and tried again) gets the first attempt's report, not an error and not a
/// second report under the same request id.
#[tokio::test]
async fn a_retry_running_alongside_the_first_attempt_ends_with_the_same_report() {
    let app = spawn_app().await;
    for round in 0..4 {
        let request = village_check("2026-组织-021", 40, &format!("side-by-side-{round}"));
        let (a, b) = side_by_side(&app, request.clone(), request).await;
        let (a, b) = (a.expect("first attempt"), b.expect("retry"));
        assert_eq!(a.1.report, b.1.report, "round {round}: one report");
        assert_eq!((a.0.len(), b.0.len()), (40, 40));
    }
    assert_eq!(
        stored_reports(&app).await.len(),
        4,
        "one report per request id"
    );
}

/// Two different checks sent at once under one request id (a client bug): whichever
/// stores its report second has already shown its results, so it keeps them as a
/// report of its own rather than ending in an error with nothing kept.
#[tokio::test]
async fn two_different_checks_racing_for_one_request_id_both_keep_their_reports() {
    let app = spawn_app().await;
    // 300 candidates take long enough that neither stores before the other began.
    let (a, b) = side_by_side(
        &app,
        village_check("2026-组织-031", 300, "shared-id"),
        village_check("2026-组织-032", 300, "shared-id"),
    )
    .await;
    let (a, b) = (a.expect("first check"), b.expect("second check"));
    assert_eq!((a.0.len(), b.0.len()), (300, 300));
    assert_ne!(a.1.report, b.1.report, "two checks, two reports");
    assert_eq!(
        stored_reports(&app).await.len(),
        2,
        "every check that ran is kept"
    );
}

/// A village-committee cross-check of `n` candidates nothing is known about
/// (synthetic ID numbers, no declarations).
fn village_check(case: &str, n: u32, request_id: &str) -> pb::CrossCheckRequest {
    pb::CrossCheckRequest {
        purpose: pb::VettingPurpose::VillageCommitteeCandidate as i32,
        case_reference: case.into(),
        candidates: (0..n)
            .map(|i| candidate("王芳", &synthetic_id(i), &[]))
            .collect(),
        request_id: request_id.into(),
    }
}

/// Two cross-checks sent at once by the same office, each on its own client.
async fn side_by_side(
    app: &TestApp,
    first: pb::CrossCheckRequest,
    second: pb::CrossCheckRequest,
) -> (
    Result<(Vec<pb::CandidateResult>, pb::CrossCheckSummary), tonic::Status>,
    Result<(Vec<pb::CandidateResult>, pb::CrossCheckSummary), tonic::Status>,
) {
    let (mut a, mut b) = (
        vetting(app, AgencyKind::VettingOffice),
        vetting(app, AgencyKind::VettingOffice),
    );
    tokio::join!(run(&mut a, first), run(&mut b, second))
}

/// The reports the test's vetting office has stored (up to 100).
async fn stored_reports(app: &TestApp) -> Vec<pb::VettingReport> {
    vetting(app, AgencyKind::VettingOffice)
        .list_vetting_reports(pb::ListVettingReportsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .reports
}

/// Columns swapped and one digit mistyped: the "name" is most of an ID number. It is
/// refused, and the report keeps (and answers) it masked.
#[tokio::test]
async fn a_mistyped_id_number_in_the_name_column_is_kept_masked() {
    let app = spawn_app().await;
    let mut office = vetting(&app, AgencyKind::VettingOffice);
    let (results, _) = run(
        &mut office,
        pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::NonPublicEconomyRepresentative as i32,
            case_reference: "2026-统战-010".into(),
            candidates: vec![candidate("990101198001010015", "张三", &[])],
            request_id: "swapped-1".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(results[0].verdict, pb::Verdict::Invalid as i32);
    assert_eq!(results[0].name, "990101********0015");
    assert!(
        results[0]
            .invalid_reasons
            .iter()
            .any(|r| r.contains("candidates[0].name")),
        "{:?}",
        results[0].invalid_reasons
    );
}

/// A candidate with a hundred malformed declared codes is INVALID with five reasons and
/// a count of the rest: a report stays small enough to read back.
#[tokio::test]
async fn an_invalid_candidates_reasons_are_bounded() {
    let app = spawn_app().await;
    let mut office = vetting(&app, AgencyKind::VettingOffice);
    let declared: Vec<String> = (0..100).map(|i| format!("not-a-code-{i}")).collect();
    let (results, _) = run(
        &mut office,
        pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::NonPublicEconomyRepresentative as i32,
            case_reference: "2026-统战-011".into(),
            candidates: vec![candidate("张三", ID_A, &declared)],
            request_id: "many-bad-codes".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(results[0].verdict, pb::Verdict::Invalid as i32);
    let reasons = &results[0].invalid_reasons;
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert!(
        reasons[0].contains("declared_enterprises[0]"),
        "{reasons:?}"
    );
    assert_eq!(reasons[5], "candidates[0]: 95 more problems");
}

/// Rows shifted in the officer's file: 李四 carries 李娜's ID number. The court's record
/// about 李娜 is shown, but as a question of identity for an officer, not as 李四's.
#[tokio::test]
async fn a_record_under_another_name_is_put_before_an_officer() {
    let app = spawn_app().await;
    app.submit(
        AgencyKind::Court,
        vec![debtor(person("李娜", ID_B), "court-8")],
    )
    .await;
    let results = check(
        &app,
        pb::VettingPurpose::VillageCommitteeCandidate,
        "2026-组织-021",
        vec![candidate("李四", ID_B, &[]), candidate("李娜", ID_B, &[])],
    )
    .await;
    use pb::Verdict::*;
    assert_eq!(verdict(&results[0]), Review, "{results:#?}");
    let debt = results[0]
        .findings
        .iter()
        .find(|f| f.code == "DISHONEST_JUDGMENT_DEBTOR")
        .expect("the record is shown");
    assert_eq!(debt.verdict, Review as i32);
    assert!(debt.description.contains("李娜"), "{}", debt.description);
    assert!(results[0]
        .findings
        .iter()
        .any(|f| f.code == "IDENTITY_MISMATCH" && f.description.contains("李娜")));
    // Under the name the record gives, it is held against the candidate.
    assert_eq!(verdict(&results[1]), Adverse);
    assert!(results[1]
        .findings
        .iter()
        .all(|f| f.code != "IDENTITY_MISMATCH"));
}

/// A court's consumption restriction on an enterprise binds its legal representative:
/// he is put before an officer; it is not passed over as it used to be.
#[tokio::test]
async fn an_enterprises_consumption_restriction_is_weighed_for_its_representative() {
    let app = spawn_app().await;
    app.register(vec![enterprise(41, ID_A)]).await;
    let mut restriction = debtor(person("unused", ID_A), "court-41");
    restriction.kind = pb::RecordKind::ConsumptionRestriction as i32;
    restriction.subject = Some(pb::Subject {
        subject: Some(pb::subject::Subject::Enterprise(format!(
            "enterprises/{}",
            uscc(41)
        ))),
    });
    app.submit(AgencyKind::Court, vec![restriction]).await;
    let results = check(
        &app,
        pb::VettingPurpose::PartyMemberDevelopment,
        "2026-组织-041",
        vec![candidate("张伟", ID_A, &[])],
    )
    .await;
    assert_eq!(verdict(&results[0]), pb::Verdict::Review, "{results:#?}");
    let found = &results[0].findings[0];
    assert_eq!(found.code, "ENTERPRISE_CONSUMPTION_RESTRICTION");
    assert_eq!(found.role, pb::RoleKind::LegalRepresentative as i32);
}

/// The same for an enterprise reached through a role the registry holds under another
/// name: its listing is put before an officer, not held against the candidate alone.
#[tokio::test]
async fn a_role_under_another_name_is_put_before_an_officer() {
    let app = spawn_app().await;
    app.register(vec![enterprise(40, ID_B)]).await;
    let mut listing = market_record(
        40,
        pb::RecordKind::SeriousDishonestyListing,
        "L-40",
        &date_days_ago(10),
    );
    listing.serious_listing_cause = pb::SeriousListingCause::SeriousViolation as i32;
    app.submit(AgencyKind::MarketRegulation, vec![listing])
        .await;
    let results = check(
        &app,
        pb::VettingPurpose::NonPublicEconomyRepresentative,
        "2026-统战-031",
        vec![candidate("李四", ID_B, &[]), candidate("张伟", ID_B, &[])],
    )
    .await;
    use pb::Verdict::*;
    let listed = |r: &pb::CandidateResult| {
        r.findings
            .iter()
            .find(|f| f.code == "ENTERPRISE_SERIOUS_DISHONESTY")
            .cloned()
            .expect("the listing is shown")
    };
    let shown = listed(&results[0]);
    assert_eq!(shown.verdict, Review as i32, "{results:#?}");
    assert!(shown.description.contains("张伟"), "{}", shown.description);
    assert_eq!(verdict(&results[0]), Review);
    assert_eq!(listed(&results[1]).verdict, Adverse as i32);
    assert_eq!(verdict(&results[1]), Adverse);
}
