-- What operators and later stages add: replays, status events, the jump-ticket ledger and the
-- change feed.

CREATE TABLE replays (
    id            TEXT PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES deliveries (id),
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    at            BIGINT NOT NULL,
    after_attempt BIGINT NOT NULL
);
CREATE INDEX replays_delivery ON replays (delivery_id);

CREATE TABLE status_events (
    id            BIGSERIAL PRIMARY KEY,
    case_id       TEXT NOT NULL REFERENCES cases (id),
    system_id     TEXT NOT NULL,
    raw_code      TEXT NOT NULL,
    unified_state TEXT NOT NULL,
    source        TEXT NOT NULL,
    excerpt       TEXT NOT NULL,
    at            BIGINT NOT NULL
);
CREATE INDEX status_events_case ON status_events (case_id, id);

CREATE TABLE jump_tickets (
    nonce      TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL
);
CREATE INDEX jump_tickets_expiry ON jump_tickets (expires_at);

CREATE TABLE changes (
    cursor    BIGSERIAL PRIMARY KEY,
    case_id   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    system_id TEXT,
    state     TEXT NOT NULL,
    at        BIGINT NOT NULL
);
