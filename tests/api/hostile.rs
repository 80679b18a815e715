//! Hostile input: every RPC gets empty, malformed, oversized and out-of-range requests,
//! built from the contract's descriptor so a new RPC or field is covered without
//! editing this test. Each must be answered with a precise code (never UNKNOWN or
//! INTERNAL), and a refused request must leave the data as it was.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use credit_hub::cli::Bearer;
use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use credit_hub::store::NewAgency;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;

use crate::helpers::*;
use crate::raw;

/// How to fill every field of a request.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// Strings of control characters and bytes, a NUL, half a name.
    Garbage,
    /// 100,000-character strings.
    Long,
    /// -1 in every number, an unknown value in every enum.
    Negative,
    /// The largest values, enum 999, repeated fields with 1,001 items.
    Huge,
}

struct Messages(HashMap<String, DescriptorProto>);

impl Messages {
    fn encode(&self, type_name: &str, fill: Fill, depth: usize, out: &mut BytesMut) {
        let Some(msg) = self.0.get(type_name) else {
            return;
        };
        for f in &msg.field {
            let n = f.number() as u32;
            let repeats = match (f.label(), fill) {
                (Label::Repeated, Fill::Huge) => 1_001,
                (Label::Repeated, _) => 2,
                _ => 1,
            };
            for _ in 0..repeats {
                match f.r#type() {
                    Type::String | Type::Bytes => {
                        let s: Vec<u8> = match fill {
                            Fill::Garbage => b"enterprises/\x00\xff\x01../../\n".to_vec(),
                            Fill::Long => vec![b'9'; 100_000],
                            Fill::Negative => b"-1".to_vec(),
                            Fill::Huge => "\u{10FFFF}".repeat(40).into_bytes(),
                        };
                        encode_key(n, WireType::LengthDelimited, out);
                        encode_varint(s.len() as u64, out);
                        out.put_slice(&s);
                    }
                    Type::Message if depth < 3 => {
                        let mut inner = BytesMut::new();
                        self.encode(f.type_name(), fill, depth + 1, &mut inner);
                        encode_key(n, WireType::LengthDelimited, out);
                        encode_varint(inner.len() as u64, out);
                        out.put_slice(&inner);
                    }
                    Type::Message => {}
                    Type::Bool => {
                        encode_key(n, WireType::Varint, out);
                        encode_varint(1, out);
                    }
                    Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                        encode_key(n, WireType::SixtyFourBit, out);
                        out.put_u64_le(match fill {
                            Fill::Negative => f64::NAN.to_bits(),
                            _ => u64::MAX,
                        });
                    }
                    Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                        encode_key(n, WireType::ThirtyTwoBit, out);
                        out.put_u32_le(u32::MAX);
                    }
                    _ => {
                        // Varint numbers and enums.
                        let v: u64 = match (fill, f.r#type()) {
                            (Fill::Negative, _) => -1i64 as u64,
                            (Fill::Huge, Type::Enum) => 999,
                            (Fill::Huge, _) => i64::MAX as u64,
                            (_, Type::Enum) => 77,
                            _ => 3,
                        };
                        encode_key(n, WireType::Varint, out);
                        encode_varint(v, out);
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn every_rpc_answers_hostile_input_precisely_and_writes_nothing() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let all: BTreeSet<Scope> = Scope::ALL.iter().copied().collect();
    let (_, token) = app
        .store
        .create_agency(NewAgency {
            display_name: "every scope".into(),
            kind: AgencyKind::MarketRegulation,
            scopes: all,
            cert_subject: None,
        })
        .await
        .unwrap();
    let bearer = Bearer::new(&token).unwrap();

    let set = FileDescriptorSet::decode(credit_hub::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut messages = Messages(HashMap::new());
    let mut rpcs = Vec::new();
    // Well-known types too (Timestamp filters get extreme seconds and nanos).
    for file in set
        .file
        .iter()
        .filter(|f| matches!(f.package(), "credithub.v1" | "google.protobuf"))
    {
        let package = file.package();
        for m in &file.message_type {
            messages
                .0
                .insert(format!(".{package}.{}", m.name()), m.clone());
            for nested in &m.nested_type {
                messages.0.insert(
                    format!(".{package}.{}.{}", m.name(), nested.name()),
                    nested.clone(),
                );
            }
        }
    }
    for file in set.file.iter().filter(|f| f.package() == "credithub.v1") {
        for s in &file.service {
            for m in &s.method {
                rpcs.push((
                    format!("/credithub.v1.{}/{}", s.name(), m.name()),
                    m.input_type().to_string(),
                    m.server_streaming(),
                ));
            }
        }
    }

    assert!(
        messages.0.contains_key(".google.protobuf.Timestamp"),
        "the contract's descriptor carries Timestamp"
    );
    let data_before = data_tables(&app).await;
    for (path, input, streaming) in &rpcs {
        let mut bodies: Vec<(String, Bytes)> = vec![
            ("empty".into(), Bytes::new()),
            (
                "not protobuf".into(),
                Bytes::from_static(b"\xff\xff\xff\xff\x0f garbage"),
            ),
            (
                "truncated".into(),
                Bytes::from_static(b"\x0a\x64enterprises/"),
            ),
            (
                "oversized".into(),
                Bytes::from(vec![0x0au8; credit_hub::MAX_MESSAGE_BYTES + 1]),
            ),
            ("large".into(), Bytes::from(vec![0x0au8; 5 << 20])),
        ];
        for fill in [Fill::Garbage, Fill::Long, Fill::Negative, Fill::Huge] {
            let mut b = BytesMut::new();
            messages.encode(input, fill, 0, &mut b);
            bodies.push((format!("{fill:?}"), b.freeze()));
        }
        for (what, body) in bodies {
            let answer = raw::call(
                app.channel.clone(),
                bearer.clone(),
                path,
                *streaming,
                body,
                Duration::from_millis(500),
            )
            .await;
            // Only a watch may stay open with nothing to say; any other stream ends.
            assert!(
                answer != raw::Answer::Open || path.ends_with("/WatchGradeChanges"),
                "{path} with {what} input left its stream open and silent"
            );
            let code = answer.code();
            match what.as_str() {
                "oversized" => assert_eq!(code, Code::OutOfRange, "{path} with {what} input"),
                "not protobuf" | "truncated" => {
                    assert_eq!(code, Code::InvalidArgument, "{path} with {what} input")
                }
                // Over a public RPC's 512 KiB it is OUT_OF_RANGE; otherwise it does
                // not decode.
                "large" => assert!(
                    matches!(code, Code::InvalidArgument | Code::OutOfRange),
                    "{path} with {what} input answered {code:?}"
                ),
                _ => {}
            }
            // RESOURCE_EXHAUSTED too: this agency has no quota, so it would mean an
            // answer too large for its headers (an error quoting the input back).
            assert!(
                !matches!(
                    code,
                    Code::Unknown | Code::Internal | Code::ResourceExhausted
                ),
                "{path} with {what} input answered {code:?}"
            );
            // Whatever the answer: hostile input is never written, even where an
            // RPC finds nothing wrong with it (an empty list request).
            assert_eq!(
                data_tables(&app).await,
                data_before,
                "{path} answered {what} input with {code:?} and data changed"
            );
        }
    }
}

/// Every text value outside the audit log (which grows with every call, by design).
async fn data_tables(app: &TestApp) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = app
        .store
        .dump_text_columns()
        .await
        .unwrap()
        .into_iter()
        .filter(|(table, _, _)| !table.starts_with("audit_") && table != "agencies")
        .collect();
    rows.sort();
    rows
}

/// A list far past its bound is refused at once with one violation, and a request with
/// a violation in each of its thousand items gets an error small enough for any HTTP/2
/// client to receive (trailers past 16 KiB reach the caller as a reset stream), counting
/// what it does not list, with no ID number quoted back and nothing written.
#[tokio::test]
async fn huge_lists_and_many_violations_are_refused_in_a_small_error() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, &synthetic_id(1))]).await;
    let mut client = app.records(AgencyKind::MarketRegulation);

    let mut flooded = penalty(&uscc(1), "H-flood");
    flooded.penalty_measures = vec![0; 2_000_000];
    let err = client
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![flooded],
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let fields = violated_fields(&err);
    assert_eq!(fields[0], "records[0].penalty_measures");
    assert!(fields.len() <= 3, "{fields:?}");
    assert!(
        err.message().contains("holds 2000000 items; at most"),
        "{}",
        err.message()
    );

    let records = (0..1000)
        .map(|i| {
            let mut r = penalty(&uscc(1), &format!("H-{i}"));
            r.summary = format!("当事人身份证号{}拒不整改", synthetic_id(i));
            r
        })
        .collect();
    let err = client
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let violations = {
        use tonic_types::StatusExt;
        err.get_details_bad_request()
            .expect("bad request")
            .field_violations
    };
    assert_eq!(violations[0].field, "records[0].summary");
    let listed = violations.len() - 1;
    let last = violations.last().expect("a summary");
    assert_eq!(last.field, "request");
    assert_eq!(
        last.description,
        format!(
            "{} more violations not listed; fix these and resubmit",
            1000 - listed
        )
    );
    let details_bytes: usize = violations
        .iter()
        .map(|v| v.field.len() + v.description.len())
        .sum();
    assert!(details_bytes < 4_000, "{details_bytes} bytes of details");
    assert!(err.message().len() <= 600, "{}", err.message());
    assert!(!format!("{err:?}").contains(&synthetic_id(0)));
    assert_eq!(app.store.count_records().await.expect("count"), 0);
}

