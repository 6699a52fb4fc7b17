package qemu_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/driver/qemu"
)

// agentOnce builds the guest agent once per test binary.
type agentBuild struct {
	once sync.Once
	path string
	err  error
}

func (a *agentBuild) get(t testing.TB) string {
	a.once.Do(func() {
		dir, err := os.MkdirTemp("", "boxrun-qemu-agent-")
		if err != nil {
			a.err = err
			return
		}
		a.path = filepath.Join(dir, qemu.AgentName)
		a.err = qemu.BuildAgent(context.Background(), a.path)
	})
	if a.err != nil {
		t.Fatalf("build agent: %v", a.err)
	}
	return a.path
}

// requireQEMU skips the test when QEMU or a guest kernel is not installed.
func requireQEMU(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	if _, err := qemu.FindKernel(); err != nil {
		t.Skip("no guest kernel in /boot (apt-get install linux-image-cloud-amd64)")
	}
}

// newDriver opens a Driver on dir with a logger writing to the test log.
func newDriver(t testing.TB, agent, dir string) *qemu.Driver {
	t.Helper()
	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agent})
	if err != nil {
		t.Fatalf("qemu.New: %v", err)
	}
	return d
}

// busyboxRootfs makes a tiny rootfs with the host's static busybox.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (apt-get install busybox-static)")
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "root"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range strings.Fields(string(out)) {
		if app != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", app))
		}
	}
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=boxrun-test\n"), 0o644)
	return root
}

func run(t testing.TB, d boxrun.Driver, h string, stdin string, cmd ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	spec := boxrun.ProcessSpec{Cmd: cmd, Stdout: &out, Stderr: &errb}
	if stdin != "" {
		spec.Stdin = strings.NewReader(stdin)
	}
	p, err := d.Exec(ctx, h, spec)
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	code, err := p.Wait()
	if err != nil {
		t.Fatalf("wait %v: %v", cmd, err)
	}
	return out.String(), errb.String(), code
}

var _ = fmt.Sprint

// testLogger logs to t.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
