//! The audit log's storage: appending chained entries after a known head (sequence
//! numbers are unique, so replicas on one PostgreSQL extend a single chain); listing,
//! exporting and verifying it; signed checkpoints of its head.

use sqlx::sqlite::SqliteArguments;
use sqlx::Row;
use tokio_stream::StreamExt as _;

use super::sql::{fetch_json, placeholders, select_json, Val};
use super::{stored_code, AuditPool, Result, Store};
use crate::domain::audit::{
    entry_hash, AuditEntry, AuditEvent, ChainBreak, ChainCheck, Checkpoint, GENESIS_HASH,
};
use crate::domain::codes::Purpose;

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

/// An entry chained and ready to append: one row of `audit_entries`.
pub(super) struct ChainedRow<'a> {
    seq: i64,
    time: i64,
    agency: &'a str,
    method: &'a str,
    request_id: &'a str,
    /// The subject list as stored: JSON text.
    subjects: String,
    purpose: Option<&'static str>,
    case_reference: &'a str,
    outcome: &'a str,
    result_count: i64,
    previous_hash: String,
    hash: String,
}

impl<'a> ChainedRow<'a> {
    fn of(seq: i64, e: &'a AuditEvent, previous_hash: String, hash: String) -> Self {
        ChainedRow {
            seq,
            time: e.time,
            agency: &e.agency,
            method: &e.method,
            request_id: &e.request_id,
            subjects: serde_json::to_string(&e.subjects).expect("strings always serialize"),
            purpose: e.purpose.map(Purpose::code),
            case_reference: &e.case_reference,
            outcome: &e.outcome,
            result_count: e.result_count,
            previous_hash,
            hash,
        }
    }
}

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

/// A stored subject list. One that does not parse is itself tampering: the raw text
/// stays as the only subject, so the hash check names the entry.
pub(super) fn stored_subjects(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_else(|_| vec![text])
}

/// A stored purpose code.
pub(super) fn stored_purpose(code: Option<String>) -> Result<Option<Purpose>> {
    code.map(|p| stored_code(&p, Purpose::from_code))
        .transpose()
}

/// An entry from a row of [`Store::verify_page`] (its stored columns as text, after the
/// sequence number), or what in it cannot be read.
fn read_entry(row: &sqlx::any::AnyRow) -> std::result::Result<AuditEntry, String> {
    let text = |i: usize, name: &str| -> std::result::Result<Option<String>, String> {
        row.try_get::<Option<String>, _>(i)
            .map_err(|_| format!("its {name} is not text"))
    };
    let required = |i: usize, name: &str| -> std::result::Result<String, String> {
        text(i, name)?.ok_or_else(|| format!("its {name} is missing"))
    };
    let number = |i: usize, name: &str| -> std::result::Result<i64, String> {
        let value = required(i, name)?;
        value
            .parse()
            .map_err(|_| format!("its {name} {value:?} is not a whole number"))
    };
    let purpose = match text(7, "purpose")? {
        None => None,
        Some(code) => Some(
            Purpose::from_code(&code).ok_or_else(|| format!("its purpose {code:?} is unknown"))?,
        ),
    };
    Ok(AuditEntry {
        seq: number(1, "seq")?,
        event: AuditEvent {
            time: number(2, "time")?,
            agency: required(3, "agency")?,
            method: required(4, "method")?,
            request_id: required(5, "request_id")?,
            subjects: stored_subjects(required(6, "subjects")?),
            purpose,
            case_reference: required(8, "case_reference")?,
            outcome: required(9, "outcome")?,
            result_count: number(10, "result_count")?,
        },
        previous_hash: required(11, "previous_hash")?,
        hash: required(12, "hash")?,
    })
}

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
            subjects: stored_subjects(subjects),
            purpose: stored_purpose(purpose)?,
            case_reference,
            outcome,
            result_count,
        },
        previous_hash,
        hash,
    })
}

/// Rows of one class of insert statement: the smallest power of two, at least 4, that
/// holds `n`. A group's statements have one of a few shapes, so they stay prepared.
fn size_class(n: usize) -> usize {
    n.next_power_of_two().max(4)
}

