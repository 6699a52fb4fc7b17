-- The spec's tables (on-disk compatible with the reference server), created
-- only if missing so an existing reference database is adopted as is.
CREATE TABLE IF NOT EXISTS boxes (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'creating',
    image TEXT NOT NULL,
    cpu INTEGER NOT NULL DEFAULT 2,
    memory_mb INTEGER NOT NULL DEFAULT 1024,
    disk_size_gb INTEGER NOT NULL DEFAULT 8,
    network INTEGER NOT NULL DEFAULT 0,
    workdir TEXT NOT NULL DEFAULT '/root',
    env TEXT,
    volumes TEXT,
    boxlite_id TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    stopped_at TEXT
);

CREATE TABLE IF NOT EXISTS execs (
    id TEXT PRIMARY KEY,
    box_id TEXT NOT NULL REFERENCES boxes(id),
    status TEXT NOT NULL DEFAULT 'running',
    cmd TEXT NOT NULL,
    env TEXT,
    workdir TEXT,
    timeout_ms INTEGER,
    exit_code INTEGER,
    error_message TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT
);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exec_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    stream TEXT,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_events_exec_seq ON events(exec_id, seq);
CREATE INDEX IF NOT EXISTS idx_execs_box ON execs(box_id, created_at);
