use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

/// Upserts `enterprises` as market regulation, expecting the batch to be refused.
async fn refused(app: &TestApp, enterprises: Vec<pb::Enterprise>) -> tonic::Status {
    app.registry(AgencyKind::MarketRegulation)
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises,
        })
        .await
        .unwrap_err()
}

#[tokio::test]
async fn market_regulation_registers_an_enterprise_and_persons_come_back_masked() {
    let app = spawn_app().await;
    let mut e = enterprise(1, ID_A);
    e.former_names = vec!["威海旧名有限公司".into()];
    e.roles = vec![pb::EnterpriseRole {
        kind: pb::RoleKind::Shareholder as i32,
        person: Some(person("李娜", ID_B)),
        start_date: "2020-01-01".into(),
        end_date: String::new(),
    }];
    app.register(vec![e]).await;

    let got = app.enterprise_as(AgencyKind::Court, 1).await;
    assert_eq!(got.name, format!("enterprises/{}", uscc(1)));
    assert_eq!(got.former_names, vec!["威海旧名有限公司"]);
    let rep = got.legal_representative.unwrap();
    assert_eq!(rep.masked_id_number, "110105********002X");
    assert!(rep.id_number.is_empty());
    assert_eq!(got.roles.len(), 1);
    assert_eq!(
        got.roles[0].person.as_ref().unwrap().masked_id_number,
        "990102********0011"
    );
}

#[tokio::test]
async fn a_role_no_longer_given_is_ended_not_deleted() {
    let app = spawn_app().await;
    app.register(vec![enterprise(2, ID_A)]).await;
    app.register(vec![enterprise(2, ID_B)]).await;
    let got = app.enterprise_as(AgencyKind::MarketRegulation, 2).await;
    assert_eq!(
        got.legal_representative.unwrap().masked_id_number,
        "990102********0011"
    );
    let past: Vec<_> = got
        .roles
        .iter()
        .filter(|r| r.kind == pb::RoleKind::LegalRepresentative as i32)
        .collect();
    assert_eq!(
        past.len(),
        1,
        "the former legal representative stays in history"
    );
    assert_eq!(
        past[0].end_date,
        app.clock.today().to_string(),
        "ended the day it was no longer given"
    );
}

