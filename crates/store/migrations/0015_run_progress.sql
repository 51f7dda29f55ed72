-- A run's live view, for every process: who started it and how far it got, written as it
-- goes (progress_at doubles as its heartbeat).
ALTER TABLE runs ADD COLUMN started_by TEXT;
ALTER TABLE runs ADD COLUMN progress_done INTEGER;
ALTER TABLE runs ADD COLUMN progress_total INTEGER;
ALTER TABLE runs ADD COLUMN progress_at TEXT;
