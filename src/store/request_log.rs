//! The request log behind `request_id` (AIP-155): a retried write returns the response
//! the first attempt produced, never a second copy of its effect; and the store's own
//! retry of a write that lost a race with a concurrent one.

use sqlx::{Any, Row, Transaction};

use super::{now_millis, Result};
use crate::domain;

/// Identifies one logical write: the caller, the method and the caller's request id,
/// with a digest of the request so reuse for a different request is caught.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub agency_id: String,
    pub method: &'static str,
    pub request_id: String,
    pub request_digest: String,
}

/// The outcome of an idempotent write.
#[derive(Debug)]
pub enum Replay<T> {
    /// The write ran now.
    Fresh(T),
    /// The same request ran before; this is the response it gave, encoded.
    Replayed(Vec<u8>),
}

/// Begins the write transaction of `request`, or gives back the response it already
/// produced when this request ran before.
pub(super) async fn begin(
    store: &super::Store,
    request: Option<&RequestKey>,
) -> Result<Result<Transaction<'static, Any>, Vec<u8>>> {
    let mut tx = store.begin_write().await?;
    if let Some(key) = request {
        if store.backend == super::Backend::Postgres {
            // Two copies of one request at once (a retry racing its first attempt) would
            // both miss the log under READ COMMITTED and both run: the second then fails
            // on what the first did (already decided, key taken) instead of replaying its
            // answer. Serialized here, the second reads the first's committed answer.
            // SQLite has one writer.
            sqlx::query("SELECT pg_advisory_xact_lock(728307, hashtext($1))")
                .bind(format!(
                    "{}\n{}\n{}",
                    key.agency_id, key.method, key.request_id
                ))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(bytes) = find(&mut tx, key).await? {
            return Ok(Err(bytes));
        }
    }
    Ok(Ok(tx))
}

/// The stored response for `key`, if this request already ran. Reusing a request id for
/// a different request is refused.
pub(super) async fn find(
    tx: &mut Transaction<'static, Any>,
    key: &RequestKey,
) -> Result<Option<Vec<u8>>> {
    let row = sqlx::query(
        "SELECT request_hash, response FROM request_log \
         WHERE agency_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(&key.agency_id)
    .bind(key.method)
    .bind(&key.request_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let hash: String = row.try_get("request_hash")?;
    if hash != key.request_digest {
        return Err(domain::Error::invalid(
            "request_id",
            "was already used for a different request; use a new request_id for a new request",
        )
        .into());
    }
    Ok(Some(row.try_get("response")?))
}

impl super::Store {
    /// The stored response of `key`'s request if it already ran (a retry), for a
    /// handler whose preconditions the first attempt's own effect would now fail: it
    /// answers the retry before checking them. Reusing the id for a different request
    /// is refused.
    pub async fn replayed_response(&self, key: &RequestKey) -> Result<Option<Vec<u8>>> {
        let mut tx = self.read.begin().await?;
        let found = find(&mut tx, key).await;
        tx.rollback().await?;
        found
    }
}

/// Remembers the response of a request that just ran, in the same transaction as its
/// effect.
pub(super) async fn remember(
    tx: &mut Transaction<'static, Any>,
    key: &RequestKey,
    response: Vec<u8>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO request_log (agency_id, method, request_id, request_hash, response, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.agency_id)
    .bind(key.method)
    .bind(&key.request_id)
    .bind(&key.request_digest)
    .bind(response)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Runs `attempt` (one whole transaction) again, up to five times in all, while it
/// fails with a race that running it again resolves (see [`is_race`]).
pub(super) async fn retrying_races<T, F, Fut>(mut attempt: F) -> super::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = super::Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < 5 && is_race(&e) => tries += 1,
            other => return other,
        }
    }
}

/// Whether an error is a race with a concurrent request that running the request again
/// resolves: a unique-key race with an identical request (the retry replays the
/// winner's response), or PostgreSQL breaking a deadlock between two transactions
/// whose lock sets grew while they ran (the one it rolled back runs again).
pub(super) fn is_race(e: &super::Error) -> bool {
    match e {
        super::Error::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
        super::Error::Unavailable(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}
