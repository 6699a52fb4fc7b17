package gvisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/sandbox"
)

// counterLoop keeps a counter in a shell variable (memory) and writes it to
// /count every 50 ms; a restart would begin again at 1.
const counterLoop = `setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done' </dev/null >/dev/null 2>&1 &`

type driverT = *gvisor.Driver

// waitCount waits until /count in h is at least min.
func waitCount(t *testing.T, d driverT, h string, min int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := run(t, d, h, nil, "cat", "/count")
		if n, err := strconv.Atoi(strings.TrimSpace(out)); err == nil && n >= min {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter in %s did not reach %d (last %q)", h, min, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCheckpointRestoreKeepsMemoryAndFiles(t *testing.T) {
	d, dir := newDriver(t)
	if rootlessRefusesCheckpoint(t, d) {
		return
	}
	ctx := context.Background()
	h := create(t, d, sandbox.Spec{BoxID: "ckpt-src", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}})
	if _, _, code := run(t, d, h, nil, "sh", "-c", "echo kept > /data.txt && "+counterLoop); code != 0 {
		t.Fatalf("start loop: exit %d", code)
	}
	before := waitCount(t, d, h, 20)

	snap := filepath.Join(dir, "snap1")
	if err := d.Checkpoint(ctx, h, snap, sandbox.CheckpointOptions{}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if st, _ := d.State(ctx, h); st != sandbox.Stopped {
		t.Fatalf("source after checkpoint: %s, want stopped", st)
	}
	h2, err := d.Restore(ctx, snap, sandbox.Spec{BoxID: "ckpt-restored"})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if out, _, _ := run(t, d, h2, nil, "cat", "/data.txt"); out != "kept\n" {
		t.Fatalf("file after restore: %q", out)
	}
	// The loop continues from its saved value: not restarted at 1.
	after := waitCount(t, d, h2, before+5)
	t.Logf("counter %d at checkpoint, %d after restore", before, after)
	if info := d.DescribeBox(ctx, h2); info["agent"] != "connected" {
		t.Errorf("agent after restore: %v", info)
	}

	// The snapshot restores again, into an independent box.
	h3, err := d.Restore(ctx, snap, sandbox.Spec{BoxID: "ckpt-restored-2"})
	if err != nil {
		t.Fatalf("second restore: %v", err)
	}
	if _, _, code := run(t, d, h2, nil, "sh", "-c", "echo only-h2 > /fork.txt"); code != 0 {
		t.Fatal("write in h2")
	}
	if _, _, code := run(t, d, h3, nil, "test", "-e", "/fork.txt"); code == 0 {
		t.Error("a file written in one restored box is visible in another")
	}
	if _, err := os.Stat(filepath.Join(snap, "upper", "fork.txt")); err == nil {
		t.Error("a restored box wrote into its snapshot")
	}
	waitCount(t, d, h3, before+5)
	for _, x := range []string{h, h2, h3} {
		if err := d.Remove(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckpointLeaveRunning(t *testing.T) {
	d, dir := newDriver(t)
	if rootlessRefusesCheckpoint(t, d) {
		return
	}
	ctx := context.Background()
	h := create(t, d, sandbox.Spec{BoxID: "ckpt-live", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}})
	if _, _, code := run(t, d, h, nil, "sh", "-c", counterLoop); code != 0 {
		t.Fatal("start loop")
	}
	before := waitCount(t, d, h, 10)
	snap := filepath.Join(dir, "live")
	if err := d.Checkpoint(ctx, h, snap, sandbox.CheckpointOptions{LeaveRunning: true}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if st, _ := d.State(ctx, h); st != sandbox.Running {
		t.Fatalf("source after checkpoint --leave-running: %s", st)
	}
	waitCount(t, d, h, before+5)
	h2, err := d.Restore(ctx, snap, sandbox.Spec{BoxID: "ckpt-live-2"})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	waitCount(t, d, h2, before+5)
	for _, x := range []string{h, h2} {
		if err := d.Remove(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckpointBadInput(t *testing.T) {
	d, dir := newDriver(t)
	if rootlessRefusesCheckpoint(t, d) {
		return
	}
	ctx := context.Background()
	h := create(t, d, sandbox.Spec{BoxID: "ckpt-bad", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}})
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "stopped")
	if err := d.Checkpoint(ctx, h, snap, sandbox.CheckpointOptions{}); !errors.Is(err, boxapi.ErrConflict) {
		t.Errorf("checkpoint of a stopped sandbox: %v, want ErrConflict", err)
	}
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Errorf("refused checkpoint left %s", snap)
	}
	if err := d.Checkpoint(ctx, "0123456789abcdef", snap, sandbox.CheckpointOptions{}); !errors.Is(err, boxapi.ErrNotFound) {
		t.Errorf("checkpoint of an unknown handle: %v, want ErrNotFound", err)
	}
	if _, err := d.Restore(ctx, filepath.Join(dir, "nope"), sandbox.Spec{BoxID: "x"}); !errors.Is(err, boxapi.ErrNotFound) {
		t.Errorf("restore of a missing checkpoint: %v, want ErrNotFound", err)
	}
	if err := d.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
}

// rootlessRefusesCheckpoint: in rootless mode (TestRootless re-runs this
// package as uid 65534) checkpoint and restore are refused with
// ErrUnsupported, as documented; the test checks that and reports true.
func rootlessRefusesCheckpoint(t *testing.T, d *gvisor.Driver) bool {
	t.Helper()
	if os.Geteuid() == 0 {
		return false
	}
	err := d.Checkpoint(context.Background(), "any", filepath.Join(t.TempDir(), "snap"), sandbox.CheckpointOptions{})
	if !errors.Is(err, gvisor.ErrUnsupported) {
		t.Fatalf("rootless checkpoint: %v, want ErrUnsupported", err)
	}
	if _, err := d.Restore(context.Background(), t.TempDir(), sandbox.Spec{BoxID: "r"}); !errors.Is(err, gvisor.ErrUnsupported) {
		t.Fatalf("rootless restore: %v, want ErrUnsupported", err)
	}
	return true
}
