-- Deliveries per line system and state, kept by the database itself, so that reading them
-- (`GET /v1/systems`, the intake's backlog) costs the number of systems, not of deliveries.
-- SQLite has one writer, so one row per count, changed by row triggers, waits for no one.
CREATE TABLE delivery_counts (
    system_id TEXT NOT NULL,
    state     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (system_id, state)
) WITHOUT ROWID;

CREATE TRIGGER deliveries_counted_insert AFTER INSERT ON deliveries
BEGIN
    INSERT INTO delivery_counts (system_id, state, n) VALUES (NEW.system_id, NEW.state, 1)
        ON CONFLICT (system_id, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER deliveries_counted_update AFTER UPDATE OF system_id, state ON deliveries
    WHEN OLD.system_id IS NOT NEW.system_id OR OLD.state IS NOT NEW.state
BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE system_id = OLD.system_id AND state = OLD.state;
    INSERT INTO delivery_counts (system_id, state, n) VALUES (NEW.system_id, NEW.state, 1)
        ON CONFLICT (system_id, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER deliveries_counted_delete AFTER DELETE ON deliveries
BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE system_id = OLD.system_id AND state = OLD.state;
END;

INSERT INTO delivery_counts (system_id, state, n)
    SELECT system_id, state, COUNT(*) FROM deliveries WHERE true GROUP BY system_id, state;

-- The counts were this index's only reader; every insert and every change of state paid an
-- entry in it.
DROP INDEX deliveries_system_state;
