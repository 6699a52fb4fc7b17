package boxruntest_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/sandbox"
)

func TestFakeDriver(t *testing.T) {
	// Registered first, so it runs after the suite's own cleanups.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	boxruntest.TestDriver(t, boxruntest.DriverHarness{
		New:           func(t *testing.T) sandbox.Driver { return boxruntest.NewFakeDriver(t.TempDir()) },
		UserImage:     boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
		HostProcesses: true,
	})
}

func TestFakeDriver_SlowConsumer(t *testing.T) {
	d := boxruntest.NewFakeDriver(t.TempDir())
	h := mustCreate(t, d, sandbox.Spec{Workdir: "/root"})
	// The writer is slower than the drain window: output written before the
	// process exited must still arrive in full.
	w := &slowWriter{delay: 60 * time.Millisecond}
	p, err := d.Exec(t.Context(), h, sandbox.ProcessSpec{Cmd: []string{"head", "-c", "300000", "/dev/zero"}, Dir: "/root", Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v", code, err)
	}
	if got, want := w.n.Load(), int64(300000); got != want {
		t.Errorf("got %d bytes, want %d", got, want)
	}
}

func TestFakeDriver_Reopen(t *testing.T) {
	dir := t.TempDir()
	d1 := boxruntest.NewFakeDriver(dir)
	h := mustCreate(t, d1, sandbox.Spec{Workdir: "/root"})
	d2 := boxruntest.NewFakeDriver(dir)
	if st, err := d2.State(t.Context(), h); st != sandbox.Running || err != nil {
		t.Fatalf("State from a new driver = %q, %v", st, err)
	}
	if err := d2.Stop(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if st, _ := d1.State(t.Context(), h); st != sandbox.Stopped {
		t.Errorf("State = %q after Stop by the other driver", st)
	}
}

func TestFakeDriver_Errors(t *testing.T) {
	d := boxruntest.NewFakeDriver(t.TempDir())
	ctx := t.Context()
	h := mustCreate(t, d, sandbox.Spec{Workdir: "/root"})
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	spec := sandbox.ProcessSpec{Cmd: []string{"true"}, Dir: "/root"}
	if _, err := d.Exec(ctx, h, spec); !errors.Is(err, boxrun.ErrConflict) {
		t.Errorf("Exec in stopped box: %v, want ErrConflict", err)
	}
	if _, err := d.Exec(ctx, "fake-missing", spec); !errors.Is(err, boxrun.ErrNotFound) {
		t.Errorf("Exec in missing box: %v, want ErrNotFound", err)
	}
	if err := d.Start(ctx, "fake-missing"); !errors.Is(err, boxrun.ErrNotFound) {
		t.Errorf("Start of missing box: %v, want ErrNotFound", err)
	}
	if err := d.CopyIn(ctx, "fake-missing", "/root", strings.NewReader("")); !errors.Is(err, boxrun.ErrNotFound) {
		t.Errorf("CopyIn to missing box: %v, want ErrNotFound", err)
	}
	if err := d.CopyIn(ctx, h, "relative", strings.NewReader("")); !errors.Is(err, boxrun.ErrInvalid) {
		t.Errorf("CopyIn to a relative path: %v, want ErrInvalid", err)
	}
	if _, err := d.Create(ctx, sandbox.Spec{Workdir: "relative"}); !errors.Is(err, boxrun.ErrInvalid) {
		t.Errorf("Create with a relative workdir: %v, want ErrInvalid", err)
	}
}

// TestFakeDriver_EscapeStaysInBox checks on the host that a symlink escape
// attempt wrote nothing outside the box directory.
func TestFakeDriver_EscapeStaysInBox(t *testing.T) {
	dir := t.TempDir()
	d := boxruntest.NewFakeDriver(filepath.Join(dir, "driver"))
	h := mustCreate(t, d, sandbox.Spec{Workdir: "/root"})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../..", Mode: 0o777})
	_ = tw.WriteHeader(&tar.Header{Name: "up/escaped", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	if err := d.CopyIn(t.Context(), h, "/root", &buf); !errors.Is(err, boxrun.ErrInvalid) {
		t.Fatalf("CopyIn = %v, want ErrInvalid", err)
	}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Name() == "escaped" {
			t.Errorf("escaped file written at %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFakeDriver_Volume(t *testing.T) {
	host := t.TempDir()
	d := boxruntest.NewFakeDriver(t.TempDir())
	h := mustCreate(t, d, sandbox.Spec{Workdir: "/root", Volumes: []boxrun.Volume{{HostPath: host, GuestPath: "/mnt/vol"}}})
	p, err := d.Exec(t.Context(), h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo v > f"}, Dir: "/mnt/vol"})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v", code, err)
	}
	if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "v\n" {
		t.Errorf("volume file: %q, %v", b, err)
	}
}

func TestFakeDriver_PruneKeepsForeignEntries(t *testing.T) {
	dir := t.TempDir()
	d := boxruntest.NewFakeDriver(dir)
	h := mustCreate(t, d, sandbox.Spec{Workdir: "/root"})
	foreign := filepath.Join(dir, "boxes", "not-a-fake-box")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Prune(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(t.Context(), h); st != sandbox.Missing {
		t.Errorf("State after Prune = %q", st)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("foreign entry: %v", err)
	}
}

func TestBusyboxImage(t *testing.T) {
	img := boxruntest.BusyboxImage(t)
	if img.Ref != "busybox-test" || !slices.Contains(img.Config.Env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin") {
		t.Errorf("image = %+v", img)
	}
	for name, want := range map[string]string{"bin/sh": "busybox", "bin/cat": "busybox", "bin/sha256sum": "busybox"} {
		if got, err := os.Readlink(filepath.Join(img.Rootfs, name)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want -> %s", name, got, err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(img.Rootfs, "bin/busybox")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/busybox: %v, %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(img.Rootfs, "etc/passwd")); err != nil || !strings.HasPrefix(string(b), "root:x:0:0:") {
		t.Errorf("etc/passwd: %q, %v", b, err)
	}
	for _, d := range []string{"root", "tmp"} {
		if fi, err := os.Stat(filepath.Join(img.Rootfs, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	// The applet symlinks work (busybox dispatches on argv[0]).
	out, err := exec.Command(filepath.Join(img.Rootfs, "bin/echo"), "hi").Output()
	if err != nil || string(out) != "hi\n" {
		t.Errorf("bin/echo hi: %q, %v", out, err)
	}
	// A second call reuses the cached rootfs.
	if again := boxruntest.BusyboxImage(t); again.Rootfs != img.Rootfs {
		t.Errorf("second call built %s, first %s", again.Rootfs, img.Rootfs)
	}
}

func mustCreate(t *testing.T, d sandbox.Driver, spec sandbox.Spec) string {
	t.Helper()
	h, err := d.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Remove(context.Background(), h) })
	return h
}

// slowWriter counts bytes, sleeping delay on each write.
type slowWriter struct {
	delay time.Duration
	n     atomic.Int64
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// TestFakeDriver_StrayChildren checks that Stop and Remove kill background
// children that outlived their parent, also outside its process group.
func TestFakeDriver_StrayChildren(t *testing.T) {
	d := boxruntest.NewFakeDriver(t.TempDir())
	for _, op := range []string{"Stop", "Remove"} {
		t.Run(op, func(t *testing.T) {
			h := mustCreate(t, d, sandbox.Spec{Workdir: "/root"})
			var out bytes.Buffer
			p, err := d.Exec(t.Context(), h, sandbox.ProcessSpec{
				Cmd: []string{"sh", "-c", "sleep 30 & echo $!; setsid sleep 30 & echo $!"}, Dir: "/root", Stdout: &out,
			})
			if err != nil {
				t.Fatal(err)
			}
			if code, err := p.Wait(); code != 0 || err != nil {
				t.Fatalf("Wait = %d, %v", code, err)
			}
			var pids []int
			for _, f := range strings.Fields(out.String()) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("output %q", out.String())
				}
				pids = append(pids, pid)
			}
			if len(pids) != 2 {
				t.Fatalf("output %q", out.String())
			}
			switch op {
			case "Stop":
				err = d.Stop(t.Context(), h)
			case "Remove":
				err = d.Remove(t.Context(), h)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, pid := range pids {
				if !gone(pid, 5*time.Second) {
					t.Errorf("background child %d still alive after %s", pid, op)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
	}
}

// gone reports whether pid disappears (or becomes a zombie) within limit.
func gone(pid int, limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// The state follows the ")" that ends the command name.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return true
		}
	}
	return false
}

// TestFakeDriver_CopyConfinedToBox checks that box paths through symlinks
// leading out of the box directory (to the host) are refused both ways.
func TestFakeDriver_CopyConfinedToBox(t *testing.T) {
	d := boxruntest.NewFakeDriver(t.TempDir())
	h := mustCreate(t, d, sandbox.Spec{Workdir: "/root"})
	p, err := d.Exec(t.Context(), h, sandbox.ProcessSpec{Cmd: []string{"ln", "-s", "/", "hostroot"}, Dir: "/root"})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil {
		t.Fatalf("ln: %d, %v", code, err)
	}
	var out bytes.Buffer
	if err := d.CopyOut(t.Context(), h, "/root/hostroot/etc/passwd", &out); !errors.Is(err, boxrun.ErrInvalid) {
		t.Errorf("CopyOut through a symlink to the host root: %v, want ErrInvalid", err)
	}
	if out.Len() != 0 {
		t.Errorf("CopyOut wrote %d bytes", out.Len())
	}
	hostDir := t.TempDir()
	if err := d.CopyIn(t.Context(), h, "/root/hostroot"+hostDir, strings.NewReader("")); !errors.Is(err, boxrun.ErrInvalid) {
		t.Errorf("CopyIn through a symlink to the host root: %v, want ErrInvalid", err)
	}
	// CopyOut of the symlink itself is fine: it is stored, not followed.
	out.Reset()
	if err := d.CopyOut(t.Context(), h, "/root/hostroot", &out); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	if hdr, err := tr.Next(); err != nil || hdr.Typeflag != tar.TypeSymlink || hdr.Linkname != "/" {
		t.Errorf("CopyOut of the symlink: %+v, %v", hdr, err)
	}
}

// TestFakeDriver_TTYStdinEOF checks that EOF on Stdin of a TTY process
// reaches it as the terminal's EOF character.
func TestFakeDriver_TTYStdinEOF(t *testing.T) {
	d := boxruntest.NewFakeDriver(t.TempDir())
	h := mustCreate(t, d, sandbox.Spec{Workdir: "/root"})
	var out bytes.Buffer
	p, err := d.Exec(t.Context(), h, sandbox.ProcessSpec{
		Cmd: []string{"cat"}, Dir: "/root", TTY: true, Stdin: strings.NewReader("hello\n"), Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if code, err := p.Wait(); code != 0 || err != nil {
			t.Errorf("Wait = %d, %v", code, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.Signal(t.Context(), syscall.SIGKILL)
		<-done
		t.Fatal("cat on a terminal did not see EOF")
	}
	if !strings.Contains(out.String(), "hello") {
		t.Errorf("output %q", out.String())
	}
}
