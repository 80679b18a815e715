-- Credit grades: the current grade per (enterprise, model), and every change to it in
-- one ordered history that watchers tail by sequence number. Records remember whether
-- the end of their publicity window has been graded.

CREATE TABLE credit_grades (
    uscc           TEXT NOT NULL REFERENCES enterprises (uscc),
    model          TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    grade          TEXT NOT NULL,
    score          BIGINT NOT NULL,
    reasons        TEXT NOT NULL,
    computed_at    BIGINT NOT NULL,
    PRIMARY KEY (uscc, model)
);
CREATE INDEX credit_grades_by_model ON credit_grades (model, grade);

CREATE TABLE grade_changes (
    seq BIGSERIAL PRIMARY KEY,
    uscc            TEXT NOT NULL,
    model           TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    previous_grade  TEXT,
    previous_score  BIGINT,
    grade           TEXT NOT NULL,
    score           BIGINT NOT NULL,
    cause           TEXT NOT NULL,
    cause_record    TEXT,
    changed_at      BIGINT NOT NULL
);
CREATE INDEX grade_changes_by_enterprise ON grade_changes (uscc, model, seq);

ALTER TABLE records ADD COLUMN expiry_graded BIGINT NOT NULL DEFAULT 0;
CREATE INDEX records_due ON records (publicity_end_date) WHERE status = 'ACTIVE' AND expiry_graded = 0;
