use credit_hub::cli::Bearer;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = spawn_app().await;
    let mut anonymous =
        pb::registry_service_client::RegistryServiceClient::new(app.channel.clone());
    let err = anonymous
        .get_enterprise(pb::GetEnterpriseRequest {
            name: format!("enterprises/{}", uscc(1)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut forged = pb::record_service_client::RecordServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::new("chub_not-a-real-token").unwrap(),
    );
    let err = forged
        .list_records(pb::ListRecordsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Services still to be built authenticate first too.
    let mut grades = pb::grade_service_client::GradeServiceClient::new(app.channel.clone());
    let err = grades
        .get_credit_grade(pb::GetCreditGradeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_revoked_agency_is_refused() {
    let app = spawn_app().await;
    app.store
        .revoke_agency(&app.agency_ids[&AgencyKind::Court])
        .await
        .unwrap();
    let err = app
        .records(AgencyKind::Court)
        .list_records(pb::ListRecordsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_missing_scope_is_refused_before_existence_is_checked() {
    let app = spawn_app().await;
    // Vetting offices hold no records scope: the answer must not reveal whether the
    // record exists.
    let mut vetting = app.records(AgencyKind::VettingOffice);
    let err = vetting
        .get_record(pb::GetRecordRequest {
            name: "records/doesnotexist".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = vetting
        .batch_submit_records(pb::BatchSubmitRecordsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn health_reports_readiness_without_a_token() {
    let app = spawn_app().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let mut status = 0;
    for _ in 0..50 {
        status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "readiness".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .unwrap_or(0);
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// `agency rotate-token` gives an agency a new token: the old one is refused, the new
/// one acts as the same agency (its records stay its own).
#[tokio::test]
async fn a_rotated_token_replaces_the_old_one_for_the_same_agency() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
            .args(args)
            .args(app.storage_flags())
            .output()
            .expect("run credit-hub");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap().trim().to_string(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (old, said) = cli(&["agency", "add", "--name", "轮换法院", "--kind", "court"]);
    let id = said
        .split_whitespace()
        .find_map(|w| w.strip_prefix("agencies/"))
        .expect("the new agency's id")
        .to_string();
    let (new, _) = cli(&["agency", "rotate-token", &id]);
    assert_ne!(old, new);
    let get = |token: &str| {
        let mut client = pb::registry_service_client::RegistryServiceClient::with_interceptor(
            app.channel.clone(),
            Bearer::new(token).unwrap(),
        );
        async move {
            client
                .get_enterprise(pb::GetEnterpriseRequest {
                    name: format!("enterprises/{}", uscc(1)),
                })
                .await
        }
    };
    assert_eq!(get(&old).await.unwrap_err().code(), Code::Unauthenticated);
    get(&new).await.expect("the new token serves");
    let listed = app.store.list_agencies().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|l| l.agency.display_name == "轮换法院")
            .count(),
        1,
        "still one agency"
    );
}