#[tokio::test]
async fn only_market_regulation_maintains_the_registry() {
    let app = spawn_app().await;
    let err = app
        .registry(AgencyKind::Court)
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises: vec![enterprise(3, ID_A)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(app.store.count_enterprises().await.unwrap(), 0);
}

#[tokio::test]
async fn unknown_enterprise_is_not_found() {
    let app = spawn_app().await;
    let err = app
        .registry(AgencyKind::Tax)
        .get_enterprise(pb::GetEnterpriseRequest {
            name: format!("enterprises/{}", uscc(99)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Which resource was missing, for clients that work through lists.
    let info = tonic_types::StatusExt::get_details_resource_info(&err).expect("ResourceInfo");
    assert_eq!(info.resource_type, "enterprises");
    assert_eq!(info.resource_name, format!("enterprises/{}", uscc(99)));
}

#[tokio::test]
async fn listing_filters_and_pages_through_every_enterprise_once() {
    let app = spawn_app().await;
    let mut batch = Vec::new();
    for n in 0..25 {
        let mut e = enterprise(100 + n, ID_A);
        if n % 5 == 0 {
            e.region_code = "371003".into();
            e.industry_code = "F5211".into();
        }
        batch.push(e);
    }
    app.register(batch).await;
    let mut client = app.registry(AgencyKind::Education);
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_enterprises(pb::ListEnterprisesRequest {
                page_size: 7,
                page_token: token,
                region_code: "371002".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.enterprises.len() <= 7);
        seen.extend(page.enterprises.into_iter().map(|e| e.uscc));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 20);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "ordered by USCC without repeats");

    let f = client
        .list_enterprises(pb::ListEnterprisesRequest {
            industry_code: "F52".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.enterprises.len(), 5);

    let first = client
        .list_enterprises(pb::ListEnterprisesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_enterprises(pb::ListEnterprisesRequest {
            page_size: 2,
            page_token: first.next_page_token,
            region_code: "371003".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["page_token"]);
}

#[tokio::test]
async fn a_batch_repeating_a_uscc_is_refused_whole() {
    let app = spawn_app().await;
    let err = refused(&app, vec![enterprise(5, ID_A), enterprise(5, ID_B)]).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["enterprises[1].uscc"]);
    assert_eq!(app.store.count_enterprises().await.unwrap(), 0);
}

#[tokio::test]
async fn a_batch_naming_one_enterprise_twice_in_different_case_is_refused() {
    let app = spawn_app().await;
    // A USCC whose check character is a letter, so that its case can differ.
    let n = (1..)
        .find(|&n| uscc(n).ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap();
    let mut lower = enterprise(n, ID_B);
    lower.uscc = uscc(n).to_ascii_lowercase();
    let err = refused(&app, vec![enterprise(n, ID_A), lower]).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["enterprises[1].uscc"]);
    let err = app
        .registry(AgencyKind::MarketRegulation)
        .get_enterprise(pb::GetEnterpriseRequest {
            name: format!("enterprises/{}", uscc(n)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn an_enterprise_without_its_establishment_date_is_refused() {
    let app = spawn_app().await;
    let mut e = enterprise(3, ID_A);
    e.established_date.clear();
    let err = refused(&app, vec![e]).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        vec!["enterprises[0].established_date"]
    );
}

/// The bureau hands the legal representative's role over and says when the old one
/// ended: one ended role, on that date, not a second one ending today.
#[tokio::test]
async fn a_representative_handed_over_with_its_end_date_is_ended_once_on_that_date() {
    let app = spawn_app().await;
    // Handed over without and with the tenure's start date (the current representative
    // is registered without one).
    for (n, start) in [(5, ""), (6, "2020-01-01")] {
        app.register(vec![enterprise(n, ID_A)]).await;
        let mut handed_over = enterprise(n, ID_B);
        handed_over.roles = vec![pb::EnterpriseRole {
            kind: pb::RoleKind::LegalRepresentative as i32,
            person: Some(person("张伟", ID_A)),
            start_date: start.into(),
            end_date: "2026-03-01".into(),
        }];
        app.register(vec![handed_over]).await;
        let got = app.enterprise_as(AgencyKind::MarketRegulation, n).await;
        let former: Vec<&pb::EnterpriseRole> = got
            .roles
            .iter()
            .filter(|r| {
                r.kind == pb::RoleKind::LegalRepresentative as i32
                    && r.person.as_ref().unwrap().masked_id_number == "110105********002X"
            })
            .collect();
        assert_eq!(former.len(), 1, "{:?}", got.roles);
        assert_eq!(former[0].end_date, "2026-03-01");
        assert_eq!(former[0].start_date, start);
    }
}

/// A handover that sends the outgoing representative's earlier, already ended tenure
/// back as it was read ends the current tenure today and leaves the old one as it was.
#[tokio::test]
async fn a_handover_sending_back_an_earlier_tenure_keeps_it_as_it_was() {
    let app = spawn_app().await;
    let earlier = pb::EnterpriseRole {
        kind: pb::RoleKind::LegalRepresentative as i32,
        person: Some(person("张伟", ID_A)),
        start_date: "2005-01-01".into(),
        end_date: "2008-06-30".into(),
    };
    let mut first = enterprise(8, ID_A);
    first.roles = vec![earlier.clone()];
    app.register(vec![first]).await;
    let mut handed_over = enterprise(8, ID_B);
    handed_over.roles = vec![earlier];
    app.register(vec![handed_over]).await;
    let got = app.enterprise_as(AgencyKind::MarketRegulation, 8).await;
    let mut tenures: Vec<(String, String)> = got
        .roles
        .iter()
        .filter(|r| {
            r.kind == pb::RoleKind::LegalRepresentative as i32
                && r.person.as_ref().unwrap().masked_id_number == "110105********002X"
        })
        .map(|r| (r.start_date.clone(), r.end_date.clone()))
        .collect();
    tenures.sort();
    let today = app.clock.today().to_string();
    assert_eq!(
        tenures,
        [
            (String::new(), today),
            ("2005-01-01".to_string(), "2008-06-30".to_string())
        ],
        "{:?}",
        got.roles
    );
}

/// A person's role is listed once: the same current role twice, or the same tenure
/// twice, is refused naming the repeat (it would be stored and shown twice), while two
/// different tenures of one person are two roles.
#[tokio::test]
async fn a_role_listed_twice_is_refused() {
    let app = spawn_app().await;
    let role = |start: &str, end: &str| pb::EnterpriseRole {
        kind: pb::RoleKind::Shareholder as i32,
        person: Some(person("李娜", ID_B)),
        start_date: start.into(),
        end_date: end.into(),
    };
    for roles in [
        vec![role("2020-01-01", ""), role("", "")],
        vec![
            role("2018-01-01", "2019-01-01"),
            role("2018-01-01", "2019-01-01"),
        ],
        // Two tenures in one role cannot end the same day.
        vec![role("2018-01-01", "2019-01-01"), role("", "2019-01-01")],
    ] {
        let mut e = enterprise(1, ID_A);
        e.roles = roles;
        let err = refused(&app, vec![e]).await;
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["enterprises[0].roles[1]"]);
    }
    let mut e = enterprise(1, ID_A);
    e.roles = vec![role("2018-01-01", "2019-01-01"), role("2020-01-01", "")];
    app.register(vec![e]).await;
    assert_eq!(app.enterprise_as(AgencyKind::Court, 1).await.roles.len(), 2);
}

/// Restating a current role with a corrected name or start date corrects it: the same
/// person in the same role is not a new role, and the correction is not dropped.
#[tokio::test]
async fn a_corrected_name_or_start_date_of_a_current_role_is_kept() {
    let app = spawn_app().await;
    let shareholder = |start: &str| pb::EnterpriseRole {
        kind: pb::RoleKind::Shareholder as i32,
        person: Some(person("李娜", ID_B)),
        start_date: start.into(),
        end_date: String::new(),
    };
    let mut e = enterprise(1, ID_A);
    e.roles = vec![shareholder("2020-01-01")];
    app.register(vec![e.clone()]).await;

    e.legal_representative = Some(person("张炜", ID_A));
    e.roles = vec![shareholder("2019-06-01")];
    app.register(vec![e]).await;
    let got = app.enterprise_as(AgencyKind::Court, 1).await;
    assert_eq!(got.legal_representative.unwrap().name, "张炜");
    assert_eq!(got.roles.len(), 1, "{:?}", got.roles);
    assert_eq!(got.roles[0].start_date, "2019-06-01");
    assert!(got.roles[0].end_date.is_empty());
}

/// The register holds what is so today: no enterprise established, and no role begun
/// or ended, after today. A name given on input may differ from `enterprises/{uscc}`
/// only in letter case (USCCs are read case-insensitively).
#[tokio::test]
async fn future_dates_are_refused_and_the_name_may_differ_in_case() {
    let app = spawn_app().await;
    let tomorrow = (credit_hub::api::today() + chrono::Duration::days(1)).to_string();
    let mut e = enterprise(1, ID_A);
    e.established_date = tomorrow.clone();
    e.roles = vec![
        pb::EnterpriseRole {
            kind: pb::RoleKind::Shareholder as i32,
            person: Some(person("李娜", ID_B)),
            start_date: "2020-01-01".into(),
            end_date: tomorrow.clone(),
        },
        pb::EnterpriseRole {
            kind: pb::RoleKind::Executive as i32,
            person: Some(person("李娜", ID_B)),
            start_date: tomorrow,
            end_date: String::new(),
        },
    ];
    let err = refused(&app, vec![e]).await;
    assert_eq!(
        violated_fields(&err),
        [
            "enterprises[0].established_date",
            "enterprises[0].roles[0].end_date",
            "enterprises[0].roles[1].start_date",
        ]
    );
    let mut e = enterprise(1, ID_A);
    e.uscc = e.uscc.to_lowercase();
    e.name = format!("enterprises/{}", e.uscc);
    app.register(vec![e]).await;
    assert_eq!(
        app.enterprise_as(AgencyKind::Court, 1).await.name,
        format!("enterprises/{}", uscc(1))
    );
}

/// 李娜's executive role from `start` to `end` (empty: open).
fn executive(start: &str, end: &str) -> pb::EnterpriseRole {
    pb::EnterpriseRole {
        kind: pb::RoleKind::Executive as i32,
        person: Some(person("李娜", ID_B)),
        start_date: start.into(),
        end_date: end.into(),
    }
}

/// The (start, end) of every executive tenure of `e`, in order.
fn tenures(e: &pb::Enterprise) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = e
        .roles
        .iter()
        .filter(|r| r.kind == pb::RoleKind::Executive as i32)
        .map(|r| (r.start_date.clone(), r.end_date.clone()))
        .collect();
    t.sort();
    t
}

/// A current role the registry later gives as ended is that tenure ended: given again
/// (the next day's sync), or with its start date corrected, it stays one tenure, not a
/// second row beside it or one ending today.
#[tokio::test]
async fn an_ended_tenure_given_again_or_with_a_corrected_start_stays_one_tenure() {
    let app = spawn_app().await;
    for (n, given_start, kept_start) in [(9, "", "2020-01-01"), (10, "2019-06-01", "2019-06-01")] {
        let mut e = enterprise(n, ID_A);
        e.roles = vec![executive("2020-01-01", "")];
        app.register(vec![e.clone()]).await;
        e.roles = vec![executive(given_start, "2026-03-01")];
        for _ in 0..2 {
            app.register(vec![e.clone()]).await;
            let got = app.enterprise_as(AgencyKind::MarketRegulation, n).await;
            assert_eq!(
                tenures(&got),
                [(kept_start.to_string(), "2026-03-01".to_string())],
                "{:?}",
                got.roles
            );
        }
    }
}

/// An ended tenure stored without its start date (the current role had none when it
/// ended) takes the start the registry gives later: one tenure, not a second beside it.
#[tokio::test]
async fn an_ended_tenure_takes_a_start_date_given_later() {
    let app = spawn_app().await;
    let mut e = enterprise(14, ID_A);
    e.roles = vec![executive("", "")];
    app.register(vec![e.clone()]).await;
    e.roles = vec![executive("", "2026-03-01")];
    app.register(vec![e.clone()]).await;
    e.roles = vec![executive("2019-06-01", "2026-03-01")];
    for _ in 0..2 {
        app.register(vec![e.clone()]).await;
        let got = app.enterprise_as(AgencyKind::MarketRegulation, 14).await;
        assert_eq!(
            tenures(&got),
            [("2019-06-01".to_string(), "2026-03-01".to_string())],
            "{:?}",
            got.roles
        );
    }
}

/// An ended tenure that is not the current one stays apart from it: one that ended the
/// day the current one began is the earlier tenure, and one sent back without its start
/// is the stored tenure that ended that day. The current tenure then ends today. (One
/// that began and ended that day is the current tenure, of one day.)
#[tokio::test]
async fn an_earlier_tenure_is_not_taken_for_the_current_one() {
    let app = spawn_app().await;
    let today = app.clock.today().to_string();
    for (n, first, then, expected) in [
        (
            11,
            vec![executive("2020-01-01", "")],
            vec![executive("2015-01-01", "2020-01-01")],
            vec![("2015-01-01", "2020-01-01"), ("2020-01-01", today.as_str())],
        ),
        (
            12,
            vec![executive("2015-01-01", "2018-06-30"), executive("", "")],
            vec![executive("", "2018-06-30")],
            vec![("", today.as_str()), ("2015-01-01", "2018-06-30")],
        ),
        // A tenure of one day is the current one, ended the day it began.
        (
            13,
            vec![executive("2020-01-01", "")],
            vec![executive("2020-01-01", "2020-01-01")],
            vec![("2020-01-01", "2020-01-01")],
        ),
    ] {
        let mut e = enterprise(n, ID_A);
        e.roles = first;
        app.register(vec![e.clone()]).await;
        e.roles = then;
        app.register(vec![e]).await;
        let got = app.enterprise_as(AgencyKind::MarketRegulation, n).await;
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(s, e)| (s.to_string(), e.to_string()))
            .collect();
        assert_eq!(tenures(&got), expected, "enterprise {n}: {:?}", got.roles);
    }
}

/// Roles come back in one order on both backends: by kind, a role without a start date
/// before the dated ones (SQLite and PostgreSQL sort a missing date differently).
#[tokio::test]
async fn roles_without_a_start_date_come_first_on_either_backend() {
    let app = spawn_app().await;
    let role = |name: &str, n: u32, start: &str| pb::EnterpriseRole {
        kind: pb::RoleKind::Shareholder as i32,
        person: Some(person(name, &synthetic_id(n))),
        start_date: start.into(),
        end_date: String::new(),
    };
    app.register(vec![pb::Enterprise {
        roles: vec![role("李娜", 31, "2020-01-01"), role("王芳", 32, "")],
        ..enterprise(31, ID_B)
    }])
    .await;
    let got = app.enterprise_as(AgencyKind::MarketRegulation, 31).await;
    let shareholders: Vec<(String, String)> = got
        .roles
        .iter()
        .filter(|r| r.kind == pb::RoleKind::Shareholder as i32)
        .map(|r| {
            (
                r.person.as_ref().unwrap().name.clone(),
                r.start_date.clone(),
            )
        })
        .collect();
    assert_eq!(
        shareholders,
        [
            ("王芳".to_string(), String::new()),
            ("李娜".to_string(), "2020-01-01".to_string())
        ]
    );
}
