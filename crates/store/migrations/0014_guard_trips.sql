-- The mass-deprovision guard's refusal of a connection's last run, kept until a run goes
-- through: every process (a restart, a second node, the CLI) reads the same state.
CREATE TABLE guard_trips (
    connection TEXT PRIMARY KEY,
    why TEXT NOT NULL,
    deactivations INTEGER NOT NULL,
    tripped_at TEXT NOT NULL,
    by_whom TEXT NOT NULL
);
-- "The last HR data received" is the newest load: found by its moment, not by a scan.
CREATE INDEX hr_loads_loaded_at ON hr_loads (loaded_at);
