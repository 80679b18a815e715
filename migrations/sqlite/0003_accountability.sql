-- Accountability: the audit log, one hash chain of every call on credit data, and
-- per-agency rate limits. Audit sequence numbers are dense (assigned by the writer
-- under the write lock), so a deleted entry leaves a gap that verification names.
-- Subjects are also indexed one per row, for "who looked at this enterprise / person".

CREATE TABLE audit_entries (
    seq             INTEGER PRIMARY KEY,
    time            INTEGER NOT NULL,
    agency          TEXT NOT NULL,
    method          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    subjects        TEXT NOT NULL,
    purpose         TEXT,
    case_reference  TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    result_count    INTEGER NOT NULL,
    previous_hash   TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_entries_by_agency ON audit_entries (agency, seq);
CREATE INDEX audit_entries_by_time ON audit_entries (time);

-- WITHOUT ROWID: the key is the whole row, so each subject is one B-tree insert, not two.
CREATE TABLE audit_subjects (
    subject  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (subject, seq)
) WITHOUT ROWID;

CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL,
    time        INTEGER NOT NULL,
    public_key  TEXT NOT NULL,
    signature   TEXT NOT NULL
);

-- Requests per second an agency may make; NULL means the server's default.
ALTER TABLE agencies ADD COLUMN rate_limit INTEGER;
