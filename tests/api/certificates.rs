//! Credit certificates through the real server: issue, verify online and offline,
//! tamper, revoke, expire, suspend on a contradicting record, supersede when the
//! enterprise leaves the list, refuse ineligible remediation, and issue exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use credit_hub::api::CertificateSettings;
use credit_hub::cli::cert::verify_offline;
use credit_hub::domain::agency::Scope;
use credit_hub::domain::certificate::VerificationResult;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use pb::certificate_service_client::CertificateServiceClient;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

impl TestApp {
    fn certificates(&self, kind: AgencyKind) -> CertificateServiceClient<Authed> {
        CertificateServiceClient::with_interceptor(self.channel.clone(), self.bearer(kind))
    }

    /// The public client: no token at all.
    fn verifier(&self) -> CertificateServiceClient<Channel> {
        CertificateServiceClient::new(self.channel.clone())
    }

    async fn verify(&self, document: &str) -> pb::VerifyCertificateResponse {
        self.verifier()
            .verify_certificate(pb::VerifyCertificateRequest {
                document: document.into(),
            })
            .await
            .expect("verify")
            .into_inner()
    }

    /// The issuer keys as `credit-hub cert keys` writes them.
    async fn keys_json(&self) -> String {
        let keys = self
            .verifier()
            .list_issuer_keys(pb::ListIssuerKeysRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys;
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "keyId": k.key_id,
                    "publicKeyMultibase": k.public_key_multibase,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }
}

/// A second server on the test's database signing with `settings`, and a channel to it.
async fn replica(
    app: &TestApp,
    settings: CertificateSettings,
) -> (Channel, tokio::sync::oneshot::Sender<()>) {
    let (addr, stop) = another_server(app, |s| s.certificates(settings)).await;
    (channel_to(addr).await, stop)
}

fn status_request(n: u32, request_id: &str) -> pb::IssueCertificateRequest {
    pb::IssueCertificateRequest {
        enterprise: format!("enterprises/{}", uscc(n)),
        kind: pb::CertificateKind::CreditStatus as i32,
        period_start_date: date_days_ago(365),
        period_end_date: credit_hub::api::today().to_string(),
        request_id: request_id.into(),
    }
}

async fn issue(app: &TestApp, request: pb::IssueCertificateRequest) -> pb::Certificate {
    issue_on(app, &app.channel, request).await
}

/// Issues as market regulation through `channel` (a replica's, or the app's).
async fn issue_on(
    app: &TestApp,
    channel: &Channel,
    request: pb::IssueCertificateRequest,
) -> pb::Certificate {
    CertificateServiceClient::with_interceptor(
        channel.clone(),
        app.bearer(AgencyKind::MarketRegulation),
    )
    .issue_certificate(request)
    .await
    .expect("issue certificate")
    .into_inner()
    .certificate
    .expect("certificate")
}

fn result_of(r: &pb::VerifyCertificateResponse) -> VerificationResult {
    VerificationResult::from_number(r.result).expect("a verification result")
}

/// Withdraws, as market regulation, the one record of `kind` about enterprise `n`.
async fn withdraw_only(app: &TestApp, n: u32, kind: pb::RecordKind, reason: &str) {
    let mut records = app.records(AgencyKind::MarketRegulation);
    let name = records
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: format!("enterprises/{}", uscc(n)),
            kind: kind as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records[0]
        .name
        .clone();
    records
        .withdraw_record(pb::WithdrawRecordRequest {
            name,
            reason: reason.into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

/// A request for an annual-report remediation certificate of enterprise `n`.
fn remediation(n: u32, request_id: &str) -> pb::IssueCertificateRequest {
    pb::IssueCertificateRequest {
        enterprise: format!("enterprises/{}", uscc(n)),
        kind: pb::CertificateKind::AnnualReportRemediation as i32,
        request_id: request_id.into(),
        ..Default::default()
    }
}

fn listing(n: u32, source: &str, cause: pb::SeriousListingCause) -> pb::Record {
    pb::Record {
        serious_listing_cause: cause as i32,
        ..market_record(
            n,
            pb::RecordKind::SeriousDishonestyListing,
            source,
            &date_days_ago(150),
        )
    }
}

#[tokio::test]
async fn an_issued_certificate_verifies_online_and_offline_and_one_changed_character_is_tampered() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    app.submit(AgencyKind::MarketRegulation, vec![penalty(&uscc(1), "p-1")])
        .await;
    let cert = issue(&app, status_request(1, "issue-1")).await;
    assert_eq!(cert.status, pb::CertificateStatus::Valid as i32);
    assert_eq!(cert.name, format!("certificates/{}", cert.serial_number));
    let doc: serde_json::Value = serde_json::from_str(&cert.document).unwrap();
    assert_eq!(doc["type"][0], "VerifiableCredential");
    assert_eq!(doc["proof"]["cryptosuite"], "eddsa-jcs-2022");
    assert_eq!(doc["credentialSubject"]["uscc"], uscc(1));
    assert_eq!(
        doc["credentialSubject"]["administrativePenalties"][0]["documentNumber"],
        "威开市监罚〔2026〕12号"
    );
    assert!(doc["id"].as_str().unwrap().ends_with(&cert.serial_number));

    let online = app.verify(&cert.document).await;
    assert_eq!(result_of(&online), VerificationResult::Valid, "{online:?}");
    assert_eq!(online.serial_number, cert.serial_number);
    assert_eq!(online.issuer_key_id, cert.issuer_key_id);
    let keys = app.keys_json().await;
    assert_eq!(
        verify_offline(&cert.document, &keys).unwrap().0,
        VerificationResult::Valid
    );

    // One character of the enterprise's name changed.
    let tampered = cert.document.replacen("测试1", "测试7", 1);
    assert_ne!(tampered, cert.document);
    assert_eq!(
        result_of(&app.verify(&tampered).await),
        VerificationResult::Tampered
    );
    assert_eq!(
        verify_offline(&tampered, &keys).unwrap().0,
        VerificationResult::Tampered
    );
    // Not JSON at all is reported, not refused.
    assert_eq!(
        result_of(&app.verify("{\"id\": ").await),
        VerificationResult::Tampered
    );
    // A forged name placed before the signed one: JSON parsers keep the last, a
    // viewer may show the first. Refused on both paths.
    let doubled = cert.document.replacen(
        "\"credentialSubject\":{",
        "\"credentialSubject\":{\"name\":\"伪造公司\",",
        1,
    );
    assert_ne!(doubled, cert.document, "the document is compact JSON");
    let lenient = |d: &str| serde_json::from_str::<serde_json::Value>(d).unwrap();
    assert_eq!(
        lenient(&doubled),
        lenient(&cert.document),
        "a lenient parser sees the signed document"
    );
    assert_eq!(
        result_of(&app.verify(&doubled).await),
        VerificationResult::Tampered
    );
    assert_eq!(
        verify_offline(&doubled, &keys).unwrap().0,
        VerificationResult::Tampered
    );
    // A key nobody listed.
    let foreign = cert
        .document
        .replace(&cert.issuer_key_id, "key-someone-else");
    assert_eq!(
        result_of(&app.verify(&foreign).await),
        VerificationResult::UnknownKey
    );
}

#[tokio::test]
async fn the_grade_never_appears_on_a_certificate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(2, ID_A)]).await;
    app.submit(
        AgencyKind::MarketRegulation,
        vec![listing(2, "s-1", pb::SeriousListingCause::SeriousViolation)],
    )
    .await;
    let grade = app.grade_of(2).await;
    assert_eq!(grade.grade, pb::Grade::D as i32, "the listing makes it D");
    let cert = issue(&app, status_request(2, "issue-2")).await;
    let lower = cert.document.to_lowercase();
    assert!(
        !lower.contains("grade") && !lower.contains("score"),
        "{lower}"
    );
    // Nor any of the grade's reasons (record kinds are stated; reason codes are not).
    for reason in &grade.reasons {
        let quoted = format!("\"{}\"", reason.code);
        assert!(!cert.document.contains(&quoted), "{}", reason.code);
        assert!(
            !cert.document.contains(&reason.description),
            "{}",
            reason.description
        );
    }
    let doc: serde_json::Value = serde_json::from_str(&cert.document).unwrap();
    assert_eq!(
        doc["credentialSubject"]["seriousDishonesty"]["listedOnIssueDate"],
        true
    );
}

