package gvisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrun/boxrun"
)

func TestDriver_Lifecycle(t *testing.T) {
	ctx := context.Background()
	d, dir := newDriver(t)
	rootfs := busyboxRootfs(t)
	img := &boxrun.Image{Ref: "busybox", Rootfs: rootfs}
	h := create(t, d, boxrun.SandboxSpec{BoxID: "life", Image: img, Workdir: "/work/dir"})

	if got, want := len(h), 16; got != want {
		t.Fatalf("handle %q: len %d, want %d", h, got, want)
	}
	if st, _ := d.State(ctx, h); st != boxrun.SandboxRunning {
		t.Fatalf("state after create = %s", st)
	}
	// The workdir was created, and is the default cwd.
	if out, _, _ := run(t, d, h, nil, "pwd"); out != "/work/dir\n" {
		t.Fatalf("pwd = %q", out)
	}
	if _, _, code := run(t, d, h, nil, "sh", "-c", "echo kept > /root/f && rm /bin/vi"); code != 0 {
		t.Fatalf("write: exit %d", code)
	}
	if err := d.Start(ctx, h); !errors.Is(err, boxrun.ErrConflict) {
		t.Fatalf("Start of a running box: %v, want ErrConflict", err)
	}

	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, h); st != boxrun.SandboxStopped {
		t.Fatalf("state after stop = %s", st)
	}
	if err := d.Stop(ctx, h); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := d.Exec(ctx, h, boxrun.ProcessSpec{Cmd: []string{"true"}}); !errors.Is(err, boxrun.ErrConflict) {
		t.Fatalf("exec in a stopped box: %v, want ErrConflict", err)
	}
	if mounts := mountsUnder(t, dir); len(mounts) != 0 {
		t.Fatalf("mounts left after stop: %v", mounts)
	}

	if err := d.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, d, h, nil, "sh", "-c", "cat /root/f; ls /bin/vi"); out != "kept\n" {
		t.Fatalf("after restart: %q", out)
	}
	// The image is untouched.
	if _, err := os.Lstat(filepath.Join(rootfs, "bin", "vi")); err != nil {
		t.Fatalf("image lost /bin/vi: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "root", "f")); err == nil {
		t.Fatal("box write reached the image")
	}

	if err := d.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, h); st != boxrun.SandboxMissing {
		t.Fatalf("state after remove = %s", st)
	}
	if err := d.Remove(ctx, h); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if err := d.Start(ctx, h); !errors.Is(err, boxrun.ErrNotFound) {
		t.Fatalf("start of a removed box: %v, want ErrNotFound", err)
	}
	assertNothingLeft(t, dir, h)
}

func TestDriver_Prune(t *testing.T) {
	ctx := context.Background()
	d, dir := newDriver(t)
	img := &boxrun.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	a := create(t, d, boxrun.SandboxSpec{BoxID: "a", Image: img})
	b := create(t, d, boxrun.SandboxSpec{BoxID: "b", Image: img})
	if err := d.Prune(ctx, []string{a}); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, a); st != boxrun.SandboxRunning {
		t.Fatalf("kept box: %s", st)
	}
	if st, _ := d.State(ctx, b); st != boxrun.SandboxMissing {
		t.Fatalf("pruned box: %s", st)
	}
	if out, _, _ := run(t, d, a, nil, "echo", "ok"); out != "ok\n" {
		t.Fatalf("kept box exec: %q", out)
	}
	assertNothingLeftOf(t, dir, b)
	if err := d.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, dir, a)
}

func TestDriver_NoImage(t *testing.T) {
	d, _ := newDriver(t)
	h := create(t, d, boxrun.SandboxSpec{BoxID: "empty"})
	// Only the helper is there.
	if _, stderr, code := run(t, d, h, nil, "/.boxrun/init", "nonsense"); code != 2 || !strings.Contains(stderr, "usage") {
		t.Fatalf("helper: exit %d, stderr %q", code, stderr)
	}
}

func TestNew_Errors(t *testing.T) {
	if _, err := gvisorNew(t, ""); !errors.Is(err, boxrun.ErrInvalid) {
		t.Fatalf("no Dir: %v", err)
	}
}
