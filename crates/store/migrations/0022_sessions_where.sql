-- Where a session was signed in from: the client's address (as the service trusts it) and
-- its user agent, so a person sees where they are signed in and ends what is not theirs.
ALTER TABLE sessions ADD COLUMN address TEXT;
ALTER TABLE sessions ADD COLUMN agent TEXT;

-- A token limited to reading (GET) whatever its role allows: for dashboards and monitoring.
ALTER TABLE api_tokens ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
