-- An attempt's row is written once, when the attempt ends (or, if its node died, when its
-- delivery is claimed again), instead of at its start and again at its end: one row write per
-- attempt instead of two, and no dead row version. While an attempt runs, the delivery keeps
-- when it began (attempt_started_at: when its latest attempt began); the attempt history
-- shows a running attempt from there.
ALTER TABLE deliveries ADD COLUMN attempt_started_at INTEGER;

-- Attempts running now were written at their start: their start moves to the delivery, and
-- their row goes, to be written again when they end.
UPDATE deliveries SET attempt_started_at = (
    SELECT a.started_at FROM attempts a
    WHERE a.delivery_id = deliveries.id AND a.attempt = deliveries.attempts
) WHERE state = 'sending';
DELETE FROM attempts WHERE finished_at IS NULL;
