-- A case is unique by (case_number, client_id) instead of (client_id, case_number): the same
-- rule, kept by one index that also finds a case by its number alone, so cases_case_number
-- goes. Every case paid an entry in both, and case numbers from many windows and platforms
-- arrive in no order either index keeps: each entry dirtied a page of its own in every group
-- commit. Under load the two were half the pages each commit wrote to the log.
--
-- SQLite cannot change a table's constraints in place, so the table is built anew. This runs
-- in the migrator's transaction, where foreign keys stay on: their checks wait for the commit.
-- Dropping the old table leaves the other tables' rows without their case for a moment;
-- putting every case back gives each its case again before the commit checks.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE cases_kept AS SELECT * FROM cases;
DROP TABLE cases;

CREATE TABLE cases (
    id                  TEXT PRIMARY KEY,
    client_id           TEXT NOT NULL,
    case_number         TEXT NOT NULL,
    content_hash        TEXT NOT NULL,
    case_json           TEXT NOT NULL,
    applicant_id_number TEXT,
    credit_code         TEXT,
    status              TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (case_number, client_id)
);
INSERT INTO cases (id, client_id, case_number, content_hash, case_json, applicant_id_number,
                   credit_code, status, created_at, updated_at)
SELECT id, client_id, case_number, content_hash, case_json, applicant_id_number,
       credit_code, status, created_at, updated_at
FROM cases_kept ORDER BY rowid;
DROP TABLE cases_kept;

CREATE INDEX cases_id_number ON cases (applicant_id_number) WHERE applicant_id_number IS NOT NULL;
CREATE INDEX cases_credit_code ON cases (credit_code) WHERE credit_code IS NOT NULL;
