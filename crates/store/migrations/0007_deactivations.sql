-- When tenure deactivated a linked account (the moment of the plan it carried out): the clock
-- of the optional hard delete. Cleared when the account is reactivated or deleted.
CREATE TABLE deactivations (
    connection TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (connection, worker_id)
);
