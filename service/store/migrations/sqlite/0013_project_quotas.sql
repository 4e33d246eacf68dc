-- A project's own limits; a NULL limit follows the site's default
-- (default_quota in tundrad's config). What a project uses is counted from
-- its objects inside the transaction that would add more.
CREATE TABLE project_quotas (
    project_id  TEXT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    nodes       BIGINT,
    networks    BIGINT,
    addresses   BIGINT,
    image_bytes BIGINT,
    updated_at  TEXT NOT NULL
);
