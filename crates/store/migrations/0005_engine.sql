-- Provisioning. Portable SQL: the same file runs on SQLite and PostgreSQL.

-- Which account on a connection belongs to which worker. origin: created or adopted.
CREATE TABLE links (
    connection TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    target_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    origin TEXT NOT NULL,
    linked_at TEXT NOT NULL,
    PRIMARY KEY (connection, worker_id)
);
CREATE UNIQUE INDEX links_target ON links (connection, target_id);

-- Every action: written as an intent before the call, given its outcome after.
-- state: intent, done, failed, dead (gave up after the attempts allowed), resolved
CREATE TABLE journal (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    connection TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX journal_state ON journal (connection, state);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    summary TEXT
);

-- Append-only, hash-chained: hash = sha256(prev_hash | seq | at | ... | detail).
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    connection TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_worker ON audit (worker_id, seq);