#[tokio::test]
async fn revoked_certificates_verify_as_revoked_and_only_market_regulation_may_revoke() {
    let app = spawn_app().await;
    app.register(vec![enterprise(3, ID_A)]).await;
    let cert = issue(&app, status_request(3, "issue-3")).await;
    let revoke = |reason: &str, request_id: &str| pb::RevokeCertificateRequest {
        name: cert.name.clone(),
        reason: reason.into(),
        request_id: request_id.into(),
    };
    let err = app
        .certificates(AgencyKind::Court)
        .revoke_certificate(revoke("错误出具", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let court_with_scope = agency_with(
        &app,
        BTreeSet::from([Scope::CertificatesIssue, Scope::CertificatesRevoke]),
        AgencyKind::Court,
    )
    .await;
    let err = CertificateServiceClient::with_interceptor(app.channel.clone(), court_with_scope)
        .revoke_certificate(revoke("错误出具", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = app
        .certificates(AgencyKind::MarketRegulation)
        .revoke_certificate(revoke(" ", ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);
    let err = app
        .certificates(AgencyKind::MarketRegulation)
        .revoke_certificate(revoke("应王五（110105491231001）要求", ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);

    let mut market = app.certificates(AgencyKind::MarketRegulation);
    let revoked = market
        .revoke_certificate(revoke("依据错误，已重新出具", "revoke-3"))
        .await
        .unwrap()
        .into_inner()
        .certificate
        .unwrap();
    assert_eq!(revoked.status, pb::CertificateStatus::Revoked as i32);
    assert!(revoked.revoke_time.is_some());
    // The retry answers the same; a second revocation is refused.
    let again = market
        .revoke_certificate(revoke("依据错误，已重新出具", "revoke-3"))
        .await
        .unwrap()
        .into_inner()
        .certificate
        .unwrap();
    assert_eq!(again, revoked);
    let err = market
        .revoke_certificate(revoke("再次", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Revoked);
    assert!(verified.reason.contains("依据错误"), "{}", verified.reason);
    assert_eq!(verified.status, pb::CertificateStatus::Revoked as i32);
}

#[tokio::test]
async fn a_certificate_past_valid_until_verifies_as_expired() {
    let app = spawn_app().await;
    app.register(vec![enterprise(4, ID_A)]).await;
    let settings = CertificateSettings {
        validity: Duration::from_secs(1),
        ..CertificateSettings::default()
    };
    let (channel, _stop) = replica(&app, settings).await;
    let cert = issue_on(&app, &channel, status_request(4, "issue-4")).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let verified = CertificateServiceClient::new(channel)
        .verify_certificate(pb::VerifyCertificateRequest {
            document: cert.document.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result_of(&verified), VerificationResult::Expired);
    assert_eq!(verified.status, pb::CertificateStatus::Expired as i32);
    // The first server, with its own key, still knows the retired one.
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Expired
    );
    let keys = app.keys_json().await;
    assert_eq!(
        verify_offline(&cert.document, &keys).unwrap().0,
        VerificationResult::Expired
    );
}

#[tokio::test]
async fn a_serious_record_inside_the_period_suspends_a_credit_status_certificate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(5, ID_A), enterprise(6, ID_B)])
        .await;
    // A moderate penalty contradicts a certificate that counted none ("无行政处罚记录").
    let moderate = issue(&app, status_request(6, "issue-6")).await;
    app.submit(AgencyKind::MarketRegulation, vec![penalty(&uscc(6), "p-6")])
        .await;
    assert_eq!(
        result_of(&app.verify(&moderate.document).await),
        VerificationResult::Suspended
    );
    let cert = issue(&app, status_request(5, "issue-5")).await;
    // A record outside the certificate's reach (a spot-check result) leaves it valid.
    let checked = pb::Record {
        tier: pb::Tier::Minor as i32,
        spot_check_outcome: pb::SpotCheckOutcome::Passed as i32,
        ..market_record(
            5,
            pb::RecordKind::SpotCheckResult,
            "sc-5",
            &date_days_ago(3),
        )
    };
    app.submit(AgencyKind::MarketRegulation, vec![checked])
        .await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Valid
    );
    let serious = pb::Record {
        tier: pb::Tier::Serious as i32,
        document_number: "威开市监罚〔2026〕99号".into(),
        penalty_measures: vec![
            pb::PenaltyMeasure::Fine as i32,
            pb::PenaltyMeasure::LicenseRevoked as i32,
        ],
        ..penalty(&uscc(5), "p-5-serious")
    };
    app.submit(AgencyKind::MarketRegulation, vec![serious.clone()])
        .await;

    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Suspended);
    assert!(verified.reason.contains("99号"), "{}", verified.reason);
    let suspended = app
        .certificates(AgencyKind::MarketRegulation)
        .list_certificates(pb::ListCertificatesRequest {
            enterprise: format!("enterprises/{}", uscc(5)),
            status: pb::CertificateStatus::Suspended as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .certificates;
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0].serial_number, cert.serial_number);
    // The statements stay as issued.
    assert_eq!(suspended[0].document, cert.document);

    // Withdrawn, the penalty leaves publicity: the suspension no longer names it to
    // whoever verifies, and the certificate is superseded (a new one is asked for).
    withdraw_only(&app, 6, pb::RecordKind::AdministrativePenalty, "立案错误").await;
    let after = app.verify(&moderate.document).await;
    assert_eq!(
        result_of(&after),
        VerificationResult::Superseded,
        "{after:?}"
    );
    assert!(!after.reason.contains("records/"), "{}", after.reason);
    assert!(!after.reason.contains("〔2026〕12号"), "{}", after.reason);
    // Corrected to another enterprise while a second unstated penalty stands, the
    // certificate stays suspended, now naming that one; once it is withdrawn too,
    // superseded.
    app.submit(
        AgencyKind::MarketRegulation,
        vec![pb::Record {
            document_number: "威开市监罚〔2026〕77号".into(),
            ..penalty(&uscc(5), "p-5-second")
        }],
    )
    .await;
    let mut moved = pb::Record {
        subject: penalty(&uscc(6), "p-5-serious").subject,
        ..serious
    };
    moved.provenance.as_mut().unwrap().revision = 2;
    app.submit(AgencyKind::MarketRegulation, vec![moved]).await;
    let after = app.verify(&cert.document).await;
    assert_eq!(
        result_of(&after),
        VerificationResult::Suspended,
        "{after:?}"
    );
    assert!(after.reason.contains("77号"), "{}", after.reason);
    assert!(!after.reason.contains("99号"), "{}", after.reason);
    withdraw_only(&app, 5, pb::RecordKind::AdministrativePenalty, "立案错误").await;
    let after = app.verify(&cert.document).await;
    assert_eq!(
        result_of(&after),
        VerificationResult::Superseded,
        "{after:?}"
    );
    assert!(!after.reason.contains("99号"), "{}", after.reason);
}

/// A record that suspended a certificate is no longer named once its publicity window
/// ends: the pass that regrades the window's end supersedes the certificate with a
/// reason naming no record, as a withdrawal would. Another record still contradicting
/// it keeps it suspended, its reason naming that one.
#[tokio::test]
async fn a_suspension_stops_naming_a_record_whose_publicity_ended() {
    let app = spawn_app().await;
    app.register(vec![
        enterprise(8, ID_A),
        enterprise(9, ID_B),
        enterprise(10, ID_A),
    ])
    .await;
    let alone = issue(&app, status_request(8, "issue-8")).await;
    let listed = issue(&app, status_request(10, "issue-10")).await;
    let with_another = issue(&app, status_request(9, "issue-9")).await;
    let ending = |n: u32, source: &str| pb::Record {
        // Decided long enough ago that an end tomorrow keeps Order 107's 3 months.
        decision_date: date_days_ago(200),
        publicity_end_date: (app.clock.today() + chrono::Duration::days(1)).to_string(),
        ..penalty(&uscc(n), source)
    };
    app.submit(
        AgencyKind::MarketRegulation,
        vec![
            ending(8, "p-8-ending"),
            ending(9, "p-9-ending"),
            // In force on the issue date, which the certificate says was not listed.
            pb::Record {
                decision_date: date_days_ago(400),
                publicity_end_date: (app.clock.today() + chrono::Duration::days(1)).to_string(),
                document_number: "威开市监严〔2025〕7号".into(),
                ..listing(
                    10,
                    "listing-10-ending",
                    pb::SeriousListingCause::SeriousViolation,
                )
            },
        ],
    )
    .await;
    let verified = app.verify(&listed.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Suspended);
    assert!(verified.reason.contains("7号"), "{}", verified.reason);
    // Filed after the suspension, which keeps naming the first record.
    app.submit(
        AgencyKind::MarketRegulation,
        vec![pb::Record {
            document_number: "威开市监罚〔2026〕55号".into(),
            ..penalty(&uscc(9), "p-9-standing")
        }],
    )
    .await;
    for cert in [&alone, &with_another] {
        let verified = app.verify(&cert.document).await;
        assert_eq!(result_of(&verified), VerificationResult::Suspended);
        assert!(
            verified.reason.contains("〔2026〕12号"),
            "{}",
            verified.reason
        );
    }

    app.clock.advance_days(2);
    let mut after = app.verify(&alone.document).await;
    for _ in 0..100 {
        if result_of(&after) != VerificationResult::Suspended {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = app.verify(&alone.document).await;
    }
    assert_eq!(
        result_of(&after),
        VerificationResult::Superseded,
        "{after:?}"
    );
    assert!(!after.reason.contains("records/"), "{}", after.reason);
    assert!(!after.reason.contains("〔2026〕12号"), "{}", after.reason);
    // The same pass regraded enterprise 9's window end (one transaction for both).
    let after = app.verify(&with_another.document).await;
    assert_eq!(
        result_of(&after),
        VerificationResult::Suspended,
        "{after:?}"
    );
    assert!(after.reason.contains("55号"), "{}", after.reason);
    assert!(!after.reason.contains("〔2026〕12号"), "{}", after.reason);
    // A listing that was in force on the issue date is not named once it has ended.
    let after = app.verify(&listed.document).await;
    assert_eq!(
        result_of(&after),
        VerificationResult::Superseded,
        "{after:?}"
    );
    assert!(!after.reason.contains("7号"), "{}", after.reason);
    assert!(!after.reason.contains("records/"), "{}", after.reason);
}

/// A certificate says whether the enterprise was on the serious-dishonesty list on its
/// issue date. A listing filed later that was in force on that day (decided before it,
/// outside the certified period) contradicts it and suspends it.
#[tokio::test]
async fn a_listing_in_force_on_the_issue_date_filed_later_suspends_the_certificate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(6, ID_A)]).await;
    let period_end = credit_hub::api::today() - chrono::Duration::days(30);
    let cert = issue(
        &app,
        pb::IssueCertificateRequest {
            period_start_date: (period_end - chrono::Duration::days(300)).to_string(),
            period_end_date: period_end.to_string(),
            ..status_request(6, "issue-6")
        },
    )
    .await;
    assert!(cert.document.contains("\"listedOnIssueDate\":false"));
    let late = pb::Record {
        decision_date: date_days_ago(10),
        document_number: "威开市监严〔2026〕5号".into(),
        ..listing(6, "listing-6", pb::SeriousListingCause::SeriousViolation)
    };
    app.submit(AgencyKind::MarketRegulation, vec![late]).await;
    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Suspended);
    assert!(verified.reason.contains("5号"), "{}", verified.reason);
}

