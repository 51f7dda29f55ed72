-- Who stands behind a change, for maker-checker: the platform user an API token acts for
-- (its rights are at most theirs, and it stops when they are disabled), the person who
-- uploaded an HR load, and the uploader of the data a review acts on beside the run's starter.
ALTER TABLE api_tokens ADD COLUMN maker TEXT;
UPDATE api_tokens SET maker = substr(created_by, 6) WHERE created_by LIKE 'user:%';
ALTER TABLE hr_loads ADD COLUMN uploaded_by TEXT;
ALTER TABLE reviews ADD COLUMN uploaded_by TEXT;
