package boxrun

import (
	"context"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// A database written by an early reference server (no volumes or
// disk_size_gb columns, no journal) is adopted in place.
func TestStore_AdoptsReferenceDatabase(t *testing.T) {
	file := filepath.Join(t.TempDir(), "boxrun.db")
	conn, err := sqlite.OpenConn(file)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.ExecuteScript(conn, `
		CREATE TABLE boxes (id TEXT PRIMARY KEY, name TEXT UNIQUE, status TEXT NOT NULL DEFAULT 'creating',
			image TEXT NOT NULL, cpu INTEGER NOT NULL DEFAULT 2, memory_mb INTEGER NOT NULL DEFAULT 1024,
			network INTEGER NOT NULL DEFAULT 0, workdir TEXT NOT NULL DEFAULT '/root', env TEXT, boxlite_id TEXT,
			error_code TEXT, error_message TEXT, created_at TEXT NOT NULL, started_at TEXT, stopped_at TEXT);
		CREATE TABLE execs (id TEXT PRIMARY KEY, box_id TEXT NOT NULL REFERENCES boxes(id), status TEXT NOT NULL DEFAULT 'running',
			cmd TEXT NOT NULL, env TEXT, workdir TEXT, timeout_ms INTEGER, exit_code INTEGER, error_message TEXT,
			created_at TEXT NOT NULL, finished_at TEXT);
		CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, exec_id TEXT NOT NULL, seq INTEGER NOT NULL,
			type TEXT NOT NULL, stream TEXT, data TEXT NOT NULL, created_at TEXT NOT NULL);
		INSERT INTO boxes (id, name, status, image, env, created_at, stopped_at)
			VALUES ('box_legacy000001', 'old', 'stopped', 'ubuntu:24.04', '{"A":"1"}', '2025-01-01T00:00:00+00:00', '2025-01-02T00:00:00+00:00');
		INSERT INTO execs (id, box_id, status, cmd, created_at) VALUES ('exec_legacy00001', 'box_legacy000001', 'succeeded', '["echo","x"]', '2025-01-01T00:00:01+00:00');
	`, nil)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := openStore(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	b, err := s.getBox(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if b.DiskSizeGB != 8 || b.Volumes != nil || b.Env["A"] != "1" || b.Status != StatusStopped {
		t.Fatalf("legacy box = %+v", b)
	}
	e, err := s.getExec(ctx, "exec_legacy00001")
	if err != nil || len(e.Cmd) != 2 || e.ExitCode != nil {
		t.Fatalf("legacy exec = %+v, %v", e, err)
	}
	// The journal exists and works on the adopted database.
	if _, err := s.updateBox(ctx, b, EventBoxStopped, FormatTime(b.StoppedAt)); err != nil {
		t.Fatal(err)
	}
	evs, err := s.journal(ctx, EventFilter{}, 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Box == nil || evs[0].Box.Name != "old" {
		t.Fatalf("journal = %+v, %v", evs, err)
	}
	// Reopening migrates nothing twice.
	s.close()
	s2, err := openStore(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	s2.close()
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID("exec_")
		if len(id) != 17 || id[:5] != "exec_" {
			t.Fatalf("id %q", id)
		}
		for _, c := range id[5:] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				t.Fatalf("id %q has %q", id, c)
			}
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}
