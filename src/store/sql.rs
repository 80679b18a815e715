//! Small helpers for statements the two backends share: bound values, bulk inserts and
//! key lists carried as one JSON value, and placeholders in each backend's form.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::Backend;

/// The marker of the `n`th parameter on `backend`. SQLite looks every named or numbered
/// parameter (`$n`, `?n`) up in a list when binding, which makes a 20,000-parameter
/// insert quadratic (half a second per 1,000 records); anonymous `?` parameters bind by
/// position at no cost. PostgreSQL only knows `$n`. A statement must not mix the forms.
fn mark(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_string(),
        Backend::Postgres => format!("${n}"),
    }
}

/// A value to bind, in one of the few types the `Any` driver carries.
#[derive(Debug, Clone)]
pub enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Blob(Vec<u8>),
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::OptText(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Self {
        Val::Blob(v)
    }
}

/// Binds `vals` in order.
pub fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    vals: Vec<Val>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for v in vals {
        q = match v {
            Val::Text(s) => q.bind(s),
            Val::OptText(s) => q.bind(s),
            Val::Int(i) => q.bind(i),
            Val::OptInt(i) => q.bind(i),
            Val::Blob(b) => q.bind(b),
        };
    }
    q
}

/// How a column travels inside a JSON row: as a string, a number, or hex-encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carried {
    Text,
    Int,
    Bytes,
}

impl Val {
    fn carried(&self) -> Carried {
        match self {
            Val::Text(_) | Val::OptText(_) => Carried::Text,
            Val::Int(_) | Val::OptInt(_) => Carried::Int,
            Val::Blob(_) => Carried::Bytes,
        }
    }

    /// Upper bound of the bytes [`Val::write_json`] writes, escapes aside.
    fn json_len(&self) -> usize {
        match self {
            Val::Text(s) | Val::OptText(Some(s)) => s.len() + 2,
            Val::Int(_) | Val::OptInt(Some(_)) => 20,
            Val::OptText(None) | Val::OptInt(None) => 4,
            Val::Blob(b) => b.len() * 2 + 2,
        }
    }

    /// Appends this value as JSON.
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Val::Text(s) | Val::OptText(Some(s)) => {
                // Writing into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, s);
            }
            Val::Int(i) | Val::OptInt(Some(i)) => {
                use std::io::Write;
                let _ = write!(out, "{i}");
            }
            Val::OptText(None) | Val::OptInt(None) => out.extend_from_slice(b"null"),
            Val::Blob(b) => {
                out.push(b'"');
                out.extend_from_slice(hex::encode(b).as_bytes());
                out.push(b'"');
            }
        }
    }
}

/// `rows` as one JSON array of row arrays, written straight into a buffer sized for it:
/// a value tree first and then its text cost a tenth of a 1,000-record batch, most of it
/// allocating and growing memory.
fn json_rows(rows: Vec<Vec<Val>>) -> String {
    let size: usize = rows
        .iter()
        .map(|r| r.iter().map(|v| v.json_len() + 1).sum::<usize>() + 2)
        .sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'[');
    for (r, row) in rows.iter().enumerate() {
        if r > 0 {
            out.push(b',');
        }
        out.push(b'[');
        for (c, v) in row.iter().enumerate() {
            if c > 0 {
                out.push(b',');
            }
            v.write_json(&mut out);
        }
        out.push(b']');
    }
    out.push(b']');
    // Only JSON text was written, and serde_json writes strings as UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Most parameters one PostgreSQL statement binds (its protocol allows 65,535).
const MAX_PARAMS: usize = 30_000;

/// Builds the statements that insert `rows` into `table`, each with its values; none
/// when `rows` is empty. Rows keep their order, and an `ON CONFLICT` clause may be
/// appended to each statement.
///
/// On SQLite it is one `INSERT … SELECT` over a single JSON parameter (an array of row
/// arrays): sqlx spends about a microsecond and a mutex round on every value it binds to
/// SQLite, while SQLite unpacks JSON at memory speed (the statement ends in `WHERE true`,
/// which SQLite needs to tell an appended `ON CONFLICT` from a join constraint). On
/// PostgreSQL it is multi-row `VALUES` in chunks under the parameter limit: binding is
/// cheap there, and `->>` over `jsonb` measured slower than plain parameters.
pub fn multi_insert(
    backend: Backend,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
) -> Vec<(String, Vec<Val>)> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    debug_assert_eq!(first.len(), columns.len());
    match backend {
        Backend::Sqlite => {
            let exprs: Vec<String> = first
                .iter()
                .enumerate()
                .map(|(i, v)| match v.carried() {
                    Carried::Bytes => format!("unhex(r ->> {i})"),
                    Carried::Text | Carried::Int => format!("r ->> {i}"),
                })
                .collect();
            // Materialized: every mention of json_each's `value` renders the row as JSON
            // text again; the CTE renders it once and `->>` reuses one parse of it.
            let sql = format!(
                "WITH rows (r) AS MATERIALIZED (SELECT value FROM json_each(?)) \
                 INSERT INTO {table} ({}) SELECT {} FROM rows WHERE true",
                columns.join(", "),
                exprs.join(", ")
            );
            vec![(sql, vec![Val::Text(json_rows(rows))])]
        }
        Backend::Postgres => {
            let per_chunk = (MAX_PARAMS / columns.len()).max(1);
            let mut out = Vec::new();
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let chunk: Vec<Vec<Val>> = rows.by_ref().take(per_chunk).collect();
                let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
                let mut vals = Vec::with_capacity(chunk.len() * columns.len());
                for (r, row) in chunk.into_iter().enumerate() {
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for c in 0..columns.len() {
                        if c > 0 {
                            sql.push_str(", ");
                        }
                        sql.push_str(&mark(backend, vals.len() + c + 1));
                    }
                    sql.push(')');
                    vals.extend(row);
                }
                out.push((sql, vals));
            }
            out
        }
    }
}

