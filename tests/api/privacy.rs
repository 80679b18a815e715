use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use credit_hub::seed::{seed, SeedPlan};

use crate::helpers::*;

/// Finds every 18-character run, not part of a longer alphanumeric run (so not a slice
/// of a hex digest), that is a checksum-valid resident ID number.
fn full_id_numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let alnum = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric());
    let mut found = Vec::new();
    for start in 0..chars.len().saturating_sub(17) {
        if (start > 0 && alnum(start - 1)) || alnum(start + 18) {
            continue;
        }
        let candidate: String = chars[start..start + 18].iter().collect();
        if candidate.is_ascii() && credit_hub::domain::ids::IdNumber::parse(&candidate).is_ok() {
            found.push(candidate);
        }
    }
    found
}

#[tokio::test]
async fn no_full_id_number_is_stored_after_submitting_persons() {
    let app = spawn_app().await;
    let mut e = enterprise(1, ID_A);
    e.roles = vec![pb::EnterpriseRole {
        kind: pb::RoleKind::Shareholder as i32,
        person: Some(person("李娜", ID_B)),
        ..Default::default()
    }];
    app.registry(AgencyKind::MarketRegulation)
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: "reg-1".into(),
            enterprises: vec![e],
        })
        .await
        .unwrap();
    app.records(AgencyKind::Court)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "court-1".into(),
            records: vec![
                debtor(person("王磊", ID_A), "C-1"),
                debtor(person("李娜", ID_B), "C-2"),
            ],
        })
        .await
        .unwrap();
    let dump = app.store.dump_text_columns().await.unwrap();
    assert!(
        dump.iter().any(|(t, _, _)| t == "records"),
        "the dump covers the records table"
    );
    for (table, column, value) in &dump {
        let ids = full_id_numbers(value);
        assert!(ids.is_empty(), "{table}.{column} holds a full ID number");
        for id in [ID_A, ID_B] {
            assert!(
                !value.to_uppercase().contains(id),
                "{table}.{column} holds a submitted ID number"
            );
        }
    }
}

