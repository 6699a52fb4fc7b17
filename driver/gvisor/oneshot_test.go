package gvisor_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// TestOneShot runs commands as a one-shot box's first process: output,
// exit code, env and user as an exec's, a missing program as a start
// error, SIGKILL ending the box, and Remove leaving nothing behind.
func TestOneShot(t *testing.T) {
	testenv.NeedRoot(t) // rootless, Run takes the generic path (create + exec)
	d, dir := newDriver(t)
	ctx := context.Background()
	spec := sandbox.Spec{BoxID: "box_oneshot", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}, CPU: 1, MemoryMB: 256, Workdir: "/root", Env: []string{"A=box"}}
	run := func(cmd []string, env ...string) (string, string, int, error, string) {
		t.Helper()
		var out, errb bytes.Buffer
		h, p, err := d.OneShot(ctx, spec, sandbox.ProcessSpec{Cmd: cmd, Env: env, Stdout: &out, Stderr: &errb})
		if err != nil {
			t.Fatal(err)
		}
		code, werr := p.Wait()
		if err := d.Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
		assertNothingLeftOf(t, dir, h)
		return out.String(), errb.String(), code, werr, h
	}
	out, errs, code, err, _ := run([]string{"sh", "-c", "echo hi $A $B; pwd; id -u; echo oops >&2; exit 3"}, "B=exec")
	if err != nil || code != 3 || out != "hi box exec\n/root\n0\n" || errs != "oops\n" {
		t.Fatalf("run: %q %q %d %v", out, errs, code, err)
	}
	_, errs, code, err, _ = run([]string{"/no/such"})
	if !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("missing program: code %d err %v stderr %q", code, err, errs)
	}

	// SIGKILL ends a running box.
	var out2 boxruntest.SyncBuffer
	h, p, err := d.OneShot(ctx, spec, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo up; sleep 60"}, Stdout: &out2})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out2.String(), "up") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := p.Signal(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code, err = p.Wait()
	if err != nil || code != 137 || time.Since(start) > 10*time.Second {
		t.Fatalf("killed: %d %v after %v", code, err, time.Since(start))
	}
	if err := d.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	assertNothingLeftOf(t, dir, h)
}
