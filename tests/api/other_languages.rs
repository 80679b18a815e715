use credit_hub::domain::codes::AgencyKind;

use crate::helpers::*;

/// A partner system written in Python (grpcio) finds the services by reflection, sees
/// the service healthy, submits a record and reads it back with a demo-style token.
/// Needs `pip install -r tests/python/requirements.txt` (scripts/test.sh does it).
#[tokio::test]
async fn a_python_grpcio_client_works_through_reflection() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A)]).await;
    let target = app.addr.trim_start_matches("http://").to_string();
    let token = app.tokens[&AgencyKind::MarketRegulation].clone();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/reflection_client.py"
    );
    let output = tokio::process::Command::new("python3")
        .args([script, &target, &token, &uscc(1)])
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("health: SERVING"), "{stdout}");
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    assert_eq!(app.store.count_records().await.unwrap(), 1);
}

/// A vetting office's Python (grpcio) system runs a cross-check through reflection and
/// reads the result stream in order, ending with the summary.
#[tokio::test]
async fn a_python_grpcio_client_runs_a_cross_check_and_reads_the_stream() {
    let app = spawn_app().await;
    app.records(AgencyKind::Court)
        .batch_submit_records(credit_hub::proto::v1::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![debtor(person("李娜", ID_B), "court-1")],
        })
        .await
        .unwrap();
    let target = app.addr.trim_start_matches("http://").to_string();
    let token = app.tokens[&AgencyKind::VettingOffice].clone();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/vetting_client.py"
    );
    let output = tokio::process::Command::new("python3")
        .args([
            script,
            &target,
            &token,
            &format!("张伟:{ID_A}"),
            &format!("李娜:{ID_B}"),
            "王五:123",
        ])
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("result 0 VERDICT_CLEAR -"), "{stdout}");
    assert!(
        lines[1].starts_with("result 1 VERDICT_ADVERSE DISHONEST_JUDGMENT_DEBTOR"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("result 2 VERDICT_INVALID"), "{stdout}");
    assert!(lines[3].starts_with("summary: vettingReports/"), "{stdout}");
    assert_eq!(lines.last(), Some(&"OK"));
}
