-- Shares. Share types belong to the site (a backend, its settings, its
-- sealed credential); shares, their access rules and snapshots to projects.
-- A share's status and a rule's state say what the share worker still has
-- to do on the backend, so a restart resumes where the rows say.
-- node_shares: what each node mounts, and the rule tundrad made for it.

CREATE TABLE share_types (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    description       TEXT NOT NULL,
    backend           TEXT NOT NULL,
    settings          TEXT NOT NULL,
    credential_secret TEXT REFERENCES secrets (id),
    last_error        TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    revision          BIGINT NOT NULL
);

CREATE TABLE shares (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    share_type_id TEXT NOT NULL REFERENCES share_types (id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    size_gib      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT,
    networks      TEXT NOT NULL,
    export_path   TEXT,
    snapshot_id   TEXT,
    used_bytes    BIGINT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    revision      BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE share_snapshots (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    share_id      TEXT NOT NULL REFERENCES shares (id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT,
    size_gib      BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    revision      BIGINT NOT NULL,
    UNIQUE (share_id, name)
);

CREATE TABLE share_access (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id),
    share_id     TEXT NOT NULL REFERENCES shares (id),
    kind         TEXT NOT NULL,
    access_to    TEXT NOT NULL,
    access_level TEXT NOT NULL,
    state        TEXT NOT NULL,
    state_reason TEXT,
    ceph_id      TEXT,
    key_secret   TEXT REFERENCES secrets (id),
    node_id      TEXT REFERENCES nodes (id),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    revision     BIGINT NOT NULL,
    UNIQUE (share_id, kind, access_to)
);

CREATE TABLE node_shares (
    node_id     TEXT NOT NULL REFERENCES nodes (id),
    share_id    TEXT NOT NULL REFERENCES shares (id),
    mount_point TEXT NOT NULL,
    access      TEXT NOT NULL,
    access_id   TEXT REFERENCES share_access (id),
    PRIMARY KEY (node_id, mount_point)
);