/// A certificate issued while a serious record about its enterprise is being filed
/// either states the record or is suspended by it: never valid and silent about it.
#[tokio::test]
async fn a_serious_record_filed_while_a_certificate_is_issued_is_stated_or_suspends_it() {
    let app = spawn_app().await;
    let ns: Vec<u32> = (20..32).collect();
    app.register(ns.iter().map(|&n| enterprise(n, ID_A)).collect())
        .await;
    let mut calls = Vec::new();
    for &n in &ns {
        let mut issuer = app.certificates(AgencyKind::MarketRegulation);
        let mut filer = app.records(AgencyKind::MarketRegulation);
        let serious = pb::Record {
            tier: pb::Tier::Serious as i32,
            document_number: format!("威开市监罚〔2026〕{n}号"),
            penalty_measures: vec![
                pb::PenaltyMeasure::Fine as i32,
                pb::PenaltyMeasure::LicenseRevoked as i32,
            ],
            ..penalty(&uscc(n), &format!("race-{n}"))
        };
        calls.push(tokio::spawn(async move {
            let (cert, filed) = tokio::join!(
                issuer.issue_certificate(status_request(n, &format!("race-{n}"))),
                filer.batch_submit_records(pb::BatchSubmitRecordsRequest {
                    request_id: String::new(),
                    records: vec![serious],
                })
            );
            filed.expect("the record is filed");
            (
                n,
                cert.expect("the certificate is issued")
                    .into_inner()
                    .certificate
                    .unwrap(),
            )
        }));
    }
    for call in calls {
        let (n, cert) = call.await.unwrap();
        let verified = app.verify(&cert.document).await;
        let stated = cert.document.contains(&format!("〔2026〕{n}号"));
        match result_of(&verified) {
            VerificationResult::Suspended => {
                assert!(!stated, "{n}: suspended for a record it states")
            }
            VerificationResult::Valid => {
                assert!(stated, "{n}: valid and silent about a serious record")
            }
            other => panic!("{n}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn correcting_a_record_the_certificate_states_leaves_it_valid() {
    let app = spawn_app().await;
    app.register(vec![enterprise(7, ID_A)]).await;
    let serious = pb::Record {
        tier: pb::Tier::Serious as i32,
        document_number: "威开市监罚〔2026〕77号".into(),
        ..penalty(&uscc(7), "p-7")
    };
    app.submit(AgencyKind::MarketRegulation, vec![serious.clone()])
        .await;
    let cert = issue(&app, status_request(7, "issue-7")).await;
    assert!(cert.document.contains("77号"), "the penalty is stated");

    let mut corrected = serious;
    corrected.summary = "生产不符合食品安全标准的食品（摘要更正）".into();
    corrected.provenance.as_mut().unwrap().revision = 2;
    app.submit(AgencyKind::MarketRegulation, vec![corrected])
        .await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Valid
    );

    // A serious record it does not state still suspends it.
    let unstated = pb::Record {
        tier: pb::Tier::Serious as i32,
        document_number: "威开市监罚〔2026〕78号".into(),
        ..penalty(&uscc(7), "p-7-other")
    };
    app.submit(AgencyKind::MarketRegulation, vec![unstated])
        .await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Suspended
    );
}

/// A revision that changes what the certificate says about a record it states (here its
/// decision date) contradicts it as an unstated record would.
#[tokio::test]
async fn a_revision_changing_what_the_certificate_states_suspends_it() {
    let app = spawn_app().await;
    app.register(vec![enterprise(8, ID_A)]).await;
    let serious = pb::Record {
        tier: pb::Tier::Serious as i32,
        document_number: "威开市监罚〔2026〕88号".into(),
        ..penalty(&uscc(8), "p-8")
    };
    app.submit(AgencyKind::MarketRegulation, vec![serious.clone()])
        .await;
    let cert = issue(&app, status_request(8, "issue-8")).await;
    let mut moved = serious;
    moved.decision_date = date_days_ago(40);
    moved.provenance.as_mut().unwrap().revision = 2;
    app.submit(AgencyKind::MarketRegulation, vec![moved]).await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Suspended
    );
}

