package boxrun_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/internal/chaostest"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/sandbox"
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
	child := crashtest.Start(t, "TestCrashChild", []string{"BOXRUN_CRASH_DIR=" + dir}, "-test.v")
	f := child.MustAwait(t, "the child", "READY", 3, 60*time.Second)
	time.Sleep(100 * time.Millisecond) // let it be mid-write
	child.Kill()
	boxID, execID := f[1], f[2]

	if integrity := chaostest.Integrity(t, filepath.Join(dir, "boxrun.db")); integrity != "ok" {
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

// TestManager_RecoverInterruptedStart: a crash between the driver's Start
// of a stopped box and the update of its row (found by the gVisor
// TestChaos) left its sandbox running while the database says stopped.
// The next Open stops that sandbox: the box stays stopped, and Start
// starts it again.
func TestManager_RecoverInterruptedStart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	m := boxruntest.OpenManager(t, dir)
	b, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stop(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	m.Close()
	h := b.Handle
	if h == "" {
		t.Fatalf("box %+v has no handle", b)
	}
	// What the crashed Start did: the sandbox runs, the row is not updated.
	d := boxruntest.NewFakeDriver(filepath.Join(dir, "fake"))
	if err := d.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if got := chaostest.Handles(t, dir)[h]; got != boxapi.StatusStopped {
		t.Fatalf("status in the database: %q, want stopped", got)
	}

	m = boxruntest.OpenManager(t, dir)
	defer m.Close()
	if st, err := d.State(ctx, h); err != nil || st != sandbox.Stopped {
		t.Errorf("sandbox of the stopped box after the restart: %v %v, want stopped", st, err)
	}
	if got, err := m.Get(ctx, b.ID); err != nil || got.Status != boxapi.StatusStopped {
		t.Fatalf("box after the restart: %+v %v, want stopped", got, err)
	}
	if got, err := m.Start(ctx, b.ID); err != nil || got.Status != boxapi.StatusRunning {
		t.Errorf("Start after the restart: %+v %v", got, err)
	}
}
