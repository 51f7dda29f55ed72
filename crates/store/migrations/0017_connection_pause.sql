-- A connection paused by a person: scheduled runs pass it by until it is resumed.
ALTER TABLE connections ADD COLUMN paused_at TEXT;
ALTER TABLE connections ADD COLUMN paused_by TEXT;
