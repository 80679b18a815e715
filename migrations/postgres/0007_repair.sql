-- Credit repair applications (信用修复申请): accepted, interviewed, decided. Records and
-- proof references are JSON arrays of ids and reference strings.

CREATE TABLE repair_applications (
    id                           TEXT PRIMARY KEY,
    uscc                         TEXT NOT NULL,
    agency_id                    TEXT NOT NULL REFERENCES agencies (id),
    records                      TEXT NOT NULL,
    commitment_letter_reference  TEXT NOT NULL,
    proof_references             TEXT NOT NULL,
    state                        TEXT NOT NULL,
    accepted_at                  BIGINT NOT NULL,
    accepted_date                TEXT NOT NULL,
    deadline_date                TEXT NOT NULL,
    interview_required           BIGINT NOT NULL,
    interview_date               TEXT,
    interview_officer            TEXT,
    interview_outcome            TEXT,
    decision_reason              TEXT,
    decided_at                   BIGINT,
    decided_by                   TEXT
);
CREATE INDEX repair_applications_by_enterprise ON repair_applications (uscc, id);
CREATE INDEX repair_applications_by_state ON repair_applications (state, id);

-- Market-regulation agencies created with their kind's defaults before repair existed
-- get the scope their kind now has by default; agencies given narrower scopes on
-- purpose keep them.
UPDATE agencies SET scopes = scopes || ' repair:manage'
WHERE kind = 'MARKET_REGULATION'
  AND scopes = 'registry:read registry:write records:read records:write grades:read certificates:issue certificates:revoke';
