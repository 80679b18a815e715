//! Accountability: every call on credit data is in the hash chain, refusals included;
//! tampering is named; purposes are bound to agency kinds; no RPC escapes its scope.

use std::collections::BTreeSet;

use credit_hub::auth::required_scope;
use credit_hub::cli::Bearer;
use credit_hub::domain::agency::Scope;
use credit_hub::domain::audit::ChainBreak;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use credit_hub::Server;
use prost::Message;
use sqlx::Connection;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

fn auditor(app: &TestApp, bearer: Bearer) -> pb::audit_service_client::AuditServiceClient<Authed> {
    pb::audit_service_client::AuditServiceClient::with_interceptor(app.channel.clone(), bearer)
}

async fn raw_sql(app: &TestApp, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.ok();
}

/// `credit-hub audit verify` against the test's database, trusting whichever keys
/// signed its checkpoints (the test servers' keys are made up per process):
/// (success, stderr and stdout).
async fn verify_cli(app: &TestApp) -> (bool, String) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT DISTINCT public_key FROM audit_checkpoints")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"));
    cmd.args(["audit", "verify"]).args(app.storage_flags());
    for key in keys {
        cmd.args(["--trust-key", &key]);
    }
    let out = cmd.output().expect("run credit-hub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Another server on the test's database, configured by `configure`, and a channel to it.
async fn second_server(
    app: &TestApp,
    configure: impl FnOnce(Server) -> Server,
) -> (tonic::transport::Channel, tokio::sync::oneshot::Sender<()>) {
    let (addr, stop) = another_server(app, configure).await;
    (channel_to(addr).await, stop)
}

/// Every RPC of the contract and the scope it needs, or "public".
const EXPECTED_ACCESS: &[(&str, &str)] = &[
    ("RegistryService/BatchUpsertEnterprises", "registry:write"),
    ("RegistryService/GetEnterprise", "registry:read"),
    ("RegistryService/ListEnterprises", "registry:read"),
    ("RecordService/BatchSubmitRecords", "records:write"),
    ("RecordService/WithdrawRecord", "records:write"),
    ("RecordService/GetRecord", "records:read"),
    ("RecordService/ListRecords", "records:read"),
    ("RecordService/ListRecordRevisions", "records:read"),
    ("GradeService/GetCreditGrade", "grades:read"),
    ("GradeService/BatchGetCreditGrades", "grades:read"),
    ("GradeService/ListGradeHistory", "grades:read"),
    ("GradeService/WatchGradeChanges", "grades:read"),
    ("GradeService/GetGradeDistribution", "grades:read"),
    ("VettingService/CrossCheck", "vetting:run"),
    ("VettingService/GetVettingReport", "vetting:run"),
    ("VettingService/ListVettingReports", "vetting:run"),
    ("CertificateService/IssueCertificate", "certificates:issue"),
    ("CertificateService/GetCertificate", "certificates:issue"),
    ("CertificateService/ListCertificates", "certificates:issue"),
    (
        "CertificateService/RevokeCertificate",
        "certificates:revoke",
    ),
    ("CertificateService/VerifyCertificate", "public"),
    ("CertificateService/ListIssuerKeys", "public"),
    ("AuditService/ListAuditEntries", "audit:read"),
    ("AuditService/ExportAuditEntries", "audit:read"),
    ("RepairService/CreditCheckup", "repair:manage"),
    ("RepairService/ApplyForRepair", "repair:manage"),
    ("RepairService/RecordCreditInterview", "repair:manage"),
    ("RepairService/DecideRepair", "repair:manage"),
    ("RepairService/GetRepairApplication", "repair:manage"),
    ("RepairService/ListRepairApplications", "repair:manage"),
    ("RepairService/ListRepairCandidates", "repair:manage"),
    (
        "SpotCheckService/BatchUpsertInspectors",
        "spotchecks:manage",
    ),
    ("SpotCheckService/ListInspectors", "spotchecks:manage"),
    ("SpotCheckService/CreateSpotCheckPlan", "spotchecks:manage"),
    ("SpotCheckService/DrawSpotCheckPlan", "spotchecks:manage"),
    ("SpotCheckService/GetSpotCheckPlan", "spotchecks:manage"),
    ("SpotCheckService/MergePlans", "spotchecks:manage"),
    (
        "SpotCheckService/RecordSpotCheckResult",
        "spotchecks:manage",
    ),
    ("SpotCheckService/VerifyDraw", "public"),
    ("SpotCheckService/ListPublishedResults", "public"),
];

#[tokio::test]
async fn every_rpc_needs_a_token_and_its_own_scope() {
    let app = spawn_app().await;
    let set =
        prost_types::FileDescriptorSet::decode(credit_hub::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == "credithub.v1") {
        for service in &file.service {
            for m in &service.method {
                methods.push((
                    format!("/credithub.v1.{}/{}", service.name(), m.name()),
                    m.server_streaming(),
                ));
            }
        }
    }
    assert!(methods.len() >= 24, "found {} RPCs", methods.len());
    let call = |path: String, streaming: bool, bearer: Option<Bearer>| {
        let channel = app.channel.clone();
        async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.unwrap();
            let mut req = tonic::Request::new(());
            if let Some(b) = bearer {
                req = tonic::service::Interceptor::call(&mut { b }, req).unwrap();
            }
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            let path = http::uri::PathAndQuery::try_from(path).unwrap();
            if streaming {
                match grpc.server_streaming(req, path, codec).await {
                    Ok(mut s) => s
                        .get_mut()
                        .message()
                        .await
                        .err()
                        .map_or(Code::Ok, |e| e.code()),
                    Err(e) => e.code(),
                }
            } else {
                grpc.unary(req, path, codec)
                    .await
                    .err()
                    .map_or(Code::Ok, |e| e.code())
            }
        }
    };
    // What each RPC needs, written out here rather than taken from the code under
    // test: a new RPC fails this test until its access is decided in both places.
    let expected: std::collections::BTreeMap<String, &str> = EXPECTED_ACCESS
        .iter()
        .map(|(m, s)| (format!("/credithub.v1.{m}"), *s))
        .collect();
    let served: BTreeSet<&String> = methods.iter().map(|(p, _)| p).collect();
    for m in expected.keys() {
        assert!(
            served.contains(m),
            "{m} is expected but not in the contract"
        );
    }
    for (path, streaming) in methods {
        let access = *expected
            .get(&path)
            .unwrap_or_else(|| panic!("{path} is new: decide its access in EXPECTED_ACCESS"));
        if access == "public" {
            assert!(
                credit_hub::auth::is_public(&path),
                "{path} should be public"
            );
            assert_ne!(
                call(path.clone(), streaming, None).await,
                Code::Unauthenticated,
                "{path} is public"
            );
            continue;
        }
        let scope = Scope::from_code(access).expect("a scope code");
        assert_eq!(required_scope(&path), Some(scope), "{path}'s scope");
        assert_eq!(
            call(path.clone(), streaming, None).await,
            Code::Unauthenticated,
            "{path} without a token"
        );
        assert_eq!(
            call(
                path.clone(),
                streaming,
                Some(Bearer::new("chub_forged").unwrap())
            )
            .await,
            Code::Unauthenticated,
            "{path} with a forged token"
        );
        let others: BTreeSet<Scope> = Scope::ALL.iter().copied().filter(|s| *s != scope).collect();
        let wrong = agency_with(&app, others, AgencyKind::MarketRegulation).await;
        assert_eq!(
            call(path.clone(), streaming, Some(wrong.clone())).await,
            Code::PermissionDenied,
            "{path} without {scope}"
        );
        // Whatever the body holds: refused for the scope even when it cannot decode.
        let garbage = crate::raw::call(
            app.channel.clone(),
            wrong,
            &path,
            streaming,
            bytes::Bytes::from_static(&[0xff, 0xff, 0xff]),
            std::time::Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            garbage.code(),
            Code::PermissionDenied,
            "{path} without {scope}, with a body that does not decode"
        );
        // The refusal is the handler's first act, before it reads or writes anything.
        assert_eq!(
            credit_hub::auth::scope_unchecked_calls(),
            0,
            "{path}'s handler answered a call refused for its scope without calling `caller`"
        );
    }
}

