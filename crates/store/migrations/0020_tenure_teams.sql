-- The teams tenure made or put someone in, per connection: teams whose members tenure sets
-- (a mover leaves one even when no rule names it any more) and, those it made, teams it may
-- delete once empty (remove_empty_teams). The key is the name in lower case: teams match by
-- name whatever its case.
CREATE TABLE tenure_teams (
    connection TEXT NOT NULL,
    name_key TEXT NOT NULL,
    name TEXT NOT NULL,
    made INTEGER NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (connection, name_key)
);

-- Which guard refused a connection's last run: the mass-deprovision guard or the team guard,
-- each confirmed with its own number.
ALTER TABLE guard_trips ADD COLUMN guard TEXT NOT NULL DEFAULT 'deprovision';

-- Who or what started the run that opened a review (a person, a token, the scheduler, the
-- command line): shown with the review, whether or not it is a person maker-checker counts.
ALTER TABLE reviews ADD COLUMN started_by TEXT;

-- A rehearsal's moment (`apply --as-of`): a run that acted at another moment than its own.
ALTER TABLE runs ADD COLUMN as_of TEXT;
