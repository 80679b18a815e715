-- Credit certificates (信用证明) and the keys that sign them. A certificate's document is
-- stored exactly as signed and never rewritten; only its status changes (revoked,
-- suspended, superseded), with the reason.

CREATE TABLE issuer_keys (
    key_id                TEXT PRIMARY KEY,
    public_key_multibase  TEXT NOT NULL UNIQUE,
    valid_from            BIGINT NOT NULL,
    -- Set when a newer key took over signing; the key keeps verifying what it signed.
    valid_until           BIGINT
);

CREATE TABLE certificates (
    serial             TEXT PRIMARY KEY,
    uscc               TEXT NOT NULL,
    enterprise_name    TEXT NOT NULL,
    kind               TEXT NOT NULL,
    period_start_date  TEXT,
    period_end_date    TEXT,
    status             TEXT NOT NULL,
    status_reason      TEXT NOT NULL,
    issued_at          BIGINT NOT NULL,
    valid_from         BIGINT NOT NULL,
    valid_until        BIGINT NOT NULL,
    key_id             TEXT NOT NULL REFERENCES issuer_keys (key_id),
    document           TEXT NOT NULL,
    revocation_reason  TEXT,
    revoked_at         BIGINT,
    agency_id          TEXT NOT NULL REFERENCES agencies (id),
    request_id         TEXT NOT NULL,
    -- Keyed digest of the request, so a request_id reused for another request is refused.
    request_digest     TEXT NOT NULL,
    -- The first concurrent request with a request_id inserts; the others find its row.
    UNIQUE (agency_id, request_id)
);
CREATE INDEX certificates_by_enterprise ON certificates (uscc, kind, status);
CREATE INDEX certificates_by_issue ON certificates (issued_at, serial);
CREATE INDEX certificates_by_status ON certificates (status, issued_at);
