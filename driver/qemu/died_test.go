package qemu_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/sandbox"
)

// TestDriver_VMDies kills a box's QEMU behind the driver's back: running
// execs end with an error, the box reads as stopped, Exec fails with
// ErrConflict, and Start boots the same disk again. Then a new Driver on the
// same directory (a clean restart) reaches the box.
func TestDriver_VMDies(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	// Cold boots here, so that the cold path is tested too.
	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agent.get(t), ColdBoot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	img := boxruntest.BusyboxImage(t)
	h, err := d.Create(ctx, sandbox.Spec{BoxID: "dies", Image: img, CPU: 1, MemoryMB: 256, DiskSizeGB: 1,
		Workdir: "/root", Env: img.Config.Env})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(context.Background(), h)
	if _, _, code := run(t, d, h, "", "sh", "-c", "echo kept > /root/kept && sync"); code != 0 {
		t.Fatalf("write: code %d", code)
	}
	sleeper, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "boxes", h, "qemu.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { _, err := sleeper.Wait(); waited <- err }()
	select {
	case err := <-waited:
		if err == nil {
			t.Error("Wait of an exec whose VM died returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return after the VM died")
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		st, err := d.State(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if st == sandbox.Stopped {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("State = %v after QEMU was killed", st)
		}
	}
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"true"}}); !errors.Is(err, boxapi.ErrConflict) {
		t.Errorf("Exec in a dead box: %v, want ErrConflict", err)
	}
	if err := d.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	// A clean restart of the host side reaches the same box.
	d.Close()
	d2 := newDriver(t, agent.get(t), dir)
	defer d2.Close()
	if out, _, _ := run(t, d2, h, "", "cat", "/root/kept"); out != "kept\n" {
		t.Errorf("after restart: %q, want the file written before the crash", out)
	}
	if err := d2.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, dir, h)
}
