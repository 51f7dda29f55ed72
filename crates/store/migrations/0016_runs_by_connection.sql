-- Status, metrics and the runs list read a connection's newest runs: with a scheduler every
-- few minutes the table grows by hundreds a day, so they are found by index, not by a scan.
CREATE INDEX runs_connection_started ON runs (connection, started_at);
