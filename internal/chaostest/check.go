package chaostest

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/client"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Integrity returns the result of PRAGMA integrity_check on the database
// file db ("ok" when it is whole).
func Integrity(t testing.TB, db string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(db, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var s string
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA integrity_check;", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { s += stmt.ColumnText(0); return nil },
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Handles returns the driver handles the database in dir records (every
// box row's) with their box's status.
func Handles(t testing.TB, dir string) map[string]boxapi.BoxStatus {
	t.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"), sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	handles := map[string]boxapi.BoxStatus{}
	if err := sqlitex.ExecuteTransient(conn, "SELECT boxlite_id, status FROM boxes WHERE boxlite_id IS NOT NULL AND boxlite_id != '';", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			handles[stmt.ColumnText(0)] = boxapi.BoxStatus(stmt.ColumnText(1))
			return nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	return handles
}

// check checks the restarted server's state (see the package doc).
func check(t *testing.T, cfg *Config, c *client.Client, ack *acked, fig *Figures) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cfg.Orphans != nil {
		checkOrphans(t, cfg, fig)
	}
	boxes, err := c.List(ctx, boxapi.BoxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Workload.withDefaults()
	for _, b := range boxes {
		if b.Status == boxapi.StatusRunning {
			checkAlive(t, c, b.ID, fig)
		}
		execs, err := c.ListExecs(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range execs {
			switch {
			case e.Status == boxapi.ExecRunning:
				fig.Running++
				t.Errorf("exec %s still running after the restart", e.ID)
			case e.Status == boxapi.ExecFailed && e.ErrorMessage == "":
				fig.FailedNoReason++
				t.Errorf("exec %s failed without a reason", e.ID)
			case e.Status == boxapi.ExecSucceeded && len(e.Cmd) == 3 && e.Cmd[2] == w.script() && !ack.whole[e.ID]:
				// A workload exec that succeeded has all its output.
				ack.whole[e.ID] = true
				fig.CheckedWhole++
				var got strings.Builder
				err := c.ExecEvents(ctx, e.ID, -1, func(ev boxapi.ExecEvent) error {
					if ev.Kind == boxapi.KindLog {
						got.WriteString(ev.Data)
					}
					return nil
				})
				if err != nil || got.String() != w.output() {
					fig.BadOutput++
					t.Errorf("exec %s succeeded with %d bytes of output, want %d: %v", e.ID, got.Len(), len(w.output()), err)
				}
			}
		}
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()
	for execID, chunks := range ack.chunks {
		got := map[int64]string{}
		err := c.ExecEvents(ctx, execID, -1, func(ev boxapi.ExecEvent) error {
			if ev.Kind == boxapi.KindLog {
				got[ev.Seq] = ev.Data
			}
			return nil
		})
		if code := boxapi.ErrorCode(err); code == boxapi.CodeExecNotFound || code == boxapi.CodeBoxNotFound {
			delete(ack.chunks, execID) // its box was removed
			continue
		}
		if err != nil {
			t.Fatalf("replay %s: %v", execID, err)
		}
		for seq, data := range chunks {
			fig.CheckedChunks++
			if got[seq] != data {
				fig.LostChunks++
				t.Errorf("exec %s: acknowledged chunk %d %q replays as %q", execID, seq, data, got[seq])
			}
		}
		delete(ack.chunks, execID) // checked once: it is finished now
	}
}

// checkOrphans polls cfg.Orphans against the database's handles until it
// lists nothing or cfg.Settle passed; what is left then is an orphan.
func checkOrphans(t *testing.T, cfg *Config, fig *Figures) {
	t.Helper()
	start := time.Now()
	var left []string
	for {
		left = cfg.Orphans(Handles(t, cfg.Dir))
		if len(left) == 0 || time.Since(start) > cfg.Settle {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fig.MaxSettle = max(fig.MaxSettle, time.Since(start))
	for _, o := range left {
		fig.Orphans++
		t.Errorf("after restart %d, %s left: %s", fig.Restarts, cfg.Settle, o)
	}
}

// checkAlive checks that a box the restarted server reports running runs
// an exec to its end (within 30 s).
func checkAlive(t *testing.T, c *client.Client, box string, fig *Figures) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	e, err := c.Exec(ctx, box, boxapi.ExecRequest{Cmd: []string{"echo", "alive"}}, &out, io.Discard)
	if err == nil && e.Status == boxapi.ExecSucceeded && e.ExitCode != nil && *e.ExitCode == 0 && out.String() == "alive\n" {
		return
	}
	fig.DeadBoxes++
	if e != nil {
		t.Errorf("running box %s after restart %d: exec %+v, output %q: %v", box, fig.Restarts, *e, out.String(), err)
	} else {
		t.Errorf("running box %s after restart %d: exec: %v", box, fig.Restarts, err)
	}
}
