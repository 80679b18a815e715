//! The audit log's append path alone: CPU (of this process; on PostgreSQL the server's
//! work is not in it) and wall time per entry when entries are group-committed in
//! groups of a given size, as the writer does under load. Isolates the store from the
//! noise of a full server benchmark. SQLite in a temp directory; PostgreSQL on a fresh
//! database when `CREDIT_HUB_BENCH_DATABASE_URL` names one.
//!
//! cargo bench --bench audit_append -- [GROUP ...]

use std::time::Instant;

use credit_hub::domain::audit::AuditEvent;
use credit_hub::store::Store;

mod common;

/// Entries written per group size measured.
const ENTRIES: usize = 200_000;

/// User + system CPU seconds this process has used, all threads (SQLite's included).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("stat has a command")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("numeric field");
    (ticks(11) + ticks(12)) / 100.0
}

/// One GetCreditGrade entry, as the server writes it.
fn event(n: usize) -> AuditEvent {
    AuditEvent {
        time: 1_764_590_000_000 + n as i64,
        agency: "a6f1c2d4-0000-4000-8000-000000000001".into(),
        method: "/credithub.v1.GradeService/GetCreditGrade".into(),
        request_id: format!("0f3c2b1a-0000-4000-8000-{n:012}"),
        subjects: vec![format!("enterprises/9111000{:011}", n % 50_000)],
        purpose: None,
        case_reference: String::new(),
        outcome: "OK".into(),
        result_count: 1,
    }
}

/// Appends `ENTRIES` entries in groups of `group` and prints the cost per entry.
async fn measure(backend: &str, store: Store, group: usize) {
    store.migrate().await.expect("migrate");
    let mut head = store.audit_head().await.expect("head");
    let batches: Vec<Vec<AuditEvent>> = (0..ENTRIES / group)
        .map(|g| (0..group).map(|i| event(g * group + i)).collect())
        .collect();
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for events in &batches {
        head = store
            .append_audit(&head, events)
            .await
            .expect("append")
            .expect("this process is the only writer");
    }
    let (cpu, wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    let n = (batches.len() * group) as f64;
    println!(
        "{backend:>8} group {group:>4}: {:6.2} µs CPU/entry, {:6.2} µs wall/entry",
        cpu / n * 1e6,
        wall / n * 1e6
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let groups: Vec<usize> = common::args()
        .iter()
        .map(|a| a.parse().expect("group sizes are numbers"))
        .collect();
    let groups = if groups.is_empty() {
        vec![8, 25, 60]
    } else {
        groups
    };
    for group in groups {
        common::on_each_backend("audit", |backend, store| measure(backend, store, group)).await;
    }
}
