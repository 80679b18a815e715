//! The audit log's storage: appending chained entries under one lock, so replicas on
//! one PostgreSQL extend a single chain; listing, exporting and verifying it; signed
//! checkpoints of its head.

use sqlx::Row;

use super::sql::{bind_all, fetch_json, multi_insert, placeholders, select_json, Val};
use super::{stored_code, Backend, Result, Store};
use crate::domain::audit::{
    AuditEntry, AuditEvent, ChainBreak, ChainCheck, Checkpoint, GENESIS_HASH,
};
use crate::domain::codes::Purpose;

/// PostgreSQL advisory lock that appenders take in turn, so that every replica reads the
/// true head before extending the chain.
const CHAIN_LOCK: i64 = 728_302;

const ENTRY_COLUMNS: &[&str] = &[
    "seq",
    "time",
    "agency",
    "method",
    "request_id",
    "subjects",
    "purpose",
    "case_reference",
    "outcome",
    "result_count",
    "previous_hash",
    "hash",
];

type EntryRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    String,
    String,
);

fn entry_from_row(row: EntryRow) -> Result<AuditEntry> {
    let (
        seq,
        time,
        agency,
        method,
        request_id,
        subjects,
        purpose,
        case_reference,
        outcome,
        result_count,
        previous_hash,
        hash,
    ) = row;
    Ok(AuditEntry {
        seq,
        event: AuditEvent {
            time,
            agency,
            method,
            request_id,
            // A subject list that does not parse is itself tampering: keep the raw text
            // as the only subject so the hash check names the entry.
            subjects: serde_json::from_str(&subjects).unwrap_or_else(|_| vec![subjects]),
            purpose: purpose
                .map(|p| stored_code(&p, Purpose::from_code))
                .transpose()?,
            case_reference,
            outcome,
            result_count,
        },
        previous_hash,
        hash,
    })
}

/// Which entries to list; every given filter must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Agency id.
    pub agency: Option<String>,
    /// A subject resource name (`enterprises/{uscc}`, `persons/{person_key}`).
    pub subject: Option<String>,
    pub method: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub start: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    pub end: Option<i64>,
}

/// What a successful verification saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedChain {
    pub entries: i64,
    pub checkpoints: usize,
}

impl Store {
    /// Appends `events` to the chain in one transaction and returns them as chained.
    pub async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEntry>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHAIN_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (mut seq, mut previous) = match head {
            Some(row) => (
                row.try_get::<i64, _>("seq")?,
                row.try_get::<String, _>("hash")?,
            ),
            None => (0, GENESIS_HASH.to_string()),
        };
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let entry = event.chain(seq, &previous);
            previous = entry.hash.clone();
            entries.push(entry);
        }
        let rows = entries
            .iter()
            .map(|e| {
                vec![
                    e.seq.into(),
                    e.event.time.into(),
                    e.event.agency.clone().into(),
                    e.event.method.clone().into(),
                    e.event.request_id.clone().into(),
                    serde_json::to_string(&e.event.subjects)
                        .expect("strings always serialize")
                        .into(),
                    e.event.purpose.map(|p| p.code().to_string()).into(),
                    e.event.case_reference.clone().into(),
                    e.event.outcome.clone().into(),
                    e.event.result_count.into(),
                    e.previous_hash.clone().into(),
                    e.hash.clone().into(),
                ]
            })
            .collect();
        for (sql, vals) in multi_insert(self.backend, "audit_entries", ENTRY_COLUMNS, rows) {
            bind_all(sqlx::query(&sql), vals).execute(&mut *tx).await?;
        }
        let subjects: Vec<Vec<Val>> = entries
            .iter()
            .flat_map(|e| {
                let mut subjects = e.event.subjects.clone();
                subjects.sort();
                subjects.dedup();
                subjects
                    .into_iter()
                    .map(move |s| vec![Val::from(s), Val::from(e.seq)])
            })
            .collect();
        for (sql, vals) in multi_insert(
            self.backend,
            "audit_subjects",
            &["subject", "seq"],
            subjects,
        ) {
            bind_all(sqlx::query(&sql), vals).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(entries)
    }

    /// Entries after `after` matching `filter`, ascending, at most `limit`.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let b = self.backend;
        let mut conditions = vec![format!("a.seq > {}", placeholders(b, 1, 1))];
        let mut vals = vec![Val::from(after)];
        let mut add = |cond: &str, v: Val, vals: &mut Vec<Val>| {
            vals.push(v);
            conditions.push(cond.replace('?', &placeholders(b, vals.len(), 1)));
        };
        if let Some(a) = &filter.agency {
            add("a.agency = ?", a.as_str().into(), &mut vals);
        }
        if let Some(m) = &filter.method {
            add("a.method = ?", m.as_str().into(), &mut vals);
        }
        if let Some(t) = filter.start {
            add("a.time >= ?", t.into(), &mut vals);
        }
        if let Some(t) = filter.end {
            add("a.time < ?", t.into(), &mut vals);
        }
        if let Some(s) = &filter.subject {
            add(
                "a.seq IN (SELECT seq FROM audit_subjects WHERE subject = ?)",
                s.as_str().into(),
                &mut vals,
            );
        }
        let exprs: Vec<String> = ENTRY_COLUMNS.iter().map(|c| format!("a.{c}")).collect();
        let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        // Aggregates take no ORDER BY of the outer query: order and limit in a subquery.
        let sql = select_json(
            b,
            &exprs,
            &format!(
                "(SELECT * FROM audit_entries a WHERE {} ORDER BY a.seq LIMIT {limit}) a",
                conditions.join(" AND ")
            ),
        );
        let rows: Vec<EntryRow> = fetch_json(&self.read, &sql, vals).await?;
        rows.into_iter().map(entry_from_row).collect()
    }

    /// Stores a signed checkpoint of the chain.
    pub async fn add_audit_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, time, public_key, signature) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(cp.seq)
        .bind(&cp.hash)
        .bind(cp.time)
        .bind(&cp.public_key)
        .bind(&cp.signature)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest checkpoint, if any.
    pub async fn latest_audit_checkpoint(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints")
            .fetch_one(&self.read)
            .await?)
    }

    /// Walks the whole chain and every checkpoint (signed by one of `trusted` public
    /// keys, when any are given). The outer error is a storage failure; the inner one
    /// the first break found.
    pub async fn verify_audit(
        &self,
        trusted: &[String],
    ) -> Result<Result<VerifiedChain, ChainBreak>> {
        let checkpoints: Vec<Checkpoint> = sqlx::query(
            "SELECT seq, hash, time, public_key, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            Ok(Checkpoint {
                seq: r.try_get("seq")?,
                hash: r.try_get("hash")?,
                time: r.try_get("time")?,
                public_key: r.try_get("public_key")?,
                signature: r.try_get("signature")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let wanted: std::collections::BTreeSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
        let mut hashes = std::collections::HashMap::new();
        let mut check = ChainCheck::default();
        let mut after = 0;
        loop {
            let page = self
                .list_audit(&AuditFilter::default(), after, 5_000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                if let Err(e) = check.push(entry) {
                    return Ok(Err(e));
                }
                if wanted.contains(&entry.seq) {
                    hashes.insert(entry.seq, entry.hash.clone());
                }
            }
        }
        for cp in &checkpoints {
            if let Err(e) = check.checkpoint(cp, hashes.get(&cp.seq).map(String::as_str), trusted) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(VerifiedChain {
            entries: check.head(),
            checkpoints: checkpoints.len(),
        }))
    }
}
