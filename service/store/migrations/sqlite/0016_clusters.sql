-- Clusters. Templates (the site's, scope '', or a project's, scope its ID)
-- are versioned: name and version are unique in a scope, and one in use
-- never changes. A cluster keeps its groups as JSON, its join secrets and
-- its SSH certificate authority's key sealed (secrets rows) — and, for
-- Kubernetes, the client CA that signs its kubeconfigs (key sealed) and the
-- API server's CA its bootstrap node reported — and what its control plane
-- last reported.
-- cluster_members: one row per node the cluster has or is making, written
-- before its node, so a restart finds the node (by name and the cluster
-- metadata only tundrad sets) instead of making a second one; `joined`
-- stays set once the node joined, so it leaves only through the control
-- plane. last_index: per group, the highest index ever given (never reused).

CREATE TABLE cluster_templates (
    id              TEXT PRIMARY KEY,
    project_id      TEXT REFERENCES projects (id),
    scope           TEXT NOT NULL,
    name            TEXT NOT NULL,
    version         BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    description     TEXT NOT NULL,
    bundle_image_id TEXT REFERENCES images (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    revision        BIGINT NOT NULL,
    UNIQUE (scope, name, version)
);

CREATE TABLE clusters (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects (id),
    name                 TEXT NOT NULL,
    template_id          TEXT NOT NULL REFERENCES cluster_templates (id),
    kind                 TEXT NOT NULL,
    keypair_id           TEXT,
    groups               TEXT NOT NULL,
    labels               TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    was_active           BIGINT NOT NULL,
    bootstrap            TEXT,
    seen                 TEXT,
    last_index           TEXT NOT NULL,
    endpoint             TEXT,
    control_plane_secret TEXT REFERENCES secrets (id),
    worker_secret        TEXT REFERENCES secrets (id),
    ssh_ca_secret        TEXT REFERENCES secrets (id),
    ssh_ca_public        TEXT,
    client_ca_secret     TEXT REFERENCES secrets (id),
    client_ca_cert       TEXT,
    ca_certificate       TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    revision             BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE cluster_members (
    cluster_id TEXT NOT NULL REFERENCES clusters (id),
    name       TEXT NOT NULL,
    group_name TEXT NOT NULL,
    role       TEXT NOT NULL,
    idx        BIGINT NOT NULL,
    node_id    TEXT,
    state      TEXT NOT NULL,
    reason     TEXT,
    joined     BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (cluster_id, name)
);

CREATE INDEX cluster_members_node ON cluster_members (node_id);
