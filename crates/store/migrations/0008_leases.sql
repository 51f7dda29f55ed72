-- Who works a connection now: one row per connection, held by one process incarnation (a fresh
-- id per start) until expires_ms, judged on the database's clock. The epoch rises each time the
-- holder changes, so a writer that lost the lease can be told apart from the one that has it.
-- A released lease keeps its row (expired), so the next holder's epoch still rises.
CREATE TABLE leases (
    connection TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    holder_info TEXT NOT NULL,
    -- Where the holder runs: a holder on the same host whose process is gone can be replaced
    -- at once instead of after expiry.
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- Recovery asks which actions of an interrupted run were audited before it stopped.
CREATE INDEX audit_run ON audit (run_id, worker_id);

-- Workers the last run held for a reason no decision can release (an account linked to
-- another worker who is still active, a look-alike address): shown beside the reviews until
-- HR data settles them. Replaced whole by each run of the connection.
CREATE TABLE holds (
    connection TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (connection, worker_id)
);
