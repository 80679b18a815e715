//! A write and its audit entry commit together: a write transaction committed inside
//! an audited call also saves the call's entry in `audit_pending`, and the group commit
//! that chains the call's entry claims (removes) it. Should the call never get there (a
//! crash, a kill, its append failing), the audit writer later chains the saved entry and
//! marks it chained, so that the call, should it still arrive, skips it: no committed
//! write goes unaccounted for and none is chained twice.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use sqlx::sqlite::SqliteArguments;
use sqlx::{Any, Transaction};

use super::audit::{append_postgres, chain, sqlite_inserts, stored_purpose, stored_subjects};
use super::sql::in_json;
use super::{now_millis, AuditPool, Backend, Result, Store};
use crate::domain::audit::AuditEvent;
use crate::domain::codes::Purpose;

/// The audited call a task is serving, as the audit layer describes it: an id, and
/// what its entry would say if the call ended now with OK.
pub struct CallAudit {
    /// Set as a write begins to save the entry (most calls only read), and from then
    /// on the id the call's entry must claim.
    id: std::sync::OnceLock<String>,
    snapshot: Box<dyn Fn() -> AuditEvent + Send + Sync>,
}

tokio::task_local! {
    /// Set by the audit layer around each audited call. Task-local rather than a
    /// parameter so that every write path saves its call's entry through
    /// [`Store::commit`] alone, without each store method and caller passing it on.
    static CALL: Arc<CallAudit>;
}

impl CallAudit {
    /// A call whose entry `snapshot` describes.
    pub fn new(snapshot: impl Fn() -> AuditEvent + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(CallAudit {
            id: std::sync::OnceLock::new(),
            snapshot: Box::new(snapshot),
        })
    }

    /// Runs `work` as this call: the write transactions it commits save its entry.
    pub async fn serve<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        CALL.scope(self, work).await
    }

    /// The id its entry may have been saved under, once a write of the call has begun
    /// to commit; the group commit that chains the call's entry must claim it.
    pub fn saved(&self) -> Option<&str> {
        self.id.get().map(String::as_str)
    }
}

/// A saved entry as stored.
type PendingRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
);

const PENDING_COLUMNS: &str =
    "call_id, time, agency, method, request_id, subjects, purpose, case_reference, result_count";

fn event_of(row: PendingRow) -> Result<(String, AuditEvent)> {
    let (call_id, time, agency, method, request_id, subjects, purpose, case_reference, count) = row;
    Ok((
        call_id,
        AuditEvent {
            time,
            agency,
            method,
            request_id,
            subjects: stored_subjects(subjects),
            purpose: stored_purpose(purpose)?,
            case_reference,
            outcome: "OK".to_string(),
            result_count: count,
        },
    ))
}

/// Most orphaned entries one append chains.
const ORPHANS_PER_GROUP: i64 = 1_000;

