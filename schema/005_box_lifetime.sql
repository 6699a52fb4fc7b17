-- Lifetime limits of a box (issue 15): ttl and idle timeout in ms (0 = none),
-- what happens when one fires, the last exec/attach/copy, and why it expired.
-- Deleted with the box.
CREATE TABLE box_lifetime (
    box_id TEXT PRIMARY KEY REFERENCES boxes(id) ON DELETE CASCADE,
    ttl_ms INTEGER NOT NULL DEFAULT 0,
    idle_timeout_ms INTEGER NOT NULL DEFAULT 0,
    on_expire TEXT NOT NULL DEFAULT 'stop',
    last_activity_at TEXT,
    expired_by TEXT
);
