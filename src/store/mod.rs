//! Storage: the only place that knows SQL. One API over SQLite (embedded default) and
//! PostgreSQL (clusters), through sqlx's `Any` driver so both run the same statements;
//! each backend has its own migrations with the same versions.

mod agencies;
mod audit;
mod audit_pending;
mod certificates;
mod enterprises;
mod grade_cache;
mod grades;
mod migrations;
mod records;
mod repair;
mod request_log;
mod spotcheck;
mod sql;
mod vetting;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Any, AnyPool, ConnectOptions, Executor};

use crate::domain;
use crate::domain::grading::ModelSet;

pub use agencies::{token_hash, token_shaped, AgencyListing, NewAgency};
pub use audit::{AuditFilter, VerifiedChain};
pub use audit_pending::CallAudit;
pub use certificates::{CertificateFilter, IssuerKey};
pub use enterprises::EnterpriseFilter;
pub use grades::Targets;
pub use records::{RecordFilter, RevisionPlace, SubmitResult};
pub use repair::{PoolEntry, RepairFilter};
pub use request_log::{Replay, RequestKey};
pub use spotcheck::{CycleActivity, DrawSaved};
pub use vetting::SavedReport;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A storage failure, or a domain rule that only the stored state can check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] domain::Error),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // A TLS handshake that fails on what it reads (a certificate that does not
            // check) comes as I/O of kind InvalidData: configuration, not retried.
            sqlx::Error::Io(ref io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Error::Database(e)
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Error::Unavailable(e)
            }
            // A connection closed before answering the TLS request (PostgreSQL
            // connections ask for TLS whenever sslmode allows it, by default).
            sqlx::Error::Protocol(ref m)
                if m.starts_with("unexpected response from SSLRequest: 0x00") =>
            {
                Error::Unavailable(e)
            }
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| is_transient(&c)) => {
                Error::Unavailable(e)
            }
            other => Error::Database(other),
        }
    }
}

/// Database error codes that say "not now" rather than "wrong": the caller may retry.
fn is_transient(code: &str) -> bool {
    matches!(
        code,
        // SQLite: another process holds the write lock past busy_timeout.
        "5" | "517"
        // PostgreSQL: serialization failure, deadlock detected, lock not available,
        // statement timeout (query canceled), too many connections, the server
        // shutting down or starting up.
        | "40001" | "40P01" | "55P03" | "57014" | "53300" | "57P01" | "57P02" | "57P03"
    )
}

/// What [`Store::confirm_person_key`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonKeyCheck {
    /// The key the database's persons were keyed with.
    Same,
    /// Recorded now, the first time a key was checked; `persons_before` when persons
    /// were stored already (a database from before the check), whose key it cannot tell.
    RecordedNow { persons_before: bool },
    /// Another key than the one recorded.
    Other,
}

/// Shorthand for storage results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The audit writer's own connection. On SQLite through the native driver: its group
/// commit is one round trip of several statements, each kept prepared, which the `Any`
/// driver cannot be configured to cache.
#[derive(Clone)]
enum AuditPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl AuditPool {
    fn size(&self) -> u32 {
        match self {
            AuditPool::Sqlite(p) => p.size(),
            AuditPool::Postgres(p) => p.size(),
        }
    }

    fn num_idle(&self) -> usize {
        match self {
            AuditPool::Sqlite(p) => p.num_idle(),
            AuditPool::Postgres(p) => p.num_idle(),
        }
    }

    async fn close(&self) {
        match self {
            AuditPool::Sqlite(p) => p.close().await,
            AuditPool::Postgres(p) => p.close().await,
        }
    }
}

/// The handle every service holds. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Readers. On PostgreSQL the same pool as `write`.
    read: AnyPool,
    /// Writers. On SQLite a single connection, so writers queue in the process instead
    /// of failing on the database lock.
    write: AnyPool,
    /// The audit writer's own connection, shared with no call: none can leave it inside
    /// an abandoned transaction.
    audit: AuditPool,
    /// The grading models every regrade applies.
    models: Arc<ModelSet>,
    /// Bumped after each commit that wrote grade history, to wake watchers at once.
    grade_events: Arc<tokio::sync::watch::Sender<u64>>,
    /// Recently read grades, for the look-up path.
    grade_cache: Arc<grade_cache::GradeCache>,
    /// This process's name in `audit_appends`: its group commits mark where they
    /// ended, so that a commit whose outcome is unknown can be told landed or not.
    audit_writer: Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// How long a looked-up grade is served from memory by default.
pub const DEFAULT_GRADE_CACHE_TTL: Duration = Duration::from_secs(1);

