-- Deliveries per line system and state, kept by the database itself, so that reading them
-- (`GET /v1/systems`, the intake's backlog) costs the number of systems, not of deliveries.
--
-- Every statement that inserts, updates or deletes deliveries appends its net change per
-- (system, state) here (statement-level triggers over transition tables: one small insert per
-- statement, whatever the number of rows); a count is the sum of its rows. Appending never
-- waits for another writer, where one row per count would make every writer of a system wait
-- for the others' commits. The store folds the rows into one per count now and then.
CREATE TABLE delivery_counts (
    system_id TEXT NOT NULL,
    state     TEXT NOT NULL,
    n         BIGINT NOT NULL
);

CREATE FUNCTION yimen_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_counts (system_id, state, n)
        SELECT system_id, state, COUNT(*) FROM inserted GROUP BY system_id, state;
    RETURN NULL;
END
$$;

CREATE FUNCTION yimen_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_counts (system_id, state, n)
        SELECT system_id, state, SUM(n) FROM (
            SELECT system_id, state, -1 AS n FROM removed
            UNION ALL
            SELECT system_id, state, 1 AS n FROM inserted
        ) AS change
        GROUP BY system_id, state HAVING SUM(n) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION yimen_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_counts (system_id, state, n)
        SELECT system_id, state, -COUNT(*) FROM removed GROUP BY system_id, state;
    RETURN NULL;
END
$$;

-- Creating the triggers locks out writers of deliveries until this migration commits, so the
-- first counts below miss nothing and count nothing twice.
CREATE TRIGGER deliveries_counted_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION yimen_count_inserted();
CREATE TRIGGER deliveries_counted_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS removed NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION yimen_count_updated();
CREATE TRIGGER deliveries_counted_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION yimen_count_deleted();

INSERT INTO delivery_counts (system_id, state, n)
    SELECT system_id, state, COUNT(*) FROM deliveries GROUP BY system_id, state;

-- The counts were this index's only reader; every insert and every change of state paid an
-- entry in it.
DROP INDEX deliveries_system_state;

-- A delivery's idempotency key is its id, which the primary key already keeps unique: the
-- second unique index cost an entry on every insert and every change of state. The check keeps
-- the key unique.
ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_idempotency_key_key,
    ADD CONSTRAINT deliveries_idempotency_key_is_id CHECK (idempotency_key = id);
