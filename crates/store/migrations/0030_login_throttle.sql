-- Failed sign-ins per account and per account and address, kept in the store so that every
-- node counts them together (an attacker gains nothing by spreading attempts over nodes).
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_ms BIGINT NOT NULL
);
