-- Output events belong to their exec: a foreign key (deleted with it) and one
-- row per (exec_id, seq). Rows that a race left without an exec or a box, and
-- repeated seqs of one exec, are dropped (the first row of a seq is kept).
DELETE FROM execs WHERE box_id NOT IN (SELECT id FROM boxes);
DELETE FROM events WHERE exec_id NOT IN (SELECT id FROM execs);
CREATE TABLE events_fk (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exec_id TEXT NOT NULL REFERENCES execs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    stream TEXT,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO events_fk(id, exec_id, seq, type, stream, data, created_at)
    SELECT id, exec_id, seq, type, stream, data, created_at FROM events
    WHERE id IN (SELECT MIN(id) FROM events GROUP BY exec_id, seq);
DROP TABLE events;
ALTER TABLE events_fk RENAME TO events;
CREATE UNIQUE INDEX idx_events_exec_seq ON events(exec_id, seq);