/// A call refused for its scope is audited with whom it asked about, so that "who
/// looked at this enterprise / this person" finds the refused attempts too.
#[tokio::test]
async fn a_call_refused_for_its_scope_is_audited_with_its_subjects() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    // A vetting office reads no grades; a court runs no cross-checks.
    let err = app
        .grades(AgencyKind::VettingOffice)
        .get_credit_grade(pb::GetCreditGradeRequest {
            name: format!("enterprises/{}", uscc(1)),
            purpose: pb::Purpose::JudicialEnforcement as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = pb::vetting_service_client::VettingServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::Court),
    )
    .cross_check(pb::CrossCheckRequest {
        purpose: pb::VettingPurpose::PartyMemberDevelopment as i32,
        case_reference: "2026-组织-009".into(),
        candidates: vec![pb::Candidate {
            name: "李四".into(),
            id_number: ID_B.into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let about_enterprise = app
        .audit_outcomes(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            method: "/credithub.v1.GradeService/GetCreditGrade".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(about_enterprise, ["PERMISSION_DENIED"]);
    let about_person = app
        .audit_outcomes(pb::ListAuditEntriesRequest {
            subject_person_id_number: ID_B.into(),
            method: "/credithub.v1.VettingService/CrossCheck".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(about_person, ["PERMISSION_DENIED"]);
}

#[tokio::test]
async fn look_ups_and_refusals_are_audited_and_the_chain_verifies() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    app.records(AgencyKind::Court)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "court-1".into(),
            records: vec![debtor(person("李四", ID_B), "d1")],
        })
        .await
        .unwrap();
    app.grades(AgencyKind::Court)
        .get_credit_grade(pb::GetCreditGradeRequest {
            name: format!("enterprises/{}", uscc(1)),
            purpose: pb::Purpose::JudicialEnforcement as i32,
            case_reference: "(2026)鲁1002执9号".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Refused: no records scope; and no token at all.
    let refused = app
        .records(AgencyKind::VettingOffice)
        .get_record(pb::GetRecordRequest {
            name: "records/x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    pb::registry_service_client::RegistryServiceClient::new(app.channel.clone())
        .get_enterprise(pb::GetEnterpriseRequest {
            name: format!("enterprises/{}", uscc(1)),
        })
        .await
        .unwrap_err();

    // A court cannot read the audit log; a supervisor with audit:read can.
    let err = auditor(&app, app.bearer(AgencyKind::Court))
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let supervisor = agency_with(
        &app,
        [Scope::AuditRead].into(),
        AgencyKind::MarketRegulation,
    )
    .await;
    let mut audit = auditor(&app, supervisor);

    let looked = audit
        .list_audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            method: "/credithub.v1.GradeService/GetCreditGrade".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(looked.len(), 1, "{looked:?}");
    let e = &looked[0];
    assert_eq!(
        e.agency,
        format!("agencies/{}", app.agency_ids[&AgencyKind::Court])
    );
    assert_eq!(e.purpose, pb::Purpose::JudicialEnforcement as i32);
    assert_eq!(e.case_reference, "(2026)鲁1002执9号");
    assert_eq!(e.outcome, "OK");
    assert_eq!(e.result_count, 1);
    assert_eq!(e.hash.len(), 64);

    // The person is found by ID number, stored only as a keyed hash.
    let by_person = audit
        .list_audit_entries(pb::ListAuditEntriesRequest {
            subject_person_id_number: ID_B.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(by_person.len(), 1);
    assert_eq!(by_person[0].request_id, "court-1");
    assert!(by_person[0].subjects[0].starts_with("persons/"));
    assert!(!by_person[0].subjects[0].contains(ID_B));

    let all = audit
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let outcomes: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.method.as_str(), e.outcome.as_str()))
        .collect();
    assert!(
        outcomes.contains(&("/credithub.v1.RecordService/GetRecord", "PERMISSION_DENIED")),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&(
            "/credithub.v1.RegistryService/GetEnterprise",
            "UNAUTHENTICATED"
        )),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&(
            "/credithub.v1.AuditService/ListAuditEntries",
            "PERMISSION_DENIED"
        )),
        "{outcomes:?}"
    );
    for pair in all.windows(2) {
        assert_eq!(pair[1].previous_hash, pair[0].hash);
        assert_eq!(pair[1].sequence, pair[0].sequence + 1);
    }

    // Exported entries are the same chain.
    let mut stream = audit
        .export_audit_entries(pb::ExportAuditEntriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut exported = 0;
    while let Some(m) = stream.message().await.unwrap() {
        assert_eq!(m.entry.unwrap().sequence, exported + 1);
        exported += 1;
    }
    assert!(exported >= all.len() as i64);
    // The export is accounted for by what it sent, not as a call that returned nothing.
    let exports = app
        .audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.AuditService/ExportAuditEntries".into(),
            ..Default::default()
        })
        .await;
    let counted: i64 = exports.iter().map(|e| e.result_count).sum();
    assert_eq!(counted, exported, "{exports:?}");

    let verified = app
        .store
        .verify_audit(&[])
        .await
        .unwrap()
        .expect("chain intact");
    assert!(verified.entries >= 8, "{verified:?}");
    let (ok, out) = verify_cli(&app).await;
    assert!(ok, "{out}");
    // No checkpoint signed yet on this running server: every entry is the chain's alone.
    if verified.last_checkpoint.is_none() {
        assert!(
            out.contains("entries 1 to ") && out.contains("after the last signed checkpoint"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn audit_verify_names_an_altered_or_deleted_entry() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_B)])
        .await;
    for n in [1, 2, 1, 2] {
        app.grade_of(n).await;
    }
    assert!(app.store.verify_audit(&[]).await.unwrap().is_ok());

    // One byte of one entry.
    raw_sql(
        &app,
        "UPDATE audit_entries SET result_count = result_count + 1 WHERE seq = 3",
    )
    .await;
    assert_eq!(
        app.store.verify_audit(&[]).await.unwrap(),
        Err(ChainBreak::Altered { seq: 3 })
    );
    let (ok, out) = verify_cli(&app).await;
    assert!(!ok);
    assert!(out.contains("audit entry 3 was altered"), "{out}");
    raw_sql(
        &app,
        "UPDATE audit_entries SET result_count = result_count - 1 WHERE seq = 3",
    )
    .await;
    assert!(app.store.verify_audit(&[]).await.unwrap().is_ok());

    // Altered into a value no release writes: still named, and a reader of the log is
    // told the stored data is damaged rather than given an internal error.
    raw_sql(
        &app,
        "UPDATE audit_entries SET purpose = COALESCE(purpose, '') || '#' WHERE seq = 3",
    )
    .await;
    assert!(
        matches!(
            app.store.verify_audit(&[]).await.unwrap(),
            Err(ChainBreak::Unreadable { seq: 3, ref why }) if why.contains("purpose")
        ),
        "{:?}",
        app.store.verify_audit(&[]).await
    );
    let (ok, out) = verify_cli(&app).await;
    assert!(!ok);
    assert!(out.contains("audit entry 3 was altered"), "{out}");
    let bearer = agency_with(
        &app,
        [Scope::AuditRead].into(),
        AgencyKind::MarketRegulation,
    )
    .await;
    let err = auditor(&app, bearer)
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .expect_err("damaged");
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    raw_sql(
        &app,
        "UPDATE audit_entries SET purpose = NULLIF(SUBSTR(purpose, 1, LENGTH(purpose) - 1), '') \
         WHERE seq = 3",
    )
    .await;
    assert!(app.store.verify_audit(&[]).await.unwrap().is_ok());

    // The "who looked at this enterprise" index is not covered by the hashes, so it is
    // checked against the entries: one row removed, or one row added.
    let subject = format!("enterprises/{}", uscc(1));
    let seq = count_sql(
        &app,
        &format!("SELECT MIN(seq) FROM audit_subjects WHERE subject = '{subject}'"),
    )
    .await;
    raw_sql(
        &app,
        &format!("DELETE FROM audit_subjects WHERE subject = '{subject}' AND seq = {seq}"),
    )
    .await;
    assert_eq!(
        app.store.verify_audit(&[]).await.unwrap(),
        Err(ChainBreak::SubjectIndex {
            seq,
            why: format!("a search for {subject} would not find it"),
        })
    );
    let (ok, out) = verify_cli(&app).await;
    assert!(!ok);
    assert!(
        out.contains(&format!("subject index of audit entry {seq} was altered")),
        "{out}"
    );
    raw_sql(
        &app,
        &format!("INSERT INTO audit_subjects (subject, seq) VALUES ('{subject}', {seq})"),
    )
    .await;
    assert!(app.store.verify_audit(&[]).await.unwrap().is_ok());
    raw_sql(
        &app,
        &format!(
            "INSERT INTO audit_subjects (subject, seq) VALUES ('persons/{}', 1)",
            "0".repeat(64)
        ),
    )
    .await;
    assert!(matches!(
        app.store.verify_audit(&[]).await.unwrap(),
        Err(ChainBreak::SubjectIndex { seq: 1, .. })
    ));
    raw_sql(
        &app,
        "DELETE FROM audit_subjects WHERE subject LIKE 'persons/0000%'",
    )
    .await;

    // One whole entry.
    raw_sql(&app, "DELETE FROM audit_entries WHERE seq = 2").await;
    assert_eq!(
        app.store.verify_audit(&[]).await.unwrap(),
        Err(ChainBreak::Missing {
            expected: 2,
            found: 3
        })
    );
    let (ok, out) = verify_cli(&app).await;
    assert!(!ok);
    assert!(out.contains("audit entry 2 is missing"), "{out}");
}

#[tokio::test]
async fn two_servers_on_one_database_extend_one_chain() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let (other, stop) = second_server(&app, |s| s).await;

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let channel = if i % 2 == 0 {
            app.channel.clone()
        } else {
            other.clone()
        };
        let bearer = app.bearer(AgencyKind::Tax);
        calls.spawn(async move {
            pb::registry_service_client::RegistryServiceClient::with_interceptor(channel, bearer)
                .get_enterprise(pb::GetEnterpriseRequest {
                    name: format!("enterprises/{}", uscc(1)),
                })
                .await
                .expect("answered");
        });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap();
    }
    let _ = stop.send(());
    let verified = app
        .store
        .verify_audit(&[])
        .await
        .unwrap()
        .expect("one unforked chain");
    assert!(verified.entries >= 201, "{verified:?}");
}

#[tokio::test]
async fn a_stopping_server_checkpoints_its_last_entries_before_it_closes_the_database() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    // Checkpoints at intervals would never come in this test: only the one at exit.
    let (other, stop) = second_server(&app, |s| {
        s.audit(credit_hub::audit::AuditSettings {
            checkpoint_every: std::time::Duration::from_secs(3600),
            ..Default::default()
        })
    })
    .await;
    pb::registry_service_client::RegistryServiceClient::with_interceptor(
        other,
        app.bearer(AgencyKind::Tax),
    )
    .get_enterprise(pb::GetEnterpriseRequest {
        name: format!("enterprises/{}", uscc(1)),
    })
    .await
    .expect("answered");
    let (head, _) = app.store.audit_head().await.unwrap();
    let _ = stop.send(());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if app.store.latest_audit_checkpoint().await.unwrap() == Some(head) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint of entry {head} after the server stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_purpose_outside_the_agency_kinds_list_is_refused_and_audited() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let err = app
        .grades(AgencyKind::Court)
        .get_credit_grade(pb::GetCreditGradeRequest {
            name: format!("enterprises/{}", uscc(1)),
            purpose: pb::Purpose::TaxAdministration as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "PURPOSE_NOT_PERMITTED"
    );
    assert!(
        err.message().contains("JUDICIAL_ENFORCEMENT"),
        "{}",
        err.message()
    );

    let supervisor = agency_with(
        &app,
        [Scope::AuditRead].into(),
        AgencyKind::MarketRegulation,
    )
    .await;
    let entries = auditor(&app, supervisor)
        .list_audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.GradeService/GetCreditGrade".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome, "PERMISSION_DENIED");
    assert_eq!(entries[0].purpose, pb::Purpose::TaxAdministration as i32);
}

#[tokio::test]
async fn an_agency_over_its_quota_is_refused_while_others_are_served() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let tax_id = &app.agency_ids[&AgencyKind::Tax];
    app.store
        .set_agency_rate_limit(tax_id, Some(5))
        .await
        .unwrap();
    let get = || pb::GetEnterpriseRequest {
        name: format!("enterprises/{}", uscc(1)),
    };
    let mut tax = app.registry(AgencyKind::Tax);
    let mut refused = None;
    for _ in 0..50 {
        if let Err(e) = tax.get_enterprise(get()).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("50 calls at once exceed 5 per second");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let retry = err.get_details_retry_info().expect("RetryInfo");
    assert!(retry
        .retry_delay
        .is_some_and(|d| d > std::time::Duration::ZERO));
    let quota = err.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, format!("agencies/{tax_id}"));

    // Meanwhile the court is untouched.
    let mut court = app.registry(AgencyKind::Court);
    for _ in 0..50 {
        court
            .get_enterprise(get())
            .await
            .expect("court is not limited");
    }
    // And the tax bureau is served again once its bucket refills.
    tokio::time::sleep(retry.retry_delay.unwrap() + std::time::Duration::from_millis(50)).await;
    tax.get_enterprise(get())
        .await
        .expect("served after the delay");
}

/// Writes waiting for the database each hold a call place: one agency may have only so
/// many waiting, beyond which its writes are refused at once (and write nothing),
/// while another agency's write is still taken.
#[tokio::test]
async fn one_agencys_burst_of_writes_cannot_fill_the_queue() {
    let app = spawn_app().await;
    app.register((1..=10).map(|n| enterprise(n, ID_A)).collect())
        .await;
    let (channel, stop) = second_server(&app, |s| s.max_queued_writes_per_agency(1)).await;
    let mut burst = tokio::task::JoinSet::new();
    for b in 0..12 {
        let (channel, bearer) = (channel.clone(), app.bearer(AgencyKind::MarketRegulation));
        burst.spawn(async move {
            pb::record_service_client::RecordServiceClient::with_interceptor(channel, bearer)
                .batch_submit_records(pb::BatchSubmitRecordsRequest {
                    request_id: format!("burst-{b}"),
                    records: (0..1000)
                        .map(|i| penalty(&uscc(i % 10 + 1), &format!("B-{b}-{i}")))
                        .collect(),
                })
                .await
        });
    }
    // Another agency's write during the burst is queued, not refused.
    pb::record_service_client::RecordServiceClient::with_interceptor(
        channel.clone(),
        app.bearer(AgencyKind::Court),
    )
    .batch_submit_records(pb::BatchSubmitRecordsRequest {
        request_id: "court-during-burst".into(),
        records: vec![debtor(person("李四", ID_B), "D-burst")],
    })
    .await
    .expect("another agency's write is taken");
    let (mut written, mut refused) = (0, 0);
    while let Some(r) = burst.join_next().await {
        match r.unwrap() {
            Ok(_) => written += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.get_details_retry_info().is_some());
                assert_eq!(e.get_details_error_info().unwrap().reason, "OVERLOADED");
                assert!(e.message().contains("already arriving or waiting"), "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(
        written > 0 && refused > 0,
        "written {written}, refused {refused}"
    );
    assert_eq!(
        app.store.count_records().await.unwrap(),
        written * 1000 + 1,
        "a refused batch wrote nothing"
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn beyond_its_capacity_the_server_sheds_calls_but_never_health() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let (channel, stop) = second_server(&app, |s| {
        s.max_concurrent_calls(1)
            .shed_summary_every(std::time::Duration::from_millis(200))
    })
    .await;

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (channel, bearer) = (channel.clone(), app.bearer(AgencyKind::Tax));
        calls.spawn(async move {
            pb::registry_service_client::RegistryServiceClient::with_interceptor(channel, bearer)
                .get_enterprise(pb::GetEnterpriseRequest {
                    name: format!("enterprises/{}", uscc(1)),
                })
                .await
        });
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let probe = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(probe.is_ok(), "health is never shed: {probe:?}");
    let (mut served, mut shed) = (0, 0);
    while let Some(r) = calls.join_next().await {
        match r.unwrap() {
            Ok(_) => served += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.get_details_retry_info().is_some());
                assert_eq!(e.get_details_error_info().unwrap().reason, "OVERLOADED");
                shed += 1;
            }
        }
    }
    assert!(served > 0 && shed > 0, "served {served}, shed {shed}");

    // The shed calls have no entries of their own, but summaries account for each.
    let method = "/credithub.v1.RegistryService/GetEnterprise";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let summarised = loop {
        let summaries: Vec<pb::AuditEntry> = app
            .audit_entries(pb::ListAuditEntriesRequest {
                method: method.into(),
                ..Default::default()
            })
            .await
            .into_iter()
            .filter(|e| e.request_id == credit_hub::overload::SHED_SUMMARY_ID)
            .collect();
        let total: i64 = summaries.iter().map(|e| e.result_count).sum();
        if total >= shed || std::time::Instant::now() > deadline {
            for e in &summaries {
                assert_eq!(e.outcome, "RESOURCE_EXHAUSTED");
                assert_eq!(e.agency, "");
            }
            break total;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(summarised, shed, "every shed call is in a summary, once");
    let _ = stop.send(());
}

#[tokio::test]
async fn past_the_callers_deadline_the_work_stops_and_nothing_is_written() {
    let app = spawn_app().await;
    app.register((1..=1000).map(|n| enterprise(n, ID_A)).collect())
        .await;
    let batch = pb::BatchSubmitRecordsRequest {
        request_id: "deadline-batch-1".into(),
        records: (1..=1000)
            .map(|n| penalty(&uscc(n), &format!("p-{n}")))
            .collect(),
    };
    let mut hurried = tonic::Request::new(batch.clone());
    hurried.set_timeout(std::time::Duration::from_millis(20));
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(hurried)
        .await
        .unwrap_err();
    // The client gives up at its deadline (tonic reports that as CANCELLED, other
    // stacks as DEADLINE_EXCEEDED); the server's own answer comes just before it.
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );

    // The batch was stopped, not left running: nothing appears afterwards either.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(app.store.count_records().await.unwrap(), 0);
    let mut auditor = auditor(
        &app,
        agency_with(
            &app,
            [Scope::AuditRead].into(),
            AgencyKind::MarketRegulation,
        )
        .await,
    );
    // The abandoned batch's last statement and rollback may still hold SQLite's one write
    // connection on a slow machine; UNAVAILABLE says "retry later", so the test does.
    let mut attempts = 0;
    let audited = loop {
        let listed = auditor
            .list_audit_entries(pb::ListAuditEntriesRequest {
                method: "/credithub.v1.RecordService/BatchSubmitRecords".into(),
                ..Default::default()
            })
            .await;
        match listed {
            Err(status) if status.code() == Code::Unavailable && attempts < 10 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            other => break other.unwrap().into_inner().entries,
        }
    };
    // Which comes first, the server's timer or the client's reset of the stream, decides
    // the outcome recorded; either way the abandoned attempt is on the record.
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(
        ["DEADLINE_EXCEEDED", "CANCELLED"].contains(&audited[0].outcome.as_str()),
        "{audited:?}"
    );

    // The same request with time to finish is applied in full.
    let done = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(batch)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.records.len(), 1000);
    assert_eq!(app.store.count_records().await.unwrap(), 1000);
}

/// A client command whose reader has gone (`… | head`) exits quietly, not with a panic.
#[tokio::test]
async fn a_command_writing_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let database = process_database(dir.path()).await;
    let bin = env!("CARGO_BIN_EXE_credit-hub");
    let added = std::process::Command::new(bin)
        .args(["agency", "add", "--name", "pipe court", "--kind", "court"])
        .args(&database.args)
        .output()
        .unwrap();
    assert!(added.status.success());
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let listed = std::process::Command::new(bin)
        .args(["agency", "list"])
        .args(&database.args)
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(listed.status.success(), "{:?} {stderr}", listed.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Commands that work on an existing service refuse a mistyped data directory rather
/// than create an empty database there (and print a token nobody's server knows),
/// `migrate` says whether it applied anything, and `audit verify` refuses a key it could
/// not trust.
#[tokio::test]
async fn database_commands_refuse_a_missing_database_and_a_malformed_key() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("dta");
    let bin = env!("CARGO_BIN_EXE_credit-hub");
    for args in [
        &["agency", "add", "--name", "typo court", "--kind", "court"][..],
        &["agency", "list"],
        &["audit", "verify"],
        &["regrade", "--due"],
    ] {
        let out = std::process::Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(&typo)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert!(stderr.contains("no credit-hub database in"), "{stderr}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // `migrate` is the command that creates one, and says what it did.
    let migrate = |args: &[std::ffi::OsString]| {
        let out = std::process::Command::new(bin)
            .arg("migrate")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let fresh = [std::ffi::OsString::from("--data-dir"), typo.clone().into()];
    assert!(migrate(&fresh).contains("created the database schema (migrations 1 to"));
    assert!(migrate(&fresh).contains("the database is up to date"));
    let database = process_database(dir.path()).await;
    assert!(migrate(&database.args).contains("the database is up to date"));
    let out = std::process::Command::new(bin)
        .args(["audit", "verify", "--trust-key", "abcd"])
        .args(&database.args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("64 characters"), "{stderr}");
}

/// An entry appended straight to the store by a test.
fn test_entry(request_id: &str, subjects: Vec<String>) -> credit_hub::domain::audit::AuditEvent {
    credit_hub::domain::audit::AuditEvent {
        time: 1,
        agency: "test".into(),
        method: "/credithub.v1.Test/Append".into(),
        request_id: request_id.into(),
        subjects,
        purpose: None,
        case_reference: String::new(),
        outcome: "OK".into(),
        result_count: 0,
    }
}

/// Appends `group` after `head`, which must still be the chain's head; the new head.
async fn append_after(
    app: &TestApp,
    head: &(i64, String),
    group: &[credit_hub::domain::audit::AuditEvent],
) -> (i64, String) {
    app.store
        .append_audit(head, group)
        .await
        .unwrap()
        .expect("appended after the chain's head")
}

/// Request ids of the entries the subject index finds for `subject`, oldest first.
async fn entries_about(app: &TestApp, subject: &str) -> Vec<String> {
    let filter = credit_hub::store::AuditFilter {
        subject: Some(subject.to_string()),
        ..Default::default()
    };
    app.store
        .list_audit(&filter, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.request_id)
        .collect()
}

/// A writer whose head is stale (another process appended since) writes nothing and
/// is told so; chained after the true head, the same group lands and the chain and the
/// subject index both hold it.
#[tokio::test]
async fn an_append_after_a_stale_head_writes_nothing_and_the_chain_stays_whole() {
    let app = spawn_app().await;
    let subject = format!("enterprises/{}", uscc(42));
    let stale = app.store.audit_head().await.unwrap();
    let first = append_after(&app, &stale, &[test_entry("first", vec![subject.clone()])]).await;
    assert_eq!(first.0, stale.0 + 1);
    let late = vec![test_entry("late", vec![subject.clone(), subject.clone()])];
    assert_eq!(app.store.append_audit(&stale, &late).await.unwrap(), None);
    assert_eq!(app.store.audit_head().await.unwrap(), first);
    let second = append_after(&app, &first, &late).await;
    assert_eq!(second.0, first.0 + 1);
    app.store
        .verify_audit(&[])
        .await
        .unwrap()
        .expect("one unbroken chain");
    let found = entries_about(&app, &subject).await;
    assert_eq!(
        found,
        ["first", "late"],
        "each entry indexed once per subject"
    );
}

/// An append whose commit reported failure may still have landed; before chaining the
/// group again the writer asks whether it did. Only the group itself, chained right
/// after the head it was given, counts as landed: not another call's entry there, and
/// not the same group when nothing follows that head.
/// An append whose commit reported failure is known to have landed by its own
/// writer's mark alone: an identical entry that another replica chained after the same
/// head (the same agency's same look-up in the same millisecond) is not this one.
#[tokio::test]
async fn a_group_is_known_to_have_landed_only_by_its_own_writers_mark() {
    let app = spawn_app().await;
    let replica = app.open_again().await;
    let subject = format!("enterprises/{}", uscc(43));
    let same = vec![test_entry("", vec![subject.clone()])];
    let head = app.store.audit_head().await.unwrap();
    assert!(!app.store.audit_group_landed(&head, 1).await.unwrap());

    replica
        .append_audit(&head, &same)
        .await
        .unwrap()
        .expect("the replica extends the head");
    assert!(
        !app.store.audit_group_landed(&head, 1).await.unwrap(),
        "another replica's identical entry is not this writer's"
    );
    assert!(replica.audit_group_landed(&head, 1).await.unwrap());

    let after = app.store.audit_head().await.unwrap();
    let group = vec![same[0].clone(), test_entry("", vec![subject])];
    let new_head = append_after(&app, &after, &group).await;
    assert!(app.store.audit_group_landed(&after, 2).await.unwrap());
    assert!(!app.store.audit_group_landed(&after, 1).await.unwrap());
    assert!(!app.store.audit_group_landed(&new_head, 2).await.unwrap());
    assert!(!replica.audit_group_landed(&after, 2).await.unwrap());
    app.store
        .verify_audit(&[])
        .await
        .unwrap()
        .expect("one unbroken chain");
}

/// A group whose entries name more subjects than one index statement holds (a
/// cross-check of thousands of candidates) is indexed whole: every subject of every
/// entry finds its entry, and nothing else does.
#[tokio::test]
async fn a_group_naming_thousands_of_subjects_indexes_every_one() {
    let app = spawn_app().await;
    let person = |n: usize| format!("persons/{n:064x}");
    let group = [
        test_entry("big", (0..9_000).map(person).collect()),
        test_entry("small", vec![person(3), person(9_500)]),
        test_entry("none", Vec::new()),
    ];
    let head = app.store.audit_head().await.unwrap();
    let new_head = append_after(&app, &head, &group).await;
    assert_eq!(new_head.0, head.0 + 3);
    assert_eq!(entries_about(&app, &person(0)).await, ["big"]);
    assert_eq!(entries_about(&app, &person(3)).await, ["big", "small"]);
    assert_eq!(
        entries_about(&app, &person(8_999)).await,
        ["big"],
        "past the first statement"
    );
    assert_eq!(entries_about(&app, &person(9_500)).await, ["small"]);
    assert!(entries_about(&app, &person(9_000)).await.is_empty());
    app.store
        .verify_audit(&[])
        .await
        .unwrap()
        .expect("one unbroken chain");
}

/// How many rows `sql` (a `SELECT COUNT(*) …`) counts in the test's database.
/// `audit verify` against a server that keeps appending: what it reads is the chain
/// up to the head it found, consistent whatever is appended while it reads.
#[tokio::test]
async fn audit_verify_passes_while_the_server_keeps_appending() {
    let app = spawn_app().await;
    app.register((1..=8).map(|n| enterprise(n, ID_A)).collect())
        .await;
    // Enough entries (12,000) that verification reads the chain in several pages.
    let mut filling = tokio::task::JoinSet::new();
    for n in 0..16u32 {
        let mut grades = app.grades(AgencyKind::Court);
        filling.spawn(async move {
            for _ in 0..750 {
                grades
                    .get_credit_grade(pb::GetCreditGradeRequest {
                        name: format!("enterprises/{}", uscc(1 + n % 8)),
                        purpose: pb::Purpose::JudicialEnforcement as i32,
                        ..Default::default()
                    })
                    .await
                    .expect("grade");
            }
        });
    }
    while let Some(done) = filling.join_next().await {
        done.unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8u32)
        .map(|n| {
            let (mut grades, stop) = (app.grades(AgencyKind::Court), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    grades
                        .get_credit_grade(pb::GetCreditGradeRequest {
                            name: format!("enterprises/{}", uscc(1 + n)),
                            purpose: pb::Purpose::JudicialEnforcement as i32,
                            ..Default::default()
                        })
                        .await
                        .expect("grade");
                }
            })
        })
        .collect();
    for _ in 0..5 {
        let verified = app.store.verify_audit(&[]).await.unwrap();
        assert!(verified.is_ok(), "{verified:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
}

/// During a rolling upgrade a replica of the release before migration 0014 still
/// appends with its old statement and relies on the subject trigger to index what it
/// appends; this release's writer indexes its own entries, and the trigger stands aside
/// for it. Both kinds of append leave every entry found by its subjects, once.
#[tokio::test]
async fn an_earlier_releases_appends_are_still_indexed_during_a_rolling_upgrade() {
    if backend() != "postgres" {
        // The trigger and the earlier statement are PostgreSQL's.
        eprintln!("PostgreSQL only: not run on {}", backend());
        return;
    }
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_B)])
        .await;
    app.grade_of(1).await;
    // The earlier release's append: one entry about enterprise 2, chained after the
    // head, on a connection that does not say it indexes subjects itself.
    let (seq, previous) = app.store.audit_head().await.unwrap();
    let subject = format!("enterprises/{}", uscc(2));
    let event = credit_hub::domain::audit::AuditEvent {
        time: 1_764_590_000_000,
        agency: "earlier-release".into(),
        method: "/credithub.v1.GradeService/GetCreditGrade".into(),
        request_id: "rolling-upgrade".into(),
        subjects: vec![subject.clone()],
        purpose: None,
        case_reference: String::new(),
        outcome: "OK".into(),
        result_count: 1,
    };
    let hash = credit_hub::domain::audit::entry_hash(seq + 1, &event, &previous);
    let row = serde_json::json!([{
        "seq": seq + 1,
        "time": event.time,
        "agency": event.agency,
        "method": event.method,
        "request_id": event.request_id,
        "subjects": serde_json::to_string(&event.subjects).unwrap(),
        "purpose": null,
        "case_reference": "",
        "outcome": "OK",
        "result_count": 1,
        "previous_hash": previous,
        "hash": hash,
    }]);
    raw_sql(
        &app,
        &format!(
            "INSERT INTO audit_entries (seq, time, agency, method, request_id, subjects, \
             purpose, case_reference, outcome, result_count, previous_hash, hash) \
             SELECT seq, time, agency, method, request_id, subjects, purpose, case_reference, \
             outcome, result_count, previous_hash, hash \
             FROM json_populate_recordset(NULL::audit_entries, '{row}'::json)"
        ),
    )
    .await;
    let indexed = |seq: i64| {
        format!("SELECT COUNT(*) FROM audit_subjects WHERE subject = '{subject}' AND seq = {seq}")
    };
    assert_eq!(count_sql(&app, &indexed(seq + 1)).await, 1);
    // This release's writer carries on after it, indexing its own entries once.
    app.grade_of(2).await;
    let (head, _) = app.store.audit_head().await.unwrap();
    assert!(head > seq + 1);
    assert_eq!(
        count_sql(
            &app,
            &format!(
                "SELECT COUNT(*) FROM audit_subjects WHERE subject = '{subject}' AND seq > {}",
                seq + 1
            )
        )
        .await,
        1
    );
    assert!(app.store.verify_audit(&[]).await.unwrap().is_ok());
}

/// Waits (at most 10 s) until no saved audit entry is left unchained.
async fn saved_entries_chained(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count_sql(app, "SELECT COUNT(*) FROM audit_pending WHERE chained = 0").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "saved entries left unchained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Entries of BatchSubmitRecords calls with `request_id`, through the audit API.
async fn submit_entries(app: &TestApp, request_id: &str) -> Vec<pb::AuditEntry> {
    let supervisor =
        agency_with(app, [Scope::AuditRead].into(), AgencyKind::MarketRegulation).await;
    let entries = auditor(app, supervisor)
        .list_audit_entries(pb::ListAuditEntriesRequest {
            method: "/credithub.v1.RecordService/BatchSubmitRecords".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    entries
        .into_iter()
        .filter(|e| e.request_id == request_id)
        .collect()
}

/// A write and its audit entry commit together. Normally the entry saved with the write
/// is removed as the call's own entry is chained. When the append fails after the write
/// committed (here: the audit table refuses inserts; in life, the process dies in
/// between), the caller hears UNAVAILABLE, the records stay written, and the saved entry
/// is chained once the log can be written again: once, and the chain verifies.
#[tokio::test]
async fn a_committed_write_is_chained_even_when_its_own_append_failed() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_B)])
        .await;
    let (other, stop) = second_server(&app, |s| {
        s.audit(credit_hub::audit::AuditSettings {
            checkpoint_every: std::time::Duration::from_millis(100),
            orphan_after: std::time::Duration::ZERO,
            ..Default::default()
        })
    })
    .await;
    let mut records = pb::record_service_client::RecordServiceClient::with_interceptor(
        other,
        app.bearer(AgencyKind::MarketRegulation),
    );

    records
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "written-and-chained".into(),
            records: vec![penalty(&uscc(1), "p1")],
        })
        .await
        .unwrap();
    let normal = submit_entries(&app, "written-and-chained").await;
    assert_eq!(normal.len(), 1, "{normal:?}");
    assert_eq!(normal[0].outcome, "OK");
    assert_eq!(
        count_sql(&app, "SELECT COUNT(*) FROM audit_pending").await,
        0,
        "the group commit removed the saved entry"
    );

    if backend() == "postgres" {
        raw_sql(
            &app,
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$",
        )
        .await;
        raw_sql(
            &app,
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries \
             FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit()",
        )
        .await;
    } else {
        raw_sql(
            &app,
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries \
             BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END",
        )
        .await;
    }
    let refused = records
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "written-not-chained".into(),
            records: vec![penalty(&uscc(2), "p2")],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let written = format!(
        "SELECT COUNT(*) FROM records WHERE subject_key = '{}'",
        uscc(2)
    );
    assert_eq!(
        count_sql(&app, &written).await,
        1,
        "the write itself committed"
    );
    assert_eq!(
        count_sql(&app, "SELECT COUNT(*) FROM audit_pending").await,
        1,
        "its entry is saved, not lost"
    );

    if backend() == "postgres" {
        raw_sql(&app, "DROP TRIGGER refuse_audit ON audit_entries").await;
    } else {
        raw_sql(&app, "DROP TRIGGER refuse_audit").await;
    }
    saved_entries_chained(&app).await;
    let recovered = submit_entries(&app, "written-not-chained").await;
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let e = &recovered[0];
    assert_eq!(e.outcome, "OK");
    assert_eq!(
        e.agency,
        format!("agencies/{}", app.agency_ids[&AgencyKind::MarketRegulation])
    );
    assert_eq!(e.subjects, [format!("enterprises/{}", uscc(2))]);
    assert_eq!(e.result_count, 1);

    // The caller's retry replays the stored answer and is accounted for as itself.
    records
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "written-not-chained".into(),
            records: vec![penalty(&uscc(2), "p2")],
        })
        .await
        .unwrap();
    assert_eq!(submit_entries(&app, "written-not-chained").await.len(), 2);
    assert_eq!(
        count_sql(&app, &written).await,
        1,
        "the retry wrote nothing twice"
    );
    stop.send(()).ok();
    let (ok, out) = verify_cli(&app).await;
    assert!(ok, "{out}");
}