/// An ID number typed where it does not belong (a record's summary, a withdrawal's
/// reason, a candidate's name, the path of a call) is refused or masked, never stored.
#[tokio::test]
async fn an_id_number_in_free_text_or_a_path_is_refused_or_masked_never_stored() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let spaced = "１１０１０５ １９４９１２３１ ００２Ｘ"; // ID_A, full-width and grouped
    let mut record = penalty(&uscc(1), "P-1");
    record.summary = format!("被执行人王五（身份证号{ID_A}）拒不履行");
    let mut second = penalty(&uscc(1), "P-2");
    second.summary = format!("当事人 {spaced}");
    // A soft hyphen, pasted from a document, is drawn as nothing: the number is whole.
    let mut third = penalty(&uscc(1), "P-3");
    third.summary = format!("当事人{}\u{ad}{}", &ID_A[..9], &ID_A[9..]);
    // A first-generation (15-digit) number is someone's ID number too.
    let mut fourth = penalty(&uscc(1), "P-4");
    fourth.summary = "当事人王五（身份证号110105491231001）".into();
    let mut records = app.records(AgencyKind::MarketRegulation);
    let err = records
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "with-id".into(),
            records: vec![penalty(&uscc(1), "P-0"), record, second, third, fourth],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        [
            "records[1].summary",
            "records[2].summary",
            "records[3].summary",
            "records[4].summary"
        ]
    );
    assert!(
        err.message().contains("resident ID number"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains(ID_A));

    // The batch wrote nothing; a record filed cleanly cannot be withdrawn with one.
    let filed = records
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: "clean".into(),
            records: vec![penalty(&uscc(1), "P-0")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filed.records.len(), 1);
    let err = records
        .withdraw_record(pb::WithdrawRecordRequest {
            name: filed.records[0].name.clone(),
            reason: format!("系{ID_A}本人申请"),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);

    // A candidate whose ID number landed in the name column: refused, and shown (and
    // kept in the report) masked.
    let mut office = pb::vetting_service_client::VettingServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::VettingOffice),
    );
    let mut stream = office
        .cross_check(pb::CrossCheckRequest {
            purpose: pb::VettingPurpose::VillageCommitteeCandidate as i32,
            case_reference: "2026-村委-001".into(),
            candidates: vec![
                pb::Candidate {
                    name: format!("张三 {ID_A}"),
                    id_number: String::new(),
                    declared_enterprises: vec![],
                },
                // Split by a control character (refused in a name): echoed masked.
                pb::Candidate {
                    name: format!("{}\u{7f}{}", &ID_A[..6], &ID_A[6..]),
                    id_number: String::new(),
                    declared_enterprises: vec![],
                },
            ],
            request_id: "swapped-columns".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut names = Vec::new();
    while let Some(message) = tokio_stream::StreamExt::next(&mut stream).await {
        if let Some(pb::cross_check_response::Event::Result(r)) = message.unwrap().event {
            assert_eq!(r.verdict, pb::Verdict::Invalid as i32, "{r:?}");
            names.push(r.name);
        }
    }
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], "张三 110105********002X");
    assert!(!names[1].contains("1231002"), "{names:?}");

    // A case reference goes into the audit chain for good: one naming the candidate by
    // a first-generation number, or by a number written in groups, is refused.
    let dashed = format!("{}-{}-{}", &ID_A[..6], &ID_A[6..14], &ID_A[14..]);
    for case_reference in [
        "张三政审 110105491231001".to_string(),
        format!("政审{dashed}"),
    ] {
        let err = office
            .cross_check(pb::CrossCheckRequest {
                purpose: pb::VettingPurpose::VillageCommitteeCandidate as i32,
                case_reference: case_reference.clone(),
                candidates: vec![pb::Candidate {
                    name: "张三".into(),
                    id_number: ID_A.into(),
                    declared_enterprises: vec![],
                }],
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&err),
            ["case_reference"],
            "{case_reference}"
        );
        let err = app
            .grades(AgencyKind::Tax)
            .get_credit_grade(pb::GetCreditGradeRequest {
                name: format!("enterprises/{}", uscc(1)),
                purpose: pb::Purpose::TaxAdministration as i32,
                case_reference,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&err), ["case_reference"]);
    }

    // A call to a path the service does not have, naming an ID number, without a token.
    let answer = crate::raw::call(
        app.channel.clone(),
        credit_hub::cli::Bearer::none(),
        &format!("/credithub.v1.RecordService/{ID_A}"),
        false,
        bytes::Bytes::new(),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(answer.code(), tonic::Code::Unauthenticated);
    // So is one outside the service's package that looks like health's: only the
    // served health methods are exempt.
    let answer = crate::raw::call(
        app.channel.clone(),
        credit_hub::cli::Bearer::none(),
        "/grpc.health.v9.Health/Check",
        false,
        bytes::Bytes::new(),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(answer.code(), tonic::Code::Unauthenticated);
    let unknown = app
        .audit_entries(pb::ListAuditEntriesRequest {
            method: "unknown".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(unknown.len(), 2, "{unknown:?}");
    assert!(unknown.iter().all(|e| e.outcome == "UNAUTHENTICATED"));

    // Request ids go into every entry of their call: one holding an ID number is
    // refused in a body and replaced in the x-request-id header, token or none.
    let err = records
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: format!("retry-{ID_A}"),
            records: vec![penalty(&uscc(1), "P-9")],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["request_id"]);
    assert!(!err.message().contains(ID_A), "{}", err.message());
    let mut anonymous = pb::grade_service_client::GradeServiceClient::new(app.channel.clone());
    let mut request = tonic::Request::new(pb::GetCreditGradeRequest {
        name: format!("enterprises/{}", uscc(1)),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", format!("trace-{ID_A}").parse().unwrap());
    let err = anonymous.get_credit_grade(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let echoed = err
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(!echoed.contains(ID_A) && !echoed.is_empty(), "{echoed}");

    for (table, column, value) in app.store.dump_text_columns().await.unwrap() {
        assert!(
            full_id_numbers(&value).is_empty() && !value.to_uppercase().contains(ID_A),
            "{table}.{column} holds a full ID number"
        );
        assert!(
            !credit_hub::domain::id_scan::contains_id_number(&value),
            "{table}.{column} holds an ID number"
        );
    }
}

#[tokio::test]
async fn seeded_demo_data_holds_no_full_id_number_and_is_deterministic() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let keyer = credit_hub::domain::ids::PersonKeyer::new(b"seed-test-secret-0123".to_vec());
    let today = credit_hub::api::today();
    let plan = SeedPlan {
        seed: 42,
        enterprises: 300,
        records: 600,
    };
    let a = fresh_store(dir_a.path()).await;
    let b = fresh_store(dir_b.path()).await;
    seed(&a, &keyer, plan, today, &|_, _| {}).await.unwrap();
    seed(&b, &keyer, plan, today, &|_, _| {}).await.unwrap();
    assert_eq!(a.count_enterprises().await.unwrap(), 300);
    assert_eq!(a.count_records().await.unwrap(), 600);
    let first = |s: credit_hub::store::Store| async move {
        s.list_enterprises(&Default::default(), None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.uscc, e.display_name))
            .collect::<Vec<_>>()
    };
    assert_eq!(first(a.clone()).await, first(b).await);
    // The bureau has inspectors to draw for every domain.
    let bureau = a
        .list_agencies()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.agency.kind == AgencyKind::MarketRegulation)
        .unwrap();
    let inspectors = a.inspectors_of(&bureau.agency.id).await.unwrap();
    for domain in credit_hub::domain::codes::RegulatoryDomain::ALL {
        let qualified = inspectors
            .iter()
            .filter(|i| i.domains.contains(domain))
            .count();
        assert!(qualified >= 2, "{domain:?}: {qualified} inspectors");
    }
    // Records from every one of the district's 22 domains.
    let domains: std::collections::BTreeSet<String> = a
        .dump_text_columns()
        .await
        .unwrap()
        .into_iter()
        .filter(|(table, column, _)| table == "records" && column == "domain")
        .map(|(_, _, value)| value)
        .collect();
    assert_eq!(
        domains.len(),
        credit_hub::domain::codes::RegulatoryDomain::ALL.len(),
        "{domains:?}"
    );
    for (table, column, value) in a.dump_text_columns().await.unwrap() {
        assert!(
            full_id_numbers(&value).is_empty(),
            "{table}.{column} holds a full ID number"
        );
    }
    assert!(
        seed(&a, &keyer, plan, today, &|_, _| {}).await.is_err(),
        "seed refuses a filled database"
    );
}

/// A log sink for one test: every event at every level, as text.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_and_id_numbers_never_reach_logs_or_debug_output() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    // The test runtime is single-threaded, so the server's tasks log here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    app.records(AgencyKind::Court)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![debtor(person("李四", ID_B), "d1")],
        })
        .await
        .unwrap();
    let forged = "chub_forged-secret-token-value";
    let _ = pb::registry_service_client::RegistryServiceClient::with_interceptor(
        app.channel.clone(),
        credit_hub::cli::Bearer::new(forged).unwrap(),
    )
    .get_enterprise(pb::GetEnterpriseRequest::default())
    .await;
    app.grade_of(1).await;
    // A path that is no method of the service, naming a person.
    let answer = crate::raw::call(
        app.channel.clone(),
        app.bearer(AgencyKind::Court),
        &format!("/credithub.v1.GradeService/{ID_B}"),
        false,
        bytes::Bytes::new(),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(answer.code(), tonic::Code::Unimplemented);
    // A cross-check, with one malformed ID among the candidates.
    let typo = format!("{}0", &ID_B[..17]);
    let mut stream = pb::vetting_service_client::VettingServiceClient::with_interceptor(
        app.channel.clone(),
        app.bearer(AgencyKind::VettingOffice),
    )
    .cross_check(pb::CrossCheckRequest {
        purpose: pb::VettingPurpose::PartyMemberDevelopment as i32,
        case_reference: "2026-组织-001".into(),
        candidates: [("张伟", ID_A), ("李四", ID_B), ("王五", typo.as_str())]
            .into_iter()
            .map(|(name, id)| pb::Candidate {
                name: name.into(),
                id_number: id.into(),
                declared_enterprises: vec![],
            })
            .collect(),
        request_id: String::new(),
    })
    .await
    .unwrap()
    .into_inner();
    let mut answered = 0;
    while let Some(message) = tokio_stream::StreamExt::next(&mut stream).await {
        message.unwrap();
        answered += 1;
    }
    assert_eq!(answered, 4, "three results and a summary");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.is_empty(), "the capture saw the server's logs");
    for secret in app.tokens.values().map(String::as_str).chain([
        forged,
        ID_A,
        ID_B,
        typo.as_str(),
        TEST_HMAC_KEY,
    ]) {
        assert!(!text.contains(secret), "a log line holds {secret:?}");
    }

    // Debug output of everything that holds a secret.
    let mut storage = credit_hub::config::StorageArgs::sqlite(&app.data_dir);
    storage.hmac_key = Some("hmac-secret-0123456789".into());
    storage.database_url = Some("postgres://svc:db-password-42@db/credit".into());
    let audit = credit_hub::audit::AuditSettings::default();
    let audit_secret = hex::encode(audit.signing_key.to_bytes());
    let tls = credit_hub::TlsFiles {
        cert: b"cert".to_vec(),
        key: b"tls-private-key-material".to_vec(),
        client_ca: None,
    };
    let debug = format!(
        "{storage:?} {:?} {audit:?} {:?} {tls:?}",
        app.keyer,
        credit_hub::cli::ClientArgs {
            addr: "http://x".into(),
            token: Some("chub_client-token".into()),
            tls_ca: None,
            tls_client_cert: None,
            tls_client_key: None,
            json: false,
        }
    );
    for secret in [
        "hmac-secret-0123456789",
        "db-password-42",
        TEST_HMAC_KEY,
        &audit_secret,
        "chub_client-token",
        "tls-private-key-material",
    ] {
        assert!(
            !debug.contains(secret),
            "Debug output holds {secret:?}: {debug}"
        );
    }
}

