-- Cases, their materials, one delivery per target with its rendered payload, attempt history.
-- Times are integer microseconds since the Unix epoch (UTC).

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
    UNIQUE (client_id, case_number)
);
CREATE INDEX cases_case_number ON cases (case_number);
CREATE INDEX cases_id_number ON cases (applicant_id_number) WHERE applicant_id_number IS NOT NULL;
CREATE INDEX cases_credit_code ON cases (credit_code) WHERE credit_code IS NOT NULL;

CREATE TABLE materials (
    case_id    TEXT NOT NULL REFERENCES cases (id),
    position   INTEGER NOT NULL,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    path       TEXT NOT NULL,
    PRIMARY KEY (case_id, position)
);

-- due_at is the one claim key: next_attempt_at while queued/retry_wait, the lease expiry while
-- sending, NULL in every state nothing claims.
CREATE TABLE deliveries (
    id                 TEXT PRIMARY KEY,
    case_id            TEXT NOT NULL REFERENCES cases (id),
    system_id          TEXT NOT NULL CHECK (system_id <> ''),
    idempotency_key    TEXT NOT NULL UNIQUE,
    state              TEXT NOT NULL CHECK (state IN
                           ('queued', 'sending', 'delivered', 'retry_wait', 'dead', 'awaiting_clerk')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER,
    lease_owner        TEXT,
    lease_expires_at   INTEGER,
    due_at             INTEGER,
    receipt_number     TEXT,
    receipt_raw_status TEXT,
    receipt_excerpt    TEXT,
    last_outcome       TEXT,
    last_error         TEXT,
    last_excerpt       TEXT,
    mapping_version    TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (case_id, system_id),
    CHECK (state <> 'delivered' OR receipt_excerpt IS NOT NULL),
    CHECK (state <> 'sending' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((state IN ('queued', 'retry_wait', 'sending')) = (due_at IS NOT NULL))
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_system_due ON deliveries (system_id, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_system_state ON deliveries (system_id, state);
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';

CREATE TABLE payloads (
    delivery_id     TEXT PRIMARY KEY REFERENCES deliveries (id),
    mapping_version TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    extension       TEXT NOT NULL,
    body            BLOB NOT NULL,
    fields_json     TEXT NOT NULL
);

CREATE TABLE attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id),
    attempt     INTEGER NOT NULL,
    node_id     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    reason      TEXT,
    excerpt     TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
