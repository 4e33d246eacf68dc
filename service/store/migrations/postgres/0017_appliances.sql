-- Appliances. Templates (the site's, scope '', or a project's, scope its
-- ID) are versioned and never change but for their description: name and
-- version are unique in a scope; the spec (parameters, secrets, roles,
-- outputs, usage) is JSON, rendered by tundrad. An appliance keeps its
-- parameters (defaults filled in), its generated secrets sealed together
-- (one secrets row), and the reconciler's judgement: status, per-role
-- status, rendered outputs and usage.
-- appliance_members: one row per node the appliance has or is making,
-- written before its node, so a restart finds the node (by name and the
-- appliance metadata only tundrad sets) instead of making a second one.
-- `generation` is the plan a node last reported ready under; `ready_once`
-- stays set once it was ready, so it leaves only drained.
-- last_index: per role, the highest index ever given (never reused).

CREATE TABLE appliance_templates (
    id          TEXT PRIMARY KEY,
    project_id  TEXT REFERENCES projects (id),
    scope       TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    description TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    UNIQUE (scope, name, version)
);

CREATE TABLE appliances (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    name          TEXT NOT NULL,
    template_id   TEXT NOT NULL REFERENCES appliance_templates (id),
    keypair_id    TEXT,
    parameters    TEXT NOT NULL,
    secret_id     TEXT REFERENCES secrets (id),
    status        TEXT NOT NULL,
    status_reason TEXT,
    was_active    BIGINT NOT NULL,
    roles         TEXT NOT NULL,
    outputs       TEXT NOT NULL,
    usage         TEXT,
    last_index    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    revision      BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE appliance_members (
    appliance_id TEXT NOT NULL REFERENCES appliances (id),
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    idx          BIGINT NOT NULL,
    node_id      TEXT,
    state        TEXT NOT NULL,
    reason       TEXT,
    generation   TEXT,
    ready_once   BIGINT NOT NULL,
    drained      BIGINT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (appliance_id, name)
);

CREATE INDEX appliance_members_node ON appliance_members (node_id);
