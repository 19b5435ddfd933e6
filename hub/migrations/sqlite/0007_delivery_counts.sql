-- Deliveries per line system and state, so that reading them (`GET /v1/systems`, the intake's
-- backlog) costs the number of systems, not of deliveries. SQLite has one writer: every write
-- that inserts deliveries or changes their state adds its net change per count to one row per
-- count, in its own transaction (`sqlite_direct::CountChanges`; the store's other writes through
-- the same statement). Row triggers would do it too, but cost more than the rows they count.
CREATE TABLE delivery_counts (
    system_id TEXT NOT NULL,
    state     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (system_id, state)
) WITHOUT ROWID;

INSERT INTO delivery_counts (system_id, state, n)
    SELECT system_id, state, COUNT(*) FROM deliveries GROUP BY system_id, state;

-- The counts were this index's only reader; every insert and every change of state paid an
-- entry in it.
DROP INDEX deliveries_system_state;
