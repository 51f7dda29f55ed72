-- People who sign in through the company's identity provider are linked to it by the
-- provider's issuer and their subject there, never by a name or an e-mail address.
ALTER TABLE platform_users ADD COLUMN idp_subject TEXT;
CREATE UNIQUE INDEX platform_users_idp_subject ON platform_users (idp_subject);

-- A sign-in sent to the identity provider and not yet back: its state (hashed), taken once.
CREATE TABLE sign_in_flows (
    state_hash TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);
CREATE INDEX sign_in_flows_created ON sign_in_flows (created_ms);
