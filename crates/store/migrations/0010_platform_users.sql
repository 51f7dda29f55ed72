-- The people and scripts who use tenure: platform users (Admin, Editor, Reviewer, Viewer)
-- with argon2id password hashes, and API tokens stored as hashes of their secret.
CREATE TABLE platform_users (
    id TEXT PRIMARY KEY,
    -- as given; name_key (lower case) is unique
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    -- a one-time password must be changed at the next login
    must_change BIGINT NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    -- sessions older than this are void (a password change or a disable)
    credentials_at TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    -- the one connection it may act on; none: all
    connection TEXT,
    -- SHA-256 of the secret part (the secret is 256 random bits, so no slow hash is needed)
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT
);
