-- Spot checks (双随机、一公开): the register of inspectors, plans with their committed seed
-- and (once drawn) the published inputs and targets, merges into joint visits, and
-- published results. Lists are JSON.

CREATE TABLE inspectors (
    agency_id     TEXT NOT NULL REFERENCES agencies (id),
    code          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    domains       TEXT NOT NULL,
    conflicts     TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (agency_id, code)
);

CREATE TABLE spot_check_plans (
    id                    TEXT PRIMARY KEY,
    agency_id             TEXT NOT NULL REFERENCES agencies (id),
    domain                TEXT NOT NULL,
    cycle                 TEXT NOT NULL,
    region_code           TEXT NOT NULL,
    industry_code         TEXT NOT NULL,
    ratios                TEXT NOT NULL,
    inspectors_per_visit  BIGINT NOT NULL,
    check_items           TEXT NOT NULL,
    seed_commitment       TEXT NOT NULL,
    -- Kept secret (never returned) until the draw reveals it.
    seed                  TEXT NOT NULL,
    state                 TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    drawn_at              BIGINT,
    -- The published inputs of the draw: eligible USCCs per grade.
    inputs                TEXT,
    -- [[uscc, grade, non_on_site, [inspector codes]], ...] in draw order.
    targets               TEXT
);
CREATE INDEX spot_check_plans_by_cycle ON spot_check_plans (cycle, state);

CREATE TABLE spot_check_results (
    plan_id          TEXT NOT NULL REFERENCES spot_check_plans (id),
    uscc             TEXT NOT NULL,
    agency_id        TEXT NOT NULL REFERENCES agencies (id),
    outcome          TEXT NOT NULL,
    items            TEXT NOT NULL,
    inspection_date  TEXT NOT NULL,
    published_at     BIGINT NOT NULL,
    publish_due      TEXT NOT NULL,
    record_id        TEXT NOT NULL REFERENCES records (id),
    PRIMARY KEY (plan_id, uscc)
);
CREATE INDEX spot_check_results_by_enterprise ON spot_check_results (uscc, published_at);
CREATE INDEX spot_check_results_by_time ON spot_check_results (published_at, plan_id, uscc);

-- Market-regulation agencies holding their kind's defaults get the new default scope.
UPDATE agencies SET scopes = scopes || ' spotchecks:manage'
WHERE kind = 'MARKET_REGULATION'
  AND scopes = 'registry:read registry:write records:read records:write grades:read certificates:issue certificates:revoke repair:manage';