/// `column` is one of the strings of a JSON array bound as parameter `n`: key look-ups
/// of any number of keys with a single bound value (see [`json_keys`]). On PostgreSQL
/// the keys become an array (`= ANY`), which it answers with index probes even before
/// a table has statistics; as an `IN (subquery)` it would plan a semi-join that scans
/// the whole table.
pub fn in_json(backend: Backend, column: &str, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(?))"),
        Backend::Postgres => {
            format!("{column} = ANY (ARRAY(SELECT json_array_elements_text(${n}::json)))")
        }
    }
}

/// Row locks for a read that decides a write: `FOR UPDATE` on PostgreSQL; nothing on
/// SQLite, whose write transactions already run one at a time.
pub fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE",
    }
}

/// The value to bind for an [`in_json`] list.
pub fn json_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Val {
    Val::Text(serde_json::Value::from_iter(keys).to_string())
}

/// `SELECT <one JSON array of rows> FROM …`: wraps `exprs` and the rest of a query so
/// that the result comes back as one text value, an array of arrays (`[]` when no row
/// matches), to decode with serde into tuples. For reads of thousands of rows, where
/// per-value driver overhead dominates.
pub fn select_json(backend: Backend, exprs: &[&str], from: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT json_group_array(json_array({})) FROM {from}",
            exprs.join(", ")
        ),
        Backend::Postgres => format!(
            "SELECT coalesce(json_agg(json_build_array({})), '[]')::text FROM {from}",
            exprs.join(", ")
        ),
    }
}

/// `$first, $first+1, …` (or `?, ?, …` on SQLite) for an `IN (…)` list of `n` values.
pub fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| mark(backend, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a [`select_json`] query and decodes its one value into rows.
pub async fn fetch_json<'c, T: serde::de::DeserializeOwned>(
    on: impl sqlx::Executor<'c, Database = Any>,
    sql: &str,
    vals: Vec<Val>,
) -> super::Result<Vec<T>> {
    let text: String = bind_all(sqlx::query(sql), vals)
        .fetch_one(on)
        .await?
        .try_get(0)?;
    serde_json::from_str(&text).map_err(|e| super::Error::Corrupt(format!("aggregated rows: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_inserts_every_row_from_one_json_value() {
        let stmts = multi_insert(
            Backend::Sqlite,
            "t",
            &["a", "b", "c"],
            vec![
                vec![1i64.into(), "x".into(), Val::OptText(None)],
                vec![2i64.into(), "y".into(), Some("z".to_string()).into()],
            ],
        );
        assert_eq!(stmts.len(), 1);
        assert_eq!(
            stmts[0].0,
            "WITH rows (r) AS MATERIALIZED (SELECT value FROM json_each(?)) \
             INSERT INTO t (a, b, c) SELECT r ->> 0, r ->> 1, r ->> 2 FROM rows WHERE true"
        );
        match &stmts[0].1[..] {
            [Val::Text(json)] => assert_eq!(json, r#"[[1,"x",null],[2,"y","z"]]"#),
            other => panic!("expected one JSON value, got {other:?}"),
        }
    }

    #[test]
    fn sqlite_json_rows_escape_text_and_carry_bytes_as_hex() {
        let text = "引号\"反斜杠\\换行\n\u{1}";
        let stmts = multi_insert(
            Backend::Sqlite,
            "t",
            &["a", "b", "c"],
            vec![vec![
                text.into(),
                Val::Blob(vec![0, 0xab, 0xff]),
                Val::OptInt(Some(-7)),
            ]],
        );
        let [Val::Text(json)] = &stmts[0].1[..] else {
            panic!("expected one JSON value, got {:?}", stmts[0].1);
        };
        let parsed: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        assert_eq!(parsed, serde_json::json!([[text, "00abff", -7]]));
        assert!(stmts[0].0.contains("unhex(r ->> 1)"), "{}", stmts[0].0);
    }

    #[test]
    fn postgres_numbers_placeholders_across_rows_and_chunks() {
        let stmts = multi_insert(
            Backend::Postgres,
            "t",
            &["a", "b"],
            vec![vec![1i64.into(), "x".into()], vec![2i64.into(), "y".into()]],
        );
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].0, "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        let rows = (0..20_000)
            .map(|i| vec![Val::Int(i), Val::Int(i)])
            .collect();
        let stmts = multi_insert(Backend::Postgres, "t", &["a", "b"], rows);
        assert_eq!(stmts.len(), 2);
        assert!(stmts.iter().all(|(_, v)| v.len() <= MAX_PARAMS));
    }

    #[test]
    fn an_empty_insert_is_no_statement() {
        assert!(multi_insert(Backend::Sqlite, "t", &["a"], vec![]).is_empty());
    }
}
