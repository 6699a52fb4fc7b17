-- The integrity seal of a snapshot (issue 14): the manifest of its
-- directory (path, type, mode, owner, size, SHA-256 of each entry), taken
-- at checkpoint and compared with the files before every restore. NULL for
-- a snapshot not finished yet; a snapshot without a seal is not restored.
ALTER TABLE snapshots ADD COLUMN manifest TEXT;
-- Whether the source box had a network: a restored box gets one of its own.
ALTER TABLE snapshots ADD COLUMN network INTEGER NOT NULL DEFAULT 0;