/// `INSERT INTO {table} ({columns})` of `n` rows as anonymous parameters, padded to its
/// size class with rows of NULLs (see [`pad`]), which the statement skips.
fn padded_insert(sql: &mut String, table: &str, columns: &[&str], n: usize) {
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    sql.push_str(&format!(
        "INSERT INTO {table} ({}) SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL;\n",
        columns.join(", "),
        vec![row.as_str(); size_class(n)].join(", ")
    ));
}

/// Appends `value` to a statement's arguments.
fn put<'q, T>(args: &mut SqliteArguments<'q>, value: T)
where
    T: sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + 'q,
{
    sqlx::Arguments::add(args, value).expect("numbers and text always encode");
}

/// Binds NULL to the padding rows of a statement holding `n` rows of `width` columns.
fn pad(args: &mut SqliteArguments<'_>, n: usize, width: usize) {
    for _ in n * width..size_class(n) * width {
        put(args, None::<i64>);
    }
}

/// Most index rows one statement inserts (two parameters each; SQLite takes 32,766).
const SUBJECT_ROWS: usize = 8_192;

/// The statements that insert `rows` (chained from `events`) and one index row per
/// (subject, entry), with their arguments, for SQLite; the caller wraps them in a
/// transaction. (A trigger deriving the index rows from each entry's subject list cost
/// more than the rest of the append.)
pub(super) fn sqlite_inserts<'q>(
    sql: &mut String,
    args: &mut SqliteArguments<'q>,
    writer: &'q str,
    rows: &'q [ChainedRow<'q>],
    events: &'q [AuditEvent],
) {
    let subjects = index_rows(rows, events);
    padded_insert(sql, "audit_entries", ENTRY_COLUMNS, rows.len());
    for r in rows {
        put(args, r.seq);
        put(args, r.time);
        put(args, r.agency);
        put(args, r.method);
        put(args, r.request_id);
        put(args, r.subjects.as_str());
        put(args, r.purpose);
        put(args, r.case_reference);
        put(args, r.outcome);
        put(args, r.result_count);
        put(args, r.previous_hash.as_str());
        put(args, r.hash.as_str());
    }
    pad(args, rows.len(), ENTRY_COLUMNS.len());
    for chunk in subjects.chunks(SUBJECT_ROWS) {
        padded_insert(sql, "audit_subjects", &["subject", "seq"], chunk.len());
        for (subject, seq) in chunk {
            put(args, *subject);
            put(args, *seq);
        }
        pad(args, chunk.len(), 2);
    }
    if let Some(last) = rows.last() {
        sql.push_str(MARK_APPEND);
        put(args, writer);
        put(args, last.seq);
    }
}

/// Records where `writer`'s group ended ($1 writer, $2 its last sequence number), in
/// the group's transaction (see [`Store::audit_group_landed`]).
const MARK_APPEND: &str = "INSERT INTO audit_appends (writer, last_seq) VALUES (?, ?) \
     ON CONFLICT (writer) DO UPDATE SET last_seq = excluded.last_seq;\n";

