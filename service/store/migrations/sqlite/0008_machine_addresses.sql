-- A fixed provisioning address belongs to one machine (DHCP would hand it to
-- both): held here under a unique key, like MACs in machine_macs, so two
-- concurrent enrollments cannot both take it. Filled from the interfaces.
CREATE TABLE machine_addresses (
    address    TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines (id) ON DELETE CASCADE
);
INSERT OR IGNORE INTO machine_addresses (address, machine_id)
SELECT json_extract(i.value, '$.address'), m.id
  FROM machines m, json_each(m.interfaces) i
 WHERE json_extract(i.value, '$.address') IS NOT NULL;
