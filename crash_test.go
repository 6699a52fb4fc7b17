package boxrun_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// TestCrashChild is the child half of TestManager_CrashRecovery: it runs
// only when started by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("BOXRUN_CRASH_DIR")
	if dir == "" {
		t.Skip("child process of TestManager_CrashRecovery")
	}
	m := boxruntest.OpenManager(t, dir)
	ctx := context.Background()
	b, err := m.Create(ctx, boxrun.BoxSpec{Name: "crashy"})
	if err != nil {
		t.Fatal(err)
	}
	script := `i=0; while true; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); done`
	e, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error {
		if n++; n == 500 {
			fmt.Printf("READY %s %s\n", b.ID, e.ID)
		}
		return nil
	})
	select {} // wait to be killed
}

// TestManager_CrashRecovery kills a process mid-exec with SIGKILL and checks
// that reopening finds a consistent database: integrity ok, the exec failed
// with "server restarted", its events gapless and ended by one exit event.
func TestManager_CrashRecovery(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "BOXRUN_CRASH_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
				ready <- f[1:]
			}
		}
		close(ready)
	}()
	var ids []string
	select {
	case ids = <-ready:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child never got ready")
	}
	if ids == nil {
		t.Fatal("child exited before ready")
	}
	time.Sleep(100 * time.Millisecond) // let it be mid-write
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	boxID, execID := ids[0], ids[1]

	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"), sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA integrity_check;", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { integrity = stmt.ColumnText(0); return nil },
	}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if integrity != "ok" {
		t.Fatalf("integrity_check = %q", integrity)
	}

	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	ctx := ctxT(t)
	e, err := m.GetExec(ctx, execID)
	if err != nil || e.Status != boxrun.ExecFailed || e.ErrorMessage != "server restarted" || e.FinishedAt.IsZero() {
		t.Fatalf("exec after crash = %+v, %v", e, err)
	}
	var evs []boxrun.ExecEvent
	if err := m.ExecEvents(ctx, execID, -1, func(ev boxrun.ExecEvent) error { evs = append(evs, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(evs) < 500 {
		t.Fatalf("only %d events survived", len(evs))
	}
	for i, ev := range evs {
		if ev.Seq != int64(i) {
			t.Fatalf("event %d has seq %d: a torn write", i, ev.Seq)
		}
	}
	if info, ok := evs[len(evs)-1].Exit(); !ok || info.Error != "server restarted" || info.ExitCode != nil {
		t.Fatalf("last event = %+v", evs[len(evs)-1])
	}
	b, err := m.Get(ctx, boxID)
	if err != nil || (b.Status != boxrun.StatusRunning && b.Status != boxrun.StatusStopped) {
		t.Fatalf("box after crash = %+v, %v", b, err)
	}
	// Reopening again changes nothing more.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := boxruntest.OpenManager(t, dir)
	defer m2.Close()
	var again int
	_ = m2.ExecEvents(ctx, execID, -1, func(boxrun.ExecEvent) error { again++; return nil })
	if again != len(evs) {
		t.Fatalf("second reopen: %d events, want %d", again, len(evs))
	}
}
