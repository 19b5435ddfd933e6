-- The nodes sharing this store, for splitting each line system's limits between them: a node
-- is live while its heartbeat (seen_at, microseconds since the Unix epoch) is younger than the
-- delivery lease.
CREATE TABLE nodes (
    node_id    TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
