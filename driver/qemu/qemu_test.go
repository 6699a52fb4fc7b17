package qemu_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// agent is the guest agent, built once per test binary.
var agent agentBuild

// agentBuild builds the guest agent once.
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
		testenv.Skip(t, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	if _, err := qemu.FindKernel(); err != nil {
		testenv.Skip(t, "no guest kernel in /boot (apt-get install linux-image-cloud-amd64)")
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

// run execs cmd in the box (stdin "" is none) and returns stdout, stderr
// and the exit code.
func run(t testing.TB, d sandbox.Driver, h string, stdin string, cmd ...string) (string, string, int) {
	t.Helper()
	spec := sandbox.ProcessSpec{Cmd: cmd}
	if stdin != "" {
		spec.Stdin = strings.NewReader(stdin)
	}
	r := boxruntest.Run(t, d, h, spec, 2*time.Minute)
	return r.Stdout, r.Stderr, r.Code
}

// testLogger logs to t.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
