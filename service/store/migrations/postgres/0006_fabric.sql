-- The fabric. Physical networks and switches belong to the site; networks
-- (project_id NULL: shared), subnets and ports to projects. A segment has
-- one network per physical network (UNIQUE), an address one port per
-- subnet (port_ips' key), a machine interface at most one port (mac).
-- switch_ports is the drift record: per switch port, the segment tundrad
-- wants, what the switch last said, and the state between them.

CREATE TABLE physical_networks (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    description          TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    segment_min          BIGINT NOT NULL,
    segment_max          BIGINT NOT NULL,
    provisioning_segment BIGINT,
    mtu                  BIGINT NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    revision             BIGINT NOT NULL
);

CREATE TABLE switches (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    description         TEXT NOT NULL,
    physical_network_id TEXT NOT NULL REFERENCES physical_networks (id),
    dialect             TEXT NOT NULL,
    address             TEXT NOT NULL,
    username            TEXT NOT NULL,
    password_secret     TEXT REFERENCES secrets (id),
    key_secret          TEXT REFERENCES secrets (id),
    host_key            TEXT NOT NULL,
    max_sessions        BIGINT NOT NULL,
    min_interval_ms     BIGINT NOT NULL,
    last_error          TEXT,
    last_read_at        TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    revision            BIGINT NOT NULL
);

CREATE TABLE networks (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT REFERENCES projects (id),
    scope               TEXT NOT NULL,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL,
    physical_network_id TEXT NOT NULL REFERENCES physical_networks (id),
    segment             BIGINT,
    mtu                 BIGINT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    revision            BIGINT NOT NULL,
    UNIQUE (scope, name),
    UNIQUE (physical_network_id, segment)
);

CREATE TABLE subnets (
    id               TEXT PRIMARY KEY,
    project_id       TEXT REFERENCES projects (id),
    network_id       TEXT NOT NULL REFERENCES networks (id),
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    cidr             TEXT NOT NULL,
    gateway          TEXT,
    dns              TEXT NOT NULL,
    allocation_pools TEXT NOT NULL,
    dhcp             BIGINT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    revision         BIGINT NOT NULL,
    UNIQUE (network_id, name)
);

CREATE TABLE ports (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    network_id  TEXT NOT NULL REFERENCES networks (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    fixed_ips   TEXT NOT NULL,
    node_id     TEXT REFERENCES nodes (id),
    mac         TEXT UNIQUE,
    switch_id   TEXT REFERENCES switches (id),
    switch_port TEXT,
    auto        BIGINT NOT NULL,
    position    BIGINT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX ports_node ON ports (node_id);

CREATE TABLE port_ips (
    subnet_id TEXT NOT NULL REFERENCES subnets (id),
    address   TEXT NOT NULL,
    port_id   TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    PRIMARY KEY (subnet_id, address)
);

CREATE TABLE switch_ports (
    switch_id  TEXT NOT NULL REFERENCES switches (id) ON DELETE CASCADE,
    port       TEXT NOT NULL,
    desired    BIGINT NOT NULL,
    actual     BIGINT,
    state      TEXT NOT NULL,
    message    TEXT,
    checked_at TEXT,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (switch_id, port)
);
