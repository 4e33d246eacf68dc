-- Replicas: several tundrad may share one PostgreSQL database.
-- An unfinished operation is run by the replica that holds its lease:
-- `owner` (a replica's ID, new at every start) renews `lease_expires_at` by
-- heartbeat; once it lapses, any replica may claim the operation and resume
-- it from the store. Operations written by an earlier release have no owner
-- and are claimed by the first replica that looks.
-- `leases`: one row per background loop (power sync, the fabric worker, the
-- reconcilers…); the loop runs only on the row's owner, until it lapses.
-- Times are stored text (RFC 3339, UTC, milliseconds) and compare as text.

ALTER TABLE operations ADD COLUMN owner TEXT;
ALTER TABLE operations ADD COLUMN lease_expires_at TEXT;

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);