/// How long a caller waits for a pooled connection before the call fails as UNAVAILABLE:
/// short, so that while the database is away calls fail fast instead of queueing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a SQLite connection waits for another connection's write lock before its
/// statement fails as busy.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Statements the SQLite audit connection keeps prepared: one per combination of the
/// group-size classes its appends use (see `store::audit`).
const AUDIT_STATEMENTS: usize = 512;

impl Store {
    /// Opens (creating if missing) the SQLite database `credit-hub.db` under `data_dir`.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        std::fs::create_dir_all(data_dir).map_err(|e| Error::Unavailable(sqlx::Error::Io(e)))?;
        let path = data_dir.join("credit-hub.db");
        // WAL is a property of the file: set it once with the native driver, which can
        // also create the file; the Any driver then opens it by URL.
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await?;
        let url = format!("sqlite://{}", path.display());
        let sqlite_pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A connection to a local file cannot go stale; pinging it before every
                // use was a third of each audit group commit.
                .test_before_acquire(false)
                // FULL: in WAL mode NORMAL acknowledges commits that a power cut can
                // still take back, and answers (and audit entries) must be durable when
                // given. Measured at no loss of look-up or ingest throughput: commits
                // wait for the disk, and the audit writer's groups grow to absorb it.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        let pragmas = format!(
                            "PRAGMA synchronous = FULL; PRAGMA busy_timeout = {}; \
                             PRAGMA foreign_keys = ON; PRAGMA cache_size = -32000;",
                            SQLITE_BUSY_TIMEOUT.as_millis()
                        );
                        conn.execute(pragmas.as_str()).await?;
                        Ok(())
                    })
                })
        };
        let read = sqlite_pool(8).connect(&url).await?;
        let write = sqlite_pool(1).connect(&url).await?;
        // The audit writer takes SQLite's write lock in turns with the write pool, waiting
        // up to the busy timeout for it.
        let audit = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .statement_cache_capacity(AUDIT_STATEMENTS),
            )
            .await?;
        Ok(Store::assemble(
            Backend::Sqlite,
            read,
            write,
            AuditPool::Sqlite(audit),
        ))
    }

    /// Connects to PostgreSQL at `url` (`postgres://…`).
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Self> {
        Self::open_postgres_bounded(url, max_connections, None).await
    }

    /// [`Store::open_postgres`], each statement stopped by PostgreSQL once it has run
    /// (or waited for a lock) for `statement_timeout`: the server's own bound on
    /// database work, since a call dropped at its deadline cannot stop the statement
    /// it left running.
    pub async fn open_postgres_bounded(
        url: &str,
        max_connections: u32,
        statement_timeout: Option<Duration>,
    ) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let timeout_ms = statement_timeout.map_or(0, |t| t.as_millis().max(1));
        // What each new connection sets, in one round trip: its own setting, then the
        // statement timeout.
        let session = |setting: &str| -> Arc<str> {
            let mut sql = format!("{setting};");
            if timeout_ms > 0 {
                sql.push_str(&format!(" SET statement_timeout = {timeout_ms};"));
            }
            sql.into()
        };
        // Statements are prepared once and reused; a generic plan for an IN-list of keys
        // scans the whole records table once it is large.
        let setup = session("SET plan_cache_mode = force_custom_plan");
        let pool: AnyPool = PoolOptions::<Any>::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before every use: it doubled the round trips of short calls. A
            // connection broken under us fails its one statement (UNAVAILABLE, retry)
            // and the pool replaces it.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move { conn.execute(&*setup).await.map(drop) })
            })
            .connect(url)
            .await?;
        // The audit writer's own connection: a single round trip per group commit
        // before its WAL flush. Through the native driver, which binds the group's
        // columns as arrays (see `store::audit`). It tells the subject trigger, kept for
        // replicas of earlier releases during a rolling upgrade, that this writer
        // indexes subjects itself (migration 0014).
        let setup = session("SET credithub.writer_indexes_subjects = on");
        let audit = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move { conn.execute(&*setup).await.map(drop) })
            })
            // Connected by the writer, on its own thread's runtime (see `audit`).
            .connect_lazy(url)?;
        Ok(Store::assemble(
            Backend::Postgres,
            pool.clone(),
            pool,
            AuditPool::Postgres(audit),
        ))
    }

    fn assemble(backend: Backend, read: AnyPool, write: AnyPool, audit: AuditPool) -> Self {
        Store {
            backend,
            read,
            audit,
            write,
            models: Arc::new(ModelSet::builtin()),
            grade_events: Arc::new(tokio::sync::watch::channel(0).0),
            grade_cache: Arc::new(grade_cache::GradeCache::new(DEFAULT_GRADE_CACHE_TTL)),
            audit_writer: uuid::Uuid::now_v7().simple().to_string().into(),
        }
    }

    /// Keeps looked-up grades for `ttl` (zero turns the cache off). This process's own
    /// changes reach readers at once; other processes' within `ttl`.
    pub fn with_grade_cache(mut self, ttl: Duration) -> Self {
        self.grade_cache = Arc::new(grade_cache::GradeCache::new(ttl));
        self
    }

    /// Grades with `models` instead of the shipped ones.
    pub fn with_models(mut self, models: ModelSet) -> Self {
        self.models = Arc::new(models);
        self
    }

    /// The grading models in use.
    pub fn models(&self) -> &ModelSet {
        &self.models
    }

    /// Opens the database a URL names: `postgres://…` or `sqlite://path/to/dir`.
    pub async fn open_url(url: &str) -> Result<Self> {
        if let Some(dir) = url.strip_prefix("sqlite://") {
            Self::open_sqlite(Path::new(dir)).await
        } else {
            Self::open_postgres(url, 16).await
        }
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every pending migration. Safe to run from several processes at once on
    /// PostgreSQL (the migrator takes an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        migrations::migrator(self.backend).run(&self.write).await?;
        Ok(())
    }

    /// The newest migration applied to the database; `None` before the first.
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_one(&self.read)
                .await
                .or_else(|e| match e {
                    // The table does not exist yet on a fresh database.
                    sqlx::Error::Database(_) => Ok(None),
                    other => Err(other),
                })?;
        Ok(applied)
    }

    /// Whether `fingerprint` (see [`crate::domain::ids::PersonKeyer::fingerprint`]) is
    /// the person key's this database was keyed with; the first key to ask is recorded.
    pub async fn confirm_person_key(&self, fingerprint: &str) -> Result<PersonKeyCheck> {
        let mut tx = self.begin_write().await?;
        let recorded = sqlx::query(
            "INSERT INTO person_key_check (id, fingerprint) VALUES (1, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(fingerprint)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let stored: String =
            sqlx::query_scalar("SELECT fingerprint FROM person_key_check WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let check = if stored != fingerprint {
            PersonKeyCheck::Other
        } else if recorded {
            let persons: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM enterprise_roles UNION ALL \
                 SELECT CAST(1 AS BIGINT) FROM records WHERE subject_type = 'person' LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?;
            PersonKeyCheck::RecordedNow {
                persons_before: persons.is_some(),
            }
        } else {
            PersonKeyCheck::Same
        };
        tx.commit().await?;
        Ok(check)
    }

    /// Whether every migration this binary knows has been applied. A newer schema
    /// counts too: migrations only add, so during a rolling upgrade the replicas still
    /// on the older release keep serving after the new release's migration job ran.
    pub async fn is_migrated(&self) -> Result<bool> {
        let expected = migrations::latest_version(self.backend);
        let applied = self.schema_version().await?;
        Ok(applied.is_some_and(|version| version >= expected))
    }

    /// Refreshes the planner's statistics. Called after bulk loads (seed, reclassify):
    /// without statistics PostgreSQL plans key look-ups as full scans until autovacuum
    /// gets round to the tables.
    pub async fn analyze(&self) -> Result<()> {
        sqlx::query("ANALYZE").execute(&self.write).await?;
        Ok(())
    }

    /// [`Store::analyze`] for `tables` only: on a large database the audit log and
    /// grade history dominate a full pass (5.6 s against 2.7 s for the four tables
    /// grading reads, over a million enterprises).
    async fn analyze_tables(&self, tables: &[&str]) -> Result<()> {
        for table in tables {
            sqlx::query(&format!("ANALYZE {table}"))
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    /// Open and idle connections of the pools, the audit writer's own connection
    /// included; on PostgreSQL readers and writers share one pool, counted once.
    /// How many write transactions should hold connections at once: SQLite has one
    /// writer; on PostgreSQL half the pool, so that reads always find a connection
    /// while a burst of writes (which mostly take turns on history anyway) queues.
    pub fn write_slots(&self) -> usize {
        match self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => (self.write.options().get_max_connections() as usize / 2).max(1),
        }
    }

    pub fn pool_use(&self) -> (u32, usize) {
        let (size, idle) = match self.backend {
            Backend::Sqlite => (
                self.read.size() + self.write.size(),
                self.read.num_idle() + self.write.num_idle(),
            ),
            Backend::Postgres => (self.write.size(), self.write.num_idle()),
        };
        (size + self.audit.size(), idle + self.audit.num_idle())
    }

    /// Records whose publicity window ended by `today` whose subjects are not yet
    /// regraded for it: how far grading lags behind the calendar.
    pub async fn grading_lag(&self, today: chrono::NaiveDate) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM records WHERE status = 'ACTIVE' AND expiry_graded = 0 \
             AND publicity_end_date <= $1",
        )
        .bind(today.to_string())
        .fetch_one(&self.read)
        .await?)
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
        self.audit.close().await;
    }

    /// Starts a write transaction. On SQLite it takes the write lock up front, so a
    /// transaction never fails halfway on a lock upgrade.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => match self.write.begin_with("BEGIN IMMEDIATE").await {
                // A write abandoned at the wrong moment (deadline, disconnect) can leave the
                // driver believing its pooled connection is still inside that transaction,
                // and it then refuses to begin another: every later write, the audit log's
                // included, would fail. Close that connection (SQLite rolls back whatever
                // it still held) and begin on a fresh one.
                Err(sqlx::Error::InvalidSavePointStatement) => {
                    tracing::warn!(
                        "closing a write connection left inside an abandoned transaction"
                    );
                    self.write.acquire().await?.close().await.ok();
                    self.write.begin_with("BEGIN IMMEDIATE").await?
                }
                begun => begun?,
            },
            Backend::Postgres => self.write.begin().await?,
        })
    }

    /// Every text value in every table, for the test that proves no full ID number is
    /// stored. Returns (table, column, value).
    pub async fn dump_text_columns(&self) -> Result<Vec<(String, String, String)>> {
        let tables: Vec<String> = match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .fetch_all(&self.read)
                .await?
            }
            Backend::Postgres => {
                sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
                )
                .fetch_all(&self.read)
                .await?
            }
        };
        let mut out = Vec::new();
        // sqlx's own bookkeeping holds only migration scripts.
        for table in tables.into_iter().filter(|t| !t.starts_with("_sqlx")) {
            // Tables come from the catalog, not from input, so formatting them in is safe.
            let rows: Vec<AnyRow> = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(&self.read)
                .await?;
            for row in rows {
                use sqlx::{Column, Row};
                for col in row.columns() {
                    if let Ok(Some(text)) = row.try_get::<Option<String>, _>(col.ordinal()) {
                        out.push((table.clone(), col.name().to_string(), text));
                    } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(col.ordinal())
                    {
                        out.push((
                            table.clone(),
                            col.name().to_string(),
                            String::from_utf8_lossy(&bytes).into_owned(),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Milliseconds since the Unix epoch, the unit every stored instant uses.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Parses a stored `YYYY-MM-DD`.
fn stored_date(s: &str) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::from_str(s).map_err(|_| Error::Corrupt(format!("bad stored date {s:?}")))
}

/// Parses a stored code into its enum.
fn stored_code<T>(code: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(code).ok_or_else(|| Error::Corrupt(format!("unknown stored code {code:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A released migration never changes (a database that applied it refuses an
    /// edited copy), both backends have the same versions, and each is listed in
    /// `migrations/released.sha256`: a new one is added there when it is released.
    #[test]
    fn released_migrations_are_never_edited() {
        use sha2::{Digest, Sha256};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let listed: std::collections::BTreeMap<String, String> =
            std::fs::read_to_string(root.join("released.sha256"))
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| {
                    let (hash, file) = l.split_once("  ").expect("sha256sum's format");
                    (file.to_string(), hash.to_string())
                })
                .collect();
        let mut versions = Vec::new();
        for backend in ["sqlite", "postgres"] {
            let mut files: Vec<String> = std::fs::read_dir(root.join(backend))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".sql"))
                .collect();
            files.sort();
            for file in &files {
                let key = format!("{backend}/{file}");
                let hash = hex::encode(Sha256::digest(std::fs::read(root.join(&key)).unwrap()));
                let released = listed
                    .get(&key)
                    .unwrap_or_else(|| panic!("{key} is not in migrations/released.sha256"));
                assert_eq!(
                    &hash, released,
                    "{key} was edited after its release: fix forward with a new migration"
                );
            }
            versions.push(files);
        }
        assert_eq!(
            versions[0], versions[1],
            "the same versions on both backends"
        );
    }

    /// Every SQLite connection the service writes or reads through must flush its commits
    /// to disk before they are acknowledged (an answer, or an audit entry, a power cut can
    /// take back is not durable), and the file must stay in WAL mode.
    #[tokio::test]
    async fn every_sqlite_connection_commits_durably_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let AuditPool::Sqlite(audit) = &store.audit else {
            panic!("a SQLite store has a SQLite audit connection");
        };
        const FULL: i64 = 2;
        for (pool, role) in [(&store.read, "read"), (&store.write, "write")] {
            let mut conn = pool.acquire().await.unwrap();
            let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(sync, FULL, "{role} pool");
            let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal", "{role} pool");
        }
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(audit)
            .await
            .unwrap();
        assert_eq!(sync, FULL, "audit connection");
    }
}
