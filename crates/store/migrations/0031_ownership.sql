-- Which node owns each connection: only its owner claims the connection's turns, so the
-- connections are shared out between the nodes (each takes up to its fair share) rather
-- than worked by whichever node looks first. An owner counts while its node is live and not
-- stopping; otherwise another node takes the connection over.
ALTER TABLE schedule ADD COLUMN owner TEXT;
ALTER TABLE schedule ADD COLUMN owned_ms BIGINT;
-- A node that takes no scheduled turns (--interval 0) owns no connection.
ALTER TABLE nodes ADD COLUMN scheduling BIGINT NOT NULL DEFAULT 1;
-- A run asked for on a node that does not own the connection, handed to its owner: the
-- owner takes the request and starts the run under the id the asking node answered with.
CREATE TABLE run_requests (
    id TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    -- What the run is to do and who asked (JSON).
    start TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_ms BIGINT NOT NULL,
    -- The node that took it (it starts the run), and when.
    taken_by TEXT,
    taken_ms BIGINT,
    -- Why it could not start (no such connection any more, say).
    error TEXT
);
-- When each HR load was recorded, on the database's clock (the schedule's clock): a load is
-- news to every turn claimed before it, whichever node's clock stamped loaded_at.
ALTER TABLE hr_loads ADD COLUMN recorded_ms BIGINT;
