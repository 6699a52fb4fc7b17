package boxrun_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"zombiezen.com/go/sqlite"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A flood's space is returned: after the box that produced it is removed,
// the database file shrinks back (incremental auto-vacuum) and the exec's
// output log is gone.
func TestRetention_RemoveReclaimsSpace(t *testing.T) {
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	ctx := ctxT(t)
	if mode, err := boxrun.PragmaForTest(ctx, m, "PRAGMA auto_vacuum;"); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum = %d, %v; want 2 (incremental)", mode, err)
	}
	b := mustCreate(t, m, boxrun.BoxSpec{})
	e, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' y"}}, nil, nil)
	if err != nil || e.Status != boxrun.ExecSucceeded {
		t.Fatal(e, err)
	}
	logPath := filepath.Join(dir, "output", e.ID+".log")
	if fileSize(t, logPath) < 1_000_000 {
		t.Fatalf("output log smaller than the output")
	}
	// 32 MiB of output rows as older versions stored them.
	if err := boxrun.LegacyOutputForTest(ctx, m, e.ID, 512, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := boxrun.CheckpointForTest(ctx, m); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "boxrun.db")
	full := fileSize(t, db)
	if full < 32<<20 {
		t.Fatalf("database is %d bytes after the flood", full)
	}
	if err := m.Remove(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("output log of the removed exec is still there: %v", err)
	}
	// The maintainer runs soon after a removal; wait for the file to shrink.
	deadline := time.Now().Add(60 * time.Second)
	for {
		size := fileSize(t, db)
		wal, _ := os.Stat(db + "-wal")
		if size < 2<<20 && (wal == nil || wal.Size() < 8<<20) {
			t.Logf("database %d -> %d bytes", full, size)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database still %d bytes (was %d) after the box was removed", size, full)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The journal keeps at most the configured number of entries, and none
// older than the configured age.
func TestRetention_Journal(t *testing.T) {
	ctx := ctxT(t)
	t.Run("count", func(t *testing.T) {
		m := boxruntest.NewManager(t, boxrun.WithJournalRetention(-1, 5))
		var last *boxrun.Box
		for range 6 {
			last = mustCreate(t, m, boxrun.BoxSpec{})
		}
		if err := boxrun.MaintainForTest(ctx, m); err != nil {
			t.Fatal(err)
		}
		if n, err := boxrun.JournalLenForTest(ctx, m); err != nil || n != 5 {
			t.Fatalf("journal has %d entries (%v); want 5", n, err)
		}
		// The newest are kept: a replay from the start ends with the last box.
		sub, err := m.Subscribe(ctx, boxrun.EventFilter{Replay: true})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		var got []boxrun.Event
		for len(got) < 5 {
			select {
			case ev := <-sub.C():
				got = append(got, ev)
			case <-time.After(30 * time.Second):
				t.Fatalf("replay gave %d events", len(got))
			}
		}
		if got[4].BoxID != last.ID || got[0].Seq >= got[4].Seq {
			t.Fatalf("replay after trimming = %+v", got)
		}
	})
	t.Run("age", func(t *testing.T) {
		m := boxruntest.NewManager(t, boxrun.WithJournalRetention(time.Nanosecond, -1))
		mustCreate(t, m, boxrun.BoxSpec{})
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := boxrun.MaintainForTest(ctx, m); err != nil {
				t.Fatal(err)
			}
			n, err := boxrun.JournalLenForTest(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("journal still has %d entries past their age", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// A database made without auto-vacuum (an older BoxRun, the reference
// server) is converted on Open and keeps its rows.
func TestRetention_ConvertsOldDatabase(t *testing.T) {
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA journal_mode = DELETE;", "PRAGMA auto_vacuum = NONE;", "VACUUM;"} {
		stmt, _, err := conn.PrepareTransient(q)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stmt.Step(); err != nil {
			t.Fatal(q, err)
		}
		stmt.Finalize()
	}
	conn.Close()
	m = boxruntest.OpenManager(t, dir)
	defer m.Close()
	if mode, err := boxrun.PragmaForTest(ctxT(t), m, "PRAGMA auto_vacuum;"); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum = %d, %v after reopening an old database; want 2", mode, err)
	}
	if _, err := m.Get(ctxT(t), b.ID); err != nil {
		t.Fatal(err)
	}
}
