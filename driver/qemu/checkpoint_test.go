package qemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/internal/testinet"
	"github.com/boxrun/boxrun/sandbox"
)

// TestDriver_Checkpoint: a checkpoint without LeaveRunning stops the box
// (its disk is kept: Start boots it again); a restore by a new Driver on
// the same Dir (as after a restart) continues the saved memory with the
// saved files and its own hostname; a checkpoint whose host facts no longer
// match (here the accelerator) is refused with ErrInvalid saying what
// changed, leaving nothing; a box with a volume is refused with
// ErrInvalid. It logs the checkpoint's size and times.
func TestDriver_Checkpoint(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	img := boxruntest.BusyboxImage(t)
	h, err := d.Create(ctx, sandbox.Spec{BoxID: "ckpt-src", Image: img, CPU: 1, MemoryMB: 256, Env: img.Config.Env})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(context.Background(), h)
	// Memory only (a shell variable in a process), and a file.
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c",
		"echo kept > /root/file; setsid sh -c 'v=in-memory; while true; do echo $v > /tmp/mem; sleep 0.1; done' </dev/null >/dev/null 2>&1 &"}}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, d, h, "in-memory\n", "cat", "/tmp/mem")
	ck := filepath.Join(t.TempDir(), "ck")
	start := time.Now()
	if err := d.Checkpoint(ctx, h, ck, sandbox.CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if st, err := d.State(ctx, h); err != nil || st != sandbox.Stopped {
		t.Fatalf("State after a checkpoint = %v, %v; want stopped", st, err)
	}
	t.Logf("checkpoint of a 256 MiB box: %v, state %s, disk copy %s", took, fileSize(t, filepath.Join(ck, "state")), fileSize(t, filepath.Join(ck, "disk.img")))

	// A new Driver restores (its template snapshot is not needed).
	d2, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	start = time.Now()
	f, err := d2.Restore(ctx, ck, sandbox.Spec{BoxID: "ckpt-fork"})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Remove(context.Background(), f)
	ready := time.Since(start)
	waitOutput(t, d2, f, "in-memory\n", "cat", "/tmp/mem")
	t.Logf("restore -> first exec: %v (restore %v)", time.Since(start), ready)
	if out, _, _ := run(t, d2, f, "", "cat", "/root/file"); out != "kept\n" {
		t.Errorf("saved file in the restore: %q", out)
	}
	if out, _, _ := run(t, d2, f, "", "hostname"); out != "ckpt-fork\n" {
		t.Errorf("hostname of the restore: %q, want ckpt-fork", out)
	}
	// The source starts again from its kept disk.
	if err := d2.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, d2, h, "", "cat", "/root/file"); out != "kept\n" {
		t.Errorf("source's file after Start: %q", out)
	}

	// Another accelerator: refused, nothing left.
	raw, err := os.ReadFile(filepath.Join(ck, "box.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	meta["host"].(map[string]any)["accel"] = "other"
	raw, _ = json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(ck, "box.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(filepath.Join(dir, "boxes"))
	_, err = d2.Restore(ctx, ck, sandbox.Spec{BoxID: "ckpt-bad"})
	if !errors.Is(err, boxapi.ErrInvalid) || !strings.Contains(err.Error(), "accelerator") {
		t.Errorf("Restore with another accelerator: %v, want ErrInvalid naming it", err)
	}
	if after, _ := os.ReadDir(filepath.Join(dir, "boxes")); len(after) != len(before) {
		t.Errorf("a refused restore left a box: %d boxes, want %d", len(after), len(before))
	}

	// A box with a volume cannot migrate.
	vol := t.TempDir()
	hv, err := d2.Create(ctx, sandbox.Spec{BoxID: "ckpt-vol", Image: img, CPU: 1, MemoryMB: 256,
		Volumes: []boxapi.Volume{{HostPath: vol, GuestPath: "/data"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Remove(context.Background(), hv)
	vdir := filepath.Join(t.TempDir(), "cv")
	err = d2.Checkpoint(ctx, hv, vdir, sandbox.CheckpointOptions{LeaveRunning: true})
	if !errors.Is(err, boxapi.ErrInvalid) || !strings.Contains(err.Error(), "volumes") {
		t.Errorf("Checkpoint of a box with a volume: %v, want ErrInvalid", err)
	}
	if _, err := os.Stat(vdir); err == nil {
		t.Error("a refused checkpoint left its directory")
	}
	if st, _ := d2.State(ctx, hv); st != sandbox.Running {
		t.Errorf("box with a volume after a refused checkpoint: %v", st)
	}
}

// TestNetworkCheckpoint: a networked box checkpointed (LeaveRunning) and
// restored: the restore has a network of its own (another address and
// tap), reaches the allowed name through its own resolver, and the source
// keeps its network. Removing the restore leaves no network behind.
func TestNetworkCheckpoint(t *testing.T) {
	requireQEMU(t)
	in := testinet.New(t)
	dir := t.TempDir()
	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(t), Logger: testLogger(t), DNS: []string{in.DNS}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	img := boxruntest.BusyboxImage(t)
	h, err := d.Create(ctx, sandbox.Spec{BoxID: "ckpt-net", Image: img, CPU: 1, MemoryMB: 256, Env: img.Config.Env, Network: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(context.Background(), h)
	wget := []string{"timeout", "10", "wget", "-q", "-O", "-", "http://" + testinet.AllowedName + "/"}
	if out, _, code := run(t, d, h, "", wget...); code != 0 || strings.TrimSpace(out) != in.Body {
		t.Fatalf("source before the checkpoint: %q, exit %d", out, code)
	}
	ck := filepath.Join(t.TempDir(), "ck")
	if err := d.Checkpoint(ctx, h, ck, sandbox.CheckpointOptions{LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	f, err := d.Restore(ctx, ck, sandbox.Spec{BoxID: "ckpt-net-fork"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := d.NetInfo(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	fork, err := d.NetInfo(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if fork.Address == "" || fork.Address == src.Address {
		t.Errorf("restore's address %q, source's %q: want one of its own", fork.Address, src.Address)
	}
	if out, _, _ := run(t, d, f, "", "ip", "-o", "-4", "addr"); !strings.Contains(out, fork.Address+"/30") {
		t.Errorf("restore's interfaces %q lack its address %s", out, fork.Address)
	}
	for _, b := range []string{f, h} {
		if out, _, code := run(t, d, b, "", wget...); code != 0 || strings.TrimSpace(out) != in.Body {
			t.Errorf("box %s after the checkpoint: %q, exit %d", b, out, code)
		}
	}
	if err := d.Remove(ctx, f); err != nil {
		t.Fatal(err)
	}
	boxruntest.AssertNoNetworkLeft(t, f)
}

// waitOutput runs cmd in box h until its stdout is want (2 minutes).
func waitOutput(t *testing.T, d sandbox.Driver, h, want string, cmd ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _, _ := run(t, d, h, "", cmd...)
		if out == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v in %s: %q, want %q", cmd, h, out, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fileSize reports the size of p and the space it takes (sparse files).
func fileSize(t *testing.T, p string) string {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	used := st.Sys().(*syscall.Stat_t).Blocks * 512
	return fmt.Sprintf("%.1f MB (%.1f MB allocated)", float64(st.Size())/1e6, float64(used)/1e6)
}
