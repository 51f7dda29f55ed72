-- HR news is carried out at once for the workers it concerns: the scheduler reads the events
-- of the loads recorded since it last looked, and the connections those workers have accounts
-- on. Without these, each look would scan every event and every link.
CREATE INDEX hr_events_load ON hr_events (load_id);
CREATE INDEX hr_loads_recorded ON hr_loads (recorded_ms);
CREATE INDEX links_worker ON links (worker_id);
