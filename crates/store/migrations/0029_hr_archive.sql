-- HR files and pushed bodies as received, kept in the store on PostgreSQL (any node reads what
-- another took), in parts of a few MiB, base64 (one column type on both databases).
CREATE TABLE hr_archive (
    checksum TEXT NOT NULL,
    part BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (checksum, part)
);
