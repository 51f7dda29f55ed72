-- When each connection's next scheduled run is due, on the database's clock: a node runs a
-- connection only when it claims the due turn, so several nodes make one scheduled run per
-- connection per interval between them.
CREATE TABLE schedule (
    connection TEXT PRIMARY KEY,
    next_ms BIGINT NOT NULL,
    -- The node that claimed the last turn, and when (database time).
    claimed_by TEXT NOT NULL,
    claimed_ms BIGINT NOT NULL
);
