//! Small helpers for statements the two backends share: bound values and multi-row
//! inserts with `$n` placeholders (both SQLite and PostgreSQL accept them).

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

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

/// Most parameters one statement binds; under SQLite's limit of 32,766.
const MAX_PARAMS: usize = 30_000;

/// Builds `INSERT INTO table (cols) VALUES (...), (...)` statements for `rows`, chunked
/// to stay under the parameter limit, and returns each statement with its values.
pub fn multi_insert(
    backend: Backend,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
) -> Vec<(String, Vec<Val>)> {
    let per_chunk = (MAX_PARAMS / columns.len()).max(1);
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(per_chunk).collect();
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut vals = Vec::with_capacity(chunk.len() * columns.len());
        for (r, row) in chunk.into_iter().enumerate() {
            debug_assert_eq!(row.len(), columns.len());
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

/// `$first, $first+1, …` (or `?, ?, …` on SQLite) for an `IN (…)` list of `n` values.
pub fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| mark(backend, i))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_insert_numbers_placeholders_across_rows() {
        let stmts = multi_insert(
            Backend::Postgres,
            "t",
            &["a", "b"],
            vec![vec![1i64.into(), "x".into()], vec![2i64.into(), "y".into()]],
        );
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].0, "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        assert_eq!(stmts[0].1.len(), 4);
    }

    #[test]
    fn multi_insert_chunks_under_the_parameter_limit() {
        let rows = (0..20_000)
            .map(|i| vec![Val::Int(i), Val::Int(i)])
            .collect();
        let stmts = multi_insert(Backend::Sqlite, "t", &["a", "b"], rows);
        assert_eq!(stmts.len(), 2);
        assert!(stmts.iter().all(|(_, v)| v.len() <= MAX_PARAMS));
    }
}
