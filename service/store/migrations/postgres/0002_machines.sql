-- Machines: the physical servers. BMC settings without the password (that is
-- a sealed secret, bmc_secret_id); JSON as text for the nested parts.

CREATE TABLE machines (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    resource_class     TEXT NOT NULL,
    traits             TEXT NOT NULL,
    properties         TEXT NOT NULL,
    location           TEXT NOT NULL,
    bmc                TEXT NOT NULL,
    bmc_secret_id      TEXT NOT NULL,
    interfaces         TEXT NOT NULL,
    power_state        TEXT NOT NULL,
    provision_state    TEXT NOT NULL,
    maintenance        BIGINT NOT NULL,
    maintenance_reason TEXT,
    maintenance_by     TEXT,
    last_error         TEXT,
    operation_id       TEXT,
    bmc_failures       BIGINT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    revision           BIGINT NOT NULL
);
CREATE INDEX machines_state ON machines (provision_state);

-- A MAC belongs to one machine (DHCP and discovery look machines up by MAC).
CREATE TABLE machine_macs (
    mac        TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines (id) ON DELETE CASCADE
);
