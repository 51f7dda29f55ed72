-- Each imported configuration (roles, mappings, connection settings; never tokens), in its
-- canonical TOML form. The latest is in force; the earlier ones are its history.
CREATE TABLE config_versions (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    checksum TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX config_versions_created ON config_versions (created_at);