/// How long an orphaned entry, once chained, is remembered as chained: a call that
/// arrives later than this with the same entry would chain it again. Calls arrive
/// within their deadline and the writer's retries, seconds.
const CHAINED_KEPT_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Commits a write transaction. Inside an audited call it first saves the call's
    /// entry in the same transaction (replacing one an earlier commit of the same call
    /// saved), so the write and its accounting are durable together.
    pub(super) async fn commit(&self, mut tx: Transaction<'static, Any>) -> Result<()> {
        let call = CALL.try_with(Arc::clone).ok();
        if let Some(call) = &call {
            let e = (call.snapshot)();
            // The id is set before the commit, not after: a call dropped while its commit
            // is under way (deadline, disconnect) cannot tell whether it landed, and its
            // entry must then claim the saved one rather than leave it to be chained a
            // second time. Claiming what never landed finds nothing and costs nothing.
            let id = call
                .id
                .get_or_init(|| uuid::Uuid::now_v7().simple().to_string());
            sqlx::query(&format!(
                "INSERT INTO audit_pending ({PENDING_COLUMNS}, saved_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (call_id) DO UPDATE SET subjects = excluded.subjects, \
                 result_count = excluded.result_count, saved_at = excluded.saved_at, \
                 chained = 0"
            ))
            .bind(id)
            .bind(e.time)
            .bind(e.agency)
            .bind(e.method)
            .bind(e.request_id)
            .bind(serde_json::to_string(&e.subjects).expect("strings always serialize"))
            .bind(e.purpose.map(Purpose::code))
            .bind(e.case_reference)
            .bind(e.result_count)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Chains `events` after `head` as [`Store::append_audit`] does, in one transaction
    /// that also removes the entries the calls in `saved` (one per event, or `None`) may
    /// have saved. An event whose saved entry was already chained by
    /// [`Store::chain_orphaned_audit`] is skipped; one whose write never committed
    /// saved nothing and is chained as it is. `None` when the head moved. `chaining`
    /// learns how many entries the append chains once that is known, so that a caller
    /// whose commit failed ambiguously can ask whether that many landed.
    pub async fn append_audit_claiming(
        &self,
        head: &(i64, String),
        events: &[AuditEvent],
        saved: &[Option<String>],
        chaining: &mut Option<usize>,
    ) -> Result<Option<(i64, String)>> {
        let calls: Vec<&str> = saved.iter().flatten().map(String::as_str).collect();
        head_moved(
            async {
                let mut tx = AuditTx::begin(&self.audit).await?;
                let chained = tx.claim(&calls).await?;
                let events: Vec<AuditEvent> = events
                    .iter()
                    .zip(saved)
                    .filter(|(_, id)| id.as_ref().is_none_or(|id| !chained.contains(id)))
                    .map(|(e, _)| e.clone())
                    .collect();
                *chaining = Some(events.len());
                let new_head = tx.chain(&self.audit_writer, head, &events).await?;
                tx.commit().await?;
                Ok(new_head)
            }
            .await,
        )
    }

    /// Chains, after `head`, up to a thousand entries saved before `saved_before`
    /// (milliseconds) that no call chained: their process stopped after the write
    /// committed, or their append failed. They stay marked as chained for a day, so
    /// that a call arriving late skips them. Returns the new head and how many were
    /// chained; `None` when the head moved.
    pub async fn chain_orphaned_audit(
        &self,
        head: &(i64, String),
        saved_before: i64,
    ) -> Result<Option<((i64, String), usize)>> {
        head_moved(
            async {
                let mut tx = AuditTx::begin(&self.audit).await?;
                tx.forget_chained(now_millis() - CHAINED_KEPT_MS).await?;
                let mut orphans = Vec::new();
                for row in tx.orphans(saved_before).await? {
                    match event_of(row) {
                        Ok(orphan) => orphans.push(orphan),
                        // Left for a process that can read it (say, a newer replica
                        // saved a purpose this one does not know).
                        Err(e) => {
                            tracing::warn!(error = ?e, "a saved audit entry is unreadable here")
                        }
                    }
                }
                orphans.sort_by(|a, b| (a.1.time, &a.0).cmp(&(b.1.time, &b.0)));
                let ids: Vec<&str> = orphans.iter().map(|(id, _)| id.as_str()).collect();
                tx.mark_chained(&ids).await?;
                let events: Vec<AuditEvent> = orphans.iter().map(|(_, e)| e.clone()).collect();
                let new_head = tx.chain(&self.audit_writer, head, &events).await?;
                tx.commit().await?;
                Ok((new_head, events.len()))
            }
            .await,
        )
    }
}

/// `None` for an append that found the head moved (its first sequence number taken).
fn head_moved<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(super::Error::Database(sqlx::Error::Database(db))) if db.is_unique_violation() => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A transaction on the audit writer's connection.
enum AuditTx {
    Sqlite(Transaction<'static, sqlx::Sqlite>),
    Postgres(Transaction<'static, sqlx::Postgres>),
}

/// Runs the same query text, with one bound value, on either kind of transaction:
/// `on_tx!(tx, fetch_all, sql, value)` for rows, `on_tx!(tx, execute, …)` for none.
macro_rules! on_tx {
    ($tx:expr, execute, $sql:expr, $value:expr) => {
        match $tx {
            AuditTx::Sqlite(tx) => sqlx::query($sql)
                .bind($value)
                .execute(&mut **tx)
                .await
                .map(drop),
            AuditTx::Postgres(tx) => sqlx::query($sql)
                .bind($value)
                .execute(&mut **tx)
                .await
                .map(drop),
        }
    };
    ($tx:expr, $run:ident, $sql:expr, $value:expr) => {
        match $tx {
            AuditTx::Sqlite(tx) => sqlx::query_as($sql).bind($value).$run(&mut **tx).await,
            AuditTx::Postgres(tx) => sqlx::query_as($sql).bind($value).$run(&mut **tx).await,
        }
    };
}

impl AuditTx {
    async fn begin(pool: &AuditPool) -> sqlx::Result<Self> {
        Ok(match pool {
            AuditPool::Sqlite(pool) => AuditTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            AuditPool::Postgres(pool) => AuditTx::Postgres(pool.begin().await?),
        })
    }

    fn backend(&self) -> Backend {
        match self {
            AuditTx::Sqlite(_) => Backend::Sqlite,
            AuditTx::Postgres(_) => Backend::Postgres,
        }
    }

    /// `column` is one of the strings of the JSON array bound as the one parameter.
    fn in_json(&self, column: &str) -> String {
        in_json(self.backend(), column, 1)
    }

    /// Removes what `calls` saved; returns those of them an orphan pass had chained.
    async fn claim(&mut self, calls: &[&str]) -> sqlx::Result<HashSet<String>> {
        let ids = serde_json::to_string(calls).expect("strings always serialize");
        let delete = format!(
            "DELETE FROM audit_pending WHERE {}",
            self.in_json("call_id")
        );
        let rows: Vec<(String, i64)> = match self {
            // The write lock serializes this with every write: a saved entry is either
            // committed or gone.
            AuditTx::Sqlite(tx) => {
                sqlx::query_as(&format!("{delete} RETURNING call_id, chained"))
                    .bind(ids)
                    .fetch_all(&mut **tx)
                    .await?
            }
            // A call dropped while its commit was under way may claim before that commit
            // lands, and a DELETE does not see (nor wait for) a row still being inserted.
            // An insert of the same key does wait for it: claim by upserting a
            // placeholder, which returns the saved row once its transaction has ended
            // (or inserts the placeholder if it rolled back), then delete them all.
            AuditTx::Postgres(tx) => {
                let rows = sqlx::query_as(
                    "INSERT INTO audit_pending (call_id, time, agency, method, request_id, \
                     subjects, case_reference, result_count, saved_at, chained) \
                     SELECT id, 0, '', '', '', '[]', '', 0, 0, 0 \
                     FROM json_array_elements_text($1::json) AS id \
                     ON CONFLICT (call_id) DO UPDATE SET chained = audit_pending.chained \
                     RETURNING call_id, chained::int8",
                )
                .bind(&ids)
                .fetch_all(&mut **tx)
                .await?;
                sqlx::query(&delete).bind(&ids).execute(&mut **tx).await?;
                rows
            }
        };
        Ok(rows
            .into_iter()
            .filter(|(_, chained)| *chained != 0)
            .map(|(id, _)| id)
            .collect())
    }

    /// Up to [`ORPHANS_PER_GROUP`] unchained entries saved before `saved_before`, oldest
    /// first. On PostgreSQL locked, and skipping those another replica has locked.
    async fn orphans(&mut self, saved_before: i64) -> sqlx::Result<Vec<PendingRow>> {
        let lock = match self {
            AuditTx::Sqlite(_) => "",
            AuditTx::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "SELECT {PENDING_COLUMNS} FROM audit_pending WHERE chained = 0 AND saved_at < $1 \
             ORDER BY saved_at LIMIT {ORPHANS_PER_GROUP}{lock}"
        );
        on_tx!(self, fetch_all, &sql, saved_before)
    }

    async fn mark_chained(&mut self, calls: &[&str]) -> sqlx::Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE audit_pending SET chained = 1 WHERE {}",
            self.in_json("call_id")
        );
        let ids = serde_json::to_string(calls).expect("strings always serialize");
        on_tx!(self, execute, &sql, ids)
    }

    /// Forgets orphans chained before `chained_before`.
    async fn forget_chained(&mut self, chained_before: i64) -> sqlx::Result<()> {
        let sql = "DELETE FROM audit_pending WHERE chained = 1 AND saved_at < $1";
        on_tx!(self, execute, sql, chained_before)
    }

    /// Chains `events` after `head` and inserts them with their subjects' index rows;
    /// returns the new head.
    async fn chain(
        &mut self,
        writer: &str,
        head: &(i64, String),
        events: &[AuditEvent],
    ) -> sqlx::Result<(i64, String)> {
        let (rows, new_head) = chain(head, events);
        if rows.is_empty() {
            return Ok(new_head);
        }
        match self {
            AuditTx::Sqlite(tx) => {
                let mut sql = String::new();
                let mut args = SqliteArguments::default();
                sqlite_inserts(&mut sql, &mut args, writer, &rows, events);
                sqlx::query_with(&sql, args).execute(&mut **tx).await?;
            }
            AuditTx::Postgres(tx) => append_postgres(&mut **tx, writer, &rows, events).await?,
        }
        Ok(new_head)
    }

    async fn commit(self) -> sqlx::Result<()> {
        match self {
            AuditTx::Sqlite(tx) => tx.commit().await,
            AuditTx::Postgres(tx) => tx.commit().await,
        }
    }
}
