-- Snapshots of boxes (issue 14): memory and files saved by the driver under
-- snapshots/<id>. A row in state 'creating' is the intent of a checkpoint
-- (or the scratch checkpoint of a fork) not finished yet: Open removes it
-- and its files. source_box_id has no foreign key: snapshots outlive boxes.
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'creating',
    source_box_id TEXT NOT NULL,
    image TEXT NOT NULL,
    image_digest TEXT,
    cpu INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    disk_size_gb INTEGER NOT NULL,
    workdir TEXT NOT NULL,
    env TEXT,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    driver TEXT NOT NULL,
    cpu_features TEXT NOT NULL,
    created_at TEXT NOT NULL
);
