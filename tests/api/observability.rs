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
        "credithub_grading_lag_records 0",
    ] {
        assert!(text.contains(series), "{series} in {text}");
    }
}