/// SQLite's group commit, one round trip on the writer's own connection: the entries
/// and their subjects' index rows in one transaction.
async fn append_sqlite(
    pool: &sqlx::SqlitePool,
    writer: &str,
    rows: &[ChainedRow<'_>],
    events: &[AuditEvent],
) -> std::result::Result<(), sqlx::Error> {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut args = SqliteArguments::default();
    sqlite_inserts(&mut sql, &mut args, writer, rows, events);
    sql.push_str("COMMIT;");
    let mut conn = pool.acquire().await?;
    let result = sqlx::query_with(&sql, args).execute(&mut *conn).await;
    if result.is_err() {
        // Whatever failed (the head moved, the lock stayed busy) left the transaction
        // open, or never began it; roll back so the next group begins afresh.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    result.map(drop)
}

/// PostgreSQL's append: one statement, the same text whatever the group's size, every
/// column travelling as one binary array. It also inserts the subjects' index rows and
/// records where `writer`'s group ended (see [`Store::audit_group_landed`]). Arrays
/// rather than JSON, and the index rows from the writer rather than from a trigger
/// reading each entry's subject list (which stands aside for this writer's connection;
/// see migration 0014): together they cut PostgreSQL's CPU per entry by about a third.
pub(super) async fn append_postgres<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    writer: &str,
    rows: &[ChainedRow<'_>],
    events: &[AuditEvent],
) -> std::result::Result<(), sqlx::Error> {
    const SQL: &str = "WITH mark AS (INSERT INTO audit_appends (writer, last_seq) VALUES ($1, $2) \
         ON CONFLICT (writer) DO UPDATE SET last_seq = excluded.last_seq), \
         indexed AS (INSERT INTO audit_subjects (subject, seq) \
         SELECT * FROM unnest($3::text[], $4::int8[])) \
         INSERT INTO audit_entries (seq, time, agency, method, request_id, subjects, purpose, \
         case_reference, outcome, result_count, previous_hash, hash) \
         SELECT * FROM unnest($5::int8[], $6::int8[], $7::text[], $8::text[], $9::text[], \
         $10::text[], $11::text[], $12::text[], $13::text[], $14::int8[], $15::text[], $16::text[])";
    let Some(last) = rows.last() else {
        return Ok(());
    };
    let (subjects, subject_seqs): (Vec<&str>, Vec<i64>) =
        index_rows(rows, events).into_iter().unzip();
    fn column<'r, 'q: 'r>(
        rows: &'r [ChainedRow<'q>],
        f: fn(&'r ChainedRow<'q>) -> &'r str,
    ) -> Vec<&'r str> {
        rows.iter().map(f).collect()
    }
    sqlx::query(SQL)
        .bind(writer)
        .bind(last.seq)
        .bind(subjects)
        .bind(subject_seqs)
        .bind(rows.iter().map(|r| r.seq).collect::<Vec<i64>>())
        .bind(rows.iter().map(|r| r.time).collect::<Vec<i64>>())
        .bind(column(rows, |r| r.agency))
        .bind(column(rows, |r| r.method))
        .bind(column(rows, |r| r.request_id))
        .bind(column(rows, |r| &r.subjects))
        .bind(
            rows.iter()
                .map(|r| r.purpose)
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(column(rows, |r| r.case_reference))
        .bind(column(rows, |r| r.outcome))
        .bind(rows.iter().map(|r| r.result_count).collect::<Vec<i64>>())
        .bind(column(rows, |r| &r.previous_hash))
        .bind(column(rows, |r| &r.hash))
        .execute(executor)
        .await
        .map(drop)
}

/// One (subject, seq) index row per subject an entry names, however often it names
/// it; sorted, so they land in key order.
fn index_rows<'q>(rows: &[ChainedRow<'q>], events: &'q [AuditEvent]) -> Vec<(&'q str, i64)> {
    let mut subjects: Vec<(&str, i64)> = rows
        .iter()
        .zip(events)
        .flat_map(|(r, e)| e.subjects.iter().map(move |s| (s.as_str(), r.seq)))
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects
}

/// `events` chained after `head`: their rows and the new head.
pub(super) fn chain<'a>(
    head: &(i64, String),
    events: &'a [AuditEvent],
) -> (Vec<ChainedRow<'a>>, (i64, String)) {
    let (mut seq, mut previous) = head.clone();
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let hash = entry_hash(seq, event, &previous);
        rows.push(ChainedRow::of(
            seq,
            event,
            std::mem::replace(&mut previous, hash.clone()),
            hash,
        ));
    }
    (rows, (seq, previous))
}

/// Whether an entry's index rows (sorted) are exactly its subjects, each once.
fn index_matches(subjects: &[String], indexed: &[String]) -> std::result::Result<(), String> {
    let mut named: Vec<&str> = subjects.iter().map(String::as_str).collect();
    named.sort_unstable();
    named.dedup();
    if let Some(missing) = named
        .iter()
        .find(|s| indexed.binary_search_by(|i| i.as_str().cmp(s)).is_err())
    {
        return Err(format!("a search for {missing} would not find it"));
    }
    if let Some(extra) = indexed
        .iter()
        .find(|i| named.binary_search(&i.as_str()).is_err())
    {
        return Err(format!(
            "a search for {extra} finds it, but it does not name {extra}"
        ));
    }
    Ok(())
}