/// A revision that moves a stated record to another enterprise, or its decision date out
/// of the period, leaves the certificate untrue without contradicting it from inside
/// the period: it is superseded, naming the corrected record.
#[tokio::test]
async fn a_revision_moving_a_stated_record_away_supersedes_the_certificate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(8, ID_A), enterprise(9, ID_B)])
        .await;
    let penalty_of = |n: u32, source: &str| pb::Record {
        tier: pb::Tier::Serious as i32,
        document_number: format!("威开市监罚〔2026〕{n}号"),
        ..penalty(&uscc(n), source)
    };
    let first = penalty_of(8, "p-8");
    let second = penalty_of(8, "p-8-b");
    app.submit(
        AgencyKind::MarketRegulation,
        vec![first.clone(), second.clone()],
    )
    .await;
    let cert = issue(&app, status_request(8, "issue-8")).await;

    // Filed against the wrong enterprise: corrected to enterprise 9.
    let mut moved = pb::Record {
        subject: penalty(&uscc(9), "p-8").subject,
        ..first
    };
    moved.provenance.as_mut().unwrap().revision = 2;
    app.submit(AgencyKind::MarketRegulation, vec![moved]).await;
    let verified = app.verify(&cert.document).await;
    assert_eq!(
        result_of(&verified),
        VerificationResult::Superseded,
        "{verified:?}"
    );
    assert!(
        verified.reason.contains("corrected after issue"),
        "{verified:?}"
    );

    // Redated to before the period.
    let cert = issue(&app, status_request(8, "issue-8-again")).await;
    let mut redated = second;
    redated.decision_date = date_days_ago(400);
    redated.provenance.as_mut().unwrap().revision = 2;
    app.submit(AgencyKind::MarketRegulation, vec![redated])
        .await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Superseded
    );
}

