-- Circuit breakers opened by any node, so that every node sharing this store stops sending to
-- a failing line system: the breaker stays open on every node until open_until (microseconds
-- since the Unix epoch); a node whose probe succeeds removes the row.
CREATE TABLE breakers (
    system_id  TEXT PRIMARY KEY,
    open_until BIGINT NOT NULL,
    opened_by  TEXT NOT NULL
);