/// Sends `body` as the raw HTTP/2 body of a gRPC call to `path` and returns the
/// trailers-only status it is answered with.
async fn framed(app: &TestApp, path: &str, body: &'static str) -> tonic::Status {
    use tower::{Service, ServiceExt};
    let mut channel = app.channel.clone();
    let request = http::Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(
            "authorization",
            format!("Bearer {}", app.tokens[&AgencyKind::MarketRegulation]),
        )
        .body(tonic::body::Body::new(body.to_string()))
        .unwrap();
    let response = channel.ready().await.unwrap().call(request).await.unwrap();
    tonic::Status::from_header_map(response.headers())
        .unwrap_or_else(|| panic!("{path}: no trailers-only status in {response:?}"))
}

/// A gRPC body framed wrong (no message, a length prefix longer than what follows, a
/// flag byte that is neither 0 nor 1) is the caller's fault, on a public RPC and on an
/// authenticated one alike, and is audited as such.
#[tokio::test]
async fn malformed_grpc_framing_is_invalid_argument() {
    use tonic_types::StatusExt;
    let app = spawn_app().await;
    let get = "/credithub.v1.RegistryService/GetEnterprise";
    for path in [get, "/credithub.v1.CertificateService/VerifyCertificate"] {
        for (what, body) in [
            ("no message", ""),
            ("cut short", "\x00\x00\x00\x00\x10\x0a\x02"),
            ("flag 7", "\x07\x00\x00\x00\x00"),
        ] {
            let status = framed(&app, path, body).await;
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{path}, {what}: {status:?}"
            );
            assert_eq!(
                status.get_details_error_info().map(|i| i.reason),
                Some("MALFORMED_REQUEST".to_string()),
                "{path}, {what}: {status:?}"
            );
        }
    }
    let outcomes = app
        .audit_outcomes(pb::ListAuditEntriesRequest {
            method: get.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(outcomes, vec!["INVALID_ARGUMENT"; 3]);
}

/// A request body the test feeds chunk by chunk; it ends when its sender is dropped.
struct Trickle(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Calls `path` with a body fed through the returned sender and answers the call's
/// status (trailers-only or in the trailers).
fn trickled(
    channel: &tonic::transport::Channel,
    path: &str,
    token: Option<&str>,
) -> (
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<tonic::Status>,
) {
    use http_body_util::BodyExt;
    use tower::{Service, ServiceExt};
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut request = http::Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(tonic::body::Body::new(Trickle(rx)))
        .expect("a request");
    let mut channel = channel.clone();
    let call = tokio::spawn(async move {
        let response = channel.ready().await.unwrap().call(request).await.unwrap();
        if let Some(status) = tonic::Status::from_header_map(response.headers()) {
            return status;
        }
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a response body");
        let trailers = body.trailers().cloned().unwrap_or_default();
        tonic::Status::from_header_map(&trailers).unwrap_or_else(|| tonic::Status::ok(""))
    });
    (tx, call)
}

/// `message` in its gRPC frame.
fn grpc_frame(message: &impl Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(encoded.len() as u32);
    frame.put_slice(&encoded);
    frame.freeze()
}

/// A body that trickles in cannot hold one of the server's call slots: it is refused
/// once its time is up (a grace period, plus time for each byte sent) and the slot
/// serves the next caller. A body that keeps pace is served however long it takes, and
/// one that goes on past a message is refused.
#[tokio::test]
async fn a_slow_or_endless_request_body_gives_up_its_call_slot() {
    use tonic_types::StatusExt;
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let pace = credit_hub::pace::BodyPace {
        grace: Duration::from_millis(300),
        min_rate: 100,
        ..Default::default()
    };
    let (addr, stop) =
        another_server(&app, |s| s.max_concurrent_calls(1).request_body_pace(pace)).await;
    let channel = channel_to(addr).await;
    let token = app.tokens[&AgencyKind::MarketRegulation].clone();
    let get = pb::GetEnterpriseRequest {
        name: format!("enterprises/{}", uscc(1)),
    };
    let mut registry = pb::registry_service_client::RegistryServiceClient::with_interceptor(
        channel.clone(),
        app.bearer(AgencyKind::Tax),
    );

    // A public call, no token needed: a prefix announcing 256 bytes, then nothing.
    let verify = "/credithub.v1.CertificateService/VerifyCertificate";
    let (tx, slow) = trickled(&channel, verify, None);
    tx.send(Bytes::from_static(b"\x00\x00\x00\x01\x00"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shed = registry
        .get_enterprise(get.clone())
        .await
        .expect_err("shed");
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    // Health is never shed, even with every call slot taken.
    let probe = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers at capacity");
    assert_eq!(
        probe.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let refused = slow.await.unwrap();
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    assert_eq!(
        refused.get_details_error_info().map(|i| i.reason),
        Some("REQUEST_TOO_SLOW".to_string())
    );
    assert!(refused.message().contains("5 bytes"), "{refused:?}");
    // A public call announcing a long message is refused at once: nobody's request to
    // a public RPC is that long, and it would hold the slot while it arrived.
    let (big, announced) = trickled(&channel, verify, None);
    big.send(Bytes::from_static(b"\x00\x00\x08\x00\x01"))
        .await
        .unwrap();
    let refused = tokio::time::timeout(Duration::from_millis(200), announced)
        .await
        .expect("refused before its time is up")
        .unwrap();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    drop(big);
    registry
        .get_enterprise(get.clone())
        .await
        .expect("the slot serves the next caller");
    drop(tx);

    // The same on an authenticated RPC, audited as what the caller was told.
    let path = "/credithub.v1.RegistryService/GetEnterprise";
    let (tx, slow) = trickled(&channel, path, Some(&token));
    tx.send(grpc_frame(&get).slice(..3)).await.unwrap();
    assert_eq!(slow.await.unwrap().code(), Code::DeadlineExceeded);
    drop(tx);
    let outcomes = app
        .audit_outcomes(pb::ListAuditEntriesRequest {
            method: path.into(),
            ..Default::default()
        })
        .await;
    assert!(
        outcomes.contains(&"DEADLINE_EXCEEDED".to_string()),
        "{outcomes:?}"
    );

    // Past its grace period, a body that keeps pace is served: 30 bytes buy 300 ms more.
    let frame = grpc_frame(&get);
    assert!(frame.len() > 30);
    let (tx, paced) = trickled(&channel, path, Some(&token));
    tx.send(frame.slice(..30)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    tx.send(frame.slice(30..)).await.unwrap();
    drop(tx);
    let served = paced.await.unwrap();
    assert_eq!(served.code(), Code::Ok, "{served:?}");

    // One message and then more: a call carries one.
    let (tx, endless) = trickled(&channel, path, Some(&token));
    for _ in 0..2 {
        tx.send(frame.clone()).await.unwrap();
    }
    let refused = endless.await.unwrap();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(
        refused.get_details_error_info().map(|i| i.reason),
        Some("MALFORMED_REQUEST".to_string())
    );
    drop(tx);
    let _ = stop.send(());
}

/// A write's body is read whole before the write waits for the database: SQLite has
/// one write slot, and a partner uploading a batch slowly (the body pace allows the
/// largest minutes) must not hold the other partners' writes back meanwhile. The slow
/// write lands once its body is complete.
#[tokio::test]
async fn a_slow_upload_holds_no_other_partners_writes_back() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    // A body may take ten minutes here: the court's write must not wait for it.
    let pace = credit_hub::pace::BodyPace {
        grace: Duration::from_secs(600),
        ..Default::default()
    };
    // One write slot on either backend (PostgreSQL's pool gives half its connections).
    let store = if backend() == "postgres" {
        credit_hub::store::Store::open_postgres(&app.db_url, 2)
            .await
            .unwrap()
    } else {
        app.open_again().await
    };
    assert_eq!(store.write_slots(), 1);
    let (addr, stop) = serve_store(store, app.keyer.clone(), |s| s.request_body_pace(pace)).await;
    let channel = channel_to(addr).await;
    let path = "/credithub.v1.RecordService/BatchSubmitRecords";
    let slow_batch = pb::BatchSubmitRecordsRequest {
        request_id: String::new(),
        records: vec![penalty(&uscc(1), "slow-upload-1")],
    };
    let frame = grpc_frame(&slow_batch);
    let token = app.tokens[&AgencyKind::MarketRegulation].clone();
    let (tx, slow) = trickled(&channel, path, Some(&token));
    tx.send(frame.slice(..frame.len() / 2)).await.unwrap();
    // Let the slow write pass authentication and reach the write queue first.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut court = pb::record_service_client::RecordServiceClient::with_interceptor(
        channel.clone(),
        app.bearer(AgencyKind::Court),
    );
    let filed = court
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![debtor(person("张三", ID_B), "court-during-upload")],
        })
        .await
        .expect("the court's write goes through while the upload is under way");
    assert_eq!(filed.into_inner().records.len(), 1);
    assert!(!slow.is_finished(), "the slow upload is still arriving");

    tx.send(frame.slice(frame.len() / 2..)).await.unwrap();
    drop(tx);
    let landed = slow.await.unwrap();
    assert_eq!(landed.code(), Code::Ok, "{landed:?}");
    let listed = app
        .records(AgencyKind::MarketRegulation)
        .list_records(pb::ListRecordsRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(
        listed.iter().any(|r| r
            .provenance
            .as_ref()
            .is_some_and(|p| p.source_record_id == "slow-upload-1")),
        "{listed:?}"
    );
    let _ = stop.send(());
}

/// Empty list items cost two bytes each on the wire and hundreds once decoded: a body of
/// them is refused from its wire format, before decoding, for any agency and any list.
#[tokio::test]
async fn a_list_too_long_for_any_rpc_is_refused_before_decoding() {
    let app = spawn_app().await;
    let mut body = BytesMut::new();
    for _ in 0..200_000 {
        // Field 2 (records), an empty message.
        body.put_slice(&[0x12, 0x00]);
    }
    let body = body.freeze();
    for kind in [AgencyKind::Court, AgencyKind::VettingOffice] {
        let answer = raw::call(
            app.channel.clone(),
            app.bearer(kind),
            "/credithub.v1.RecordService/BatchSubmitRecords",
            false,
            body.clone(),
            Duration::from_secs(10),
        )
        .await;
        // The court may file and is refused for the list; the vetting office may not
        // file and is refused for that, whatever the body.
        let expected = match kind {
            AgencyKind::Court => Code::InvalidArgument,
            _ => Code::PermissionDenied,
        };
        assert_eq!(answer.code(), expected, "{kind:?}");
    }
    // Refused from the wire format, not by the handler's count of what it decoded.
    let err = app
        .records(AgencyKind::Court)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![pb::Record::default(); 200_000],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("repeats more than"),
        "{}",
        err.message()
    );
    assert_eq!(app.store.count_records().await.unwrap(), 0);
}
