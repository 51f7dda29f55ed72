-- Supervised mode and dead letters. Portable SQL: the same file runs on SQLite and PostgreSQL.

-- One worker's actions on a connection waiting for (or given) a reviewer's decision. The
-- fingerprint identifies exactly what was reviewed: a decision holds for those actions only.
-- state: pending, approved, rejected, applied, superseded (the plan changed before a decision)
CREATE TABLE reviews (
    id BIGINT PRIMARY KEY,
    connection TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    actions TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT
);
CREATE INDEX reviews_open ON reviews (connection, state);

-- A worker whose actions kept failing. state: retrying (attempts so far), dead (given up:
-- shown to the admin, not tried again until `tenure dead-letters retry`).
CREATE TABLE dead_letters (
    connection TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    actions TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    state TEXT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    PRIMARY KEY (connection, worker_id)
);