#[tokio::test]
async fn remediation_is_refused_with_every_unmet_condition_and_superseded_when_the_listing_ends() {
    let app = spawn_app().await;
    app.register(vec![enterprise(6, ID_A), enterprise(7, ID_B)])
        .await;
    use pb::{AbnormalCause as A, SeriousListingCause as S};
    // Dated back from today (the listings 150 days ago): two missed annual reports of
    // different years on the abnormal list within the four years before the listing.
    let missed_year = |days: i64| -> i32 {
        credit_hub::domain::record::latest_late_report_year(
            credit_hub::api::today() - chrono::Duration::days(days),
        )
    };
    let (first, second) = (missed_year(950), missed_year(550));
    app.submit(
        AgencyKind::MarketRegulation,
        vec![
            listing(6, "s-6", S::AbnormalListThreeYears),
            abnormal(
                6,
                "a-6-1",
                &date_days_ago(950),
                first,
                A::AnnualReportNotFiled,
            ),
            abnormal(
                6,
                "a-6-2",
                &date_days_ago(550),
                second,
                A::AnnualReportNotFiled,
            ),
            filing(6, "f-6-1", first, &date_days_ago(100)),
            listing(7, "s-7", S::SeriousViolation),
            abnormal(
                7,
                "a-7-1",
                &date_days_ago(550),
                second,
                A::UnreachableAddress,
            ),
        ]
        .into_iter()
        // Every other year owed from the first missed through the latest late is
        // filed, those that fell due while listed too; the second missed year is not.
        .chain(filings(
            6,
            years_owed_after(first, app.clock.today()).filter(|y| *y != second),
            &date_days_ago(100),
        ))
        .collect(),
    )
    .await;
    let mut market = app.certificates(AgencyKind::MarketRegulation);
    let err = market
        .issue_certificate(remediation(6, "r-6"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let unmet = err.get_details_precondition_failure().unwrap().violations;
    assert_eq!(unmet.len(), 1, "{unmet:?}");

    // Its credit-status certificate says outright that missed reports are the only
    // reason it is listed, and how it gets off the list; another cause gets neither.
    // Both say they cover no criminal records.
    for (n, only_reports) in [(6, true), (7, false)] {
        let cert = issue(&app, status_request(n, &format!("status-{n}"))).await;
        let doc: serde_json::Value = serde_json::from_str(&cert.document).unwrap();
        let serious = &doc["credentialSubject"]["seriousDishonesty"];
        assert_eq!(serious["listedOnIssueDate"], true);
        assert_eq!(serious["repairPath"].is_string(), only_reports, "{serious}");
        let cause = if only_reports {
            "ABNORMAL_LIST_THREE_YEARS"
        } else {
            "SERIOUS_VIOLATION"
        };
        assert_eq!(serious["listingsInPeriod"][0]["cause"], cause);
        assert_eq!(
            doc["credentialSubject"]["criminalRecords"]["covered"],
            false
        );
        let summary = doc["credentialSubject"]["summary"].as_str().unwrap();
        assert_eq!(
            summary.contains("仅为未按时报送年度报告"),
            only_reports,
            "{summary}"
        );
    }
    assert_eq!(unmet[0].r#type, "ANNUAL_REPORT_NOT_FILED");
    assert!(
        unmet[0].description.contains(&second.to_string()),
        "{}",
        unmet[0].description
    );

    let err = market
        .issue_certificate(remediation(7, "r-7"))
        .await
        .unwrap_err();
    let kinds: Vec<String> = err
        .get_details_precondition_failure()
        .unwrap()
        .violations
        .into_iter()
        .map(|v| v.r#type)
        .collect();
    assert_eq!(
        kinds,
        [
            "LISTING_CAUSE_NOT_ANNUAL_REPORT",
            "ABNORMAL_CAUSE_NOT_ANNUAL_REPORT",
            "MISSED_ANNUAL_REPORTS_NOT_RECORDED"
        ]
    );

    // The 2023 report is filed: now it qualifies, and says exactly that.
    app.submit(
        AgencyKind::MarketRegulation,
        vec![filing(6, "f-6-2", second, &date_days_ago(50))],
    )
    .await;
    let cert = issue(&app, remediation(6, "r-6-again")).await;
    let doc: serde_json::Value = serde_json::from_str(&cert.document).unwrap();
    let subject = &doc["credentialSubject"];
    assert_eq!(
        subject["seriousDishonestyListings"][0]["cause"],
        "ABNORMAL_LIST_THREE_YEARS"
    );
    let years: Vec<i64> = subject["missedAnnualReports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reportYear"].as_i64().unwrap())
        .collect();
    let owed: Vec<i64> = (first..=*years_owed_after(first, app.clock.today()).end())
        .map(i64::from)
        .collect();
    assert_eq!(years, owed);
    let second_at = years.iter().position(|y| *y == i64::from(second)).unwrap();
    assert_eq!(
        subject["missedAnnualReports"][second_at]["filing"]["filedDate"],
        date_days_ago(50)
    );
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Valid
    );

    // The listing is withdrawn: the enterprise has left the list.
    withdraw_only(
        &app,
        6,
        pb::RecordKind::SeriousDishonestyListing,
        "移出严重违法失信名单",
    )
    .await;
    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Superseded);
    assert_eq!(verified.status, pb::CertificateStatus::Superseded as i32);

    // Listed again over the same reports, remediated again; then listed for a serious
    // violation too. The certificate says missed reports are the only cause: no more.
    app.submit(
        AgencyKind::MarketRegulation,
        vec![listing(6, "s-6-again", S::AbnormalListThreeYears)],
    )
    .await;
    let cert = issue(&app, remediation(6, "r-6-third")).await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Valid
    );
    app.submit(
        AgencyKind::MarketRegulation,
        vec![listing(6, "s-6-violation", S::SeriousViolation)],
    )
    .await;
    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Superseded);
    assert!(
        verified.reason.contains("other than missed annual reports"),
        "{verified:?}"
    );
}

