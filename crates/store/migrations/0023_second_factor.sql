-- A session whose password was right but whose second factor is still to come: it lets its
-- holder give the code, nothing else, for a few minutes.
ALTER TABLE sessions ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
