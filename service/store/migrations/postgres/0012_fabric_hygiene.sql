-- What keeps one tenant's VLAN from reaching the next:
-- switch_ports.failures counts programming failures in a row (reset when one
-- succeeds), so a failed port is tried again with a growing pause;
-- freed_segments remembers when a network's segment was let go, so it is not
-- handed out again before its quarantine ends (a port still on it — one that
-- failed to move back — must not join a new tenant).
ALTER TABLE switch_ports ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
CREATE TABLE freed_segments (
    physical_network_id TEXT NOT NULL REFERENCES physical_networks (id) ON DELETE CASCADE,
    segment             BIGINT NOT NULL,
    freed_at            TEXT NOT NULL,
    PRIMARY KEY (physical_network_id, segment)
);
