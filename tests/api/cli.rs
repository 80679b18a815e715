//! The client commands a newcomer meets first, run as the binary against a server.

use std::collections::BTreeSet;

use credit_hub::domain::agency::Scope;
use credit_hub::domain::codes::AgencyKind;
use credit_hub::proto::v1 as pb;
use credit_hub::store::NewAgency;
use credit_hub::Server;

use crate::helpers::*;

/// Runs `credit-hub ARGS --addr … --token TOKEN`; (success, stdout, stderr).
async fn client(app: &TestApp, token: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"));
    // Nothing from the shell running the suite (a person filter, TLS files) applies.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CREDIT_HUB_") {
            command.env_remove(name);
        }
    }
    let out = command
        .args(args)
        .args(["--addr", &app.addr, "--token", token])
        .output()
        .await
        .expect("run credit-hub");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("UTF-8 output"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `enterprise get` shows an enterprise with its persons masked, as a table and as
/// JSON; `grades stats` counts what the service graded; `audit list` and `audit export`
/// answer "who looked at this enterprise", naming the look-ups made.
#[tokio::test]
async fn client_commands_show_an_enterprise_grade_counts_and_who_looked() {
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_B)])
        .await;
    let market = &app.tokens[&AgencyKind::MarketRegulation];

    let (ok, table, err) = client(&app, market, &["enterprise", "get", &uscc(1)]).await;
    assert!(ok, "{err}");
    assert!(
        table.contains(&uscc(1)) && table.contains("威海测试1有限公司"),
        "{table}"
    );
    assert!(table.contains("110105********002X"), "{table}");
    let (ok, json, err) = client(&app, market, &["enterprise", "get", &uscc(1), "--json"]).await;
    assert!(ok, "{err}");
    let shown = &json_lines(&json)[0];
    assert_eq!(shown["uscc"], uscc(1));
    assert_eq!(
        shown["legal_representative"]["masked_id_number"],
        "110105********002X"
    );
    for output in [&table, &json] {
        assert!(!output.contains(ID_A), "a full ID number was printed");
    }
    let (ok, _, err) = client(&app, market, &["enterprise", "get", &uscc(99)]).await;
    assert!(!ok);
    assert!(
        err.contains("NOT_FOUND") || err.contains("not found"),
        "{err}"
    );

    app.grade_of(1).await; // a court's look-up, to be found below
    let court = &app.tokens[&AgencyKind::Court];
    let (ok, stats, err) = client(&app, court, &["grades", "stats", "--json"]).await;
    assert!(ok, "{err}");
    let counted: i64 = json_lines(&stats)
        .iter()
        .map(|r| r["enterprises"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, 2, "{stats}");

    let (_, supervisor) = app
        .store
        .create_agency(NewAgency {
            display_name: "信用监管科".into(),
            kind: AgencyKind::MarketRegulation,
            scopes: BTreeSet::from([Scope::AuditRead]),
            cert_subject: None,
        })
        .await
        .unwrap();
    let who = [
        "--enterprise",
        &uscc(1),
        "--since-days",
        "365",
        "--method",
        "/credithub.v1.GradeService/GetCreditGrade",
    ];
    let (ok, listed, err) =
        client(&app, &supervisor, &[&["audit", "list"][..], &who].concat()).await;
    assert!(ok, "{err}");
    let court_agency = format!("agencies/{}", app.agency_ids[&AgencyKind::Court]);
    assert!(listed.contains(&court_agency), "{listed}");
    let (ok, exported, err) = client(
        &app,
        &supervisor,
        &[&["audit", "export"][..], &who].concat(),
    )
    .await;
    assert!(ok, "{err}");
    let entries = json_lines(&exported);
    assert_eq!(entries.len(), 1, "{exported}");
    assert_eq!(entries[0]["agency"], court_agency);
    assert_eq!(entries[0]["purpose"], "JUDICIAL_ENFORCEMENT");
    assert_eq!(
        entries[0]["subjects"][0],
        format!("enterprises/{}", uscc(1))
    );
    // A court may not read the log.
    let (ok, _, err) = client(&app, court, &[&["audit", "list"][..], &who].concat()).await;
    assert!(!ok);
    assert!(
        err.contains("PERMISSION_DENIED") || err.contains("permission"),
        "{err}"
    );
}

