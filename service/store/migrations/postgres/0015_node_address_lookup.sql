-- The metadata service finds the node holding the asking address on every
-- request (each deployed node polls it for its mounts): by index, not by
-- reading every node.
CREATE INDEX node_addresses_address ON node_addresses (address);
