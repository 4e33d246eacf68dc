-- Identity, catalog, operations, events, secrets, idempotency.
-- Portable types only (TEXT, BIGINT) so the SQLite and PostgreSQL files stay
-- the same until a backend-specific need appears; times are RFC 3339 UTC text.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    revision    BIGINT NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    admin      BIGINT NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE role_assignments (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    project_id  TEXT REFERENCES projects (id) ON DELETE CASCADE,
    role        TEXT,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE keypairs (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    key_type    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- scope is the project id, or 'public': names are unique per scope.
CREATE TABLE flavors (
    id              TEXT PRIMARY KEY,
    project_id      TEXT REFERENCES projects (id),
    scope           TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    resource_class  TEXT NOT NULL,
    required_traits TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    revision        BIGINT NOT NULL,
    UNIQUE (scope, name)
);

CREATE TABLE images (
    id           TEXT PRIMARY KEY,
    project_id   TEXT REFERENCES projects (id),
    scope        TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    disk_format  TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    source_url   TEXT,
    status       TEXT NOT NULL,
    size_bytes   BIGINT,
    raw_sha256   TEXT,
    error        TEXT,
    operation_id TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    revision     BIGINT NOT NULL,
    UNIQUE (scope, name)
);

CREATE TABLE operations (
    id             TEXT PRIMARY KEY,
    project_id     TEXT,
    kind           TEXT NOT NULL,
    target_type    TEXT NOT NULL,
    target_id      TEXT NOT NULL,
    state          TEXT NOT NULL,
    progress_done  BIGINT NOT NULL,
    progress_total BIGINT,
    message        TEXT NOT NULL,
    error          TEXT,
    created_by     TEXT NOT NULL,
    attempts       BIGINT NOT NULL,
    input          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX operations_state ON operations (state);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    project_id  TEXT,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    request_id  TEXT
);
CREATE INDEX events_object ON events (object_type, object_id);
CREATE INDEX events_project ON events (project_id);

-- Ciphertext only; the key never touches the database.
CREATE TABLE secrets (
    id         TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE idempotency_keys (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    route        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);