/// TLS options with an http:// address would be ignored by the transport and the token
/// sent in the clear: the client refuses before connecting, naming https://.
#[tokio::test]
async fn tls_options_with_a_plain_address_are_refused_before_anything_is_sent() {
    let app = spawn_app().await;
    let ca = app.data_dir.join("ca.pem");
    std::fs::write(&ca, "not read").unwrap();
    let (ok, stdout, stderr) = client(
        &app,
        "unused-token",
        &[
            "enterprise",
            "get",
            &uscc(1),
            "--tls-ca",
            ca.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok, "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("https://"), "{stderr}");
}

/// `grades watch` on a server that drains (a deploy): it waits as told, reconnects to
/// the address (a new server there by then) and resumes after the last cursor it
/// printed, so the changes on either side of the restart are printed once each.
#[tokio::test]
async fn grades_watch_resumes_after_its_server_drains_with_no_gap_and_no_repeat() {
    use tokio::io::AsyncBufReadExt;
    let app = spawn_app().await;
    app.register(vec![enterprise(1, ID_A), enterprise(2, ID_B)])
        .await;
    let from = app.grade_history(2).await[0].cursor.clone();
    assert!(!from.is_empty());
    let (addr, stop) = another_server(&app, |s| s).await;
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_credit-hub"))
        .args(["grades", "watch", "--json", "--model", "general"])
        .args(["--purpose", "tax-administration", "--cursor", &from])
        .args(["--addr", &format!("http://{addr}")])
        .args(["--token", &app.tokens[&AgencyKind::Tax]])
        .env_remove("CREDIT_HUB_TLS_CA")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut printed: Vec<serde_json::Value> = Vec::new();
    // Reads printed changes until one about enterprise `n` submitted a record.
    async fn until_submitted(
        lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
        printed: &mut Vec<serde_json::Value>,
        n: u32,
    ) {
        let wanted = format!("enterprises/{}", uscc(n));
        tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let change: serde_json::Value = serde_json::from_str(&line).unwrap();
                let done = change["enterprise"] == wanted && change["cause"] == "RECORD_SUBMITTED";
                printed.push(change);
                if done {
                    return;
                }
            }
            panic!("the watch ended: {printed:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("no change about enterprise {n}: {printed:?}"));
    }
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![penalty(&uscc(1), "P-WATCH-1")],
        })
        .await
        .unwrap();
    until_submitted(&mut lines, &mut printed, 1).await;

    // The server drains; the client says it will reconnect; another server takes the
    // address while it waits.
    stop.send(()).unwrap();
    let mut said = tokio::io::BufReader::new(watch.stderr.take().unwrap()).lines();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(line) = said.next_line().await.unwrap() {
            if line.contains("reconnecting") {
                assert!(line.contains("shutting down"), "{line}");
                return;
            }
        }
        panic!("the watch ended without saying it would reconnect");
    })
    .await
    .expect("the watch says it reconnects");
    let mut next = None;
    for _ in 0..100 {
        match Server::bind(app.open_again().await, app.keyer.clone(), &addr.to_string()).await {
            Ok(server) => {
                next = Some(server);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let (_stop_next, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(next.expect("the address is free again").run(
        async {
            stopped.await.ok();
        },
        credit_hub::ShutdownPolicy::default(),
    ));
    app.records(AgencyKind::MarketRegulation)
        .batch_submit_records(pb::BatchSubmitRecordsRequest {
            request_id: String::new(),
            records: vec![penalty(&uscc(2), "P-WATCH-2")],
        })
        .await
        .unwrap();
    until_submitted(&mut lines, &mut printed, 2).await;
    watch.kill().await.ok();

    let cursors: Vec<&str> = printed
        .iter()
        .map(|c| c["cursor"].as_str().unwrap())
        .collect();
    let mut distinct = cursors.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        cursors.len(),
        "no change printed twice: {cursors:?}"
    );
    assert!(
        !cursors.contains(&from.as_str()),
        "resumed after --cursor: {cursors:?}"
    );
}
