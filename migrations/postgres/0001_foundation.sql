-- Foundation schema: agencies, the entity registry, records with their revision history,
-- and the request log that makes retried writes idempotent. Same tables as the
-- SQLite migration of the same version. Persons appear only as person_key + name +
-- masked ID; no column ever holds a full ID number.

CREATE TABLE agencies (
    id            TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);

CREATE TABLE enterprises (
    uscc                        TEXT PRIMARY KEY,
    display_name                TEXT NOT NULL,
    former_names                TEXT NOT NULL,
    kind                        TEXT NOT NULL,
    status                      TEXT NOT NULL,
    established_date            TEXT,
    region_code                 TEXT NOT NULL,
    industry_code               TEXT NOT NULL,
    in_bankruptcy_restructuring BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);
CREATE INDEX enterprises_by_region ON enterprises (region_code, uscc);
CREATE INDEX enterprises_by_industry ON enterprises (industry_code, uscc);

CREATE TABLE enterprise_roles (
    uscc         TEXT NOT NULL REFERENCES enterprises (uscc),
    role         TEXT NOT NULL,
    person_key   TEXT NOT NULL,
    person_name  TEXT NOT NULL,
    masked_id    TEXT NOT NULL,
    start_date   TEXT,
    end_date     TEXT
);
CREATE INDEX enterprise_roles_by_uscc ON enterprise_roles (uscc);
CREATE INDEX enterprise_roles_by_person ON enterprise_roles (person_key);

CREATE TABLE records (
    id                  TEXT PRIMARY KEY,
    agency_id           TEXT NOT NULL REFERENCES agencies (id),
    source_record_id    TEXT NOT NULL,
    revision            BIGINT NOT NULL,
    content_digest      TEXT NOT NULL,
    subject_type        TEXT NOT NULL,
    subject_key         TEXT NOT NULL,
    person_name         TEXT,
    masked_id           TEXT,
    kind                TEXT NOT NULL,
    tier                TEXT NOT NULL,
    domain              TEXT NOT NULL,
    decision_date       TEXT NOT NULL,
    document_number     TEXT NOT NULL,
    deciding_authority  TEXT NOT NULL,
    summary             TEXT NOT NULL,
    publicity_end_date  TEXT NOT NULL,
    attributes          TEXT NOT NULL,
    status              TEXT NOT NULL,
    withdrawal_reason   TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (agency_id, source_record_id)
);
CREATE INDEX records_by_subject ON records (subject_key, id);
CREATE INDEX records_by_kind ON records (kind, id);

CREATE TABLE record_revisions (
    record_id    TEXT NOT NULL REFERENCES records (id),
    revision     BIGINT NOT NULL,
    change       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    snapshot     TEXT NOT NULL,
    PRIMARY KEY (record_id, revision, change)
);

CREATE TABLE request_log (
    agency_id     TEXT NOT NULL,
    method        TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (agency_id, method, request_id)
);
