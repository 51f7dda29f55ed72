-- Several processes (nodes) on one store. Each process incarnation says it is alive here, on
-- the database's clock; a run records the epoch of the lease it ran under, and so does each
-- journal entry, so that a write of a holder that lost its lease is refused and seen.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    version TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    -- Where its API answers, when it serves one.
    address TEXT,
    -- Set while it finishes its runs before stopping: it takes no more connections.
    stopping BIGINT NOT NULL DEFAULT 0
);
ALTER TABLE runs ADD COLUMN epoch BIGINT;
ALTER TABLE journal ADD COLUMN epoch BIGINT;