/// A server started with another HMAC key than the one the database's persons were
/// keyed with (a lost hmac.key generated anew beside a restored database) would find no
/// stored person: it refuses to start and says why.
#[tokio::test]
async fn a_server_refuses_a_database_keyed_with_another_hmac_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = fresh_database(dir.path()).await;
    store.close().await;
    let with_key = |key: &str| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = if backend() == "postgres" {
            vec!["--database-url".into(), url.clone().into()]
        } else {
            vec!["--data-dir".into(), dir.path().into()]
        };
        args.extend(["--hmac-key".into(), key.into()]);
        args
    };
    // The signing keys a server on PostgreSQL needs (SQLite's would be generated).
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("cert.key"), "11".repeat(32)).unwrap();
    std::fs::write(keys.join("audit.key"), "22".repeat(32)).unwrap();
    let run = |args: Vec<std::ffi::OsString>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
            .args(args)
            .env_remove("CREDIT_HUB_DATABASE_URL")
            .env("CREDIT_HUB_CERT_KEY_FILE", keys.join("cert.key"))
            .env("CREDIT_HUB_AUDIT_KEY_FILE", keys.join("audit.key"))
            .output()
            .expect("run credit-hub")
    };
    let mut seed_args: Vec<std::ffi::OsString> = ["seed", "--enterprises", "20", "--records", "20"]
        .map(Into::into)
        .to_vec();
    seed_args.extend(with_key("the-first-key-0123456789"));
    let seeded = run(seed_args);
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );

    let mut serve_args: Vec<std::ffi::OsString> = ["serve", "--listen", "127.0.0.1:0"]
        .map(Into::into)
        .to_vec();
    serve_args.extend(with_key("another-key-0123456789"));
    let refused = run(serve_args);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("keyed with another HMAC key"), "{said}");
    assert!(
        !said.contains("another-key-0123456789"),
        "the key is not echoed: {said}"
    );
}

