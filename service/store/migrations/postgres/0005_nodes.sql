-- Nodes: a project's deployed servers. A node holds at most one machine
-- (machine_id, unique) from the claim until its machine is cleaned; the
-- project cannot be deleted while it has nodes (no cascade: that would
-- orphan deployed hardware).

CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects (id),
    name             TEXT NOT NULL,
    flavor_id        TEXT NOT NULL,
    image_id         TEXT NOT NULL,
    keypair_id       TEXT,
    user_data        TEXT,
    user_data_sha256 TEXT,
    metadata         TEXT NOT NULL,
    placement        TEXT NOT NULL,
    group_name       TEXT,
    status           TEXT NOT NULL,
    status_reason    TEXT,
    machine_id       TEXT UNIQUE REFERENCES machines (id),
    addresses        TEXT NOT NULL,
    location         TEXT NOT NULL,
    operation_id     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    revision         BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX nodes_group ON nodes (project_id, group_name);

-- Addresses handed to nodes on a network: one holder each.
CREATE TABLE node_addresses (
    network TEXT NOT NULL,
    address TEXT NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    PRIMARY KEY (network, address)
);
