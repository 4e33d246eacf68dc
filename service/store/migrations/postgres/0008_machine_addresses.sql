-- A fixed provisioning address belongs to one machine (DHCP would hand it to
-- both): held here under a unique key, like MACs in machine_macs, so two
-- concurrent enrollments cannot both take it. Filled from the interfaces.
CREATE TABLE machine_addresses (
    address    TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines (id) ON DELETE CASCADE
);
INSERT INTO machine_addresses (address, machine_id)
SELECT i ->> 'address', m.id
  FROM machines m, jsonb_array_elements(m.interfaces::jsonb) i
 WHERE i ->> 'address' IS NOT NULL
ON CONFLICT DO NOTHING;
