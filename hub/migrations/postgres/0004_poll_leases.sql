-- One node polls a line system at a time: the node holding an unexpired lease on the system.
CREATE TABLE poll_leases (
    system_id TEXT PRIMARY KEY,
    node_id   TEXT NOT NULL,
    until     BIGINT NOT NULL
);
