-- Agent sessions: while an operation boots a machine into tundra-agent, the
-- command the agent must run, the hash of the per-boot token its iPXE script
-- carried, and the agent's report. One per machine; removed when the
-- operation ends (and with the machine).

CREATE TABLE agent_sessions (
    machine_id       TEXT PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    operation_id     TEXT NOT NULL,
    command          TEXT NOT NULL,
    token_hash       TEXT UNIQUE,
    token_expires_at TEXT,
    boots            BIGINT NOT NULL,
    last_seen        TEXT,
    progress         TEXT,
    report           TEXT,
    created_at       TEXT NOT NULL
);
