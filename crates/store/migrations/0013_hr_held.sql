-- Workers held back by a quarantined row (their id on two rows, a bad value): listed as held
-- with why until a load takes a row of theirs. A full load replaces the list; a delta or a
-- push clears the workers it took.
CREATE TABLE hr_held (
    worker_id TEXT PRIMARY KEY,
    load_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    since TEXT NOT NULL
);
