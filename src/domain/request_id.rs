//! A caller's request id: the idempotency key of a write and, in every audit entry and
//! log line of the call, the thread an operator and the caller follow. It is kept for
//! good in the hash chain, so it must be short and must not carry a person's ID number.

use super::id_scan::contains_id_number;

/// Longest request id accepted, in characters.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Why `id` cannot be a request id; `None` when it can. Empty means "none given".
pub fn request_id_problem(id: &str) -> Option<String> {
    if id.chars().count() > MAX_REQUEST_ID_CHARS || id.chars().any(char::is_control) {
        return Some(format!(
            "must be at most {MAX_REQUEST_ID_CHARS} printable characters"
        ));
    }
    // Read strictly (groups joined by spaces only): partners number requests like
    // documents (`371002-20240512-0004`), and one in eleven such passes an ID number's
    // checks; refusing it would refuse the retry of a write that was accepted.
    if contains_id_number(id) {
        return Some(
            "must not contain a national ID number: it is kept in the audit log for good"
                .to_string(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_printable_and_free_of_id_numbers() {
        assert_eq!(request_id_problem(""), None);
        assert_eq!(request_id_problem("batch-2026-12-06-0001"), None);
        assert!(request_id_problem(&"x".repeat(129)).is_some());
        assert!(request_id_problem("a\nb").is_some());
        let with_id = request_id_problem("retry-11010519491231002X").unwrap();
        assert!(with_id.contains("national ID number"), "{with_id}");
        // Written in groups joined by spaces, it is still one.
        assert!(request_id_problem("retry-110105 19491231 002X").is_some());
        // Numbered like a document, it is a request id, even where the digits would
        // pass an ID number's checks.
        assert_eq!(request_id_problem("371002-20240512-0004"), None);
        // A 19-digit machine id (a snowflake) is some other number.
        assert_eq!(request_id_problem("1733472000123456789"), None);
    }
}
