package gvisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

func TestDriver_Lifecycle(t *testing.T) {
	ctx := context.Background()
	d, dir := newDriver(t)
	rootfs := busyboxRootfs(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: rootfs}
	h := create(t, d, sandbox.Spec{BoxID: "life", Image: img, Workdir: "/work/dir"})

	if got, want := len(h), 16; got != want {
		t.Fatalf("handle %q: len %d, want %d", h, got, want)
	}
	if st, _ := d.State(ctx, h); st != sandbox.Running {
		t.Fatalf("state after create = %s", st)
	}
	// The workdir was created, and is the default cwd.
	if out, _, _ := run(t, d, h, nil, "pwd"); out != "/work/dir\n" {
		t.Fatalf("pwd = %q", out)
	}
	if _, _, code := run(t, d, h, nil, "sh", "-c", "echo kept > /root/f && rm /bin/vi"); code != 0 {
		t.Fatalf("write: exit %d", code)
	}
	if err := d.Start(ctx, h); !errors.Is(err, boxapi.ErrConflict) {
		t.Fatalf("Start of a running box: %v, want ErrConflict", err)
	}

	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, h); st != sandbox.Stopped {
		t.Fatalf("state after stop = %s", st)
	}
	if err := d.Stop(ctx, h); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"true"}}); !errors.Is(err, boxapi.ErrConflict) {
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
	if st, _ := d.State(ctx, h); st != sandbox.Missing {
		t.Fatalf("state after remove = %s", st)
	}
	if err := d.Remove(ctx, h); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if err := d.Start(ctx, h); !errors.Is(err, boxapi.ErrNotFound) {
		t.Fatalf("start of a removed box: %v, want ErrNotFound", err)
	}
	assertNothingLeft(t, dir, h)
}

func TestDriver_Prune(t *testing.T) {
	ctx := context.Background()
	d, dir := newDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	a := create(t, d, sandbox.Spec{BoxID: "a", Image: img})
	b := create(t, d, sandbox.Spec{BoxID: "b", Image: img})
	if err := d.Prune(ctx, []string{a}); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, a); st != sandbox.Running {
		t.Fatalf("kept box: %s", st)
	}
	if st, _ := d.State(ctx, b); st != sandbox.Missing {
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
	h := create(t, d, sandbox.Spec{BoxID: "empty"})
	// Only the helper is there.
	if _, stderr, code := run(t, d, h, nil, "/.boxrun/init", "nonsense"); code != 2 || !strings.Contains(stderr, "usage") {
		t.Fatalf("helper: exit %d, stderr %q", code, stderr)
	}
}

func TestNew_Errors(t *testing.T) {
	if _, err := gvisorNew(t, ""); !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("no Dir: %v", err)
	}
}

// TestDriver_SandboxDied kills the sandbox process from outside (as the
// host OOM killer does): State says stopped at once, although the dead
// process stays a zombie until its reaper gets to it (G6); a running exec
// ends with an error; Start brings the box back with its files.
func TestDriver_SandboxDied(t *testing.T) {
	ctx := context.Background()
	d, dir := newDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "died", Image: img})
	run(t, d, h, nil, "sh", "-c", "echo before > /root/f")
	p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	state, err := os.ReadFile(filepath.Join(dir, "run", h+"_sandbox:"+h+".state"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Sandbox struct{ Pid int } `json:"sandbox"`
	}
	if err := json.Unmarshal(state, &st); err != nil || st.Sandbox.Pid <= 0 {
		t.Fatalf("state file: %v %+v", err, st)
	}
	if err := syscall.Kill(st.Sandbox.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s, _ := d.State(ctx, h); return s == sandbox.Stopped })
	if _, err := p.Wait(); !errors.Is(err, boxapi.ErrRuntime) {
		t.Fatalf("Wait of an exec in a dead sandbox: %v, want ErrRuntime", err)
	}
	if err := d.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, d, h, nil, "cat", "/root/f"); out != "before\n" {
		t.Fatalf("after restart: %q", out)
	}
}

// TestDriver_CreateFails checks that a Create that fails, in the driver or
// in runsc, leaves nothing behind.
func TestDriver_CreateFails(t *testing.T) {
	ctx := context.Background()
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	t.Run("WorkdirIsAFile", func(t *testing.T) {
		d, dir := newDriver(t)
		if _, err := d.Create(ctx, sandbox.Spec{BoxID: "bad", Image: img, Workdir: "/bin/busybox/x"}); err == nil {
			t.Fatal("Create succeeded")
		}
		assertNothingLeft(t, dir)
	})
	t.Run("InitNotExecutable", func(t *testing.T) {
		bogus := filepath.Join(t.TempDir(), "init")
		os.WriteFile(bogus, []byte("not a program"), 0o755)
		dir := filepath.Join(t.TempDir(), "gvisor")
		rec := &handleRecorder{}
		d, err := gvisor.New(gvisor.Config{Dir: dir, InitPath: bogus, Logger: slog.New(rec)})
		if err != nil {
			testenv.Skip(t, err.Error())
		}
		defer d.Close()
		_, err = d.Create(ctx, sandbox.Spec{BoxID: "bad", Image: img})
		if !errors.Is(err, boxapi.ErrRuntime) {
			t.Fatalf("Create: %v, want ErrRuntime", err)
		}
		if len(rec.handles()) != 1 {
			t.Fatalf("handles logged: %v", rec.handles())
		}
		assertNothingLeft(t, dir, rec.handles()...)
	})
}

// TestDriver_StopGraceful checks that Stop sends SIGTERM to every process
// of the box and waits for them (up to StopGrace) before the sandbox goes.
func TestDriver_StopGraceful(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "gvisor")
	d, err := gvisor.New(gvisor.Config{Dir: dir, StopGrace: 1500 * time.Millisecond})
	if errors.Is(err, gvisor.ErrUnsupported) {
		testenv.Skip(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Prune(ctx, nil)
		assertNothingLeft(t, dir)
	}()
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "grace", Image: img})
	// One process saves its work on TERM (slowly), one ignores TERM.
	var out boxruntest.SyncBuffer
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "trap 'sleep 0.3; echo saved > /root/saved; exit 0' TERM; echo ready; while :; do sleep 0.05; done"}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	var out2 boxruntest.SyncBuffer
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"}, Stdout: &out2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return strings.Contains(out.String(), "ready") && strings.Contains(out2.String(), "ready")
	})
	start := time.Now()
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	// The grace is honored (a process that ignores TERM holds the stop for
	// it); the upper bound only catches a hang, as a loaded machine may be
	// seconds late.
	if el < 1400*time.Millisecond || el > 30*time.Second {
		t.Errorf("Stop took %v; want the 1.5s grace and no hang (one process ignores TERM)", el)
	}
	if err := d.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, d, h, nil, "cat", "/root/saved"); out != "saved\n" {
		t.Fatalf("the TERM handler's file: %q", out)
	}
}

// TestDriver_Parallel creates, uses and removes boxes concurrently.
func TestDriver_Parallel(t *testing.T) {
	ctx := context.Background()
	d, dir := newDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			h, err := d.Create(ctx, sandbox.Spec{BoxID: "par", Image: img, MemoryMB: 128})
			if err != nil {
				t.Error(err)
				return
			}
			want := strconv.Itoa(i)
			if out, _, _ := run(t, d, h, nil, "echo", want); out != want+"\n" {
				t.Errorf("box %d: %q", i, out)
			}
			if i%2 == 0 {
				if err := d.Stop(ctx, h); err != nil {
					t.Error(err)
				}
			}
			if err := d.Remove(ctx, h); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	assertNothingLeft(t, dir)
}
