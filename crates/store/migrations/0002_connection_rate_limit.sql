-- Requests per second tenure allows itself towards the target; NULL for no client-side limit.
ALTER TABLE connections ADD COLUMN rate_limit_per_second DOUBLE PRECISION;