/// A remediation certificate rests on the filings it cites: one withdrawn (the report
/// was not really filed) leaves the certificate superseded, not VALID and untrue.
#[tokio::test]
async fn a_remediation_certificate_is_superseded_when_a_filing_it_cites_is_withdrawn() {
    let app = spawn_app().await;
    app.register(vec![enterprise(16, ID_A)]).await;
    use pb::{AbnormalCause as A, SeriousListingCause as S};
    let year = credit_hub::domain::record::latest_late_report_year(
        credit_hub::api::today() - chrono::Duration::days(550),
    );
    app.submit(
        AgencyKind::MarketRegulation,
        vec![
            listing(16, "s-16", S::AbnormalListThreeYears),
            abnormal(
                16,
                "a-16",
                &date_days_ago(550),
                year,
                A::AnnualReportNotFiled,
            ),
            filing(16, "f-16", year, &date_days_ago(100)),
        ]
        .into_iter()
        .chain(filings(
            16,
            years_owed_after(year, app.clock.today()),
            &date_days_ago(100),
        ))
        .collect(),
    )
    .await;
    let cert = issue(&app, remediation(16, "r-16")).await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Valid
    );
    withdraw_only(&app, 16, pb::RecordKind::AnnualReportFiling, "年报系误录").await;
    let verified = app.verify(&cert.document).await;
    assert_eq!(
        result_of(&verified),
        VerificationResult::Superseded,
        "{verified:?}"
    );
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_request_id_issue_one_certificate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(8, ID_A)]).await;
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut client = app.certificates(AgencyKind::MarketRegulation);
        calls.push(tokio::spawn(async move {
            client
                .issue_certificate(status_request(8, "same-request"))
                .await
                .map(|r| r.into_inner().certificate.unwrap().serial_number)
        }));
    }
    let mut serials = BTreeSet::new();
    for call in calls {
        serials.insert(call.await.unwrap().expect("every request succeeds"));
    }
    assert_eq!(serials.len(), 1, "{serials:?}");
    let listed = app
        .certificates(AgencyKind::MarketRegulation)
        .list_certificates(pb::ListCertificatesRequest {
            enterprise: format!("enterprises/{}", uscc(8)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .certificates;
    assert_eq!(listed.len(), 1);
    // The same id for a different request is refused.
    let mut other = status_request(8, "same-request");
    other.period_start_date = date_days_ago(400);
    let err = app
        .certificates(AgencyKind::MarketRegulation)
        .issue_certificate(other)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["request_id"]);
}

#[tokio::test]
async fn bad_issue_requests_name_each_field_and_only_market_regulation_may_issue() {
    let app = spawn_app().await;
    app.register(vec![enterprise(9, ID_A)]).await;
    let mut market = app.certificates(AgencyKind::MarketRegulation);
    let err = market
        .issue_certificate(pb::IssueCertificateRequest {
            enterprise: "enterprises/123".into(),
            kind: 0,
            period_start_date: "2026-02-30".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        ["enterprise", "kind", "period_start_date", "request_id"]
    );
    let mut too_long = status_request(9, "long");
    too_long.period_start_date = "2019-01-01".into();
    let err = market.issue_certificate(too_long).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["period_start_date"]);
    let mut future = status_request(9, "future");
    future.period_end_date = "2999-01-01".into();
    let err = market.issue_certificate(future).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["period_end_date"]);
    // A remediation certificate states the current listing: each period date given is
    // named as the field at fault.
    let remediation = |start: &str, end: &str| pb::IssueCertificateRequest {
        kind: pb::CertificateKind::AnnualReportRemediation as i32,
        period_start_date: start.into(),
        period_end_date: end.into(),
        ..status_request(9, "remediation")
    };
    let err = market
        .issue_certificate(remediation("", "2025-01-01"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["period_end_date"]);
    let err = market
        .issue_certificate(remediation("2024-01-01", "2025-01-01"))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["period_start_date", "period_end_date"]
    );
    let err = market
        .issue_certificate(status_request(99, "unknown"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let err = app
        .certificates(AgencyKind::Tax)
        .issue_certificate(status_request(9, "tax"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let tax_with_scope = agency_with(
        &app,
        BTreeSet::from([Scope::CertificatesIssue]),
        AgencyKind::Tax,
    )
    .await;
    let err = CertificateServiceClient::with_interceptor(app.channel.clone(), tax_with_scope)
        .issue_certificate(status_request(9, "tax"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn public_verification_is_rate_limited_per_client_address() {
    let app = spawn_app().await;
    let settings = CertificateSettings {
        public_rate: 3,
        ..CertificateSettings::default()
    };
    let (channel, _stop) = replica(&app, settings).await;
    let mut client = CertificateServiceClient::new(channel);
    let mut refused = None;
    for _ in 0..10 {
        if let Err(e) = client.list_issuer_keys(pb::ListIssuerKeysRequest {}).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the fourth call within a second is refused");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.get_details_retry_info().is_some());
    // VerifyCertificate draws on the same per-address allowance: a burst of them is
    // refused too, before its (empty, so invalid) request is even looked at.
    let mut codes = Vec::new();
    for _ in 0..10 {
        let err = client
            .verify_certificate(pb::VerifyCertificateRequest::default())
            .await
            .unwrap_err();
        codes.push(err.code());
    }
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
}

/// Behind a trusted gateway every connection is the gateway's: the public limit counts
/// the client address the gateway forwards, so one busy client does not block the
/// others; the header is believed only from the gateway.
#[tokio::test]
async fn behind_a_trusted_gateway_the_public_limit_counts_each_client() {
    let app = spawn_app().await;
    let settings = || CertificateSettings {
        public_rate: 3,
        ..CertificateSettings::default()
    };
    let keys = |channel: &Channel, client: &'static str| {
        let mut certificates = CertificateServiceClient::new(channel.clone());
        async move {
            let mut request = tonic::Request::new(pb::ListIssuerKeysRequest {});
            request
                .metadata_mut()
                .insert("x-forwarded-for", client.parse().unwrap());
            certificates.list_issuer_keys(request).await
        }
    };
    let gateway = credit_hub::peer::PeerPolicy::new(
        vec!["127.0.0.1/32".parse().unwrap()],
        credit_hub::peer::DEFAULT_FORWARDED_CERT_HEADER,
    )
    .unwrap();
    let (addr, _stop) = another_server(&app, |s| s.certificates(settings()).peers(gateway)).await;
    let channel = channel_to(addr).await;
    let mut busy = None;
    for _ in 0..10 {
        if let Err(e) = keys(&channel, "198.51.100.7, 203.0.113.5").await {
            busy = Some(e);
            break;
        }
    }
    assert_eq!(
        busy.expect("the busy client is limited").code(),
        Code::ResourceExhausted
    );
    keys(&channel, "203.0.113.6")
        .await
        .expect("another client behind the gateway is served");
    // A gateway that appends its own line after the client's: the last line counts,
    // whatever address the client's own line claims each time.
    let mut appended = None;
    for i in 0..10 {
        let mut request = tonic::Request::new(pb::ListIssuerKeysRequest {});
        let forwarded = request.metadata_mut();
        forwarded.append("x-forwarded-for", format!("198.18.0.{i}").parse().unwrap());
        forwarded.append("x-forwarded-for", "203.0.113.20".parse().unwrap());
        if let Err(e) = CertificateServiceClient::new(channel.clone())
            .list_issuer_keys(request)
            .await
        {
            appended = Some(e);
            break;
        }
    }
    assert_eq!(
        appended
            .expect("the client behind the appended line is limited")
            .code(),
        Code::ResourceExhausted
    );

    // Without a trusted gateway, the header is anybody's claim and counts for nothing.
    let (channel, _stop) = replica(&app, settings()).await;
    let mut refused = false;
    for i in 0..10 {
        let client: &'static str = ["203.0.113.10", "203.0.113.11"][i % 2];
        if keys(&channel, client).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "one connection address, one allowance");
}

#[tokio::test]
async fn a_rotated_key_signs_new_certificates_and_the_old_ones_keep_verifying() {
    let app = spawn_app().await;
    app.register(vec![enterprise(10, ID_A)]).await;
    let old = issue(&app, status_request(10, "before-rotation")).await;
    let rotated = CertificateSettings {
        key_id: "2027-01".into(),
        ..CertificateSettings::default()
    };
    let (channel, _stop) = replica(&app, rotated).await;
    let new = issue_on(&app, &channel, status_request(10, "after-rotation")).await;
    assert_eq!(new.issuer_key_id, "2027-01");
    assert_ne!(old.issuer_key_id, new.issuer_key_id);
    let keys = CertificateServiceClient::new(channel.clone())
        .list_issuer_keys(pb::ListIssuerKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 2);
    let retired = keys.iter().find(|k| k.key_id == old.issuer_key_id).unwrap();
    assert!(retired.valid_until.is_some());
    assert!(keys[1].public_key_multibase.starts_with("z6Mk"));
    for doc in [&old.document, &new.document] {
        let verified = CertificateServiceClient::new(channel.clone())
            .verify_certificate(pb::VerifyCertificateRequest {
                document: doc.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(result_of(&verified), VerificationResult::Valid);
    }

    // The server still holding the retired key (one the rotation has not reached)
    // issues nothing more with it.
    let err = CertificateServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::MarketRegulation),
    )
    .issue_certificate(status_request(10, "stale-key"))
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.get_details_precondition_failure().unwrap().violations[0].r#type,
        "SIGNING_KEY_RETIRED"
    );
    if backend() == "postgres" {
        // An old replica restarting mid-roll-out does not take its key back from the
        // replicas that sign with the new one.
        assert!(!app
            .store
            .register_issuer_key(&retired.key_id, &retired.public_key_multibase)
            .await
            .unwrap());
        let newer = issue_on(&app, &channel, status_request(10, "after-old-restart")).await;
        assert_eq!(newer.issuer_key_id, "2027-01");
    } else {
        // SQLite serves from one process: given its old key again, it signs with it.
        assert!(app
            .store
            .register_issuer_key(&retired.key_id, &retired.public_key_multibase)
            .await
            .unwrap());
        let again = issue(&app, status_request(10, "old-key-again")).await;
        assert_eq!(again.issuer_key_id, retired.key_id);
    }

    // Offline, a key vouches only for what is dated within its published period.
    let listed = |until: &str| {
        serde_json::json!({ "keys": [{
            "keyId": retired.key_id,
            "publicKeyMultibase": retired.public_key_multibase,
            "validFrom": "2000-01-01T00:00:00Z",
            "validUntil": until,
        }]})
        .to_string()
    };
    assert_eq!(
        verify_offline(&old.document, &listed("2099-01-01T00:00:00Z"))
            .unwrap()
            .0,
        VerificationResult::Valid
    );
    let (result, reason) = verify_offline(&old.document, &listed("2001-01-01T00:00:00Z")).unwrap();
    assert_eq!(result, VerificationResult::Tampered, "{reason}");
}

/// The CLI verifies offline with no server and renders a printable page; an
/// independent implementation (Python `cryptography` + a JCS library) accepts the
/// service's certificate and the W3C test vector.
#[tokio::test]
async fn the_cli_and_an_independent_python_verifier_accept_the_certificate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(11, ID_A)]).await;
    app.submit(
        AgencyKind::MarketRegulation,
        vec![penalty(&uscc(11), "p-11")],
    )
    .await;
    let cert = issue(&app, status_request(11, "issue-11")).await;
    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("cert.json");
    let keys_path = dir.path().join("keys.json");
    std::fs::write(&doc_path, &cert.document).unwrap();
    std::fs::write(&keys_path, app.keys_json().await).unwrap();
    let bin = env!("CARGO_BIN_EXE_credit-hub");
    let out = tokio::process::Command::new(bin)
        .args(["cert", "verify"])
        .arg(&doc_path)
        .arg("--issuer-keys")
        .arg(&keys_path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("VALID"), "{stdout}");
    let tampered_path = dir.path().join("tampered.json");
    std::fs::write(&tampered_path, cert.document.replacen("威开", "威丌", 1)).unwrap();
    let out = tokio::process::Command::new(bin)
        .args(["cert", "verify"])
        .arg(&tampered_path)
        .arg("--issuer-keys")
        .arg(&keys_path)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("TAMPERED"));

    let out = tokio::process::Command::new(bin)
        .args(["cert", "render", "--html"])
        .arg(&doc_path)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.path().join("cert.html")).unwrap();
    assert!(html.contains(&cert.serial_number));
    assert!(
        html.contains("行政处罚信息") && html.contains("<svg"),
        "{html}"
    );

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/verify_certificate.py"
    );
    let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/eddsa-jcs-2022");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&doc_path)
        .arg(&keys_path)
        .arg(&tampered_path)
        .arg(vectors)
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python verifier failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "w3c vector: VALID",
            "certificate: VALID",
            "tampered: TAMPERED"
        ]
    );
}