/// A name holds no document number, so an ID number in one is refused however its
/// groups are joined (dashes, dots, slashes, full-width dashes), and the error quotes
/// none of it back. A record's summary keeps dashed numbers: document numbers are
/// written that way.
#[tokio::test]
async fn an_id_number_in_a_name_is_refused_with_any_separator() {
    let app = spawn_app().await;
    let mut e = enterprise(1, ID_A);
    e.legal_representative.as_mut().unwrap().name = "王五110105-19491231-002X".into();
    e.former_names = vec!["威海110105.19491231.002X商贸".into()];
    e.display_name = "威海－１１０１０５－１９４９１２３１－００２Ｘ有限公司".into();
    let err = app
        .registry(AgencyKind::MarketRegulation)
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises: vec![e],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "enterprises[0].display_name",
            "enterprises[0].former_names[0]",
            "enterprises[0].legal_representative.name",
        ]
    );
    let shown = format!("{err:?}");
    assert!(
        !shown.contains("19491231") && !shown.contains("１９４９１２３１"),
        "{shown}"
    );
    assert_eq!(app.store.count_enterprises().await.unwrap(), 0);
}

/// An ID number typed with one digit wrong fails its check, so it is no ID number, but
/// it still gives most of one away: a name with a number that long is refused too, for
/// a person named in a record and a candidate in a cross-check alike.
#[tokio::test]
async fn a_mistyped_id_number_in_a_name_is_refused() {
    let app = spawn_app().await;
    let mistyped = "990101198001010015";
    let mut e = enterprise(1, ID_A);
    e.legal_representative.as_mut().unwrap().name = mistyped.into();
    let err = app
        .registry(AgencyKind::MarketRegulation)
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: String::new(),
            enterprises: vec![e],
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["enterprises[0].legal_representative.name"]
    );
    assert!(!format!("{err:?}").contains("19800101"), "{err:?}");
    assert_eq!(app.store.count_enterprises().await.unwrap(), 0);
}

