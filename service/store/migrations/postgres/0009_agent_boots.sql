-- One agent token per network boot, bound to the machine that booted.
-- `armed`: tundrad has PXE-booted the machine for this session and no boot
-- script has been served for that boot yet (1), or it has (0); a script is
-- served only while armed. `agent_address`: the address that fetched the
-- script — the DHCP lease holder of the machine's MAC — which every agent
-- call must come from.

ALTER TABLE agent_sessions ADD COLUMN armed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_sessions ADD COLUMN agent_address TEXT;
-- A session that has served no script yet was waiting for its first boot.
UPDATE agent_sessions SET armed = 1 WHERE token_hash IS NULL;

ALTER TABLE discovery_sessions ADD COLUMN agent_address TEXT;
