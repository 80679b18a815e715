//! Mutual TLS: agencies identified by their client certificates, tokens still working
//! over TLS, unknown certificates refused, and forwarded certificates believed only
//! from a trusted gateway.

use std::net::SocketAddr;

use credit_hub::cli::Bearer;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::peer::{Gateway, PeerPolicy, DEFAULT_FORWARDED_CERT_HEADER};
use credit_hub::proto::v1 as pb;
use credit_hub::store::AuditFilter;
use credit_hub::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

use crate::helpers::*;

/// A certificate authority for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A PEM certificate and its PEM private key.
struct Issued {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn issue(&self, common_name: &str, sans: &[SanType], usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans.to_vec();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn client(&self, common_name: &str, sans: &[SanType]) -> Issued {
        self.issue(common_name, sans, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// A TLS server on the test's database whose client certificates must be signed by `ca`.
async fn tls_server(
    app: &TestApp,
    ca: &Ca,
    peers: PeerPolicy,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server_cert = ca.issue(
        "credit-hub",
        &[SanType::DnsName("localhost".try_into().unwrap())],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let files = TlsFiles {
        cert: server_cert.cert.into_bytes(),
        key: server_cert.key.into_bytes(),
        client_ca: Some(ca.cert.pem().into_bytes()),
    };
    another_server(app, |s| s.tls(files).peers(peers)).await
}

/// A TLS channel trusting `ca` for the server, presenting `identity` if given.
async fn tls_channel(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Issued>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.cert.pem()))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

/// `credit-hub agency add --kind court --cert-subject <name>` against the test's
/// database; returns the new agency's id.
async fn add_court_with_certificate(app: &TestApp, name: &str) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"));
    cmd.args(["agency", "add", "--name", "证书法院", "--kind", "court"]);
    cmd.args(["--cert-subject", name]).args(app.storage_flags());
    let out = cmd.output().expect("run credit-hub");
    assert!(
        out.status.success(),
        "agency add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.store
        .list_agencies()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.cert_subject.as_deref() == Some(name))
        .expect("agency add bound the certificate name")
        .agency
        .id
}

/// A grade look-up of enterprise 1 for judicial enforcement over `channel`, with
/// `bearer` and a forwarded-certificate header line for each of `forwarded`.
async fn look_up(
    channel: &Channel,
    bearer: Bearer,
    forwarded: &[&str],
) -> Result<pb::GetCreditGradeResponse, tonic::Status> {
    use tonic::service::Interceptor;
    let forwarded: Vec<tonic::metadata::AsciiMetadataValue> =
        forwarded.iter().map(|f| f.parse().unwrap()).collect();
    let mut bearer = bearer;
    pb::grade_service_client::GradeServiceClient::with_interceptor(
        channel.clone(),
        move |req: tonic::Request<()>| {
            let mut req = bearer.call(req)?;
            for f in &forwarded {
                req.metadata_mut()
                    .append(DEFAULT_FORWARDED_CERT_HEADER, f.clone());
            }
            Ok(req)
        },
    )
    .get_credit_grade(pb::GetCreditGradeRequest {
        name: format!("enterprises/{}", uscc(1)),
        purpose: pb::Purpose::JudicialEnforcement as i32,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// How many successful grade look-ups the audit log holds for agency `id`.
async fn audited_look_ups(app: &TestApp, id: &str) -> usize {
    app.store
        .list_audit(
            &AuditFilter {
                agency: Some(id.to_owned()),
                method: Some("/credithub.v1.GradeService/GetCreditGrade".into()),
                ..Default::default()
            },
            0,
            1000,
        )
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event.outcome == "OK")
        .count()
}

#[tokio::test]
async fn a_registered_client_certificate_identifies_its_agency_and_others_are_refused() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let ca = Ca::new("credit-hub test agencies CA");
    let court_id = add_court_with_certificate(&app, "court.example").await;
    let (addr, _stop) = tls_server(&app, &ca, PeerPolicy::default()).await;

    // The court's certificate alone identifies it, and the look-up is audited as its.
    let court_cert = ca.client("court.example", &[]);
    let court = tls_channel(addr, &ca, Some(&court_cert)).await.unwrap();
    let grade = look_up(&court, Bearer::none(), &[]).await.unwrap();
    assert_eq!(
        grade.grade.unwrap().enterprise,
        format!("enterprises/{}", uscc(1))
    );
    assert_eq!(audited_look_ups(&app, &court_id).await, 1);

    // Its certificate together with its own token is fine, with another agency's not.
    let err = look_up(&court, app.bearer(AgencyKind::Tax), &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("different agencies"),
        "{}",
        err.message()
    );

    // Bearer tokens keep working over TLS without a client certificate.
    let anonymous = tls_channel(addr, &ca, None).await.unwrap();
    look_up(&anonymous, app.bearer(AgencyKind::Court), &[])
        .await
        .unwrap();
    let err = look_up(&anonymous, Bearer::none(), &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A certificate from the right CA that names no agency is refused, even with a
    // valid token beside it; a name found only in a SAN works like the CN.
    let stranger = ca.client("stranger.example", &[uri("spiffe://elsewhere/x")]);
    let stranger = tls_channel(addr, &ca, Some(&stranger)).await.unwrap();
    for bearer in [Bearer::none(), app.bearer(AgencyKind::Court)] {
        let err = look_up(&stranger, bearer, &[]).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(
            err.message().contains("stranger.example") && err.message().contains("not registered"),
            "{}",
            err.message()
        );
    }
    let by_san = ca.client(
        "some-host",
        &[
            uri("spiffe://agencies/other"),
            SanType::DnsName("court.example".try_into().unwrap()),
        ],
    );
    let by_san = tls_channel(addr, &ca, Some(&by_san)).await.unwrap();
    look_up(&by_san, Bearer::none(), &[]).await.unwrap();
    assert_eq!(audited_look_ups(&app, &court_id).await, 2);

    // A certificate from another CA never gets a call through.
    let rogue_ca = Ca::new("rogue CA");
    let rogue = rogue_ca.client("court.example", &[]);
    let refused = match tls_channel(addr, &ca, Some(&rogue)).await {
        Err(_) => true,
        Ok(channel) => look_up(&channel, app.bearer(AgencyKind::Court), &[])
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from an unknown CA was accepted");
    assert_eq!(audited_look_ups(&app, &court_id).await, 2);

    // A revoked agency's certificate stops working like its token.
    app.store.revoke_agency(&court_id).await.unwrap();
    tokio::time::sleep(credit_hub::auth::TOKEN_CACHE_TTL).await;
    let err = look_up(&court, Bearer::none(), &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn forwarded_certificates_are_believed_only_from_a_trusted_gateway() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let ca = Ca::new("credit-hub test agencies CA");
    let court_id = add_court_with_certificate(&app, "spiffe://agencies/court").await;
    let peers = PeerPolicy::new(
        vec![Gateway::Name("gateway.example".into())],
        DEFAULT_FORWARDED_CERT_HEADER,
    )
    .unwrap();
    let (addr, _stop) = tls_server(&app, &ca, peers).await;
    let court_header = r#"By=spiffe://gateway;Hash=00ff;Subject="CN=court-client,O=Court";URI=spiffe://agencies/court"#;

    // Through the gateway the forwarded certificate is the caller.
    let gateway_cert = ca.client("gateway.example", &[]);
    let gateway = tls_channel(addr, &ca, Some(&gateway_cert)).await.unwrap();
    look_up(&gateway, Bearer::none(), &[court_header])
        .await
        .unwrap();
    assert_eq!(audited_look_ups(&app, &court_id).await, 1);

    // The gateway itself is nobody; a forwarded certificate naming no agency is refused.
    let err = look_up(&gateway, Bearer::none(), &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = look_up(&gateway, Bearer::none(), &["URI=spiffe://agencies/nobody"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = look_up(&gateway, Bearer::none(), &["Hash=00"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Two header lines, the first perhaps the client's own passed on by a gateway that
    // appends: neither is believed.
    for lines in [
        [court_header, "URI=spiffe://agencies/nobody"],
        ["URI=spiffe://agencies/nobody", court_header],
    ] {
        let err = look_up(&gateway, Bearer::none(), &lines).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }

    // Anyone else sending the header is not believed: without a token they are
    // nobody, and with one they are the token's agency, never the court.
    let anonymous = tls_channel(addr, &ca, None).await.unwrap();
    let err = look_up(&anonymous, Bearer::none(), &[court_header])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    look_up(&anonymous, app.bearer(AgencyKind::Court), &[court_header])
        .await
        .unwrap();
    assert_eq!(audited_look_ups(&app, &court_id).await, 1);
    assert_eq!(
        audited_look_ups(&app, &app.agency_ids[&AgencyKind::Court]).await,
        1
    );

    // A gateway trusted by its network (plain HTTP/2 inside a cluster) is believed;
    // the same header on a server that trusts no gateway is ignored.
    let loopback = PeerPolicy::new(
        vec!["127.0.0.0/8".parse().unwrap()],
        DEFAULT_FORWARDED_CERT_HEADER,
    )
    .unwrap();
    let (plain_addr, _stop_plain) = another_server(&app, |s| s.peers(loopback)).await;
    let plain = Channel::from_shared(format!("http://{plain_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    look_up(&plain, Bearer::none(), &[court_header])
        .await
        .unwrap();
    assert_eq!(audited_look_ups(&app, &court_id).await, 2);
    let err = look_up(&app.channel, Bearer::none(), &[court_header])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A network vouches only for connections without a certificate of their own: a
    // client showing its own, from inside the trusted range, is that client.
    let (tls_addr, _stop_tls) = tls_server(
        &app,
        &ca,
        PeerPolicy::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            DEFAULT_FORWARDED_CERT_HEADER,
        )
        .unwrap(),
    )
    .await;
    let stranger_cert = ca.client("spiffe://agencies/stranger", &[]);
    let stranger = tls_channel(tls_addr, &ca, Some(&stranger_cert))
        .await
        .unwrap();
    let err = look_up(&stranger, Bearer::none(), &[court_header])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(audited_look_ups(&app, &court_id).await, 2);
}

/// The connection to PostgreSQL can be encrypted: with `sslmode=require` in the URL,
/// every connection the service opens is TLS (the server on this machine has TLS on).
#[tokio::test]
async fn postgres_connections_are_encrypted_when_the_url_asks() {
    if backend() != "postgres" {
        eprintln!("PostgreSQL only: not run on {}", backend());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (plain, url) = fresh_database(dir.path()).await;
    plain.close().await;
    let db = url.rsplit_once('/').unwrap().1.to_string();
    let store = credit_hub::store::Store::open_postgres(&format!("{url}?sslmode=require"), 4)
        .await
        .expect("a TLS connection");
    assert!(store.is_migrated().await.unwrap());
    assert_eq!(store.count_enterprises().await.unwrap(), 0);

    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let (connections, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind(&db)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(connections > 0, "the store holds a connection");
    assert_eq!(
        encrypted, connections,
        "every connection of the store is TLS"
    );
    store.close().await;
}
