-- Vetting reports: every cross-check as it was answered, readable only by the agency that
-- ran it. Results hold candidates' names and masked ID numbers, never a full ID number.

CREATE TABLE vetting_reports (
    id              TEXT PRIMARY KEY,
    agency_id       TEXT NOT NULL REFERENCES agencies (id),
    request_id      TEXT,
    -- Keyed digest of the request, so a request_id reused for another request is refused.
    request_digest  TEXT,
    purpose         TEXT NOT NULL,
    case_reference  TEXT NOT NULL,
    policy_version  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    clear_count     INTEGER NOT NULL,
    review_count    INTEGER NOT NULL,
    adverse_count   INTEGER NOT NULL,
    invalid_count   INTEGER NOT NULL,
    results         TEXT NOT NULL
);
CREATE INDEX vetting_reports_by_agency ON vetting_reports (agency_id, id);
CREATE UNIQUE INDEX vetting_reports_by_request ON vetting_reports (agency_id, request_id);
