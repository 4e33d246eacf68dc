-- An Idempotency-Key is claimed before its create runs; `idempotency_keys`
-- keeps only answers, as before (a replica of the previous release, during
-- a rolling upgrade, reads nothing here it does not understand).
-- A claim names the request holding it (`request_id`, `actor`) and the
-- replica running it (`replica`). A tundrad stopped between the create's
-- commit and keeping its answer leaves a claim behind: the retry finds what
-- that request created by its `created` event (same request id and actor,
-- written in the create's own transaction) and answers with it, instead of
-- creating again or refusing a name the first request took. A claim whose
-- replica still runs is waited for; one whose replica is gone, and whose
-- request created nothing, passes to the retry.
CREATE TABLE idempotency_claims (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    route        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    actor        TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    replica      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX events_request ON events (request_id);