/// Two replicas that each chain saved entries as soon as they see them, while both take
/// writes: an entry claimed by the other replica's recovery is skipped by its own
/// group, so every write is in the one chain exactly once.
#[tokio::test]
async fn replicas_recovering_saved_entries_under_writes_chain_each_write_once() {
    let app = spawn_app().await;
    app.register((1..=4).map(|n| enterprise(n, ID_A)).collect())
        .await;
    let eager = || credit_hub::audit::AuditSettings {
        checkpoint_every: std::time::Duration::from_millis(5),
        orphan_after: std::time::Duration::ZERO,
        ..Default::default()
    };
    let (one, stop_one) = second_server(&app, |s| s.audit(eager())).await;
    let (two, stop_two) = second_server(&app, |s| s.audit(eager())).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..60u32 {
        let channel = if i % 2 == 0 { one.clone() } else { two.clone() };
        let bearer = app.bearer(AgencyKind::MarketRegulation);
        calls.spawn(async move {
            pb::record_service_client::RecordServiceClient::with_interceptor(channel, bearer)
                .batch_submit_records(pb::BatchSubmitRecordsRequest {
                    request_id: format!("w{i}"),
                    records: vec![penalty(&uscc(i % 4 + 1), &format!("p{i}"))],
                })
                .await
                .expect("answered");
        });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap();
    }
    saved_entries_chained(&app).await;
    // Each replica checks the other's entries before it signs a head after them.
    let (head, _) = app.store.audit_head().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while last_checkpoint(&app).await < head {
        assert!(
            std::time::Instant::now() < deadline,
            "the head was never signed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = (stop_one.send(()), stop_two.send(()));
    let chained = count_sql(
        &app,
        "SELECT COUNT(*) FROM audit_entries \
         WHERE method = '/credithub.v1.RecordService/BatchSubmitRecords'",
    )
    .await;
    let distinct = count_sql(
        &app,
        "SELECT COUNT(DISTINCT request_id) FROM audit_entries \
         WHERE method = '/credithub.v1.RecordService/BatchSubmitRecords'",
    )
    .await;
    // The registration in spawn_app's helper is a registry call, not a submission.
    assert_eq!((chained, distinct), (60, 60));
    app.store
        .verify_audit(&[])
        .await
        .unwrap()
        .expect("one unforked chain");
}

/// A call dropped while its write was committing claims the entry it saved before that
/// commit has landed. The claim waits for the write's transaction, then takes the saved
/// entry, so it is not left behind to be chained a second time.
#[tokio::test]
async fn a_claim_waits_for_a_write_still_committing_and_takes_its_saved_entry() {
    let app = spawn_app().await;
    sqlx::any::install_default_drivers();
    let mut writer = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    let begin = if backend() == "postgres" {
        "BEGIN"
    } else {
        "BEGIN IMMEDIATE"
    };
    sqlx::query(begin).execute(&mut writer).await.unwrap();
    // Saved just now, so that the writer's orphan pass (at its start, and each minute)
    // leaves it to the claim.
    sqlx::query(&format!(
        "INSERT INTO audit_pending (call_id, time, agency, method, request_id, subjects, \
         purpose, case_reference, result_count, saved_at) \
         VALUES ('in-flight', 1, 'agencies/a', '/m', 'r', '[]', NULL, '', 1, {})",
        credit_hub::store::now_millis()
    ))
    .execute(&mut writer)
    .await
    .unwrap();

    let store = app.store.clone();
    let claim = tokio::spawn(async move {
        let head = store.audit_head().await.unwrap();
        let mut chaining = None;
        let appended = store
            .append_audit_claiming(
                &head,
                &[test_entry("dropped-mid-commit", vec![])],
                &[Some("in-flight".to_string())],
                &mut chaining,
            )
            .await;
        assert_eq!(chaining, Some(1));
        appended
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    claim
        .await
        .unwrap()
        .unwrap()
        .expect("appended after the head");
    assert_eq!(
        count_sql(&app, "SELECT COUNT(*) FROM audit_pending").await,
        0,
        "the saved entry was claimed, not left for recovery"
    );
    let chained = count_sql(
        &app,
        "SELECT COUNT(*) FROM audit_entries WHERE request_id = 'dropped-mid-commit'",
    )
    .await;
    assert_eq!(chained, 1);
}

#[tokio::test]
async fn an_audit_time_filter_out_of_range_is_refused_not_overflowed() {
    let app = spawn_app().await;
    let bearer = agency_with(
        &app,
        BTreeSet::from([Scope::AuditRead]),
        AgencyKind::MarketRegulation,
    )
    .await;
    let err = auditor(&app, bearer)
        .list_audit_entries(pb::ListAuditEntriesRequest {
            start_time: Some(prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 999_999_999,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["start_time", "end_time"]);
}

/// A group holding an entry an orphan pass already chained chains one entry fewer, and
/// says so: a writer whose commit failed ambiguously asks whether that many landed
/// (asking about the whole group would find it had not, and chain it all again).
#[tokio::test]
async fn a_claiming_append_reports_how_many_entries_it_chained() {
    let app = spawn_app().await;
    // Saved just now: the writer forgets chained entries a day after they were saved.
    raw_sql(
        &app,
        &format!(
            "INSERT INTO audit_pending (call_id, time, agency, method, request_id, subjects, \
             purpose, case_reference, result_count, saved_at, chained) \
             VALUES ('recovered', 1, 'agencies/a', '/m', 'r', '[]', NULL, '', 1, {}, 1)",
            credit_hub::store::now_millis()
        ),
    )
    .await;
    let head = app.store.audit_head().await.unwrap();
    let mut chaining = None;
    app.store
        .append_audit_claiming(
            &head,
            &[
                test_entry("already-chained", vec![]),
                test_entry("fresh", vec![]),
            ],
            &[Some("recovered".to_string()), None],
            &mut chaining,
        )
        .await
        .unwrap()
        .expect("appended after the head");
    assert_eq!(chaining, Some(1));
    assert!(app.store.audit_group_landed(&head, 1).await.unwrap());
    assert!(!app.store.audit_group_landed(&head, 2).await.unwrap());
    assert_eq!(
        count_sql(
            &app,
            "SELECT COUNT(*) FROM audit_entries WHERE request_id = 'already-chained'"
        )
        .await,
        0
    );
}

/// While the writer is held up (its table locked) and its queue is full, calls that give
/// up at their deadline are answered, and each one's entry is still written once the
/// writer can go on: the queue's being full loses nothing.
#[tokio::test]
async fn entries_of_calls_that_give_up_while_the_queue_is_full_are_still_written() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    app.grade_of(1).await;
    let (channel, stop) = second_server(&app, |s| {
        s.audit(credit_hub::audit::AuditSettings {
            queue: 1,
            ..Default::default()
        })
    })
    .await;
    let method = "/credithub.v1.GradeService/GetCreditGrade";
    let count = |outcome: &str| {
        format!(
            "SELECT COUNT(*) FROM audit_entries WHERE method = '{method}' AND outcome = '{outcome}'"
        )
    };
    let before = count_sql(&app, &count("OK")).await;

    // Another connection holds the audit table: the writer's next group waits for it.
    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    let hold = if backend() == "postgres" {
        "BEGIN; LOCK TABLE audit_entries IN EXCLUSIVE MODE"
    } else {
        "BEGIN IMMEDIATE"
    };
    sqlx::raw_sql(hold).execute(&mut holder).await.unwrap();

    const CALLS: i64 = 6;
    let grades = pb::grade_service_client::GradeServiceClient::with_interceptor(
        channel,
        app.bearer(AgencyKind::Court),
    );
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        let mut grades = grades.clone();
        calls.spawn(async move {
            let mut request = tonic::Request::new(pb::GetCreditGradeRequest {
                name: format!("enterprises/{}", uscc(1)),
                purpose: pb::Purpose::JudicialEnforcement as i32,
                ..Default::default()
            });
            request.set_timeout(std::time::Duration::from_millis(300));
            grades.get_credit_grade(request).await
        });
    }
    let answers: Vec<_> = calls.join_all().await;
    assert!(
        answers.iter().all(Result::is_err),
        "no call is answered before its entry is durable"
    );
    // Those the server answered (rather than the client's own deadline) say so in a
    // second entry: the first, queued before, says what they would have answered.
    let refused = answers
        .iter()
        .filter(|a| a.as_ref().is_err_and(|e| e.code() == Code::Unavailable))
        .count() as i64;

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    holder.close().await.ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut written, mut noted) = (0, 0);
    while std::time::Instant::now() < deadline {
        written = count_sql(&app, &count("OK")).await - before;
        noted = count_sql(&app, &count("UNAVAILABLE")).await;
        if written >= CALLS && noted >= refused {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(written, CALLS, "every call's entry was written");
    // A call whose client gave up by its own clock, just after the server answered,
    // has its refusal noted too.
    assert!(
        refused <= noted && noted <= CALLS,
        "every refusal after queueing was noted: {refused} answered, {noted} noted"
    );
    let _ = stop.send(());
    assert!(app.store.verify_audit(&[]).await.unwrap().is_ok());
}

/// With SQLite and no key file, the checkpoint key is generated into the data
/// directory. `audit verify` checks against it, but says that a key kept beside the
/// database proves nothing against whoever could rewrite the database (who could read
/// it and re-sign, whatever key the verifier is told to trust too), and where to keep it.
#[tokio::test]
async fn audit_verify_says_a_key_beside_the_data_is_no_proof_against_its_reader() {
    if backend() != "sqlite" {
        return; // With PostgreSQL the key always comes from a file the operator gives.
    }
    let app = spawn_app().await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    std::fs::write(
        app.data_dir.join("audit-signing.key"),
        hex::encode(key.to_bytes()),
    )
    .unwrap();
    let (other, stop) = second_server(&app, |s| {
        s.audit(credit_hub::audit::AuditSettings {
            signing_key: key.clone(),
            checkpoint_every: std::time::Duration::from_millis(50),
            ..Default::default()
        })
    })
    .await;
    app.register(vec![enterprise(1, ID_A)]).await;
    pb::registry_service_client::RegistryServiceClient::with_interceptor(
        other,
        app.bearer(AgencyKind::Court),
    )
    .get_enterprise(pb::GetEnterpriseRequest {
        name: format!("enterprises/{}", uscc(1)),
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count_sql(&app, "SELECT COUNT(*) FROM audit_checkpoints").await == 0 {
        assert!(std::time::Instant::now() < deadline, "no checkpoint signed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let public = credit_hub::audit::public_key_hex(&key);
    let (ok, out) = verify_cli(&app).await;
    assert!(ok, "{out}");
    assert!(out.contains("beside the database"), "{out}");
    assert!(out.contains("--audit-key-file"), "{out}");
    let trusted = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["audit", "verify", "--trust-key", &public])
        .args(app.storage_flags())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&trusted.stderr);
    assert!(trusted.status.success(), "{said}");
    assert!(said.contains("beside the database"), "{said}");
    // Kept in a file of its own elsewhere, the key is no longer beside the data.
    let elsewhere = tempfile::tempdir().unwrap();
    let key_file = elsewhere.path().join("audit.key");
    std::fs::rename(app.data_dir.join("audit-signing.key"), &key_file).unwrap();
    let apart = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["audit", "verify", "--audit-key-file"])
        .arg(&key_file)
        .args(app.storage_flags())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&apart.stderr);
    assert!(apart.status.success(), "{said}");
    assert!(!said.contains("warning"), "{said}");
    // With no key to trust, signed checkpoints prove nothing: unverified, not intact.
    let untrusted = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["audit", "verify"])
        .args(app.storage_flags())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success(), "{said}");
    assert!(said.contains("no trusted key"), "{said}");

    // Every checkpoint deleted (as whoever rewrote the whole chain would): with a key
    // named, the chain is unverified, not intact.
    let mut conn = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    sqlx::query("DELETE FROM audit_checkpoints")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let stripped = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["audit", "verify", "--audit-key-file"])
        .arg(&key_file)
        .args(app.storage_flags())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&stripped.stderr);
    assert!(!stripped.status.success(), "{said}");
    assert!(said.contains("no signed checkpoint"), "{said}");
}

/// The newest checkpoint's entry, or 0.
async fn last_checkpoint(app: &TestApp) -> i64 {
    count_sql(app, "SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints").await
}

/// An entry written straight into the table, not by a writer, is never signed. The
/// writer that finds the head moved under it carries on after the new head (its calls
/// are answered), but checks the entries it did not chain before it signs again, and
/// the forged one fails that check.
#[tokio::test]
async fn an_entry_forged_into_the_table_is_never_signed() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    // Served here rather than by `second_server`, to wait for its shutdown (and last
    // checkpoint) to end.
    let server = Server::bind(app.open_again().await, app.keyer.clone(), "127.0.0.1:0")
        .await
        .unwrap()
        .audit(credit_hub::audit::AuditSettings {
            checkpoint_every: std::time::Duration::from_millis(20),
            ..Default::default()
        });
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(
        async {
            stopped.await.ok();
        },
        credit_hub::ShutdownPolicy::default(),
    ));
    let mut registry = pb::registry_service_client::RegistryServiceClient::with_interceptor(
        channel_to(addr).await,
        app.bearer(AgencyKind::MarketRegulation),
    );
    let look = pb::GetEnterpriseRequest {
        name: format!("enterprises/{}", uscc(1)),
    };
    registry.get_enterprise(look.clone()).await.unwrap();
    let (honest, _) = app.store.audit_head().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while last_checkpoint(&app).await < honest {
        assert!(
            std::time::Instant::now() < deadline,
            "the head was never signed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let forged = honest + 1;
    raw_sql(
        &app,
        &format!(
            "INSERT INTO audit_entries (seq, time, agency, method, request_id, subjects, \
             purpose, case_reference, outcome, result_count, previous_hash, hash) \
             VALUES ({forged}, 1764590000000, 'forger', 'forged', '', '[]', NULL, '', 'OK', 0, \
             '{zeros}', '{zeros}')",
            zeros = "0".repeat(64)
        ),
    )
    .await;
    for _ in 0..3 {
        registry.get_enterprise(look.clone()).await.unwrap();
    }
    let (head, _) = app.store.audit_head().await.unwrap();
    assert!(
        head > forged,
        "the writer carried on after the forged entry"
    );
    // Many checkpoint intervals, then the server's last checkpoint as it stops.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.send(()).ok();
    drop(registry);
    running.await.unwrap().unwrap();
    assert!(
        last_checkpoint(&app).await < forged,
        "a checkpoint vouches for the forged entry"
    );
    let (ok, out) = verify_cli(&app).await;
    assert!(!ok);
    assert!(out.contains(&format!("audit entry {forged}")), "{out}");
}

/// A call refused on what it holds (a record kind its agency may not file, a missing
/// case reference) is audited with whom it named, though the handler stopped before
/// noting anyone.
#[tokio::test]
async fn a_call_refused_on_its_content_is_audited_with_its_subjects() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    // A tax bureau may not file a dishonest-debtor listing (a court's record).
    let err = app
        .records(AgencyKind::Tax)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "tax-files-court-kind".into(),
            records: vec![debtor(person("李四", ID_B), "d1"), penalty(&uscc(1), "p1")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = pb::vetting_service_client::VettingServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::VettingOffice),
    )
    .cross_check(pb::CrossCheckRequest {
        purpose: pb::VettingPurpose::PartyMemberDevelopment as i32,
        case_reference: String::new(),
        candidates: vec![pb::Candidate {
            name: "张伟".into(),
            id_number: ID_A.into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    for (id, method, outcome) in [
        (
            ID_B,
            "RecordService/BatchSubmitRecords",
            "PERMISSION_DENIED",
        ),
        (ID_A, "VettingService/CrossCheck", "INVALID_ARGUMENT"),
    ] {
        let outcomes = app
            .audit_outcomes(pb::ListAuditEntriesRequest {
                subject_person_id_number: id.into(),
                method: format!("/credithub.v1.{method}"),
                ..Default::default()
            })
            .await;
        assert_eq!(outcomes, [outcome], "{method}");
    }
    let entries = app
        .audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            method: "/credithub.v1.RecordService/BatchSubmitRecords".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
}

/// A listing asked about one subject names it in its entry whether it is refused or
/// finds nothing: "who asked about this enterprise" does not depend on the answer.
#[tokio::test]
async fn a_listing_asked_about_one_subject_names_it_whatever_the_answer() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let subject = format!("enterprises/{}", uscc(1));
    let err = app
        .records(AgencyKind::Court)
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: subject.clone(),
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let found = pb::certificate_service_client::CertificateServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::MarketRegulation),
    )
    .list_certificates(pb::ListCertificatesRequest {
        enterprise: subject.clone(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert!(found.certificates.is_empty());

    for (method, outcome) in [
        ("RecordService/ListRecords", "INVALID_ARGUMENT"),
        ("CertificateService/ListCertificates", "OK"),
    ] {
        let outcomes = app
            .audit_outcomes(pb::ListAuditEntriesRequest {
                subject_enterprise: subject.clone(),
                method: format!("/credithub.v1.{method}"),
                ..Default::default()
            })
            .await;
        assert_eq!(outcomes, [outcome], "{method}");
    }
}

/// A registry listing names whom it showed: "who looked at this enterprise, at this
/// person" finds it, as it finds a GetEnterprise.
#[tokio::test]
async fn a_registry_listing_is_found_under_the_enterprises_and_representatives_it_showed() {
    let app = spawn_app().await;
    let shareholder = synthetic_id(77);
    let mut second = enterprise(2, ID_B);
    second.roles = vec![pb::EnterpriseRole {
        kind: pb::RoleKind::Shareholder as i32,
        person: Some(person("李娜", &shareholder)),
        start_date: "2020-01-01".into(),
        end_date: String::new(),
    }];
    app.register(vec![enterprise(1, ID_A), second]).await;
    app.registry(AgencyKind::Court)
        .list_enterprises(pb::ListEnterprisesRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    app.enterprise_as(AgencyKind::Court, 2).await;
    let entries = |method: &'static str, request: pb::ListAuditEntriesRequest| {
        let app = &app;
        async move {
            app.audit_entries(pb::ListAuditEntriesRequest {
                method: format!("/credithub.v1.RegistryService/{method}"),
                ..request
            })
            .await
            .len()
        }
    };
    // Every person the answers named, a shareholder too, and the registration that
    // named them.
    for method in ["ListEnterprises", "GetEnterprise", "BatchUpsertEnterprises"] {
        let found = entries(
            method,
            pb::ListAuditEntriesRequest {
                subject_person_id_number: shareholder.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(found, 1, "{method}");
    }
    let listings = |request| entries("ListEnterprises", request);
    assert_eq!(
        listings(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(2)),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        listings(pb::ListAuditEntriesRequest {
            subject_person_id_number: ID_B.into(),
            ..Default::default()
        })
        .await,
        1
    );
}
