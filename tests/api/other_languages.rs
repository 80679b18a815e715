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
