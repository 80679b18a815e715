-- A write's audit entry, saved in the write's own transaction and removed by the group
-- commit that chains the call's entry. If the process stops between the two, the audit
-- writer chains what is left here and marks it chained, so that a call arriving late
-- skips it: no committed write goes unaccounted for, none is chained twice. Same columns
-- as an audit entry, less its place in the chain; the outcome of a committed write is OK.
CREATE TABLE audit_pending (
    call_id         TEXT PRIMARY KEY,
    time            BIGINT NOT NULL,
    agency          TEXT NOT NULL,
    method          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    subjects        TEXT NOT NULL,
    purpose         TEXT,
    case_reference  TEXT NOT NULL,
    result_count    BIGINT NOT NULL,
    saved_at        BIGINT NOT NULL,
    chained         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_pending_by_age ON audit_pending (saved_at);
