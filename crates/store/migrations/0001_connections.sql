-- Portable SQL: the same file runs on SQLite and PostgreSQL.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    dialect TEXT NOT NULL,
    -- hex(nonce || ciphertext) of the bearer token, sealed under the master key token_key_id
    token_sealed TEXT NOT NULL,
    token_key_id TEXT NOT NULL,
    -- the token's last four characters, for display only
    token_hint TEXT NOT NULL,
    insecure_http BIGINT NOT NULL DEFAULT 0,
    allow_private BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
