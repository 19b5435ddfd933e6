-- Status sync, time limits and platform notifications.
-- target_status: one row per (case, target line system) once a status was reported; rows are
-- replaced whole under a version check (compare-and-set), so concurrent reports never interleave.
-- notifications: the webhook outbox (at least once, ordered per case by id).

CREATE TABLE target_status (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    system_id   TEXT NOT NULL,
    state       TEXT NOT NULL,
    is_final    INTEGER NOT NULL,
    raw_code    TEXT,
    reported_at INTEGER,
    due_date    TEXT,
    provisional INTEGER NOT NULL DEFAULT 0,
    detail      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (case_id, system_id)
);
CREATE INDEX target_status_due ON target_status (due_date)
    WHERE is_final = 0 AND due_date IS NOT NULL;
CREATE INDEX target_status_provisional ON target_status (case_id)
    WHERE is_final = 0 AND provisional = 1;

ALTER TABLE status_events ADD COLUMN message TEXT;
CREATE INDEX status_events_unknown ON status_events (id) WHERE unified_state = 'unknown';

CREATE INDEX deliveries_sync ON deliveries (system_id, case_id) WHERE state = 'delivered';
CREATE INDEX deliveries_receipt ON deliveries (system_id, receipt_number)
    WHERE receipt_number IS NOT NULL;

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL UNIQUE,
    case_id         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT
);
CREATE INDEX notifications_pending ON notifications (case_id, id) WHERE delivered_at IS NULL;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE delivered_at IS NULL;
