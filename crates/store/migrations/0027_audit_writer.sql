-- One row that audit appends lock in turn (on PostgreSQL; SQLite has one writer): several
-- nodes append to the one chain without two of them reading the same last record and one
-- losing its batch to a key conflict.
CREATE TABLE audit_writer (id INTEGER PRIMARY KEY);
INSERT INTO audit_writer (id) VALUES (1);
