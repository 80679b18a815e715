//! Observability through the real server: request ids echoed, and `/metrics` scraped
//! over HTTP with the call, pool, audit-queue and grading-lag series.

use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    let mut conn = tokio::net::TcpStream::connect(app.metrics_addr)
        .await
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

#[tokio::test]
async fn a_request_id_is_echoed_or_made_up() {
    let app = spawn_app().await;
    let mut request = tonic::Request::new(pb::GetEnterpriseRequest {
        name: format!("enterprises/{}", uscc(1)),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "case-2026-17".parse().unwrap());
    let err = app
        .registry(AgencyKind::Court)
        .get_enterprise(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.metadata().get("x-request-id").unwrap(), "case-2026-17");
    app.register(vec![enterprise(1, ID_A)]).await;
    let answered = app
        .registry(AgencyKind::Court)
        .get_enterprise(pb::GetEnterpriseRequest {
            name: format!("enterprises/{}", uscc(1)),
        })
        .await
        .unwrap();
    let made_up = answered
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(made_up.len(), 32);

    // The audit log keeps the same ids, so an entry leads to the call's log lines and
    // to the caller's own records; a write keeps its own request_id instead.
    app.registry(AgencyKind::MarketRegulation)
        .batch_upsert_enterprises(pb::BatchUpsertEnterprisesRequest {
            request_id: "registry-2026-0001".into(),
            enterprises: vec![enterprise(1, ID_A)],
        })
        .await
        .unwrap();
    let ids: Vec<(String, String)> = app
        .audit_entries(pb::ListAuditEntriesRequest {
            subject_enterprise: format!("enterprises/{}", uscc(1)),
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|e| {
            (
                e.method.rsplit('/').next().unwrap().to_string(),
                e.request_id,
            )
        })
        .collect();
    // In sequence order, which is call order here (each answer waited for its entry).
    let [first, registered, second, written] = &ids[..] else {
        panic!("four entries about the enterprise: {ids:?}")
    };
    assert_eq!(first, &("GetEnterprise".into(), "case-2026-17".into()));
    // `register` sends no request_id: its entry has its call's made-up id.
    assert_eq!(registered.0, "BatchUpsertEnterprises");
    assert_eq!(registered.1.len(), 32, "{registered:?}");
    assert_ne!(registered.1, made_up);
    assert_eq!(second, &("GetEnterprise".into(), made_up.to_string()));
    assert_eq!(
        written,
        &("BatchUpsertEnterprises".into(), "registry-2026-0001".into())
    );
}

#[tokio::test]
async fn metrics_show_calls_by_method_and_code_with_latency_pool_audit_and_lag() {
    let app = spawn_app().await;
    app.register(vec![enterprise(2, ID_A)]).await;
    let mut registry = app.registry(AgencyKind::Court);
    for _ in 0..3 {
        registry
            .get_enterprise(pb::GetEnterpriseRequest {
                name: format!("enterprises/{}", uscc(2)),
            })
            .await
            .unwrap();
    }
    registry
        .get_enterprise(pb::GetEnterpriseRequest {
            name: format!("enterprises/{}", uscc(3)),
        })
        .await
        .unwrap_err();
    let text = scrape(&app).await;
    let get = "method=\"/credithub.v1.RegistryService/GetEnterprise\"";
    assert!(
        text.contains(&format!(
            "credithub_rpc_requests_total{{{get},code=\"OK\"}} 3"
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "credithub_rpc_requests_total{{{get},code=\"NOT_FOUND\"}} 1"
    )));
    assert!(text.contains(&format!(
        "credithub_rpc_duration_seconds_bucket{{{get},code=\"OK\",le=\"+Inf\"}} 3"
    )));
    assert!(text.contains(&format!(
        "credithub_rpc_duration_seconds_count{{{get},code=\"OK\"}} 3"
    )));
    for series in [
        "credithub_db_pool_connections ",
        "credithub_db_pool_idle_connections ",
        "credithub_audit_queue_depth ",
        "credithub_audit_append_seconds_total ",
        "credithub_audit_refused_groups_total 0",
        "credithub_audit_recovered_entries_total 0",
        "credithub_grading_lag_records 0",
    ] {
        assert!(text.contains(series), "{series} in {text}");
    }
    // Every call above was answered after its entry was written, in one group or more.
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .parse()
            .unwrap()
    };
    let (groups, entries) = (
        value("credithub_audit_groups_total"),
        value("credithub_audit_entries_total"),
    );
    assert!(entries >= 4, "{entries} entries for 4 calls");
    assert!(
        (1..=entries).contains(&groups),
        "{groups} groups of {entries} entries"
    );
}

/// With JSON logs at debug level, every line a call writes names its request id.
#[tokio::test]
async fn log_lines_of_a_call_carry_its_request_id() {
    let bin = env!("CARGO_BIN_EXE_credit-hub");
    let dir = tempfile::tempdir().unwrap();
    let database = process_database(dir.path()).await;
    let out = std::process::Command::new(bin)
        .args(["agency", "add", "--name", "log court", "--kind", "court"])
        .args(&database.args)
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(bin)
        .args([
            "--log-format",
            "json",
            "serve",
            "--metrics-listen",
            "",
            "--shutdown-announce-secs",
            "0",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(&database.args)
        .envs(database.envs.clone())
        .env("CREDIT_HUB_LOG", "credit_hub=debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(c) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut client = pb::registry_service_client::RegistryServiceClient::with_interceptor(
        channel.expect("the server starts"),
        credit_hub::cli::Bearer::new(&token).unwrap(),
    );
    let mut request = tonic::Request::new(pb::GetEnterpriseRequest {
        name: format!("enterprises/{}", uscc(1)),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-123".parse().unwrap());
    let _ = client.get_enterprise(request).await;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    let line = logs
        .lines()
        .find(|l| l.contains("\"answered\""))
        .unwrap_or_else(|| panic!("no access log line in {logs}"));
    assert!(line.contains("\"request_id\":\"trace-me-123\""), "{line}");
    assert!(line.contains("\"code\":\"NOT_FOUND\""), "{line}");
}

/// During a rolling upgrade the next release's migration job runs first: the replicas
/// still on this release must stay ready on the newer schema.
#[tokio::test]
async fn a_schema_migrated_by_a_newer_release_still_counts_as_migrated() {
    use sqlx::Connection;
    let app = spawn_app().await;
    assert!(app.store.is_migrated().await.unwrap());
    let checksum = if backend() == "postgres" {
        "'\\x00'::bytea"
    } else {
        "X'00'"
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'a later release', TRUE, {checksum}, 0)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(app.store.is_migrated().await.unwrap());
}
