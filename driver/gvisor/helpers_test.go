package gvisor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/driver/gvisor"
)

// newDriver returns a driver on a fresh directory, or skips the test when
// the host cannot run gVisor (not root, runsc missing).
func newDriver(t testing.TB) (*gvisor.Driver, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gvisor")
	d, err := gvisor.New(gvisor.Config{Dir: dir})
	if errors.Is(err, gvisor.ErrUnsupported) {
		t.Skipf("gvisor driver unsupported here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Prune(context.Background(), nil); err != nil {
			t.Errorf("prune: %v", err)
		}
		d.Close()
	})
	return d, dir
}

// busyboxRootfs makes a rootfs with /bin/busybox and its applets as
// symlinks, like a minimal busybox image.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "busybox")
	for _, d := range []string{"bin", "etc", "root", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no /bin/busybox: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Fields(string(out)) {
		if name == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// run execs cmd in the box and returns stdout, stderr and the exit code.
func run(t testing.TB, d *gvisor.Driver, h string, stdin io.Reader, cmd ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := d.Exec(ctx, h, boxrun.ProcessSpec{Cmd: cmd, Stdin: stdin, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	code, err := p.Wait()
	if err != nil {
		t.Fatalf("wait %q: %v", cmd, err)
	}
	return stdout.String(), stderr.String(), code
}

func create(t testing.TB, d *gvisor.Driver, spec boxrun.SandboxSpec) string {
	t.Helper()
	h, err := d.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return h
}
