-- The audit chain's last known head, kept outside the chain's own table: records cut off the
-- end of the chain leave it ahead, so the cut is reported rather than read as intact. (A copy
-- of the whole database file carries it too: for that, the data folder's audit.head file.)
CREATE TABLE audit_heads (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_heads (id, seq, hash) SELECT 1, seq, hash FROM audit ORDER BY seq DESC LIMIT 1;
