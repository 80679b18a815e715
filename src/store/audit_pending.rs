//! A write and its audit entry commit together: a write transaction committed inside
//! an audited call also saves the call's entry in `audit_pending`, and the group commit
//! that chains the entry removes it. Should the process stop between the two (a crash,
//! a kill, the audit append failing), the audit writer later chains what is left, so no
//! committed write goes unaccounted for and none is chained twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::sqlite::SqliteArguments;
use sqlx::{Any, Transaction};

use super::audit::{
    chain, postgres_insert, sqlite_inserts, stored_purpose, stored_subjects, EntryJson,
};
use super::{now_millis, AuditPool, Result, Store};
use crate::domain::audit::AuditEvent;
use crate::domain::codes::Purpose;

/// The audited call a task is serving, as the audit layer describes it: an id, and
/// what its entry would say if the call ended now with OK.
pub struct CallAudit {
    /// Made when a write first saves the entry: most calls only read.
    id: std::sync::OnceLock<String>,
    snapshot: Box<dyn Fn() -> AuditEvent + Send + Sync>,
    saved: AtomicBool,
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
            saved: AtomicBool::new(false),
        })
    }

    /// Runs `work` as this call: the write transactions it commits save its entry.
    pub async fn serve<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        CALL.scope(self, work).await
    }

    /// The id its entry was saved under, once a write of the call has committed; the
    /// group commit that chains the call's entry must remove it.
    pub fn saved(&self) -> Option<&str> {
        if self.saved.load(Ordering::Acquire) {
            self.id.get().map(String::as_str)
        } else {
            None
        }
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

/// Which saved entries an append takes out of `audit_pending`.
enum Claim<'a> {
    /// Those of these calls, whose entries the group itself carries.
    Calls(Vec<&'a str>),
    /// Every one saved before this time (milliseconds): calls that never got chained.
    SavedBefore(i64),
}

/// Most orphaned entries one append chains.
const ORPHANS_PER_GROUP: i64 = 1_000;

impl Store {
    /// Commits a write transaction. Inside an audited call it first saves the call's
    /// entry in the same transaction (replacing one an earlier commit of the same call
    /// saved), so the write and its accounting are durable together.
    pub(super) async fn commit(&self, mut tx: Transaction<'static, Any>) -> Result<()> {
        let call = CALL.try_with(Arc::clone).ok();
        if let Some(call) = &call {
            let e = (call.snapshot)();
            sqlx::query(&format!(
                "INSERT INTO audit_pending ({PENDING_COLUMNS}, saved_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (call_id) DO UPDATE SET subjects = excluded.subjects, \
                 result_count = excluded.result_count, saved_at = excluded.saved_at"
            ))
            .bind(
                call.id
                    .get_or_init(|| uuid::Uuid::now_v7().simple().to_string()),
            )
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
        if let Some(call) = call {
            call.saved.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Chains `events` after `head` as [`Store::append_audit`] does, in one transaction
    /// that also removes the saved entries of the calls in `saved` (one per event, or
    /// `None`). An event whose saved entry is already gone was chained by
    /// [`Store::chain_orphaned_audit`] and is skipped. `None` when the head moved.
    pub async fn append_audit_claiming(
        &self,
        head: &(i64, String),
        events: &[AuditEvent],
        saved: &[Option<String>],
    ) -> Result<Option<(i64, String)>> {
        let calls = saved.iter().flatten().map(String::as_str).collect();
        Ok(self
            .append_in_transaction(head, Claim::Calls(calls), |claimed| {
                events
                    .iter()
                    .zip(saved)
                    .filter(|(_, id)| id.as_ref().is_none_or(|id| claimed.contains_key(id)))
                    .map(|(e, _)| e.clone())
                    .collect()
            })
            .await?
            .map(|(head, _)| head))
    }

    /// Chains, after `head`, up to a thousand entries saved before `saved_before`
    /// (milliseconds) whose calls never chained them: their process stopped after the
    /// write committed. Returns the new head and how many were chained; `None` when the
    /// head moved.
    pub async fn chain_orphaned_audit(
        &self,
        head: &(i64, String),
        saved_before: i64,
    ) -> Result<Option<((i64, String), usize)>> {
        self.append_in_transaction(head, Claim::SavedBefore(saved_before), |claimed| {
            let mut orphans: Vec<(&String, &AuditEvent)> = claimed.iter().collect();
            orphans.sort_by(|a, b| (a.1.time, a.0).cmp(&(b.1.time, b.0)));
            orphans.into_iter().map(|(_, e)| e.clone()).collect()
        })
        .await
    }

    /// One transaction on the audit writer's connection: take the saved entries `claim`
    /// names out of `audit_pending`, then chain after `head` the events `select` picks
    /// given what was taken (call id -> its saved entry). Rolled back, and `None`, when
    /// the head moved.
    async fn append_in_transaction(
        &self,
        head: &(i64, String),
        claim: Claim<'_>,
        select: impl FnOnce(&HashMap<String, AuditEvent>) -> Vec<AuditEvent>,
    ) -> Result<Option<((i64, String), usize)>> {
        let result = async {
            let mut tx = AuditTx::begin(&self.audit).await?;
            let claimed = tx.claim(&claim).await?;
            let claimed = claimed
                .into_iter()
                .map(event_of)
                .collect::<Result<HashMap<_, _>>>()?;
            let events = select(&claimed);
            let (rows, new_head) = chain(head, &events);
            if !rows.is_empty() {
                tx.insert(&rows, &events).await?;
            }
            tx.commit().await?;
            Ok::<_, super::Error>((new_head, events.len()))
        }
        .await;
        match result {
            Ok(done) => Ok(Some(done)),
            Err(super::Error::Database(sqlx::Error::Database(db))) if db.is_unique_violation() => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A transaction on the audit writer's connection.
enum AuditTx {
    Sqlite(Transaction<'static, sqlx::Sqlite>),
    Postgres(Transaction<'static, Any>),
}

impl AuditTx {
    async fn begin(pool: &AuditPool) -> sqlx::Result<Self> {
        Ok(match pool {
            AuditPool::Sqlite(pool) => AuditTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            AuditPool::Postgres(pool) => AuditTx::Postgres(pool.begin().await?),
        })
    }

    /// Deletes the saved entries `claim` names and returns them.
    async fn claim(&mut self, claim: &Claim<'_>) -> sqlx::Result<Vec<PendingRow>> {
        let returning = format!("RETURNING {PENDING_COLUMNS}");
        let ids = |ids: &[&str]| serde_json::to_string(ids).expect("strings always serialize");
        match (self, claim) {
            (AuditTx::Sqlite(tx), Claim::Calls(calls)) => {
                sqlx::query_as(&format!(
                    "DELETE FROM audit_pending WHERE call_id IN \
                     (SELECT value FROM json_each(?)) {returning}"
                ))
                .bind(ids(calls))
                .fetch_all(&mut **tx)
                .await
            }
            (AuditTx::Sqlite(tx), Claim::SavedBefore(t)) => {
                sqlx::query_as(&format!(
                    "DELETE FROM audit_pending WHERE call_id IN (SELECT call_id \
                     FROM audit_pending WHERE saved_at < ? ORDER BY saved_at \
                     LIMIT {ORPHANS_PER_GROUP}) {returning}"
                ))
                .bind(t)
                .fetch_all(&mut **tx)
                .await
            }
            (AuditTx::Postgres(tx), Claim::Calls(calls)) => {
                sqlx::query_as(&format!(
                    "DELETE FROM audit_pending WHERE call_id = ANY \
                     (ARRAY(SELECT json_array_elements_text($1::json))) {returning}"
                ))
                .bind(ids(calls))
                .fetch_all(&mut **tx)
                .await
            }
            // Replicas recovering at once each take different entries.
            (AuditTx::Postgres(tx), Claim::SavedBefore(t)) => {
                sqlx::query_as(&format!(
                    "DELETE FROM audit_pending WHERE call_id IN (SELECT call_id \
                     FROM audit_pending WHERE saved_at < $1 ORDER BY saved_at \
                     LIMIT {ORPHANS_PER_GROUP} FOR UPDATE SKIP LOCKED) {returning}"
                ))
                .bind(t)
                .fetch_all(&mut **tx)
                .await
            }
        }
    }

    /// Inserts chained `rows` (of `events`) and their subjects' index rows.
    async fn insert(&mut self, rows: &[EntryJson<'_>], events: &[AuditEvent]) -> sqlx::Result<()> {
        match self {
            AuditTx::Sqlite(tx) => {
                let mut sql = String::new();
                let mut args = SqliteArguments::default();
                sqlite_inserts(&mut sql, &mut args, rows, events);
                sqlx::query_with(&sql, args).execute(&mut **tx).await?;
            }
            AuditTx::Postgres(tx) => {
                let json =
                    serde_json::to_string(rows).expect("strings and numbers always serialize");
                sqlx::query(postgres_insert())
                    .bind(json)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    async fn commit(self) -> sqlx::Result<()> {
        match self {
            AuditTx::Sqlite(tx) => tx.commit().await,
            AuditTx::Postgres(tx) => tx.commit().await,
        }
    }
}
