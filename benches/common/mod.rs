//! What the benchmark binaries share: running one measurement on each backend.

use std::future::Future;

use std::time::Duration;

use credit_hub::store::Store;
use credit_hub::{Server, ShutdownPolicy};
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The allocator the `credit-hub` binary runs with (see `src/main.rs`): the servers these
/// benchmarks start in-process must allocate as the shipped server does (with glibc's,
/// malloc and free took a third of the request side's CPU in a profile of ingestion).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench's positional arguments (cargo passes flags such as `--bench` too).
// Not every bench takes arguments; each bench compiles this module on its own.
#[allow(dead_code)]
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}

/// A server running for a measurement: a channel to it, and how to stop it.
// Each bench compiles this module on its own; the store-only ones (audit_append) never
// start a server.
#[allow(dead_code)]
pub struct Running {
    pub channel: Channel,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<()>>,
}

#[allow(dead_code)] // as above
impl Running {
    /// Starts `server` and connects to it.
    pub async fn start(server: Server) -> Self {
        let addr = format!("http://{}", server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(
            async {
                stopped.await.ok();
            },
            ShutdownPolicy {
                announce: Duration::ZERO,
                drain: Duration::from_secs(5),
            },
        ));
        let channel = Channel::from_shared(addr)
            .expect("url")
            .connect()
            .await
            .expect("connect");
        Running {
            channel,
            stop,
            handle,
        }
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.await;
    }
}

/// Runs `measure` on a fresh SQLite database in a temporary directory, then, when
/// `CREDIT_HUB_BENCH_DATABASE_URL` names a PostgreSQL database, on a fresh database
/// created beside it (named with `tag`) and dropped afterwards.
pub async fn on_each_backend<F, Fut>(tag: &str, measure: F)
where
    F: Fn(&'static str, Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    measure(
        "sqlite",
        Store::open_sqlite(dir.path()).await.expect("sqlite"),
    )
    .await;

    let Ok(admin) = std::env::var("CREDIT_HUB_BENCH_DATABASE_URL") else {
        return;
    };
    sqlx::any::install_default_drivers();
    let (base, db) = admin.rsplit_once('/').expect("URL ends with /database");
    let name = format!("{db}_{tag}_{}", std::process::id());
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create");
    let store = Store::open_postgres(&format!("{base}/{name}"), 16)
        .await
        .expect("postgres");
    measure("postgres", store).await;
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .ok();
}
