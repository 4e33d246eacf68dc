-- A switch port is cabled to one machine: tundrad moves the port into the
-- VLAN of whoever holds the machine, so a second machine claiming it (an
-- operator's typo, or a neighbour's forged LLDP during inspection) would
-- steer another tenant's port. Held here under a unique key, filled from the
-- interfaces; duplicates already recorded keep their first holder.
CREATE TABLE machine_switch_ports (
    switch     TEXT NOT NULL,
    port       TEXT NOT NULL,
    machine_id TEXT NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    PRIMARY KEY (switch, port)
);
INSERT OR IGNORE INTO machine_switch_ports (switch, port, machine_id)
SELECT json_extract(i.value, '$.switch'), json_extract(i.value, '$.port'), m.id
  FROM machines m, json_each(m.interfaces) i
 WHERE json_extract(i.value, '$.switch') IS NOT NULL AND json_extract(i.value, '$.port') IS NOT NULL
 ORDER BY m.created_at;