/// The demo's remediation case (what `credit-hub demo` seeds) qualifies as it should.
#[tokio::test]
async fn the_demo_remediation_case_gets_its_certificate() {
    let app = spawn_app().await;
    let market = app
        .store
        .agency_by_token(&app.tokens[&AgencyKind::MarketRegulation])
        .await
        .unwrap()
        .unwrap();
    let uscc = credit_hub::seed::remediation_case(
        &app.store,
        &app.keyer,
        &market,
        credit_hub::api::today(),
    )
    .await
    .unwrap();
    let cert = issue(
        &app,
        pb::IssueCertificateRequest {
            enterprise: uscc.resource_name(),
            kind: pb::CertificateKind::AnnualReportRemediation as i32,
            request_id: "demo".into(),
            ..Default::default()
        },
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&cert.document).unwrap();
    // Two years' listings (the first 200 + 3 × 365 + 60 days ago), and every report owed
    // from the first missed year through the latest already late.
    let late = credit_hub::domain::record::latest_late_report_year;
    let today = credit_hub::api::today();
    let first = late(today - chrono::Duration::days(200 + 3 * 365 + 60));
    let reports = doc["credentialSubject"]["missedAnnualReports"]
        .as_array()
        .unwrap();
    let years: Vec<i64> = reports
        .iter()
        .map(|r| r["reportYear"].as_i64().unwrap())
        .collect();
    let owed: Vec<i64> = (first..=late(today)).map(i64::from).collect();
    assert_eq!(years, owed);
    let listed = reports
        .iter()
        .filter(|r| !r["abnormalListing"].is_null())
        .count();
    assert_eq!(listed, 2);
    assert!(doc["credentialSubject"]["summary"]
        .as_str()
        .unwrap()
        .contains("尚未移出"));
}

/// Processes starting at once with different keys (a rotation rolling out while another
/// replica restarts) take turns registering them: whichever registers last signs, and
/// exactly one key is current, never both.
#[tokio::test]
async fn processes_registering_different_keys_at_once_leave_one_current_key() {
    let app = spawn_app().await;
    for round in 0..20 {
        let [a, b] = ["a", "b"].map(|side| format!("{round}-{side}"));
        let [public_a, public_b] = [&a, &b].map(|id| format!("z-public-{id}"));
        let (first, second) = tokio::join!(
            app.store.register_issuer_key(&a, &public_a),
            app.store.register_issuer_key(&b, &public_b),
        );
        first.unwrap();
        second.unwrap();
        let current: Vec<_> = app
            .store
            .issuer_keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.valid_until.is_none())
            .map(|k| k.key_id)
            .collect();
        assert_eq!(current.len(), 1, "round {round}: current keys {current:?}");
        assert!(current[0].starts_with(&format!("{round}-")), "{current:?}");
    }
}

/// Replicas rolled out together with a new key race to register it; every one of them
/// must come up and serve, not the first alone.
#[tokio::test]
async fn replicas_starting_together_with_a_new_key_all_serve() {
    let app = spawn_app().await;
    let settings = || CertificateSettings {
        key_id: "2027-02".into(),
        signing_key: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        ..CertificateSettings::default()
    };
    let (first, second, third) = tokio::join!(
        replica(&app, settings()),
        replica(&app, settings()),
        replica(&app, settings())
    );
    for (channel, _stop) in [first, second, third] {
        let keys = CertificateServiceClient::new(channel)
            .list_issuer_keys(pb::ListIssuerKeysRequest {})
            .await
            .expect("every replica serves")
            .into_inner()
            .keys;
        let current: Vec<_> = keys.iter().filter(|k| k.valid_until.is_none()).collect();
        assert_eq!(current.len(), 1, "one current key: {keys:?}");
        assert_eq!(current[0].key_id, "2027-02");
    }
}

/// A genuine signature over a serial the register does not hold (made with the key
/// outside the service: a retired key that leaked) is not VALID online.
#[tokio::test]
async fn a_genuine_signature_over_an_unregistered_serial_is_not_trusted() {
    let app = spawn_app().await;
    app.register(vec![enterprise(9, ID_A)]).await;
    let cert = issue(&app, status_request(9, "issue-9")).await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Valid
    );
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.db_url)
        .await
        .unwrap();
    sqlx::query("DELETE FROM certificates WHERE serial = $1")
        .bind(&cert.serial_number)
        .execute(&mut conn)
        .await
        .unwrap();
    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::NotRegistered);
    assert!(
        verified.reason.contains("do not trust"),
        "{}",
        verified.reason
    );
}

