-- Execs whose output `log` events live in an append-only file
-- (output/<exec_id>.log) rather than in events: size is the committed length
-- of that file (set when the exec finishes, or by recovery after a crash).
CREATE TABLE exec_output (
    exec_id TEXT PRIMARY KEY REFERENCES execs(id) ON DELETE CASCADE,
    size INTEGER NOT NULL DEFAULT 0,
    truncated INTEGER NOT NULL DEFAULT 0
);