/// A personal certificate's subject may carry its holder's ID number: such a subject is
/// not bound to an agency (it would be stored and listed in full), and the refusal does
/// not repeat it.
#[tokio::test]
async fn an_agency_is_not_bound_to_a_certificate_subject_holding_an_id_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["agency", "add", "--name", "持证法院", "--kind", "court"])
        .args(["--cert-subject", &format!("CN=张三,SERIALNUMBER={ID_A}")])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no token: {:?}", out.stdout);
    assert!(
        stderr.contains("--cert-subject must not contain"),
        "{stderr}"
    );
    assert!(!stderr.contains(ID_A), "{stderr}");
}

/// A method path is the caller's text: never echoed. A request id numbered like a
/// document is accepted even where its digits would pass an ID number's checks (one
/// in eleven does), so that a partner's retry is never refused; written in spaced
/// groups, an ID number is still refused.
#[tokio::test]
async fn method_paths_are_not_echoed_and_document_numbered_request_ids_are_kept() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let mut records = app.records(AgencyKind::MarketRegulation);
    let numbered = "371002-20240512-0004"; // passes an ID number's checks
    let submit = |request_id: &str| pb::BatchSubmitRecordsRequest {
        request_id: request_id.into(),
        records: vec![penalty(&uscc(1), "P-1")],
    };
    let first = records
        .batch_submit_records(submit(numbered))
        .await
        .unwrap();
    let retry = records
        .batch_submit_records(submit(numbered))
        .await
        .unwrap();
    assert_eq!(first.into_inner(), retry.into_inner(), "the retry replays");
    let err = records
        .batch_submit_records(submit("retry 110105 19491231 002X"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["request_id"]);

    let dashed = "110105-19491231-002X";
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let request = tonic::service::Interceptor::call(
        &mut app.bearer(AgencyKind::Court),
        tonic::Request::new(()),
    )
    .unwrap();
    let path = format!("/credithub.v1.GradeService/{dashed}");
    let answer = grpc
        .unary(
            request,
            http::uri::PathAndQuery::try_from(path).unwrap(),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(answer.code(), tonic::Code::Unimplemented);
    assert!(!answer.message().contains("1949"), "{}", answer.message());
    for (table, column, value) in app.store.dump_text_columns().await.unwrap() {
        assert!(
            !value.contains("19491231"),
            "{table}.{column} holds {value}"
        );
    }
}
