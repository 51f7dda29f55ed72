-- Sessions of the console and the API by cookie. Only the SHA-256 of a session id is kept:
-- the id itself lives in the browser's cookie. Times are Unix milliseconds, so idle and
-- absolute expiry and "older than the user's last credential change" are plain comparisons.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Who set a review in motion (the actor of the run that opened it), when known: a reviewer
-- may not approve what they proposed (maker-checker).
ALTER TABLE reviews ADD COLUMN proposed_by TEXT;
