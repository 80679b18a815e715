use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

/// A USCC with its last character changed, so only the check character is wrong.
fn bad_check_uscc() -> String {
    let mut u = uscc(1);
    let last = u.pop().unwrap();
    u.push(if last == '0' { '1' } else { '0' });
    u
}

#[tokio::test]
async fn every_malformed_identifier_is_refused_naming_the_field_and_nothing_is_written() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let registry = app.registry(AgencyKind::MarketRegulation);
    let records = app.records(AgencyKind::Court);

    let check = |status: tonic::Status, field: &str, rule: &str| {
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        use tonic_types::StatusExt;
        let bad = status
            .get_details_bad_request()
            .expect("BadRequest details");
        let v = bad
            .field_violations
            .iter()
            .find(|v| v.field == field)
            .unwrap_or_else(|| panic!("no violation for {field}: {:?}", bad.field_violations));
        assert!(
            v.description.contains(rule),
            "{field}: {:?} should mention {rule:?}",
            v.description
        );
        assert!(
            !v.description.contains("1101051949"),
            "violations never repeat an ID number"
        );
    };

    // Enterprise USCC: length, character set, check character, organisation code.
    for (uscc_text, rule) in [
        ("91371002", "18 characters"),
        ("91371002300000I01X", "not in 0-9"),
        (bad_check_uscc().as_str(), "check character"),
    ] {
        let mut e = enterprise(2, ID_A);
        e.uscc = uscc_text.to_string();
        let err = registry
            .clone()
            .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
                request_id: String::new(),
                enterprises: vec![enterprise(3, ID_A), e],
            })
            .await
            .unwrap_err();
        check(err, "enterprises[1].uscc", rule);
    }
    let mut org = uscc(1).into_bytes();
    org[16] = if org[16] == b'0' { b'1' } else { b'0' };
    let mut e = enterprise(2, ID_A);
    e.uscc = String::from_utf8(org).unwrap();
    let err = registry
        .clone()
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises: vec![e],
        })
        .await
        .unwrap_err();
    check(err, "enterprises[0].uscc", "organisation-code");

    // Person ID numbers: check character, impossible date, length, inside roles too.
    for (id, rule) in [
        (ID_A.replace("002X", "0021"), "should be 'X'"),
        (ID_A.replace("1231002X", "02300020"), "birth date"),
        (ID_A[..10].to_string(), "18 characters"),
        (unborn_id(), "has not come yet"),
    ] {
        let id = id.as_str();
        let mut e = enterprise(2, id);
        e.roles = vec![pb::EnterpriseRole {
            kind: pb::RoleKind::Executive as i32,
            person: Some(person("李娜", id)),
            ..Default::default()
        }];
        let err = registry
            .clone()
            .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
                request_id: String::new(),
                enterprises: vec![e],
            })
            .await
            .unwrap_err();
        check(
            err.clone(),
            "enterprises[0].legal_representative.id_number",
            rule,
        );
        check(err, "enterprises[0].roles[0].person.id_number", rule);
    }

    // Resource names.
    let err = registry
        .clone()
        .get_enterprise(pb::GetEnterpriseRequest {
            name: format!("enterprises/{}", bad_check_uscc()),
        })
        .await
        .unwrap_err();
    check(err, "name", "check character");
    let err = registry
        .clone()
        .get_enterprise(pb::GetEnterpriseRequest { name: uscc(1) })
        .await
        .unwrap_err();
    check(err, "name", "enterprises/{uscc}");

    // Record subjects, in a batch whose other record is fine.
    let err = records
        .clone()
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![
                debtor(person("王磊", ID_A), "C-1"),
                debtor(person("王磊", &ID_A.replace('X', "Y")), "C-2"),
            ],
        })
        .await
        .unwrap_err();
    check(err, "records[1].subject.person.id_number", "digit or X");
    let mut mr = penalty(&bad_check_uscc(), "P-1");
    mr.provenance = None;
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![mr],
        })
        .await
        .unwrap_err();
    check(
        err.clone(),
        "records[0].subject.enterprise",
        "check character",
    );
    check(err, "records[0].provenance", "required");

    // Look-ups by ID number.
    let err = records
        .clone()
        .list_records(pb::ListRecordsRequest {
            subject_person_id_number: ID_A.replace("002X", "0021"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    check(err, "subject_person_id_number", "check character");
    let err = records
        .clone()
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: "enterprises/123".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    check(err, "subject_enterprise", "18 characters");

    assert_eq!(app.store.count_enterprises().await.unwrap(), 1);
    assert_eq!(app.store.count_records().await.unwrap(), 0);
}

#[tokio::test]
async fn enums_dates_and_sizes_are_checked_with_their_field_paths() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut r = penalty(&uscc(1), "P-1");
    r.kind = 0;
    r.tier = 99;
    r.domain = pb::RegulatoryDomain::Drugs as i32;
    r.decision_date = "20260101".into();
    r.fine_amount_fen = -1;
    let err = app
        .records(AgencyKind::MarketRegulation)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![r],
        })
        .await
        .unwrap_err();
    let fields = violated_fields(&err);
    for f in [
        "records[0].kind",
        "records[0].tier",
        "records[0].decision_date",
    ] {
        assert!(
            fields.contains(&f.to_string()),
            "{f} missing from {fields:?}"
        );
    }
    let err = app
        .registry(AgencyKind::Court)
        .list_enterprises(pb::ListEnterprisesRequest {
            page_size: -5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["page_size"]);
}

/// A checksum-valid ID number of someone born next year.
fn unborn_id() -> String {
    use chrono::Datelike;
    let year = chrono::Utc::now().year() + 1;
    let mut digits = format!("990101{year}0101002");
    digits.push(credit_hub::domain::ids::IdNumber::check_char(
        digits.as_bytes(),
    ));
    digits
}
