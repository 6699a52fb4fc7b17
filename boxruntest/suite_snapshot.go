package boxruntest

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// testSnapshot: a driver that implements sandbox.Checkpointer saves a
// running sandbox with a counter loop and a file, and restores it twice
// (a fork): each restore has its own handle, its counter continues from
// the saved value (memory kept, not restarted), it has the saved file,
// and a file written in one restore is absent from the other and from
// the source, which keeps running (LeaveRunning). A checkpoint of a
// stopped sandbox wraps ErrConflict; a restore from a directory without a
// checkpoint fails and leaves nothing. Drivers without checkpoints (or
// with DriverHarness.NoCheckpoints) skip it.
func (s *suite) testSnapshot(t *testing.T) {
	cp, ok := s.d.(sandbox.Checkpointer)
	if !ok || s.h.NoCheckpoints {
		t.Skip("the driver has no checkpoints")
	}
	ctx := context.Background()
	h := s.create(t, "snap-src", "/")
	loop := `setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done' </dev/null >/dev/null 2>&1 &`
	if r := s.run(t, h, sh("/", "echo saved > /saved.txt && "+loop)); r.code != 0 {
		t.Fatalf("start the counter: %+v", r)
	}
	count := func(h string, min int) int {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			r := s.run(t, h, sandbox.ProcessSpec{Cmd: []string{"cat", "/count"}})
			if n, err := strconv.Atoi(strings.TrimSpace(r.stdout)); err == nil && n >= min {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("counter in %s did not reach %d (last %q)", h, min, r.stdout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	count(h, 10)
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := cp.Checkpoint(ctx, h, dir, sandbox.CheckpointOptions{LeaveRunning: true}); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	saved := count(h, 0) // the source runs on
	var forks []string
	for i := range 2 {
		f, err := cp.Restore(ctx, dir, sandbox.Spec{BoxID: "boxruntest-snap-fork" + strconv.Itoa(i)})
		if err != nil {
			t.Fatalf("Restore #%d: %v", i+1, err)
		}
		t.Cleanup(func() {
			if err := s.d.Remove(context.Background(), f); err != nil {
				t.Errorf("cleanup: Remove fork: %v", err)
			}
		})
		if f == h || (len(forks) > 0 && forks[0] == f) {
			t.Fatalf("Restore #%d reused a handle: %s", i+1, f)
		}
		forks = append(forks, f)
	}
	for _, f := range forks {
		// Continued, not restarted: the counter starts above 1 at once
		// and goes on.
		first := count(f, 1)
		if first < 5 {
			t.Errorf("restored counter starts at %d: restarted, not continued", first)
		}
		count(f, first+3)
		if r := s.run(t, f, sandbox.ProcessSpec{Cmd: []string{"cat", "/saved.txt"}}); r.stdout != "saved\n" {
			t.Errorf("saved file in a restore: %+v", r)
		}
	}
	if r := s.run(t, forks[0], sh("/", "echo mine > /fork0.txt")); r.code != 0 {
		t.Fatalf("write in a restore: %+v", r)
	}
	for _, other := range []string{forks[1], h} {
		if r := s.run(t, other, sandbox.ProcessSpec{Cmd: []string{"cat", "/fork0.txt"}}); r.code == 0 {
			t.Errorf("a file written in one restore shows in %s: %q", other, r.stdout)
		}
	}
	t.Logf("counter %d at the checkpoint, restores continue from it", saved)
	// Refusals.
	stopped := s.create(t, "snap-stopped", "/")
	if err := s.d.Stop(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	err := cp.Checkpoint(ctx, stopped, filepath.Join(t.TempDir(), "c2"), sandbox.CheckpointOptions{})
	if !errors.Is(err, boxapi.ErrConflict) {
		t.Errorf("Checkpoint of a stopped sandbox: %v, want ErrConflict", err)
	}
	if _, err := cp.Restore(ctx, t.TempDir(), sandbox.Spec{BoxID: "boxruntest-snap-none"}); err == nil {
		t.Error("Restore from a directory without a checkpoint succeeded")
	}
}