/// Whoever holds a leaked issuer key can sign anything, and may reuse a serial the
/// register holds: only the document handed out under that serial is trusted online.
#[tokio::test]
async fn a_genuine_signature_over_other_content_under_a_registered_serial_is_not_trusted() {
    use credit_hub::domain::data_integrity::{sign, ProofOptions};
    let app = spawn_app().await;
    app.register(vec![enterprise(9, ID_A)]).await;
    let leaked = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let (channel, _stop) = replica(
        &app,
        CertificateSettings {
            key_id: "2026-leaked".into(),
            signing_key: leaked.clone(),
            ..CertificateSettings::default()
        },
    )
    .await;
    let cert = issue_on(&app, &channel, status_request(9, "issue-9")).await;
    assert_eq!(
        result_of(&app.verify(&cert.document).await),
        VerificationResult::Valid
    );
    // The same bytes re-spaced are the same document.
    let genuine: serde_json::Value = serde_json::from_str(&cert.document).unwrap();
    assert_eq!(
        result_of(
            &app.verify(&serde_json::to_string_pretty(&genuine).unwrap())
                .await
        ),
        VerificationResult::Valid
    );

    let mut forged = genuine.as_object().unwrap().clone();
    let proof = forged.remove("proof").unwrap();
    let options = ProofOptions {
        verification_method: proof["verificationMethod"].as_str().unwrap().into(),
        created: proof["created"].as_str().unwrap().into(),
    };
    for (field, value) in [
        ("validUntil", serde_json::json!("2099-12-31T00:00:00Z")),
        ("validFrom", serde_json::json!("2020-01-01T00:00:00Z")),
    ] {
        let mut other = forged.clone();
        other.insert(field.into(), value);
        let document = sign(&other, &options, &leaked).to_string();
        let verified = app.verify(&document).await;
        assert_eq!(
            result_of(&verified),
            VerificationResult::NotRegistered,
            "{field}: {verified:?}"
        );
        assert!(verified.reason.contains("do not trust"), "{verified:?}");
    }
    // Signed again with the content unchanged, at another time: not what was handed out.
    let again = ProofOptions {
        created: "2026-01-01T00:00:00Z".into(),
        ..options
    };
    let document = sign(&forged, &again, &leaked).to_string();
    assert_eq!(
        result_of(&app.verify(&document).await),
        VerificationResult::NotRegistered
    );
}

/// Revocations that arrive together: of different requests exactly one succeeds and
/// its reason stays; copies of one request (a client's retries) all get its answer.
#[tokio::test]
async fn revocations_at_once_revoke_once() {
    let app = spawn_app().await;
    app.register(vec![enterprise(3, ID_A), enterprise(4, ID_B)])
        .await;
    let first = issue(&app, status_request(3, "issue-3")).await;
    let second = issue(&app, status_request(4, "issue-4")).await;
    let revoke = |name: &str, reason: String, request_id: String| {
        let mut market = app.certificates(AgencyKind::MarketRegulation);
        let request = pb::RevokeCertificateRequest {
            name: name.into(),
            reason,
            request_id,
        };
        async move { market.revoke_certificate(request).await }
    };
    let answers = futures_join_all(
        (0..8).map(|i| revoke(&first.name, format!("理由 {i}"), format!("revoke-{i}"))),
    )
    .await;
    let won: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().ok())
        .map(|r| {
            r.get_ref()
                .certificate
                .as_ref()
                .unwrap()
                .revocation_reason
                .clone()
        })
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for err in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains(&won[0]), "{err:?}");
        // The condition is the reason a client switches on, as the proto says.
        assert_eq!(
            err.get_details_error_info().unwrap().reason,
            "ALREADY_REVOKED"
        );
    }
    let stored = app
        .certificates(AgencyKind::MarketRegulation)
        .get_certificate(pb::GetCertificateRequest {
            name: first.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .certificate
        .unwrap();
    assert_eq!(stored.revocation_reason, won[0]);

    let answers =
        futures_join_all((0..8).map(|_| revoke(&second.name, "理由".into(), "revoke-same".into())))
            .await;
    let certificates: Vec<pb::Certificate> = answers
        .into_iter()
        .map(|a| {
            a.expect("a retry gets the first answer")
                .into_inner()
                .certificate
                .unwrap()
        })
        .collect();
    assert!(certificates.iter().all(|c| *c == certificates[0]));
}

/// Runs the futures at once on the runtime's threads and answers their results in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("a call"));
    }
    out
}

/// A certificate is for an enterprise resuming business: none is issued for one that
/// was deregistered, and the refusal says why.
#[tokio::test]
async fn no_certificate_is_issued_for_a_deregistered_enterprise() {
    let app = spawn_app().await;
    let mut gone = enterprise(9, ID_A);
    gone.status = pb::EnterpriseStatus::Deregistered as i32;
    app.register(vec![gone]).await;
    let err = CertificateServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::MarketRegulation),
    )
    .issue_certificate(status_request(9, "issue-deregistered"))
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.get_details_error_info().map(|i| i.reason),
        Some("ENTERPRISE_DEREGISTERED".to_string())
    );
    assert_eq!(
        count_sql(&app, "SELECT COUNT(*) FROM certificates").await,
        0
    );
}

/// A withdrawn decision is taken down (Order 45 Art. 11): a certificate stating it no
/// longer describes the enterprise and is superseded, saying which record.
#[tokio::test]
async fn withdrawing_a_stated_record_supersedes_the_certificate() {
    let app = spawn_app().await;
    app.register(vec![enterprise(7, ID_A)]).await;
    app.submit(AgencyKind::MarketRegulation, vec![penalty(&uscc(7), "p-7")])
        .await;
    let cert = issue(&app, status_request(7, "issue-7")).await;
    assert!(
        cert.document.contains("有行政处罚记录1条"),
        "{}",
        cert.document
    );
    let mut records = app.records(AgencyKind::MarketRegulation);
    let filed = records
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: format!("enterprises/{}", uscc(7)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    records
        .withdraw_record(pb::WithdrawRecordRequest {
            name: filed[0].name.clone(),
            reason: "行政复议决定撤销原处罚决定".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Superseded);
    assert!(
        verified.reason.contains(&filed[0].name),
        "{}",
        verified.reason
    );
}

/// A certificate saying the enterprise was listed on its issue date, on the strength of
/// a listing decided after its period, no longer holds once that listing, the only one
/// in force that day, is withdrawn.
#[tokio::test]
async fn withdrawing_the_listing_a_certificate_says_was_in_force_supersedes_it() {
    let app = spawn_app().await;
    app.register(vec![enterprise(8, ID_A)]).await;
    let listed = pb::Record {
        decision_date: date_days_ago(60),
        document_number: "威开市监严〔2026〕8号".into(),
        ..listing(8, "listing-8", pb::SeriousListingCause::SeriousViolation)
    };
    let filed = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![listed],
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let period_end = credit_hub::api::today() - chrono::Duration::days(120);
    let cert = issue(
        &app,
        pb::IssueCertificateRequest {
            period_start_date: (period_end - chrono::Duration::days(200)).to_string(),
            period_end_date: period_end.to_string(),
            ..status_request(8, "issue-8")
        },
    )
    .await;
    assert!(
        cert.document.contains("\"listedOnIssueDate\":true"),
        "{}",
        cert.document
    );
    app.records(AgencyKind::MarketRegulation)
        .withdraw_record(pb::WithdrawRecordRequest {
            name: filed[0].name.clone(),
            reason: "列入决定被依法撤销".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let verified = app.verify(&cert.document).await;
    assert_eq!(result_of(&verified), VerificationResult::Superseded);
}
