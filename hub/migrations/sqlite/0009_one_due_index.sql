-- Claims probe due deliveries per line system, through (system_id, due_at); a claim of the
-- systems not listed probes each that the delivery counts show with due deliveries. The index
-- on due_at alone served only that claim, and it cost an entry on every insert and every claim.
DROP INDEX deliveries_due;
