-- HR intake. Portable SQL: the same file runs on SQLite and PostgreSQL.

-- Each accepted load: a file (archived under its SHA-256) or a pushed batch.
CREATE TABLE hr_loads (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    checksum TEXT NOT NULL,
    -- full: the whole population; delta: only the workers it holds
    kind TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    event_count BIGINT NOT NULL
);

-- The last accepted record of each worker (JSON), as lifecycle detection compares against.
CREATE TABLE hr_workers (
    worker_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    -- set when a full load first lacked this worker; cleared when the worker is back
    missing_since TEXT,
    load_id TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Lifecycle events. pending: not yet acted on (due once effective_at has passed);
-- done: acted on; superseded: replaced by a later event; reported: information only.
CREATE TABLE hr_events (
    id TEXT PRIMARY KEY,
    load_id TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    -- unix seconds, for ordering and the due check; the body has the exact moment
    effective_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX hr_events_due ON hr_events (state, effective_at);
CREATE INDEX hr_events_worker ON hr_events (worker_id);

-- Quarantined rows, kept whole so nothing is lost.
CREATE TABLE hr_quarantine (
    load_id TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    worker_id TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (load_id, row_number)
);

-- Event ids of pushed changes already taken: a push is applied once.
CREATE TABLE hr_push_ids (
    event_id TEXT PRIMARY KEY,
    load_id TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- Small named values (the sealed push secret).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