fn checkpoint_of(r: &sqlx::any::AnyRow) -> std::result::Result<Checkpoint, sqlx::Error> {
    Ok(Checkpoint {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        time: r.try_get("time")?,
        public_key: r.try_get("public_key")?,
        signature: r.try_get("signature")?,
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
    /// The newest signed checkpoint's entry. Entries after it are held by the hash
    /// chain alone: whoever can write the tables can rewrite them (and delete newer
    /// checkpoints) without breaking it.
    pub last_checkpoint: Option<i64>,
}

impl Store {
    /// The chain's last entry as (seq, hash); (0, [`GENESIS_HASH`]) while it is empty.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        const SQL: &str = "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1";
        let head: Option<(i64, String)> = match &self.audit {
            AuditPool::Sqlite(pool) => sqlx::query_as(SQL).fetch_optional(pool).await?,
            AuditPool::Postgres(pool) => sqlx::query_as(SQL).fetch_optional(pool).await?,
        };
        Ok(head.unwrap_or_else(|| (0, GENESIS_HASH.to_string())))
    }

    /// Chains `events` after `head` (the writer's last known head) and appends them,
    /// with their subjects' index rows, in one transaction on the writer's own
    /// connection. Returns the new head; `None` when `head` is no longer the last
    /// entry, because another process appended since: the entries' sequence numbers
    /// are taken, so nothing was written; read the head and retry.
    /// Sequence numbers are the primary key, so two writers can never both extend the
    /// same head: the chain cannot fork.
    pub async fn append_audit(
        &self,
        head: &(i64, String),
        events: &[AuditEvent],
    ) -> Result<Option<(i64, String)>> {
        let (rows, new_head) = chain(head, events);
        if rows.is_empty() {
            return Ok(Some(head.clone()));
        }
        let result = match &self.audit {
            AuditPool::Sqlite(pool) => append_sqlite(pool, &self.audit_writer, &rows, events).await,
            AuditPool::Postgres(pool) => {
                append_postgres(pool, &self.audit_writer, &rows, events).await
            }
        };
        match result {
            Ok(()) => Ok(Some(new_head)),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether this process's group of `len` entries chained after `head` is in the
    /// log, for an append whose outcome is unknown: its commit failed in a way that may
    /// still have landed (the connection dropped after COMMIT was sent, the WAL sync
    /// reported an error). It landed if this writer's mark, committed with its
    /// entries, says its last group ended at `head + len`; no other append of this
    /// writer can end there, sequence numbers being unique. (Comparing entries would
    /// not do: two replicas can log identical entries, say the same agency's
    /// same look-up in the same millisecond.)
    pub async fn audit_group_landed(&self, head: &(i64, String), len: usize) -> Result<bool> {
        const SQL: &str = "SELECT last_seq FROM audit_appends WHERE writer = $1";
        let last: Option<i64> = match &self.audit {
            AuditPool::Sqlite(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(&*self.audit_writer)
                    .fetch_optional(pool)
                    .await?
            }
            AuditPool::Postgres(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(&*self.audit_writer)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(last == Some(head.0 + len as i64))
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

    /// Entries after `after`, at most `limit`, for `audit verify`: each column read as
    /// text and parsed here, so that an entry altered into a value no release writes is
    /// reported as that entry (`Err((seq, why))`) rather than failing the whole read.
    async fn verify_page(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<std::result::Result<AuditEntry, (i64, String)>>> {
        let columns: Vec<String> = ENTRY_COLUMNS
            .iter()
            .map(|c| format!("CAST({c} AS TEXT) AS stored_{c}"))
            .collect();
        let sql = format!(
            "SELECT seq, {} FROM audit_entries WHERE seq > $1 ORDER BY seq LIMIT {limit}",
            columns.join(", ")
        );
        let rows = sqlx::query(&sql).bind(after).fetch_all(&self.read).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let seq: i64 = row.try_get(0)?;
                Ok(read_entry(row).map_err(|why| (seq, why)))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()?)
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

    /// The newest checkpoint signed with `public_key` (hex) at or before entry `upto`,
    /// as stored: the caller checks its signature. (Replicas share the key, so another
    /// may have signed past the head this one knows.)
    pub async fn latest_audit_checkpoint_by(
        &self,
        public_key: &str,
        upto: i64,
    ) -> Result<Option<Checkpoint>> {
        let row = sqlx::query(
            "SELECT seq, hash, time, public_key, signature FROM audit_checkpoints \
             WHERE public_key = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(public_key)
        .bind(upto)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| checkpoint_of(&r))
            .transpose()
            .map_err(Into::into)
    }

    /// Whether the entries after `from` up to `to` continue the chain from `from` and
    /// end at `to`'s hash: what the writer checks before it signs a head it did not
    /// chain itself (another replica's entries, or whatever was written into the table
    /// behind its back). Reads a thousand entries at a time.
    pub async fn audit_continues(
        &self,
        from: &(i64, String),
        to: &(i64, String),
    ) -> Result<Result<(), ChainBreak>> {
        if to.0 < from.0 {
            return Ok(Err(ChainBreak::Truncated {
                seq: from.0,
                head: to.0,
            }));
        }
        let mut check = ChainCheck::after(from.0, &from.1);
        while check.head() < to.0 {
            let page = self
                .verify_page(check.head(), (to.0 - check.head()).min(1_000) as usize)
                .await?;
            if page.is_empty() {
                return Ok(Err(ChainBreak::Truncated {
                    seq: to.0,
                    head: check.head(),
                }));
            }
            for entry in &page {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err((seq, why)) => return Ok(Err(check.unreadable(*seq, why.clone()))),
                };
                if let Err(e) = check.push(entry) {
                    return Ok(Err(e));
                }
            }
        }
        if check.head_hash() != to.1 {
            return Ok(Err(ChainBreak::Altered { seq: to.0 }));
        }
        Ok(Ok(()))
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
        .map(checkpoint_of)
        .collect::<Result<_, sqlx::Error>>()?;
        let wanted: std::collections::BTreeSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
        let mut hashes = std::collections::HashMap::new();
        let mut check = ChainCheck::default();
        // The subject index, walked beside the chain in one sorted pass: the hash
        // chain does not cover it, yet "who looked at X" searches it.
        // Everything up to the head as it is now, and nothing after it: a running
        // server appends meanwhile, and the pages and the index are read at different
        // moments. Every entry at or below a committed sequence number has committed
        // (a group is chained after a head that was committed).
        let bound: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_entries")
            .fetch_one(&self.read)
            .await?;
        let bound = bound.unwrap_or(0);
        let mut index = sqlx::query_as::<_, (i64, String)>(
            "SELECT seq, subject FROM audit_subjects WHERE seq <= $1 ORDER BY seq, subject",
        )
        .bind(bound)
        .fetch(&self.read)
        .peekable();
        let mut after = 0;
        while after < bound {
            let page = self.verify_page(after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = match last {
                Ok(entry) => entry.seq,
                Err((seq, _)) => *seq,
            };
            for entry in page.iter() {
                let entry = match entry {
                    Ok(entry) if entry.seq > bound => break,
                    Err((seq, _)) if *seq > bound => break,
                    Ok(entry) => entry,
                    Err((seq, why)) => return Ok(Err(check.unreadable(*seq, why.clone()))),
                };
                if let Err(e) = check.push(entry) {
                    return Ok(Err(e));
                }
                if wanted.contains(&entry.seq) {
                    hashes.insert(entry.seq, entry.hash.clone());
                }
                let mut indexed = Vec::new();
                loop {
                    match index.peek().await {
                        None => break,
                        Some(Ok((seq, _))) if *seq > entry.seq => break,
                        _ => {}
                    }
                    let (seq, subject) = index.next().await.expect("peeked")?;
                    if seq < entry.seq {
                        return Ok(Err(ChainBreak::SubjectIndex {
                            seq,
                            why: format!("it names {subject}, but there is no such entry"),
                        }));
                    }
                    indexed.push(subject);
                }
                if let Err(why) = index_matches(&entry.event.subjects, &indexed) {
                    return Ok(Err(ChainBreak::SubjectIndex {
                        seq: entry.seq,
                        why,
                    }));
                }
            }
        }
        if let Some(row) = index.next().await {
            let (seq, subject) = row?;
            return Ok(Err(ChainBreak::SubjectIndex {
                seq,
                why: format!("it names {subject}, but the chain ends before it"),
            }));
        }
        for cp in &checkpoints {
            if let Err(e) = check.checkpoint(cp, hashes.get(&cp.seq).map(String::as_str), trusted) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(VerifiedChain {
            entries: check.head(),
            checkpoints: checkpoints.len(),
            last_checkpoint: checkpoints.iter().map(|c| c.seq).max(),
        }))
    }
}
