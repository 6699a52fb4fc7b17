package boxrun_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/internal/testenv"
)

// collect replays every event of an exec.
func collect(t *testing.T, m *boxrun.Manager, execID string, after int64) []boxrun.ExecEvent {
	t.Helper()
	var evs []boxrun.ExecEvent
	if err := m.ExecEvents(ctxT(t), execID, after, func(ev boxrun.ExecEvent) error { evs = append(evs, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	return evs
}

func streams(evs []boxrun.ExecEvent) (stdout, stderr string) {
	var o, e strings.Builder
	for _, ev := range evs {
		if ev.Kind == boxrun.KindLog && ev.Stream == "stderr" {
			e.WriteString(ev.Data)
		} else if ev.Kind == boxrun.KindLog {
			o.WriteString(ev.Data)
		}
	}
	return o.String(), e.String()
}

// A large output replays whole, in order, from any seq, with seqs gapless
// and the exit last, both while stored in the log and after reopening.
func TestOutput_ReplayFromAnySeq(t *testing.T) {
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	script := `i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done; echo done >&2`
	var live strings.Builder
	e, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", script}}, &live, nil)
	if err != nil || e.Status != boxrun.ExecSucceeded {
		t.Fatal(e, err)
	}
	check := func(m *boxrun.Manager) {
		evs := collect(t, m, e.ID, -1)
		for i, ev := range evs {
			if ev.Seq != int64(i) {
				t.Fatalf("event %d has seq %d", i, ev.Seq)
			}
		}
		if last := evs[len(evs)-1]; last.Kind != boxrun.KindExit {
			t.Fatalf("last event = %+v", last)
		}
		out, errOut := streams(evs)
		if out != live.String() || errOut != "done\n" {
			t.Fatalf("replayed %d/%q bytes, want %d/done", len(out), errOut, live.Len())
		}
		for _, after := range []int64{0, int64(len(evs) / 2), int64(len(evs) - 2)} {
			tail := collect(t, m, e.ID, after)
			if len(tail) != len(evs)-int(after)-1 || tail[0].Seq != after+1 {
				t.Fatalf("after %d: %d events from seq %d", after, len(tail), tail[0].Seq)
			}
		}
	}
	check(m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = boxruntest.OpenManager(t, dir)
	defer m.Close()
	check(m)
	// Removing the box removes its output log.
	if err := m.Remove(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "output", e.ID+".log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("output log after remove: %v", err)
	}
}

// Past the per-exec cap, output is dropped after a stderr marker event; the
// process runs on and its exit status is kept.
func TestOutput_Cap(t *testing.T) {
	m := boxruntest.NewManager(t, boxrun.WithOutputLimit(1000))
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	e, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "yes 0123456789 | head -c 100000; exit 3"}}, nil, nil)
	if err != nil || e.Status != boxrun.ExecFailed || e.ExitCode == nil || *e.ExitCode != 3 {
		t.Fatal(e, err)
	}
	evs := collect(t, m, e.ID, -1)
	out, errOut := streams(evs)
	if len(out) != 1000 || !strings.HasPrefix(out, "0123456789\n") {
		t.Fatalf("stored stdout = %d bytes", len(out))
	}
	if !strings.Contains(errOut, "output truncated") || !strings.Contains(errOut, "1000 bytes") {
		t.Fatalf("no truncation marker: stderr %q", errOut)
	}
	if _, err := boxrun.Open(t.TempDir(), boxrun.WithDriver(boxruntest.NewFakeDriver(t.TempDir())), boxrun.WithOutputLimit(-1)); !errors.Is(err, boxrun.ErrInvalid) {
		t.Fatalf("negative limit: %v", err)
	}
}

// When output cannot be stored (the disk is full), the exec fails with the
// reason, its process is killed, and what live readers saw is exactly what
// a replay returns.
func TestOutput_StorageErrorFailsExec(t *testing.T) {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "output")
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", out).CombinedOutput(); err != nil {
		testenv.Skip(t, "cannot mount tmpfs: "+string(b))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", out).Run() })
	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	e, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "yes 0123456789abcdef | head -c 4000000; sleep 30"}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var live []boxrun.ExecEvent
	if err := m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error {
		mu.Lock()
		live = append(live, ev)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := m.GetExec(ctx, e.ID)
	if err != nil || got.Status != boxrun.ExecFailed || !strings.HasPrefix(got.ErrorMessage, "output storage failed: ") {
		t.Fatalf("exec = %+v, %v", got, err)
	}
	replayed := collect(t, m, e.ID, -1)
	lo, _ := streams(live)
	ro, _ := streams(replayed)
	if len(live) != len(replayed) || lo != ro || len(lo) == 0 || len(lo) >= 4000000 {
		t.Fatalf("live %d events/%d bytes, replay %d events/%d bytes", len(live), len(lo), len(replayed), len(ro))
	}
	if info, ok := replayed[len(replayed)-1].Exit(); !ok || !strings.HasPrefix(info.Error, "output storage failed") {
		t.Fatalf("exit = %+v", replayed[len(replayed)-1])
	}
}

// Open removes output logs the database does not know.
func TestOutput_OrphanLogRemoved(t *testing.T) {
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(dir, "output", "exec_0123456789ab.log")
	if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = boxruntest.OpenManager(t, dir)
	defer m.Close()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan log still there: %v", err)
	}
}
