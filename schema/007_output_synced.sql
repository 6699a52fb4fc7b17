-- synced = 0: the exec finished and its output log (up to size) may not be
-- on disk yet. The Manager fdatasyncs finished logs in the background and
-- sets 1; Open verifies a log still at 0 (a power loss may have taken its
-- tail) and keeps its valid prefix.
ALTER TABLE exec_output ADD COLUMN synced INTEGER NOT NULL DEFAULT 1;
