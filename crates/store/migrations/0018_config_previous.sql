-- Each saved configuration names the version it replaced and who saved it: two people who
-- both started from one version cannot both save over it (the second is told, not lost).
ALTER TABLE config_versions ADD COLUMN previous TEXT;
ALTER TABLE config_versions ADD COLUMN saved_by TEXT;
CREATE UNIQUE INDEX config_versions_previous ON config_versions (previous);
