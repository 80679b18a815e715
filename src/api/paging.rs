//! Pagination (AIP-158): page sizes and opaque page tokens bound to the query they
//! continue, so a token cannot be replayed against different filters.

use base64::Engine;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Error;

/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page returned; larger requests are capped.
pub const MAX_PAGE_SIZE: usize = 1_000;

/// The page size a request asks for: 0 means the default, above the maximum is capped,
/// negative is refused.
pub fn page_size(requested: i32) -> Result<usize, Error> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

#[derive(Serialize, Deserialize)]
struct Token<C> {
    /// Digest of the query's filters.
    q: String,
    /// Where the next page starts.
    c: C,
}

fn query_digest(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..8])
}

/// Encodes the cursor after the last item of a page, for the query described by `query`.
pub fn encode_token<C: Serialize>(query: &str, cursor: &C) -> String {
    let json = serde_json::to_vec(&Token {
        q: query_digest(query),
        c: cursor,
    })
    .expect("cursor serializes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// Most bytes of items one page carries, whatever `page_size` asked for: under the 4 MiB
/// a gRPC client accepts by default. A page cut short has a next page token like any.
pub const PAGE_BYTES: usize = 3 * 1024 * 1024;

/// `size`, or fewer so that the first items of `items` add up to at most [`PAGE_BYTES`]
/// as `bytes` measures them (at least one item, whatever its size).
pub fn size_within_bytes<T>(items: &[T], size: usize, bytes: impl Fn(&T) -> usize) -> usize {
    let mut used = 0;
    for (i, item) in items.iter().take(size).enumerate() {
        used += bytes(item);
        if used > PAGE_BYTES && i > 0 {
            return i;
        }
    }
    size
}

/// Cuts `items`, fetched with one more than `size` to learn whether more follow, back to
/// `size`, and returns the token that continues after the last one kept (empty when no
/// more follow).
pub fn next_page<T, C: Serialize>(
    items: &mut Vec<T>,
    size: usize,
    query: &str,
    cursor: impl Fn(&T) -> C,
) -> String {
    if items.len() <= size {
        return String::new();
    }
    items.truncate(size);
    items
        .last()
        .map(|last| encode_token(query, &cursor(last)))
        .unwrap_or_default()
}

/// Decodes a page token; empty means the first page.
pub fn decode_token<C: DeserializeOwned>(query: &str, token: &str) -> Result<Option<C>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        Error::invalid(
            "page_token",
            "is not a token this service issued for this query; start again without one",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    // Cursors hold ids, dates and names the service stored, none with a control
    // character; a forged one with a NUL would reach PostgreSQL, which refuses it.
    if has_control_character(&json) {
        return Err(invalid());
    }
    let token: Token<C> = serde_json::from_value(json).map_err(|_| invalid())?;
    if token.q != query_digest(query) {
        return Err(Error::invalid(
            "page_token",
            "was issued for a query with different filters",
        ));
    }
    Ok(Some(token.c))
}

fn has_control_character(json: &serde_json::Value) -> bool {
    use serde_json::Value;
    match json {
        Value::String(s) => s.chars().any(char::is_control),
        Value::Array(items) => items.iter().any(has_control_character),
        Value::Object(fields) => fields
            .iter()
            .any(|(k, v)| k.chars().any(char::is_control) || has_control_character(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bind_to_their_query() {
        let t = encode_token("region=371091", &("2026-01-01".to_string(), 7));
        let c: Option<(String, i32)> = decode_token("region=371091", &t).unwrap();
        assert_eq!(c, Some(("2026-01-01".to_string(), 7)));
        assert!(decode_token::<(String, i32)>("region=000001", &t).is_err());
        assert!(decode_token::<(String, i32)>("x", "not base64!").is_err());
        let forged = encode_token("region=371091", &("a\0b".to_string(), 7));
        assert!(decode_token::<(String, i32)>("region=371091", &forged).is_err());
    }

    #[test]
    fn page_sizes_are_defaulted_and_capped() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(5000).unwrap(), 1000);
        assert!(page_size(-1).is_err());
    }
}
