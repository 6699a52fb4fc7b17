-- Boxes of ephemeral runs (/v1/run): a row here means the box goes when its
-- run ends, and Open deletes it (a crash left the run half finished).
-- Deleted with the box.
CREATE TABLE run_boxes (
    box_id TEXT PRIMARY KEY REFERENCES boxes(id) ON DELETE CASCADE
);
