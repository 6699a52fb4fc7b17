-- The Manager's event journal: box and exec lifecycle events, replayable by seq.
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    type TEXT NOT NULL,
    box_id TEXT,
    exec_id TEXT,
    data TEXT
);
CREATE INDEX idx_journal_box ON journal(box_id, seq);
