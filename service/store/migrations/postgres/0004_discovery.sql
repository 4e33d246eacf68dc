-- Discovery sessions: a machine tundrad does not know (by MAC) fetched its
-- boot script while discovery is on; its agent reports the hardware under a
-- per-boot token, and tundrad enrolls it. One per MAC.

CREATE TABLE discovery_sessions (
    mac              TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    token_expires_at TEXT NOT NULL,
    report           TEXT,
    machine_id       TEXT,
    created_at       TEXT NOT NULL
);
